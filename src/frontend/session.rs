//! One client connection from greeting to goodbye: the connection phase (greeting,
//! authentication against the configured accounts, the first backend connection with the
//! client's database, collation, capabilities and attributes), then the command loop:
//! each statement is routed (see [`crate::router`]) to one shard's master, within the
//! session's transaction, and its response relayed back.
//!
//! A statement goes through named phases, one file each in `session/`: `route.rs` (what
//! it is and where it runs), `transaction_control.rs` (BEGIN / COMMIT / savepoints and the
//! transaction's invariants), `execute.rs` (acquire a connection, send, relay, settle),
//! `state.rs` (session state on every connection), `local_answers.rs` (what the router
//! answers itself) and `prepared.rs` (prepared statements across shards). This file holds
//! the session, its connection phase and its command loop.

use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::BytesMut;
use mysql_common::constants::{CapabilityFlags, MariadbCapabilities};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tracing::{debug, info, warn, Instrument, Span};

use crate::backend::exchange::ExchangeError;
use crate::backend::Pools;
use crate::config::{BackendAccount, Config, SharedConfig};
use crate::error::ClientError;
use crate::net::{ClientIo, ClientStream, NetError, PacketConn, TlsConfig, Watchdog};
use crate::protocol::auth::{new_scramble, AuthMethod, SCRAMBLE_LEN};
use crate::protocol::command::{self, *};
use crate::protocol::handshake::{
    auth_switch, greeting, is_ssl_request, offered_capabilities, parse_change_user,
    parse_handshake_response, ClientLogin, LoginParseError,
};
use crate::protocol::packets::{add_ok_status, err_packet, ok_packet, ERR_HEADER};
use crate::protocol::response::{ResponseKind, SERVER_STATUS_AUTOCOMMIT, SERVER_STATUS_IN_TRANS};
use crate::protocol::resultset::text_result_set;
use crate::router::dialect::{may_change_dialect, Dialect};
use crate::router::key::{self, KeyProblem, Shape, StatementKind};
use crate::router::ring::ShardId;
use crate::router::{key_from_text, Route, RouteError, RoutingTable, Why};

use super::accounts::{Account, AccountDirectory};
use super::backends::{exchange, BackendIdentity, LoginState, SessionBackends};
use super::failure::{Failure, Reply};
use super::local;
use super::login_limits::{AccountSession, LoginLimits};
use super::relay::{relay_response, RelayError, RelayTimeouts, Relayed};
use super::sessions::{Command, SessionInfo, SessionRegistry};
use super::transaction::{
    one_shot_characteristics, Observation, PendingAnswer, Transaction, TxStatement,
};
use prepared::Statements;

mod execute;
mod failover_hold;
mod local_answers;
mod login;
pub mod multiplex;
pub mod prepared;
mod route;
mod state;
mod transaction_control;

use login::{admit, authenticate, connection_phase, login_ok, login_state};

/// Largest packet accepted during the connection phase.
const HANDSHAKE_PACKET_LIMIT: usize = 64 * 1024;

/// What every session shares: configuration, the routing snapshot, the pools, and facts
/// learned at start-up.
pub struct SessionContext {
    /// The configuration in force (swapped whole by a reload).
    pub config: SharedConfig,
    /// Client connections at once (`server.max_connections`, resized by a reload).
    pub connections: Arc<crate::net::Slots>,
    /// The current routing snapshot (swapped whole when the topology changes).
    pub routing: Arc<ArcSwap<RoutingTable>>,
    /// The latest health of every server.
    pub health: Arc<crate::backend::health::HealthRegistry>,
    /// Where the topology comes from and how that source is doing.
    pub topology: Arc<crate::topology::watcher::TopologyStatus>,
    /// Backend connection pools.
    pub pools: Arc<Pools>,
    /// Server version announced in the greeting.
    pub server_version: String,
    /// Default collation announced in the greeting.
    pub server_collation: u8,
    /// MariaDB extended capabilities offered in the greeting: those of
    /// [`crate::protocol::handshake::offered_mariadb_capabilities`] the global shard's master offered at start-up
    /// (none for MySQL). Every shard must offer them too.
    pub mariadb_capabilities: MariadbCapabilities,
    /// Tells sessions when the router starts draining.
    pub drain: super::drain::DrainSignal,
    /// Statements currently held because their shard is switching masters.
    pub held: Arc<std::sync::atomic::AtomicUsize>,
    /// Wake-up requests for hibernated users (served on a hibernation shard).
    pub wakeups: Arc<crate::topology::wakeups::WakeupQueue>,
    /// The TLS offered to clients (`[server.tls]`), reloadable.
    pub tls: Option<Arc<TlsConfig>>,
    /// Login abuse limits and their counts (`[limits]`).
    pub logins: Arc<LoginLimits>,
    /// The accounts clients log in with (`[[users]]`, `[auth] source`).
    pub accounts: Arc<AccountDirectory>,
    /// The open sessions: ids, process list, KILL.
    pub sessions: Arc<SessionRegistry>,
    /// Carries out KILLs of this router's sessions.
    pub killer: super::kill::Killer,
    /// Passes KILLs of other routers' sessions on (with a ZooKeeper topology).
    pub remote_kills: Option<Arc<super::kill::RemoteKills>>,
}

/// Why a session ended (for the log line at its end).
#[derive(Debug)]
pub(super) enum End {
    /// The client said COM_QUIT or closed the socket between commands.
    ClientQuit,
    /// An error was reported to the client (or could not be) and the connection closed.
    Error(ClientError),
    /// The client connection failed; nothing could be sent.
    ClientGone(NetError),
    /// Idle for longer than `timeouts.idle_ms`, drained at shutdown, or refused by a backend.
    Closed(&'static str),
}

/// A session in its command phase.
pub(super) struct Session<S: ClientStream = TcpStream> {
    pub(super) client: PacketConn<ClientIo<S>>,
    pub(super) ctx: Arc<SessionContext>,
    pub(super) backends: SessionBackends,
    /// The config this statement runs with: the one in force when it began.
    pub(super) config: Arc<Config>,
    /// Notices a reload with one atomic load per command.
    config_cache: arc_swap::Cache<SharedConfig, Arc<Config>>,
    peer: SocketAddr,
    scramble: [u8; SCRAMBLE_LEN],
    /// The shard of the last statement: keyless statements (`SELECT LAST_INSERT_ID()`)
    /// go there.
    pub(super) current: ShardId,
    /// The transaction, locks and last insert, as routing sees them.
    pub(super) tx: Transaction,
    /// A stray transaction was rolled back after its statement's answer had gone out: the
    /// next command is answered with this error.
    rolled_back: Option<&'static str>,
    /// Canonical key of the session pin (`SET @dbrouter_userid = …`).
    pin: Option<Vec<u8>>,
    /// How MariaDB reads this session's statements (sql_mode, client character set,
    /// version), as last read back from its backend connections: statements are scanned
    /// with it, and checked again against the dialect of the connection that runs them.
    pub(super) dialect: Dialect,
    /// Status flags of the last backend response (for locally answered OKs).
    pub(super) status: u16,
    pub(super) statements: Statements,
    /// Shards found with a transaction the session must not have (see `note_status`).
    stray: Vec<ShardId>,
    /// Kind of the last error the router itself answered with (statement metrics).
    refused: Option<&'static str>,
    /// A prepared statement's execute refused as read-only by a master that has since been
    /// replaced: the snapshot naming the new one and the refusal (sent if it cannot be
    /// tried there). Set by the execute phase, taken by `prepared::execute`.
    reroute: Option<(Arc<RoutingTable>, Vec<u8>)>,
    /// The routing snapshot the last statement used; refreshed when the topology changes
    /// (kept so that a statement costs no reference-count traffic on the shared one).
    table: Option<Arc<RoutingTable>>,
    /// The one timer behind the idle, backend-read and client-write limits.
    watchdog: Watchdog,
    /// When the last command began (a client idle since longer than [`IDLE_CHECK_AFTER`]
    /// gets its connections checked for a server that closed them meanwhile).
    last_command: std::time::Instant,
    /// The connection's log span (`conn{id peer}`): events name it as their parent
    /// instead of entering it on every poll of the session.
    pub(super) span: Span,
    /// This session counted in its account's sessions (`[[users]] max_connections`).
    account: Option<AccountSession>,
    /// This session in the router's registry (process list, KILL).
    me: Arc<SessionInfo>,
    /// Transaction pooling: what ties the session to its backend connections.
    multiplex: multiplex::Multiplex,
}

/// Why a batch (`CLIENT_MULTI_STATEMENTS`) or a statement shape is refused.
const BATCH_DYNAMIC: &str = "a multi-statement batch may not hold dynamic SQL, SET STATEMENT or compound statements: send them alone";
const BATCH_TX: &str = "a multi-statement batch may not hold BEGIN, COMMIT, ROLLBACK or SAVEPOINT: send transaction statements alone";
const BATCH_SHARDS: &str = "the statements of this multi-statement batch are for users on different shards: send them separately";
const BATCH_STATE: &str = "this multi-statement batch mixes session state (SET, USE) with other statements: send the SET / USE statements alone";
const SET_STATEMENT_DIALECT: &str = "SET STATEMENT that changes sql_mode or a character set changes how the statement is read: set it for the session instead";
const DYNAMIC_SQL: &str = "dynamic SQL (PREPARE … FROM, EXECUTE, EXECUTE IMMEDIATE of anything but one plain string literal) hides the statement from the router: send the statement itself, or use the binary protocol's prepared statements";
const INNER_STATE: &str = "SET STATEMENT … FOR and EXECUTE IMMEDIATE must run an ordinary statement, not session state or a transaction statement";
const COMPOUND: &str = "compound statements (BEGIN NOT ATOMIC, IF, CASE, LOOP, WHILE, REPEAT, labels) run statements the router cannot route one by one: send them one at a time, or put them in a stored procedure and CALL it with a /* userid=… */ hint";
const PIN_ALONE: &str =
    "SET @dbrouter_userid must be sent alone, as SET @dbrouter_userid = <user id> (or = NULL)";
const FOREIGN_GRAMMAR: &str = "the session's sql_mode holds ORACLE or MSSQL, whose grammar the router does not read: use the default sql_mode for statements on sharded tables";
const DIALECT_DIFFERS: &str = "this shard's connection reads the statement differently from the session's other connections (its global sql_mode, character set or MariaDB version differs) and would route it elsewhere: give all shards the same global sql_mode";
const KILL_FORM: &str = "dbrouter reads KILL as KILL [HARD | SOFT] [CONNECTION | QUERY] <id>, with the id of a session of your account (from CONNECTION_ID() or SHOW PROCESSLIST); KILL USER and KILL QUERY ID are not carried out";

/// Why a session ended on `KILL CONNECTION`.
const KILLED: &str = "killed (KILL CONNECTION)";

/// A client idle at least this long has its backend connections checked before its next
/// command (a non-blocking peek each); busy clients skip the check.
const IDLE_CHECK_AFTER: std::time::Duration = std::time::Duration::from_millis(500);

const TOO_MUCH_STATE: &str = "this session already set 256 distinct session variables (or 1 MiB of SET statements), which every new backend connection must replay: reuse fewer distinct SET statements";
const TX_FORM: &str = "dbrouter reads BEGIN, START TRANSACTION [READ ONLY | READ WRITE | WITH CONSISTENT SNAPSHOT], COMMIT / ROLLBACK [WORK] [AND [NO] CHAIN] [[NO] RELEASE], SAVEPOINT, ROLLBACK TO and RELEASE SAVEPOINT only in these plain forms";
const SNAPSHOT_NEEDS_SHARD: &str = "START TRANSACTION WITH CONSISTENT SNAPSHOT takes its snapshot at once, on the shard of the transaction, which is not known yet: SET @dbrouter_userid = <user id> first, or prefix it with /* userid=<user id> */";
const STRAY_TX: &str = "the last statement left a transaction open on a second shard, so both were rolled back (a session holds a transaction on one shard only): run the transaction again, with statements of one user";
const SET_TRANSACTION_FORM: &str = "dbrouter reads SET TRANSACTION only as ISOLATION LEVEL …, READ ONLY or READ WRITE (comma-separated)";
const XA_REFUSED: &str = "XA transactions are not supported through dbrouter (a prepared XA branch could outlive the session that owns it): use BEGIN / COMMIT, with the statements of one user";
pub(super) const KEYLESS_CALL: &str = "CALL runs a procedure whose statements the router cannot see: prefix it with /* userid=<user id> */ (every row it touches must be that user's) or SET @dbrouter_userid first";

/// Runs one client connection to its end. Never panics on client input; every failure
/// that can still be reported becomes an ERR packet.
pub async fn run(
    stream: TcpStream,
    peer: SocketAddr,
    connection_id: u32,
    ctx: Arc<SessionContext>,
    span: Span,
) {
    let _ = stream.set_nodelay(true);
    run_on_stream(stream, peer, connection_id, ctx, span).await;
}

/// [`run`] over any client stream (TLS, or an in-memory pipe in tests).
pub async fn run_on_stream<S: ClientStream>(
    stream: S,
    peer: SocketAddr,
    connection_id: u32,
    ctx: Arc<SessionContext>,
    span: Span,
) {
    let mut client = PacketConn::client(stream);
    let mut config_cache = arc_swap::Cache::new(Arc::clone(&ctx.config));
    let handshake_timeout = config_cache.load().timeouts.handshake();
    let phase = tokio::time::timeout(
        handshake_timeout,
        connection_phase(&mut client, peer, connection_id, &ctx).instrument(span.clone()),
    )
    .await;
    let (backends, scramble, current, dialect, account, account_name) = match phase {
        Ok(Ok(parts)) => parts,
        Ok(Err(end)) => {
            log_end(&span, &end);
            client.shutdown().await;
            return;
        }
        Err(_) => {
            info!(parent: &span, timeout = ?handshake_timeout, "handshake timed out; closing");
            client.shutdown().await;
            return;
        }
    };
    let config = Arc::clone(config_cache.load());
    let max_packet = config.server.max_packet_size;
    let max_statements = config.limits.max_prepared_per_session;
    let max_session_bytes = config.limits.max_session_bytes;
    let drain = ctx.drain.subscribe(connection_id);
    let me = ctx.sessions.register(connection_id, peer, &account_name);
    me.set_db(backends.login().database.as_deref());
    me.set_login(backends.login().clone());
    let watchdog = Watchdog::new(config.timeouts.idle());
    let mut session = Session {
        client,
        ctx,
        backends,
        config,
        config_cache,
        peer,
        scramble,
        current,
        tx: Transaction::new(),
        rolled_back: None,
        stray: Vec::new(),
        pin: None,
        dialect,
        status: SERVER_STATUS_AUTOCOMMIT,
        statements: Statements::new(max_packet, max_statements, max_session_bytes),
        refused: None,
        reroute: None,
        table: None,
        watchdog,
        last_command: std::time::Instant::now(),
        span,
        account: Some(account),
        me,
        multiplex: multiplex::Multiplex::default(),
    };
    let end = session.command_loop(drain).await;
    session.ctx.drain.forget(connection_id);
    session.ctx.sessions.forget(connection_id);
    log_end(&session.span, &end);
    // Connections not mid-response go back to the pool, which resets them (in transaction
    // pooling a free session's go back as they are: they carry only replayable state).
    let clean = matches!(end, End::ClientQuit | End::Closed(_));
    if clean && session.is_free() && session.backends.give_back(None).await.is_err() {
        debug!(parent: &session.span, "a backend connection failed at the session's end");
    }
    session.backends.release_all(clean);
    if matches!(end, End::Error(ClientError::PacketTooLarge { .. })) {
        // The client may still be writing the refused packet: let it finish (dropping the
        // bytes) so that it reads the ERR instead of a reset.
        let limit = 64 << 20;
        let within = std::time::Duration::from_secs(1);
        session.client.shutdown_discarding(limit, within).await;
    } else {
        session.client.shutdown().await;
    }
}

fn log_end(span: &Span, end: &End) {
    match end {
        End::ClientQuit => debug!(parent: span, "client quit"),
        End::Closed(why) => info!(parent: span, reason = why, "connection closed"),
        End::ClientGone(e) => info!(parent: span, error = %e, "client connection lost"),
        End::Error(e) => {
            // Escaped: the message may carry client text (a user name with a newline).
            let error = crate::error::escape_control(&e.to_string()).into_owned();
            info!(parent: span, kind = e.kind(), error = %error, "connection closed with error")
        }
    }
}

/// Sends an ERR packet (best effort) and turns the error into a session end.
async fn send_error(client: &mut PacketConn<impl ClientStream>, seq: u8, err: ClientError) -> End {
    crate::metrics::error_sent(err.kind());
    client.queue(seq, &err.to_packet());
    match client.flush().await {
        Ok(()) => End::Error(err),
        Err(e) => End::ClientGone(e),
    }
}

/// Tells the client why the connection phase (or a COM_CHANGE_USER) failed, ending the
/// session.
async fn send_failure(
    client: &mut PacketConn<impl ClientStream>,
    seq: u8,
    failure: Failure,
) -> End {
    match failure.reply() {
        Reply::Relay(payload) => {
            client.queue(seq, &payload);
            match client.flush().await {
                Ok(()) => {
                    End::Closed("the backend refused the client's request (its error was relayed)")
                }
                Err(e) => End::ClientGone(e),
            }
        }
        Reply::Error(err) => send_error(client, seq, err).await,
    }
}

impl<S: ClientStream> Session<S> {
    /// Takes the config in force now if a reload replaced it (one atomic load otherwise):
    /// the next statement runs with its limits and timeouts.
    fn refresh_config(&mut self) {
        let current = self.config_cache.load();
        if !Arc::ptr_eq(current, &self.config) {
            self.config = Arc::clone(current);
            self.backends
                .set_backend_read(self.config.timeouts.backend_read());
        }
    }

    async fn command_loop(&mut self, mut drain: oneshot::Receiver<()>) -> End {
        let mut draining = false;
        loop {
            self.refresh_config();
            let max_packet = self.config.server.max_packet_size;
            let idle = self.config.timeouts.idle();
            let net_read = self.config.timeouts.net_read();
            if draining && self.tx.is_idle() && !self.client.has_buffered_input() {
                return End::Closed("router draining");
            }
            // The next command's first bytes may take up to timeouts.idle_ms (a client
            // between statements); the rest of the packet must follow within
            // timeouts.net_read_ms (a client stuck mid-packet is not idle: its buffer is
            // held). Only the wait for the first bytes yields to a drain, so a command is
            // never half read when the loop starts over.
            if !self.client.has_buffered_input() {
                let me = Arc::clone(&self.me);
                let wait = self.watchdog.limit(idle, self.client.fill());
                let waited = if draining {
                    tokio::select! {
                        biased;
                        r = wait => r,
                        _ = me.killed() => return End::Closed(KILLED),
                    }
                } else {
                    tokio::select! {
                        biased;
                        r = wait => r,
                        // Sent at drain, or its sender is gone (the router is stopping).
                        _ = &mut drain => {
                            draining = true;
                            continue;
                        }
                        _ = me.killed() => return End::Closed(KILLED),
                    }
                };
                match waited {
                    Err(_) => return End::Closed("idle timeout (timeouts.idle_ms)"),
                    Ok(Err(NetError::Closed)) => return End::ClientQuit,
                    Ok(Err(e)) => return End::ClientGone(e),
                    Ok(Ok(_)) => {}
                }
            }
            let read = if self.client.has_complete_packet() {
                // The usual case: the whole command came in one read; no timer to touch.
                Ok(self.client.read_logical(max_packet, Some(0)).await)
            } else {
                self.watchdog
                    .limit(net_read, self.client.read_logical(max_packet, Some(0)))
                    .await
            };
            let (seq, payload) = match read {
                Err(_) => return End::Closed("client stopped mid-packet (timeouts.net_read_ms)"),
                Ok(Ok(p)) => p,
                Ok(Err(NetError::Closed)) => return End::ClientQuit,
                Ok(Err(source @ (NetError::TooLarge { .. } | NetError::OutOfOrder { .. }))) => {
                    let limit = max_packet;
                    let failure = Failure::ClientPacket { limit, source };
                    return send_failure(&mut self.client, 1, failure).await;
                }
                Ok(Err(e)) => return End::ClientGone(e),
            };
            // A server may have closed the session's connection while the client was
            // idle (wait_timeout, KILL, a restart): seen now, without a round trip, it is
            // never reported as a statement of unknown outcome (1158). A connection that
            // held only replayable state is replaced unnoticed; one that held more ends
            // the client connection, as a direct one would (drivers report 2006/2013 and
            // reconnect).
            // One clock read per command: the idle check, the process list's "since".
            let now = std::time::Instant::now();
            let idle_for = now.saturating_duration_since(self.last_command);
            self.last_command = now;
            if idle_for >= IDLE_CHECK_AFTER && self.backends.drop_closed().is_err() {
                return End::Closed(
                    "the server closed the session's backend connection while the client was idle; its session state went with it",
                );
            }
            if let Err(end) = self.dispatch(seq, payload).await {
                return end;
            }
            if self.me.is_killed() {
                return End::Closed(KILLED);
            }
            self.client.shrink_read_buffer();
        }
    }

    /// The current routing snapshot, taken out of the session for one command (put back
    /// by `dispatch`). Reuses the session's copy while the topology has not changed:
    /// comparing pointers through a short-lived `load` guard touches no shared counter.
    fn take_table(&mut self) -> Arc<RoutingTable> {
        let current = self.ctx.routing.load();
        match self.table.take() {
            Some(mine) if Arc::ptr_eq(&mine, &current) => mine,
            _ => Arc::clone(&current),
        }
    }

    async fn dispatch(&mut self, seq: u8, payload: BytesMut) -> Result<(), End> {
        // Counted in before the table is loaded: see router::in_flight.
        let _in_flight = crate::router::in_flight::enter();
        let table = self.take_table();
        let (command, text) = match payload.first().copied() {
            Some(COM_QUERY) => (Command::Query, payload.get(1..).unwrap_or_default()),
            Some(COM_STMT_PREPARE) => (Command::Prepare, payload.get(1..).unwrap_or_default()),
            Some(COM_STMT_EXECUTE | COM_STMT_BULK_EXECUTE | COM_STMT_FETCH) => {
                (Command::Execute, &[][..])
            }
            _ => (Command::Other, &[][..]),
        };
        self.me.begin(command, text, self.last_command);
        let cmd = payload.first().copied().unwrap_or(0);
        let mut result = match self.before_command(&table, cmd, text, seq).await {
            Ok(true) => self.dispatch_on(&table, seq, payload).await,
            other => other.map(drop),
        };
        if result.is_ok() {
            result = self.after_command().await;
        }
        self.me.end();
        self.table = Some(table);
        result
    }

    async fn dispatch_on(
        &mut self,
        table: &RoutingTable,
        seq: u8,
        mut payload: BytesMut,
    ) -> Result<(), End> {
        let Some(&cmd) = payload.first() else {
            return self
                .reply_error(seq, ClientError::UnknownCommand(COM_SLEEP))
                .await;
        };
        if let Some(err) = ClientError::for_command(cmd) {
            return self.reply_error(seq, err).await;
        }
        if let Some(why) = self.rolled_back.take().filter(|_| cmd != COM_QUIT) {
            // Reported as the answer to the next command, as MariaDB reports a deadlock.
            return self.reply_error(seq, ClientError::RolledBack(why)).await;
        }
        if matches!(
            cmd,
            COM_STMT_EXECUTE
                | COM_STMT_BULK_EXECUTE
                | COM_STMT_SEND_LONG_DATA
                | COM_STMT_RESET
                | COM_STMT_CLOSE
                | COM_STMT_FETCH
        ) {
            // Statement id 0xFFFFFFFF: the statement prepared last (a pipelined PREPARE
            // and EXECUTE, as MariaDB's connectors send them).
            if let Some(id) = crate::protocol::execute::stmt_id(&payload) {
                let resolved = self.statements.resolve(id);
                crate::protocol::execute::set_stmt_id(&mut payload, resolved);
            }
        }
        if cmd == COM_QUERY || cmd == COM_STMT_PREPARE {
            if let Some(text) = self.session_words(payload.get(1..).unwrap_or_default()) {
                let mut rewritten = BytesMut::with_capacity(text.len() + 1);
                rewritten.extend_from_slice(&[cmd]);
                rewritten.extend_from_slice(&text);
                payload = rewritten;
            }
        }
        match cmd {
            COM_QUIT => Err(End::ClientQuit),
            COM_QUERY => self.query(table, &payload, seq).await,
            COM_CHANGE_USER => self.change_user(table, &payload, seq).await,
            COM_INIT_DB | COM_SET_OPTION | COM_RESET_CONNECTION => {
                self.broadcast(table, &payload, seq, ResponseKind::Single)
                    .await
            }
            COM_PING | COM_STATISTICS | COM_FIELD_LIST => {
                let kind = if cmd == COM_FIELD_LIST {
                    ResponseKind::FieldList
                } else {
                    ResponseKind::Single
                };
                let shard = self.session_shard();
                self.run_on(table, shard, &payload, seq, kind, false)
                    .await
                    .map(drop)
            }
            COM_STMT_PREPARE => self.prepare(table, &payload, seq).await,
            COM_PROCESS_KILL => {
                // mysql_kill(): the binary form of KILL CONNECTION <id>.
                let Some(id) = payload
                    .get(1..5)
                    .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                else {
                    let err = ClientError::MalformedPacket("COM_PROCESS_KILL without an id".into());
                    return self.reply_error(seq, err).await;
                };
                let kill = super::process::Kill {
                    id: u64::from(id),
                    query_only: false,
                };
                self.kill_session(kill, seq).await
            }
            COM_STMT_EXECUTE => self.execute(table, &mut payload, seq, false).await,
            COM_STMT_BULK_EXECUTE if self.backends.bulk_negotiated() => {
                self.execute(table, &mut payload, seq, true).await
            }
            COM_STMT_BULK_EXECUTE => {
                let err = ClientError::UnsupportedCommand {
                    name: command::name(cmd),
                    why: "the client did not negotiate MariaDB's bulk operations (MARIADB_CLIENT_STMT_BULK_OPERATIONS)",
                };
                self.reply_error(seq, err).await
            }
            COM_STMT_SEND_LONG_DATA => {
                self.statements.add_long_data(payload);
                Ok(())
            }
            COM_STMT_FETCH => self.fetch(table, &mut payload, seq).await,
            COM_STMT_RESET => self.reset_statement(table, &payload, seq).await,
            COM_STMT_CLOSE => self.close_statement(&payload).await,
            other => {
                self.reply_error(seq, ClientError::UnknownCommand(other))
                    .await
            }
        }
    }

    /// The statement with what speaks of sessions made to speak the router's session ids
    /// (`CONNECTION_ID()`, `information_schema.PROCESSLIST`, `frontend::process`); None
    /// when it names neither.
    fn session_words(&self, sql: &[u8]) -> Option<Vec<u8>> {
        let replaced = super::process::replace_connection_id(sql, self.dialect, self.me.id);
        let text = replaced.as_deref().unwrap_or(sql);
        if crate::router::contains_ignore_case(text, b"processlist") {
            let rows = self.ctx.sessions.process_list(&self.me.account());
            if let Some(again) =
                super::process::replace_processlist_table(text, self.dialect, &rows)
            {
                return Some(again);
            }
        }
        replaced
    }

    /// Canonical key of the session pin, if set.
    pub(super) fn pin_key(&self) -> Option<&[u8]> {
        self.pin.as_deref()
    }

    /// The shard for statements that name no user: the transaction's, else the last one.
    pub(super) fn session_shard(&self) -> ShardId {
        self.tx.open_shard().unwrap_or(self.current)
    }

    /// Sends an ERR answering the command that ended with `seq`; closes the session if
    /// the error requires it.
    pub(super) async fn reply_error(&mut self, seq: u8, err: ClientError) -> Result<(), End> {
        self.reply_failure(seq, err.into()).await
    }

    /// Answers the command that ended with `seq` with what a failure means for the client
    /// ([`Failure::reply`]); closes the session if that requires it.
    pub(super) async fn reply_failure(&mut self, seq: u8, failure: Failure) -> Result<(), End> {
        let err = match failure.reply() {
            Reply::Relay(payload) => return self.send_packets(seq, &[payload]).await,
            Reply::Error(err) => err,
        };
        debug!(parent: &self.span, kind = err.kind(), error = %failure, "statement refused");
        self.refused = Some(err.kind());
        let closes = err.closes_connection();
        match send_error(&mut self.client, seq.wrapping_add(1), err).await {
            End::Error(err) if closes => Err(End::Error(err)),
            End::Error(_) => Ok(()),
            other => Err(other),
        }
    }

    /// The connection to `shard` failed under the command that ended with `seq`: it is
    /// closed (its state is unknown, the session's state on it is gone), the failure
    /// reported, and the session ends.
    pub(super) async fn backend_failed(
        &mut self,
        shard: ShardId,
        seq: u8,
        failure: Failure,
    ) -> End {
        self.backends.discard(shard);
        // A broken backend connection may be a crashed master: probe now.
        self.ctx.health.suspect();
        match self.reply_failure(seq, failure).await {
            Err(end) => end,
            Ok(()) => End::Closed("a backend connection failed; the session's state on it is gone"),
        }
    }

    /// Sends whole response packets answering the command that ended with `seq`.
    pub(super) async fn send_packets<P: AsRef<[u8]>>(
        &mut self,
        seq: u8,
        packets: &[P],
    ) -> Result<(), End> {
        let mut s = seq.wrapping_add(1);
        for p in packets {
            s = self.client.queue(s, p.as_ref());
        }
        self.client.flush().await.map_err(End::ClientGone)
    }
}

/// The status flags of the last OK or EOF of a collected response.
pub(super) fn final_status(packets: &[BytesMut]) -> Option<u16> {
    let last = packets.last()?;
    match last.first()? {
        0x00 => crate::protocol::packets::ok_status(last),
        &first if crate::protocol::packets::is_ok_terminator(first, last.len()) => {
            crate::protocol::packets::terminator_status(last)
        }
        _ => None,
    }
}
