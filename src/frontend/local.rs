//! Statements dbrouter recognises itself before routing, with tiny dedicated parsers:
//! `SHOW DBROUTER ROUTE FOR <user id>` (answered locally), the session pin
//! `SET @dbrouter_userid = <user id> | NULL`, the database of `USE <db>`, and whether a
//! COMMIT/ROLLBACK is plain (no `TO SAVEPOINT`, `AND CHAIN`, `RELEASE`). They read the
//! statement with the shard-key lexer ([`crate::router::words`]), in the session's
//! dialect: comments, quotes and version comments mean what they mean to MariaDB.

use crate::router::dialect::Dialect;
use crate::router::Word;

/// The words of a statement of a fixed shape, read by the shard-key lexer under
/// `dialect`, without `;`.
fn words(sql: &[u8], dialect: Dialect) -> impl Iterator<Item = Word<'_>> {
    crate::router::words(sql, dialect).filter(|w| !w.is_punct(b";"))
}

/// The text of a user id or name given as a bare word, a number or an unescaped string.
fn plain_value(word: Word<'_>) -> Option<&[u8]> {
    match word {
        Word::Ident(text) | Word::Number(text) | Word::Str(text, false) => Some(text),
        _ => None,
    }
}

/// The user id of `SHOW DBROUTER ROUTE FOR <id>`, if the statement is that.
pub fn route_query(sql: &[u8], dialect: Dialect) -> Option<Vec<u8>> {
    let mut w = words(sql, dialect);
    for expected in [&b"show"[..], b"dbrouter", b"route", b"for"] {
        if !w.next()?.is(expected) {
            return None;
        }
    }
    let id = plain_value(w.next()?)?.to_vec();
    w.next().is_none().then_some(id)
}

/// Whether the statement is `SHOW DBROUTER STATUS`.
pub fn is_status_query(sql: &[u8], dialect: Dialect) -> bool {
    let mut w = words(sql, dialect);
    [&b"show"[..], b"dbrouter", b"status"]
        .iter()
        .all(|expected| w.next().is_some_and(|word| word.is(expected)))
        && w.next().is_none()
}

/// The session pin: `SET @dbrouter_userid = <id>` → `Some(Some(id))`, `= NULL` →
/// `Some(None)`; any other statement → `None`.
/// A signed number is taken with its sign (and refused as a key value later, with the
/// reason).
pub fn session_pin(sql: &[u8], dialect: Dialect) -> Option<Option<Vec<u8>>> {
    let mut w = words(sql, dialect);
    if !w.next()?.is(b"set") {
        return None;
    }
    match w.next()? {
        Word::Var(name) if name.eq_ignore_ascii_case(b"@dbrouter_userid") => {}
        _ => return None,
    }
    if !matches!(w.next()?, Word::Punct(b"=" | b":=")) {
        return None;
    }
    let value = match w.next()? {
        Word::Ident(null) if null.eq_ignore_ascii_case(b"null") => None,
        Word::Punct(sign @ (b"-" | b"+")) => match w.next()? {
            Word::Number(n) => Some([sign, n].concat()),
            _ => return None,
        },
        other => Some(plain_value(other)?.to_vec()),
    };
    w.next().is_none().then_some(value)
}

/// Whether the statement's first word (after comments) is `word`, case-insensitively;
/// allocates nothing (it runs on every statement).
pub fn first_word_is(sql: &[u8], dialect: Dialect, word: &[u8]) -> bool {
    words(sql, dialect).next().is_some_and(|w| w.is(word))
}

/// Whether a statement calls a named-lock function (GET_LOCK, RELEASE_LOCK,
/// RELEASE_ALL_LOCKS, IS_FREE_LOCK, IS_USED_LOCK).
pub fn mentions_named_lock(sql: &[u8]) -> bool {
    const NAMES: [&[u8]; 5] = [
        b"get_lock",
        b"release_lock",
        b"release_all_locks",
        b"is_free_lock",
        b"is_used_lock",
    ];
    NAMES
        .iter()
        .any(|n| crate::router::contains_ignore_case(sql, n))
}

/// Whether a statement calls LAST_INSERT_ID().
pub fn mentions_last_insert_id(sql: &[u8]) -> bool {
    crate::router::contains_ignore_case(sql, b"last_insert_id")
}

/// Whether a statement mentions the session pin variable `@dbrouter_userid`.
pub fn mentions_pin(sql: &[u8]) -> bool {
    crate::router::contains_ignore_case(sql, b"dbrouter_userid")
}

/// The database of `USE <db>`.
pub fn use_database(sql: &[u8], dialect: Dialect) -> Option<String> {
    let mut w = words(sql, dialect);
    if !w.next()?.is(b"use") {
        return None;
    }
    match w.next()? {
        Word::Ident(db) => Some(String::from_utf8_lossy(db).into_owned()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d() -> Dialect {
        Dialect::default()
    }

    #[test]
    fn route_queries() {
        assert_eq!(
            route_query(b"SHOW DBROUTER ROUTE FOR 123", d()),
            Some(b"123".to_vec())
        );
        assert_eq!(
            route_query(b"  show dbrouter route for 'abc';", d()),
            Some(b"abc".to_vec())
        );
        assert_eq!(route_query(b"SHOW DBROUTER ROUTE FOR", d()), None);
        assert_eq!(route_query(b"SHOW TABLES", d()), None);
        assert_eq!(route_query(b"SHOW DBROUTER ROUTE FOR 1 2", d()), None);
    }

    #[test]
    fn status_query() {
        assert!(is_status_query(b"SHOW DBROUTER STATUS", d()));
        assert!(is_status_query(b"show dbrouter status;", d()));
        assert!(!is_status_query(b"SHOW DBROUTER STATUS x", d()));
        assert!(!is_status_query(b"SHOW STATUS", d()));
    }

    #[test]
    fn pins() {
        assert_eq!(
            session_pin(b"SET @dbrouter_userid = 42", d()),
            Some(Some(b"42".to_vec()))
        );
        assert_eq!(
            session_pin(b"set @DBROUTER_USERID:='7'", d()),
            Some(Some(b"7".to_vec()))
        );
        assert_eq!(session_pin(b"SET @dbrouter_userid = NULL", d()), Some(None));
        assert_eq!(session_pin(b"SET @other = 1", d()), None);
        assert_eq!(session_pin(b"SET @dbrouter_userid = 1, @x = 2", d()), None);
        // Read as MariaDB reads it: comments, version comments, signs, what follows.
        assert_eq!(
            session_pin(b"SET /* a */ @dbrouter_userid -- b\n = 5;", d()),
            Some(Some(b"5".to_vec()))
        );
        assert_eq!(
            session_pin(b"SET @dbrouter_userid = /*!100000 9 */", d()),
            Some(Some(b"9".to_vec()))
        );
        assert_eq!(
            session_pin(b"SET @dbrouter_userid = -5", d()),
            Some(Some(b"-5".to_vec()))
        );
        assert_eq!(
            session_pin(b"SET @dbrouter_userid = 1; DELETE FROM t", d()),
            None
        );
        assert_eq!(session_pin(b"SET @dbrouter_userid = 'a\\'b'", d()), None);
        assert_eq!(session_pin(b"SET @dbrouter_userid = 1 + 1", d()), None);
        let ansi = Dialect {
            ansi_quotes: true,
            ..Dialect::default()
        };
        assert_eq!(
            session_pin(b"SET @dbrouter_userid = \"7\"", d()),
            Some(Some(b"7".to_vec()))
        );
        assert_eq!(
            session_pin(b"SET @dbrouter_userid = \"7\"", ansi),
            Some(Some(b"7".to_vec())),
            "a name is a column reference to MariaDB, as a bare word is"
        );
    }

    #[test]
    fn use_and_plain_end() {
        assert_eq!(use_database(b"USE `my db`", d()).as_deref(), Some("my db"));
        assert_eq!(use_database(b"use app;", d()).as_deref(), Some("app"));
        assert!(first_word_is(b"/* c */ SET @a = 1", d(), b"set"));
        assert!(!first_word_is(b"SETX", d(), b"set"));
    }

    #[test]
    fn never_panics() {
        for s in [
            &b""[..],
            b"`",
            b"'",
            b"/*",
            b"SET @dbrouter_userid",
            b"SHOW DBROUTER ROUTE FOR '",
        ] {
            let _ = (
                route_query(s, d()),
                session_pin(s, d()),
                use_database(s, d()),
                first_word_is(s, d(), b"set"),
            );
        }
    }
}
