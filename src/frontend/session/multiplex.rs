//! Transaction pooling, the session's side (`pool.mode = "transaction"`; docs/sharding.md,
//! "Pool modes"), and in session pooling the connections of a session that has run
//! nothing but session state so far (given back too: a client that only set its
//! driver's defaults holds none). After each command the session gives its backend connections back
//! unless something ties it to them: an open transaction (the server's IN_TRANS flag),
//! `LOCK TABLES`, an open cursor, or state that cannot follow it to another connection
//! ([`Pin`], for the rest of the session). What can follow it does: the replayable state
//! (`SET`, `USE`, COM_SET_OPTION; `frontend::backends`), `LAST_INSERT_ID()` (read before
//! the connection goes back, given to the next one before a statement that reads it) and
//! prepared statements (prepared again on each connection, cached there by text). What
//! a statement leaves for the next one only (its warnings, `ROW_COUNT()`,
//! `FOUND_ROWS()`) is read where it is. After a statement with warnings the router
//! reads `SHOW WARNINGS` on its connection before giving it back, after
//! `SQL_CALC_FOUND_ROWS` it reads `SELECT FOUND_ROWS()`: the next statement, if it is
//! that one, gets that answer verbatim. Any other statement that reads such state takes
//! the previous statement's connection back if nobody used it since (and nothing was read
//! there since), and is refused otherwise — never answered from another connection.

use super::*;
use crate::config::PoolMode;
use crate::protocol::command::stmt_close;
use crate::router::contains_ignore_case;

/// Why a session keeps its backend connections for the rest of its life (until
/// COM_RESET_CONNECTION or COM_CHANGE_USER).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pin {
    /// `CREATE TEMPORARY TABLE`: the table lives on the connection.
    TemporaryTable,
    /// `GET_LOCK()` or `FLUSH TABLES … WITH READ LOCK`: the lock belongs to the connection.
    Lock,
    /// A user variable assigned inside a statement (`SELECT @x := …`, `… INTO @x`), or a
    /// `SET` whose value is an expression (evaluated again by a replay, it could differ).
    UserVariable,
    /// `CALL`: a procedure may change any session state.
    Procedure,
    /// `HANDLER … OPEN`: the handler lives on the connection.
    Handler,
    /// `NEXTVAL()` / `NEXT VALUE FOR` / `SETVAL()`: `LASTVAL()` reads the connection.
    Sequence,
    /// The server reported a session-state change the router did not make (with
    /// CLIENT_SESSION_TRACK: a function that changed autocommit, the database, …).
    StateChange,
}

impl Pin {
    /// The reason's label (metrics, status page: `crate::metrics::PIN_REASONS`).
    pub fn as_str(self) -> &'static str {
        crate::metrics::PIN_REASONS[self as usize]
    }
}

/// The session's transaction-pooling state.
#[derive(Debug, Default)]
pub struct Multiplex {
    /// Why the session keeps its connections for good, if it does.
    pinned: Option<Pin>,
    /// What the last statement left for the next one, to read before the connection goes
    /// back: `SHOW WARNINGS` after warnings, `SELECT FOUND_ROWS()` after
    /// `SQL_CALC_FOUND_ROWS`.
    capture: Option<(ShardId, &'static [u8])>,
    /// Its answer, read before the connection went back: (shard, the statement without
    /// the command byte, the answer's packets).
    captured: Option<(ShardId, &'static [u8], Vec<BytesMut>)>,
    /// The statement being run reads `LAST_INSERT_ID()`.
    pub(super) reads_insert_id: bool,
}

impl Multiplex {
    /// Pins the session (the first reason is kept).
    pub fn pin(&mut self, why: Pin) {
        if self.pinned.is_none() {
            self.pinned = Some(why);
            crate::metrics::session_pinned(why as usize, true);
        }
    }

    /// Unpins (COM_RESET_CONNECTION, COM_CHANGE_USER: the server forgot it all).
    pub fn unpin(&mut self) {
        if let Some(why) = self.pinned.take() {
            crate::metrics::session_pinned(why as usize, false);
        }
    }

    /// Why the session is pinned.
    pub fn pinned(&self) -> Option<Pin> {
        self.pinned
    }
}

impl Drop for Multiplex {
    fn drop(&mut self) {
        self.unpin();
    }
}

/// What a statement's text ties the session to its connection for, if anything. Read
/// conservatively: a word inside a string literal or comment counts too (a needless pin
/// costs multiplexing, never correctness).
pub fn pin_for(sql: &[u8], dialect: Dialect) -> Option<Pin> {
    let first = |w: &[u8]| local::first_word_is(sql, dialect, w);
    let has = |needle: &[u8]| contains_ignore_case(sql, needle);
    if has(b"temporary") {
        return Some(Pin::TemporaryTable);
    }
    if has(b"get_lock") || (has(b"read lock") && first(b"flush")) {
        return Some(Pin::Lock);
    }
    if first(b"call") {
        return Some(Pin::Procedure);
    }
    if first(b"handler") {
        return Some(Pin::Handler);
    }
    if has(b"nextval") || has(b"setval") || has(b"value for") {
        return Some(Pin::Sequence);
    }
    if first(b"set") {
        // `SET @x = NOW()`, `SET @n = (SELECT …)`: a replay would evaluate it again.
        return sql.contains(&b'(').then_some(Pin::UserVariable);
    }
    if sql.windows(2).any(|w| w == b":=") || into_variable(sql) {
        return Some(Pin::UserVariable);
    }
    None
}

/// Whether `INTO` is followed by a user variable (`SELECT … INTO @x`).
fn into_variable(sql: &[u8]) -> bool {
    sql.windows(4).enumerate().any(|(at, w)| {
        w.eq_ignore_ascii_case(b"into")
            && sql[at + 4..]
                .iter()
                .find(|b| !b.is_ascii_whitespace())
                .is_some_and(|b| *b == b'@')
    })
}

/// Whether a statement reads what the previous statement left on its connection:
/// `ROW_COUNT()`, `FOUND_ROWS()`, `@@warning_count`, `@@error_count`, `SHOW WARNINGS`,
/// `SHOW ERRORS`, `GET DIAGNOSTICS`.
pub fn reads_previous_statement(sql: &[u8], dialect: Dialect) -> bool {
    let has = |needle: &[u8]| contains_ignore_case(sql, needle);
    has(b"row_count")
        || reads_found_rows(sql)
        || has(b"warning_count")
        || has(b"error_count")
        || has(b"diagnostics")
        || (local::first_word_is(sql, dialect, b"show") && (has(b"warnings") || has(b"errors")))
}

/// Read before giving a connection back after a statement with warnings.
const SHOW_WARNINGS: &[u8] = b"\x03SHOW WARNINGS";
/// Read before giving a connection back after `SQL_CALC_FOUND_ROWS`.
const SELECT_FOUND_ROWS: &[u8] = b"\x03SELECT FOUND_ROWS()";

/// The answer captured for `sql`, if the client's statement is that one (in any letter
/// case, without surrounding blanks or a final `;`): its packets, with the column name
/// spelled as the client spelled it (MariaDB names the column after the expression).
fn captured_answer(
    captured: &(ShardId, &[u8], Vec<BytesMut>),
    sql: &[u8],
) -> Option<Vec<BytesMut>> {
    let (_, asked, packets) = captured;
    let asked = asked.get(1..)?;
    let trimmed = sql.trim_ascii();
    let trimmed = trimmed.strip_suffix(b";").unwrap_or(trimmed).trim_ascii();
    if !trimmed.eq_ignore_ascii_case(asked) {
        return None;
    }
    // `SELECT FOUND_ROWS()`: the column definition names the expression as typed.
    let expr = trimmed
        .get(7..)
        .filter(|e| e.eq_ignore_ascii_case(b"FOUND_ROWS()"));
    Some(
        packets
            .iter()
            .map(|p| {
                let mut p = p.clone();
                if let Some(expr) = expr {
                    if let Some(at) = p.windows(expr.len()).position(|w| w == b"FOUND_ROWS()") {
                        p[at..at + expr.len()].copy_from_slice(expr);
                    }
                }
                p
            })
            .collect(),
    )
}

/// Whether `found_rows` appears other than as part of `SQL_CALC_FOUND_ROWS`.
fn reads_found_rows(sql: &[u8]) -> bool {
    const WORD: &[u8] = b"found_rows";
    const CALC: &[u8] = b"sql_calc_";
    sql.windows(WORD.len()).enumerate().any(|(at, w)| {
        w.eq_ignore_ascii_case(WORD)
            && !(at >= CALC.len() && sql[at - CALC.len()..at].eq_ignore_ascii_case(CALC))
    })
}

/// Why a statement that reads the previous statement's state is refused.
const PREVIOUS_GONE: &str = "this statement reads what the previous statement left on its backend connection (ROW_COUNT(), FOUND_ROWS(), warnings, GET DIAGNOSTICS), and transaction pooling (pool.mode = \"transaction\") gave that connection to another session meanwhile: run both statements in one transaction (BEGIN … COMMIT), or use SQL_CALC_FOUND_ROWS / read the counts from the OK packet";

impl<S: ClientStream> Session<S> {
    /// The id of `prepare` in the statement cache of the session's connection to `shard`
    /// (transaction pooling), prepared under the session's state.
    pub(super) fn cached_statement(&mut self, shard: ShardId, prepare: &[u8]) -> Option<u32> {
        let state = self.backends.fingerprint();
        let conn = self.backends.pooled(shard)?;
        conn.conn.carried.statements.get(state, prepare)
    }

    /// Records a statement just prepared on the session's connection to `shard` in that
    /// connection's cache (transaction pooling), closing what it pushes out.
    pub(super) async fn cache_statement(&mut self, shard: ShardId, prepare: &[u8], id: u32) {
        if self.backends.mode() != PoolMode::Transaction {
            return;
        }
        let state = self.backends.fingerprint();
        let Some(conn) = self.backends.pooled(shard) else {
            return;
        };
        let evicted = conn.conn.carried.statements.insert(state, prepare, id);
        for old in evicted {
            conn.conn.io.queue(0, &stmt_close(old));
        }
        // A failure here shows on the next command.
        let _ = conn.conn.io.flush().await;
    }

    /// Before a command in transaction pooling: what its text pins, whether it reads
    /// `LAST_INSERT_ID()`, and — for one that reads the previous statement's state — the
    /// previous statement's connection taken back, or the statement refused (`Err`, its
    /// error sent) when that connection served another session since.
    pub(super) async fn before_command(
        &mut self,
        table: &RoutingTable,
        cmd: u8,
        text: &[u8],
        seq: u8,
    ) -> Result<bool, End> {
        if self.backends.mode() != PoolMode::Transaction {
            // Session pooling: only a session that has run nothing but session state
            // gives its connections back (`after_command`), unless that state pins.
            if !self.backends.has_used() && (cmd == COM_QUERY || cmd == COM_STMT_PREPARE) {
                if let Some(why) = pin_for(text, self.dialect) {
                    self.multiplex.pin(why);
                }
            }
            return Ok(true);
        }
        self.multiplex.reads_insert_id = local::mentions_last_insert_id(text);
        if cmd != COM_QUERY && cmd != COM_STMT_PREPARE {
            return Ok(true);
        }
        if let Some(why) = pin_for(text, self.dialect) {
            self.multiplex.pin(why);
        }
        if cmd == COM_QUERY && reads_previous_statement(text, self.dialect) {
            let shard = self.session_shard();
            let captured = self
                .multiplex
                .captured
                .as_ref()
                .filter(|(s, _, _)| *s == shard);
            if !self.backends.holds(shard) {
                if let Some(captured) = captured {
                    // Reading it changed what is on the connection: only the answer read
                    // before is right. As often as asked: reading it changes nothing.
                    match captured_answer(captured, text) {
                        Some(packets) => self.send_packets(seq, &packets).await?,
                        None => {
                            let err = RouteError::Statement(PREVIOUS_GONE);
                            self.reply_error(seq, err.into()).await?;
                        }
                    }
                    return Ok(false);
                }
                if self.backends.can_take_back(shard) {
                    self.backends.take_back(table, shard);
                    if !self.backends.holds(shard) {
                        let err = RouteError::Statement(PREVIOUS_GONE);
                        self.reply_error(seq, err.into()).await?;
                        return Ok(false);
                    }
                }
            }
        }
        self.multiplex.captured = None;
        Ok(true)
    }

    /// After a statement on `shard` was relayed: what its answer says for transaction
    /// pooling (warnings to keep for the next statement, a state change the router did
    /// not make, a changed `LAST_INSERT_ID()`).
    pub(super) fn after_relay(&mut self, shard: ShardId, relayed: &Relayed, sql: &[u8]) {
        if self.backends.mode() != PoolMode::Transaction {
            return;
        }
        if relayed.inserted || self.multiplex.reads_insert_id {
            self.backends.note_insert_id_changed(shard);
        }
        self.multiplex.capture = if relayed.warned {
            Some((shard, SHOW_WARNINGS))
        } else if contains_ignore_case(sql, b"sql_calc_found_rows") {
            Some((shard, SELECT_FOUND_ROWS))
        } else {
            None
        };
        let tracked = crate::protocol::response::SERVER_SESSION_STATE_CHANGED;
        if relayed.status.is_some_and(|s| s & tracked != 0) {
            self.multiplex.pin(Pin::StateChange);
        }
    }

    /// Whether nothing ties the session to its backend connections now.
    pub(super) fn is_free(&self) -> bool {
        self.multiplex.pinned.is_none()
            && self.tx.open_shard().is_none()
            && self.tx.locked().is_none()
            && self.status & SERVER_STATUS_IN_TRANS == 0
            && !self.statements.has_cursor()
    }

    /// After a command in transaction pooling: gives the connections back when the
    /// session is free, after reading what the last statement left for the next one.
    pub(super) async fn after_command(&mut self) -> Result<(), End> {
        if self.backends.mode() != PoolMode::Transaction {
            if self.is_free() {
                self.backends.give_back_unused();
            }
            return Ok(());
        }
        let capture = self.multiplex.capture.take();
        if !self.is_free() {
            return Ok(());
        }
        match self.backends.give_back(capture).await {
            Ok(answer) => {
                self.multiplex.captured = capture
                    .zip(answer)
                    .map(|((shard, sql), packets)| (shard, sql, packets));
                Ok(())
            }
            Err((shard, source)) => {
                // Reading what the statement left (LAST_INSERT_ID(), warnings) failed: that
                // connection is closed, and what the session would read next went with it.
                // The statement's answer is out already, so no second one: the session
                // ends, as when a server closed its connection while the client idled.
                let name = self.ctx.routing.load().shard_name(shard).to_string();
                warn!(parent: &self.span, shard = %name, error = %source, "a backend connection failed after the statement; closing the session");
                self.ctx.health.suspect();
                Err(End::Closed(
                    "a backend connection failed after the statement; the session's state on it is gone",
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pin(sql: &str) -> Option<Pin> {
        pin_for(sql.as_bytes(), Dialect::default())
    }

    #[test]
    fn reason_labels_follow_the_reasons() {
        assert_eq!(Pin::TemporaryTable.as_str(), "temporary_table");
        assert_eq!(Pin::StateChange.as_str(), "state_change");
    }

    #[test]
    fn statements_that_leave_state_on_the_connection_pin() {
        assert_eq!(
            pin("CREATE TEMPORARY TABLE t (a INT)"),
            Some(Pin::TemporaryTable)
        );
        assert_eq!(pin("SELECT GET_LOCK('a', 1)"), Some(Pin::Lock));
        assert_eq!(pin("flush tables with read lock"), Some(Pin::Lock));
        assert_eq!(pin("SELECT @x := 5"), Some(Pin::UserVariable));
        assert_eq!(
            pin("SELECT c INTO @x FROM t WHERE id = 1"),
            Some(Pin::UserVariable)
        );
        assert_eq!(pin("SELECT c FROM t INTO\n  @x"), Some(Pin::UserVariable));
        assert_eq!(pin("SET @t = NOW()"), Some(Pin::UserVariable));
        assert_eq!(pin("/* userid=3 */ CALL p(1)"), Some(Pin::Procedure));
        assert_eq!(pin("HANDLER t OPEN"), Some(Pin::Handler));
        assert_eq!(pin("SELECT NEXTVAL(s)"), Some(Pin::Sequence));
        assert_eq!(pin("SELECT NEXT VALUE FOR s"), Some(Pin::Sequence));
    }

    #[test]
    fn ordinary_statements_and_constant_sets_do_not_pin() {
        for sql in [
            "SELECT c FROM t WHERE id = 1",
            "INSERT INTO t (id, c) VALUES (1, @x)",
            "UPDATE t SET c = 'a' WHERE id = 2",
            "SET NAMES utf8mb4",
            "SET autocommit = 0",
            "SET @x = 5, @y = 'abc'",
            "SET sql_mode = 'STRICT_TRANS_TABLES'",
            "SELECT * FROM t WHERE id = 1 FOR UPDATE",
        ] {
            assert_eq!(pin(sql), None, "{sql}");
        }
    }

    #[test]
    fn reads_of_the_previous_statement_are_recognised() {
        let reads = |s: &str| reads_previous_statement(s.as_bytes(), Dialect::default());
        assert!(reads("SELECT ROW_COUNT()"));
        assert!(reads("select found_rows() as n"));
        assert!(reads("SHOW WARNINGS"));
        assert!(reads("SHOW COUNT(*) ERRORS"));
        assert!(reads("SELECT @@warning_count"));
        assert!(reads("GET DIAGNOSTICS @n = NUMBER"));
        assert!(!reads("SELECT * FROM errors WHERE id = 1"));
        assert!(!reads("SELECT SQL_CALC_FOUND_ROWS * FROM t LIMIT 1"));
        assert!(reads("SELECT SQL_CALC_FOUND_ROWS FOUND_ROWS()"));
        assert!(!reads("SELECT c FROM t WHERE id = 1"));
    }
}
