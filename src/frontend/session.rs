//! One client connection from greeting to goodbye: the connection phase (greeting,
//! authentication against the configured accounts, backend login with the client's
//! database, collation, capabilities and attributes), then the command loop that forwards
//! each command to the backend and relays the response back.

use std::net::SocketAddr;
use std::sync::Arc;

use mysql_common::constants::CapabilityFlags;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::backend::{self, BackendConn, BackendError, LoginOptions};
use crate::config::Config;
use crate::error::ClientError;
use crate::net::{NetError, PacketConn};
use crate::protocol::auth::{new_scramble, AuthMethod, SCRAMBLE_LEN};
use crate::protocol::command::{self, *};
use crate::protocol::handshake::{
    auth_switch, greeting, offered_capabilities, parse_change_user, parse_handshake_response,
    ClientLogin, LoginParseError,
};
use crate::protocol::packets::ok_packet;
use crate::protocol::response::{ResponseKind, SERVER_STATUS_AUTOCOMMIT, SERVER_STATUS_IN_TRANS};

use super::relay::{relay_response, RelayError, RelayTimeouts};

/// Largest packet accepted during the connection phase.
const HANDSHAKE_PACKET_LIMIT: usize = 64 * 1024;

/// What every session shares: configuration and facts learned at start-up.
#[derive(Debug)]
pub struct SessionContext {
    /// The loaded configuration.
    pub config: Arc<Config>,
    /// Server version announced in the greeting.
    pub server_version: String,
    /// Default collation announced in the greeting.
    pub server_collation: u8,
    /// Becomes true when the router starts draining.
    pub shutdown: watch::Receiver<bool>,
}

/// Why a session ended (for the log line at its end).
#[derive(Debug)]
enum End {
    /// The client said COM_QUIT or closed the socket between commands.
    ClientQuit,
    /// An error was reported to the client (or could not be) and the connection closed.
    Error(ClientError),
    /// The client connection failed; nothing could be sent.
    ClientGone(NetError),
    /// Idle for longer than `timeouts.idle_ms`, or drained at shutdown.
    Closed(&'static str),
}

/// A session in its command phase.
struct Session {
    client: PacketConn<TcpStream>,
    backend: BackendConn,
    ctx: Arc<SessionContext>,
    peer: SocketAddr,
    /// Capabilities negotiated with the client.
    capabilities: CapabilityFlags,
    /// The nonce of the greeting (COM_CHANGE_USER answers are computed with it).
    scramble: [u8; SCRAMBLE_LEN],
    /// The client's collation, kept for COM_CHANGE_USER without one.
    collation: u16,
    /// Connection attributes from the handshake, passed on to new backend connections.
    attributes: Option<std::collections::HashMap<String, String>>,
    /// Last known SERVER_STATUS_IN_TRANS from the backend's status flags.
    in_transaction: bool,
}

/// Runs one client connection to its end. Never panics on client input; every failure
/// that can still be reported becomes an ERR packet.
pub async fn run(
    stream: TcpStream,
    peer: SocketAddr,
    connection_id: u32,
    ctx: Arc<SessionContext>,
) {
    let _ = stream.set_nodelay(true);
    let mut client = PacketConn::new(stream);
    let handshake_timeout = ctx.config.timeouts.handshake();
    let session = match tokio::time::timeout(
        handshake_timeout,
        connection_phase(&mut client, peer, connection_id, &ctx),
    )
    .await
    {
        Ok(Ok(parts)) => parts,
        Ok(Err(end)) => {
            log_end(&end);
            client.shutdown().await;
            return;
        }
        Err(_) => {
            info!(timeout = ?handshake_timeout, "handshake timed out; closing");
            client.shutdown().await;
            return;
        }
    };
    let (backend, login, capabilities, scramble) = session;
    let mut session = Session {
        client,
        backend,
        ctx,
        peer,
        capabilities,
        scramble,
        collation: login.collation,
        attributes: login.attributes,
        in_transaction: false,
    };
    let end = session.command_loop().await;
    log_end(&end);
    match end {
        End::ClientQuit | End::Closed(_) => session.backend.quit().await,
        // The backend may be mid-response: dropping it closes the socket.
        End::Error(_) | End::ClientGone(_) => drop(session.backend),
    }
    session.client.shutdown().await;
}

fn log_end(end: &End) {
    match end {
        End::ClientQuit => debug!("client quit"),
        End::Closed(why) => info!(reason = why, "connection closed"),
        End::ClientGone(e) => info!(error = %e, "client connection lost"),
        End::Error(e) => info!(kind = e.kind(), error = %e, "connection closed with error"),
    }
}

type LoggedIn = (
    BackendConn,
    ClientLogin,
    CapabilityFlags,
    [u8; SCRAMBLE_LEN],
);

async fn connection_phase(
    client: &mut PacketConn<TcpStream>,
    peer: SocketAddr,
    connection_id: u32,
    ctx: &SessionContext,
) -> Result<LoggedIn, End> {
    let config = &ctx.config;
    let scramble = new_scramble().map_err(|e| End::Error(ClientError::Internal(e.to_string())))?;
    let method = config.default_auth_method();
    let hello = greeting(
        connection_id,
        &ctx.server_version,
        &scramble,
        offered_capabilities(),
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
    let mut seq = seq.wrapping_add(1);
    let mut login = match parse_handshake_response(&payload) {
        Ok(login) => login,
        Err(e @ LoginParseError::OldProtocol) => {
            return Err(send_error(client, seq, ClientError::AuthNotSupported(e.to_string())).await)
        }
        Err(e) => {
            return Err(send_error(client, seq, ClientError::BadHandshake(e.to_string())).await)
        }
    };
    let capabilities = login.capabilities & offered_capabilities();
    login.capabilities = capabilities;
    seq = authenticate(client, config, &login, &scramble, seq, peer).await?;

    let backend = match connect_backend(ctx, &login).await {
        Ok(b) => b,
        Err(refusal) => return Err(send_refusal(client, seq, refusal).await),
    };
    client.queue(seq, &ok_packet(0, 0, SERVER_STATUS_AUTOCOMMIT, 0));
    client.flush().await.map_err(End::ClientGone)?;
    debug!(user = %login.user, db = ?login.database, backend_id = backend.connection_id, "client logged in");
    Ok((backend, login, capabilities, scramble))
}

/// Why a backend connection for a client could not be opened.
enum Refusal {
    /// The backend answered the login with an ERR about the client's request (unknown
    /// database, …): relay it unchanged.
    Relay(Vec<u8>),
    /// The backend is unreachable or refused the service account: report it ourselves.
    Unavailable(ClientError),
}

/// Opens the backend connection for a logged-in client.
async fn connect_backend(
    ctx: &SessionContext,
    login: &ClientLogin,
) -> Result<BackendConn, Refusal> {
    let config = &ctx.config;
    let shard = config.primary_shard();
    let opts = LoginOptions {
        user: config.backend.user.clone(),
        password: config.backend.password().to_string(),
        database: login.database.clone(),
        collation: Some(login.collation),
        capabilities: login.capabilities,
        attributes: login.attributes.clone(),
    };
    match backend::connect(&shard.master, &opts, config.timeouts.connect()).await {
        Ok(conn) => Ok(conn),
        // Errors about the client's own request pass through; errors about the service
        // account or server limits (1040, 1045, 1129, 1130, 1203, 1226) are ours to report.
        Err(BackendError::Server { payload, error, .. })
            if !matches!(error.code, 1040 | 1045 | 1129 | 1130 | 1203 | 1226) =>
        {
            Err(Refusal::Relay(payload))
        }
        Err(e) => {
            warn!(shard = %shard.name, error = %e, "backend unavailable");
            Err(Refusal::Unavailable(ClientError::BackendUnavailable {
                shard: shard.name.clone(),
                addr: shard.master.clone(),
                detail: e.to_string(),
            }))
        }
    }
}

/// Tells the client why its backend connection could not be opened.
async fn send_refusal(client: &mut PacketConn<TcpStream>, seq: u8, refusal: Refusal) -> End {
    match refusal {
        Refusal::Relay(payload) => {
            client.queue(seq, &payload);
            match client.flush().await {
                Ok(()) => {
                    End::Closed("the backend refused the client's request (its error was relayed)")
                }
                Err(e) => End::ClientGone(e),
            }
        }
        Refusal::Unavailable(err) => send_error(client, seq, err).await,
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
                return Err(send_error(
                    client,
                    seq,
                    ClientError::AuthNotSupported(
                        "the account needs caching_sha2_password and the client cannot switch plugins".into(),
                    ),
                )
                .await);
            }
            let target = account.map_or(config.default_auth_method(), |c| c.preferred_method());
            nonce = new_scramble().map_err(|e| End::Error(ClientError::Internal(e.to_string())))?;
            client.queue(seq, &auth_switch(target.plugin_name(), &nonce));
            client.flush().await.map_err(End::ClientGone)?;
            let (got, answer) = match client
                .read_logical(HANDSHAKE_PACKET_LIMIT, Some(seq.wrapping_add(1)))
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
    let ok = account.is_some_and(|creds| creds.verify(method, &nonce, &token));
    if !ok {
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
    client.queue(seq, &err.to_packet());
    match client.flush().await {
        Ok(()) => End::Error(err),
        Err(e) => End::ClientGone(e),
    }
}

fn net_to_client_error(e: NetError, limit: usize) -> ClientError {
    match e {
        NetError::TooLarge { .. } => ClientError::PacketTooLarge { limit },
        NetError::OutOfOrder { .. } => ClientError::PacketsOutOfOrder,
        other => ClientError::BadHandshake(other.to_string()),
    }
}

/// The response shape of a relayed command; `None` for commands without a response.
fn response_kind(cmd: u8) -> Option<ResponseKind> {
    match cmd {
        COM_QUERY => Some(ResponseKind::Query),
        COM_STMT_EXECUTE => Some(ResponseKind::Execute),
        COM_STMT_PREPARE => Some(ResponseKind::Prepare),
        COM_FIELD_LIST => Some(ResponseKind::FieldList),
        COM_STMT_FETCH => Some(ResponseKind::Fetch),
        COM_STMT_CLOSE | COM_STMT_SEND_LONG_DATA => None,
        _ => Some(ResponseKind::Single),
    }
}

impl Session {
    async fn command_loop(&mut self) -> End {
        let mut shutdown = self.ctx.shutdown.clone();
        let max_packet = self.ctx.config.server.max_packet_size;
        let idle = self.ctx.config.timeouts.idle();
        loop {
            let draining = *shutdown.borrow();
            if draining && !self.in_transaction && !self.client.has_buffered_input() {
                return End::Closed("router draining");
            }
            let read = tokio::select! {
                r = tokio::time::timeout(idle, self.client.read_logical(max_packet, Some(0))) => r,
                _ = shutdown.changed(), if !draining => continue,
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
            let Some(&cmd) = payload.first() else {
                let err = ClientError::UnknownCommand(COM_SLEEP);
                if let End::ClientGone(e) =
                    send_error(&mut self.client, seq.wrapping_add(1), err).await
                {
                    return End::ClientGone(e);
                }
                continue;
            };
            if let Some(err) = ClientError::for_command(cmd) {
                let closes = err.closes_connection();
                let end = send_error(&mut self.client, seq.wrapping_add(1), err).await;
                if closes || matches!(end, End::ClientGone(_)) {
                    return end;
                }
                continue;
            }
            match cmd {
                COM_QUIT => return End::ClientQuit,
                COM_CHANGE_USER => {
                    if let Err(end) = self.change_user(&payload, seq).await {
                        return end;
                    }
                }
                _ => {
                    if let Err(end) = self.forward(cmd, seq, &payload).await {
                        return end;
                    }
                }
            }
        }
    }

    /// Sends a command to the backend and relays its response.
    async fn forward(&mut self, cmd: u8, seq: u8, payload: &[u8]) -> Result<(), End> {
        let shard = &self.ctx.config.primary_shard().name;
        // Re-framing from sequence 0 reproduces the client's packet split exactly.
        self.backend.io.queue(0, payload);
        if let Err(e) = self.backend.io.flush().await {
            let err = ClientError::BackendLost {
                shard: shard.clone(),
                detail: e.to_string(),
            };
            return Err(send_error(&mut self.client, seq.wrapping_add(1), err).await);
        }
        let Some(kind) = response_kind(cmd) else {
            return Ok(());
        };
        let timeouts = self.relay_timeouts();
        match relay_response(&mut self.client, &mut self.backend.io, kind, seq, timeouts).await {
            Ok(status) => {
                if let Some(status) = status {
                    self.in_transaction = status & SERVER_STATUS_IN_TRANS != 0;
                }
                Ok(())
            }
            Err((err, position)) => {
                let client_err = match err {
                    RelayError::Client(e) => return Err(End::ClientGone(e)),
                    RelayError::Backend(e) => ClientError::BackendLost {
                        shard: shard.clone(),
                        detail: e.to_string(),
                    },
                    RelayError::BackendTimeout(after) => ClientError::BackendTimeout {
                        shard: shard.clone(),
                        after,
                    },
                    RelayError::Protocol(v) => ClientError::Internal(v.to_string()),
                };
                warn!(command = command::name(cmd), error = %client_err, "relay failed");
                if position.mid_packet {
                    // Part of a packet reached the client: an ERR would be garbage now.
                    return Err(End::Error(client_err));
                }
                Err(send_error(
                    &mut self.client,
                    position.last_seq.wrapping_add(1),
                    client_err,
                )
                .await)
            }
        }
    }

    fn relay_timeouts(&self) -> RelayTimeouts {
        let t = &self.ctx.config.timeouts;
        RelayTimeouts {
            backend_read: t.backend_read(),
            client_write: t.client_write(),
            client_read: t.idle(),
        }
    }

    /// COM_CHANGE_USER: re-authenticates against dbrouter's accounts, then replaces the
    /// backend connection with a fresh one (new database, collation and attributes), so
    /// no session state survives, exactly as on a MySQL server.
    async fn change_user(&mut self, payload: &[u8], seq: u8) -> Result<(), End> {
        let reply_seq = seq.wrapping_add(1);
        let mut login = match parse_change_user(payload, self.capabilities, self.collation) {
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
            login.attributes = self.attributes.clone();
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
        let fresh = match connect_backend(&self.ctx, &login).await {
            Ok(conn) => conn,
            Err(refusal) => return Err(send_refusal(&mut self.client, next, refusal).await),
        };
        let old = std::mem::replace(&mut self.backend, fresh);
        old.quit().await;
        self.collation = login.collation;
        self.attributes = login.attributes;
        self.in_transaction = false;
        self.client
            .queue(next, &ok_packet(0, 0, SERVER_STATUS_AUTOCOMMIT, 0));
        self.client.flush().await.map_err(End::ClientGone)?;
        debug!(user = %login.user, "user changed");
        Ok(())
    }
}
