//! Statement shapes the key scanner alone cannot route: multi-statement batches (split
//! with the same lexer, so a `;` inside a string or comment never splits), `SET STATEMENT
//! … FOR`, dynamic SQL (`EXECUTE IMMEDIATE`, SQL-level `PREPARE` / `EXECUTE`) and compound
//! statements (`BEGIN NOT ATOMIC`, `IF`, `LOOP`, `WHILE`, `REPEAT`, `CASE`, labels). The
//! session decides what to do with each shape (docs/sharding.md, "Batches and dynamic
//! SQL"); this module only reads them.

use super::{Kw, Lexer, Op, T};
use crate::router::dialect::Dialect;

/// What a statement is, beyond its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape<'a> {
    /// One ordinary statement: route it by its scan.
    Plain,
    /// Several statements (`CLIENT_MULTI_STATEMENTS`), each with its trailing `;` removed.
    Batch(Vec<&'a [u8]>),
    /// `SET STATEMENT <vars> FOR <inner>`: runs `inner` with `vars` set for it alone.
    SetStatement {
        /// The statement run.
        inner: &'a [u8],
        /// `vars` names sql_mode or a character set, which change how `inner` is read.
        changes_dialect: bool,
    },
    /// `EXECUTE IMMEDIATE <text>`: the text when it is one plain string literal (no
    /// escape, no expression), else None.
    ExecuteImmediate(Option<&'a [u8]>),
    /// SQL-level `PREPARE … FROM` or `EXECUTE <name>`: the statement is not in the text.
    SqlPrepared,
    /// A compound statement: its body runs statements the router cannot route one by one.
    Compound,
    /// The text cannot be split as MariaDB would (an unterminated string or comment, a `;`
    /// inside an executed `/*! */` comment).
    Unreadable,
}

/// Whether a statement the scanner read as `scan` can have another shape than
/// [`Shape::Plain`]: several statements, or a first word that may start dynamic SQL, a
/// compound statement or `SET STATEMENT`. SELECT, INSERT, UPDATE, DELETE… never do, so
/// the common statements skip [`shape`] (and its second pass over the text).
pub fn may_have_shape(scan: &super::Scan<'_>) -> bool {
    use super::StatementKind as K;
    scan.multi_statement || matches!(scan.kind, K::Set | K::Begin | K::Other)
}

/// The shape of `sql` as MariaDB reads it under `dialect`. Costs one byte search for the
/// common statement without `;` whose first word is none of SET, BEGIN, EXECUTE,
/// PREPARE, IF, CASE, LOOP, WHILE, REPEAT or a label.
pub fn shape(sql: &[u8], dialect: Dialect) -> Shape<'_> {
    let mut lx = Lexer::new(sql, dialect);
    let first = lx.next();
    let is =
        |w: Option<&[u8]>, name: &str| w.is_some_and(|w| w.eq_ignore_ascii_case(name.as_bytes()));
    let first_word = word(first, &lx);
    let single = match first {
        T::Kw(Kw::Set, _) => {
            let mut ahead = lx;
            let t = ahead.next();
            if is(word(t, &ahead), "statement") {
                Some(set_statement(ahead))
            } else {
                None
            }
        }
        T::Kw(Kw::Begin, _) => {
            let mut ahead = lx;
            let t = ahead.next();
            // `BEGIN NOT ATOMIC`; `BEGIN` alone / `BEGIN WORK` is a transaction.
            matches!(t, T::Kw(Kw::Not, _)).then_some(Shape::Compound)
        }
        T::Kw(Kw::If | Kw::Case, _) => Some(Shape::Compound),
        T::Name(_)
            if ["loop", "while", "repeat"]
                .iter()
                .any(|n| is(first_word, n)) =>
        {
            Some(Shape::Compound)
        }
        T::Name(_) if is(first_word, "prepare") => Some(Shape::SqlPrepared),
        T::Name(_) if is(first_word, "execute") => {
            let mut ahead = lx;
            let t = ahead.next();
            if is(word(t, &ahead), "immediate") {
                Some(execute_immediate(ahead))
            } else {
                Some(Shape::SqlPrepared)
            }
        }
        T::Name(_) => {
            // `label: BEGIN …` / `label: LOOP …`.
            let mut ahead = lx;
            matches!(ahead.next(), T::Op(Op::Other))
                .then(|| ahead.s.get(ahead.pos.wrapping_sub(1)) == Some(&b':'))
                .filter(|&colon| colon)
                .map(|_| Shape::Compound)
        }
        _ => None,
    };
    if !sql.contains(&b';') {
        return single.unwrap_or(Shape::Plain);
    }
    match split(sql, dialect) {
        None => Shape::Unreadable,
        Some(parts) if parts.len() > 1 => Shape::Batch(parts),
        Some(_) => single.unwrap_or(Shape::Plain),
    }
}

/// The text of a word token.
fn word<'a>(t: T, lx: &Lexer<'a>) -> Option<&'a [u8]> {
    match t {
        T::Name(sp) | T::Kw(_, sp) => Some(lx.text(sp)),
        _ => None,
    }
}

/// The statements of a batch, each without its `;`; trailing parts holding only
/// whitespace and comments are dropped (MariaDB runs nothing for them). None when the
/// text cannot be split as MariaDB would.
fn split(sql: &[u8], dialect: Dialect) -> Option<Vec<&[u8]>> {
    let mut lx = Lexer::new(sql, dialect);
    let mut parts = Vec::new();
    let mut start = 0;
    let mut tokens = 0usize;
    loop {
        let before = lx.pos;
        match lx.next() {
            T::End => break,
            T::Bad => return None,
            T::Op(Op::Semi) if lx.exec => return None,
            T::Op(Op::Semi) => {
                if tokens > 0 {
                    parts.push(sql.get(start..before.max(start))?);
                }
                start = lx.pos;
                tokens = 0;
            }
            _ => tokens += 1,
        }
    }
    if tokens > 0 {
        parts.push(sql.get(start..)?);
    }
    Some(parts)
}

/// After `SET STATEMENT`: the variables up to the top-level `FOR`, then the inner statement.
fn set_statement(mut lx: Lexer<'_>) -> Shape<'_> {
    let vars_start = lx.pos;
    let mut depth = 0u32;
    loop {
        let before = lx.pos;
        match lx.next() {
            T::End | T::Bad => return Shape::Unreadable,
            T::Op(Op::LParen) => depth += 1,
            T::Op(Op::RParen) => depth = depth.saturating_sub(1),
            T::Kw(Kw::For, _) if depth == 0 => {
                let vars = lx.s.get(vars_start..before).unwrap_or_default();
                let inner = lx.s.get(lx.pos..).unwrap_or_default();
                return Shape::SetStatement {
                    inner,
                    changes_dialect: crate::router::dialect::may_change_dialect(vars),
                };
            }
            _ => {}
        }
    }
}

/// After `EXECUTE IMMEDIATE`: one plain string literal and nothing after it.
fn execute_immediate(mut lx: Lexer<'_>) -> Shape<'_> {
    let literal = match lx.next() {
        T::Str(sp, false) => lx.text(sp),
        _ => return Shape::ExecuteImmediate(None),
    };
    match lx.next() {
        T::End | T::Op(Op::Semi) => Shape::ExecuteImmediate(Some(literal)),
        _ => Shape::ExecuteImmediate(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(sql: &str) -> Shape<'_> {
        shape(sql.as_bytes(), Dialect::default())
    }

    #[test]
    fn plain_statements() {
        for sql in [
            "SELECT 1",
            "INSERT INTO t (userid) VALUES (1);",
            "SELECT ';' FROM t; -- done",
            "BEGIN",
            "BEGIN WORK",
            "SET @a = 1",
            "SET NAMES utf8mb4",
            "SELECT 'a;b' /* ; */ FROM t",
            "UPDATE t SET a = 1 WHERE userid = 5;  ",
        ] {
            assert_eq!(sh(sql), Shape::Plain, "{sql}");
        }
    }

    #[test]
    fn batches_split_outside_strings_and_comments() {
        assert_eq!(
            sh("SET @a=1; DELETE FROM messages"),
            Shape::Batch(vec![b"SET @a=1".as_slice(), b" DELETE FROM messages"])
        );
        assert_eq!(
            sh("SELECT ';'; SELECT \"x;\" -- ;\n; /* ; */"),
            Shape::Batch(vec![b"SELECT ';'".as_slice(), b" SELECT \"x;\""])
        );
        assert_eq!(
            sh("SELECT 1 /*!50000 ; DELETE FROM t */"),
            Shape::Unreadable
        );
        assert_eq!(sh("SELECT 'a; SELECT 2"), Shape::Unreadable);
    }

    #[test]
    fn set_statement() {
        assert_eq!(
            sh("SET STATEMENT max_statement_time=1 FOR SELECT * FROM t WHERE userid = 5"),
            Shape::SetStatement {
                inner: b" SELECT * FROM t WHERE userid = 5",
                changes_dialect: false
            }
        );
        assert_eq!(
            sh("set statement sql_mode='ANSI_QUOTES' for select 1"),
            Shape::SetStatement {
                inner: b" select 1",
                changes_dialect: true
            }
        );
        assert_eq!(sh("SET STATEMENT x=1"), Shape::Unreadable);
    }

    #[test]
    fn dynamic_sql_and_compound_statements() {
        assert_eq!(
            sh("EXECUTE IMMEDIATE 'INSERT INTO t (userid) VALUES (5)'"),
            Shape::ExecuteImmediate(Some(b"INSERT INTO t (userid) VALUES (5)"))
        );
        assert_eq!(sh("execute immediate @s"), Shape::ExecuteImmediate(None));
        assert_eq!(
            sh("EXECUTE IMMEDIATE CONCAT('SELECT ', 1)"),
            Shape::ExecuteImmediate(None)
        );
        assert_eq!(
            sh("EXECUTE IMMEDIATE 'it''s'"),
            Shape::ExecuteImmediate(None)
        );
        assert_eq!(sh("PREPARE s FROM 'SELECT 1'"), Shape::SqlPrepared);
        assert_eq!(sh("EXECUTE s USING @a"), Shape::SqlPrepared);
        for sql in [
            "BEGIN NOT ATOMIC INSERT INTO t VALUES (1); END",
            "IF 1 THEN SELECT 1; END IF",
            "lbl: LOOP LEAVE lbl; END LOOP",
            "WHILE 0 DO SELECT 1; END WHILE",
            "REPEAT SELECT 1; UNTIL 1 END REPEAT",
            "CASE WHEN 1 THEN SELECT 1; END CASE",
        ] {
            assert_eq!(
                shape(
                    sql.split(';').next().unwrap_or_default().as_bytes(),
                    Dialect::default()
                ),
                Shape::Compound,
                "{sql}"
            );
        }
    }
}
