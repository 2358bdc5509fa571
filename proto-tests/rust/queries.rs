//! COM_QUERY and the other non-prepared commands, through the router and directly.

use futures_util::StreamExt;
use mysql_async::prelude::*;
use mysql_async::{Conn, Opts, Row, Value};

use crate::harness::*;
use crate::raw::*;
use dbrouter::protocol::response::ResponseKind;

/// Rows as plain values plus column names and types, for comparison.
type Table = (Vec<(String, u8)>, Vec<Vec<Value>>);

async fn run_all(conn: &mut Conn, sql: &str) -> Vec<Table> {
    let mut result = conn
        .query_iter(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let mut tables = Vec::new();
    while !result.is_empty() {
        let columns = result
            .columns()
            .map(|cols| {
                cols.iter()
                    .map(|c| (c.name_str().into_owned(), c.column_type() as u8))
                    .collect()
            })
            .unwrap_or_default();
        let rows: Vec<Row> = result.collect().await.unwrap();
        tables.push((columns, rows.into_iter().map(|r| r.unwrap()).collect()));
    }
    tables
}

async fn both(db: &str) -> (Conn, Conn) {
    let router = Conn::new(Opts::from(app_opts(&cluster_router_addr(), Some(db))))
        .await
        .unwrap();
    let direct = direct(Some(db)).await;
    (router, direct)
}

#[tokio::test]
async fn text_results_match_direct() {
    fresh_database("t_text").await;
    let (mut r, mut d) = both("t_text").await;
    d.query_drop(
        "CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(50), price DECIMAL(10,2), born DATE, \
         data BLOB, note TEXT, f DOUBLE, u BIGINT UNSIGNED)",
    )
    .await
    .unwrap();
    d.query_drop(
        "INSERT INTO t VALUES (1,'alice',9.99,'2001-02-03',x'00ff10',NULL,1.5,18446744073709551615), \
         (2,'bøb ☃',NULL,NULL,'',repeat('x',1000),-0.25,0), (3,NULL,0,'1999-12-31',NULL,'',NULL,NULL)",
    )
    .await
    .unwrap();
    for sql in [
        "SELECT * FROM t ORDER BY id",
        "SELECT 1, 'a', NULL, 2.5, x'41', NOW() IS NOT NULL",
        "SELECT id, HEX(data), LENGTH(note) FROM t WHERE id > 1 ORDER BY id DESC",
        "SELECT seq, seq * 2 FROM seq_1_to_2000",
        "SELECT * FROM t WHERE 1 = 0",
        "SHOW COLUMNS FROM t",
        "SELECT @@sql_mode, @@autocommit, DATABASE()",
    ] {
        assert_eq!(
            run_all(&mut r, sql).await,
            run_all(&mut d, sql).await,
            "{sql}"
        );
    }
}

#[tokio::test]
async fn multi_statements_and_procedures_return_every_result() {
    fresh_database("t_multi").await;
    let (mut r, mut d) = both("t_multi").await;
    d.query_drop(
        "CREATE PROCEDURE two_results() BEGIN SELECT 1 AS a; SELECT 'x' AS b, 2 AS c; END",
    )
    .await
    .unwrap();
    for sql in [
        "SELECT 1; SELECT 2, 3; DO 1; SELECT 'last'",
        // A procedure's statements are invisible to the router: it needs a hint or the pin.
        "/* userid=1 */ CALL two_results()",
        "CREATE TEMPORARY TABLE tmp (a INT); INSERT INTO tmp VALUES (1),(2); SELECT SUM(a) FROM tmp",
    ] {
        let got = run_all(&mut r, sql).await;
        assert!(got.len() >= 2, "{sql}: expected several results, got {got:?}");
        assert_eq!(got, run_all(&mut d, sql).await, "{sql}");
    }
    // The connection is still in step after multi-results.
    let one: Option<i64> = r.query_first("SELECT 42").await.unwrap();
    assert_eq!(one, Some(42));
}

#[tokio::test]
async fn errors_pass_through_unchanged() {
    fresh_database("t_errors").await;
    let (mut r, mut d) = both("t_errors").await;
    for sql in [
        "SELECT * FROM no_such_table",
        "SELEKT 1",
        "SELECT 1; SELECT * FROM nope",
        "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'custom failure', MYSQL_ERRNO = 1644",
    ] {
        let via_router = server_error(r.query_drop(sql).await.unwrap_err());
        let direct = server_error(d.query_drop(sql).await.unwrap_err());
        assert_eq!(via_router, direct, "{sql}");
        // The session continues after an error.
        let v: Option<i64> = r.query_first("SELECT 7").await.unwrap();
        assert_eq!(v, Some(7));
    }
}

#[tokio::test]
async fn warnings_are_reported() {
    let (mut r, mut d) = both("app").await;
    r.query_drop("SELECT CAST('abc' AS SIGNED)").await.unwrap();
    d.query_drop("SELECT CAST('abc' AS SIGNED)").await.unwrap();
    assert_eq!(r.get_warnings(), 1);
    assert_eq!(r.get_warnings(), d.get_warnings());
    let w_r: Vec<(String, u32, String)> = r.query("SHOW WARNINGS").await.unwrap();
    let w_d: Vec<(String, u32, String)> = d.query("SHOW WARNINGS").await.unwrap();
    assert_eq!(w_r, w_d);
    assert_eq!(w_r[0].1, 1292);
}

#[tokio::test]
async fn transactions_commit_and_roll_back() {
    fresh_database("t_tx").await;
    let (mut r, mut d) = both("t_tx").await;
    d.query_drop("CREATE TABLE t (id INT PRIMARY KEY)")
        .await
        .unwrap();
    r.query_drop("BEGIN").await.unwrap();
    r.query_drop("INSERT INTO t VALUES (1)").await.unwrap();
    let seen: Vec<i32> = d.query("SELECT id FROM t").await.unwrap();
    assert!(seen.is_empty(), "uncommitted row visible");
    r.query_drop("COMMIT").await.unwrap();
    // A transaction inside a batch is refused whole (it was once answered OK and lost).
    let err = server_error(
        r.query_drop("START TRANSACTION; INSERT INTO t VALUES (2); ROLLBACK")
            .await
            .unwrap_err(),
    );
    assert_eq!(err.0, 1235, "{err:?}");
    r.query_drop("START TRANSACTION").await.unwrap();
    r.query_drop("INSERT INTO t VALUES (2)").await.unwrap();
    r.query_drop("ROLLBACK").await.unwrap();
    r.query_drop("SET autocommit = 0").await.unwrap();
    r.query_drop("INSERT INTO t VALUES (3)").await.unwrap();
    r.query_drop("ROLLBACK").await.unwrap();
    let rows: Vec<i32> = d.query("SELECT id FROM t ORDER BY id").await.unwrap();
    assert_eq!(rows, vec![1]);
}

/// Makes `conn` answer LOAD DATA LOCAL with `rows` lines `id<TAB>name<id>` (sent in 7000
/// byte chunks); returns the file's size.
fn serve_tsv(conn: &mut Conn, rows: usize) -> usize {
    let data: String = (0..rows).map(|i| format!("{i}\tname{i}\n")).collect();
    let size = data.len();
    conn.set_infile_handler(async move {
        let chunks: Vec<std::io::Result<bytes::Bytes>> = data
            .into_bytes()
            .chunks(7000)
            .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
            .collect();
        Ok(futures_util::stream::iter(chunks).boxed())
    });
    size
}

#[tokio::test]
async fn local_infile_uploads_through_the_router() {
    fresh_database("t_infile").await;
    let (mut r, mut d) = both("t_infile").await;
    d.query_drop("CREATE TABLE t (id INT, name VARCHAR(20))")
        .await
        .unwrap();
    let expected = serve_tsv(&mut r, 5000);
    r.query_drop("LOAD DATA LOCAL INFILE 'ignored.tsv' INTO TABLE t")
        .await
        .unwrap();
    assert_eq!(r.affected_rows(), 5000);
    let (n, sum): (i64, i64) = d
        .query_first("SELECT COUNT(*), SUM(id) FROM t")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((n, sum), (5000, (0..5000).sum::<i64>()));
    assert!(expected > 50_000);
    // Still in step.
    let v: Option<i64> = r.query_first("SELECT COUNT(*) FROM t").await.unwrap();
    assert_eq!(v, Some(5000));
}

#[tokio::test]
async fn large_packets_cross_the_16mib_boundary_both_ways() {
    fresh_database("t_large").await;
    let (mut r, mut d) = both("t_large").await;
    d.query_drop("CREATE TABLE t (id INT PRIMARY KEY, b LONGBLOB)")
        .await
        .unwrap();
    // A 20 MiB statement: the client splits it into continuation packets.
    let size = 20 * 1024 * 1024;
    let hex: String = "ab".repeat(size / 2);
    r.query_drop(format!("INSERT INTO t VALUES (1, x'{hex}')"))
        .await
        .unwrap();
    let (len, sha): (i64, String) = d
        .query_first("SELECT LENGTH(b), SHA1(b) FROM t WHERE id = 1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(len as usize, size / 2);
    // A 20 MiB row back through the router (text and binary protocol).
    let blob: Option<Vec<u8>> = r
        .query_first("SELECT CONCAT(b, b) FROM t WHERE id = 1")
        .await
        .unwrap();
    let blob = blob.unwrap();
    assert_eq!(blob.len(), size);
    assert!(blob.iter().all(|b| *b == 0xab));
    let via_exec: Option<Vec<u8>> = r
        .exec_first("SELECT CONCAT(b, b) FROM t WHERE id = ?", (1,))
        .await
        .unwrap();
    assert_eq!(via_exec.unwrap().len(), size);
    let sha_router: Option<String> = r
        .query_first("SELECT SHA1(b) FROM t WHERE id = 1")
        .await
        .unwrap();
    assert_eq!(sha_router.unwrap(), sha);
}

#[tokio::test]
async fn many_concurrent_clients() {
    let addr = cluster_router_addr();
    let mut tasks = Vec::new();
    for i in 0..16i64 {
        let addr = addr.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = Conn::new(Opts::from(app_opts(&addr, Some("app"))))
                .await
                .unwrap();
            for j in 0..100i64 {
                let v: Option<i64> = c.exec_first("SELECT ? + ?", (i, j)).await.unwrap();
                assert_eq!(v, Some(i + j));
                let s: Option<String> = c.query_first(format!("SELECT 'c{i}q{j}'")).await.unwrap();
                assert_eq!(s.unwrap(), format!("c{i}q{j}"));
            }
            c.disconnect().await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test]
async fn raw_commands_match_direct_byte_for_byte() {
    fresh_database("t_raw").await;
    let mut d0 = direct(Some("t_raw")).await;
    d0.query_drop("CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(10) DEFAULT 'x')")
        .await
        .unwrap();
    d0.query_drop("INSERT INTO t SELECT seq, CONCAT('n', seq) FROM seq_1_to_25")
        .await
        .unwrap();
    let mut r =
        RawClient::connect(&cluster_router_addr(), "app", APP_PASSWORD, Some("t_raw")).await;
    // Directly as the account the router's session acts as.
    let mut d = RawClient::connect(&master_addr(), "app", APP_PASSWORD, Some("t_raw")).await;

    // COM_FIELD_LIST
    let cmd = b"\x04t\x00".to_vec();
    let fl = r.command(&cmd, ResponseKind::FieldList).await;
    assert_eq!(fl.len(), 3, "two column definitions and an EOF");
    assert_eq!(fl, d.command(&cmd, ResponseKind::FieldList).await);

    // COM_INIT_DB, good and bad
    for db in ["t_raw", "no_such_db"] {
        let mut cmd = vec![0x02];
        cmd.extend_from_slice(db.as_bytes());
        assert_eq!(
            r.command(&cmd, ResponseKind::Single).await,
            d.command(&cmd, ResponseKind::Single).await
        );
    }

    // Cursor: execute with CURSOR_TYPE_READ_ONLY, then fetch in batches, then reset/close.
    let p = r
        .command(
            &prepare("SELECT id, name FROM t ORDER BY id"),
            ResponseKind::Prepare,
        )
        .await;
    let pd = d
        .command(
            &prepare("SELECT id, name FROM t ORDER BY id"),
            ResponseKind::Prepare,
        )
        .await;
    assert_eq!(p.len(), pd.len());
    let (rid, did) = (stmt_id(&p[0]), stmt_id(&pd[0]));
    let meta = r.command(&execute(rid, true), ResponseKind::Execute).await;
    assert_eq!(
        meta,
        d.command(&execute(did, true), ResponseKind::Execute).await
    );
    let mut fetched = 0;
    loop {
        let rows = r.command(&fetch(rid, 10), ResponseKind::Fetch).await;
        assert_eq!(rows, d.command(&fetch(did, 10), ResponseKind::Fetch).await);
        fetched += rows.len() - 1;
        let status = dbrouter::protocol::packets::terminator_status(rows.last().unwrap())
            .expect("status of the last packet");
        if status & 0x0080 != 0 {
            break;
        }
        assert!(fetched <= 25);
    }
    assert_eq!(fetched, 25);
    let mut reset = vec![0x1a];
    reset.extend_from_slice(&rid.to_le_bytes());
    let rr = r.command(&reset, ResponseKind::Single).await;
    assert_eq!(rr[0][0], 0x00, "COM_STMT_RESET answers OK");
    let mut close = vec![0x19];
    close.extend_from_slice(&rid.to_le_bytes());
    r.send(&close).await;

    // COM_SET_OPTION: multi-statements off, then a multi-statement fails like directly.
    let off = vec![0x1b, 1, 0];
    assert_eq!(
        r.command(&off, ResponseKind::Single).await,
        d.command(&off, ResponseKind::Single).await
    );
    let q = b"\x03SELECT 1; SELECT 2".to_vec();
    let rq = r.command(&q, ResponseKind::Query).await;
    assert_eq!(rq[0][0], 0xff);
    assert_eq!(rq, d.command(&q, ResponseKind::Query).await);

    // COM_STATISTICS: one string packet.
    let st = r.command(&[0x09], ResponseKind::Single).await;
    assert!(
        String::from_utf8_lossy(&st[0]).starts_with("Uptime:"),
        "{st:?}"
    );

    // COM_PING
    assert_eq!(r.command(&[0x0e], ResponseKind::Single).await[0][0], 0x00);

    // COM_RESET_CONNECTION clears user variables.
    r.command(b"\x03SET @v = 5", ResponseKind::Query).await;
    assert_eq!(r.command(&[0x1f], ResponseKind::Single).await[0][0], 0x00);
    let v = r
        .command(b"\x03SELECT @v IS NULL", ResponseKind::Query)
        .await;
    assert_eq!(
        r.first_row(&v),
        b"\x011",
        "user variable survived COM_RESET_CONNECTION: {v:?}"
    );
}

/// MariaDB's MARIADB_CLIENT_CACHE_METADATA (libmariadb clients such as sysbench and the
/// `mariadb` CLI ask for it): dbrouter offers it, passes it to the backends, and relays
/// result sets whose column definitions the server left out, byte for byte as directly.
#[tokio::test]
async fn mariadb_metadata_caching_matches_direct_byte_for_byte() {
    use mysql_common::constants::MariadbCapabilities;
    let cache = MariadbCapabilities::MARIADB_CLIENT_CACHE_METADATA;
    fresh_database("t_meta").await;
    let mut d0 = direct(Some("t_meta")).await;
    d0.query_drop("CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(10))")
        .await
        .unwrap();
    d0.query_drop("INSERT INTO t SELECT seq, CONCAT('n', seq) FROM seq_1_to_25")
        .await
        .unwrap();
    // Session pooling: transaction pooling does not offer metadata caching (multiplex.rs).
    let own = TestRouter::start(RouterSettings {
        sharding: "[sharding]\nunlisted_tables = \"global\"\n\n[pool]\nmode = \"session\"\n".into(),
        ..Default::default()
    });
    let router = own.addr.clone();
    let mut r = RawClient::connect_with(&router, "app", APP_PASSWORD, Some("t_meta"), cache).await;
    let mut d = RawClient::connect_with(
        &master_addr(),
        "dbrouter",
        "dbrouter-secret",
        Some("t_meta"),
        cache,
    )
    .await;
    assert!(r.format.metadata_flag && d.format.metadata_flag);
    // RawClient asks for CLIENT_DEPRECATE_EOF too, like MariaDB's own connectors.
    assert!(r.format.deprecate_eof && d.format.deprecate_eof);

    // Text results always carry their metadata: the flag byte is 1.
    let q = b"\x03SELECT id, name FROM t WHERE id = 3".to_vec();
    let rq = r.command(&q, ResponseKind::Query).await;
    assert_eq!(rq[0], [2, 1], "column count and 'metadata follows'");
    assert_eq!(rq, d.command(&q, ResponseKind::Query).await);

    // Prepared: the server leaves the definitions out once the client has them.
    let sql = "SELECT id, name FROM t WHERE id < 4 ORDER BY id";
    let p = r.command(&prepare(sql), ResponseKind::Prepare).await;
    let pd = d.command(&prepare(sql), ResponseKind::Prepare).await;
    assert_eq!(p[1..], pd[1..], "prepare metadata");
    let (rid, did) = (stmt_id(&p[0]), stmt_id(&pd[0]));
    for round in 0..3 {
        let rx = r.command(&execute(rid, false), ResponseKind::Execute).await;
        let dx = d.command(&execute(did, false), ResponseKind::Execute).await;
        assert_eq!(rx, dx, "execute #{round}");
        assert_eq!(rx[0], [2, 0], "execute #{round}: metadata skipped");
        assert_eq!(rx.len(), 1 + 3 + 1, "count, three rows, OK");
    }
    // Opening a cursor, then fetching: as directly.
    let rx = r.command(&execute(rid, true), ResponseKind::Execute).await;
    assert_eq!(
        rx,
        d.command(&execute(did, true), ResponseKind::Execute).await
    );
    let rows = r.command(&fetch(rid, 10), ResponseKind::Fetch).await;
    assert_eq!(rows, d.command(&fetch(did, 10), ResponseKind::Fetch).await);
    assert_eq!(rows.len(), 4, "three rows and the end");

    // Answered by dbrouter itself: the flag byte is there too.
    let local = r
        .command(b"\x03SHOW DBROUTER ROUTE FOR 42", ResponseKind::Query)
        .await;
    assert_eq!(local[0], [6, 1], "{local:?}");

    // A client without the capability still gets every definition, side by side.
    let mut plain = RawClient::connect(&router, "app", APP_PASSWORD, Some("t_meta")).await;
    assert!(!plain.format.metadata_flag);
    let p = plain.command(&prepare(sql), ResponseKind::Prepare).await;
    let px = plain
        .command(&execute(stmt_id(&p[0]), false), ResponseKind::Execute)
        .await;
    assert_eq!(px[0], [2], "no flag byte");
    assert_eq!(px.len(), 1 + 2 + 3 + 1, "count, two definitions, rows, OK");
}

#[tokio::test]
async fn unknown_and_unsupported_commands_get_errors_and_the_connection_lives_on() {
    let mut r = RawClient::connect(&cluster_router_addr(), "app", APP_PASSWORD, None).await;
    for (cmd, needle) in [
        (vec![0x42], "Unknown command"),
        (vec![0x08], "COM_SHUTDOWN"),
        (vec![0x12, 0, 0, 0, 0], "COM_BINLOG_DUMP"),
        (vec![0x00], "Unknown command"),
    ] {
        let resp = r.command(&cmd, ResponseKind::Single).await;
        let err = dbrouter::protocol::packets::parse_err(&resp[0]).expect("an ERR packet");
        assert_eq!(
            (err.code, err.sql_state.as_str()),
            (1047, "08S01"),
            "{cmd:?}"
        );
        assert!(err.message.contains(needle), "{}", err.message);
        let pong = r.command(&[0x0e], ResponseKind::Single).await;
        assert_eq!(pong[0][0], 0x00, "connection unusable after {cmd:?}");
    }
    // COM_PROCESS_KILL (mysql_kill()) of an id that is no session of the account: 1094,
    // as MariaDB answers.
    let resp = r.command(&[0x0c, 1, 0, 0, 0], ResponseKind::Single).await;
    let err = dbrouter::protocol::packets::parse_err(&resp[0]).expect("an ERR packet");
    assert_eq!(
        (err.code, err.message.as_str()),
        (1094, "Unknown thread id: 1")
    );
}

#[tokio::test]
async fn the_session_state_replayed_on_new_connections_is_bounded() {
    let mut c = Conn::new(Opts::from(app_opts(&cluster_router_addr(), None)))
        .await
        .unwrap();
    // 256 distinct SET statements are kept (each new backend connection replays them).
    for i in 0..256 {
        c.query_drop(format!("SET @v{i} = {i}")).await.unwrap();
    }
    let err = c.query_drop("SET @v256 = 256").await.unwrap_err();
    let (code, _, msg) = server_error(err);
    assert_eq!(code, 1235, "{msg}");
    assert!(msg.contains("replay"), "{msg}");
    // One already kept may run again; the session goes on.
    c.query_drop("SET @v7 = 7").await.unwrap();
    let v: Option<i64> = c.query_first("SELECT @v255").await.unwrap();
    assert_eq!(v, Some(255));

    // So are their bytes: 1 MiB of SET text in all.
    let mut c = Conn::new(Opts::from(app_opts(&cluster_router_addr(), None)))
        .await
        .unwrap();
    let big = format!("SET @big = '{}'", "x".repeat(600 * 1024));
    c.query_drop(&big).await.unwrap();
    let bigger = format!("SET @bigger = '{}'", "y".repeat(600 * 1024));
    let (code, _, msg) = server_error(c.query_drop(&bigger).await.unwrap_err());
    assert_eq!(code, 1235, "{msg}");
    let len: Option<i64> = c.query_first("SELECT LENGTH(@big)").await.unwrap();
    assert_eq!(len, Some(600 * 1024));
}

/// MARIADB_CLIENT_EXTENDED_METADATA (MariaDB Connector/J, /Node.js and /C ask for it):
/// column definitions name a column's extended type — how drivers know to parse a JSON
/// column into an object. Relayed byte for byte as directly; result sets the router
/// answers itself carry the (empty) block too.
#[tokio::test]
async fn mariadb_extended_metadata_names_json_uuid_and_inet6_columns_as_directly() {
    use mysql_common::constants::MariadbCapabilities;
    let ext = MariadbCapabilities::MARIADB_CLIENT_EXTENDED_METADATA;
    fresh_database("t_extmeta").await;
    let mut d0 = direct(Some("t_extmeta")).await;
    d0.query_drop("CREATE TABLE t (id INT PRIMARY KEY, doc JSON, addr INET6, u UUID)")
        .await
        .unwrap();
    d0.query_drop(
        "INSERT INTO t VALUES (1, '{\"a\": 1}', '::1', '123e4567-e89b-12d3-a456-426655440000')",
    )
    .await
    .unwrap();
    let db = Some("t_extmeta");
    let mut r = RawClient::connect_with(&cluster_router_addr(), "app", APP_PASSWORD, db, ext).await;
    let mut d = RawClient::connect_with(&master_addr(), "app", APP_PASSWORD, db, ext).await;
    assert!(r.format.extended_metadata, "the router offers it");
    let q = b"\x03SELECT id, doc, addr, u FROM t".to_vec();
    let rq = r.command(&q, ResponseKind::Query).await;
    assert_eq!(rq, d.command(&q, ResponseKind::Query).await);
    let defs = rq[1..5].concat();
    for name in ["json", "inet6", "uuid"] {
        assert!(
            defs.windows(name.len()).any(|w| w == name.as_bytes()),
            "no {name} in the column definitions"
        );
    }
    // Prepared statements: the same definitions.
    let sql = "SELECT doc, addr, u FROM t WHERE id = 1";
    let p = r.command(&prepare(sql), ResponseKind::Prepare).await;
    let pd = d.command(&prepare(sql), ResponseKind::Prepare).await;
    assert_eq!(p[1..], pd[1..]);
    let rx = r
        .command(&execute(stmt_id(&p[0]), false), ResponseKind::Execute)
        .await;
    let dx = d
        .command(&execute(stmt_id(&pd[0]), false), ResponseKind::Execute)
        .await;
    assert_eq!(rx, dx);
    // A result set of the router's own: after name and org_name, the empty block.
    let status = r
        .command(b"\x03SHOW DBROUTER STATUS", ResponseKind::Query)
        .await;
    let def = &status[1];
    let mut at = 0;
    for _ in 0..6 {
        at += 1 + usize::from(def[at]);
    }
    assert_eq!(
        &def[at..at + 2],
        &[0, 0x0c],
        "extended type information, then the fixed fields"
    );
}

/// The compressed protocol (`CLIENT_COMPRESS`, zlib), between the client and the router:
/// small and large statements and results (over 16 MiB, continuation packets inside
/// compressed packets), prepared statements, LOAD DATA LOCAL, all as uncompressed.
#[tokio::test]
async fn compressed_clients_get_the_same_answers() {
    fresh_database("t_compress").await;
    let opts = app_opts(&cluster_router_addr(), Some("t_compress"))
        .compression(mysql_async::Compression::default())
        .max_allowed_packet(Some(64 << 20));
    let mut c = Conn::new(Opts::from(opts)).await.unwrap();
    let mut d = direct(Some("t_compress")).await;
    d.query_drop("CREATE TABLE t (id INT PRIMARY KEY, b LONGBLOB)")
        .await
        .unwrap();
    // Short (stored) and compressible answers.
    let v: Option<i64> = c.query_first("SELECT 1 + 1").await.unwrap();
    assert_eq!(v, Some(2));
    let s: Option<String> = c.query_first("SELECT REPEAT('ab', 5000)").await.unwrap();
    assert_eq!(s.unwrap(), "ab".repeat(5000));
    // 20 MiB one way and back: continuations inside compressed packets.
    let big: Vec<u8> = (0..20 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    c.exec_drop("INSERT INTO t VALUES (1, ?)", (big.clone(),))
        .await
        .unwrap();
    c.query_drop(format!(
        "INSERT INTO t VALUES (2, X'{}')",
        hex::encode(&big[..3 * 1024 * 1024])
    ))
    .await
    .unwrap();
    let back: Option<Vec<u8>> = c.query_first("SELECT b FROM t WHERE id = 1").await.unwrap();
    assert!(back.as_deref() == Some(&big[..]), "20 MiB value differs");
    let stored: Option<Vec<u8>> = d.query_first("SELECT b FROM t WHERE id = 2").await.unwrap();
    assert!(stored.as_deref() == Some(&big[..3 * 1024 * 1024]));
    // LOAD DATA LOCAL, compressed from the client.
    d.query_drop("CREATE TABLE l (id INT, name VARCHAR(20))")
        .await
        .unwrap();
    serve_tsv(&mut c, 5000);
    c.query_drop("LOAD DATA LOCAL INFILE 'x.tsv' INTO TABLE l")
        .await
        .unwrap();
    let n: Option<i64> = d.query_first("SELECT COUNT(*) FROM l").await.unwrap();
    assert_eq!(n, Some(5000));
    // Still in step: the compressed sequence follows every command.
    for i in 0..20 {
        let v: Option<i64> = c.query_first(format!("SELECT {i}")).await.unwrap();
        assert_eq!(v, Some(i));
    }
}

/// A compressed packet that inflates to more (or less) than it announces ends that
/// connection only; the router serves on.
#[tokio::test]
async fn a_compressed_packet_that_lies_about_its_length_ends_only_its_connection() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = cluster_router_addr();
    let opts = app_opts(&addr, None).compression(mysql_async::Compression::default());
    // Log in compressed, then write a bomb on the raw socket: mysql_async cannot, so the
    // bytes go through a second connection made by hand below.
    let mut ok = Conn::new(Opts::from(opts)).await.unwrap();
    let mut raw = crate::raw::RawClient::connect_compressed(&addr, "app", APP_PASSWORD).await;
    // 1 MiB of zeros compressed, announced as 100 bytes.
    let zeros = vec![0u8; 1 << 20];
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut z, &zeros).unwrap();
    let body = z.finish().unwrap();
    let mut packet = (body.len() as u32).to_le_bytes()[..3].to_vec();
    packet.push(0);
    packet.extend_from_slice(&100u32.to_le_bytes()[..3]);
    packet.extend_from_slice(&body);
    raw.stream.write_all(&packet).await.unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        raw.stream.read(&mut buf),
    )
    .await
    .expect("closed")
    .unwrap_or(0);
    assert_eq!(n, 0, "the connection is closed");
    let v: Option<i64> = ok.query_first("SELECT 9").await.unwrap();
    assert_eq!(v, Some(9));
}

/// CLIENT_SESSION_TRACK: the session-state changes MariaDB reports (schema, tracked
/// system variables) reach the client exactly as directly — in the login's OK, after
/// `SET`, `USE` and COM_INIT_DB (which the router broadcasts) — and the OKs the router
/// answers itself (a pending BEGIN, COMMIT / ROLLBACK of it, START TRANSACTION READ ONLY)
/// carry the same status flags as MariaDB's, never a state-change flag without its data.
#[tokio::test]
async fn session_tracking_matches_direct_byte_for_byte() {
    let mut answers = Vec::new();
    for addr in [master_addr(), cluster_router_addr()] {
        let mut r = RawClient::connect(&addr, "app", APP_PASSWORD, Some("app")).await;
        assert!(r.format.deprecate_eof);
        let mut seen = vec![r.login_ok.clone()];
        for q in [
            "SET NAMES latin1",
            "USE app",
            "BEGIN",
            "COMMIT",
            "SET autocommit=0",
            "SET autocommit=1",
            "SELECT 1",
            "SET @x=1",
            "SET time_zone='+01:00'",
            "START TRANSACTION READ ONLY",
            "ROLLBACK",
            "SET TRANSACTION READ ONLY",
            "BEGIN",
            "ROLLBACK",
            "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
        ] {
            let mut cmd = vec![0x03];
            cmd.extend_from_slice(q.as_bytes());
            let resp = r.command(&cmd, ResponseKind::Query).await;
            seen.push(resp.last().unwrap().clone());
        }
        for cmd in [b"\x02app".to_vec(), vec![0x1f], vec![0x0e]] {
            let resp = r.command(&cmd, ResponseKind::Single).await;
            seen.push(resp.last().unwrap().clone());
        }
        answers.push(seen);
    }
    let (direct, routed) = (&answers[0], &answers[1]);
    assert!(
        direct[0].len() > 7 && direct[0][4] & 0x40 != 0,
        "MariaDB's login OK carries the schema: {:?}",
        direct[0]
    );
    for (i, (d, r)) in direct.iter().zip(routed).enumerate() {
        assert_eq!(r, d, "answer #{i}");
    }
}

/// Clients in non-UTF-8 character sets (koi8r, cp1251, latin1, sjis): table and column
/// names (quoted or not), string literals, values and MariaDB's error messages come back
/// byte for byte as directly.
#[tokio::test]
async fn non_utf8_clients_get_the_same_bytes_as_directly() {
    // (character set, a table name, a value) in that character set's bytes.
    let cases: [(&str, &[u8], &[u8]); 4] = [
        (
            "koi8r",
            b"\xd4\xc1\xc2\xcc\xc9\xc3\xc1",
            b"\xf0\xd2\xc9\xd7\xc5\xd4",
        ),
        ("cp1251", b"\xf2\xe0\xe1\xeb", b"\xcf\xf0\xe8\xe2\xe5\xf2"),
        ("latin1", b"caf\xe9", b"d\xe9j\xe0 vu"),
        ("sjis", b"tbl", b"\x83\x5c\x83\x74\x83\x67"),
    ];
    let mut answers: Vec<Vec<Vec<u8>>> = Vec::new();
    for addr in [master_addr(), cluster_router_addr()] {
        // The same starting point for both runs.
        fresh_database("t_charsets").await;
        let mut r = RawClient::connect(&addr, "app", APP_PASSWORD, Some("t_charsets")).await;
        let mut seen = Vec::new();
        for (charset, table, value) in cases {
            let mut statements: Vec<Vec<u8>> = vec![format!("SET NAMES {charset}").into_bytes()];
            let t = [b"`", table, b"_", charset.as_bytes(), b"`"].concat();
            statements.push([b"DROP TABLE IF EXISTS ", &t[..]].concat());
            statements.push(
                [
                    b"CREATE TABLE ",
                    &t[..],
                    b" (id INT PRIMARY KEY, v VARCHAR(20))",
                ]
                .concat(),
            );
            statements.push([b"INSERT INTO ", &t[..], b" VALUES (1, '", value, b"')"].concat());
            statements.push([b"SELECT v, HEX(v), LENGTH(v) FROM ", &t[..]].concat());
            statements.push([b"SELECT '", value, b"' AS ", &t[..]].concat());
            // MariaDB's error messages quote the names in the client's character set.
            statements.push([b"SELECT * FROM `", value, b"`"].concat());
            if charset != "sjis" {
                // Unquoted names: identifier characters to MariaDB in single-byte sets.
                statements.push([b"SELECT v AS ", table, b" FROM ", &t[..]].concat());
                statements.push([b"SELECT * FROM ", table].concat());
            }
            for sql in statements {
                let mut cmd = vec![0x03];
                cmd.extend_from_slice(&sql);
                seen.push(r.command(&cmd, ResponseKind::Query).await.concat());
            }
        }
        answers.push(seen);
    }
    for (i, (d, r)) in answers[0].iter().zip(&answers[1]).enumerate() {
        assert_eq!(
            String::from_utf8_lossy(r),
            String::from_utf8_lossy(d),
            "answer #{i}"
        );
    }
    assert_eq!(answers[0].len(), answers[1].len());
}
