//! Every error dbrouter itself reports to a client, and the one place where each becomes
//! a MySQL ERR packet (code, SQLSTATE, message). docs/errors.md lists them with what the
//! client should do; keep the two in step. Errors that come from a backend are relayed
//! unchanged and never pass through here.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::protocol::command;
use crate::protocol::packets::err_packet;

/// An error the router answers a client with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// Unknown account or wrong password.
    #[error("Access denied for user '{user}'@'{host}' (using password: {})", if *.using_password { "YES" } else { "NO" })]
    AccessDenied {
        /// Account name the client gave.
        user: String,
        /// Client address.
        host: String,
        /// Whether the client sent a non-empty password.
        using_password: bool,
    },
    /// The client asked for an authentication method dbrouter cannot complete.
    #[error("Client does not support authentication protocol requested by server; {0}")]
    AuthNotSupported(String),
    /// A connection without TLS where TLS is required: by `server.require_secure_transport`
    /// (checked before authentication) or by the account's `require_tls` (after it).
    #[error("{}", insecure_transport_message(account.as_deref()))]
    InsecureTransport {
        /// The account that requires TLS (None: the router requires it of everyone).
        account: Option<String>,
    },
    /// The session holds `limits.max_prepared_per_session` statements (MySQL's text).
    #[error("Can't create more than max_prepared_stmt_count statements (current value: {max}): close prepared statements you no longer need")]
    TooManyStatements {
        /// The limit.
        max: usize,
    },
    /// The session holds `limits.max_session_bytes` of statement texts and long data.
    #[error("This session holds too much prepared-statement text and long data (limits.max_session_bytes = {limit} bytes): close prepared statements you no longer need")]
    SessionMemory {
        /// The limit.
        limit: usize,
    },
    /// Too many connections from the client's address are in their connection phase.
    #[error("Too many connections from this address are logging in at once (limits.max_logins_per_address = {max}): retry in a second")]
    TooManyLogins {
        /// The limit.
        max: usize,
    },
    /// The account has `max_connections` sessions already (MySQL's text).
    #[error(
        "User '{account}' has exceeded the 'max_user_connections' resource (current value: {max})"
    )]
    UserLimit {
        /// The account.
        account: String,
        /// Its limit.
        max: usize,
    },
    /// The handshake response was malformed or asked for something not offered.
    #[error("Bad handshake: {0}")]
    BadHandshake(String),
    /// A command byte the server does not know.
    #[error("Unknown command 0x{0:02x}")]
    UnknownCommand(u8),
    /// A command dbrouter knows but does not relay, with the reason.
    #[error("dbrouter does not support {name} through the router: {why}")]
    UnsupportedCommand {
        /// Protocol name of the command.
        name: &'static str,
        /// Why, and what to do instead.
        why: &'static str,
    },
    /// A client packet larger than `server.max_packet_size`.
    #[error("Got a packet bigger than 'max_allowed_packet' bytes (dbrouter limit: {limit} bytes, server.max_packet_size)")]
    PacketTooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// A client packet with the wrong sequence id.
    #[error("Got packets out of order")]
    PacketsOutOfOrder,
    /// `server.max_connections` reached.
    #[error(
        "Too many connections (dbrouter limit: {0}); retry later or raise server.max_connections"
    )]
    TooManyConnections(usize),
    /// A backend could not be reached or refused dbrouter's service login.
    #[error(
        "dbrouter: shard '{shard}' master {addr} is unavailable: {detail} (retryable: retry in 1s)"
    )]
    BackendUnavailable {
        /// Shard name.
        shard: String,
        /// Master address.
        addr: String,
        /// What failed.
        detail: String,
    },
    /// The backend connection broke while a response was due.
    #[error("dbrouter: lost the connection to shard '{shard}' during the statement ({detail}); its outcome is unknown, reconnect and check before retrying")]
    BackendLost {
        /// Shard name.
        shard: String,
        /// What failed.
        detail: String,
    },
    /// The backend sent nothing for `timeouts.backend_read_ms` while a response was due.
    #[error("dbrouter: shard '{shard}' did not answer within {after:?} (timeouts.backend_read_ms); its outcome is unknown, reconnect and check before retrying")]
    BackendTimeout {
        /// Shard name.
        shard: String,
        /// The configured timeout.
        after: Duration,
    },
    /// Every backend connection of a shard master is in use.
    #[error("dbrouter: shard '{shard}' is busy: all {max} connections to {addr} are in use and none came free within {waited:?} (retryable: retry in 1s)")]
    PoolExhausted {
        /// Shard name.
        shard: String,
        /// Master address.
        addr: String,
        /// `pool.max_per_shard`.
        max: usize,
        /// How long the statement waited.
        waited: Duration,
        /// The wait queue was full (`pool.max_waiting_per_shard`): refused at once.
        queue_full: bool,
    },
    /// The session's state could not be restored on a newly opened shard connection.
    #[error("dbrouter: could not restore this session's state (SET statements, database) on shard '{shard}': {detail}")]
    StateReplay {
        /// Shard name.
        shard: String,
        /// The backend's error.
        detail: String,
    },
    /// The statement cannot be routed to one shard.
    #[error("dbrouter: {0}")]
    Route(#[from] crate::router::RouteError),
    /// A statement inside a transaction needs another shard than the transaction's.
    #[error("dbrouter: this transaction runs on shard '{tx_shard}' but the statement needs shard '{shard}' (another user); the transaction has been rolled back. Keep each transaction to the data of one user")]
    CrossShardTransaction {
        /// The transaction's shard.
        tx_shard: String,
        /// The statement's shard.
        shard: String,
    },
    /// LOCK TABLES holds the session on one shard and the statement needs another.
    #[error("dbrouter: LOCK TABLES holds tables on shard '{shard}' and this statement needs another shard; run UNLOCK TABLES first (nothing was executed)")]
    TablesLocked {
        /// The shard holding the locks.
        shard: String,
    },
    /// A transaction was found open on a second shard and rolled back.
    #[error("dbrouter: {0}")]
    RolledBack(&'static str),
    /// A prepared statement's shard-key parameter cannot be used.
    #[error("dbrouter: the shard-key parameter (#{index}) of this prepared statement {problem}")]
    KeyParameter {
        /// 1-based parameter position.
        index: u16,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// A statement id the client never prepared (or closed).
    #[error("Unknown prepared statement handler ({id}) given to {command}")]
    UnknownStatement {
        /// The id.
        id: u32,
        /// The command it came with.
        command: &'static str,
    },
    /// The shard's master changed (failover) while a transaction was open on the old one.
    #[error("dbrouter: the master of shard '{shard}' changed during this transaction; the transaction was lost with the old master's connection (retryable: run the whole transaction again)")]
    MasterChanged {
        /// Shard name.
        shard: String,
    },
    /// The shard is switching masters and did not finish within the buffer limits.
    #[error("dbrouter: shard '{shard}' is switching masters and the statement could not be held longer ({why}); nothing was executed (retryable: retry in 1s)")]
    ShardSwitching {
        /// Shard name.
        shard: String,
        /// Which limit was hit.
        why: String,
    },
    /// A move held the statement's user (its last rows were being copied) for longer than
    /// the router may hold a statement.
    #[error("dbrouter: this user's data is being moved to another shard and the statement could not be held longer ({why}); nothing was executed (retryable: retry in 1s)")]
    UserMoving {
        /// Which limit was hit.
        why: String,
    },
    /// The router has been cut off from ZooKeeper for longer than
    /// `topology.stale_serving_ms`: its topology may be out of date.
    #[error("dbrouter: this router has been cut off from ZooKeeper for longer than topology.stale_serving_ms and cannot know where users are now; nothing was executed (retryable: retry in 1s, or through another router)")]
    CutOff,
    /// A client packet whose layout is wrong.
    #[error("Malformed communication packet: {0}")]
    MalformedPacket(String),
    /// A bug or an impossible state; the message says what.
    #[error("dbrouter internal error: {0}")]
    Internal(String),
}

/// Text for a log line with client-controlled parts: control characters (a newline that
/// would start a forged log line, terminal escapes) written as escapes.
pub fn escape_control(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

fn insecure_transport_message(account: Option<&str>) -> String {
    let how = "connect with TLS (mariadb --ssl, or the driver's TLS option)";
    match account {
        None => format!("Connections using insecure transport are prohibited while --require_secure_transport=ON: {how}"),
        Some(a) => format!("Account '{a}' requires TLS (require_tls): {how}"),
    }
}

impl ClientError {
    /// The MySQL error code.
    pub fn code(&self) -> u16 {
        match self {
            ClientError::AccessDenied { .. } => 1045,
            ClientError::AuthNotSupported(_) => 1251,
            ClientError::BadHandshake(_) => 1043,
            ClientError::InsecureTransport { .. } => 3159,
            ClientError::TooManyLogins { .. } => 1040,
            ClientError::UserLimit { .. } => 1226,
            ClientError::TooManyStatements { .. } => 1461,
            ClientError::SessionMemory { .. } => 1041,
            ClientError::UnknownCommand(_) | ClientError::UnsupportedCommand { .. } => 1047,
            ClientError::PacketTooLarge { .. } => 1153,
            ClientError::PacketsOutOfOrder => 1156,
            ClientError::TooManyConnections(_) => 1040,
            ClientError::BackendUnavailable { .. }
            | ClientError::MasterChanged { .. }
            | ClientError::ShardSwitching { .. }
            | ClientError::UserMoving { .. }
            | ClientError::CutOff => 1053,
            ClientError::BackendLost { .. } => 1158,
            ClientError::BackendTimeout { .. } => 1159,
            ClientError::PoolExhausted { .. } => 1040,
            ClientError::Route(_)
            | ClientError::CrossShardTransaction { .. }
            | ClientError::TablesLocked { .. }
            | ClientError::RolledBack(_)
            | ClientError::KeyParameter { .. } => 1235,
            ClientError::UnknownStatement { .. } => 1243,
            ClientError::MalformedPacket(_) => 1835,
            ClientError::StateReplay { .. } | ClientError::Internal(_) => 1105,
        }
    }

    /// The SQLSTATE.
    pub fn sql_state(&self) -> &'static [u8; 5] {
        match self {
            ClientError::AccessDenied { .. } => b"28000",
            ClientError::AuthNotSupported(_)
            | ClientError::InsecureTransport { .. }
            | ClientError::TooManyLogins { .. }
            | ClientError::TooManyConnections(_)
            | ClientError::PoolExhausted { .. } => b"08004",
            ClientError::Route(_)
            | ClientError::CrossShardTransaction { .. }
            | ClientError::TablesLocked { .. }
            | ClientError::RolledBack(_)
            | ClientError::KeyParameter { .. }
            | ClientError::UserLimit { .. }
            | ClientError::TooManyStatements { .. } => b"42000",
            ClientError::SessionMemory { .. } => b"HY000",
            ClientError::UnknownStatement { .. }
            | ClientError::MalformedPacket(_)
            | ClientError::StateReplay { .. }
            | ClientError::Internal(_) => b"HY000",
            _ => b"08S01",
        }
    }

    /// Whether the client may simply retry (on a new connection where it was closed).
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            ClientError::TooManyConnections(_)
                | ClientError::TooManyLogins { .. }
                | ClientError::UserLimit { .. }
                | ClientError::BackendUnavailable { .. }
                | ClientError::PoolExhausted { .. }
                | ClientError::MasterChanged { .. }
                | ClientError::ShardSwitching { .. }
                | ClientError::UserMoving { .. }
                | ClientError::CutOff
        )
    }

    /// Whether the client connection must be closed after sending this error.
    pub fn closes_connection(&self) -> bool {
        !matches!(
            self,
            ClientError::UnknownCommand(_)
                | ClientError::UnsupportedCommand { .. }
                | ClientError::TooManyStatements { .. }
                | ClientError::SessionMemory { .. }
                | ClientError::PoolExhausted { .. }
                | ClientError::Route(_)
                | ClientError::CrossShardTransaction { .. }
                | ClientError::TablesLocked { .. }
                | ClientError::RolledBack(_)
                | ClientError::KeyParameter { .. }
                | ClientError::UnknownStatement { .. }
                | ClientError::MalformedPacket(_)
                | ClientError::StateReplay { .. }
                | ClientError::MasterChanged { .. }
                | ClientError::ShardSwitching { .. }
                | ClientError::UserMoving { .. }
                | ClientError::CutOff
        )
    }

    /// A short stable label for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            ClientError::AccessDenied { .. } => "access_denied",
            ClientError::AuthNotSupported(_) => "auth_not_supported",
            ClientError::BadHandshake(_) => "bad_handshake",
            ClientError::InsecureTransport { .. } => "insecure_transport",
            ClientError::TooManyLogins { .. } => "too_many_logins",
            ClientError::UserLimit { .. } => "user_limit",
            ClientError::TooManyStatements { .. } => "too_many_statements",
            ClientError::SessionMemory { .. } => "session_memory",
            ClientError::UnknownCommand(_) => "unknown_command",
            ClientError::UnsupportedCommand { .. } => "unsupported_command",
            ClientError::PacketTooLarge { .. } => "packet_too_large",
            ClientError::PacketsOutOfOrder => "packets_out_of_order",
            ClientError::TooManyConnections(_) => "too_many_connections",
            ClientError::BackendUnavailable { .. } => "backend_unavailable",
            ClientError::BackendLost { .. } => "backend_lost",
            ClientError::BackendTimeout { .. } => "backend_timeout",
            ClientError::PoolExhausted { .. } => "pool_exhausted",
            ClientError::StateReplay { .. } => "state_replay",
            ClientError::Route(_) => "route",
            ClientError::CrossShardTransaction { .. } => "cross_shard_transaction",
            ClientError::TablesLocked { .. } => "tables_locked",
            ClientError::RolledBack(_) => "rolled_back",
            ClientError::KeyParameter { .. } => "key_parameter",
            ClientError::UnknownStatement { .. } => "unknown_statement",
            ClientError::MalformedPacket(_) => "malformed_packet",
            ClientError::MasterChanged { .. } => "master_changed",
            ClientError::ShardSwitching { .. } => "shard_switching",
            ClientError::UserMoving { .. } => "user_moving",
            ClientError::CutOff => "cut_off",
            ClientError::Internal(_) => "internal",
        }
    }

    /// The message the client sees. Without `server.error_detail` it leaves out what only
    /// operators need (backend addresses, socket and internal errors): that is in the log
    /// line, which prints the whole error ([`std::fmt::Display`]).
    pub fn client_text(&self) -> String {
        if ERROR_DETAIL.load(Ordering::Relaxed) {
            return self.to_string();
        }
        match self {
            ClientError::BackendUnavailable {
                shard,
                addr,
                detail,
            } => format!(
                "dbrouter: shard '{shard}' master is unavailable: {} (retryable: retry in 1s)",
                scrub(detail, addr)
            ),
            ClientError::BackendLost { shard, .. } => format!(
                "dbrouter: lost the connection to shard '{shard}' during the statement; its outcome is unknown, reconnect and check before retrying"
            ),
            ClientError::PoolExhausted {
                shard,
                max,
                queue_full: true,
                ..
            } => format!(
                "dbrouter: shard '{shard}' is busy: all {max} connections are in use and too many statements wait for one already (pool.max_waiting_per_shard) (retryable: retry in 1s)"
            ),
            ClientError::PoolExhausted {
                shard, max, waited, ..
            } => format!(
                "dbrouter: shard '{shard}' is busy: all {max} connections are in use and none came free within {waited:?} (retryable: retry in 1s)"
            ),
            ClientError::Internal(_) => {
                "dbrouter internal error (the router's log has the details)".to_string()
            }
            other => other.to_string(),
        }
    }

    /// The ERR packet payload (with [`ClientError::client_text`]).
    pub fn to_packet(&self) -> Vec<u8> {
        err_packet(self.code(), self.sql_state(), &self.client_text())
    }
}

/// A backend failure's text as clients may see it: the server's address replaced, OS
/// error numbers left out (what the server said, e.g. "Too many connections", stays).
fn scrub(detail: &str, addr: &str) -> String {
    let mut text = detail.replace(addr, "the master");
    while let Some(start) = text.find(" (os error ") {
        match text[start..].find(')') {
            Some(end) => text.replace_range(start..start + end + 1, ""),
            None => break,
        }
    }
    text
}

/// `server.error_detail`: whether clients see internal details in error messages.
static ERROR_DETAIL: AtomicBool = AtomicBool::new(false);

/// Sets `server.error_detail` for the process (once, at start-up).
pub fn set_error_detail(on: bool) {
    ERROR_DETAIL.store(on, Ordering::Relaxed);
}

impl ClientError {
    /// The error for a command byte the router will not relay, if it is one of those.
    pub fn for_command(cmd: u8) -> Option<Self> {
        use command::*;
        let unsupported = |why| {
            Some(ClientError::UnsupportedCommand {
                name: command::name(cmd),
                why,
            })
        };
        match cmd {
            COM_SHUTDOWN => unsupported("shut backends down through their own admin access"),
            COM_PROCESS_INFO => unsupported("use SHOW PROCESSLIST"),
            COM_DEBUG | COM_REFRESH => unsupported("run it on the backend with an admin account"),
            COM_CREATE_DB | COM_DROP_DB => unsupported("use CREATE DATABASE / DROP DATABASE"),
            COM_BINLOG_DUMP | COM_BINLOG_DUMP_GTID | COM_REGISTER_SLAVE => {
                unsupported("replicate from a shard's master directly, not through the router")
            }
            COM_QUIT
            | COM_INIT_DB
            | COM_QUERY
            | COM_FIELD_LIST
            | COM_STATISTICS
            | COM_PING
            | COM_CHANGE_USER
            | COM_STMT_PREPARE
            | COM_STMT_EXECUTE
            | COM_STMT_SEND_LONG_DATA
            | COM_STMT_CLOSE
            | COM_STMT_RESET
            | COM_SET_OPTION
            | COM_STMT_FETCH
            | COM_RESET_CONNECTION
            | COM_STMT_BULK_EXECUTE
            | COM_PROCESS_KILL => None,
            _ => Some(ClientError::UnknownCommand(cmd)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::packets::parse_err;

    /// One error of every kind. The match below has no wildcard: a new variant does not
    /// compile until it is listed here, and so checked against docs/errors.md.
    fn one_of_each() -> Vec<ClientError> {
        let s = || String::from("x");
        let all = vec![
            ClientError::AccessDenied {
                user: s(),
                host: s(),
                using_password: true,
            },
            ClientError::AuthNotSupported(s()),
            ClientError::BadHandshake(s()),
            ClientError::InsecureTransport { account: None },
            ClientError::InsecureTransport { account: Some(s()) },
            ClientError::TooManyLogins { max: 1 },
            ClientError::TooManyStatements { max: 1 },
            ClientError::SessionMemory { limit: 1 },
            ClientError::UserLimit {
                account: s(),
                max: 1,
            },
            ClientError::UnknownCommand(0x1f),
            ClientError::UnsupportedCommand {
                name: "x",
                why: "x",
            },
            ClientError::PacketTooLarge { limit: 1 },
            ClientError::PacketsOutOfOrder,
            ClientError::TooManyConnections(1),
            ClientError::BackendUnavailable {
                shard: s(),
                addr: s(),
                detail: s(),
            },
            ClientError::BackendLost {
                shard: s(),
                detail: s(),
            },
            ClientError::BackendTimeout {
                shard: s(),
                after: Duration::from_secs(1),
            },
            ClientError::PoolExhausted {
                shard: s(),
                addr: s(),
                max: 1,
                waited: Duration::from_secs(1),
                queue_full: false,
            },
            ClientError::StateReplay {
                shard: s(),
                detail: s(),
            },
            ClientError::Route(crate::router::RouteError::Statement("x")),
            ClientError::CrossShardTransaction {
                tx_shard: s(),
                shard: s(),
            },
            ClientError::TablesLocked { shard: s() },
            ClientError::RolledBack("x"),
            ClientError::KeyParameter {
                index: 1,
                problem: "x",
            },
            ClientError::UnknownStatement {
                id: 1,
                command: "x",
            },
            ClientError::MasterChanged { shard: s() },
            ClientError::ShardSwitching {
                shard: s(),
                why: s(),
            },
            ClientError::UserMoving { why: s() },
            ClientError::CutOff,
            ClientError::MalformedPacket(s()),
            ClientError::Internal(s()),
        ];
        for e in &all {
            match e {
                ClientError::AccessDenied { .. }
                | ClientError::AuthNotSupported(_)
                | ClientError::BadHandshake(_)
                | ClientError::InsecureTransport { .. }
                | ClientError::TooManyLogins { .. }
                | ClientError::UserLimit { .. }
                | ClientError::TooManyStatements { .. }
                | ClientError::SessionMemory { .. }
                | ClientError::UnknownCommand(_)
                | ClientError::UnsupportedCommand { .. }
                | ClientError::PacketTooLarge { .. }
                | ClientError::PacketsOutOfOrder
                | ClientError::TooManyConnections(_)
                | ClientError::BackendUnavailable { .. }
                | ClientError::BackendLost { .. }
                | ClientError::BackendTimeout { .. }
                | ClientError::PoolExhausted { .. }
                | ClientError::StateReplay { .. }
                | ClientError::Route(_)
                | ClientError::CrossShardTransaction { .. }
                | ClientError::TablesLocked { .. }
                | ClientError::RolledBack(_)
                | ClientError::KeyParameter { .. }
                | ClientError::UnknownStatement { .. }
                | ClientError::MasterChanged { .. }
                | ClientError::ShardSwitching { .. }
                | ClientError::UserMoving { .. }
                | ClientError::CutOff
                | ClientError::MalformedPacket(_)
                | ClientError::Internal(_) => {}
            }
        }
        all
    }

    #[test]
    fn clients_never_see_backend_addresses_or_socket_errors_by_default() {
        let e = ClientError::BackendUnavailable {
            shard: "s1".into(),
            addr: "10.0.0.7:3306".into(),
            detail: "Connection refused (os error 111)".into(),
        };
        let full = ClientError::BackendUnavailable {
            shard: "s1".into(),
            addr: "10.0.0.7:3306".into(),
            detail: "10.0.0.7:3306 refused the login: ERROR 1040 (08004): Too many connections"
                .into(),
        };
        assert_eq!(
            full.client_text(),
            "dbrouter: shard 's1' master is unavailable: the master refused the login: ERROR 1040 (08004): Too many connections (retryable: retry in 1s)"
        );
        let client = String::from_utf8_lossy(&e.to_packet()).into_owned();
        assert!(client.contains("Connection refused"), "{client}");
        assert!(
            client.contains("shard 's1'") && client.contains("retryable"),
            "{client}"
        );
        assert!(
            !client.contains("10.0.0.7") && !client.contains("os error"),
            "{client}"
        );
        // The log line has everything.
        assert!(e.to_string().contains("10.0.0.7:3306"));
        let internal = ClientError::Internal("stream out of step at 0x42".into());
        assert!(!internal.client_text().contains("0x42"));
        // Nothing else is hidden.
        let route = ClientError::Route(crate::router::RouteError::Statement("split it"));
        assert_eq!(route.client_text(), route.to_string());
    }

    /// Errors the session sends in MariaDB's own words, not as a `ClientError`.
    const SENT_AS_MARIADB: [(u16, &str); 5] = [
        (1305, "42000"),
        (1568, "25001"),
        (1094, "HY000"),
        (1317, "70100"),
        (1927, "70100"),
    ];

    #[test]
    fn every_error_sent_is_in_the_catalogue_and_nothing_else_is() {
        let doc = include_str!("../docs/errors.md");
        let rows: Vec<(u16, String)> = doc
            .lines()
            .filter_map(|l| {
                let mut cells = l.split('|').map(str::trim).skip(1);
                let code = cells.next()?.parse::<u16>().ok()?;
                let state = cells.next()?.to_string();
                Some((code, state))
            })
            .collect();
        let mut sent: Vec<(u16, String)> = one_of_each()
            .iter()
            .map(|e| {
                let state = String::from_utf8_lossy(e.sql_state()).into_owned();
                (e.code(), state)
            })
            .collect();
        sent.extend(SENT_AS_MARIADB.iter().map(|(c, s)| (*c, s.to_string())));
        for (code, state) in &sent {
            assert!(
                rows.contains(&(*code, state.clone())),
                "docs/errors.md has no row for {code} / {state}"
            );
        }
        for row in &rows {
            assert!(
                sent.contains(row),
                "docs/errors.md lists {} / {} which dbrouter never sends",
                row.0,
                row.1
            );
        }
    }

    #[test]
    fn access_denied_matches_mysql_text() {
        let e = ClientError::AccessDenied {
            user: "app".into(),
            host: "127.0.0.1".into(),
            using_password: true,
        };
        let p = parse_err(&e.to_packet()).unwrap();
        assert_eq!(p.code, 1045);
        assert_eq!(p.sql_state, "28000");
        assert_eq!(
            p.message,
            "Access denied for user 'app'@'127.0.0.1' (using password: YES)"
        );
    }

    #[test]
    fn command_classification() {
        assert_eq!(ClientError::for_command(command::COM_QUERY), None);
        assert_eq!(
            ClientError::for_command(0x42),
            Some(ClientError::UnknownCommand(0x42))
        );
        let e = ClientError::for_command(command::COM_SHUTDOWN).unwrap();
        assert_eq!(e.code(), 1047);
        assert!(!e.closes_connection());
    }
}
