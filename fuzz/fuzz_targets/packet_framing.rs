//! Fuzz target `packet_framing`: MySQL packet framing (`net::packet`, `net::conn`).
//!
//! Checks, on arbitrary bytes delivered in chunks of an input-chosen size to a
//! `PacketConn` over an in-memory stream:
//! - `read_physical` / `read_logical` (with continuations, an optional first sequence id
//!   and an input-chosen limit) never panic, and return exactly what a straightforward
//!   model of the framing rules expects: the packet and its last sequence id, or
//!   `TooLarge` (size and limit), `OutOfOrder` (expected and got) or `Closed`;
//! - a returned payload is never longer than the limit, and the read buffer never grows
//!   far beyond the limit however large the length a header announces (a peer must not
//!   make the router allocate more than the limit);
//! - `write_packet` / `PacketConn::queue` frame any payload (also 16 MiB - 1 and more,
//!   with the trailing empty packet) so that `parse_header` and `read_logical` read the
//!   same payload back, with the sequence ids the writer returned.
//!
//! Input: `flags, limit_lo, limit_hi, chunk, seq, body...`. The body is the raw stream,
//! or (flag STRUCTURED) a list of segments — `0xff, seq`: a physical packet of
//! 16 MiB - 1 filler bytes (at most one), else `n` followed by `n` literal bytes — so
//! that continuations are reachable from small inputs. A run with a 16 MiB packet
//! costs as much as ~1000 small ones, so big packets (filler segments, and BIG_PAYLOAD
//! write round trips) are honoured only in inputs whose FNV-1a hash is a multiple of 64:
//! the mutants of a big input are mostly small and fast, and an input always behaves the
//! same (crashes reproduce).

#![no_main]

use std::io;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};

use bytes::BytesMut;
use dbrouter::net::conn::{BACKEND_READ_CAPACITY, CLIENT_READ_CAPACITY};
use dbrouter::net::{
    parse_header, write_packet, NetError, PacketConn, HEADER_LEN, MAX_PAYLOAD_LEN,
};
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

const LOGICAL: u8 = 1;
const FIRST_SEQ: u8 = 1 << 1;
const BACKEND_BUFFER: u8 = 1 << 2;
const LIMIT_CLASS_SHIFT: u8 = 3; // two bits
const WRITE_ROUNDTRIP: u8 = 1 << 5;
const STRUCTURED: u8 = 1 << 6;
const BIG_PAYLOAD: u8 = 1 << 7;

/// At most this many 16 MiB - 1 filler packets per input (memory and time per run).
const MAX_BIG_SEGMENTS: usize = 1;
/// Streams this long are read at least this many bytes at a time (time per run).
const BIG_STREAM: usize = 1 << 20;
const BIG_STREAM_CHUNK: usize = 1 << 16;
/// At most this many packets are read per input.
const MAX_READS: usize = 256;

fuzz_target!(|data: &[u8]| {
    let big = fnv1a(data).is_multiple_of(64);
    let Some((&[flags, limit_lo, limit_hi, chunk, seq], body)) = data.split_first_chunk::<5>()
    else {
        return;
    };
    let chunk = chunk_size(chunk);
    let capacity = if flags & BACKEND_BUFFER != 0 {
        BACKEND_READ_CAPACITY
    } else {
        CLIENT_READ_CAPACITY
    };
    if flags & WRITE_ROUNDTRIP != 0 {
        let flags = if big { flags } else { flags & !BIG_PAYLOAD };
        write_roundtrip(flags, limit_lo, seq, body, chunk, capacity);
        return;
    }
    let limit = match (flags >> LIMIT_CLASS_SHIFT) & 3 {
        0 => usize::from(u16::from_le_bytes([limit_lo, limit_hi])),
        1 => usize::from(limit_lo),
        2 => MAX_PAYLOAD_LEN + usize::from(u16::from_le_bytes([limit_lo, limit_hi])),
        _ => 3 * MAX_PAYLOAD_LEN,
    };
    let stream = if flags & STRUCTURED != 0 {
        structured_stream(body, if big { MAX_BIG_SEGMENTS } else { 0 })
    } else {
        body.to_vec()
    };
    let first_seq = (flags & FIRST_SEQ != 0).then_some(seq);
    read_all(
        &stream,
        flags & LOGICAL != 0,
        limit,
        first_seq,
        chunk,
        capacity,
    );
});

/// 1 to 4 336 bytes per read, or everything at once.
fn chunk_size(b: u8) -> usize {
    if b == 0xff {
        usize::MAX
    } else {
        1 + usize::from(b) * 17
    }
}

fn fnv1a(data: &[u8]) -> u32 {
    data.iter().fold(0x811c_9dc5, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

fn structured_stream(mut body: &[u8], max_big: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut big = 0;
    while let Some((&op, rest)) = body.split_first() {
        body = rest;
        if op == 0xff {
            let Some((&seq, rest)) = body.split_first() else {
                break;
            };
            body = rest;
            if big == max_big {
                continue;
            }
            big += 1;
            out.extend_from_slice(&[0xff, 0xff, 0xff, seq]);
            out.resize(out.len() + MAX_PAYLOAD_LEN, 0x5a);
        } else {
            let n = usize::from(op).min(body.len());
            out.extend_from_slice(&body[..n]);
            body = &body[n..];
        }
    }
    out
}

/// What reading gave, or should give from the framing rules: a packet's payload is kept
/// as the pieces of the stream it is made of (no copies of 16 MiB payloads).
#[derive(Debug, PartialEq, Eq)]
enum Outcome<P> {
    Packet { seq: u8, payload: P },
    TooLarge { size: usize, limit: usize },
    OutOfOrder { expected: u8, got: u8 },
    Closed,
}

/// The payload's pieces: ranges of the stream.
type Pieces = Vec<std::ops::Range<usize>>;

impl From<Result<(u8, BytesMut), NetError>> for Outcome<BytesMut> {
    fn from(r: Result<(u8, BytesMut), NetError>) -> Self {
        match r {
            Ok((seq, payload)) => Outcome::Packet { seq, payload },
            Err(NetError::TooLarge { size, limit }) => Outcome::TooLarge { size, limit },
            Err(NetError::OutOfOrder { expected, got }) => Outcome::OutOfOrder { expected, got },
            Err(NetError::Closed) => Outcome::Closed,
            // The in-memory stream never fails and nothing here has a timeout.
            Err(e) => panic!("unexpected error from an in-memory stream: {e}"),
        }
    }
}

/// One physical packet at `*pos` whose payload may be at most `limit` bytes: the length
/// is checked as soon as the header is there, before the payload arrives.
fn model_physical(
    s: &[u8],
    pos: &mut usize,
    limit: usize,
) -> Result<(u8, std::ops::Range<usize>), Outcome<Pieces>> {
    let Some((len, seq)) = parse_header(&s[*pos..]) else {
        return Err(Outcome::Closed);
    };
    if len > limit {
        return Err(Outcome::TooLarge { size: len, limit });
    }
    let start = *pos + HEADER_LEN;
    if s.len() - start < len {
        return Err(Outcome::Closed);
    }
    *pos = start + len;
    Ok((seq, start..start + len))
}

/// One logical packet: physical packets of exactly 16 MiB - 1 bytes are continued by the
/// next one (sequence id + 1), the whole payload at most `limit` bytes.
fn model_logical(
    s: &[u8],
    pos: &mut usize,
    limit: usize,
    first_seq: Option<u8>,
) -> Outcome<Pieces> {
    let (mut seq, first) = match model_physical(s, pos, limit) {
        Ok(p) => p,
        Err(e) => return e,
    };
    if let Some(expected) = first_seq {
        if seq != expected {
            return Outcome::OutOfOrder { expected, got: seq };
        }
    }
    let mut last = first.len();
    let mut total = first.len();
    let mut payload = vec![first];
    while last == MAX_PAYLOAD_LEN {
        let more = match model_physical(s, pos, limit - total) {
            Ok((next, more)) if next == seq.wrapping_add(1) => more,
            Ok((got, _)) => {
                return Outcome::OutOfOrder {
                    expected: seq.wrapping_add(1),
                    got,
                }
            }
            Err(Outcome::TooLarge { size, .. }) => {
                return Outcome::TooLarge {
                    size: total + size,
                    limit,
                }
            }
            Err(e) => return e,
        };
        seq = seq.wrapping_add(1);
        last = more.len();
        total += more.len();
        payload.push(more);
    }
    Outcome::Packet { seq, payload }
}

/// Whether what `PacketConn` read is what the model expects.
fn same(s: &[u8], got: &Outcome<BytesMut>, want: &Outcome<Pieces>) -> bool {
    match (got, want) {
        (
            Outcome::Packet { seq, payload },
            Outcome::Packet {
                seq: want_seq,
                payload: pieces,
            },
        ) => {
            let mut at = 0;
            let same_bytes = pieces.iter().all(|r| {
                let piece = payload.get(at..at + r.len());
                at += r.len();
                piece == Some(&s[r.clone()])
            });
            seq == want_seq && same_bytes && at == payload.len()
        }
        (
            Outcome::TooLarge { size, limit },
            Outcome::TooLarge {
                size: s2,
                limit: l2,
            },
        ) => size == s2 && limit == l2,
        (
            Outcome::OutOfOrder { expected, got },
            Outcome::OutOfOrder {
                expected: e2,
                got: g2,
            },
        ) => expected == e2 && got == g2,
        (Outcome::Closed, Outcome::Closed) => true,
        _ => false,
    }
}

fn read_all(
    stream: &[u8],
    logical: bool,
    limit: usize,
    first_seq: Option<u8>,
    chunk: usize,
    capacity: usize,
) {
    let chunk = if stream.len() > BIG_STREAM {
        chunk.max(BIG_STREAM_CHUNK)
    } else {
        chunk
    };
    let mut conn = PacketConn::with_capacity(MemStream::new(stream, chunk), capacity);
    // The read buffer may grow geometrically, but only by what a packet within the limit
    // (or a read of `chunk` bytes) needs, never by a length a header merely announces.
    let physical_limit = limit.min(MAX_PAYLOAD_LEN);
    let max_capacity =
        4 * (capacity + physical_limit + HEADER_LEN + chunk.min(stream.len())) + 64 * 1024;
    let mut pos = 0;
    block_on(async {
        for _ in 0..MAX_READS {
            let (got, want) = if logical {
                let got = Outcome::from(conn.read_logical(limit, first_seq).await);
                (got, model_logical(stream, &mut pos, limit, first_seq))
            } else {
                let got = Outcome::from(conn.read_physical(limit).await);
                let want = match model_physical(stream, &mut pos, limit) {
                    Ok((seq, range)) => Outcome::Packet {
                        seq,
                        payload: vec![range],
                    },
                    Err(e) => e,
                };
                (got, want)
            };
            let cap = conn.read_buffer().capacity();
            assert!(
                cap <= max_capacity,
                "read buffer of {cap} bytes for a limit of {limit} (at most {max_capacity} expected)"
            );
            if !same(stream, &got, &want) {
                panic!(
                    "PacketConn disagrees with the framing rules at byte {pos}: got {}, expected {}",
                    short(&got),
                    short(&want)
                );
            }
            match got {
                Outcome::Packet { payload, .. } => {
                    assert!(payload.len() <= limit, "payload above the limit")
                }
                _ => break,
            }
        }
    });
}

/// An outcome for messages (payloads can be 32 MiB).
fn short<P: std::fmt::Debug>(o: &Outcome<P>) -> String {
    match o {
        Outcome::Packet { seq, payload } => {
            let text = format!("{payload:?}");
            format!("packet seq {seq}: {}", &text[..text.len().min(80)])
        }
        other => format!("{other:?}"),
    }
}

fn write_roundtrip(flags: u8, extra: u8, seq: u8, body: &[u8], chunk: usize, capacity: usize) {
    let mut payload = body.to_vec();
    if flags & BIG_PAYLOAD != 0 {
        // Exactly 16 MiB - 1 (then an empty trailing packet) or a little more.
        let size = MAX_PAYLOAD_LEN + usize::from(extra);
        if payload.is_empty() {
            payload.push(0xa5);
        }
        while payload.len() < size {
            payload.extend_from_within(..payload.len().min(size - payload.len()));
        }
    }
    let chunk = if payload.len() > BIG_STREAM {
        chunk.max(BIG_STREAM_CHUNK)
    } else {
        chunk
    };
    let mut framed = BytesMut::new();
    let next = write_packet(&mut framed, seq, &payload);

    // The frames, header by header: full chunks, then one shorter (maybe empty) one.
    let (mut at, mut expect_seq, mut joined) = (0usize, seq, 0usize);
    loop {
        let Some((len, s)) = parse_header(&framed[at..]) else {
            panic!("truncated frame at {at}");
        };
        assert_eq!(s, expect_seq, "sequence id of the frame at {at}");
        assert!(len <= MAX_PAYLOAD_LEN);
        assert_eq!(
            &framed[at + HEADER_LEN..at + HEADER_LEN + len],
            &payload[joined..joined + len]
        );
        at += HEADER_LEN + len;
        joined += len;
        expect_seq = expect_seq.wrapping_add(1);
        if len < MAX_PAYLOAD_LEN {
            break;
        }
    }
    assert_eq!(at, framed.len(), "bytes after the last frame");
    assert_eq!(joined, payload.len());
    assert_eq!(next, expect_seq, "next sequence id");

    block_on(async {
        // queue + flush writes exactly what write_packet framed.
        let mut writer = PacketConn::with_capacity(MemStream::new(&[], chunk), capacity);
        assert_eq!(writer.queue(seq, &payload), next);
        assert_eq!(writer.pending_write_len(), framed.len());
        if let Err(e) = writer.flush().await {
            panic!("flush to memory failed: {e}");
        }
        assert!(
            writer.stream_mut().written == framed[..],
            "queued bytes differ"
        );

        // And read_logical reads the payload back.
        let mut reader = PacketConn::with_capacity(MemStream::new(&framed, chunk), capacity);
        match Outcome::from(reader.read_logical(payload.len(), Some(seq)).await) {
            Outcome::Packet {
                seq: last,
                payload: back,
            } => {
                assert_eq!(last.wrapping_add(1), next, "last sequence id read back");
                assert!(back == payload, "payload read back differs");
            }
            other => panic!("reading back a written packet: {}", short(&other)),
        }
        match Outcome::from(reader.read_logical(usize::MAX, None).await) {
            Outcome::Closed => {}
            other => panic!("bytes after the written packet: {}", short(&other)),
        }
    });
}

/// An in-memory stream: reads return at most `chunk` bytes of `data`; writes are kept.
struct MemStream<'a> {
    data: &'a [u8],
    pos: usize,
    chunk: usize,
    written: Vec<u8>,
}

impl<'a> MemStream<'a> {
    fn new(data: &'a [u8], chunk: usize) -> Self {
        MemStream {
            data,
            pos: 0,
            chunk,
            written: Vec::new(),
        }
    }
}

impl AsyncRead for MemStream<'_> {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let n = (this.data.len() - this.pos)
            .min(this.chunk)
            .min(buf.remaining());
        buf.put_slice(&this.data[this.pos..this.pos + n]);
        this.pos += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for MemStream<'_> {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let n = b.len().min(this.chunk);
        this.written.extend_from_slice(&b[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap_or_else(|e| panic!("tokio runtime: {e}"))
        })
        .block_on(f)
}
