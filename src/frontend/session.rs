//! One client connection from greeting to goodbye: the connection phase (greeting,
//! authentication against the configured accounts, the first backend connection with the
//! client's database, collation, capabilities and attributes), then the command loop:
//! each statement is routed (see [`crate::router`]) to one shard's master, within the
//! session's transaction, and its response relayed back.

use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::BytesMut;
use mysql_common::constants::{CapabilityFlags, MariadbCapabilities};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tracing::{debug, info, warn, Instrument, Span};

use crate::backend::Pools;
use crate::config::Config;
use crate::error::ClientError;
use crate::net::{NetError, PacketConn, Watchdog};
use crate::protocol::auth::{new_scramble, AuthMethod, SCRAMBLE_LEN};
use crate::protocol::command::{self, *};
use crate::protocol::handshake::{
    auth_switch, greeting, offered_capabilities, parse_change_user, parse_handshake_response,
    ClientLogin, LoginParseError,
};
use crate::protocol::packets::{add_ok_status, err_packet, ok_packet, ERR_HEADER};
use crate::protocol::response::{ResponseKind, SERVER_STATUS_AUTOCOMMIT, SERVER_STATUS_IN_TRANS};
use crate::protocol::resultset::text_result_set;
use crate::router::dialect::{may_change_dialect, Dialect};
use crate::router::key::{self, KeyProblem, Shape, StatementKind};
use crate::router::ring::ShardId;
use crate::router::{key_from_text, Route, RouteError, RoutingTable, Why};

use super::backends::{exchange, BackendFailure, LoginState, SessionBackends};
use super::local;
use super::prepared::Statements;
use super::relay::{relay_response, RelayError, RelayTimeouts, Relayed};
use super::transaction::{
    one_shot_characteristics, Observation, PendingAnswer, Transaction, TxStatement,
};

/// Largest packet accepted during the connection phase.
const HANDSHAKE_PACKET_LIMIT: usize = 64 * 1024;

/// What every session shares: configuration, the routing snapshot, the pools, and facts
/// learned at start-up.
pub struct SessionContext {
    /// The loaded configuration.
    pub config: Arc<Config>,
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
pub(super) struct Session {
    pub(super) client: PacketConn<TcpStream>,
    pub(super) ctx: Arc<SessionContext>,
    pub(super) backends: SessionBackends,
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
    /// The routing snapshot the last statement used; refreshed when the topology changes
    /// (kept so that a statement costs no reference-count traffic on the shared one).
    table: Option<Arc<RoutingTable>>,
    /// The one timer behind the idle, backend-read and client-write limits.
    watchdog: Watchdog,
    /// The connection's log span (`conn{id peer}`): events name it as their parent
    /// instead of entering it on every poll of the session.
    pub(super) span: Span,
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
const TOO_MUCH_STATE: &str = "this session already set 256 distinct session variables, which every new backend connection must replay: reuse fewer distinct SET statements";
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
    let mut client = PacketConn::new(stream);
    let handshake_timeout = ctx.config.timeouts.handshake();
    let phase = tokio::time::timeout(
        handshake_timeout,
        connection_phase(&mut client, peer, connection_id, &ctx).instrument(span.clone()),
    )
    .await;
    let (backends, scramble, current, dialect) = match phase {
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
    let max_packet = ctx.config.server.max_packet_size;
    let drain = ctx.drain.subscribe(connection_id);
    let watchdog = Watchdog::new(ctx.config.timeouts.idle());
    let mut session = Session {
        client,
        ctx,
        backends,
        peer,
        scramble,
        current,
        tx: Transaction::new(),
        rolled_back: None,
        stray: Vec::new(),
        pin: None,
        dialect,
        status: SERVER_STATUS_AUTOCOMMIT,
        statements: Statements::new(max_packet),
        refused: None,
        table: None,
        watchdog,
        span,
    };
    let end = session.command_loop(drain).await;
    session.ctx.drain.forget(connection_id);
    log_end(&session.span, &end);
    // Connections not mid-response go back to the pool, which resets them.
    let clean = matches!(end, End::ClientQuit | End::Closed(_));
    session.backends.release_all(clean);
    session.client.shutdown().await;
}

fn log_end(span: &Span, end: &End) {
    match end {
        End::ClientQuit => debug!(parent: span, "client quit"),
        End::Closed(why) => info!(parent: span, reason = why, "connection closed"),
        End::ClientGone(e) => info!(parent: span, error = %e, "client connection lost"),
        End::Error(e) => {
            info!(parent: span, kind = e.kind(), error = %e, "connection closed with error")
        }
    }
}

async fn connection_phase(
    client: &mut PacketConn<TcpStream>,
    peer: SocketAddr,
    connection_id: u32,
    ctx: &SessionContext,
) -> Result<(SessionBackends, [u8; SCRAMBLE_LEN], ShardId, Dialect), End> {
    let config = &ctx.config;
    let scramble = new_scramble().map_err(|e| End::Error(ClientError::Internal(e.to_string())))?;
    let method = config.default_auth_method();
    let hello = greeting(
        connection_id,
        &ctx.server_version,
        &scramble,
        offered_capabilities(),
        ctx.mariadb_capabilities,
        ctx.server_collation,
        method.plugin_name(),
    );
    client.queue(0, &hello);
    client.flush().await.map_err(End::ClientGone)?;

    let (seq, payload) = match client.read_logical(HANDSHAKE_PACKET_LIMIT, Some(1)).await {
        Ok(p) => p,
        Err(NetError::Closed) => return Err(End::Closed("client left before the handshake")),
        Err(e) => {
            return Err(send_error(client, 2, net_to_client_error(e, HANDSHAKE_PACKET_LIMIT)).await)
        }
    };
    let seq = seq.wrapping_add(1);
    let mut login = match parse_handshake_response(&payload) {
        Ok(login) => login,
        Err(e @ LoginParseError::OldProtocol) => {
            return Err(send_error(client, seq, ClientError::AuthNotSupported(e.to_string())).await)
        }
        Err(e) => {
            return Err(send_error(client, seq, ClientError::BadHandshake(e.to_string())).await)
        }
    };
    login.capabilities &= offered_capabilities();
    login.mariadb_capabilities &= ctx.mariadb_capabilities;
    let seq = authenticate(client, config, &login, &scramble, seq, peer).await?;

    // The first backend connection: on the global shard, which also checks the database.
    let table = ctx.routing.load_full();
    let global = table.global_shard();
    let mut backends = SessionBackends::new(
        Arc::clone(&ctx.pools),
        Arc::clone(&ctx.config),
        login_state(&login),
    );
    if let Err(failure) = backends.connection(&table, global).await {
        return Err(send_failure(client, seq, failure).await);
    }
    // The global sql_mode and the login character set, as the login connection reads them.
    let dialect = backends.dialect(global).unwrap_or_default();
    // The login checked the database; a session with no state yet needs no backend
    // connection until its first statement. Idle clients (10 000 of them are normal) then
    // hold none, and the pool lends it to whoever needs it.
    backends.release_all(true);
    client.queue(seq, &ok_packet(0, 0, SERVER_STATUS_AUTOCOMMIT, 0));
    client.flush().await.map_err(End::ClientGone)?;
    debug!(user = %login.user, db = ?login.database, "client logged in");
    Ok((backends, scramble, global, dialect))
}

fn login_state(login: &ClientLogin) -> LoginState {
    LoginState {
        capabilities: login.capabilities,
        mariadb_capabilities: login.mariadb_capabilities,
        collation: login.collation,
        database: login.database.clone(),
        attributes: login.attributes.clone(),
    }
}

/// Verifies the client's password, switching its plugin when needed. Returns the next
/// sequence id to send with.
async fn authenticate(
    client: &mut PacketConn<TcpStream>,
    config: &Config,
    login: &ClientLogin,
    scramble: &[u8; SCRAMBLE_LEN],
    mut seq: u8,
    peer: SocketAddr,
) -> Result<u8, End> {
    let account = config.account(&login.user);
    let client_method = match &login.plugin {
        Some(name) => AuthMethod::from_plugin_name(name),
        // Without CLIENT_PLUGIN_AUTH a 4.1 client answers with mysql_native_password.
        None => Some(AuthMethod::Native),
    };
    let usable = match (account, client_method) {
        (Some(creds), Some(m)) => creds.supports(m).then_some(m),
        // Unknown account: verify with the client's method so the answer does not reveal
        // whether the account exists.
        (None, m) => m,
        (Some(_), None) => None,
    };
    let mut nonce = *scramble;
    let (method, token) = match usable {
        Some(m) => (m, login.auth_response.clone()),
        None => {
            if !login
                .capabilities
                .contains(CapabilityFlags::CLIENT_PLUGIN_AUTH)
            {
                let err = ClientError::AuthNotSupported(
                    "the account needs caching_sha2_password and the client cannot switch plugins"
                        .into(),
                );
                return Err(send_error(client, seq, err).await);
            }
            let target = account.map_or(config.default_auth_method(), |c| c.preferred_method());
            nonce = new_scramble().map_err(|e| End::Error(ClientError::Internal(e.to_string())))?;
            client.queue(seq, &auth_switch(target.plugin_name(), &nonce));
            client.flush().await.map_err(End::ClientGone)?;
            let expected = seq.wrapping_add(1);
            let (got, answer) = match client
                .read_logical(HANDSHAKE_PACKET_LIMIT, Some(expected))
                .await
            {
                Ok(p) => p,
                Err(e) => {
                    let err = net_to_client_error(e, HANDSHAKE_PACKET_LIMIT);
                    return Err(send_error(client, seq.wrapping_add(2), err).await);
                }
            };
            seq = got.wrapping_add(1);
            (target, answer.to_vec())
        }
    };
    if !account.is_some_and(|creds| creds.verify(method, &nonce, &token)) {
        let err = ClientError::AccessDenied {
            user: login.user.clone(),
            host: peer.ip().to_string(),
            using_password: !token.is_empty(),
        };
        return Err(send_error(client, seq, err).await);
    }
    if method == AuthMethod::CachingSha2 {
        // AuthMoreData(fast_auth_success): 0x01 then 0x03; the OK follows.
        seq = client.queue(seq, &[0x01, 0x03]);
    }
    Ok(seq)
}

/// Sends an ERR packet (best effort) and turns the error into a session end.
async fn send_error(client: &mut PacketConn<TcpStream>, seq: u8, err: ClientError) -> End {
    crate::metrics::error_sent(err.kind());
    client.queue(seq, &err.to_packet());
    match client.flush().await {
        Ok(()) => End::Error(err),
        Err(e) => End::ClientGone(e),
    }
}

/// Tells the client why no backend connection could be had, ending the session.
async fn send_failure(client: &mut PacketConn<TcpStream>, seq: u8, failure: BackendFailure) -> End {
    match failure {
        BackendFailure::Relay(payload) => {
            client.queue(seq, &payload);
            match client.flush().await {
                Ok(()) => {
                    End::Closed("the backend refused the client's request (its error was relayed)")
                }
                Err(e) => End::ClientGone(e),
            }
        }
        BackendFailure::Error(err) => send_error(client, seq, err).await,
    }
}

fn net_to_client_error(e: NetError, limit: usize) -> ClientError {
    match e {
        NetError::TooLarge { .. } => ClientError::PacketTooLarge { limit },
        NetError::OutOfOrder { .. } => ClientError::PacketsOutOfOrder,
        other => ClientError::BadHandshake(other.to_string()),
    }
}

impl Session {
    async fn command_loop(&mut self, mut drain: oneshot::Receiver<()>) -> End {
        let max_packet = self.ctx.config.server.max_packet_size;
        let idle = self.ctx.config.timeouts.idle();
        let mut draining = false;
        loop {
            if draining && self.tx.is_idle() && !self.client.has_buffered_input() {
                return End::Closed("router draining");
            }
            let read = self
                .watchdog
                .limit(idle, self.client.read_logical(max_packet, Some(0)));
            let read = if draining {
                read.await
            } else {
                tokio::select! {
                    biased;
                    r = read => r,
                    // Sent at drain, or its sender is gone (the router is stopping).
                    _ = &mut drain => {
                        draining = true;
                        continue;
                    }
                }
            };
            let (seq, payload) = match read {
                Err(_) => return End::Closed("idle timeout (timeouts.idle_ms)"),
                Ok(Ok(p)) => p,
                Ok(Err(NetError::Closed)) => return End::ClientQuit,
                Ok(Err(e @ (NetError::TooLarge { .. } | NetError::OutOfOrder { .. }))) => {
                    let err = net_to_client_error(e, max_packet);
                    return send_error(&mut self.client, 1, err).await;
                }
                Ok(Err(e)) => return End::ClientGone(e),
            };
            if let Err(end) = self.dispatch(seq, payload).await {
                return end;
            }
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
        let result = self.dispatch_on(&table, seq, payload).await;
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
            COM_STMT_EXECUTE => self.execute(table, &mut payload, seq).await,
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
        debug!(parent: &self.span, kind = err.kind(), error = %err, "statement refused");
        self.refused = Some(err.kind());
        let closes = err.closes_connection();
        match send_error(&mut self.client, seq.wrapping_add(1), err).await {
            End::Error(err) if closes => Err(End::Error(err)),
            End::Error(_) => Ok(()),
            other => Err(other),
        }
    }

    /// Reports a backend failure for the command that ended with `seq`.
    pub(super) async fn reply_failure(
        &mut self,
        seq: u8,
        failure: BackendFailure,
    ) -> Result<(), End> {
        match failure {
            BackendFailure::Relay(payload) => self.send_packets(seq, &[payload]).await,
            BackendFailure::Error(err) => self.reply_error(seq, err).await,
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

    async fn query(&mut self, table: &RoutingTable, payload: &[u8], seq: u8) -> Result<(), End> {
        let sql = payload.get(1..).unwrap_or_default();
        if let Some(user) = local::route_query(sql) {
            return self.show_route(table, &user, seq).await;
        }
        if local::is_status_query(sql) {
            return self.show_status(table, seq).await;
        }
        if local::mentions_pin(sql) && key::shape(sql, self.dialect) == Shape::Plain {
            if let Some(pin) = local::session_pin(sql) {
                self.pin = match pin.map(|p| (key_from_text(&p, table.key_type()), p)) {
                    None => None,
                    Some((Ok(key), _)) => Some(key),
                    Some((Err(why), p)) => {
                        let key = String::from_utf8_lossy(&p).into_owned();
                        return self
                            .reply_error(seq, RouteError::BadKey { key, why }.into())
                            .await;
                    }
                };
            }
        }
        if let Some(valid) = one_shot_characteristics(sql) {
            return self.set_next_transaction(table, payload, seq, valid).await;
        }
        let route = match self.route_query(table, sql, self.dialect) {
            Ok(route) => route,
            Err(e) => return self.reply_error(seq, e.into()).await,
        };
        let first_word = local::words(sql).next().map(<[u8]>::to_ascii_lowercase);
        match (&route, first_word.as_deref()) {
            (Route::Shard(shard), Some(b"lock")) => {
                // LOCK TABLES: the session stays on this shard until UNLOCK TABLES.
                let shard = *shard;
                let status = self
                    .run_on(table, shard, payload, seq, ResponseKind::Query, true)
                    .await?;
                if status.is_some() {
                    self.tx.locked_on(shard);
                }
                return Ok(());
            }
            (Route::Session, Some(b"unlock")) => {
                let shard = self.tx.locked().unwrap_or_else(|| self.session_shard());
                let status = self
                    .run_on(table, shard, payload, seq, ResponseKind::Query, false)
                    .await?;
                if status.is_some() {
                    self.tx.unlocked();
                }
                return Ok(());
            }
            (Route::Session, _) if local::mentions_named_lock(sql) => {
                // Named locks are one namespace for all routers' clients: on the global
                // shard, whatever shard the session is on.
                let shard = table.global_shard();
                return self
                    .run_on(table, shard, payload, seq, ResponseKind::Query, false)
                    .await
                    .map(drop);
            }
            (Route::Session, _) if local::mentions_last_insert_id(sql) => {
                // Asked on the connection whose statement generated the value.
                let shard = self
                    .tx
                    .last_insert()
                    .unwrap_or_else(|| self.session_shard());
                return self
                    .run_on(table, shard, payload, seq, ResponseKind::Query, false)
                    .await
                    .map(drop);
            }
            _ => {}
        }
        match route {
            Route::Shard(shard) => self
                .run_on(table, shard, payload, seq, ResponseKind::Query, true)
                .await
                .map(drop),
            Route::Session => {
                let shard = self.session_shard();
                self.run_on(table, shard, payload, seq, ResponseKind::Query, false)
                    .await
                    .map(drop)
            }
            Route::Broadcast if !self.backends.can_record(payload) => {
                let err = RouteError::Statement(TOO_MUCH_STATE);
                self.reply_error(seq, err.into()).await
            }
            Route::Broadcast => {
                self.broadcast(table, payload, seq, ResponseKind::Query)
                    .await
            }
            Route::Transaction(_) => self.transaction(table, payload, seq).await,
        }
    }

    /// A one-shot `SET TRANSACTION …`: kept for the next transaction (sent before it, on
    /// its shard), or passed to the open transaction's shard, whose server refuses it.
    async fn set_next_transaction(
        &mut self,
        table: &RoutingTable,
        payload: &[u8],
        seq: u8,
        valid: bool,
    ) -> Result<(), End> {
        if !valid {
            let err = RouteError::Statement(SET_TRANSACTION_FORM);
            return self.reply_error(seq, err.into()).await;
        }
        if let Some(open) = self.tx.open_shard() {
            return self
                .run_on(table, open, payload, seq, ResponseKind::Query, true)
                .await
                .map(drop);
        }
        if self.tx.is_pending() {
            // What MariaDB answers after BEGIN.
            let err = err_packet(
                1568,
                b"25001",
                "Transaction characteristics can't be changed while a transaction is in progress",
            );
            return self.send_packets(seq, &[err]).await;
        }
        self.tx.set_next_characteristics(payload);
        self.answer_ok(seq).await
    }

    /// Where a COM_QUERY text runs when MariaDB reads it under `dialect`
    /// (docs/sharding.md): a batch only when every statement alone would run and all on
    /// one shard (or all are session state); `SET STATEMENT … FOR` and `EXECUTE IMMEDIATE
    /// '…'` by the statement they run; SQL-level PREPARE / EXECUTE and compound
    /// statements are refused.
    fn route_query(
        &self,
        table: &RoutingTable,
        sql: &[u8],
        dialect: Dialect,
    ) -> Result<Route, RouteError> {
        let scan = key::scan_in(sql, dialect, table.key_columns());
        let shape = if key::may_have_shape(&scan) {
            key::shape(sql, dialect)
        } else {
            Shape::Plain
        };
        match shape {
            Shape::Plain => self.route_scanned(table, sql, &scan, dialect, true),
            Shape::Batch(parts) => {
                let mut shard: Option<(ShardId, usize)> = None;
                let (mut state, mut work) = (0usize, 0usize);
                for (i, part) in parts.iter().enumerate() {
                    if key::shape(part, dialect) != Shape::Plain {
                        return Err(RouteError::Statement(BATCH_DYNAMIC));
                    }
                    match self.route_statement(table, part, dialect, false)? {
                        Route::Broadcast => state += 1,
                        Route::Transaction(_) => return Err(RouteError::Statement(BATCH_TX)),
                        Route::Session => work += 1,
                        Route::Shard(s) => {
                            work += 1;
                            match shard {
                                Some((first, _)) if first != s => {
                                    return Err(RouteError::Statement(BATCH_SHARDS))
                                }
                                _ => shard = Some((s, i)),
                            }
                        }
                    }
                }
                match (state, work) {
                    (_, 0) => Ok(Route::Broadcast),
                    (0, _) => Ok(shard.map_or(Route::Session, |(s, _)| Route::Shard(s))),
                    _ => Err(RouteError::Statement(BATCH_STATE)),
                }
            }
            Shape::SetStatement {
                changes_dialect: true,
                ..
            } => Err(RouteError::Statement(SET_STATEMENT_DIALECT)),
            Shape::SetStatement { inner, .. } => self.route_inner(table, inner, dialect),
            Shape::ExecuteImmediate(Some(inner)) => self.route_inner(table, inner, dialect),
            Shape::ExecuteImmediate(None) | Shape::SqlPrepared => {
                Err(RouteError::Statement(DYNAMIC_SQL))
            }
            Shape::Compound => Err(RouteError::Statement(COMPOUND)),
            Shape::Unreadable => Err(RouteError::Undecidable(KeyProblem::Unreadable.message())),
        }
    }

    /// The statement run by `SET STATEMENT … FOR` or `EXECUTE IMMEDIATE`: one ordinary
    /// statement that runs on a shard (never session state or a transaction statement).
    fn route_inner(
        &self,
        table: &RoutingTable,
        inner: &[u8],
        dialect: Dialect,
    ) -> Result<Route, RouteError> {
        if key::shape(inner, dialect) != Shape::Plain {
            return Err(RouteError::Statement(DYNAMIC_SQL));
        }
        match self.route_statement(table, inner, dialect, false)? {
            route @ (Route::Shard(_) | Route::Session) => Ok(route),
            Route::Broadcast | Route::Transaction(_) => Err(RouteError::Statement(INNER_STATE)),
        }
    }

    /// One statement alone: its scan under `dialect`, routed with the session pin;
    /// `standalone` is false inside a batch or around dynamic SQL.
    fn route_statement(
        &self,
        table: &RoutingTable,
        sql: &[u8],
        dialect: Dialect,
        standalone: bool,
    ) -> Result<Route, RouteError> {
        let scan = key::scan_in(sql, dialect, table.key_columns());
        self.route_scanned(table, sql, &scan, dialect, standalone)
    }

    /// [`Session::route_statement`] of a statement already scanned.
    fn route_scanned(
        &self,
        table: &RoutingTable,
        sql: &[u8],
        scan: &key::Scan<'_>,
        dialect: Dialect,
        standalone: bool,
    ) -> Result<Route, RouteError> {
        if scan.kind == StatementKind::Set
            && local::mentions_pin(sql)
            && (!standalone || local::session_pin(sql).is_none())
        {
            return Err(RouteError::Statement(PIN_ALONE));
        }
        if scan.kind == StatementKind::Other
            && local::words(sql)
                .next()
                .is_some_and(|w| w.eq_ignore_ascii_case(b"xa"))
        {
            return Err(RouteError::Statement(XA_REFUSED));
        }
        if dialect.foreign_grammar && !scan.kind.is_session_control() {
            return Err(RouteError::Undecidable(FOREIGN_GRAMMAR));
        }
        if scan.kind == StatementKind::Call && !scan.from_hint && self.pin.is_none() {
            return Err(RouteError::Statement(KEYLESS_CALL));
        }
        Ok(table
            .route_pinned(scan, self.pin.as_deref())?
            // `?` in a text statement: the server will answer with its syntax error.
            .unwrap_or(Route::Session))
    }

    /// Transaction control (docs/sharding.md, "Transactions"): BEGIN is answered locally
    /// and sent with the transaction's first statement; COMMIT / ROLLBACK / savepoints go
    /// where the transaction is, or are answered locally while BEGIN is still pending.
    async fn transaction(
        &mut self,
        table: &RoutingTable,
        payload: &[u8],
        seq: u8,
    ) -> Result<(), End> {
        let sql = payload.get(1..).unwrap_or_default();
        let stmt = TxStatement::parse(sql);
        match stmt {
            TxStatement::Unknown => {
                let err = RouteError::Statement(TX_FORM);
                self.reply_error(seq, err.into()).await
            }
            TxStatement::Begin {
                consistent_snapshot,
            } => {
                if let Some(open) = self.tx.open_shard() {
                    // BEGIN inside a transaction commits it first, as MariaDB does.
                    if !self.run_internal(table, open, b"\x03COMMIT", seq).await? {
                        return Ok(());
                    }
                }
                if consistent_snapshot {
                    // The snapshot is taken by this statement: it must run now, where the
                    // transaction will be.
                    let Some(shard) = self.pin.as_ref().map(|p| table.shard_for_key(p).0) else {
                        let err = RouteError::Statement(SNAPSHOT_NEEDS_SHARD);
                        return self.reply_error(seq, err.into()).await;
                    };
                    return self
                        .run_on(table, shard, payload, seq, ResponseKind::Query, true)
                        .await
                        .map(drop);
                }
                self.tx.begin(payload);
                self.answer_ok(seq).await
            }
            TxStatement::End { chain, release, .. } => {
                match self.tx.end_pending(chain, release) {
                    Some(PendingAnswer::OkThenClose) => {
                        self.answer_ok(seq).await?;
                        return Err(End::Closed("COMMIT / ROLLBACK RELEASE"));
                    }
                    Some(_) => return self.answer_ok(seq).await,
                    None => {}
                }
                let shard = self.session_shard();
                let status = self
                    .run_on(table, shard, payload, seq, ResponseKind::Query, true)
                    .await?;
                if release && status.is_some() {
                    // The server closes its side: so does the session.
                    self.backends.discard(shard);
                    self.tx.ended(shard);
                    return Err(End::Closed("COMMIT / ROLLBACK RELEASE"));
                }
                Ok(())
            }
            TxStatement::Savepoint(_)
            | TxStatement::RollbackTo(_)
            | TxStatement::ReleaseSavepoint(_) => match self.tx.savepoint_pending(&stmt, payload) {
                Some(PendingAnswer::NoSuchSavepoint(name)) => {
                    let message = format!(
                        "SAVEPOINT {} does not exist",
                        String::from_utf8_lossy(&name)
                    );
                    let err = err_packet(1305, b"42000", &message);
                    self.send_packets(seq, &[err]).await
                }
                Some(_) => self.answer_ok(seq).await,
                None => {
                    let shard = self.session_shard();
                    self.run_on(table, shard, payload, seq, ResponseKind::Query, true)
                        .await
                        .map(drop)
                }
            },
        }
    }

    /// An OK answered by the router itself, with the status the client must see.
    async fn answer_ok(&mut self, seq: u8) -> Result<(), End> {
        let status = self.client_status();
        self.send_packets(seq, &[ok_packet(0, 0, status, 0)]).await
    }

    /// The last backend status, with IN_TRANS as the session's transaction says.
    fn client_status(&self) -> u16 {
        let status = self.status & !crate::protocol::response::SERVER_MORE_RESULTS_EXISTS;
        if self.tx.client_in_trans() {
            status | SERVER_STATUS_IN_TRANS
        } else {
            status & !SERVER_STATUS_IN_TRANS
        }
    }

    /// Runs a statement silently (answer consumed). Returns false when it failed: its ERR
    /// was relayed as the answer to the client's command, which must go no further.
    async fn run_internal(
        &mut self,
        table: &RoutingTable,
        shard: ShardId,
        payload: &[u8],
        seq: u8,
    ) -> Result<bool, End> {
        let timeout = self.ctx.config.timeouts.backend_read();
        let format = self.backends.result_format();
        let io = match self.backends.connection(table, shard).await {
            Ok(io) => io,
            Err(f) => {
                self.reply_failure(seq, f).await?;
                return Ok(false);
            }
        };
        let result = exchange(io, payload, ResponseKind::Query, format, timeout).await;
        match result {
            Ok(packets) if packets.first().and_then(|p| p.first()) == Some(&ERR_HEADER) => {
                self.tx.ended(shard);
                self.send_packets(seq, &packets).await?;
                Ok(false)
            }
            Ok(packets) => {
                if let Some(status) = final_status(&packets) {
                    self.note_status(shard, status);
                }
                Ok(true)
            }
            Err(detail) => Err(self.backend_lost(table, shard, seq, detail, false).await),
        }
    }

    /// Forwards a command to one shard and relays its answer (see `run_on_inner`), and
    /// records its outcome and latency (docs/metrics.md).
    pub(super) async fn run_on(
        &mut self,
        table: &RoutingTable,
        shard: ShardId,
        payload: &[u8],
        seq: u8,
        kind: ResponseKind,
        binds: bool,
    ) -> Result<Option<u16>, End> {
        let started = crate::metrics::start_timer();
        self.refused = None;
        let result = self
            .run_on_inner(table, shard, payload, seq, kind, binds)
            .await;
        if let Some(started) = started {
            let outcome = match &result {
                Ok(Some(_)) => "ok",
                // Its answer is a plain string, not an OK packet.
                Ok(None) if payload.first() == Some(&COM_STATISTICS) => "ok",
                Ok(None) => self.refused.unwrap_or("error"),
                Err(End::Error(e)) => e.kind(),
                Err(End::ClientGone(_)) => "client_gone",
                Err(_) => "closed",
            };
            let name = table.shard_name(shard);
            crate::metrics::statement(shard, name, outcome, started);
        }
        result
    }

    /// Forwards a command to one shard and relays its answer. With `binds`, the
    /// statement belongs to the session's transaction: a pending BEGIN is sent first, and
    /// a statement for another shard than the open transaction's rolls it back and fails.
    async fn run_on_inner(
        &mut self,
        table: &RoutingTable,
        shard: ShardId,
        payload: &[u8],
        seq: u8,
        kind: ResponseKind,
        binds: bool,
    ) -> Result<Option<u16>, End> {
        // A shard switching masters: hold the statement (bounded) until the new master is
        // published, then route with the new topology. Statements of a transaction already
        // open there go on: the switchover lets them finish before it fences the old master.
        let reloaded;
        let table = if table.shard(shard).is_some_and(|s| s.switching)
            && self.tx.open_shard() != Some(shard)
        {
            match self.hold_while_switching(shard).await {
                Ok(fresh) => {
                    reloaded = fresh;
                    &*reloaded
                }
                Err(err) => return self.reply_error(seq, err).await.map(|_| None),
            }
        } else {
            table
        };
        if binds {
            match self.tx.bind(shard) {
                Err(other) => {
                    return self
                        .cross_shard_transaction(table, other, shard, seq)
                        .await
                        .map(|_| None)
                }
                Ok(prelude) => {
                    // The pending BEGIN (and what came with it) opens the transaction here.
                    for stmt in prelude {
                        if !self.run_internal(table, shard, &stmt, seq).await? {
                            return Ok(None);
                        }
                    }
                    if self.roll_back_stray().await {
                        let err = ClientError::RolledBack(STRAY_TX);
                        return self.reply_error(seq, err).await.map(|_| None);
                    }
                }
            }
        } else if let Err(locked) = self.tx.check_unbound(shard) {
            return self
                .cross_shard_transaction(table, locked, shard, seq)
                .await
                .map(|_| None);
        }
        if self.tx.open_shard() == Some(shard) && self.backends.is_stale(table, shard) {
            // The shard's master changed under an open transaction: it is gone with the
            // old master's connection.
            self.backends.discard(shard);
            self.tx.ended(shard);
            self.status &= !SERVER_STATUS_IN_TRANS;
            let err = ClientError::MasterChanged {
                shard: table.shard_name(shard).to_string(),
            };
            return self.reply_error(seq, err).await.map(|_| None);
        }
        let timeouts = self.relay_timeouts();
        let format = self.backends.result_format();
        if let Err(failure) = self.backends.connection(table, shard).await {
            self.reply_failure(seq, failure).await?;
            return Ok(None);
        }
        // The statement was read with the session's dialect; a connection that reads
        // differently (another global sql_mode or version on this shard) runs it only if
        // it routes the same under the connection's own dialect.
        if let Some(conn_dialect) = self.backends.dialect(shard).filter(|d| *d != self.dialect) {
            if payload.first() == Some(&COM_QUERY) {
                let sql = payload.get(1..).unwrap_or_default();
                match self.route_query(table, sql, conn_dialect) {
                    Ok(Route::Shard(s)) if s != shard => {
                        let err = RouteError::Statement(DIALECT_DIFFERS);
                        return self.reply_error(seq, err.into()).await.map(|_| None);
                    }
                    Err(e) => return self.reply_error(seq, e.into()).await.map(|_| None),
                    Ok(_) => {}
                }
            }
        }
        let Some(io) = self.backends.get(shard) else {
            let err = ClientError::Internal("backend connection vanished".into());
            return self.reply_error(seq, err).await.map(|_| None);
        };
        // Re-framing from sequence 0 reproduces the client's packet split exactly.
        io.queue(0, payload);
        if let Err(e) = io.flush().await {
            return Err(self
                .backend_lost(table, shard, seq, e.to_string(), false)
                .await);
        }
        self.current = shard;
        match relay_response(
            &mut self.client,
            io,
            kind,
            format,
            seq,
            timeouts,
            &mut self.watchdog,
        )
        .await
        {
            Ok(Relayed { status, inserted }) => {
                if inserted {
                    self.tx.inserted_on(shard);
                }
                if let Some(status) = status {
                    self.note_status(shard, status);
                }
                if self.roll_back_stray().await {
                    self.rolled_back = Some(STRAY_TX);
                }
                Ok(status)
            }
            Err((RelayError::Client(e), _)) => {
                self.backends.discard(shard);
                Err(End::ClientGone(e))
            }
            Err((err, position)) => {
                let detail = err.to_string();
                let timeout = matches!(err, RelayError::BackendTimeout(_));
                warn!(parent: &self.span, shard = table.shard_name(shard), command = command::name(payload.first().copied().unwrap_or(0)), error = %detail, "relay failed");
                if position.mid_packet {
                    // Part of a packet reached the client: an ERR would be garbage now.
                    self.backends.discard(shard);
                    return Err(End::Error(ClientError::BackendLost {
                        shard: table.shard_name(shard).to_string(),
                        detail,
                    }));
                }
                Err(self
                    .backend_lost(table, shard, position.last_seq, detail, timeout)
                    .await)
            }
        }
    }

    /// Holds the statement if `shard` is switching (and the session has no transaction
    /// open there); returns the snapshot to continue with when it waited.
    pub(super) async fn hold_if_switching(
        &self,
        table: &RoutingTable,
        shard: ShardId,
    ) -> Result<Option<Arc<RoutingTable>>, ClientError> {
        if table.shard(shard).is_some_and(|s| s.switching) && self.tx.open_shard() != Some(shard) {
            return self.hold_while_switching(shard).await.map(Some);
        }
        Ok(None)
    }

    /// Waits until `shard` is no longer switching, within `failover.buffer_max_ms` and
    /// `failover.buffer_max_statements`; returns the routing snapshot to continue with.
    async fn hold_while_switching(&self, shard: ShardId) -> Result<Arc<RoutingTable>, ClientError> {
        use std::sync::atomic::Ordering;
        let limits = &self.ctx.config.failover;
        let name = || self.ctx.routing.load().shard_name(shard).to_string();
        if self.ctx.held.fetch_add(1, Ordering::AcqRel) >= limits.buffer_max_statements {
            self.ctx.held.fetch_sub(1, Ordering::AcqRel);
            return Err(ClientError::ShardSwitching {
                shard: name(),
                why: format!(
                    "{} statements are held already (failover.buffer_max_statements)",
                    limits.buffer_max_statements
                ),
            });
        }
        let deadline =
            tokio::time::Instant::now() + std::time::Duration::from_millis(limits.buffer_max_ms);
        let result = loop {
            let table = self.ctx.routing.load_full();
            if !table.shard(shard).is_some_and(|s| s.switching) {
                break Ok(table);
            }
            if tokio::time::Instant::now() >= deadline {
                break Err(ClientError::ShardSwitching {
                    shard: name(),
                    why: format!(
                        "held for {} ms (failover.buffer_max_ms)",
                        limits.buffer_max_ms
                    ),
                });
            }
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        };
        self.ctx.held.fetch_sub(1, Ordering::AcqRel);
        result
    }

    /// Updates the transaction state from a backend's final status flags. A second open
    /// transaction is remembered for [`Session::roll_back_stray`].
    pub(super) fn note_status(&mut self, shard: ShardId, status: u16) {
        self.status = status;
        if let Observation::Violation(shards) = self.tx.observe(shard, status) {
            for s in shards {
                if !self.stray.contains(&s) {
                    self.stray.push(s);
                }
            }
        }
    }

    /// Rolls back every transaction of a violation [`Session::note_status`] found (a
    /// session never holds transactions on two shards); true if there was one.
    async fn roll_back_stray(&mut self) -> bool {
        if self.stray.is_empty() {
            return false;
        }
        for shard in std::mem::take(&mut self.stray) {
            self.roll_back_quietly(shard).await;
        }
        self.tx.abort();
        self.status &= !SERVER_STATUS_IN_TRANS;
        true
    }

    /// ROLLBACK on `shard`'s connection, answer consumed; a connection that cannot roll
    /// back is closed (the server rolls back a closed connection's transaction).
    async fn roll_back_quietly(&mut self, shard: ShardId) {
        let format = self.backends.result_format();
        let timeout = self.ctx.config.timeouts.backend_read();
        let rolled_back = match self.backends.get(shard) {
            Some(io) => exchange(io, b"\x03ROLLBACK", ResponseKind::Query, format, timeout)
                .await
                .is_ok_and(|p| p.first().and_then(|p| p.first()) != Some(&ERR_HEADER)),
            None => true,
        };
        if !rolled_back {
            self.backends.discard(shard);
        }
        self.tx.ended(shard);
    }

    /// The backend connection of `shard` broke: report it (answering the command that
    /// ended with `seq`), drop the connection, end the session (its state is gone).
    pub(super) async fn backend_lost(
        &mut self,
        table: &RoutingTable,
        shard: ShardId,
        seq: u8,
        detail: String,
        timeout: bool,
    ) -> End {
        self.backends.discard(shard);
        let name = table.shard_name(shard).to_string();
        let err = if timeout {
            ClientError::BackendTimeout {
                shard: name,
                after: self.ctx.config.timeouts.backend_read(),
            }
        } else {
            ClientError::BackendLost {
                shard: name,
                detail,
            }
        };
        send_error(&mut self.client, seq.wrapping_add(1), err).await
    }

    async fn cross_shard_transaction(
        &mut self,
        table: &RoutingTable,
        tx_shard: ShardId,
        shard: ShardId,
        seq: u8,
    ) -> Result<(), End> {
        if self.tx.open_shard() != Some(tx_shard) {
            // Not a transaction: LOCK TABLES holds the session on that shard.
            let err = ClientError::TablesLocked {
                shard: table.shard_name(tx_shard).to_string(),
            };
            return self.reply_error(seq, err).await;
        }
        self.roll_back_quietly(tx_shard).await;
        self.status &= !SERVER_STATUS_IN_TRANS;
        let err = ClientError::CrossShardTransaction {
            tx_shard: table.shard_name(tx_shard).to_string(),
            shard: table.shard_name(shard).to_string(),
        };
        self.reply_error(seq, err).await
    }

    fn relay_timeouts(&self) -> RelayTimeouts {
        let t = &self.ctx.config.timeouts;
        RelayTimeouts {
            backend_read: t.backend_read(),
            client_write: t.client_write(),
            client_read: t.idle(),
        }
    }

    /// Session state (`SET`, `USE`, COM_INIT_DB, COM_SET_OPTION, COM_RESET_CONNECTION):
    /// sent to every open backend connection, answered with the first error or the last
    /// OK, and remembered for connections opened later.
    async fn broadcast(
        &mut self,
        table: &RoutingTable,
        payload: &[u8],
        seq: u8,
        kind: ResponseKind,
    ) -> Result<(), End> {
        let timeout = self.ctx.config.timeouts.backend_read();
        let format = self.backends.result_format();
        if self.backends.open_shards().next().is_none() {
            // Session state needs a connection to live on: the session's current shard.
            let shard = self.session_shard();
            if let Err(failure) = self.backends.connection(table, shard).await {
                return self.reply_failure(seq, failure).await;
            }
        }
        let shards: Vec<ShardId> = self.backends.open_shards().collect();
        let was_autocommit = self.status & SERVER_STATUS_AUTOCOMMIT != 0;
        let mut answer: Option<Vec<BytesMut>> = None;
        let mut failed = false;
        for shard in shards {
            let Some(io) = self.backends.get(shard) else {
                continue;
            };
            let result = exchange(io, payload, kind, format, timeout).await;
            let packets = match result {
                Ok(p) => p,
                Err(detail) => {
                    return Err(self.backend_lost(table, shard, seq, detail, false).await)
                }
            };
            let is_err = packets.first().and_then(|p| p.first()) == Some(&ERR_HEADER);
            if !is_err {
                if let Some(status) = final_status(&packets) {
                    self.note_status(shard, status);
                }
            }
            if !failed {
                failed = is_err;
                answer = Some(packets);
            }
        }
        if !failed {
            self.record_state(payload);
        }
        if !was_autocommit && self.status & SERVER_STATUS_AUTOCOMMIT != 0 {
            // Switching autocommit on commits the transaction, also one still pending.
            self.tx.end_pending(false, false);
        }
        if self.roll_back_stray().await {
            // A SET (a stored function in it) opened transactions where the session must
            // not have them: undone, and said so instead of the SET's answer.
            let err = ClientError::RolledBack(STRAY_TX);
            return self.reply_error(seq, err).await;
        }
        let sql = payload.get(1..).unwrap_or_default();
        let reread = match payload.first().copied() {
            Some(COM_RESET_CONNECTION) => true,
            Some(COM_QUERY) => may_change_dialect(sql),
            _ => false,
        };
        if reread {
            // sql_mode or the character set may have changed (even by a statement that
            // failed on one shard): read back how each connection now reads statements.
            match self.backends.refresh_dialects().await {
                Ok(Some(dialect)) => self.dialect = dialect,
                Ok(None) => {}
                Err((shard, detail)) => {
                    return Err(self.backend_lost(table, shard, seq, detail, false).await)
                }
            }
        }
        match answer {
            Some(mut packets) => {
                if self.tx.is_pending() {
                    // The servers know nothing of the pending BEGIN yet; the client must.
                    if let Some(ok) = packets.first_mut() {
                        add_ok_status(ok, SERVER_STATUS_IN_TRANS);
                    }
                }
                self.send_packets(seq, &packets).await
            }
            None => {
                self.reply_error(
                    seq,
                    ClientError::Internal("no backend connection to apply session state on".into()),
                )
                .await
            }
        }
    }

    fn record_state(&mut self, payload: &[u8]) {
        match payload.first().copied() {
            Some(COM_INIT_DB) => self
                .backends
                .record_database(String::from_utf8_lossy(&payload[1..]).into_owned()),
            Some(COM_SET_OPTION) => self.backends.record_set_option(payload),
            Some(COM_RESET_CONNECTION) => {
                self.backends.clear_state();
                self.statements.clear();
                self.tx.reset();
                self.pin = None;
            }
            Some(COM_QUERY) => {
                let sql = &payload[1..];
                match local::use_database(sql) {
                    Some(db) => self.backends.record_database(db),
                    None => self.backends.record_set(payload),
                }
            }
            _ => {}
        }
    }

    /// `SHOW DBROUTER ROUTE FOR <user>`: where a user's statements go, and why.
    async fn show_route(&mut self, table: &RoutingTable, user: &[u8], seq: u8) -> Result<(), End> {
        let canonical = match key_from_text(user, table.key_type()) {
            Ok(key) => key,
            Err(why) => {
                let key = String::from_utf8_lossy(user).into_owned();
                return self
                    .reply_error(seq, RouteError::BadKey { key, why }.into())
                    .await;
            }
        };
        let (shard, why) = table.shard_for_key(&canonical);
        let info = table.shard(shard);
        let (reason, key_hash, vnode) = match why {
            Why::Override => ("override".to_string(), None, None),
            Why::Ring {
                key_hash,
                vnode_hash,
            } => (
                "ring".to_string(),
                Some(format!("{key_hash:016x}")),
                Some(format!("{vnode_hash:016x}")),
            ),
        };
        let row = vec![
            Some(String::from_utf8_lossy(&canonical).into_owned()),
            info.map(|s| s.name.clone()),
            info.map(|s| s.master.clone()),
            Some(reason),
            key_hash,
            vnode,
        ];
        let packets = text_result_set(
            &[
                "userid",
                "shard",
                "master",
                "reason",
                "key_hash",
                "vnode_hash",
            ],
            &[row],
            self.status & !crate::protocol::response::SERVER_MORE_RESULTS_EXISTS,
            self.backends.result_format(),
        );
        self.send_packets(seq, &packets).await
    }

    /// `SHOW DBROUTER STATUS`: the topology this router serves and its source's health.
    async fn show_status(&mut self, table: &RoutingTable, seq: u8) -> Result<(), End> {
        let topo = &self.ctx.topology;
        let condition = topo.condition();
        let mut rows: Vec<Vec<Option<String>>> = vec![
            vec![Some("topology_source".into()), Some(topo.source.clone())],
            vec![
                Some("topology_version".into()),
                Some(table.version.to_string()),
            ],
            vec![
                Some("zookeeper_state".into()),
                Some(condition.state.to_string()),
            ],
            vec![
                Some("topology_last_error".into()),
                condition.last_error.clone(),
            ],
            vec![
                Some("overridden_users".into()),
                Some(table.override_count().to_string()),
            ],
        ];
        for h in self.ctx.health.snapshot() {
            let x = &h.health;
            rows.push(vec![
                Some(format!("server.{}", x.addr)),
                Some(format!(
                    "shard={} role={} reachable={} read_only={} lag={} io={} sql={} semi_sync_master={} semi_sync_slave={} rtt_us={} gtid={} failures={} error={}",
                    h.shard,
                    h.role,
                    x.reachable,
                    x.read_only,
                    x.lag_seconds.map_or("-".into(), |l| l.to_string()),
                    x.io_running,
                    x.sql_running,
                    x.semi_sync_master,
                    x.semi_sync_slave,
                    x.rtt_us,
                    x.gtid_current_pos,
                    h.consecutive_failures,
                    x.last_error.as_deref().unwrap_or("-")
                )),
            ]);
        }
        for s in &table.shards {
            rows.push(vec![
                Some(format!("shard.{}", s.name)),
                Some(format!(
                    "master={} epoch={} weight={} standbys={}",
                    s.master,
                    s.epoch,
                    s.weight,
                    s.standbys.join(",")
                )),
            ]);
        }
        let packets = text_result_set(
            &["name", "value"],
            &rows,
            self.status & !crate::protocol::response::SERVER_MORE_RESULTS_EXISTS,
            self.backends.result_format(),
        );
        self.send_packets(seq, &packets).await
    }

    /// COM_CHANGE_USER: re-authenticates against dbrouter's accounts, then starts over
    /// with fresh backend state (connections go back to the pool and are reset there),
    /// exactly as a MySQL server resets the session.
    async fn change_user(
        &mut self,
        table: &RoutingTable,
        payload: &[u8],
        seq: u8,
    ) -> Result<(), End> {
        let reply_seq = seq.wrapping_add(1);
        let login_now = self.backends.login().clone();
        let mut login = match parse_change_user(
            payload,
            login_now.capabilities,
            login_now.mariadb_capabilities,
            login_now.collation,
        ) {
            Ok(login) => login,
            Err(e) => {
                return Err(send_error(
                    &mut self.client,
                    reply_seq,
                    ClientError::BadHandshake(e.to_string()),
                )
                .await)
            }
        };
        if login.attributes.is_none() {
            login.attributes = login_now.attributes.clone();
        }
        let next = authenticate(
            &mut self.client,
            &self.ctx.config,
            &login,
            &self.scramble,
            reply_seq,
            self.peer,
        )
        .await?;
        self.backends.relogin(login_state(&login));
        self.statements.clear();
        self.tx.reset();
        self.pin = None;
        self.status = SERVER_STATUS_AUTOCOMMIT;
        let global = table.global_shard();
        self.current = global;
        if let Err(failure) = self.backends.connection(table, global).await {
            return Err(send_failure(&mut self.client, next, failure).await);
        }
        self.dialect = self.backends.dialect(global).unwrap_or_default();
        self.backends.release_all(true);
        self.client
            .queue(next, &ok_packet(0, 0, SERVER_STATUS_AUTOCOMMIT, 0));
        self.client.flush().await.map_err(End::ClientGone)?;
        debug!(parent: &self.span, user = %login.user, "user changed");
        Ok(())
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
