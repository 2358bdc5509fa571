//! Unit tests of the shard-key scanner (with the fast path checked against it on every
//! statement).

use super::*;
use KeyProblem as P;
use StatementKind as K;

fn cols() -> KeyColumns {
    KeyColumns::new(["userid", "Owner_Id"])
}

fn sc(sql: &str) -> Scan<'_> {
    checked_scan(sql.as_bytes(), &cols())
}

/// `scan`, after checking that the fast path either gives up or agrees with the full
/// scanner (every statement of these tests goes through here).
fn checked_scan<'a>(sql: &'a [u8], cols: &KeyColumns) -> Scan<'a> {
    let full = scan_full(sql, cols);
    if let Some(fast) = crate::router::fast::scan(sql, cols) {
        assert_eq!(
            fast,
            full,
            "fast path on {:?}",
            String::from_utf8_lossy(sql)
        );
    }
    let r = crate::router::scan(sql, cols);
    assert_eq!(r, full, "{:?}", String::from_utf8_lossy(sql));
    r
}

fn int(n: u64) -> KeyRef<'static> {
    KeyRef::Literal(KeyValue::Int(n))
}

fn text(s: &str) -> KeyRef<'_> {
    KeyRef::Literal(KeyValue::Str(s.as_bytes()))
}

fn param(i: u16) -> KeyRef<'static> {
    KeyRef::Param(i)
}

/// (sql, keys, problem) — the core table.
fn check(cases: &[(&str, &[KeyRef<'_>], Option<KeyProblem>)]) {
    for (sql, keys, problem) in cases {
        let r = sc(sql);
        assert_eq!(r.keys(), *keys, "keys of {sql:?}: {r:?}");
        assert_eq!(r.problem, *problem, "problem of {sql:?}: {r:?}");
    }
}

#[test]
fn equality_literals_and_quoting() {
    check(&[
        ("SELECT * FROM t WHERE userid = 12345", &[int(12345)], None),
        (
            "SELECT * FROM t WHERE userid = '12345'",
            &[int(12345)],
            None,
        ),
        (
            "SELECT * FROM t WHERE userid = \"12345\"",
            &[int(12345)],
            None,
        ),
        ("SELECT * FROM t WHERE userid = '00123'", &[int(123)], None),
        ("SELECT * FROM t WHERE userid = 00123", &[int(123)], None),
        ("SELECT * FROM t WHERE userid = +7", &[int(7)], None),
        ("SELECT * FROM t WHERE userid = 0", &[int(0)], None),
        ("SELECT * FROM t WHERE userid = '000'", &[int(0)], None),
        ("SELECT * FROM t WHERE userid = 'abc'", &[text("abc")], None),
        ("SELECT * FROM t WHERE userid = ''", &[text("")], None),
        (
            "SELECT * FROM t WHERE userid = 'a-b_c@d'",
            &[text("a-b_c@d")],
            None,
        ),
        ("SELECT * FROM t WHERE userid <=> 9", &[int(9)], None),
        ("SELECT * FROM t WHERE userid=9", &[int(9)], None),
        ("select * from t where USERID = 9", &[int(9)], None),
        ("SELECT * FROM t WHERE owner_id = 3", &[int(3)], None),
        ("SELECT * FROM t WHERE 12345 = userid", &[int(12345)], None),
        (
            "SELECT * FROM t WHERE '77' = userid AND a = 1",
            &[int(77)],
            None,
        ),
        ("SELECT * FROM t WHERE ? = userid", &[param(0)], None),
        (
            "SELECT * FROM t WHERE userid = 18446744073709551615",
            &[int(u64::MAX)],
            None,
        ),
        (
            "SELECT * FROM t WHERE userid = 18446744073709551616",
            &[text("18446744073709551616")],
            None,
        ),
        (
            "SELECT * FROM t WHERE userid = '0018446744073709551616'",
            &[text("18446744073709551616")],
            None,
        ),
    ]);
}

#[test]
fn int_and_quoted_int_canonicalize_identically() {
    let a = sc("SELECT 1 FROM t WHERE userid = 12345");
    let b = sc("SELECT 1 FROM t WHERE userid = '12345'");
    let c = sc("SELECT 1 FROM t WHERE userid = '0012345'");
    let canon = |s: &Scan<'_>| {
        let mut buf = [0u8; 20];
        match s.keys()[0] {
            KeyRef::Literal(v) => v.canonical(&mut buf).to_vec(),
            KeyRef::Param(_) => panic!("param"),
        }
    };
    assert_eq!(canon(&a), b"12345");
    assert_eq!(canon(&a), canon(&b));
    assert_eq!(canon(&a), canon(&c));
    let mut buf = [0u8; 20];
    assert_eq!(KeyValue::Int(0).canonical(&mut buf), b"0");
    assert_eq!(
        KeyValue::Int(u64::MAX).canonical(&mut buf),
        b"18446744073709551615"
    );
    assert_eq!(KeyValue::Str(b"abc").canonical(&mut buf), b"abc");
}

#[test]
fn qualified_backticked_and_lookalike_columns() {
    check(&[
        ("SELECT * FROM t WHERE t.userid = 5", &[int(5)], None),
        ("SELECT * FROM t WHERE `userid` = 5", &[int(5)], None),
        ("SELECT * FROM t WHERE `t`.`userid` = 5", &[int(5)], None),
        ("SELECT * FROM d.t x WHERE d.x.userid = 5", &[int(5)], None),
        ("SELECT * FROM t u WHERE u.`UserId` = 5", &[int(5)], None),
        ("SELECT * FROM t WHERE parent_userid = 5", &[], None),
        ("SELECT * FROM t WHERE userid2 = 5", &[], None),
        ("SELECT * FROM t WHERE `user id` = 5", &[], None),
        ("SELECT * FROM t WHERE userid.x = 5", &[], None),
        ("SELECT * FROM t WHERE @userid = 5", &[], None),
        ("SELECT * FROM t WHERE @@userid = 5", &[], None),
        ("SELECT * FROM t WHERE userid(3) = 5", &[], None),
        // Key column in the select list, ORDER BY, GROUP BY, functions: neutral.
        (
            "SELECT userid, COUNT(userid) FROM t GROUP BY userid ORDER BY userid",
            &[],
            None,
        ),
        (
            "SELECT userid > 5 AS big FROM t WHERE userid = 3",
            &[int(3)],
            None,
        ),
        ("SELECT userid = 4 FROM t", &[], None),
    ]);
}

#[test]
fn strings_and_comments_never_count() {
    check(&[
        (
            "SELECT * FROM t WHERE name = 'userid = 5' AND userid = 7",
            &[int(7)],
            None,
        ),
        (
            "SELECT * FROM t WHERE name = \"userid = 5\" AND userid = 7",
            &[int(7)],
            None,
        ),
        (
            "SELECT * FROM t WHERE name = 'it''s userid = 5' AND userid = 7",
            &[int(7)],
            None,
        ),
        (
            "SELECT * FROM t WHERE name = 'a\\' userid = 5' AND userid = 7",
            &[int(7)],
            None,
        ),
        (
            "SELECT * FROM t WHERE a = 1 -- userid = 1\n AND userid = 7",
            &[int(7)],
            None,
        ),
        (
            "SELECT * FROM t WHERE a = 1 # userid = 3\n AND userid = 7",
            &[int(7)],
            None,
        ),
        (
            "SELECT * FROM t WHERE a = 1 /* userid = 2 */ AND userid = 7",
            &[int(7)],
            None,
        ),
        (
            "SELECT * FROM t WHERE a = 1 /* userid = 2 OR */ AND userid = 7",
            &[int(7)],
            None,
        ),
        (
            "SELECT * FROM t WHERE `userid = 5` = 1 AND userid = 7",
            &[int(7)],
            None,
        ),
        (
            "SELECT * FROM t WHERE a = 'x?' AND userid = ?",
            &[param(0)],
            None,
        ),
        ("SELECT * FROM t WHERE a = 1 -- userid = 1", &[], None),
        ("SELECT * FROM t WHERE a = 1 # userid = 1", &[], None),
        // `--` without a following space is two minus signs, not a comment.
        (
            "SELECT * FROM t WHERE userid = 5--1",
            &[],
            Some(P::NotConjunct),
        ),
        // Executable comments are SQL.
        (
            "SELECT * FROM t WHERE /*! userid = 5 AND */ a = 1",
            &[int(5)],
            None,
        ),
        (
            "SELECT * FROM t WHERE /*!50001 userid = 5 */",
            &[int(5)],
            None,
        ),
        (
            "SELECT * FROM t WHERE /*M!100100 userid = 5 */",
            &[int(5)],
            None,
        ),
        (
            "SELECT * FROM t WHERE a = 1 /*! OR b = 2 */ AND userid = 5",
            &[],
            Some(P::OrCondition),
        ),
    ]);
}

#[test]
fn conjunctions_and_or() {
    check(&[
        (
            "SELECT * FROM t WHERE userid = 5 AND a = 1",
            &[int(5)],
            None,
        ),
        (
            "SELECT * FROM t WHERE a = 1 AND userid = 5 AND b = 2",
            &[int(5)],
            None,
        ),
        ("SELECT * FROM t WHERE a = 1 && userid = 5", &[int(5)], None),
        ("SELECT * FROM t WHERE (userid = 5)", &[int(5)], None),
        (
            "SELECT * FROM t WHERE ((userid = 5) AND a)",
            &[int(5)],
            None,
        ),
        (
            "SELECT * FROM t WHERE a = 1 AND (b = 2 AND userid = 5)",
            &[int(5)],
            None,
        ),
        (
            "SELECT * FROM t WHERE userid = 5 AND (a = 1 OR b = 2)",
            &[int(5)],
            None,
        ),
        (
            "SELECT * FROM t WHERE (a OR b) AND userid = 5",
            &[int(5)],
            None,
        ),
        (
            "SELECT * FROM t WHERE userid = 5 AND f(a OR b)",
            &[int(5)],
            None,
        ),
        (
            "SELECT * FROM t WHERE a BETWEEN 1 AND 5 AND userid = 3",
            &[int(3)],
            None,
        ),
        (
            "SELECT * FROM t WHERE userid = 5 OR a = 1",
            &[],
            Some(P::OrCondition),
        ),
        (
            "SELECT * FROM t WHERE a = 1 OR userid = 5",
            &[],
            Some(P::OrCondition),
        ),
        (
            "SELECT * FROM t WHERE a = 1 || userid = 5",
            &[],
            Some(P::OrCondition),
        ),
        (
            "SELECT * FROM t WHERE userid = 5 XOR a",
            &[],
            Some(P::OrCondition),
        ),
        (
            "SELECT * FROM t WHERE (userid = 5 AND a) OR b",
            &[],
            Some(P::OrCondition),
        ),
        (
            "SELECT * FROM t WHERE a OR (userid = 5 AND b)",
            &[],
            Some(P::OrCondition),
        ),
        (
            "SELECT * FROM t WHERE userid = 5 OR userid = 6",
            &[],
            Some(P::OrCondition),
        ),
        ("SELECT a OR b FROM t WHERE userid = 5", &[int(5)], None),
        (
            "SELECT * FROM t WHERE userid = 5 ORDER BY a OR b",
            &[int(5)],
            None,
        ),
        (
            "SELECT * FROM t WHERE userid = 5 AND userid = 5",
            &[int(5)],
            None,
        ),
        (
            "SELECT * FROM t WHERE userid = 5 AND userid = 6",
            &[int(5), int(6)],
            None,
        ),
        // Not a top-level conjunct.
        (
            "SELECT * FROM t WHERE NOT userid = 5",
            &[],
            Some(P::NotConjunct),
        ),
        (
            "SELECT * FROM t WHERE NOT (userid = 5)",
            &[],
            Some(P::NotConjunct),
        ),
        (
            "SELECT * FROM t WHERE !(userid = 5)",
            &[],
            Some(P::NotConjunct),
        ),
        (
            "SELECT * FROM t WHERE (userid = 5) = 0",
            &[],
            Some(P::NotConjunct),
        ),
        (
            "SELECT * FROM t WHERE (userid = 5) IS NOT TRUE",
            &[],
            Some(P::NotConjunct),
        ),
        (
            "SELECT * FROM t WHERE userid = 5 IS NOT NULL",
            &[],
            Some(P::NotConjunct),
        ),
        (
            "SELECT * FROM t WHERE userid = 5 = 0",
            &[],
            Some(P::NotConjunct),
        ),
        (
            "SELECT * FROM t WHERE a = 5 = userid",
            &[],
            Some(P::NotConjunct),
        ),
        (
            "SELECT * FROM t WHERE IF(userid = 5, 1, 0)",
            &[],
            Some(P::NotConjunct),
        ),
        (
            "SELECT * FROM t WHERE CASE WHEN a AND userid = 5 AND b THEN 1 END",
            &[],
            Some(P::NotConjunct),
        ),
        (
            "SELECT * FROM t WHERE (userid = 5, a) = (1, 2)",
            &[],
            Some(P::NotConjunct),
        ),
        (
            "SELECT * FROM t WHERE userid = '5' COLLATE utf8mb4_bin",
            &[],
            Some(P::NotConjunct),
        ),
        (
            "SELECT * FROM t WHERE userid = 5 + 1",
            &[],
            Some(P::NotConjunct),
        ),
        (
            "SELECT * FROM t WHERE a BETWEEN 1 AND userid = 5",
            &[],
            Some(P::NotConjunct),
        ),
    ]);
}

#[test]
fn non_equality_and_non_literals() {
    check(&[
        (
            "SELECT * FROM t WHERE userid > 5",
            &[],
            Some(P::NonEquality),
        ),
        (
            "SELECT * FROM t WHERE userid >= 5",
            &[],
            Some(P::NonEquality),
        ),
        (
            "SELECT * FROM t WHERE userid < 5",
            &[],
            Some(P::NonEquality),
        ),
        (
            "SELECT * FROM t WHERE userid <= 5",
            &[],
            Some(P::NonEquality),
        ),
        (
            "SELECT * FROM t WHERE userid <> 5",
            &[],
            Some(P::NonEquality),
        ),
        (
            "SELECT * FROM t WHERE userid != 5",
            &[],
            Some(P::NonEquality),
        ),
        (
            "SELECT * FROM t WHERE userid LIKE '5%'",
            &[],
            Some(P::NonEquality),
        ),
        (
            "SELECT * FROM t WHERE userid BETWEEN 1 AND 5",
            &[],
            Some(P::NonEquality),
        ),
        (
            "SELECT * FROM t WHERE userid IS NULL",
            &[],
            Some(P::NonEquality),
        ),
        (
            "SELECT * FROM t WHERE userid IS NOT NULL",
            &[],
            Some(P::NonEquality),
        ),
        (
            "SELECT * FROM t WHERE userid NOT IN (1, 2)",
            &[],
            Some(P::NonEquality),
        ),
        (
            "SELECT * FROM t WHERE userid REGEXP '^1'",
            &[],
            Some(P::NonEquality),
        ),
        (
            "SELECT * FROM t WHERE 5 < userid",
            &[],
            Some(P::NonEquality),
        ),
        (
            "SELECT * FROM t WHERE userid = 5 AND userid < 9",
            &[int(5)],
            Some(P::NonEquality),
        ),
        (
            "SELECT * FROM t WHERE userid = other_col",
            &[],
            Some(P::NotALiteral),
        ),
        (
            "SELECT * FROM t WHERE other_col = userid",
            &[],
            Some(P::NotALiteral),
        ),
        (
            "SELECT * FROM t WHERE userid = f(5)",
            &[],
            Some(P::NotALiteral),
        ),
        (
            "SELECT * FROM t WHERE userid = (SELECT u FROM v)",
            &[],
            Some(P::NotALiteral),
        ),
        (
            "SELECT * FROM t WHERE userid = @v",
            &[],
            Some(P::NotALiteral),
        ),
        (
            "SELECT * FROM t WHERE userid = X'31'",
            &[],
            Some(P::NotALiteral),
        ),
        (
            "SELECT * FROM t WHERE userid = _utf8mb4'31'",
            &[],
            Some(P::NotALiteral),
        ),
        (
            "SELECT * FROM t WHERE userid IN (SELECT u FROM v)",
            &[],
            Some(P::NotALiteral),
        ),
        (
            "SELECT * FROM t WHERE userid IN (1, a)",
            &[],
            Some(P::NotALiteral),
        ),
        (
            "SELECT * FROM t WHERE userid = .5",
            &[],
            Some(P::NotALiteral),
        ),
        // Unsupported literals.
        (
            "SELECT * FROM t WHERE userid = -5",
            &[],
            Some(P::UnsupportedLiteral),
        ),
        (
            "SELECT * FROM t WHERE userid = 1.5",
            &[],
            Some(P::UnsupportedLiteral),
        ),
        (
            "SELECT * FROM t WHERE userid = 1e3",
            &[],
            Some(P::UnsupportedLiteral),
        ),
        (
            "SELECT * FROM t WHERE userid = 0x1F",
            &[],
            Some(P::UnsupportedLiteral),
        ),
        (
            "SELECT * FROM t WHERE userid = NULL",
            &[],
            Some(P::UnsupportedLiteral),
        ),
        (
            "SELECT * FROM t WHERE userid = TRUE",
            &[],
            Some(P::UnsupportedLiteral),
        ),
        (
            "SELECT * FROM t WHERE userid = '5.0'",
            &[],
            Some(P::UnsupportedLiteral),
        ),
        (
            "SELECT * FROM t WHERE userid = '-5'",
            &[],
            Some(P::UnsupportedLiteral),
        ),
        (
            "SELECT * FROM t WHERE userid = ' 5'",
            &[],
            Some(P::UnsupportedLiteral),
        ),
        (
            "SELECT * FROM t WHERE userid = '5 '",
            &[],
            Some(P::UnsupportedLiteral),
        ),
        (
            "SELECT * FROM t WHERE userid = '1e3'",
            &[],
            Some(P::UnsupportedLiteral),
        ),
        (
            "SELECT * FROM t WHERE userid IN (1, -2)",
            &[],
            Some(P::UnsupportedLiteral),
        ),
        (
            "SELECT * FROM t WHERE -5 = userid",
            &[],
            Some(P::NotConjunct),
        ),
        // Escaped strings.
        (
            "SELECT * FROM t WHERE userid = 'a\\'b'",
            &[],
            Some(P::EscapedString),
        ),
        (
            "SELECT * FROM t WHERE userid = 'a''b'",
            &[],
            Some(P::EscapedString),
        ),
        (
            "SELECT * FROM t WHERE userid = 'a\\nb'",
            &[],
            Some(P::EscapedString),
        ),
        (
            "SELECT * FROM t WHERE 'a''b' = userid",
            &[],
            Some(P::EscapedString),
        ),
        // Join conditions between key columns are neither.
        (
            "SELECT * FROM a JOIN b ON a.userid = b.userid WHERE a.userid = 5",
            &[int(5)],
            None,
        ),
    ]);
}

#[test]
fn in_lists() {
    check(&[
        ("SELECT * FROM t WHERE userid IN (5)", &[int(5)], None),
        ("SELECT * FROM t WHERE userid IN ('5')", &[int(5)], None),
        (
            "SELECT * FROM t WHERE userid IN (5, '6', 'x')",
            &[int(5), int(6), text("x")],
            None,
        ),
        ("SELECT * FROM t WHERE userid IN (5, 5, 5)", &[int(5)], None),
        (
            "SELECT * FROM t WHERE a = ? AND userid IN (?, ?) AND b = ?",
            &[param(1), param(2)],
            None,
        ),
        (
            "SELECT * FROM t WHERE userid in(7) AND a = 1",
            &[int(7)],
            None,
        ),
        (
            "SELECT * FROM t WHERE userid IN (5) OR a",
            &[],
            Some(P::OrCondition),
        ),
        (
            "SELECT * FROM t WHERE NOT userid IN (5)",
            &[],
            Some(P::NotConjunct),
        ),
        (
            "SELECT * FROM t WHERE userid IN ()",
            &[],
            Some(P::NotALiteral),
        ),
        (
            "SELECT * FROM t WHERE userid IN (1, 2",
            &[],
            Some(P::NotALiteral),
        ),
    ]);
    let many: String = (0..20).map(|i| i.to_string()).collect::<Vec<_>>().join(",");
    let sql = format!("SELECT * FROM t WHERE userid IN ({many})");
    let r = sc(&sql);
    assert_eq!(r.keys().len(), MAX_KEYS);
    assert_eq!(r.problem, Some(P::TooManyKeys));
}

#[test]
fn placeholders() {
    let r = sc("SELECT * FROM t WHERE a = ? AND userid = ? AND b IN (?, ?) LIMIT ?");
    assert_eq!(r.keys(), &[param(1)]);
    assert_eq!(r.placeholders, 5);
    let r = sc("SELECT '?', \"?\", `?` FROM t /* ? */ WHERE userid = ? -- ?\n AND c = ?");
    assert_eq!(r.keys(), &[param(0)]);
    assert_eq!(r.placeholders, 2);
    let r = sc("INSERT INTO t (a, userid, b) VALUES (?, ?, ?), (?, ?, ?)");
    assert_eq!(r.keys(), &[param(1), param(4)]);
    assert_eq!(r.placeholders, 6);
    let r = sc("UPDATE t SET a = ? WHERE userid = ?");
    assert_eq!(r.keys(), &[param(1)]);
    assert_eq!(r.placeholders, 2);
    let r = sc("SELECT 1");
    assert_eq!(r.placeholders, 0);
}

#[test]
fn inserts() {
    check(&[
        ("INSERT INTO t (userid, a) VALUES (5, 'x')", &[int(5)], None),
        ("INSERT INTO t (a, userid) VALUES ('x', '6')", &[int(6)], None),
        ("INSERT INTO t (a, `userid`, b) VALUES (NOW(), 7, CONCAT('a', 'b'))", &[int(7)], None),
        (
            "INSERT INTO t (a, userid, b) VALUES (CONCAT('a,b', f(1, 2)), 7, 'c)'), (g((1), 2), 7, 3), (1, 8, 3)",
            &[int(7), int(8)],
            None,
        ),
        ("INSERT INTO t (userid) VALUES (1), (2), (3)", &[int(1), int(2), int(3)], None),
        ("INSERT INTO t (userid) VALUE (1)", &[int(1)], None),
        ("INSERT INTO t (userid) VALUES ROW(1), ROW(2)", &[int(1), int(2)], None),
        ("INSERT IGNORE INTO db.t (userid) VALUES (1)", &[int(1)], None),
        ("INSERT LOW_PRIORITY t (userid) VALUES (1)", &[int(1)], None),
        ("INSERT INTO t PARTITION (p0) (a, userid) VALUES (1, 2)", &[int(2)], None),
        ("REPLACE INTO t (userid, a) VALUES (5, 1)", &[int(5)], None),
        ("REPLACE t (userid, a) VALUES (5, 1)", &[int(5)], None),
        ("INSERT INTO t SET userid = 5, a = 1", &[int(5)], None),
        ("INSERT INTO t SET a = 1, userid = '5'", &[int(5)], None),
        ("INSERT INTO t SET a = 1, userid = ?", &[param(0)], None),
        ("INSERT INTO t (a, b) VALUES (1, 2)", &[], None),
        ("INSERT INTO t () VALUES ()", &[], None),
        (
            "INSERT INTO t (userid, n) VALUES (5, 1) ON DUPLICATE KEY UPDATE n = n + 1",
            &[int(5)],
            None,
        ),
        (
            "INSERT INTO t (userid, n) VALUES (5, 1) AS new(u, m) ON DUPLICATE KEY UPDATE n = new.m",
            &[int(5)],
            None,
        ),
        (
            "INSERT INTO t (userid, n) VALUES (5, 1) ON DUPLICATE KEY UPDATE userid = VALUES(userid)",
            &[int(5)],
            Some(P::KeyAssignment),
        ),
        ("INSERT INTO t VALUES (5, 1)", &[], Some(P::InsertWithoutColumns)),
        ("INSERT t VALUES (5, 1)", &[], Some(P::InsertWithoutColumns)),
        ("INSERT INTO t (userid, a) SELECT userid, a FROM u WHERE userid = 5", &[int(5)], Some(P::InsertSelect)),
        ("INSERT INTO t SELECT * FROM u", &[], Some(P::InsertSelect)),
        ("INSERT INTO t (SELECT * FROM u)", &[], Some(P::InsertSelect)),
        ("INSERT INTO t (a) (SELECT a FROM u)", &[], Some(P::InsertSelect)),
        ("INSERT INTO t TABLE u", &[], Some(P::InsertSelect)),
        ("INSERT INTO t (userid) VALUES (5 + 1)", &[], Some(P::NotALiteral)),
        ("INSERT INTO t (userid) VALUES (f(5))", &[], Some(P::NotALiteral)),
        ("INSERT INTO t (userid) VALUES ((SELECT 1))", &[], Some(P::NotALiteral)),
        ("INSERT INTO t (userid) VALUES (NULL)", &[], Some(P::UnsupportedLiteral)),
        ("INSERT INTO t (userid) VALUES (DEFAULT)", &[], Some(P::UnsupportedLiteral)),
        ("INSERT INTO t (userid) VALUES (-1)", &[], Some(P::UnsupportedLiteral)),
        ("INSERT INTO t (userid) VALUES ('a\\'b')", &[], Some(P::EscapedString)),
        ("INSERT INTO t (a, userid) VALUES (1)", &[], Some(P::MalformedInsert)),
        ("INSERT INTO t (userid) VALUES ()", &[], Some(P::MalformedInsert)),
        ("INSERT INTO t SET userid = userid + 1", &[], Some(P::NotALiteral)),
    ]);
    let rows: String = (0..40)
        .map(|i| format!("({}, 'x')", i % 3))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!("INSERT INTO t (userid, a) VALUES {rows}");
    assert_eq!(sc(&sql).keys(), &[int(0), int(1), int(2)]);
    let rows: String = (0..20).map(|_| "(?, 'x')").collect::<Vec<_>>().join(", ");
    let sql = format!("INSERT INTO t (userid, a) VALUES {rows}");
    assert_eq!(sc(&sql).problem, Some(P::TooManyKeys));
}

#[test]
fn updates_and_deletes() {
    check(&[
        ("UPDATE t SET a = 1 WHERE userid = 5", &[int(5)], None),
        (
            "UPDATE t SET a = 1, b = 'userid = 3' WHERE userid = 5 LIMIT 1",
            &[int(5)],
            None,
        ),
        (
            "UPDATE t SET a = userid + 1 WHERE userid = 5",
            &[int(5)],
            None,
        ),
        (
            "UPDATE t SET a = (b = 1 AND userid = 2) WHERE userid = 5",
            &[int(5)],
            None,
        ),
        (
            "UPDATE t SET userid = 6 WHERE userid = 5",
            &[int(5)],
            Some(P::KeyAssignment),
        ),
        (
            "UPDATE t SET a = 1, t.userid = 6 WHERE userid = 5",
            &[int(5)],
            Some(P::KeyAssignment),
        ),
        ("UPDATE t SET a = 1", &[], None),
        (
            "UPDATE a JOIN b ON b.id = a.id AND b.userid = 5 SET a.x = 1 WHERE a.userid = 5",
            &[int(5)],
            None,
        ),
        (
            "UPDATE LOW_PRIORITY IGNORE t SET a = 1 WHERE userid = 5",
            &[int(5)],
            None,
        ),
        ("DELETE FROM t WHERE userid = 5", &[int(5)], None),
        (
            "DELETE FROM t WHERE userid = 5 ORDER BY id LIMIT 10",
            &[int(5)],
            None,
        ),
        (
            "DELETE t1 FROM t1 JOIN t2 ON t1.id = t2.id WHERE t1.userid = 5",
            &[int(5)],
            None,
        ),
        ("DELETE FROM t WHERE userid > 5", &[], Some(P::NonEquality)),
        (
            "SELECT * FROM t WHERE userid = 5 FOR UPDATE",
            &[int(5)],
            None,
        ),
        (
            "SELECT * FROM t WHERE userid = 5 LOCK IN SHARE MODE",
            &[int(5)],
            None,
        ),
        (
            "SELECT * FROM t WHERE userid = 5 FOR SHARE NOWAIT",
            &[int(5)],
            None,
        ),
    ]);
}

#[test]
fn clauses_joins_subqueries() {
    check(&[
        (
            "SELECT * FROM a JOIN b ON b.userid = 5 AND a.id = b.id",
            &[int(5)],
            None,
        ),
        (
            "SELECT * FROM a JOIN b ON b.userid = 5, c WHERE c.x = 1",
            &[int(5)],
            None,
        ),
        (
            "SELECT a, COUNT(*) FROM t GROUP BY a HAVING userid = 5",
            &[int(5)],
            None,
        ),
        (
            "SELECT * FROM (SELECT * FROM t WHERE userid = 5) x",
            &[int(5)],
            None,
        ),
        (
            "SELECT * FROM t WHERE a IN (SELECT b FROM u WHERE userid = 5) AND userid = 5",
            &[int(5)],
            None,
        ),
        (
            "SELECT * FROM t WHERE userid = 5 UNION ALL SELECT * FROM u WHERE userid = 5",
            &[int(5)],
            None,
        ),
        (
            "(SELECT * FROM t WHERE userid = 5) UNION (SELECT * FROM u WHERE userid = 6)",
            &[int(5), int(6)],
            None,
        ),
        (
            "WITH c AS (SELECT * FROM t WHERE userid = 5) SELECT * FROM c",
            &[int(5)],
            None,
        ),
        (
            "SELECT * FROM t WHERE userid = 5 AND EXISTS (SELECT 1 FROM u WHERE a OR b)",
            &[int(5)],
            None,
        ),
        (
            "SELECT * FROM t WHERE EXISTS (SELECT 1 FROM u WHERE userid = 5) OR a",
            &[],
            Some(P::OrCondition),
        ),
        (
            "SELECT * FROM t WHERE userid = 5 LIMIT 1; SELECT 2",
            &[int(5)],
            None,
        ),
        (
            "SELECT EXTRACT(YEAR FROM d) FROM t WHERE userid = 5",
            &[int(5)],
            None,
        ),
        (
            "SELECT CASE WHEN x THEN 1 ELSE 2 END FROM t WHERE userid = 5",
            &[int(5)],
            None,
        ),
        (
            "SELECT * FROM t WHERE CASE WHEN x THEN 1 END = 1 AND userid = 5",
            &[int(5)],
            None,
        ),
        (
            "SELECT * FROM t WHERE userid = 5 AND a = (SELECT MAX(b) FROM u WHERE c = 1)",
            &[int(5)],
            None,
        ),
        (
            "SELECT * FROM t WHERE userid = 5 AND (a, b) IN ((1, 2), (3, 4))",
            &[int(5)],
            None,
        ),
        ("SELECT 1", &[], None),
        ("SELECT @@version", &[], None),
        ("SET NAMES utf8mb4", &[], None),
        ("SELECT * FROM t", &[], None),
    ]);
}

#[test]
fn temporary_tables_are_recognised_after_comments() {
    for sql in [
        "CREATE TEMPORARY TABLE t (a INT)",
        "/* note */ create temporary table t (a INT)",
        "CREATE OR REPLACE TEMPORARY TABLE t (a INT)",
        "DROP TEMPORARY TABLE IF EXISTS t",
    ] {
        assert!(sc(sql).temporary, "{sql}");
    }
    for sql in [
        "CREATE TABLE t (a INT)",
        "CREATE TABLE temporary_x (a INT)",
        "SELECT * FROM t",
    ] {
        assert!(!sc(sql).temporary, "{sql}");
    }
}

#[test]
fn every_union_branch_needs_its_key() {
    for sql in [
        "SELECT a FROM posts WHERE userid = 5 UNION SELECT a FROM messages",
        "SELECT a FROM posts UNION ALL SELECT a FROM messages WHERE userid = 5",
        "(SELECT a FROM posts WHERE userid = 5) UNION (SELECT a FROM messages)",
        "SELECT * FROM (SELECT a FROM posts WHERE userid = 5 EXCEPT SELECT a FROM m) d",
        "SELECT a FROM t WHERE userid = 5 INTERSECT SELECT a FROM m",
    ] {
        assert_eq!(sc(sql).problem, Some(KeyProblem::KeylessBranch), "{sql}");
    }
    for sql in [
        "SELECT a FROM posts WHERE userid = 5 UNION SELECT a FROM messages WHERE userid = 5",
        "(SELECT a FROM posts WHERE userid = 5) UNION (SELECT a FROM m WHERE userid = 5)",
        "SELECT a FROM posts WHERE userid = 5 UNION SELECT 1",
        "SELECT a FROM posts WHERE userid = 5 AND b IN (SELECT b FROM m)",
    ] {
        assert_eq!(sc(sql).problem, None, "{sql}");
    }
}

#[test]
fn hints() {
    let cases: &[(&str, &[KeyRef<'_>])] = &[
        ("/* userid=123 */ SELECT * FROM t", &[int(123)]),
        ("/*userid = '123'*/ SELECT 1", &[int(123)]),
        ("/* USERID = 'abc' */ SELECT 1", &[text("abc")]),
        ("  /* owner_id=9 */SELECT 1", &[int(9)]),
        // Visible keys stay after the hint's: routing refuses a contradiction.
        (
            "/* userid=5 */ SELECT * FROM t WHERE userid = 6",
            &[int(5), int(6)],
        ),
        (
            "/* userid=5 */ SELECT * FROM t WHERE userid > 6 OR a",
            &[int(5)],
        ),
        ("-- note\n/* userid=5 */ SELECT 1", &[int(5)]),
        ("/* app=web */ /* userid=5 */ SELECT 1", &[int(5)]),
    ];
    for (sql, keys) in cases {
        let r = sc(sql);
        assert!(r.from_hint, "{sql}: {r:?}");
        assert_eq!(r.keys(), *keys, "{sql}: {r:?}");
        assert_eq!(r.problem, None, "{sql}: {r:?}");
    }
    // Not hints.
    for sql in [
        "SELECT /* userid=5 */ * FROM t",
        "/* userid */ SELECT 1",
        "/* user=5 */ SELECT 1",
        "/* parent_userid=5 */ SELECT 1",
        "/*! userid=5 */ SELECT 1",
        "/*+ MAX_EXECUTION_TIME(1) */ SELECT 1",
    ] {
        let r = sc(sql);
        assert!(!r.from_hint, "{sql}: {r:?}");
        assert_eq!(r.keys(), &[], "{sql}: {r:?}");
    }
    for sql in [
        "/* userid=abc */ SELECT 1",
        "/* userid=5, x=1 */ SELECT 1",
        "/* userid = -5 */ SELECT 1",
        "/* userid='a\\'b' */ SELECT 1",
        "/* userid='a''b' */ SELECT 1",
        "/* userid= */ SELECT * FROM t WHERE userid = 5",
    ] {
        let r = sc(sql);
        assert!(!r.from_hint, "{sql}: {r:?}");
        assert_eq!(r.problem, Some(P::MalformedHint), "{sql}: {r:?}");
    }
    let r = sc("/* userid=5 */ SELECT * FROM a JOIN b ON a.x = b.x WHERE b.y = ?");
    assert_eq!(r.placeholders, 1);
    assert_eq!(r.tables(), &[b"a".as_slice(), b"b"]);
}

#[test]
fn unterminated_and_too_complex() {
    check(&[
        (
            "SELECT * FROM t WHERE userid = 5 AND a = 'x",
            &[int(5)],
            Some(P::Unterminated),
        ),
        (
            "SELECT * FROM t WHERE userid = 5 AND a = \"x",
            &[int(5)],
            Some(P::Unterminated),
        ),
        (
            "SELECT * FROM t WHERE userid = 5 AND `a = 1",
            &[int(5)],
            Some(P::Unterminated),
        ),
        (
            "SELECT * FROM t WHERE userid = 5 /* x",
            &[int(5)],
            Some(P::Unterminated),
        ),
        ("/* userid=5 SELECT 1", &[], Some(P::Unterminated)),
        (
            "SELECT * FROM t WHERE userid = 5 /*! AND a = 1",
            &[int(5)],
            Some(P::Unterminated),
        ),
        (
            "SELECT * FROM t WHERE userid = 'abc\\",
            &[],
            Some(P::Unterminated),
        ),
        ("SELECT * FROM t WHERE a = @'x", &[], Some(P::Unterminated)),
    ]);
    let deep = format!(
        "SELECT * FROM t WHERE {}userid = 5{}",
        "(".repeat(40),
        ")".repeat(40)
    );
    assert_eq!(sc(&deep).problem, Some(P::TooComplex));
    let ok = format!(
        "SELECT * FROM t WHERE {}userid = 5{}",
        "(".repeat(20),
        ")".repeat(20)
    );
    assert_eq!(sc(&ok).keys(), &[int(5)]);
    let hinted = format!(
        "/* userid=1 */ SELECT {}1{}",
        "(".repeat(100),
        ")".repeat(100)
    );
    let r = sc(&hinted);
    assert_eq!((r.keys(), r.problem), (&[int(1)][..], None));
}

#[test]
fn statement_kinds() {
    let cases = [
        ("SELECT 1", K::Select),
        ("  (SELECT 1) UNION (SELECT 2)", K::Select),
        ("/* c */ -- x\n select 1", K::Select),
        ("WITH c AS (SELECT 1) SELECT * FROM c", K::Select),
        (
            "WITH c AS (SELECT 1) DELETE FROM t WHERE userid = 1",
            K::Delete,
        ),
        ("WITH c AS (SELECT 1) UPDATE t SET a = 1", K::Update),
        ("TABLE t", K::Select),
        ("INSERT INTO t (a) VALUES (1)", K::Insert),
        ("REPLACE INTO t (a) VALUES (1)", K::Replace),
        ("UPDATE t SET a = 1", K::Update),
        ("DELETE FROM t", K::Delete),
        ("SET autocommit = 0", K::Set),
        ("SHOW TABLES", K::Show),
        ("USE db", K::Use),
        ("BEGIN", K::Begin),
        ("START TRANSACTION READ ONLY", K::Begin),
        ("START SLAVE", K::Other),
        ("COMMIT", K::Commit),
        ("ROLLBACK", K::Rollback),
        ("ROLLBACK WORK TO SAVEPOINT s", K::Savepoint),
        ("ROLLBACK TO s", K::Savepoint),
        ("SAVEPOINT s", K::Savepoint),
        ("RELEASE SAVEPOINT s", K::Savepoint),
        ("CREATE TABLE t (a INT)", K::Ddl),
        ("ALTER TABLE t ADD b INT", K::Ddl),
        ("DROP TABLE t", K::Ddl),
        ("TRUNCATE TABLE t", K::Ddl),
        ("RENAME TABLE a TO b", K::Ddl),
        ("CALL p(1)", K::Call),
        ("DO SLEEP(1)", K::Do),
        ("LOAD DATA INFILE 'f' INTO TABLE t", K::Load),
        ("LOCK TABLES t READ", K::Lock),
        ("UNLOCK TABLES", K::Lock),
        ("EXPLAIN SELECT * FROM t WHERE userid = 1", K::Explain),
        ("DESCRIBE t", K::Explain),
        ("desc t", K::Explain),
        ("KILL QUERY 5", K::Kill),
        ("GRANT SELECT ON *.* TO u", K::Other),
        ("XA START 'x'", K::Other),
        ("", K::Other),
        ("  ", K::Other),
    ];
    for (sql, kind) in cases {
        assert_eq!(sc(sql).kind, kind, "{sql}");
    }
    assert_eq!(
        sc("EXPLAIN SELECT * FROM t WHERE userid = 1").keys(),
        &[int(1)]
    );
    assert_eq!(
        sc("EXPLAIN UPDATE t SET a = 1 WHERE userid = 2").keys(),
        &[int(2)]
    );
    let r = sc("SELECT 1; UPDATE t SET userid = 2");
    assert_eq!(
        (r.kind, r.multi_statement, r.problem),
        (K::Select, true, Some(P::KeyAssignment))
    );
    let r = sc("SELECT 1;  ");
    assert!(!r.multi_statement);
}

fn tables(sql: &str) -> Vec<String> {
    sc(sql)
        .tables()
        .iter()
        .map(|t| String::from_utf8_lossy(t).into_owned())
        .collect()
}

#[test]
fn table_names() {
    let cases: &[(&str, &[&str])] = &[
        ("SELECT * FROM users WHERE userid = 1", &["users"]),
        ("SELECT * FROM users u WHERE u.userid = 1", &["users"]),
        ("SELECT * FROM users AS u, posts p WHERE 1", &["users", "posts"]),
        ("SELECT * FROM db.users", &["users"]),
        ("SELECT * FROM `db`.`my table` x", &["my table"]),
        (
            "SELECT * FROM a LEFT JOIN b ON a.id = b.id INNER JOIN c USING (id) CROSS JOIN d NATURAL JOIN e STRAIGHT_JOIN f",
            &["a", "b", "c", "d", "e", "f"],
        ),
        ("SELECT * FROM a JOIN b ON a.x = b.x, c", &["a", "b", "c"]),
        ("SELECT * FROM (SELECT * FROM inner_t) x JOIN y ON 1", &["inner_t", "y"]),
        ("SELECT * FROM (a JOIN b ON a.x = b.x)", &["a", "b"]),
        ("SELECT * FROM t1 USE INDEX (i1) JOIN t2 FORCE INDEX (i2) ON 1", &["t1", "t2"]),
        ("SELECT * FROM t PARTITION (p0) x WHERE 1", &["t"]),
        ("SELECT * FROM t WHERE a IN (SELECT b FROM u)", &["t", "u"]),
        ("SELECT EXTRACT(YEAR FROM d), TRIM(BOTH 'x' FROM s) FROM t", &["t"]),
        ("SELECT 1 FROM t1 UNION SELECT 2 FROM t2", &["t1", "t2"]),
        ("INSERT INTO t (a) VALUES (1)", &["t"]),
        ("INSERT IGNORE INTO db.t (a) SELECT a FROM u", &["t", "u"]),
        ("INSERT t SET a = 1", &["t"]),
        ("REPLACE INTO t (a) VALUES (1)", &["t"]),
        ("UPDATE t SET a = 1 WHERE b = 2", &["t"]),
        ("UPDATE t1 AS a, t2 b SET a.x = b.x", &["t1", "t2"]),
        ("UPDATE t1 JOIN t2 ON t1.id = t2.id SET t1.x = 1", &["t1", "t2"]),
        ("DELETE FROM t WHERE a = 1", &["t"]),
        ("DELETE t1, t2 FROM t1 JOIN t2 ON t1.id = t2.id", &["t1", "t2"]),
        ("DELETE FROM t1 USING t1 JOIN t2 ON t1.id = t2.id", &["t1", "t2"]),
        ("TRUNCATE TABLE t", &["t"]),
        ("TRUNCATE t", &["t"]),
        ("LOCK TABLES t1 READ, t2 AS x WRITE, t3 LOW_PRIORITY WRITE", &["t1", "t2", "t3"]),
        ("DROP TABLE IF EXISTS a, b", &["a", "b"]),
        ("CREATE TABLE IF NOT EXISTS t (userid BIGINT, a INT)", &["t"]),
        ("RENAME TABLE a TO b", &["a", "b"]),
        ("DESCRIBE t", &["t"]),
        ("TABLE t", &["t"]),
        ("SELECT * FROM t1, t1", &["t1"]),
        ("SELECT * FROM start JOIN `value` ON 1", &["start", "value"]),
        ("SELECT 1", &[]),
        ("SELECT 'FROM x' FROM t -- FROM y", &["t"]),
    ];
    for (sql, want) in cases {
        assert_eq!(tables(sql), *want, "{sql}");
    }
    let r = sc("SELECT * FROM a, b, c, d, e, f, g, h, i, j");
    assert_eq!(r.tables().len(), MAX_TABLES);
    assert!(r.tables_truncated);
}

#[test]
fn problem_messages_are_distinct_and_helpful() {
    let all = [
        P::NonEquality,
        P::NotALiteral,
        P::UnsupportedLiteral,
        P::NotConjunct,
        P::OrCondition,
        P::KeyAssignment,
        P::InsertWithoutColumns,
        P::InsertSelect,
        P::MalformedInsert,
        P::EscapedString,
        P::TooManyKeys,
        P::Unterminated,
        P::MalformedHint,
        P::TooComplex,
    ];
    for (i, a) in all.iter().enumerate() {
        assert!(a.message().len() > 30, "{a:?}");
        assert_eq!(a.to_string(), a.message());
        for b in &all[i + 1..] {
            assert_ne!(a.message(), b.message());
        }
    }
}

#[test]
fn every_keyword_is_found_in_any_case() {
    assert!(KW_TEXT.len() < usize::from(NO_KW));
    for (i, text) in KW_TEXT.iter().enumerate() {
        assert_eq!(
            keyword(text),
            Some(KW_ALL[i]),
            "{}",
            String::from_utf8_lossy(text)
        );
        let upper = text.to_ascii_uppercase();
        assert_eq!(keyword(&upper), Some(KW_ALL[i]));
    }
    for w in [
        &b"selec"[..],
        b"selects",
        b"userid",
        b"a",
        b"",
        b"x_y",
        b"s\xe9lect",
    ] {
        assert_eq!(keyword(w), None);
    }
}

#[test]
fn key_columns() {
    let c = KeyColumns::new([" UserID ", "", "tenant"]);
    assert!(c.contains(b"userid"));
    assert!(c.contains(b"USERID"));
    assert!(c.contains(b"Tenant"));
    assert!(!c.contains(b"user"));
    assert!(!c.contains(b""));
    let none = KeyColumns::new(Vec::<String>::new());
    assert_eq!(
        checked_scan(b"SELECT * FROM t WHERE userid = 1", &none).keys(),
        &[]
    );
}

use crate::test_rng::Rng;

#[test]
fn random_input_never_panics() {
    const PIECES: &[&[u8]] = &[
        b"SELECT ",
        b"INSERT ",
        b"INTO ",
        b"VALUES ",
        b"VALUE ",
        b"UPDATE ",
        b"SET ",
        b"DELETE ",
        b"FROM ",
        b"WHERE ",
        b"JOIN ",
        b"ON ",
        b"AND ",
        b"OR ",
        b"NOT ",
        b"IN ",
        b"IS ",
        b"NULL ",
        b"BETWEEN ",
        b"CASE ",
        b"WHEN ",
        b"THEN ",
        b"END ",
        b"WITH ",
        b"AS ",
        b"UNION ",
        b"HAVING ",
        b"DUPLICATE KEY ",
        b"TABLE ",
        b"LOCK TABLES ",
        b"EXPLAIN ",
        b"USING ",
        b"PARTITION ",
        b"ROW",
        b"userid",
        b"t.userid",
        b"`userid`",
        b"parent_userid",
        b" ",
        b"\n",
        b"\t",
        b"'",
        b"\"",
        b"`",
        b"\\",
        b"''",
        b"/*",
        b"*/",
        b"/*!",
        b"/*M!",
        b"--",
        b"-- ",
        b"#",
        b"?",
        b"(",
        b")",
        b",",
        b".",
        b";",
        b"=",
        b"<=>",
        b"<",
        b">",
        b"!=",
        b"||",
        b"&&",
        b"+",
        b"-",
        b"@",
        b"@@",
        b"0",
        b"5",
        b"12345",
        b"18446744073709551616",
        b"1.5",
        b"0x1F",
        b"'123'",
        b"'abc'",
        b"\xff",
        b"\x00",
        b"\xc3\xa9",
        b"/* userid=5 */",
        b"/* userid=",
        b"x",
    ];
    let c = cols();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut buf = Vec::with_capacity(512);
    for _ in 0..100_000 {
        buf.clear();
        let n = rng.below(40);
        for _ in 0..n {
            if rng.below(8) == 0 {
                buf.push(rng.next() as u8);
            } else {
                buf.extend_from_slice(PIECES[rng.below(PIECES.len())]);
            }
        }
        let r = checked_scan(&buf, &c);
        assert!(r.keys().len() <= MAX_KEYS);
        assert!(r.tables().len() <= MAX_TABLES);
        if r.from_hint {
            assert!(!matches!(
                r.problem,
                Some(KeyProblem::MalformedHint | KeyProblem::NonEquality | KeyProblem::OrCondition)
            ));
        }
        for k in r.keys() {
            let mut b = [0u8; 20];
            if let KeyRef::Literal(v) = k {
                let _ = v.canonical(&mut b);
            }
        }
    }
}

#[test]
fn large_inputs_are_linear() {
    let mut sql = String::from("SELECT * FROM t WHERE a IN (");
    for i in 0..50_000 {
        sql.push_str(&format!("{i},"));
    }
    sql.push_str("0) AND userid = 9");
    assert_eq!(sc(&sql).keys(), &[int(9)]);
    let nested = "(".repeat(100_000) + &")".repeat(100_000);
    assert_eq!(sc(&nested).problem, Some(P::TooComplex));
    let opens = "(".repeat(100_000);
    let _ = sc(&opens);
    let cases = "CASE ".repeat(10_000);
    let _ = sc(&format!("SELECT * FROM t WHERE {cases}"));
}

#[test]
fn single_byte_identifiers_are_read_as_mariadb_reads_them() {
    let koi8r = crate::router::dialect::Dialect::from_server("", "koi8r", "10.11.6");
    let latin1 = crate::router::dialect::Dialect::from_server("", "latin1", "10.11.6");
    fn scan(sql: &[u8], dialect: crate::router::dialect::Dialect) -> Scan<'_> {
        let mut out = Scan::empty();
        scan_full_into(sql, dialect, &cols(), &mut out);
        out
    }
    // koi8r letters (0xD4 0xC5 0xCC 0xCF: "тело") in a column name: read, the key found.
    let sql = b"SELECT \xd4\xc5\xcc\xcf FROM posts WHERE userid = 7";
    let r = scan(sql, koi8r);
    assert_eq!(r.keys(), [int(7)], "{r:?}");
    assert_eq!(r.problem, None);
    // The same bytes are not letters everywhere: a UTF-8 client's statement is invalid
    // UTF-8 there, and unreadable.
    assert_eq!(
        scan(sql, crate::router::dialect::Dialect::default()).problem,
        Some(P::Unreadable)
    );
    // latin1: é is a letter; the no-break space 0xA0 is no identifier byte to MariaDB.
    let r = scan(b"SELECT caf\xe9 FROM posts WHERE userid = 8", latin1);
    assert_eq!((r.keys(), r.problem), (&[int(8)][..], None));
    let r = scan(b"SELECT a\xa0b FROM posts WHERE userid = 8", latin1);
    assert_eq!(r.problem, Some(P::Unreadable));
}
