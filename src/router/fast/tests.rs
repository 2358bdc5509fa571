//! Differential tests: on every input the fast path either gives up or returns what
//! the full scanner returns, and its lexer yields the full lexer's tokens.
use super::*;
use crate::router::key::{scan_full, Lexer as FullLexer};

fn cols() -> KeyColumns {
    KeyColumns::new(["userid", "Owner_Id"])
}

/// The bench's typical statements (benches/routing.rs).
const TYPICAL: &[&str] = &[
    "SELECT id, name, email FROM users WHERE userid = 12345 AND active = 1",
    "/* userid=12345 */ SELECT p.id, p.title, c.body FROM posts p JOIN comments c \
     ON c.post_id = p.id LEFT JOIN likes l ON l.post_id = p.id WHERE p.created > \
     NOW() - INTERVAL 7 DAY ORDER BY p.id DESC LIMIT 20",
    "UPDATE users SET last_login = NOW(), login_count = login_count + 1 \
     WHERE userid = 12345",
    "DELETE FROM sessions WHERE userid = 12345 AND expires < NOW()",
    "INSERT INTO events (userid, kind, payload, created) VALUES \
     (12345, 'click', '{\"x\":1}', NOW()), (12345, 'view', 'a,b)', NOW()), \
     (12345, 'buy', CONCAT('a', 'b'), NOW())",
    "SELECT id, name, email FROM users WHERE userid = ? AND status = ? LIMIT 1",
    "SELECT 1",
];

/// Whether the fast path took `sql`; panics when it took it and disagrees.
fn agree(sql: &[u8], cols: &KeyColumns) -> bool {
    let full = scan_full(sql, cols);
    match scan(sql, cols) {
        Some(fast) => {
            assert_eq!(
                fast,
                full,
                "fast path on {:?}",
                String::from_utf8_lossy(sql)
            );
            true
        }
        None => false,
    }
}

/// The fast lexer's tokens are the full lexer's, up to where it gives up.
fn same_tokens(sql: &[u8]) {
    let mut fast = Lexer { s: sql, pos: 0 };
    let mut full = FullLexer::new(sql, crate::router::dialect::Dialect::default());
    while let Some(t) = fast.next() {
        assert_eq!(t, full.next(), "{:?}", String::from_utf8_lossy(sql));
        // Either may already have skipped the spaces after a word.
        assert_eq!(
            skip_spaces(sql, fast.pos).0,
            skip_spaces(sql, full.pos).0,
            "{:?}",
            String::from_utf8_lossy(sql)
        );
        if t == T::End {
            break;
        }
    }
}

#[test]
fn typical_statements_take_the_fast_path() {
    let c = KeyColumns::new(["userid"]);
    for sql in TYPICAL {
        assert!(agree(sql.as_bytes(), &c), "gave up on {sql}");
    }
    let r = scan(TYPICAL[1].as_bytes(), &c);
    assert!(r.is_some_and(|r| r.from_hint && r.tables().len() == 3));
    let r = scan(TYPICAL[4].as_bytes(), &c);
    assert!(r.is_some_and(|r| r.keys() == [KeyRef::Literal(key::KeyValue::Int(12345))]));
}

#[test]
fn edge_cases_agree() {
    let c = cols();
    let many: Vec<String> = (0..20).map(|i| i.to_string()).collect();
    let taken = [
        format!(
            "/* userid=1 */ SELECT * FROM t WHERE userid IN ({})",
            many.join(",")
        ),
        format!("SELECT * FROM t WHERE userid IN ({})", many.join(",")),
        "SELECT ?, a FROM t WHERE userid = ? AND b = ?".to_string(),
        "INSERT INTO t (userid) VALUES (?), (?)".to_string(),
        "INSERT INTO t (userid, t.userid) VALUES (1, 2)".to_string(),
        "select a from t where USERID = 5 and (a = 1) and b in (1, 2)".to_string(),
        "SELECT * FROM a JOIN b ON b.userid = 5 WHERE a.userid = 5".to_string(),
        "SELECT COUNT(*) FROM t WHERE userid = '007' LIMIT 10, 20".to_string(),
        "\n\t SELECT * FROM t WHERE userid = 5 ;;".to_string(),
        "/* userid=5 */ SELECT 1".to_string(),
    ];
    for sql in &taken {
        assert!(agree(sql.as_bytes(), &c), "gave up on {sql}");
    }
    for sql in [
        "SELECT a value FROM t WHERE userid = 5",
        "SELECT * FROM t WHERE userid=12345AND a=1",
        "SELECT * FROM t WHERE (userid = 5)",
        "SELECT 1; SELECT 2",
        "/* userid=5 */",
        "-- x\n/* userid=5 */ SELECT 1",
        "INSERT INTO t (a) VALUES (1),",
        "SELECT * FROM t WHERE userid = '  5'",
    ] {
        assert!(!agree(sql.as_bytes(), &c), "took {sql}");
    }
}

/// Every string literal of key.rs's tests (the statements they check), unescaped.
fn key_test_statements() -> Vec<String> {
    let tests = include_str!("../key/tests.rs");
    let mut out = Vec::new();
    let mut chars = tests.chars();
    while let Some(c) = chars.next() {
        if c != '"' {
            continue;
        }
        let mut lit = String::new();
        while let Some(c) = chars.next() {
            match c {
                '"' => break,
                '\\' => match chars.next() {
                    Some('n') => lit.push('\n'),
                    Some('t') => lit.push('\t'),
                    Some('0') => lit.push('\0'),
                    Some('\n') => {
                        // A line continuation: the next line's indentation is dropped.
                        let rest = chars.as_str().trim_start();
                        chars = rest.chars();
                    }
                    Some(c) => lit.push(c),
                    None => {}
                },
                c => lit.push(c),
            }
        }
        out.push(lit);
    }
    out
}

use crate::test_rng::Rng;

// Vocabularies: the plain words the fast path takes, and odd ones it must refuse
// (or take and agree on), picked now and then.
#[rustfmt::skip]
const KEYS: (&[&str], &[&str]) = (
    &["userid", "USERID", "t.userid", "db.t.userid", "owner_id", "u.Owner_Id"],
    &["`userid`", "userid(1)", "@userid"],
);
#[rustfmt::skip]
const NAMES: (&[&str], &[&str]) = (
    &["id", "name", "a", "b", "status", "p.id", "created", "kind", "x1", "_y",
      "parent_userid", "userid2", "users", "db.t", "t", "u", "NOW()", "f(a, 1)",
      "COUNT(*)", "a + 1", "(a)"],
    &["`a b`", "value", "end", "start", "desc", "a$b", "t.`c`", "@v", "@@x", "t.*"],
);
#[rustfmt::skip]
const VALUES: (&[&str], &[&str]) = (
    &["5", "12345", "0", "007", "'abc'", "'12345'", "'00123'", "\"x\"", "?", "?", "''",
      "18446744073709551616", "'a\"b'", "\"\"", "'\u{e9}'", "'{\"x\":1}'", "'a,b)'"],
    &["'5.0'", "' 5'", "'5 '", "-5", "+5", "1.5", "1e3", "0x1F", "NULL", "TRUE", "DEFAULT",
      "'a''b'", "'a\\'b'", "@v", "X'31'", "(SELECT 1)", "'it''s'", "5 + 1", "userid", "a"],
);
#[rustfmt::skip]
const CMP: (&[&str], &[&str]) = (
    &["=", "=", "=", "<", ">", "<=", ">=", "<>", "!=", "LIKE", "<=>"],
    &["IS", "IS NOT", "IN", "NOT IN", "REGEXP", "BETWEEN 1 AND", ":=", "->", "<<", "||"],
);
#[rustfmt::skip]
const JUNK: &[&str] = &[
    " OR ", " XOR ", " || ", " && ", " AND ", " NOT ", "(", ")", ",", ";", "?", "'", "\"",
    "`", "\\", "/*", "*/", "/* x */", "/*! AND userid = 7 */", "/*M!100 a */", "-- c\n",
    "--", "# c\n", "#", "@", "@@", ".", "+", "-", "*", "/", "%", "=", "<", ">", "!", "|",
    "&", ":=", "->", "$", "\u{e9}", "\0", "\t", "\n", " ", "CASE WHEN a THEN 1 END",
    "SELECT", "FROM", "WHERE", "JOIN", "ON", "USING", "UNION", "HAVING", "SET", "VALUES",
    "INTO", "AS", "IN", "IS", "NULL", "BETWEEN", "LIMIT", "ORDER BY", "GROUP BY",
    "FOR UPDATE", "DUPLICATE KEY UPDATE", "userid", "t.userid", "5", "'5'", "1.5", "x",
];

impl Rng {
    /// Mostly a plain word, now and then an odd one.
    fn word<'x>(&mut self, (plain, odd): (&[&'x str], &[&'x str])) -> &'x str {
        if self.chance(3) {
            self.pick(odd)
        } else {
            self.pick(plain)
        }
    }
}

fn key(r: &mut Rng) -> String {
    r.word(KEYS).to_string()
}

fn column(r: &mut Rng) -> String {
    r.word((
        &["a", "b", "kind", "created", "t.x", "parent_userid"],
        &["value", "`c`", "f()"],
    ))
    .to_string()
}

fn operand(r: &mut Rng) -> String {
    match r.below(3) {
        0 => r.word(VALUES).to_string(),
        _ => r.word(NAMES).to_string(),
    }
}

fn conjunct(r: &mut Rng) -> String {
    match r.below(20) {
        0..=9 => format!("{} = {}", key(r), r.word(VALUES)),
        10 => format!("{} {} {}", key(r), r.word(CMP), r.word(VALUES)),
        11 | 12 => {
            let n = 1 + r.below(4);
            let vals: Vec<&str> = (0..n).map(|_| r.word(VALUES)).collect();
            format!("{} IN ({})", key(r), vals.join(", "))
        }
        13 => format!("{} = {}", r.word(VALUES), key(r)),
        14 => format!("({})", conjunct(r)),
        15 => format!("{} {} {}", operand(r), r.word(CMP), key(r)),
        16 => format!("{} IS NOT NULL", operand(r)),
        17 => format!(
            "{} IN ({}, {})",
            r.word(NAMES),
            r.word(VALUES),
            r.word(VALUES)
        ),
        _ => format!("{} {} {}", operand(r), r.word(CMP), operand(r)),
    }
}

fn condition(r: &mut Rng) -> String {
    let mut c = conjunct(r);
    for _ in 0..r.below(4) {
        let joiner = if r.chance(92) {
            " AND "
        } else {
            r.pick(&[" OR ", " XOR ", " && ", " , "])
        };
        c.push_str(joiner);
        c.push_str(&conjunct(r));
    }
    c
}

fn tables(r: &mut Rng) -> String {
    let mut t = r
        .word((
            &["users", "t", "db.users", "posts"],
            &["`t`", "value", "(t)", "t1 x y"],
        ))
        .to_string();
    for i in 0..r.below(3) {
        if r.chance(30) {
            t.push_str(r.word((&[" p", " AS p", " x", " userid"], &[" AS", " AS end"])));
        }
        match r.below(4) {
            0 => t.push_str(", "),
            1 => t.push_str(" JOIN "),
            2 => t.push_str(r.word((
                &[
                    " LEFT JOIN ",
                    " INNER JOIN ",
                    " LEFT OUTER JOIN ",
                    " CROSS JOIN ",
                    " NATURAL JOIN ",
                    " STRAIGHT_JOIN ",
                ],
                &[" LEFT ", " USING ", " JOIN JOIN "],
            ))),
            _ => t.push_str(" JOIN "),
        }
        t.push_str(r.pick(&["comments", "likes", "t2", "db.t3"]));
        t.push_str(&format!(" c{i}"));
        if r.chance(70) {
            t.push_str(" ON ");
            t.push_str(&condition(r));
        }
    }
    t
}

fn tail(r: &mut Rng) -> String {
    let mut t = String::new();
    for _ in 0..r.below(3) {
        t.push_str(r.word((
            &[
                " ORDER BY id DESC",
                " ORDER BY userid, a",
                " LIMIT 1",
                " LIMIT ?",
                " LIMIT 10, 20",
                " GROUP BY a",
                " FOR UPDATE",
                " LOCK IN SHARE MODE",
                " LIMIT 1 OFFSET 2",
            ],
            &[
                " HAVING userid = 5",
                " UNION SELECT 1",
                " DESC",
                " , a",
                " FOR UPDATE userid = 1",
            ],
        )));
    }
    t
}

fn row(r: &mut Rng, n: usize) -> String {
    let n = if r.chance(97) { n } else { r.below(n + 2) };
    let vals: Vec<String> = (0..n).map(|_| operand(r)).collect();
    format!("({})", vals.join(", "))
}

/// A statement of the fast path's shapes, with now and then something it refuses.
fn statement(r: &mut Rng) -> String {
    let mut s = String::new();
    if r.chance(20) {
        s.push_str(r.word((
            &[
                "/* userid=5 */ ",
                "/* userid = 'abc' */ ",
                "/* app=web */ ",
                "/*userid=7*/",
                "  /* owner_id=9 */\n",
            ],
            &[
                "/* userid=abc */ ",
                "/* userid='a''b' */ ",
                "-- c\n",
                "/*! */ ",
                "/**/ /**/",
            ],
        )));
    }
    match r.below(5) {
        0 | 1 => {
            s.push_str("SELECT ");
            let n = 1 + r.below(3);
            let items: Vec<String> = (0..n)
                .map(|_| match r.below(5) {
                    0 => "*".to_string(),
                    1 => format!("{} AS x", operand(r)),
                    2 => key(r),
                    _ => operand(r),
                })
                .collect();
            s.push_str(&items.join(", "));
            if r.chance(90) {
                s.push_str(" FROM ");
                s.push_str(&tables(r));
                if r.chance(85) {
                    s.push_str(" WHERE ");
                    s.push_str(&condition(r));
                }
            }
            s.push_str(&tail(r));
        }
        2 => {
            s.push_str("UPDATE ");
            s.push_str(&tables(r));
            s.push_str(" SET ");
            let n = 1 + r.below(3);
            let sets: Vec<String> = (0..n)
                .map(|_| {
                    let target = if r.chance(10) { key(r) } else { column(r) };
                    format!("{target} = {} + {}", operand(r), operand(r))
                })
                .collect();
            s.push_str(&sets.join(", "));
            if r.chance(85) {
                s.push_str(" WHERE ");
                s.push_str(&condition(r));
            }
            s.push_str(&tail(r));
        }
        3 => {
            s.push_str("DELETE FROM ");
            s.push_str(&tables(r));
            if r.chance(85) {
                s.push_str(" WHERE ");
                s.push_str(&condition(r));
            }
            s.push_str(&tail(r));
        }
        _ => {
            s.push_str(r.word((
                &["INSERT INTO ", "INSERT ", "REPLACE INTO ", "REPLACE "],
                &["INSERT IGNORE INTO ", "INSERT INTO INTO "],
            )));
            s.push_str(r.word((&["t ", "db.events "], &["`t` ", "t PARTITION (p0) "])));
            let n = 1 + r.below(5);
            let cols: Vec<String> = (0..n)
                .map(|_| if r.chance(30) { key(r) } else { column(r) })
                .collect();
            s.push_str(&format!("({}) ", cols.join(", ")));
            s.push_str(r.word((&["VALUES ", "VALUE "], &["", "VALUES ROW", "SELECT "])));
            let rows: Vec<String> = (0..1 + r.below(20)).map(|_| row(r, n)).collect();
            s.push_str(&rows.join(", "));
            if r.chance(10) {
                s.push_str(" ON DUPLICATE KEY UPDATE a = 1");
            }
        }
    }
    if r.chance(15) {
        s.push_str(r.pick(&[";", " ; ", ";;", "; SELECT 1", ";\n", " -- end"]));
    }
    s
}

/// Inserts, deletes or replaces a few pieces of `s`, at token boundaries or anywhere.
fn mutate(r: &mut Rng, s: &str) -> Vec<u8> {
    let mut b = s.as_bytes().to_vec();
    for _ in 0..1 + r.below(3) {
        let at = r.below(b.len() + 1);
        let at = if r.chance(70) {
            // Snap to a space so whole words change.
            b.get(at..)
                .and_then(|t| t.iter().position(|&c| c == b' '))
                .map_or(b.len(), |p| at + p)
        } else {
            at
        };
        match r.below(3) {
            0 => {
                let end = b
                    .get(at + 1..)
                    .and_then(|t| t.iter().position(|&c| c == b' '))
                    .map_or(b.len(), |p| at + 1 + p);
                b.drain(at..end);
            }
            1 => {
                let piece = r.pick(JUNK).as_bytes();
                b.splice(at..at, piece.iter().copied());
            }
            _ => {
                let piece = r.pick(JUNK).as_bytes();
                let end = (at + 1 + r.below(4)).min(b.len());
                b.splice(at..end, piece.iter().copied());
            }
        }
    }
    b
}

#[test]
fn fast_path_agrees_with_the_full_scanner() {
    let c = cols();
    let seeds = key_test_statements();
    assert!(seeds.len() > 300, "{}", seeds.len());
    let mut r = Rng(0x2545_f491_4f6c_dd1d);
    let (mut cases, mut taken, mut keyed) = (0usize, 0usize, 0usize);
    let mut check = |sql: &[u8]| {
        same_tokens(sql);
        cases += 1;
        if agree(sql, &c) {
            taken += 1;
            keyed += usize::from(!scan_full(sql, &c).keys().is_empty());
        }
    };
    for s in seeds
        .iter()
        .map(String::as_str)
        .chain(TYPICAL.iter().copied())
    {
        check(s.as_bytes());
        for _ in 0..20 {
            check(&mutate(&mut r, s));
        }
    }
    for _ in 0..100_000 {
        let s = statement(&mut r);
        check(s.as_bytes());
        if r.chance(50) {
            check(&mutate(&mut r, &s));
        }
    }
    // The generator must exercise the fast path, not just its refusals.
    assert!(cases > 150_000, "{cases}");
    assert!(
        taken * 100 > cases * 15,
        "fast path took {taken} of {cases}"
    );
    assert!(keyed * 100 > cases * 5, "keys in {keyed} of {cases}");
    eprintln!("{cases} cases, fast path took {taken}, with keys {keyed}");
}

#[test]
fn random_bytes_never_panic() {
    let c = cols();
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    let mut buf = Vec::new();
    for _ in 0..20_000 {
        buf.clear();
        buf.extend_from_slice(
            r.pick(&[
                "SELECT ",
                "INSERT INTO t (userid) VALUES ",
                "UPDATE t SET ",
                "DELETE FROM t WHERE ",
                "/* userid=1 */ SELECT ",
            ])
            .as_bytes(),
        );
        for _ in 0..r.below(30) {
            if r.chance(20) {
                buf.push(r.next() as u8);
            } else {
                buf.extend_from_slice(r.pick(JUNK).as_bytes());
            }
        }
        same_tokens(&buf);
        agree(&buf, &c);
    }
}
