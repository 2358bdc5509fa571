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
//! statement never wakes another thread.
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

use sha1::{Digest, Sha1};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, Notify};

/// Capabilities of both sides (no CLIENT_DEPRECATE_EOF, no SSL, no MariaDB extensions): a
/// client and the pipes it shares speak one framing.
const CAPS: u32 = 0x1 // LONG_PASSWORD (also "MySQL protocol": no MariaDB extended capabilities)
    | 0x2 // FOUND_ROWS
    | 0x4 // LONG_FLAG
    | 0x8 // CONNECT_WITH_DB
    | 0x200 // PROTOCOL_41
    | 0x2000 // TRANSACTIONS
    | 0x8000 // SECURE_CONNECTION
    | 0x10000 // MULTI_STATEMENTS
    | 0x20000 // MULTI_RESULTS
    | 0x40000 // PS_MULTI_RESULTS
    | 0x80000; // PLUGIN_AUTH
const MORE_RESULTS: u16 = 0x0008;
const NATIVE: &[u8] = b"mysql_native_password";
const UTF8MB4_GENERAL_CI: u8 = 45;
const MAX_CHUNK: usize = 0xff_ffff;

/// How to find the end of the answer to a command.
#[derive(Clone, Copy)]
enum Answer {
    /// One OK or ERR packet.
    Single,
    /// Result sets (text or binary) or OK / ERR, possibly several (MORE_RESULTS).
    Results,
    /// The answer to COM_STMT_PREPARE.
    Prepare,
}

/// One command on its way to a pipe, and where its answer goes.
struct Request {
    packet: Vec<u8>,
    answer: Answer,
    reply: oneshot::Sender<io::Result<Vec<u8>>>,
}

type Pending = Rc<RefCell<VecDeque<(Answer, oneshot::Sender<io::Result<Vec<u8>>>)>>>;

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
/// to `out`; returns where its payload starts there and its length.
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

/// A length-encoded integer at `pos`, and the position after it.
fn lenenc(buf: &[u8], pos: usize) -> io::Result<(u64, usize)> {
    let bad = || other("truncated length-encoded integer");
    let first = *buf.get(pos).ok_or_else(bad)?;
    let n = match first {
        0xfc => 2,
        0xfd => 3,
        0xfe => 8,
        x => return Ok((u64::from(x), pos + 1)),
    };
    let bytes = buf.get(pos + 1..pos + 1 + n).ok_or_else(bad)?;
    let v = bytes
        .iter()
        .rev()
        .fold(0u64, |acc, b| acc << 8 | u64::from(*b));
    Ok((v, pos + 1 + n))
}

fn u16_at(buf: &[u8], pos: usize) -> u16 {
    match buf.get(pos..pos + 2) {
        Some(b) => u16::from_le_bytes([b[0], b[1]]),
        None => 0,
    }
}

/// Reads the whole answer to one command into `out`.
async fn read_answer<R: AsyncRead + Unpin>(
    r: &mut R,
    answer: Answer,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    match answer {
        Answer::Single => read_packet(r, out).await.map(|_| ()),
        Answer::Prepare => {
            let (p, _) = read_packet(r, out).await?;
            if out.get(p) != Some(&0) {
                return Ok(());
            }
            let (columns, params) = (u16_at(out, p + 5), u16_at(out, p + 7));
            for n in [params, columns] {
                if n > 0 {
                    for _ in 0..=n {
                        read_packet(r, out).await?; // n definitions and an EOF
                    }
                }
            }
            Ok(())
        }
        Answer::Results => loop {
            let (p, _) = read_packet(r, out).await?;
            match out.get(p).copied() {
                Some(0xff) => return Ok(()),
                Some(0x00) => {
                    let (_, q) = lenenc(out, p + 1)?;
                    let (_, q) = lenenc(out, q)?;
                    if u16_at(out, q) & MORE_RESULTS == 0 {
                        return Ok(());
                    }
                }
                Some(0xfb) | None => {
                    return Err(other("LOCAL INFILE or an empty packet: not spoken here"))
                }
                Some(_) => {
                    let (columns, _) = lenenc(out, p)?;
                    for _ in 0..=columns {
                        read_packet(r, out).await?; // the definitions and an EOF
                    }
                    loop {
                        let (p, len) = read_packet(r, out).await?;
                        match out.get(p).copied() {
                            Some(0xff) => return Ok(()),
                            Some(0xfe) if len < 9 => {
                                if u16_at(out, p + 3) & MORE_RESULTS == 0 {
                                    return Ok(());
                                }
                                break;
                            }
                            _ => {}
                        }
                    }
                }
            }
        },
    }
}

/// Writes every queued command of a pipe in one write, as soon as there is one.
async fn pipe_writer(
    mut w: OwnedWriteHalf,
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
            pending.borrow_mut().push_back((req.answer, req.reply));
            next = requests.try_recv().ok();
        }
        wake_reader.notify_one();
        if w.write_all(&buf).await.is_err() {
            return;
        }
    }
}

/// Reads a pipe's answers in order and hands each to the client that is next in line.
async fn pipe_reader(r: OwnedReadHalf, pending: Pending, wake: Rc<Notify>) {
    let mut r = BufReader::with_capacity(64 * 1024, r);
    loop {
        let next = pending.borrow_mut().pop_front();
        let Some((answer, reply)) = next else {
            wake.notified().await;
            continue;
        };
        let mut out = Vec::with_capacity(512);
        match read_answer(&mut r, answer, &mut out).await {
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

fn native_password(password: &[u8], scramble: &[u8]) -> Vec<u8> {
    if password.is_empty() {
        return Vec::new();
    }
    let s1 = Sha1::digest(password);
    let s2 = Sha1::digest(s1);
    let mut h = Sha1::new();
    h.update(scramble);
    h.update(s2);
    let s3 = h.finalize();
    s1.iter().zip(s3.iter()).map(|(a, b)| a ^ b).collect()
}

fn framed(seq: u8, payload: &[u8]) -> Vec<u8> {
    let len = payload.len();
    let mut out = Vec::with_capacity(len + 4);
    out.extend_from_slice(&[len as u8, (len >> 8) as u8, (len >> 16) as u8, seq]);
    out.extend_from_slice(payload);
    out
}

fn err_packet(seq: u8, code: u16, state: &[u8; 5], message: &str) -> Vec<u8> {
    let mut p = vec![0xff];
    p.extend_from_slice(&code.to_le_bytes());
    p.push(b'#');
    p.extend_from_slice(state);
    p.extend_from_slice(message.as_bytes());
    framed(seq, &p)
}

/// Opens one pipe: a login as USER (mysql_native_password) into DATABASE.
async fn open_pipe(upstream: &str, user: &str, password: &str, db: &str) -> io::Result<TcpStream> {
    let mut s = TcpStream::connect(upstream).await?;
    s.set_nodelay(true)?;
    let mut buf = Vec::new();
    let (p, len) = read_packet(&mut s, &mut buf).await?;
    let g = &buf[p..p + len];
    let bad = || other("unexpected greeting");
    let mut q = 1
        + g.get(1..)
            .ok_or_else(bad)?
            .iter()
            .position(|b| *b == 0)
            .ok_or_else(bad)?
        + 1;
    q += 4; // connection id
    let mut scramble = g.get(q..q + 8).ok_or_else(bad)?.to_vec();
    q += 8 + 1 + 2 + 1 + 2 + 2 + 1 + 10;
    scramble.extend_from_slice(g.get(q..q + 12).ok_or_else(bad)?);
    let mut resp = Vec::new();
    resp.extend_from_slice(&CAPS.to_le_bytes());
    resp.extend_from_slice(&(16u32 << 20).to_le_bytes());
    resp.push(UTF8MB4_GENERAL_CI);
    resp.extend_from_slice(&[0; 23]);
    resp.extend_from_slice(user.as_bytes());
    resp.push(0);
    let auth = native_password(password.as_bytes(), &scramble);
    resp.push(auth.len() as u8);
    resp.extend_from_slice(&auth);
    resp.extend_from_slice(db.as_bytes());
    resp.push(0);
    resp.extend_from_slice(NATIVE);
    resp.push(0);
    s.write_all(&framed(1, &resp)).await?;
    let mut seq = 2u8;
    loop {
        buf.clear();
        let (p, len) = read_packet(&mut s, &mut buf).await?;
        let a = &buf[p..p + len];
        match a.first() {
            Some(0x00) => return Ok(s),
            Some(0xfe) => {
                // Auth switch: plugin name, NUL, the new scramble (NUL-terminated).
                let name_end = a.iter().skip(1).position(|b| *b == 0).ok_or_else(bad)? + 1;
                if &a[1..name_end] != NATIVE {
                    return Err(other("the upstream asked for another auth plugin"));
                }
                let data = a.get(name_end + 1..).unwrap_or_default();
                let data = data.strip_suffix(&[0]).unwrap_or(data);
                s.write_all(&framed(seq, &native_password(password.as_bytes(), data)))
                    .await?;
                seq = seq.wrapping_add(2);
            }
            _ => {
                return Err(other(format!(
                    "login refused: {}",
                    String::from_utf8_lossy(a.get(9..).unwrap_or_default())
                )))
            }
        }
    }
}

/// Sends one command to a pipe and waits for its whole answer.
async fn ask(
    pipe: &mpsc::UnboundedSender<Request>,
    packet: Vec<u8>,
    answer: Answer,
) -> io::Result<Vec<u8>> {
    let (reply, rx) = oneshot::channel();
    pipe.send(Request {
        packet,
        answer,
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
                answers.push(ask(pipe, packet.clone(), Answer::Prepare));
            }
            let mut ids = Vec::with_capacity(answers.len());
            let mut first = None;
            let mut params = 0;
            for a in answers {
                let a = a.await?;
                if a.get(4) != Some(&0) {
                    return Ok(a); // the server's ERR, as it came
                }
                if a.len() < 16 {
                    return Err(other("short COM_STMT_PREPARE answer"));
                }
                ids.push(u32::from_le_bytes([a[5], a[6], a[7], a[8]]));
                params = usize::from(u16_at(&a, 11));
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
    let refuse = |m: &str| err_packet(1, 1235, b"42000", m);
    if payload.len() < 10 {
        return Err(err_packet(1, 1835, b"HY000", "malformed COM_STMT_EXECUTE"));
    }
    let number = u32::from_le_bytes([payload[1], payload[2], payload[3], payload[4]]);
    if payload[5] != 0 {
        return Err(refuse("the pipeline floor runs no cursors"));
    }
    let statements = t.statements.borrow();
    let Some(s) = (number as usize)
        .checked_sub(1)
        .and_then(|i| statements.get(i))
    else {
        return Err(err_packet(
            1,
            1243,
            b"HY000",
            "unknown prepared statement handler",
        ));
    };
    let mut out = Vec::with_capacity(payload.len() + 4 + 2 * s.params);
    out.extend_from_slice(&[0, 0, 0, 0, 0x17]);
    out.extend_from_slice(&s.ids[pipe].to_le_bytes());
    out.extend_from_slice(&payload[5..10]);
    if s.params > 0 {
        let nulls = s.params.div_ceil(8);
        let Some(&bound) = payload.get(10 + nulls) else {
            return Err(err_packet(1, 1835, b"HY000", "malformed COM_STMT_EXECUTE"));
        };
        out.extend_from_slice(&payload[10..10 + nulls]);
        out.push(1);
        let mut rest = 10 + nulls + 1;
        if bound == 1 {
            let Some(given) = payload.get(rest..rest + 2 * s.params) else {
                return Err(err_packet(1, 1835, b"HY000", "malformed COM_STMT_EXECUTE"));
            };
            types.insert(number, given.to_vec());
            rest += 2 * s.params;
        }
        let Some(known) = types.get(&number) else {
            return Err(err_packet(1, 1210, b"HY000", "parameters were never bound"));
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
    let scramble = *b"pipelinefloor-scrambl";
    let mut g = vec![10];
    g.extend_from_slice(b"10.11.0-pipeline-floor\0");
    g.extend_from_slice(&id.to_le_bytes());
    g.extend_from_slice(&scramble[..8]);
    g.push(0);
    g.extend_from_slice(&(CAPS as u16).to_le_bytes());
    g.push(UTF8MB4_GENERAL_CI);
    g.extend_from_slice(&2u16.to_le_bytes());
    g.extend_from_slice(&((CAPS >> 16) as u16).to_le_bytes());
    g.push(21);
    g.extend_from_slice(&[0; 10]);
    g.extend_from_slice(&scramble[8..20]);
    g.push(0);
    g.extend_from_slice(NATIVE);
    g.push(0);
    w.write_all(&framed(0, &g)).await?;
    let mut buf = Vec::with_capacity(1024);
    read_packet(&mut r, &mut buf).await?;
    w.write_all(&framed(2, &[0, 0, 0, 2, 0, 0, 0])).await?;
    let mut types = HashMap::new();
    loop {
        buf.clear();
        let (p, len) = match read_packet(&mut r, &mut buf).await {
            Ok(x) => x,
            Err(_) => return Ok(()),
        };
        let payload = &buf[p..p + len];
        let answer = match payload.first() {
            Some(0x01) | None => return Ok(()),
            Some(0x03) => ask(&t.pipes[pipe], buf.clone(), Answer::Results).await?,
            Some(0x02 | 0x0e) => ask(&t.pipes[pipe], buf.clone(), Answer::Single).await?,
            Some(0x16) => prepare(&t, payload).await?,
            Some(0x17) => match execute_packet(&t, pipe, payload, &mut types) {
                Ok(packet) => ask(&t.pipes[pipe], packet, Answer::Results).await?,
                Err(refusal) => refusal,
            },
            Some(0x19) => continue,
            Some(0x1a) => framed(1, &[0, 0, 0, 2, 0, 0, 0]),
            Some(_) => err_packet(
                1,
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
            let s = open_pipe(&args[1], &args[2], &args[3], &args[4]).await?;
            let (r, w) = s.into_split();
            let (tx, rx) = mpsc::unbounded_channel();
            let pending: Pending = Rc::default();
            let wake = Rc::new(Notify::new());
            tokio::task::spawn_local(pipe_writer(w, rx, pending.clone(), wake.clone()));
            tokio::task::spawn_local(pipe_reader(r, pending, wake));
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
