//! Statements about sessions that dbrouter reads itself, so that they speak the router's
//! session ids instead of the backends' thread ids: `SHOW [FULL] PROCESSLIST`, `KILL
//! [HARD | SOFT] [CONNECTION | QUERY] <id>`, `CONNECTION_ID()` (replaced by the session's
//! id) and `information_schema.PROCESSLIST` (replaced by a derived table of the router's
//! sessions, so any query over it still runs on MariaDB). Read with the shard-key lexer in
//! the session's dialect: comments, quotes and version comments mean what they mean to
//! MariaDB, and text inside strings is never touched.

use crate::router::dialect::Dialect;
use crate::router::Word;

use super::sessions::ProcessRow;

/// A `KILL` of a session id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kill {
    /// The session id.
    pub id: u64,
    /// `KILL QUERY`: the running statement only.
    pub query_only: bool,
}

fn words(sql: &[u8], dialect: Dialect) -> impl Iterator<Item = Word<'_>> {
    crate::router::words(sql, dialect).filter(|w| !w.is_punct(b";"))
}

/// `SHOW [FULL] PROCESSLIST` → `Some(full)`.
pub fn processlist(sql: &[u8], dialect: Dialect) -> Option<bool> {
    let mut w = words(sql, dialect);
    if !w.next()?.is(b"show") {
        return None;
    }
    let mut next = w.next()?;
    let full = next.is(b"full");
    if full {
        next = w.next()?;
    }
    (next.is(b"processlist") && w.next().is_none()).then_some(full)
}

/// A `KILL` statement: `Some(Ok(kill))` for `KILL [HARD | SOFT] [CONNECTION | QUERY] <id>`,
/// `Some(Err(()))` for a form the router does not carry out (`KILL QUERY ID`, `KILL USER`,
/// an expression), `None` for any other statement.
pub fn kill(sql: &[u8], dialect: Dialect) -> Option<Result<Kill, ()>> {
    let mut w = words(sql, dialect).peekable();
    if !w.next()?.is(b"kill") {
        return None;
    }
    if w.peek().is_some_and(|x| x.is(b"hard") || x.is(b"soft")) {
        w.next();
    }
    let mut query_only = false;
    if w.peek().is_some_and(|x| x.is(b"connection")) {
        w.next();
    } else if w.peek().is_some_and(|x| x.is(b"query")) {
        w.next();
        query_only = true;
    }
    let id = match w.next() {
        Some(Word::Number(n)) => std::str::from_utf8(n).ok().and_then(|n| n.parse().ok()),
        _ => None,
    };
    Some(match (id, w.next()) {
        (Some(id), None) => Ok(Kill { id, query_only }),
        _ => Err(()),
    })
}

/// Byte offset of a word's text inside `sql` (the lexer's slices point into it).
fn offset(sql: &[u8], text: &[u8]) -> Option<usize> {
    let start = (text.as_ptr() as usize).checked_sub(sql.as_ptr() as usize)?;
    (start + text.len() <= sql.len()).then_some(start)
}

/// The statement with every `CONNECTION_ID()` call replaced by `id` (as
/// `CAST(000000000id AS UNSIGNED)`: the column definition MariaDB gives CONNECTION_ID(),
/// INT UNSIGNED of length 10); None when it calls none. A call that is a whole
/// select-list item keeps its column name (`AS` the call's text), as MariaDB names the
/// column by the expression.
pub fn replace_connection_id(sql: &[u8], dialect: Dialect, id: u32) -> Option<Vec<u8>> {
    if !crate::router::contains_ignore_case(sql, b"connection_id") {
        return None;
    }
    let tokens: Vec<Word<'_>> = crate::router::words(sql, dialect).collect();
    let is_select = tokens.first().is_some_and(|w| w.is(b"select"));
    let is_kill = tokens.first().is_some_and(|w| w.is(b"kill"));
    let mut edits: Vec<(usize, usize, Vec<u8>)> = Vec::new();
    let mut depth = 0i32;
    let mut i = 0;
    while i < tokens.len() {
        match tokens[i] {
            Word::Punct(b"(") => depth += 1,
            Word::Punct(b")") => depth -= 1,
            Word::Ident(name)
                if name.eq_ignore_ascii_case(b"connection_id")
                    && tokens.get(i + 1).is_some_and(|w| w.is_punct(b"("))
                    && tokens.get(i + 2).is_some_and(|w| w.is_punct(b")")) =>
            {
                let (Some(mut start), Word::Punct(close)) = (offset(sql, name), tokens[i + 2])
                else {
                    return None;
                };
                let end = offset(sql, close)? + 1;
                if start > 0 && sql[start - 1] == b'`' {
                    start -= 1;
                }
                if start > 0 && sql[start - 1] == b'.' {
                    // `db.connection_id()`: a stored function of that name, not MariaDB's.
                    i += 3;
                    continue;
                }
                // The same column as MariaDB's CONNECTION_ID(): INT UNSIGNED, length 10
                // (`KILL` takes the plain number, which the router reads itself).
                let mut literal = if is_kill {
                    id.to_string().into_bytes()
                } else {
                    format!("CAST({id:010} AS UNSIGNED)").into_bytes()
                };
                let item_before = i > 0
                    && (tokens[i - 1].is(b"select")
                        || tokens[i - 1].is(b"distinct")
                        || tokens[i - 1].is_punct(b","));
                let item_after = match tokens.get(i + 3) {
                    None => true,
                    Some(w) => w.is_punct(b",") || w.is_punct(b";") || w.is(b"from"),
                };
                if is_select && depth == 0 && item_before && item_after {
                    let name = sql.get(start..end)?;
                    literal.extend_from_slice(b" AS `");
                    for &b in name {
                        if b == b'`' {
                            literal.push(b'`');
                        }
                        literal.push(b);
                    }
                    literal.push(b'`');
                }
                edits.push((start, end, literal));
                i += 3;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    if edits.is_empty() {
        return None;
    }
    Some(apply(sql, &edits))
}

fn apply(sql: &[u8], edits: &[(usize, usize, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(sql.len() + 64);
    let mut at = 0;
    for (start, end, text) in edits {
        out.extend_from_slice(sql.get(at..*start).unwrap_or_default());
        out.extend_from_slice(text);
        at = *end;
    }
    out.extend_from_slice(sql.get(at..).unwrap_or_default());
    out
}

/// Words that may follow a table reference and are not its alias.
const NOT_ALIAS: [&[u8]; 22] = [
    b"where",
    b"order",
    b"group",
    b"limit",
    b"join",
    b"left",
    b"right",
    b"inner",
    b"cross",
    b"natural",
    b"straight_join",
    b"on",
    b"using",
    b"union",
    b"having",
    b"window",
    b"for",
    b"lock",
    b"into",
    b"procedure",
    b"except",
    b"intersect",
];

/// The statement with every `information_schema.PROCESSLIST` table reference replaced by
/// a derived table of `rows` (the router's sessions, with MariaDB's column names); None
/// when it names none.
pub fn replace_processlist_table(
    sql: &[u8],
    dialect: Dialect,
    rows: &[ProcessRow],
) -> Option<Vec<u8>> {
    if !crate::router::contains_ignore_case(sql, b"processlist")
        || !crate::router::contains_ignore_case(sql, b"information_schema")
    {
        return None;
    }
    let tokens: Vec<Word<'_>> = crate::router::words(sql, dialect).collect();
    let mut edits = Vec::new();
    for (i, word) in tokens.iter().enumerate() {
        // The lexer gives a qualified name as its last part: the schema is read back.
        let Word::Ident(table) = *word else { continue };
        if !table.eq_ignore_ascii_case(b"processlist") {
            continue;
        }
        let table_at = offset(sql, table)?;
        let Some(start) = schema_before(sql, table_at) else {
            continue;
        };
        let mut end = table_at + table.len();
        if sql.get(end) == Some(&b'`') {
            end += 1;
        }
        let aliased = match tokens.get(i + 1) {
            Some(Word::Ident(w)) => !NOT_ALIAS.iter().any(|k| w.eq_ignore_ascii_case(k)),
            _ => false,
        };
        let mut derived = derived_table(rows);
        if !aliased {
            derived.extend_from_slice(b" AS `PROCESSLIST`");
        }
        edits.push((start, end, derived));
    }
    (!edits.is_empty()).then(|| apply(sql, &edits))
}

/// Where `information_schema.` starts, if it is written right before the name at `at`
/// (backticks allowed around either part).
fn schema_before(sql: &[u8], at: usize) -> Option<usize> {
    let mut end = at;
    if end > 0 && sql[end - 1] == b'`' {
        end -= 1;
    }
    if end == 0 || sql[end - 1] != b'.' {
        return None;
    }
    end -= 1;
    let quoted = end > 0 && sql[end - 1] == b'`';
    if quoted {
        end -= 1;
    }
    const SCHEMA: &[u8] = b"information_schema";
    let start = end.checked_sub(SCHEMA.len())?;
    if !sql[start..end].eq_ignore_ascii_case(SCHEMA) {
        return None;
    }
    if quoted {
        return (start > 0 && sql[start - 1] == b'`').then(|| start - 1);
    }
    let before = start.checked_sub(1).map(|b| sql[b]);
    (!before.is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'$')).then_some(start)
}

/// A text value as a literal that reads the same in any client character set.
fn text(value: Option<&[u8]>) -> String {
    match value {
        None => "NULL".into(),
        Some(v) => format!("CONVERT(X'{}' USING utf8mb4)", hex::encode(v)),
    }
}

/// `(SELECT … UNION ALL SELECT …)` with the columns of MariaDB's
/// `information_schema.PROCESSLIST`.
fn derived_table(rows: &[ProcessRow]) -> Vec<u8> {
    let mut out = String::from("(");
    for (n, r) in rows.iter().enumerate() {
        if n > 0 {
            out.push_str(" UNION ALL ");
        }
        out.push_str(&format!(
            "SELECT {id} AS `ID`, {user} AS `USER`, {host} AS `HOST`, {db} AS `DB`, \
             {command} AS `COMMAND`, {time} AS `TIME`, {state} AS `STATE`, {info} AS `INFO`, \
             {time_ms} AS `TIME_MS`, 0 AS `STAGE`, 0 AS `MAX_STAGE`, 0.000 AS `PROGRESS`, \
             0 AS `MEMORY_USED`, 0 AS `MAX_MEMORY_USED`, 0 AS `EXAMINED_ROWS`, 0 AS `QUERY_ID`, \
             {info_binary} AS `INFO_BINARY`, 0 AS `TID`",
            id = r.id,
            user = text(Some(r.user.as_bytes())),
            host = text(Some(r.host.as_bytes())),
            db = text(r.db.as_deref().map(str::as_bytes)),
            command = text(Some(r.command.as_bytes())),
            time = r.time,
            state = text(Some(if r.info.is_some() { b"executing" } else { b"" })),
            info = text(r.info.as_deref()),
            time_ms = r.time * 1000,
            info_binary = r
                .info
                .as_deref()
                .map_or("NULL".into(), |i| format!("X'{}'", hex::encode(i))),
        ));
    }
    if rows.is_empty() {
        // No session: an empty table with the same columns.
        out.push_str(
            "SELECT 0 AS `ID`, '' AS `USER`, '' AS `HOST`, NULL AS `DB`, '' AS `COMMAND`, \
             0 AS `TIME`, '' AS `STATE`, NULL AS `INFO`, 0 AS `TIME_MS`, 0 AS `STAGE`, \
             0 AS `MAX_STAGE`, 0.000 AS `PROGRESS`, 0 AS `MEMORY_USED`, 0 AS `MAX_MEMORY_USED`, \
             0 AS `EXAMINED_ROWS`, 0 AS `QUERY_ID`, NULL AS `INFO_BINARY`, 0 AS `TID` FROM DUAL WHERE FALSE",
        );
    }
    out.push(')');
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d() -> Dialect {
        Dialect::default()
    }

    #[test]
    fn processlist_and_kill_forms() {
        assert_eq!(processlist(b"SHOW PROCESSLIST", d()), Some(false));
        assert_eq!(processlist(b"show full processlist;", d()), Some(true));
        assert_eq!(processlist(b"SHOW PROCESSLIST x", d()), None);
        assert_eq!(processlist(b"SHOW STATUS", d()), None);
        let k = |id, query_only| Some(Ok(Kill { id, query_only }));
        assert_eq!(kill(b"KILL 5", d()), k(5, false));
        assert_eq!(kill(b"kill connection 7;", d()), k(7, false));
        assert_eq!(kill(b"KILL QUERY 9", d()), k(9, true));
        assert_eq!(kill(b"KILL HARD QUERY 9", d()), k(9, true));
        assert_eq!(kill(b"KILL /* c */ SOFT CONNECTION 3", d()), k(3, false));
        assert_eq!(kill(b"KILL QUERY ID 9", d()), Some(Err(())));
        assert_eq!(kill(b"KILL USER app", d()), Some(Err(())));
        assert_eq!(kill(b"KILL 1 + 1", d()), Some(Err(())));
        assert_eq!(kill(b"SELECT 1", d()), None);
    }

    #[test]
    fn connection_id_calls_become_the_session_id() {
        let r = |s: &str| {
            replace_connection_id(s.as_bytes(), d(), 42).map(|v| String::from_utf8(v).unwrap())
        };
        const ID: &str = "CAST(0000000042 AS UNSIGNED)";
        assert_eq!(
            r("SELECT CONNECTION_ID()").unwrap(),
            format!("SELECT {ID} AS `CONNECTION_ID()`")
        );
        assert_eq!(
            r("select connection_id( ), 1").unwrap(),
            format!("select {ID} AS `connection_id( )`, 1")
        );
        assert_eq!(
            r("SELECT CONNECTION_ID() AS c").unwrap(),
            format!("SELECT {ID} AS c")
        );
        assert_eq!(
            r("INSERT INTO t VALUES (CONNECTION_ID())").unwrap(),
            format!("INSERT INTO t VALUES ({ID})")
        );
        assert_eq!(r("KILL CONNECTION_ID()").unwrap(), "KILL 42");
        assert_eq!(
            r("SELECT 'CONNECTION_ID()', `CONNECTION_ID`()").unwrap(),
            format!("SELECT 'CONNECTION_ID()', {ID} AS ```CONNECTION_ID``()`")
        );
        assert_eq!(r("SELECT db.connection_id()"), None);
        assert_eq!(r("SELECT 'connection_id()'"), None);
        assert_eq!(r("SELECT 1"), None);
    }

    #[test]
    fn the_processlist_table_becomes_the_routers_sessions() {
        let rows = [ProcessRow {
            id: 7,
            user: "app".into(),
            host: "10.0.0.1:5000".into(),
            db: None,
            command: "Query",
            time: 2,
            info: Some(b"SELECT 'x'".to_vec()),
        }];
        let r = |s: &str| {
            replace_processlist_table(s.as_bytes(), d(), &rows)
                .map(|v| String::from_utf8(v).unwrap())
        };
        let q = r("SELECT ID FROM information_schema.PROCESSLIST WHERE USER = 'app'").unwrap();
        assert!(q.starts_with("SELECT ID FROM (SELECT 7 AS `ID`"), "{q}");
        assert!(q.ends_with(") AS `PROCESSLIST` WHERE USER = 'app'"), "{q}");
        let q = r("select * from `INFORMATION_SCHEMA`.`processlist` p").unwrap();
        assert!(q.ends_with(") p"), "{q}");
        assert_eq!(r("SELECT 'information_schema.processlist'"), None);
        assert_eq!(r("SELECT * FROM information_schema.TABLES"), None);
        let empty = replace_processlist_table(
            b"SELECT COUNT(*) FROM information_schema.processlist",
            d(),
            &[],
        )
        .unwrap();
        assert!(String::from_utf8(empty).unwrap().contains("WHERE FALSE"));
    }
}
