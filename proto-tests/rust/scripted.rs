//! Failure modes against a scripted backend: the real client session runs in-process
//! over `tokio::io::duplex`, and its shard masters are fake MariaDB servers written here
//! (a `TcpListener` on 127.0.0.1:0 each) that follow a per-test script, so that every
//! way a backend can fail is provoked deterministically and without the cluster.
//!
//! This module owns the scripted backend ([`FakeServer`], [`Script`]), the config and
//! session context built from a TOML file of the test's own ([`Fixture`]), and the test
//! client that reads the router's answers packet by packet ([`Client`]). The codes and
//! SQLSTATEs asserted are those of docs/errors.md.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use mysql_common::constants::MariadbCapabilities;
use tokio::io::{AsyncReadExt, DuplexStream};
use tokio::net::{TcpListener, TcpStream};

use dbrouter::backend::connection::{login, BackendError, LoginOptions};
use dbrouter::backend::pool::{PoolLimits, Pools};
use dbrouter::config::Config;
use dbrouter::frontend::session::{run_on_stream, SessionContext};
use dbrouter::net::{write_packet, NetError, PacketConn};
use dbrouter::protocol::command::{
    COM_INIT_DB, COM_PING, COM_QUERY, COM_QUIT, COM_RESET_CONNECTION,
};
use dbrouter::protocol::handshake::{greeting, offered_capabilities, parse_handshake_response};
use dbrouter::protocol::packets::{
    err_packet, ok_packet, parse_err, put_lenenc_int, read_lenenc_int, ServerErrorInfo, ERR_HEADER,
};
use dbrouter::protocol::response::{
    ResponseKind, ResponseTracker, ResultFormat, Step, SERVER_STATUS_AUTOCOMMIT,
};
use dbrouter::protocol::resultset::text_result_set;
use dbrouter::router::dialect::DIALECT_QUERY;
use dbrouter::router::RoutingTable;
use dbrouter::topology::file::FileStore;
use dbrouter::topology::ShardState;

use crate::harness::{TempDir, APP_PASSWORD};

/// How long the test client waits for any one answer before the test fails.
const CLIENT_WAIT: Duration = Duration::from_secs(10);

/// The address the session believes its client has (a documentation address, so that
/// "127.0.0.1" in a message can only be a backend's).
const CLIENT_PEER: &str = "192.0.2.10:50000";

/// The server version the fake servers announce.
const FAKE_VERSION: &str = "10.11.6-MariaDB-scripted";

/// Largest packet either side of the tests reads.
const PACKET_LIMIT: usize = 1 << 24;

/// What the fake server does with a statement the script is asked about.
#[derive(Debug, Clone)]
enum Reply {
    /// Answer with these packet payloads (sequence ids 1, 2, …).
    Packets(Vec<Vec<u8>>),
    /// Write these already framed bytes, then close the connection.
    BytesThenClose(Vec<u8>),
    /// Say nothing; keep reading until the router closes the connection.
    Silence,
}

/// How the fake server answers the router's login.
#[derive(Debug, Clone)]
enum Login {
    /// Greeting, then OK to any handshake response.
    Accept,
    /// This ERR payload instead of a greeting (as MariaDB refuses a connection over
    /// max_connections), then close.
    ErrInsteadOfGreeting(Vec<u8>),
    /// Greeting, then this ERR payload in answer to the handshake response, then close.
    ErrAfterAuth(Vec<u8>),
}

/// The answer to a statement, given its SQL and the connection's result framing.
type StatementScript = dyn Fn(&str, ResultFormat) -> Reply + Send + Sync;

/// One test's script for a fake server: its login behaviour and its answers to the
/// statements it does not answer by itself (see [`housekeeping`]).
struct Script {
    /// How logins are answered.
    login: Login,
    /// The answer to every other statement.
    statement: Box<StatementScript>,
}

impl Script {
    /// Accepts logins and answers statements with `statement`.
    fn answering(statement: impl Fn(&str, ResultFormat) -> Reply + Send + Sync + 'static) -> Self {
        Script {
            login: Login::Accept,
            statement: Box::new(statement),
        }
    }

    /// Accepts logins and answers `SELECT <n>` with the one-row result `n`.
    fn selects() -> Self {
        Self::answering(select_answer)
    }

    /// Answers logins as `login` (statements as [`Script::selects`]).
    fn login(login: Login) -> Self {
        Script {
            login,
            ..Self::selects()
        }
    }
}

/// `SELECT <n>` answered with one column `n` and one row `n`; anything else with OK.
fn select_answer(sql: &str, format: ResultFormat) -> Reply {
    match sql.strip_prefix("SELECT ") {
        Some(n) if n.bytes().all(|b| b.is_ascii_digit()) => rows(format, n, &[n]),
        _ => Reply::Packets(vec![ok()]),
    }
}

/// A one-column text result set.
fn rows(format: ResultFormat, column: &str, values: &[&str]) -> Reply {
    let rows: Vec<Vec<Option<String>>> = values.iter().map(|v| vec![Some(v.to_string())]).collect();
    Reply::Packets(text_result_set(
        &[column],
        &rows,
        SERVER_STATUS_AUTOCOMMIT,
        format,
    ))
}

/// A plain OK payload.
fn ok() -> Vec<u8> {
    ok_packet(0, 0, SERVER_STATUS_AUTOCOMMIT, 0)
}

/// Frames payloads with consecutive sequence ids from `first_seq`.
fn frame(payloads: &[Vec<u8>], first_seq: u8) -> Vec<u8> {
    let mut out = BytesMut::new();
    let mut seq = first_seq;
    for p in payloads {
        seq = write_packet(&mut out, seq, p);
    }
    out.to_vec()
}

/// The fake server's own answer to what the router sends on every backend connection
/// besides client statements: the dialect query after login and after a pool reset,
/// the reset itself (COM_RESET_CONNECTION, COM_INIT_DB, `SET collation_connection …`,
/// `SET character_set_client …`,
/// `SELECT DATABASE() IS NULL`) and COM_PING. `None` for anything else.
fn housekeeping(command: &[u8], format: ResultFormat) -> Option<Reply> {
    match command.first()? {
        &COM_INIT_DB | &COM_PING | &COM_RESET_CONNECTION => Some(Reply::Packets(vec![ok()])),
        &COM_QUERY => {
            let sql = String::from_utf8_lossy(&command[1..]);
            if command == DIALECT_QUERY {
                let row = vec![
                    Some("STRICT_TRANS_TABLES".to_string()),
                    Some("utf8mb4".to_string()),
                ];
                Some(Reply::Packets(text_result_set(
                    &["@@SESSION.sql_mode", "@@SESSION.character_set_client"],
                    &[row],
                    SERVER_STATUS_AUTOCOMMIT,
                    format,
                )))
            } else if sql.starts_with("SET collation_connection = ")
                || sql.starts_with("SET character_set_client = ")
            {
                Some(Reply::Packets(vec![ok()]))
            } else if sql == "SELECT DATABASE() IS NULL" {
                Some(rows(format, "DATABASE() IS NULL", &["1"]))
            } else {
                None
            }
        }
        _ => None,
    }
}

/// A scripted MariaDB server on 127.0.0.1; stops accepting when dropped.
struct FakeServer {
    /// `127.0.0.1:port` it listens on.
    addr: String,
    /// Statements handed to the script, in the order they arrived.
    statements: Arc<Mutex<Vec<String>>>,
    /// Handshake responses received (login attempts that got past the greeting).
    logins: Arc<AtomicUsize>,
    /// The accept loop.
    task: tokio::task::JoinHandle<()>,
}

impl FakeServer {
    /// Listens on a fresh port and serves every connection with `script`.
    async fn start(script: Script) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let statements = Arc::new(Mutex::new(Vec::new()));
        let logins = Arc::new(AtomicUsize::new(0));
        let script = Arc::new(script);
        let (seen, counted) = (Arc::clone(&statements), Arc::clone(&logins));
        let task = tokio::spawn(async move {
            let mut connection_id = 100;
            while let Ok((stream, _)) = listener.accept().await {
                connection_id += 1;
                tokio::spawn(serve_connection(
                    stream,
                    connection_id,
                    Arc::clone(&script),
                    Arc::clone(&seen),
                    Arc::clone(&counted),
                ));
            }
        });
        FakeServer {
            addr,
            statements,
            logins,
            task,
        }
    }

    /// The statements handed to the script so far.
    fn statements(&self) -> Vec<String> {
        self.statements.lock().unwrap().clone()
    }

    /// The port it listens on, as text.
    fn port(&self) -> String {
        self.addr.rsplit_once(':').unwrap().1.to_string()
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One backend connection of a fake server, from greeting to close.
async fn serve_connection(
    stream: TcpStream,
    connection_id: u32,
    script: Arc<Script>,
    statements: Arc<Mutex<Vec<String>>>,
    logins: Arc<AtomicUsize>,
) {
    // TCP_NODELAY, as MariaDB sets it: the commands of a pipelined pool reset are answered
    // one write each, which Nagle would hold for a delayed ACK (~40 ms).
    let _ = stream.set_nodelay(true);
    let mut io = PacketConn::new(stream);
    if let Login::ErrInsteadOfGreeting(err) = &script.login {
        io.queue(0, err);
        io.shutdown().await;
        return;
    }
    let hello = greeting(
        connection_id,
        FAKE_VERSION,
        b"0123456789abcdefghij",
        offered_capabilities(),
        MariadbCapabilities::empty(),
        45,
        "mysql_native_password",
    );
    io.queue(0, &hello);
    if io.flush().await.is_err() {
        return;
    }
    let Ok((seq, response)) = io.read_logical(PACKET_LIMIT, Some(1)).await else {
        return;
    };
    logins.fetch_add(1, Ordering::SeqCst);
    let Ok(client) = parse_handshake_response(&response) else {
        return;
    };
    let format = ResultFormat::negotiated(client.capabilities, client.mariadb_capabilities);
    match &script.login {
        Login::ErrAfterAuth(err) => {
            io.queue(seq.wrapping_add(1), err);
            io.shutdown().await;
            return;
        }
        Login::Accept | Login::ErrInsteadOfGreeting(_) => {
            io.queue(seq.wrapping_add(1), &ok());
        }
    }
    if io.flush().await.is_err() {
        return;
    }
    loop {
        let Ok((_, command)) = io.read_logical(PACKET_LIMIT, Some(0)).await else {
            return;
        };
        if command.first() == Some(&COM_QUIT) {
            return;
        }
        let reply = housekeeping(&command, format).unwrap_or_else(|| {
            let sql = String::from_utf8_lossy(command.get(1..).unwrap_or_default()).into_owned();
            statements.lock().unwrap().push(sql.clone());
            (script.statement)(&sql, format)
        });
        match reply {
            Reply::Packets(packets) => {
                let mut seq = 1;
                for p in &packets {
                    seq = io.queue(seq, p);
                }
                if io.flush().await.is_err() {
                    return;
                }
            }
            Reply::BytesThenClose(bytes) => {
                let _ = io.write_raw(&bytes).await;
                io.shutdown().await;
                return;
            }
            Reply::Silence => {
                // Until the router gives up on this connection.
                while io.fill().await.is_ok() {}
                return;
            }
        }
    }
}

/// The knobs a test turns in its router config.
#[derive(Debug, Clone, Copy)]
struct Tuning {
    /// `timeouts.backend_read_ms`.
    backend_read_ms: u64,
    /// `failover.buffer_max_ms`.
    buffer_max_ms: u64,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            backend_read_ms: 5_000,
            buffer_max_ms: 5_000,
        }
    }
}

/// A router config written to a temp file, loaded, and the session context built on it.
struct Fixture {
    /// What every session of the test shares.
    ctx: Arc<SessionContext>,
    /// The loaded config.
    config: Arc<Config>,
    /// Holds the config file.
    _dir: TempDir,
}

impl Fixture {
    /// A router whose shards `shard1`, `shard2`, … have these masters (`shard1` holds the
    /// global tables), `posts` sharded by `userid`.
    fn new(masters: &[&str], tuning: Tuning) -> Self {
        let shards: String = masters
            .iter()
            .enumerate()
            .map(|(i, m)| {
                format!(
                    "[[shards]]\nname = \"shard{}\"\nmaster = \"{m}\"\n\n",
                    i + 1
                )
            })
            .collect();
        let text = format!(
            r#"
[server]
listen = "127.0.0.1:0"

[timeouts]
connect_ms = 2000
backend_read_ms = {backend_read}

[backend]
user = "dbrouter"
password = "service-secret"

{shards}
[sharding]
key_column = "userid"
key_type = "bigint unsigned"
global_shard = "shard1"

[[sharding.tables]]
name = "posts"

[pool]
wait_ms = 200

[failover]
buffer_max_ms = {buffer_max}

[health]
interval_ms = 0

[[users]]
name = "app"
password = "{APP_PASSWORD}"
"#,
            backend_read = tuning.backend_read_ms,
            buffer_max = tuning.buffer_max_ms,
        );
        let dir = TempDir::new("scripted");
        let path = dir.0.join("dbrouter.toml");
        std::fs::write(&path, text).unwrap();
        let config = Arc::new(Config::load(&path).unwrap());
        let pools = Pools::new(PoolLimits::from_config(&config));
        let ctx = crate::harness::in_process_context(
            Arc::clone(&config),
            pools,
            "10.11.6-dbrouter-scripted",
        );
        Fixture {
            ctx,
            config,
            _dir: dir,
        }
    }

    /// The config's routing table with the named shards `switching` (or none).
    fn table(&self, switching: &[&str]) -> RoutingTable {
        let mut snapshot = FileStore::new(&self.config).snapshot_now();
        for name in switching {
            snapshot.topology.shard_mut(name).unwrap().state = ShardState::Switching;
        }
        snapshot.routing_table(&self.config.sharding).unwrap()
    }

    /// Publishes a routing table, as the topology watcher does.
    fn publish(&self, table: RoutingTable) {
        self.ctx.routing.store(Arc::new(table));
    }

    /// Starts a session on one end of a pipe and logs in as `app` on the other; a refused
    /// login gives back the pipe with the error.
    async fn connect(
        &self,
        password: &str,
        database: Option<&str>,
    ) -> Result<Client, (BackendError, PacketConn<DuplexStream>)> {
        let (client_side, server_side) = tokio::io::duplex(1 << 20);
        let peer: SocketAddr = CLIENT_PEER.parse().unwrap();
        tokio::spawn(run_on_stream(
            server_side,
            peer,
            1,
            Arc::clone(&self.ctx),
            tracing::Span::none(),
        ));
        let mut io = PacketConn::new(client_side);
        let opts = LoginOptions {
            user: "app".into(),
            password: password.into(),
            password_sha1: None,
            database: database.map(str::to_string),
            collation: None,
            capabilities: offered_capabilities(),
            mariadb_capabilities: MariadbCapabilities::empty(),
            attributes: None,
        };
        let result = tokio::time::timeout(CLIENT_WAIT, login(&mut io, "the session", &opts))
            .await
            .expect("the session answered the login in time");
        match result {
            Ok(facts) => {
                let format =
                    ResultFormat::negotiated(facts.capabilities, facts.mariadb_capabilities);
                Ok(Client { io, format })
            }
            Err(e) => Err((e, io)),
        }
    }

    /// Logs in expecting an ERR packet: returns it decoded and raw, after checking that
    /// the session closed the connection.
    async fn refused_login(
        &self,
        password: &str,
        database: Option<&str>,
    ) -> (ServerErrorInfo, Vec<u8>) {
        match self.connect(password, database).await {
            Err((BackendError::Server { error, payload, .. }, mut io)) => {
                assert_closed(&mut io).await;
                (error, payload)
            }
            Err((other, _)) => panic!("expected an ERR packet, got {other}"),
            Ok(_) => panic!("expected the login to be refused"),
        }
    }

    /// A logged-in client; the test fails if the login does.
    async fn client(&self) -> Client {
        match self.connect(APP_PASSWORD, Some("app")).await {
            Ok(client) => client,
            Err((e, _)) => panic!("login through the session: {e}"),
        }
    }
}

/// How a response read by the test client ended.
#[derive(Debug)]
enum Ending {
    /// The response was complete (OK, or a result set up to its terminator).
    Complete,
    /// An ERR packet.
    Err(ServerErrorInfo),
    /// The connection closed (possibly inside a packet).
    Closed,
}

/// A response as the test client read it.
#[derive(Debug)]
struct Response {
    /// The packets before the end (the ERR packet, if any, is not among them).
    packets: Vec<BytesMut>,
    /// How it ended.
    ending: Ending,
}

/// The client end of a session's pipe, logged in.
struct Client {
    /// The framed pipe.
    io: PacketConn<DuplexStream>,
    /// The result framing negotiated at login.
    format: ResultFormat,
}

impl Client {
    /// Sends a COM_QUERY without waiting for its answer.
    async fn send(&mut self, sql: &str) {
        let mut payload = vec![COM_QUERY];
        payload.extend_from_slice(sql.as_bytes());
        self.io.queue(0, &payload);
        self.io.flush().await.unwrap();
    }

    /// Reads one response packet by packet, checking sequence ids, up to its end, an ERR
    /// or the closed connection.
    async fn response(&mut self) -> Response {
        let mut tracker = ResponseTracker::new(ResponseKind::Query, self.format);
        let mut packets = Vec::new();
        let mut seq = 1u8;
        loop {
            let read =
                tokio::time::timeout(CLIENT_WAIT, self.io.read_logical(PACKET_LIMIT, Some(seq)))
                    .await
                    .expect("the session answered in time");
            let packet = match read {
                Ok((_, packet)) => packet,
                Err(NetError::Closed) => {
                    return Response {
                        packets,
                        ending: Ending::Closed,
                    }
                }
                Err(e) => panic!("reading the answer: {e}"),
            };
            seq = seq.wrapping_add(1);
            if packet.first() == Some(&ERR_HEADER) {
                let err = parse_err(&packet).expect("a well-formed ERR packet");
                return Response {
                    packets,
                    ending: Ending::Err(err),
                };
            }
            let step = tracker.feed(&packet, packet.len()).unwrap();
            packets.push(packet);
            if let Step::Done { .. } = step {
                return Response {
                    packets,
                    ending: Ending::Complete,
                };
            }
        }
    }

    /// Runs a statement and reads its response.
    async fn query(&mut self, sql: &str) -> Response {
        self.send(sql).await;
        self.response().await
    }

    /// Runs a statement that must return a one-column result; returns its values.
    async fn query_values(&mut self, sql: &str) -> Vec<String> {
        let response = self.query(sql).await;
        assert!(
            matches!(response.ending, Ending::Complete),
            "{sql}: {response:?}"
        );
        let start = self.format.text_rows_start(1);
        let rows = response
            .packets
            .get(start..response.packets.len() - 1)
            .unwrap_or_else(|| panic!("{sql}: not a result set: {response:?}"));
        rows.iter()
            .map(|row| {
                let (len, at) = read_lenenc_int(row, 0).unwrap();
                String::from_utf8(row[at..at + len as usize].to_vec()).unwrap()
            })
            .collect()
    }

    /// Runs a statement that must fail with an ERR packet and nothing before it.
    async fn query_err(&mut self, sql: &str) -> ServerErrorInfo {
        let response = self.query(sql).await;
        match response.ending {
            Ending::Err(err) if response.packets.is_empty() => err,
            _ => panic!("{sql}: expected an ERR packet alone, got {response:?}"),
        }
    }

    /// Asserts that the session closed the connection, with nothing more sent.
    async fn assert_closed(&mut self) {
        assert_closed(&mut self.io).await;
    }

    /// Asserts that the connection still serves statements (the fake answers `SELECT 2`).
    async fn assert_usable(&mut self) {
        assert_eq!(self.query_values("SELECT 2").await, ["2"]);
    }
}

/// Asserts an error's code and SQLSTATE.
fn assert_code(err: &ServerErrorInfo, code: u16, sql_state: &str) {
    assert_eq!(
        (err.code, err.sql_state.as_str()),
        (code, sql_state),
        "{err:?}"
    );
}

/// Asserts that a message shows clients no backend address, port or socket error.
fn assert_no_internals(message: &str, backend: &FakeServer) {
    for leak in ["127.0.0.1", backend.port().as_str(), "os error"] {
        assert!(!message.contains(leak), "{leak:?} in {message:?}");
    }
}

/// Asserts that the session closed a client pipe, with nothing more sent.
async fn assert_closed(io: &mut PacketConn<DuplexStream>) {
    let mut rest = Vec::new();
    tokio::time::timeout(CLIENT_WAIT, io.stream_mut().read_to_end(&mut rest))
        .await
        .expect("the session closed the connection in time")
        .unwrap();
    assert!(
        io.read_buffer().is_empty() && rest.is_empty(),
        "unexpected bytes: {rest:?}"
    );
}

/// Waits until `condition` holds (the state a test synchronises on).
async fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + CLIENT_WAIT;
    while !condition() {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// The right password logs in, and a statement is answered by the scripted backend on
/// the connection of the login, back from its pool reset.
#[tokio::test]
async fn right_password_logs_in_and_the_backend_answers() {
    let fake = FakeServer::start(Script::selects()).await;
    let fixture = Fixture::new(&[&fake.addr], Tuning::default());
    let mut client = fixture.client().await;
    // The login's backend connection goes back to the pool, which resets it.
    wait_until("the login connection is idle in the pool", || {
        fixture.ctx.pools.idle_count(&fake.addr) == 1
    })
    .await;
    assert_eq!(client.query_values("SELECT 1").await, ["1"]);
    assert_eq!(fake.statements(), ["SELECT 1"]);
    assert_eq!(fake.logins.load(Ordering::SeqCst), 1, "one backend login");
    client.assert_usable().await;
}

/// A wrong password is 1045 / 28000 in MySQL's words, and the connection is closed.
#[tokio::test]
async fn wrong_password_is_1045() {
    let fake = FakeServer::start(Script::selects()).await;
    let fixture = Fixture::new(&[&fake.addr], Tuning::default());
    let (err, _) = fixture.refused_login("wrong", Some("app")).await;
    assert_code(&err, 1045, "28000");
    // MySQL's exact text names the client's own host (not a backend's).
    assert_eq!(
        err.message,
        "Access denied for user 'app'@'192.0.2.10' (using password: YES)"
    );
    assert_no_internals(&err.message, &fake);
    assert_eq!(fake.logins.load(Ordering::SeqCst), 0, "no backend login");
}

/// The backend refusing the router's service login with 1040 (after the handshake
/// response, or instead of its greeting as MariaDB does) is retried for `pool.wait_ms`,
/// then 1053, retryable, without the address; the connection is closed.
#[tokio::test]
async fn backend_refusing_the_service_login_with_1040_is_1053() {
    let too_many = err_packet(1040, b"08004", "Too many connections");
    let mut before_greeting = vec![ERR_HEADER];
    before_greeting.extend_from_slice(&1040u16.to_le_bytes());
    before_greeting.extend_from_slice(b"Too many connections");
    for login in [
        Login::ErrAfterAuth(too_many),
        Login::ErrInsteadOfGreeting(before_greeting),
    ] {
        let fake = FakeServer::start(Script::login(login.clone())).await;
        let fixture = Fixture::new(&[&fake.addr], Tuning::default());
        let started = Instant::now();
        let (err, _) = fixture.refused_login(APP_PASSWORD, Some("app")).await;
        assert!(started.elapsed() >= Duration::from_millis(fixture.config.pool.wait_ms));
        assert_code(&err, 1053, "08S01");
        assert!(err.message.contains("shard 'shard1'"), "{login:?}: {err:?}");
        assert!(
            err.message.contains("Too many connections"),
            "{login:?}: {err:?}"
        );
        assert!(err.message.contains("retryable"), "{login:?}: {err:?}");
        assert_no_internals(&err.message, &fake);
    }
}

/// The backend refusing the login with 1049 (unknown database) is relayed unchanged,
/// and the connection is closed.
#[tokio::test]
async fn unknown_database_at_login_is_relayed_unchanged() {
    let unknown = err_packet(1049, b"42000", "Unknown database 'nosuchdb'");
    let fake = FakeServer::start(Script::login(Login::ErrAfterAuth(unknown.clone()))).await;
    let fixture = Fixture::new(&[&fake.addr], Tuning::default());
    let (err, payload) = fixture.refused_login(APP_PASSWORD, Some("nosuchdb")).await;
    assert_code(&err, 1049, "42000");
    assert_eq!(payload, unknown, "byte for byte");
}

/// A master whose port is closed is 1053 at login, and 1053 for a statement that first
/// needs it; either way the connection is closed.
#[tokio::test]
async fn closed_backend_port_is_1053() {
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap().to_string()
    };
    // Bound and dropped: nothing listens there any more.
    let port = closed.rsplit_once(':').unwrap().1.to_string();
    let check = |err: &ServerErrorInfo| {
        assert_code(err, 1053, "08S01");
        assert!(err.message.contains("retryable"), "{err:?}");
        for leak in ["127.0.0.1", port.as_str(), "os error"] {
            assert!(!err.message.contains(leak), "{leak:?} in {err:?}");
        }
    };

    // The global shard's master: the login fails.
    let fixture = Fixture::new(&[&closed], Tuning::default());
    let (err, _) = fixture.refused_login(APP_PASSWORD, Some("app")).await;
    check(&err);
    assert!(err.message.contains("shard 'shard1'"), "{err:?}");

    // Another shard's master: the statement that needs it fails.
    let fake = FakeServer::start(Script::selects()).await;
    let fixture = Fixture::new(&[&fake.addr, &closed], Tuning::default());
    let table = fixture.ctx.routing.load_full();
    let shard2 = table.shard_id("shard2").unwrap();
    let user = (1u64..)
        .find(|u| table.shard_for_key(u.to_string().as_bytes()).0 == shard2)
        .unwrap();
    let mut client = fixture.client().await;
    client.assert_usable().await;
    let err = client
        .query_err(&format!("SELECT * FROM posts WHERE userid = {user}"))
        .await;
    check(&err);
    assert!(err.message.contains("shard 'shard2'"), "{err:?}");
    client.assert_closed().await;
}

/// The backend closing after the column count and definitions: the client has those,
/// then ERR 1158 / 08S01, then the connection is closed.
#[tokio::test]
async fn backend_closing_after_the_column_definitions_is_1158() {
    let fake = FakeServer::start(Script::answering(|sql, format| {
        if sql != "SELECT 1" {
            return select_answer(sql, format);
        }
        let result = text_result_set(&["a"], &[], SERVER_STATUS_AUTOCOMMIT, format);
        Reply::BytesThenClose(frame(&result[..2], 1))
    }))
    .await;
    let fixture = Fixture::new(&[&fake.addr], Tuning::default());
    let mut client = fixture.client().await;
    let response = client.query("SELECT 1").await;
    assert_eq!(response.packets.len(), 2, "{response:?}");
    let Ending::Err(err) = &response.ending else {
        panic!("expected ERR 1158, got {response:?}")
    };
    assert_code(err, 1158, "08S01");
    assert!(err.message.contains("outcome is unknown"), "{err:?}");
    assert_no_internals(&err.message, &fake);
    client.assert_closed().await;
}

/// The backend closing inside a small packet (header says 100 bytes, 10 sent): none of
/// it reached the client (small packets are forwarded whole), so an ERR 1158 is still
/// well-framed and is sent; then the connection is closed.
#[tokio::test]
async fn backend_closing_inside_a_small_packet_is_1158() {
    let fake = FakeServer::start(Script::answering(|sql, format| {
        if sql != "SELECT 1" {
            return select_answer(sql, format);
        }
        let mut half = vec![100, 0, 0, 1];
        half.extend_from_slice(&[b'x'; 10]);
        Reply::BytesThenClose(half)
    }))
    .await;
    let fixture = Fixture::new(&[&fake.addr], Tuning::default());
    let mut client = fixture.client().await;
    let err = client.query_err("SELECT 1").await;
    assert_code(&err, 1158, "08S01");
    assert_no_internals(&err.message, &fake);
    client.assert_closed().await;
}

/// The backend closing inside a row the relay streams (over 64 KiB): part of it reached
/// the client, so no ERR may follow; the client gets exactly the backend's bytes, then
/// the closed connection.
#[tokio::test]
async fn backend_closing_inside_a_streamed_packet_closes_without_err() {
    let sent = Arc::new(Mutex::new(Vec::new()));
    let recorded = Arc::clone(&sent);
    let fake = FakeServer::start(Script::answering(move |sql, format| {
        if sql != "SELECT 1" {
            return select_answer(sql, format);
        }
        let result = text_result_set(&["a"], &[], SERVER_STATUS_AUTOCOMMIT, format);
        let metadata_end = format.text_rows_start(1);
        let mut bytes = frame(&result[..metadata_end], 1);
        // A 100 000-byte row (one value of 99 996 bytes), cut off after 1 000.
        let mut row = Vec::new();
        put_lenenc_int(&mut row, 99_996);
        row.resize(100_000, b'x');
        let mut framed = frame(&[row], metadata_end as u8 + 1);
        framed.truncate(4 + 1_000);
        bytes.extend_from_slice(&framed);
        *recorded.lock().unwrap() = bytes.clone();
        Reply::BytesThenClose(bytes)
    }))
    .await;
    let fixture = Fixture::new(&[&fake.addr], Tuning::default());
    let mut client = fixture.client().await;
    client.send("SELECT 1").await;
    let mut received = Vec::new();
    tokio::time::timeout(
        CLIENT_WAIT,
        client.io.stream_mut().read_to_end(&mut received),
    )
    .await
    .expect("the session closed the connection in time")
    .unwrap();
    assert_eq!(received.len(), sent.lock().unwrap().len());
    assert!(
        received == *sent.lock().unwrap(),
        "the backend's bytes, nothing more"
    );
}

/// A backend silent for longer than `timeouts.backend_read_ms` is 1159 / 08S01, then the
/// connection is closed.
#[tokio::test]
async fn silent_backend_is_1159_after_backend_read_ms() {
    let fake = FakeServer::start(Script::answering(|sql, format| {
        if sql == "SELECT 1" {
            Reply::Silence
        } else {
            select_answer(sql, format)
        }
    }))
    .await;
    let tuning = Tuning {
        backend_read_ms: 300,
        ..Tuning::default()
    };
    let fixture = Fixture::new(&[&fake.addr], tuning);
    let mut client = fixture.client().await;
    let started = Instant::now();
    let err = client.query_err("SELECT 1").await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_code(&err, 1159, "08S01");
    assert!(err.message.contains("timeouts.backend_read_ms"), "{err:?}");
    assert_no_internals(&err.message, &fake);
    client.assert_closed().await;
}

/// A statement for a switching shard is held, and runs on the backend once a table
/// without the switch is published.
#[tokio::test]
async fn held_statement_runs_when_switching_ends() {
    let fake = FakeServer::start(Script::selects()).await;
    let fixture = Fixture::new(&[&fake.addr], Tuning::default());
    let mut client = fixture.client().await;
    fixture.publish(fixture.table(&["shard1"]));

    client.send("SELECT 1").await;
    wait_until("the statement is held", || {
        fixture.ctx.held.load(Ordering::SeqCst) == 1
    })
    .await;
    // Held for a while (timing is the feature here), and not sent on.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(fake.statements().is_empty(), "{:?}", fake.statements());
    fixture.publish(fixture.table(&[]));

    let response = client.response().await;
    assert!(matches!(response.ending, Ending::Complete), "{response:?}");
    assert_eq!(fake.statements(), ["SELECT 1"]);
    assert_eq!(fixture.ctx.held.load(Ordering::SeqCst), 0);
    client.assert_usable().await;
}

/// A switch that outlasts `failover.buffer_max_ms` is 1053 / 08S01 "switching" with
/// nothing executed, and the connection serves again once the switch ends.
#[tokio::test]
async fn hold_timeout_is_1053_and_the_connection_stays_usable() {
    let fake = FakeServer::start(Script::selects()).await;
    let tuning = Tuning {
        buffer_max_ms: 300,
        ..Tuning::default()
    };
    let fixture = Fixture::new(&[&fake.addr], tuning);
    let mut client = fixture.client().await;
    fixture.publish(fixture.table(&["shard1"]));

    let started = Instant::now();
    let err = client.query_err("SELECT 1").await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_code(&err, 1053, "08S01");
    assert!(err.message.contains("switching"), "{err:?}");
    assert!(err.message.contains("retryable"), "{err:?}");
    assert!(err.message.contains("nothing was executed"), "{err:?}");
    assert_no_internals(&err.message, &fake);
    assert!(fake.statements().is_empty(), "{:?}", fake.statements());
    assert_eq!(fixture.ctx.held.load(Ordering::SeqCst), 0);

    fixture.publish(fixture.table(&[]));
    client.assert_usable().await;
}

/// A statement the router refuses (no shard key) is 1235 / 42000, never reaches the
/// backend, and the connection goes on.
#[tokio::test]
async fn refused_statement_leaves_the_connection_usable() {
    let fake = FakeServer::start(Script::selects()).await;
    let fixture = Fixture::new(&[&fake.addr], Tuning::default());
    let mut client = fixture.client().await;
    let err = client.query_err("DELETE FROM posts").await;
    assert_code(&err, 1235, "42000");
    assert_no_internals(&err.message, &fake);
    client.assert_usable().await;
    assert_eq!(fake.statements(), ["SELECT 2"]);
}

/// A master that cannot be reached, replaced by another in the topology while the
/// statement waited for it: nothing ran, so the session tries the new master
/// (`Failure::retryable`) and the client gets its answer instead of 1053.
#[tokio::test]
async fn an_unreachable_master_replaced_meanwhile_is_retried_on_the_new_one() {
    let global = FakeServer::start(Script::selects()).await;
    // Accepts TCP and never greets: the checkout fails after timeouts.connect_ms (2 s).
    let mute = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mute_addr = mute.local_addr().unwrap().to_string();
    let silent = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = mute.accept().await {
            open.push(socket);
        }
    });
    let replacement = FakeServer::start(Script::selects()).await;
    let fixture = Fixture::new(&[&global.addr, &mute_addr], Tuning::default());
    let table = fixture.ctx.routing.load_full();
    let shard2 = table.shard_id("shard2").unwrap();
    let user = (1u64..)
        .find(|u| table.shard_for_key(u.to_string().as_bytes()).0 == shard2)
        .unwrap();
    let mut client = fixture.client().await;
    let statement = format!("SELECT 5 FROM posts WHERE userid = {user}");
    client.send(&statement).await;
    // The failover publishes the new master while the statement waits for the old one.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut snapshot = FileStore::new(&fixture.config).snapshot_now();
    snapshot.topology.shard_mut("shard2").unwrap().master = replacement.addr.clone();
    fixture.publish(snapshot.routing_table(&fixture.config.sharding).unwrap());

    let response = client.response().await;
    assert!(matches!(response.ending, Ending::Complete), "{response:?}");
    assert_eq!(replacement.statements(), [statement.as_str()]);
    client.assert_usable().await;
    silent.abort();
}

#[tokio::test]
async fn a_silent_master_replaced_by_a_failover_is_1158_within_a_second() {
    // The master answers the login and then goes silent (cut off by the network): its
    // connection never closes, and backend_read_ms is far away.
    let silent = FakeServer::start(Script::answering(|sql, format| {
        if sql.starts_with("SELECT 5") {
            Reply::Silence
        } else {
            select_answer(sql, format)
        }
    }))
    .await;
    let global = FakeServer::start(Script::selects()).await;
    let replacement = FakeServer::start(Script::selects()).await;
    let fixture = Fixture::new(&[&global.addr, &silent.addr], Tuning::default());
    let table = fixture.ctx.routing.load_full();
    let shard2 = table.shard_id("shard2").unwrap();
    let user = (1u64..)
        .find(|u| table.shard_for_key(u.to_string().as_bytes()).0 == shard2)
        .unwrap();
    let mut client = fixture.client().await;
    let statement = format!("SELECT 5 FROM posts WHERE userid = {user}");
    client.send(&statement).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The failover publishes the new master while the statement waits on the old one.
    let mut snapshot = FileStore::new(&fixture.config).snapshot_now();
    snapshot.topology.shard_mut("shard2").unwrap().master = replacement.addr.clone();
    fixture.publish(snapshot.routing_table(&fixture.config.sharding).unwrap());
    let published = Instant::now();
    let response = client.response().await;
    let Ending::Err(err) = response.ending else {
        panic!("{response:?}");
    };
    assert_code(&err, 1158, "08S01");
    assert_no_internals(&err.message, &silent);
    assert!(
        published.elapsed() < Duration::from_millis(2_500),
        "given up after {:?}",
        published.elapsed()
    );
    // Its outcome is unknown: the statement is not sent to the new master.
    assert!(replacement.statements().is_empty());
}

/// The fenced old master's answer to a write: ERR 1290 (read-only).
fn read_only_refusal() -> Reply {
    Reply::Packets(vec![err_packet(
        1290,
        b"HY000",
        "The MariaDB server is running with the --read-only option so it cannot execute this statement",
    )])
}

#[tokio::test]
async fn a_write_refused_as_read_only_goes_to_the_master_published_meanwhile() {
    // A router that missed a switchover still routes to the fenced old master, which
    // refuses writes with 1290: the statement did not run, and the new master takes it.
    let global = FakeServer::start(Script::selects()).await;
    let fenced = FakeServer::start(Script::answering(|sql, format| {
        if sql.starts_with("INSERT") {
            read_only_refusal()
        } else {
            select_answer(sql, format)
        }
    }))
    .await;
    let replacement = FakeServer::start(Script::selects()).await;
    let fixture = Fixture::new(&[&global.addr, &fenced.addr], Tuning::default());
    let table = fixture.ctx.routing.load_full();
    let shard2 = table.shard_id("shard2").unwrap();
    let user = (1u64..)
        .find(|u| table.shard_for_key(u.to_string().as_bytes()).0 == shard2)
        .unwrap();
    let mut client = fixture.client().await;
    let statement = format!("INSERT INTO posts (userid, body) VALUES ({user}, 'x')");
    client.send(&statement).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut snapshot = FileStore::new(&fixture.config).snapshot_now();
    snapshot.topology.shard_mut("shard2").unwrap().master = replacement.addr.clone();
    fixture.publish(snapshot.routing_table(&fixture.config.sharding).unwrap());

    let response = client.response().await;
    assert!(matches!(response.ending, Ending::Complete), "{response:?}");
    assert_eq!(replacement.statements(), [statement.as_str()]);
    client.assert_usable().await;
}

#[tokio::test]
async fn a_write_refused_as_read_only_with_no_new_master_gets_the_servers_refusal() {
    // An operator set the master read-only: nothing else takes the statement, and the
    // client hears MariaDB's own 1290 (after the bounded wait), on a usable connection.
    let global = FakeServer::start(Script::selects()).await;
    let read_only = FakeServer::start(Script::answering(|sql, format| {
        if sql.starts_with("INSERT") {
            read_only_refusal()
        } else {
            select_answer(sql, format)
        }
    }))
    .await;
    let fixture = Fixture::new(&[&global.addr, &read_only.addr], Tuning::default());
    let table = fixture.ctx.routing.load_full();
    let shard2 = table.shard_id("shard2").unwrap();
    let user = (1u64..)
        .find(|u| table.shard_for_key(u.to_string().as_bytes()).0 == shard2)
        .unwrap();
    let mut client = fixture.client().await;
    let err = client
        .query_err(&format!(
            "INSERT INTO posts (userid, body) VALUES ({user}, 'x')"
        ))
        .await;
    assert_code(&err, 1290, "HY000");
    assert!(err.message.contains("--read-only"), "{err:?}");
    client.assert_usable().await;
}
