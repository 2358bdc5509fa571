//! Statements dbrouter recognises itself before routing, with tiny dedicated parsers:
//! `SHOW DBROUTER ROUTE FOR <user id>` (answered locally), the session pin
//! `SET @dbrouter_userid = <user id> | NULL`, the database of `USE <db>`, and whether a
//! COMMIT/ROLLBACK is plain (no `TO SAVEPOINT`, `AND CHAIN`, `RELEASE`).

/// Splits SQL into words: runs of identifier characters, backtick-quoted names, quoted
/// strings (kept with their quotes) and single punctuation bytes; whitespace and
/// comments are skipped. Enough for the fixed statement shapes handled here.
pub(crate) fn words(sql: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut pos = 0;
    std::iter::from_fn(move || loop {
        let rest = sql.get(pos..)?;
        let first = *rest.first()?;
        if first.is_ascii_whitespace() || first == b';' {
            pos += 1;
            continue;
        }
        if rest.starts_with(b"/*") {
            pos += rest
                .windows(2)
                .skip(2)
                .position(|w| w == b"*/")
                .map_or(rest.len(), |i| i + 4);
            continue;
        }
        let len = if first == b'`' || first == b'\'' || first == b'"' {
            rest.iter()
                .skip(1)
                .position(|b| *b == first)
                .map_or(rest.len(), |i| i + 2)
        } else if first.is_ascii_alphanumeric() || first == b'_' || first == b'@' || first == b'$' {
            rest.iter()
                .position(|b| {
                    !(b.is_ascii_alphanumeric()
                        || *b == b'_'
                        || *b == b'@'
                        || *b == b'$'
                        || *b == b'.')
                })
                .unwrap_or(rest.len())
        } else {
            1
        };
        pos += len;
        return Some(&rest[..len]);
    })
}

pub(crate) fn unquote(word: &[u8]) -> &[u8] {
    match (word.first(), word.last()) {
        (Some(b'\''), Some(b'\'')) | (Some(b'"'), Some(b'"')) | (Some(b'`'), Some(b'`'))
            if word.len() >= 2 =>
        {
            &word[1..word.len() - 1]
        }
        _ => word,
    }
}

/// The user id of `SHOW DBROUTER ROUTE FOR <id>`, if the statement is that.
pub fn route_query(sql: &[u8]) -> Option<Vec<u8>> {
    let mut w = words(sql);
    for expected in [&b"show"[..], b"dbrouter", b"route", b"for"] {
        if !w.next()?.eq_ignore_ascii_case(expected) {
            return None;
        }
    }
    let id = unquote(w.next()?).to_vec();
    w.next().is_none().then_some(id)
}

/// Whether the statement is `SHOW DBROUTER STATUS`.
pub fn is_status_query(sql: &[u8]) -> bool {
    let mut w = words(sql);
    for expected in [&b"show"[..], b"dbrouter", b"status"] {
        match w.next() {
            Some(word) if word.eq_ignore_ascii_case(expected) => {}
            _ => return false,
        }
    }
    w.next().is_none()
}

/// The session pin: `SET @dbrouter_userid = <id>` → `Some(Some(id))`, `= NULL` →
/// `Some(None)`; any other statement → `None`.
pub fn session_pin(sql: &[u8]) -> Option<Option<Vec<u8>>> {
    let mut w = words(sql);
    if !w.next()?.eq_ignore_ascii_case(b"set") {
        return None;
    }
    // The rest, `@dbrouter_userid = <id>` with or without spaces around `=` / `:=`.
    let rest: Vec<u8> = w.flatten().copied().collect();
    let name = b"@dbrouter_userid";
    let after = rest
        .get(..name.len())
        .filter(|n| n.eq_ignore_ascii_case(name))
        .and_then(|_| rest.get(name.len()..))?;
    let after = after.trim_ascii_start();
    let value = after
        .strip_prefix(b":=")
        .or_else(|| after.strip_prefix(b"="))?
        .trim_ascii();
    if value.eq_ignore_ascii_case(b"null") {
        return Some(None);
    }
    let unquoted = unquote(value);
    let bare = |c: &u8| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'+' | b'-' | b'.');
    let plain = if unquoted.len() == value.len() {
        !value.is_empty() && value.iter().all(bare)
    } else {
        !unquoted
            .iter()
            .any(|c| matches!(c, b'\\' | b'\'' | b'"' | b'`'))
    };
    plain.then(|| Some(unquoted.to_vec()))
}

/// Whether the statement's first word (after comments) is `word`, case-insensitively;
/// allocates nothing (it runs on every statement).
pub fn first_word_is(sql: &[u8], word: &[u8]) -> bool {
    words(sql)
        .next()
        .is_some_and(|w| w.eq_ignore_ascii_case(word))
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
pub fn use_database(sql: &[u8]) -> Option<String> {
    let mut w = words(sql);
    if !w.next()?.eq_ignore_ascii_case(b"use") {
        return None;
    }
    let db = unquote(w.next()?);
    Some(String::from_utf8_lossy(db).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_queries() {
        assert_eq!(
            route_query(b"SHOW DBROUTER ROUTE FOR 123"),
            Some(b"123".to_vec())
        );
        assert_eq!(
            route_query(b"  show dbrouter route for 'abc';"),
            Some(b"abc".to_vec())
        );
        assert_eq!(route_query(b"SHOW DBROUTER ROUTE FOR"), None);
        assert_eq!(route_query(b"SHOW TABLES"), None);
        assert_eq!(route_query(b"SHOW DBROUTER ROUTE FOR 1 2"), None);
    }

    #[test]
    fn status_query() {
        assert!(is_status_query(b"SHOW DBROUTER STATUS"));
        assert!(is_status_query(b"show dbrouter status;"));
        assert!(!is_status_query(b"SHOW DBROUTER STATUS x"));
        assert!(!is_status_query(b"SHOW STATUS"));
    }

    #[test]
    fn pins() {
        assert_eq!(
            session_pin(b"SET @dbrouter_userid = 42"),
            Some(Some(b"42".to_vec()))
        );
        assert_eq!(
            session_pin(b"set @DBROUTER_USERID:='7'"),
            Some(Some(b"7".to_vec()))
        );
        assert_eq!(session_pin(b"SET @dbrouter_userid = NULL"), Some(None));
        assert_eq!(session_pin(b"SET @other = 1"), None);
        assert_eq!(session_pin(b"SET @dbrouter_userid = 1, @x = 2"), None);
    }

    #[test]
    fn use_and_plain_end() {
        assert_eq!(use_database(b"USE `my db`").as_deref(), Some("my db"));
        assert_eq!(use_database(b"use app;").as_deref(), Some("app"));
        assert!(first_word_is(b"/* c */ SET @a = 1", b"set"));
        assert!(!first_word_is(b"SETX", b"set"));
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
                route_query(s),
                session_pin(s),
                use_database(s),
                first_word_is(s, b"set"),
            );
        }
    }
}
