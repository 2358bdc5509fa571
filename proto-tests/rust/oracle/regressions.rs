//! Named regression tests from the routing bug report, each checked on both masters by
//! the oracle ([`assert_case`]): `{A}` lives on shard1, `{B}` on shard2, and every naive
//! reading of their ids hashes to the other shard. Each statement is first sent to MariaDB
//! directly, which must accept it (so that no test passes vacuously).

use super::{assert_case, assert_no_misplacement, Case, Param};

#[tokio::test]
async fn regression_batch_set_then_keyless_delete() {
    assert_no_misplacement("oracle_r_b1", &[], b"SET @a=1; DELETE FROM messages").await;
}

#[tokio::test]
async fn regression_batch_set_then_keyless_update() {
    assert_no_misplacement("oracle_r_b2", &[], b"SET @a=1; UPDATE posts SET body='x'").await;
}

#[tokio::test]
async fn regression_batch_pin_then_keyless_delete() {
    assert_case(
        "oracle_r_b3",
        Case::query(&[], b"SET @dbrouter_userid={A}; DELETE FROM messages").pinned_to("A"),
    )
    .await;
}

#[tokio::test]
async fn regression_batch_use_then_keyless_delete() {
    assert_no_misplacement("oracle_r_b4", &[], b"USE {db}; DELETE FROM messages").await;
}

#[tokio::test]
async fn regression_batch_keyed_then_keyless_delete() {
    assert_no_misplacement(
        "oracle_r_b5",
        &[],
        b"DELETE FROM messages WHERE userid = {A}; DELETE FROM messages",
    )
    .await;
}

#[tokio::test]
async fn regression_batch_set_then_keyless_select() {
    assert_no_misplacement("oracle_r_b6", &[], b"SET @a=1; SELECT * FROM posts").await;
}

#[tokio::test]
async fn regression_no_backslash_escapes_string() {
    assert_no_misplacement(
        "oracle_r_m1",
        &["SET sql_mode = 'NO_BACKSLASH_ESCAPES'"],
        b"INSERT INTO posts (body, userid) VALUES ('x\\', {A}) -- ', {B})",
    )
    .await;
}

#[tokio::test]
async fn regression_ansi_quotes_backslash_in_identifier() {
    assert_no_misplacement(
        "oracle_r_m2",
        &["SET sql_mode = 'ANSI_QUOTES'"],
        b"UPDATE posts AS \"p\\\" SET body = 'M' WHERE userid = {B} -- \" WHERE userid = {A}",
    )
    .await;
}

#[tokio::test]
async fn regression_sjis_trail_byte_backslash() {
    assert_no_misplacement(
        "oracle_r_c1",
        &["SET NAMES sjis"],
        b"INSERT INTO posts (body, userid) VALUES ('M\x95\x5c', {A}) -- ', {B})",
    )
    .await;
}

#[tokio::test]
async fn regression_big5_trail_byte_backslash() {
    assert_no_misplacement(
        "oracle_r_c2",
        &["SET character_set_client = big5"],
        b"INSERT INTO posts (body, userid) VALUES ('M\xa4\x5c', {A}) -- ', {B})",
    )
    .await;
}

#[tokio::test]
async fn regression_latin1_nbsp_hides_key_assignment() {
    assert_no_misplacement(
        "oracle_r_c3",
        &["SET NAMES latin1"],
        b"UPDATE posts SET body='M',\xa0userid = {B} WHERE userid = {A}",
    )
    .await;
}

/// `/*!80000 … */` is MySQL 8 syntax, which MariaDB skips: the comment ends at the first
/// `*/`, inside what would otherwise be a string.
#[tokio::test]
async fn regression_mysql8_versioned_comment_is_skipped() {
    assert_no_misplacement(
        "oracle_r_v1",
        &[],
        b"INSERT INTO posts (userid, body) VALUES /*!80000 ({B}, '*/ ({A}, \"M\") -- ') */",
    )
    .await;
}

#[tokio::test]
async fn regression_versioned_comment_99999_is_skipped() {
    assert_no_misplacement(
        "oracle_r_v2",
        &[],
        b"INSERT INTO posts (userid, body) VALUES /*!99999 ({B}, '*/ ({A}, \"M\") -- ') */",
    )
    .await;
}

#[tokio::test]
async fn regression_mariadb_comment_999999_is_skipped() {
    assert_no_misplacement(
        "oracle_r_v3",
        &[],
        b"INSERT INTO posts (userid, body) VALUES /*M!999999 ({B}, '*/ ({A}, \"M\") -- ') */",
    )
    .await;
}

#[tokio::test]
async fn regression_versioned_comment_above_the_server_is_skipped() {
    assert_no_misplacement(
        "oracle_r_v4",
        &[],
        b"INSERT INTO posts (userid, body) VALUES /*!101120 ({B}, '*/ ({A}, \"M\") -- ') */",
    )
    .await;
}

#[tokio::test]
async fn regression_mariadb_comment_above_the_server_is_skipped() {
    assert_no_misplacement(
        "oracle_r_v5",
        &[],
        b"INSERT INTO posts (userid, body) VALUES /*M!101120 ({B}, '*/ ({A}, \"M\") -- ') */",
    )
    .await;
}

/// The other side: a version MariaDB runs (MySQL 5.1 syntax).
#[tokio::test]
async fn regression_versioned_comment_50100_runs() {
    assert_no_misplacement(
        "oracle_r_v6",
        &[],
        b"INSERT INTO posts (userid, body) VALUES /*!50100 ({B}, '*/ ({A}, \"M\") -- ') */",
    )
    .await;
}

/// A MariaDB-only comment runs whatever MySQL version it names, up to the server's.
#[tokio::test]
async fn regression_mariadb_comment_80000_runs() {
    assert_no_misplacement(
        "oracle_r_v7",
        &[],
        b"INSERT INTO posts (userid, body) VALUES /*M!80000 ({B}, '*/ ({A}, \"M\") -- ') */",
    )
    .await;
}

/// `/*!1*/` has no version (fewer than 5 digits): it is the code `1`, so the key is A + 1.
#[tokio::test]
async fn regression_digit_executable_comment() {
    assert_no_misplacement(
        "oracle_r_v8",
        &[],
        b"INSERT INTO posts (userid, body) VALUES (/*!1*/+{A}, 'M')",
    )
    .await;
}

/// `--` followed by 0x7F (a control character) starts a comment in MariaDB.
#[tokio::test]
async fn regression_dash_dash_del_is_a_comment() {
    assert_no_misplacement(
        "oracle_r_v9",
        &[],
        b"INSERT INTO posts (userid, body) VALUES --\x7f ({A}, '\n({B}, 'M') -- ')",
    )
    .await;
}

#[tokio::test]
async fn regression_spaced_qualified_key_assignment() {
    assert_no_misplacement(
        "oracle_r_q1",
        &[],
        b"UPDATE posts SET posts . userid = {B} WHERE userid = {A}",
    )
    .await;
}

#[tokio::test]
async fn regression_keyless_update_of_spaced_qualified_table() {
    assert_no_misplacement("oracle_r_q2", &[], b"UPDATE {db} . posts SET body='x'").await;
}

#[tokio::test]
async fn regression_keyless_delete_of_spaced_qualified_table() {
    assert_no_misplacement("oracle_r_q3", &[], b"DELETE FROM {db} . posts").await;
}

#[tokio::test]
async fn regression_keyless_load_data_into_spaced_qualified_table() {
    assert_case(
        "oracle_r_q4",
        Case::load_data(
            &[],
            b"LOAD DATA LOCAL INFILE 'rows.tsv' INTO TABLE {db} . posts (userid, body)",
            b"{A}\tL1\n{B}\tL2\n",
        ),
    )
    .await;
}

/// A vertical tab is a space to MariaDB's string-to-integer conversion.
#[tokio::test]
async fn regression_vertical_tab_before_the_key() {
    assert_no_misplacement(
        "oracle_r_k1",
        &[],
        b"INSERT INTO posts (userid, body) VALUES ('\x0b{A}', 'M')",
    )
    .await;
}

#[tokio::test]
async fn regression_insert_ignore_key_with_trailing_garbage() {
    assert_no_misplacement(
        "oracle_r_k2",
        &[],
        b"INSERT IGNORE INTO posts (userid, body) VALUES ('{A}abc', 'M')",
    )
    .await;
}

#[tokio::test]
async fn regression_insert_ignore_empty_key() {
    assert_no_misplacement(
        "oracle_r_k3",
        &[],
        b"INSERT IGNORE INTO posts (userid, body) VALUES ('', 'M')",
    )
    .await;
}

/// MariaDB clamps a key above 2^64 to 18446744073709551615 (`{HUGE}` hashes elsewhere).
#[tokio::test]
async fn regression_insert_ignore_quoted_key_above_u64() {
    assert_no_misplacement(
        "oracle_r_k4",
        &[],
        b"INSERT IGNORE INTO posts (userid, body) VALUES ('{HUGE}', 'M')",
    )
    .await;
}

#[tokio::test]
async fn regression_insert_ignore_key_above_u64() {
    assert_no_misplacement(
        "oracle_r_k5",
        &[],
        b"INSERT IGNORE INTO posts (userid, body) VALUES ({HUGE}, 'M')",
    )
    .await;
}

/// Key parameters MariaDB converts to the integer A.
async fn assert_key_param(db: &str, param: Param) {
    assert_case(
        db,
        Case::prepared(
            &[],
            "INSERT INTO posts (userid, body) VALUES (?, 'M')",
            vec![param],
        ),
    )
    .await;
}

#[tokio::test]
async fn regression_prepared_key_with_leading_space() {
    assert_key_param("oracle_r_p1", Param::text(" {A}")).await;
}

#[tokio::test]
async fn regression_prepared_key_with_trailing_space() {
    assert_key_param("oracle_r_p2", Param::text("{A} ")).await;
}

#[tokio::test]
async fn regression_prepared_key_with_plus_sign() {
    assert_key_param("oracle_r_p3", Param::text("+{A}")).await;
}

#[tokio::test]
async fn regression_prepared_key_with_decimal_zero() {
    assert_key_param("oracle_r_p4", Param::text("{A}.0")).await;
}

#[tokio::test]
async fn regression_prepared_key_with_exponent() {
    assert_key_param("oracle_r_p5", Param::text("{A}e0")).await;
}

#[tokio::test]
async fn regression_prepared_key_with_leading_tab() {
    assert_key_param("oracle_r_p6", Param::text("\t{A}")).await;
}

#[tokio::test]
async fn regression_prepared_key_as_decimal_text() {
    assert_key_param("oracle_r_p7", Param::text("{A}.4")).await;
}

#[tokio::test]
async fn regression_prepared_key_as_double() {
    assert_key_param("oracle_r_p8", Param::Double("{A}".into())).await;
}

/// Key parameters sent as COM_STMT_SEND_LONG_DATA (raw client: mysql_async sends long
/// data only above 16 MiB).
#[tokio::test]
async fn regression_prepared_key_as_long_data() {
    assert_case(
        "oracle_r_p9",
        Case::long_data(
            &[],
            "INSERT INTO posts (userid, body) VALUES (?, ?)",
            &[" {A}", "M"],
        ),
    )
    .await;
}

#[tokio::test]
async fn regression_prepared_key_as_long_data_in_a_where() {
    assert_case(
        "oracle_r_p10",
        Case::long_data(
            &[],
            "UPDATE posts SET body = ? WHERE userid = ?",
            &["M", "{A}.0"],
        ),
    )
    .await;
}

#[tokio::test]
async fn regression_execute_immediate() {
    assert_no_misplacement(
        "oracle_r_d1",
        &[],
        b"EXECUTE IMMEDIATE 'INSERT INTO posts (userid, body) VALUES ({B}, ''x'')'",
    )
    .await;
}

#[tokio::test]
async fn regression_prepare_and_execute_in_a_batch() {
    assert_no_misplacement(
        "oracle_r_d2",
        &[],
        b"PREPARE s FROM 'INSERT INTO posts (userid, body) VALUES ({B}, ''x'')'; EXECUTE s",
    )
    .await;
}

#[tokio::test]
async fn regression_prepare_then_execute() {
    assert_no_misplacement(
        "oracle_r_d3",
        &["PREPARE s FROM 'INSERT INTO posts (userid, body) VALUES ({B}, ''x'')'"],
        b"EXECUTE s",
    )
    .await;
}

#[tokio::test]
async fn regression_hint_contradicts_the_inserted_key() {
    assert_no_misplacement(
        "oracle_r_h1",
        &[],
        b"/* userid={A} */ INSERT INTO posts (userid, body) VALUES ({B}, 'x')",
    )
    .await;
}

#[tokio::test]
async fn regression_pin_contradicts_the_selected_key() {
    assert_no_misplacement(
        "oracle_r_h2",
        &["SET @dbrouter_userid = {A}"],
        b"INSERT INTO posts (userid, body) SELECT {B}, 'x'",
    )
    .await;
}
