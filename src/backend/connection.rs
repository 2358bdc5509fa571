//! One backend connection: TCP connect, the handshake as a client (the account to act as —
//! the client's own or the service account —, the client's database, collation,
//! capabilities and connection attributes), and `mysql_native_password` /
//! `caching_sha2_password` (fast path) authentication.

use std::collections::HashMap;
use std::time::Duration;

use mysql_common::constants::{CapabilityFlags, MariadbCapabilities};
use mysql_common::io::ParseBuf;
use mysql_common::packets::{AuthPlugin, AuthSwitchRequest, HandshakePacket, HandshakeResponse};
use mysql_common::proto::{MyDeserialize, MySerialize};
use mysql_common::scramble::{scramble_native, scramble_sha256};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::net::{BackendIo, BackendTls, NetError, PacketConn};
use crate::protocol::auth::PasswordSha1;
use crate::protocol::command::COM_QUIT;
use crate::protocol::handshake::{mariadb_extended, offered_capabilities};
use bytes::BytesMut;

use crate::protocol::packets::{
    parse_err, read_lenenc_int, ServerErrorInfo, ERR_HEADER, OK_HEADER,
};
use crate::protocol::response::ResultFormat;
use crate::router::dialect::Dialect;

/// Largest packet accepted during a backend handshake.
const HANDSHAKE_PACKET_LIMIT: usize = 64 * 1024;

/// The max_packet_size dbrouter announces to backends: the protocol maximum (1 GiB);
/// client packets are limited by `server.max_packet_size` before they get here.
const BACKEND_MAX_PACKET: u32 = 1 << 30;

/// Why a backend connection could not be established.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// TCP connect failed.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// Backend address.
        addr: String,
        /// The socket error.
        source: std::io::Error,
    },
    /// Connect plus handshake took longer than `timeouts.connect_ms`.
    #[error("connecting to {addr} timed out after {after:?}")]
    Timeout {
        /// Backend address.
        addr: String,
        /// The timeout.
        after: Duration,
    },
    /// The connection broke during the handshake.
    #[error("handshake with {addr} failed: {source}")]
    Net {
        /// Backend address.
        addr: String,
        /// The framing error.
        source: NetError,
    },
    /// The server answered with an ERR packet (relayed to the client as is).
    #[error("{addr} refused the login: {error}")]
    Server {
        /// Backend address.
        addr: String,
        /// The decoded error.
        error: ServerErrorInfo,
        /// The raw ERR payload, to relay unchanged.
        payload: Vec<u8>,
    },
    /// The server spoke something dbrouter does not understand.
    #[error("protocol error with {addr}: {message}")]
    Protocol {
        /// Backend address.
        addr: String,
        /// What was wrong.
        message: String,
    },
}

/// What to log in with.
#[derive(Clone, Default)]
pub struct LoginOptions {
    /// The account: the client's own, a mapped one, or the service account.
    pub user: String,
    /// Its password (empty when `password_sha1` stands for it).
    pub password: String,
    /// `SHA1(password)` recovered from the client's own login: proves the account with
    /// `mysql_native_password` without the password (any other plugin is refused).
    pub password_sha1: Option<PasswordSha1>,
    /// Initial default database.
    pub database: Option<String>,
    /// Collation id; `None` keeps the server's default.
    pub collation: Option<u16>,
    /// Capabilities the client negotiated with dbrouter (intersected with the server's).
    pub capabilities: CapabilityFlags,
    /// MariaDB extended capabilities the client negotiated with dbrouter; the server must
    /// offer them all (they change the framing the client expects).
    pub mariadb_capabilities: MariadbCapabilities,
    /// Connection attributes to pass on.
    pub attributes: Option<HashMap<String, String>>,
}

impl std::fmt::Debug for LoginOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The password and its hash are secrets: never printed.
        f.debug_struct("LoginOptions")
            .field("user", &self.user)
            .field("database", &self.database)
            .field("collation", &self.collation)
            .field("capabilities", &self.capabilities)
            .field("mariadb_capabilities", &self.mariadb_capabilities)
            .finish_non_exhaustive()
    }
}

/// An authenticated connection to a MariaDB server.
#[derive(Debug)]
pub struct BackendConn {
    /// The framed socket (clear text or TLS).
    pub io: PacketConn<BackendIo>,
    /// `host:port` dialled.
    pub addr: String,
    /// The server's thread id for this connection.
    pub connection_id: u32,
    /// The server's version string.
    pub server_version: String,
    /// The server's default collation id.
    pub server_collation: u8,
    /// Capabilities in force on this connection.
    pub capabilities: CapabilityFlags,
    /// MariaDB extended capabilities in force on this connection.
    pub mariadb_capabilities: MariadbCapabilities,
    /// MariaDB extended capabilities the server offered (empty for MySQL servers).
    pub server_mariadb_capabilities: MariadbCapabilities,
    /// How MariaDB lexes statements on this connection (sql_mode, client character set,
    /// version), as last read back from the server (`backend::pipeline`).
    pub dialect: Dialect,
    /// The OK packet that ended the login (with CLIENT_SESSION_TRACK it may carry
    /// session-state changes).
    pub login_ok: Vec<u8>,
    /// This connection's number in the process (see [`super::carried::next_serial`]).
    pub serial: u64,
    /// How many times the pool lent it out.
    pub uses: u64,
    /// What it carries between sessions in transaction pooling.
    pub carried: super::carried::Carried,
    /// The thread whose runtime the socket is registered with.
    home: std::thread::ThreadId,
}

impl BackendConn {
    /// How result sets are framed on this connection.
    pub fn result_format(&self) -> ResultFormat {
        ResultFormat::negotiated(self.capabilities, self.mariadb_capabilities)
    }

    /// Registers the socket with the calling thread's runtime if it lives on another
    /// thread's (a pooled connection last used by a session on another serving thread).
    /// Otherwise every readiness event would cross threads (docs/architecture.md).
    pub fn bring_home(self) -> std::io::Result<Self> {
        let here = std::thread::current().id();
        if self.home == here {
            return Ok(self);
        }
        Ok(BackendConn {
            io: self.io.rehome()?,
            home: here,
            ..self
        })
    }

    /// Whether the socket is registered with the calling thread's runtime.
    pub fn is_home(&self) -> bool {
        self.home == std::thread::current().id()
    }

    /// Says goodbye politely (COM_QUIT) and closes.
    pub async fn quit(mut self) {
        self.io.queue(0, &[COM_QUIT]);
        self.io.shutdown().await;
    }
}

/// Capabilities dbrouter always needs on a backend connection.
fn required_capabilities() -> CapabilityFlags {
    CapabilityFlags::CLIENT_PROTOCOL_41
        | CapabilityFlags::CLIENT_SECURE_CONNECTION
        | CapabilityFlags::CLIENT_PLUGIN_AUTH
        | CapabilityFlags::CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
        | CapabilityFlags::CLIENT_TRANSACTIONS
        | CapabilityFlags::CLIENT_LONG_PASSWORD
}

/// Connects and logs in (over TLS with `tls`), all within `timeout`.
pub async fn connect(
    addr: &str,
    opts: &LoginOptions,
    timeout: Duration,
    tls: Option<&BackendTls>,
) -> Result<BackendConn, BackendError> {
    match tokio::time::timeout(timeout, connect_inner(addr, opts, tls)).await {
        Ok(result) => result,
        Err(_) => Err(BackendError::Timeout {
            addr: addr.to_string(),
            after: timeout,
        }),
    }
}

async fn connect_inner(
    addr: &str,
    opts: &LoginOptions,
    tls: Option<&BackendTls>,
) -> Result<BackendConn, BackendError> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|source| BackendError::Connect {
            addr: addr.to_string(),
            source,
        })?;
    // Statements are small and latency-bound: never wait to coalesce.
    let _ = stream.set_nodelay(true);
    let mut io = PacketConn::with_capacity(
        BackendIo::plain(stream),
        crate::net::conn::BACKEND_READ_CAPACITY,
    );
    let facts = match tls {
        Some(tls) => login_tls(&mut io, addr, opts, tls).await?,
        None => login(&mut io, addr, opts).await?,
    };
    Ok(BackendConn {
        io,
        addr: addr.to_string(),
        connection_id: facts.connection_id,
        server_version: facts.server_version,
        server_collation: facts.server_collation,
        capabilities: facts.capabilities,
        mariadb_capabilities: facts.mariadb_capabilities,
        server_mariadb_capabilities: facts.server_mariadb_capabilities,
        dialect: Dialect::default(),
        login_ok: facts.ok,
        serial: super::carried::next_serial(),
        uses: 0,
        carried: super::carried::Carried::fresh(),
        home: std::thread::current().id(),
    })
}

/// What a login learned about the server and agreed with it.
#[derive(Debug, Clone)]
pub struct LoginFacts {
    /// The server's thread id for this connection.
    pub connection_id: u32,
    /// The server's version string.
    pub server_version: String,
    /// The server's default collation id.
    pub server_collation: u8,
    /// Capabilities in force on this connection.
    pub capabilities: CapabilityFlags,
    /// MariaDB extended capabilities in force on this connection.
    pub mariadb_capabilities: MariadbCapabilities,
    /// MariaDB extended capabilities the server offered.
    pub server_mariadb_capabilities: MariadbCapabilities,
    /// The OK packet that ended the login.
    pub ok: Vec<u8>,
}

/// The client side of the MySQL handshake over any stream (TCP to a backend; an
/// in-memory pipe to a session in tests): reads the greeting, authenticates, returns
/// what was agreed. `addr` only names the peer in errors.
pub async fn login<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut PacketConn<S>,
    addr: &str,
    opts: &LoginOptions,
) -> Result<LoginFacts, BackendError> {
    let (seq, greeting) = read_greeting(io, addr).await?;
    let hello = Hello::negotiate(addr, opts, &greeting, CapabilityFlags::empty())?;
    let seq = io.queue(seq.wrapping_add(1), &hello.response);
    io.flush().await.map_err(|source| net(addr, source))?;
    let ok = authenticate(io, addr, opts, seq).await?;
    Ok(LoginFacts { ok, ..hello.facts })
}

/// [`login`] over TLS (`[backend.tls]`): after the greeting, an SSLRequest (the first 32
/// bytes of the handshake response, with CLIENT_SSL), the TLS handshake with the server's
/// certificate checked against the configured CA and name, then the handshake response
/// and the authentication over TLS. A server that does not offer TLS is refused: the
/// service password never crosses the network in clear text when TLS is configured.
pub async fn login_tls(
    io: &mut PacketConn<BackendIo>,
    addr: &str,
    opts: &LoginOptions,
    tls: &BackendTls,
) -> Result<LoginFacts, BackendError> {
    let (seq, greeting) = read_greeting(io, addr).await?;
    let hello = Hello::negotiate(addr, opts, &greeting, CapabilityFlags::CLIENT_SSL)?;
    if !hello.server_caps.contains(CapabilityFlags::CLIENT_SSL) {
        return Err(protocol(
            addr,
            "the server does not offer TLS, which [backend.tls] requires (configure ssl_cert, ssl_key and ssl_ca on it)".into(),
        ));
    }
    let ssl_request = hello.response.get(..32).unwrap_or_default();
    let seq = io.queue(seq.wrapping_add(1), ssl_request);
    io.flush().await.map_err(|source| net(addr, source))?;
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    io.start_tls_client(tls, host)
        .await
        .map_err(|e| protocol(addr, format!("TLS handshake: {e}")))?;
    let seq = io.queue(seq, &hello.response);
    io.flush().await.map_err(|source| net(addr, source))?;
    let ok = authenticate(io, addr, opts, seq).await?;
    Ok(LoginFacts { ok, ..hello.facts })
}

fn net(addr: &str, source: NetError) -> BackendError {
    BackendError::Net {
        addr: addr.to_string(),
        source,
    }
}

fn protocol(addr: &str, message: String) -> BackendError {
    BackendError::Protocol {
        addr: addr.to_string(),
        message,
    }
}

/// Reads the server's greeting (an ERR instead is the server's refusal).
async fn read_greeting<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut PacketConn<S>,
    addr: &str,
) -> Result<(u8, BytesMut), BackendError> {
    let (seq, greeting) = io
        .read_logical(HANDSHAKE_PACKET_LIMIT, Some(0))
        .await
        .map_err(|source| net(addr, source))?;
    if greeting.first() == Some(&ERR_HEADER) {
        return Err(server_error(addr, &greeting));
    }
    Ok((seq, greeting))
}

/// What the greeting and the login options agree on: the handshake response to send and
/// the facts of the connection.
struct Hello {
    server_caps: CapabilityFlags,
    response: Vec<u8>,
    facts: LoginFacts,
}

impl Hello {
    fn negotiate(
        addr: &str,
        opts: &LoginOptions,
        greeting: &[u8],
        extra: CapabilityFlags,
    ) -> Result<Hello, BackendError> {
        let protocol = |message: String| protocol(addr, message);
        let handshake = HandshakePacket::deserialize((), &mut ParseBuf(greeting))
            .map_err(|e| protocol(format!("bad greeting: {e}")))?;
        let server_caps = handshake.capabilities();
        if !server_caps.contains(CapabilityFlags::CLIENT_PROTOCOL_41) {
            return Err(protocol("server does not speak protocol 4.1".into()));
        }
        let nonce = handshake.nonce();
        let mut caps = (opts.capabilities & offered_capabilities()) | required_capabilities();
        caps &= server_caps | CapabilityFlags::CLIENT_LONG_PASSWORD;
        caps |= extra & server_caps;
        // A MariaDB server leaves CLIENT_MYSQL (= CLIENT_LONG_PASSWORD) clear and puts its
        // extended capabilities in the greeting; it reads ours only if we clear it too.
        let server_mariadb_caps =
            mariadb_extended(server_caps, handshake.mariadb_ext_capabilities());
        let mariadb_caps = opts.mariadb_capabilities;
        // The client's framing must hold on this connection too.
        if opts
            .capabilities
            .contains(CapabilityFlags::CLIENT_DEPRECATE_EOF)
            && !server_caps.contains(CapabilityFlags::CLIENT_DEPRECATE_EOF)
        {
            return Err(protocol(
                "the client negotiated CLIENT_DEPRECATE_EOF and this server does not offer it \
                 (MariaDB 10.2+ and MySQL 5.7+ do)"
                    .into(),
            ));
        }
        if !server_mariadb_caps.contains(mariadb_caps) {
            return Err(protocol(format!(
                "the client negotiated MariaDB capabilities {mariadb_caps:?} and this server offers only \
                 {server_mariadb_caps:?} (all shards should run the same MariaDB version, 10.6 or later)"
            )));
        }
        if !mariadb_caps.is_empty() {
            caps.remove(CapabilityFlags::CLIENT_LONG_PASSWORD);
        }
        let plugin_name = handshake
            .auth_plugin_name_ref()
            .unwrap_or(b"mysql_native_password")
            .to_vec();
        let (plugin, token) = auth_token(&plugin_name, &nonce, opts)
            .ok_or_else(|| protocol(unsupported_plugin(opts, &plugin_name)))?;
        let response = HandshakeResponse::new(
            Some(token),
            handshake.server_version_parsed().unwrap_or((10, 0, 0)),
            Some(opts.user.as_bytes()),
            opts.database.as_deref().map(str::as_bytes),
            Some(plugin),
            caps,
            opts.attributes.clone(),
            BACKEND_MAX_PACKET,
        )
        .with_mariadb_ext_capabilities(mariadb_caps);
        let mut payload = Vec::with_capacity(128);
        response.serialize(&mut payload);
        // The handshake response carries a one-byte collation at offset 8 (after the
        // capability flags and max packet size); HandshakeResponse has no setter for it.
        let collation = opts
            .collation
            .and_then(|c| u8::try_from(c).ok())
            .unwrap_or(handshake.default_collation());
        if let Some(slot) = payload.get_mut(8) {
            *slot = collation;
        }
        Ok(Hello {
            server_caps,
            response: payload,
            facts: LoginFacts {
                ok: Vec::new(),
                connection_id: handshake.connection_id(),
                server_version: handshake.server_version_str().into_owned(),
                server_collation: handshake.default_collation(),
                capabilities: caps,
                mariadb_capabilities: mariadb_caps,
                server_mariadb_capabilities: server_mariadb_caps,
            },
        })
    }
}

/// After the handshake response (sent with sequence id `seq - 1`): auth switches and
/// caching_sha2_password's fast path, until the server's OK (returned).
async fn authenticate<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut PacketConn<S>,
    addr: &str,
    opts: &LoginOptions,
    mut seq: u8,
) -> Result<Vec<u8>, BackendError> {
    let protocol = |message: String| protocol(addr, message);
    loop {
        let (got_seq, packet) = io
            .read_logical(HANDSHAKE_PACKET_LIMIT, Some(seq))
            .await
            .map_err(|source| net(addr, source))?;
        seq = got_seq.wrapping_add(1);
        match packet.first() {
            Some(&OK_HEADER) => return Ok(packet.to_vec()),
            Some(&ERR_HEADER) => return Err(server_error(addr, &packet)),
            Some(0xfe) => {
                let switch = AuthSwitchRequest::deserialize((), &mut ParseBuf(&packet))
                    .map_err(|e| protocol(format!("bad auth switch request: {e}")))?;
                let name = switch.auth_plugin().as_bytes().to_vec();
                let data = switch.plugin_data();
                // The nonce is sent NUL-terminated.
                let nonce = data.strip_suffix(&[0]).unwrap_or(data);
                let (_, token) = auth_token(&name, nonce, opts)
                    .ok_or_else(|| protocol(unsupported_plugin(opts, &name)))?;
                seq = io.queue(seq, &token);
                io.flush().await.map_err(|source| net(addr, source))?;
            }
            Some(0x01) => match packet.get(1) {
                // caching_sha2_password fast path succeeded: an OK follows.
                Some(0x03) => {}
                Some(0x04) => {
                    return Err(protocol(
                        "the backend wants caching_sha2_password full authentication, which dbrouter does not do \
                         (it never sends the password itself, not even over TLS); give the service account \
                         mysql_native_password or log in once directly to fill the server's cache"
                            .into(),
                    ))
                }
                _ => return Err(protocol("unexpected auth-more-data packet".into())),
            },
            _ => return Err(protocol("unexpected packet during authentication".into())),
        }
    }
}

/// The dialect from the collected answer to [`crate::router::dialect::DIALECT_QUERY`]: one text row of two values.
pub fn dialect_from_answer(
    packets: &[BytesMut],
    format: ResultFormat,
    server_version: &str,
) -> Option<Dialect> {
    let row = packets.get(format.text_rows_start(2))?;
    let (mode_len, at) = read_lenenc_int(row, 0)?;
    let mode_end = at.checked_add(usize::try_from(mode_len).ok()?)?;
    let mode = row.get(at..mode_end)?;
    let (cs_len, at) = read_lenenc_int(row, mode_end)?;
    let charset = row.get(at..at.checked_add(usize::try_from(cs_len).ok()?)?)?;
    Some(Dialect::from_server(
        std::str::from_utf8(mode).ok()?,
        std::str::from_utf8(charset).ok()?,
        server_version,
    ))
}

/// Why no answer can be computed for the plugin the server asked for.
fn unsupported_plugin(opts: &LoginOptions, plugin: &[u8]) -> String {
    let plugin = String::from_utf8_lossy(plugin);
    if opts.password_sha1.is_some() {
        format!(
            "the account '{}' uses plugin {plugin:?} at the database; dbrouter can act as a \
             client's own account only with mysql_native_password (or map the account to a \
             backend account with backend_user)",
            opts.user
        )
    } else {
        format!(
            "the account '{}' uses plugin {plugin:?} at the database; dbrouter logs in with \
             mysql_native_password or caching_sha2_password",
            opts.user
        )
    }
}

/// The answer to a server's challenge: from `SHA1(password)` when the login acts as a
/// client's own account (native only), else from the password.
fn auth_token(
    plugin: &[u8],
    nonce: &[u8],
    opts: &LoginOptions,
) -> Option<(AuthPlugin<'static>, Vec<u8>)> {
    let password = opts.password.as_bytes();
    if let Some(sha1) = &opts.password_sha1 {
        return (plugin == b"mysql_native_password")
            .then(|| (AuthPlugin::MysqlNativePassword, sha1.answer(nonce).to_vec()));
    }
    match plugin {
        b"mysql_native_password" => Some((
            AuthPlugin::MysqlNativePassword,
            scramble_native(nonce, password)
                .map(|t| t.to_vec())
                .unwrap_or_default(),
        )),
        b"caching_sha2_password" => Some((
            AuthPlugin::CachingSha2Password,
            scramble_sha256(nonce, password)
                .map(|t| t.to_vec())
                .unwrap_or_default(),
        )),
        _ => None,
    }
}

fn server_error(addr: &str, payload: &[u8]) -> BackendError {
    match parse_err(payload) {
        Some(error) => BackendError::Server {
            addr: addr.to_string(),
            error,
            payload: payload.to_vec(),
        },
        None => BackendError::Protocol {
            addr: addr.to_string(),
            message: "malformed ERR packet".into(),
        },
    }
}
