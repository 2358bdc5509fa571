//! The cheapest relay that *pipelines*, for `scripts/bench` (target `pipefloor`): the ceiling of
//! the one design that could make a hop cheaper than the database alone at high client counts.
//!
//! Many client connections share a few upstream connections ("pipes"). A statement of a client
//! is appended to its pipe's outgoing buffer without waiting for the statements before it to
//! be answered; MariaDB answers a connection's commands in order, so the pipe's reader hands
//! each answer to the client whose statement was next in line. Several statements leave in one
//! write, several answers come back in one read, and a server thread that has statements queued
//! on its connection never sleeps between them.
//!
//! It is a measuring instrument, not a proxy: it checks no password (any login is let in), keeps
//! no session state apart (every client's statements run on a shared connection, so `SET`,
//! transactions and user variables leak between clients), and speaks just what sysbench's
//! autocommit statements need — COM_QUERY, COM_STMT_PREPARE / EXECUTE (no cursors) / CLOSE /
//! RESET, COM_PING, COM_INIT_DB, COM_QUIT; the rest is refused. dbrouter's transaction pooling
//! would need all of that to pipeline for real (docs/benchmarks.md, "Transaction pooling").
//! Each serving thread (one per core) is a single-threaded runtime with its own pipes, so a
//! statement never wakes another thread. What it does do, it does with dbrouter's own parts:
//! the pipes log in with the backend login, answers end where the response tracker says,
//! greetings and OK / ERR packets come from the protocol module.
//!
//! ```text
//! cargo run --release --example pipeline_floor -- LISTEN_ADDR UPSTREAM_ADDR USER PASSWORD DATABASE [PIPES]
//! ```

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::io;
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use dbrouter::backend::{connect, LoginOptions};
use dbrouter::protocol::command::{
    COM_INIT_DB, COM_PING, COM_QUERY, COM_QUIT, COM_STMT_CLOSE, COM_STMT_EXECUTE, COM_STMT_PREPARE,
    COM_STMT_RESET,
};
use dbrouter::protocol::handshake::greeting;
use dbrouter::protocol::packets::{err_packet, ok_packet};
use dbrouter::protocol::response::{
    ResponseKind, ResponseTracker, ResultFormat, Step, SERVER_STATUS_AUTOCOMMIT,
};
use mysql_common::constants::{CapabilityFlags, MariadbCapabilities};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, Notify};

/// Capabilities of both sides (no CLIENT_DEPRECATE_EOF, no SSL, and CLIENT_LONG_PASSWORD, which
/// to MariaDB means the MySQL protocol without its extensions): a client and the pipes it
/// shares speak one framing.
const CAPS: CapabilityFlags = CapabilityFlags::CLIENT_LONG_PASSWORD
    .union(CapabilityFlags::CLIENT_FOUND_ROWS)
    .union(CapabilityFlags::CLIENT_LONG_FLAG)
    .union(CapabilityFlags::CLIENT_CONNECT_WITH_DB)
    .union(CapabilityFlags::CLIENT_PROTOCOL_41)
    .union(CapabilityFlags::CLIENT_TRANSACTIONS)
    .union(CapabilityFlags::CLIENT_SECURE_CONNECTION)
    .union(CapabilityFlags::CLIENT_MULTI_STATEMENTS)
    .union(CapabilityFlags::CLIENT_MULTI_RESULTS)
    .union(CapabilityFlags::CLIENT_PS_MULTI_RESULTS)
    .union(CapabilityFlags::CLIENT_PLUGIN_AUTH);
const UTF8MB4_GENERAL_CI: u8 = 45;
const MAX_CHUNK: usize = 0xff_ffff;
const LOGIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the answer to one command goes.
type Reply = oneshot::Sender<io::Result<Vec<u8>>>;

/// One command on its way to a pipe, and where its answer goes.
struct Request {
    packet: Vec<u8>,
    kind: ResponseKind,
    reply: Reply,
}

/// The commands a pipe has sent and not had answered, in order.
type Pending = Rc<RefCell<VecDeque<(ResponseKind, Reply)>>>;

/// A statement prepared on every pipe of a serving thread.
struct Statement {
    ids: Vec<u32>,
    answer: Vec<u8>,
    params: usize,
}

/// What the clients of one serving thread share.
struct Thread {
    pipes: Vec<mpsc::UnboundedSender<Request>>,
    statements: RefCell<Vec<Statement>>,
    by_text: RefCell<HashMap<Vec<u8>, u32>>,
    next_pipe: RefCell<usize>,
}

fn other(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> io::Error {
    io::Error::other(e)
}

/// Reads one logical packet (continuation chunks included) and appends it, headers and all,
/// to `out` (answers are passed on as they came); returns where its payload starts there
/// and its length.
async fn read_packet<R: AsyncRead + Unpin>(
    r: &mut R,
    out: &mut Vec<u8>,
) -> io::Result<(usize, usize)> {
    let mut start = None;
    let mut total = 0;
    loop {
        let mut head = [0u8; 4];
        r.read_exact(&mut head).await?;
        let len = usize::from(head[0]) | usize::from(head[1]) << 8 | usize::from(head[2]) << 16;
        out.extend_from_slice(&head);
        let at = out.len();
        start.get_or_insert(at);
        out.resize(at + len, 0);
        r.read_exact(&mut out[at..]).await?;
        total += len;
        if len < MAX_CHUNK {
            return Ok((start.unwrap_or(at), total));
        }
    }
}

/// Reads the whole answer to one command into `out`.
async fn read_answer<R: AsyncRead + Unpin>(
    r: &mut R,
    kind: ResponseKind,
    format: ResultFormat,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    let mut tracker = ResponseTracker::new(kind, format);
    loop {
        let (p, len) = read_packet(r, out).await?;
        match tracker.feed(&out[p..p + len], len).map_err(other)? {
            Step::Continue => {}
            Step::Done { .. } => return Ok(()),
            Step::LocalInfile => return Err(other("LOCAL INFILE is not spoken here")),
        }
    }
}

/// Writes every queued command of a pipe in one write, as soon as there is one.
async fn pipe_writer(
    mut w: impl AsyncWrite + Unpin,
    mut requests: mpsc::UnboundedReceiver<Request>,
    pending: Pending,
    wake_reader: Rc<Notify>,
) {
    let mut buf = Vec::with_capacity(64 * 1024);
    while let Some(first) = requests.recv().await {
        buf.clear();
        let mut next = Some(first);
        while let Some(req) = next {
            buf.extend_from_slice(&req.packet);
            pending.borrow_mut().push_back((req.kind, req.reply));
            next = requests.try_recv().ok();
        }
        wake_reader.notify_one();
        if w.write_all(&buf).await.is_err() {
            return;
        }
    }
}

/// Reads a pipe's answers in order and hands each to the client that is next in line.
async fn pipe_reader(
    r: impl AsyncRead + Unpin,
    format: ResultFormat,
    pending: Pending,
    wake: Rc<Notify>,
) {
    let mut r = BufReader::with_capacity(64 * 1024, r);
    loop {
        let next = pending.borrow_mut().pop_front();
        let Some((kind, reply)) = next else {
            wake.notified().await;
            continue;
        };
        let mut out = Vec::with_capacity(512);
        match read_answer(&mut r, kind, format, &mut out).await {
            Ok(()) => {
                let _ = reply.send(Ok(out));
            }
            Err(e) => {
                eprintln!("pipeline_floor: pipe lost: {e}");
                let _ = reply.send(Err(other("pipe lost")));
                for (_, reply) in pending.borrow_mut().drain(..) {
                    let _ = reply.send(Err(other("pipe lost")));
                }
                return;
            }
        }
    }
}

/// A packet with its header.
fn framed(seq: u8, payload: &[u8]) -> Vec<u8> {
    let len = payload.len();
    let mut out = Vec::with_capacity(len + 4);
    out.extend_from_slice(&[len as u8, (len >> 8) as u8, (len >> 16) as u8, seq]);
    out.extend_from_slice(payload);
    out
}

/// The ERR packet answering a command.
fn error(code: u16, state: &[u8; 5], message: &str) -> Vec<u8> {
    framed(1, &err_packet(code, state, message))
}

/// The OK packet answering a command (or a login, at sequence 2).
fn ok(seq: u8) -> Vec<u8> {
    framed(seq, &ok_packet(0, 0, SERVER_STATUS_AUTOCOMMIT, 0))
}

/// Opens one pipe with dbrouter's backend login (USER into DATABASE): its socket's two
/// halves, and the result framing negotiated on it.
async fn open_pipe(
    upstream: &str,
    user: &str,
    password: &str,
    db: &str,
) -> io::Result<(
    impl AsyncRead + Unpin,
    impl AsyncWrite + Unpin,
    ResultFormat,
)> {
    let opts = LoginOptions {
        user: user.into(),
        password: password.into(),
        password_sha1: None,
        database: Some(db.into()),
        collation: Some(u16::from(UTF8MB4_GENERAL_CI)),
        capabilities: CAPS,
        mariadb_capabilities: MariadbCapabilities::empty(),
        attributes: None,
    };
    let conn = connect(upstream, &opts, LOGIN_TIMEOUT, None)
        .await
        .map_err(other)?;
    let format = conn.result_format();
    // Nothing is buffered after the login's OK: a server sends nothing unasked.
    let (r, w) = tokio::io::split(conn.io.into_stream());
    Ok((r, w, format))
}

/// Sends one command to a pipe and waits for its whole answer.
async fn ask(
    pipe: &mpsc::UnboundedSender<Request>,
    packet: Vec<u8>,
    kind: ResponseKind,
) -> io::Result<Vec<u8>> {
    let (reply, rx) = oneshot::channel();
    pipe.send(Request {
        packet,
        kind,
        reply,
    })
    .map_err(|_| other("pipe closed"))?;
    rx.await.map_err(|_| other("pipe closed"))?
}

/// COM_STMT_PREPARE: prepared once per text on every pipe of this thread; the client gets the
/// first pipe's answer with the thread-wide statement number as its id.
async fn prepare(t: &Thread, payload: &[u8]) -> io::Result<Vec<u8>> {
    let text = payload[1..].to_vec();
    let known = t.by_text.borrow().get(&text).copied();
    let number = match known {
        Some(n) => n,
        None => {
            let packet = framed(0, payload);
            let mut answers = Vec::with_capacity(t.pipes.len());
            for pipe in &t.pipes {
                answers.push(ask(pipe, packet.clone(), ResponseKind::Prepare));
            }
            let mut ids = Vec::with_capacity(answers.len());
            let mut first = None;
            let mut params = 0;
            for a in answers {
                let a = a.await?;
                // Header, then 0x00, statement id u32, columns u16, parameters u16, …
                if a.get(4) != Some(&0) {
                    return Ok(a); // the server's ERR, as it came
                }
                if a.len() < 16 {
                    return Err(other("short COM_STMT_PREPARE answer"));
                }
                ids.push(u32::from_le_bytes([a[5], a[6], a[7], a[8]]));
                params = usize::from(u16::from_le_bytes([a[11], a[12]]));
                first.get_or_insert(a);
            }
            let answer = first.ok_or_else(|| other("no pipes"))?;
            let mut statements = t.statements.borrow_mut();
            statements.push(Statement {
                ids,
                answer,
                params,
            });
            let n = statements.len() as u32;
            t.by_text.borrow_mut().insert(text, n);
            n
        }
    };
    let statements = t.statements.borrow();
    let mut answer = statements[number as usize - 1].answer.clone();
    answer[5..9].copy_from_slice(&number.to_le_bytes());
    Ok(answer)
}

/// COM_STMT_EXECUTE for pipe `pipe`: the statement id rewritten to that pipe's, and the
/// parameter types always sent (the pipe's statement may last have been run by another client).
fn execute_packet(
    t: &Thread,
    pipe: usize,
    payload: &[u8],
    types: &mut HashMap<u32, Vec<u8>>,
) -> Result<Vec<u8>, Vec<u8>> {
    let malformed = || error(1835, b"HY000", "malformed COM_STMT_EXECUTE");
    if payload.len() < 10 {
        return Err(malformed());
    }
    let number = u32::from_le_bytes([payload[1], payload[2], payload[3], payload[4]]);
    if payload[5] != 0 {
        return Err(error(1235, b"42000", "the pipeline floor runs no cursors"));
    }
    let statements = t.statements.borrow();
    let Some(s) = (number as usize)
        .checked_sub(1)
        .and_then(|i| statements.get(i))
    else {
        return Err(error(1243, b"HY000", "unknown prepared statement handler"));
    };
    let mut out = Vec::with_capacity(payload.len() + 4 + 2 * s.params);
    out.extend_from_slice(&[0, 0, 0, 0, COM_STMT_EXECUTE]);
    out.extend_from_slice(&s.ids[pipe].to_le_bytes());
    out.extend_from_slice(&payload[5..10]);
    if s.params > 0 {
        let nulls = s.params.div_ceil(8);
        let Some(&bound) = payload.get(10 + nulls) else {
            return Err(malformed());
        };
        out.extend_from_slice(&payload[10..10 + nulls]);
        out.push(1);
        let mut rest = 10 + nulls + 1;
        if bound == 1 {
            let Some(given) = payload.get(rest..rest + 2 * s.params) else {
                return Err(malformed());
            };
            types.insert(number, given.to_vec());
            rest += 2 * s.params;
        }
        let Some(known) = types.get(&number) else {
            return Err(error(1210, b"HY000", "parameters were never bound"));
        };
        out.extend_from_slice(known);
        out.extend_from_slice(&payload[rest..]);
    }
    let len = out.len() - 4;
    out[..3].copy_from_slice(&[len as u8, (len >> 8) as u8, (len >> 16) as u8]);
    Ok(out)
}

/// One client: a greeting, any login accepted, then its commands, each on the client's pipe.
async fn serve(sock: TcpStream, t: Rc<Thread>, id: u32) -> io::Result<()> {
    sock.set_nodelay(true)?;
    let (r, mut w) = sock.into_split();
    let mut r = BufReader::with_capacity(16 * 1024, r);
    let pipe = {
        let mut n = t.next_pipe.borrow_mut();
        *n = (*n + 1) % t.pipes.len();
        *n
    };
    let hello = greeting(
        id,
        "10.11.0-pipeline-floor",
        b"pipelinefloor-scramb",
        CAPS,
        MariadbCapabilities::empty(),
        UTF8MB4_GENERAL_CI,
        "mysql_native_password",
    );
    w.write_all(&framed(0, &hello)).await?;
    let mut buf = Vec::with_capacity(1024);
    read_packet(&mut r, &mut buf).await?;
    w.write_all(&ok(2)).await?;
    let mut types = HashMap::new();
    let on_pipe = |packet, kind| ask(&t.pipes[pipe], packet, kind);
    loop {
        buf.clear();
        let (p, len) = match read_packet(&mut r, &mut buf).await {
            Ok(x) => x,
            Err(_) => return Ok(()),
        };
        let payload = &buf[p..p + len];
        let answer = match payload.first().copied() {
            Some(COM_QUIT) | None => return Ok(()),
            Some(COM_QUERY) => on_pipe(buf.clone(), ResponseKind::Query).await?,
            Some(COM_INIT_DB | COM_PING) => on_pipe(buf.clone(), ResponseKind::Single).await?,
            Some(COM_STMT_PREPARE) => prepare(&t, payload).await?,
            Some(COM_STMT_EXECUTE) => match execute_packet(&t, pipe, payload, &mut types) {
                Ok(packet) => on_pipe(packet, ResponseKind::Execute).await?,
                Err(refusal) => refusal,
            },
            Some(COM_STMT_CLOSE) => continue,
            Some(COM_STMT_RESET) => ok(1),
            Some(_) => error(
                1047,
                b"08S01",
                "unknown command (the pipeline floor speaks little)",
            ),
        };
        w.write_all(&answer).await?;
    }
}

/// One serving thread: its pipes, then the clients the acceptor hands it.
fn serving_thread(
    args: Rc<[String]>,
    pipes: usize,
    mut clients: mpsc::UnboundedReceiver<std::net::TcpStream>,
) -> io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let mut senders = Vec::with_capacity(pipes);
        for _ in 0..pipes {
            let (r, w, format) = open_pipe(&args[1], &args[2], &args[3], &args[4]).await?;
            let (tx, rx) = mpsc::unbounded_channel();
            let pending: Pending = Rc::default();
            let wake = Rc::new(Notify::new());
            tokio::task::spawn_local(pipe_writer(w, rx, pending.clone(), wake.clone()));
            tokio::task::spawn_local(pipe_reader(r, format, pending, wake));
            senders.push(tx);
        }
        let t = Rc::new(Thread {
            pipes: senders,
            statements: RefCell::default(),
            by_text: RefCell::default(),
            next_pipe: RefCell::new(0),
        });
        static IDS: AtomicU32 = AtomicU32::new(1);
        while let Some(client) = clients.recv().await {
            let t = t.clone();
            tokio::task::spawn_local(async move {
                let Ok(sock) = client
                    .set_nonblocking(true)
                    .and_then(|()| TcpStream::from_std(client))
                else {
                    return;
                };
                if let Err(e) = serve(sock, t, IDS.fetch_add(1, Ordering::Relaxed)).await {
                    eprintln!("pipeline_floor: client: {e}");
                }
            });
        }
        Ok(())
    })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !(5..=6).contains(&args.len()) {
        eprintln!("usage: pipeline_floor LISTEN_ADDR UPSTREAM_ADDR USER PASSWORD DATABASE [PIPES]");
        return ExitCode::from(2);
    }
    let pipes: usize = match args.get(5).map(|p| p.parse()) {
        None => 32,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("pipeline_floor: PIPES must be a positive number");
            return ExitCode::from(2);
        }
    };
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(pipes);
    let listener = match std::net::TcpListener::bind(&args[0]) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("pipeline_floor: cannot listen on {}: {e}", args[0]);
            return ExitCode::FAILURE;
        }
    };
    let mut hands = Vec::with_capacity(threads);
    for i in 0..threads {
        let (tx, rx) = mpsc::unbounded_channel();
        let args = args.clone();
        let share = pipes / threads + usize::from(i < pipes % threads);
        std::thread::spawn(move || {
            if let Err(e) = serving_thread(args.into(), share, rx) {
                eprintln!("pipeline_floor: serving thread {i}: {e}");
                std::process::exit(1);
            }
        });
        hands.push(tx);
    }
    for (n, client) in listener.incoming().enumerate() {
        match client {
            Ok(c) => {
                if hands[n % threads].send(c).is_err() {
                    return ExitCode::FAILURE;
                }
            }
            Err(e) => eprintln!("pipeline_floor: accept: {e}"),
        }
    }
    ExitCode::SUCCESS
}
