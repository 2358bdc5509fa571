//! Fuzz target `response_tracker`: the response state machine (`protocol::response`) and
//! the relay's scanner around it (`protocol::scanner`), fed arbitrary backend packets.
//!
//! Checks, for every command kind (query, execute, prepare, field list, fetch, single)
//! and result framing (CLIENT_DEPRECATE_EOF, MariaDB metadata caching):
//! - `ResponseTracker::feed` never panics on any packet sequence, also when a large
//!   packet is given by its head only (`len` > head), and refuses an empty packet;
//!   a single-packet command is done after one packet;
//! - differential: `ResponseScanner::scan`, given the same packets framed as a byte
//!   stream and delivered in chunks of an input-chosen size (as the relay receives them),
//!   ends the response (or asks for LOCAL INFILE, or reports the same protocol violation)
//!   at exactly the byte where feeding the packets one by one to a tracker does, and the
//!   same whether the bytes arrive in chunks or at once;
//! - the scanner never panics on raw bytes (large and continued packets streamed through)
//!   and never claims more bytes than it was given;
//! - the terminator decoders (`ok_status`, `eof_status`, `terminator_status`,
//!   `ok_insert_id`, `add_ok_status`, `parse_err`) on every packet.
//!
//! Input: `mode, command_seq, chunk, packets...`: a packet is `c` (length `c & 0x3f`,
//! plus 64 × the next byte when `c & 0x40`; `c & 0x80`: the tracker is told the packet
//! is larger than its head) and its bytes. Mode bits 0-2: the response kind; 3:
//! CLIENT_DEPRECATE_EOF; 4: metadata caching; 5: the rest is a raw stream; 6: extended
//! metadata.

#![no_main]

use dbrouter::net::{parse_header, HEADER_LEN};
use dbrouter::protocol::packets::{
    add_ok_status, eof_status, ok_insert_id, ok_status, parse_err, terminator_status,
};
use dbrouter::protocol::response::{
    ProtocolViolation, ResponseKind, ResponseTracker, ResultFormat, Step,
};
use dbrouter::protocol::scanner::{ResponseScanner, STREAM_THRESHOLD};
use libfuzzer_sys::fuzz_target;

const KINDS: [ResponseKind; 6] = [
    ResponseKind::Query,
    ResponseKind::Execute,
    ResponseKind::Prepare,
    ResponseKind::FieldList,
    ResponseKind::Fetch,
    ResponseKind::Single,
];
const RAW: u8 = 1 << 5;

/// Lengths a large packet may claim when only its head is given.
const LARGE: [usize; 4] = [STREAM_THRESHOLD, STREAM_THRESHOLD + 1, 0xff_fffe, 0xff_ffff];

fuzz_target!(|data: &[u8]| {
    let Some((&[mode, command_seq, chunk], rest)) = data.split_first_chunk::<3>() else {
        return;
    };
    let kind = KINDS[usize::from(mode & 7) % KINDS.len()];
    let format = ResultFormat {
        deprecate_eof: mode & 8 != 0,
        metadata_flag: mode & 16 != 0,
        extended_metadata: mode & 64 != 0,
    };
    let chunk = if chunk == 0xff {
        usize::MAX
    } else {
        1 + usize::from(chunk)
    };
    if mode & RAW != 0 {
        raw_scan(kind, format, command_seq, rest, chunk);
        return;
    }
    let packets = split_packets(rest);
    tracker_alone(kind, format, &packets);

    // The same packets as the backend frames them (each complete, below the streaming
    // threshold by construction).
    let mut stream = Vec::new();
    for (i, (head, _)) in packets.iter().enumerate() {
        stream.extend_from_slice(&(head.len() as u32).to_le_bytes()[..3]);
        stream.push(command_seq.wrapping_add(1).wrapping_add(i as u8));
        stream.extend_from_slice(head);
    }
    let want = reference_events(kind, format, &stream);
    let chunked = scanner_events(kind, format, command_seq, &stream, chunk);
    assert_eq!(chunked, want, "scanner (chunks of {chunk}) vs tracker");
    let whole = scanner_events(kind, format, command_seq, &stream, usize::MAX);
    assert_eq!(whole, want, "scanner (all at once) vs tracker");
});

/// Packets as (head bytes, whether the tracker is told it is larger).
fn split_packets(mut rest: &[u8]) -> Vec<(&[u8], bool)> {
    let mut out = Vec::new();
    while let Some((&c, tail)) = rest.split_first() {
        rest = tail;
        let mut n = usize::from(c & 0x3f);
        if c & 0x40 != 0 {
            if let Some((&hi, tail)) = rest.split_first() {
                rest = tail;
                n += 64 * usize::from(hi);
            }
        }
        let n = n.min(rest.len());
        out.push((&rest[..n], c & 0x80 != 0));
        rest = &rest[n..];
    }
    out
}

fn decoders(head: &[u8]) {
    let _ = ok_status(head);
    let _ = eof_status(head);
    let _ = terminator_status(head);
    let _ = ok_insert_id(head);
    let _ = parse_err(head);
    let mut copy = head.to_vec();
    if add_ok_status(&mut copy, 0x0001) {
        assert_eq!(
            ok_status(&copy).map(|s| s & 1),
            Some(1),
            "status flag not set"
        );
    } else {
        assert_eq!(copy, head, "add_ok_status changed a packet it refused");
    }
}

/// The tracker alone, large packets given by their heads.
fn tracker_alone(kind: ResponseKind, format: ResultFormat, packets: &[(&[u8], bool)]) {
    let mut t = ResponseTracker::new(kind, format);
    assert!(t.feed(&[], 0).is_err(), "an empty packet is accepted");
    let mut t = ResponseTracker::new(kind, format);
    for (i, &(head, large)) in packets.iter().enumerate() {
        decoders(head);
        let len = if large && !head.is_empty() {
            LARGE[usize::from(head[0]) % LARGE.len()].max(head.len())
        } else {
            head.len()
        };
        match t.feed(head, len) {
            Err(v) => {
                let _ = v.to_string();
                return;
            }
            Ok(Step::Done { .. }) => return,
            Ok(Step::Continue) => {
                assert!(
                    kind != ResponseKind::Single,
                    "a single-packet command goes on after packet {i}"
                )
            }
            Ok(Step::LocalInfile) => {}
        }
    }
}

/// Where the response ends, as byte offsets in the stream.
#[derive(Debug, PartialEq, Eq)]
enum Event {
    LocalInfile(usize),
    Done(Option<u16>, usize),
    Violation(ProtocolViolation),
}

/// Each complete packet fed whole to a tracker, in order.
fn reference_events(kind: ResponseKind, format: ResultFormat, stream: &[u8]) -> Vec<Event> {
    let mut t = ResponseTracker::new(kind, format);
    let (mut pos, mut events) = (0, Vec::new());
    while let Some((len, _)) = parse_header(&stream[pos..]) {
        let payload = &stream[pos + HEADER_LEN..pos + HEADER_LEN + len];
        pos += HEADER_LEN + len;
        match t.feed(payload, len) {
            Ok(Step::Continue) => {}
            Ok(Step::LocalInfile) => events.push(Event::LocalInfile(pos)),
            Ok(Step::Done { status }) => {
                events.push(Event::Done(status, pos));
                break;
            }
            Err(v) => {
                events.push(Event::Violation(v));
                break;
            }
        }
    }
    events
}

/// The relay's loop: bytes arrive `chunk` at a time; what the scanner consumed is
/// forwarded and dropped, the rest kept for the next scan.
fn scanner_events(
    kind: ResponseKind,
    format: ResultFormat,
    command_seq: u8,
    stream: &[u8],
    chunk: usize,
) -> Vec<Event> {
    let mut scanner = ResponseScanner::new(kind, format, command_seq);
    let (mut buf, mut forwarded, mut received) = (Vec::new(), 0usize, 0usize);
    let mut events = Vec::new();
    while received < stream.len() {
        let n = chunk.min(stream.len() - received);
        buf.extend_from_slice(&stream[received..received + n]);
        received += n;
        loop {
            let scan = match scanner.scan(&buf) {
                Ok(s) => s,
                Err(v) => {
                    events.push(Event::Violation(v));
                    return events;
                }
            };
            assert!(scan.consumed <= buf.len(), "consumed more than given");
            buf.drain(..scan.consumed);
            forwarded += scan.consumed;
            match scan.finished {
                None => break,
                Some(Step::LocalInfile) => events.push(Event::LocalInfile(forwarded)),
                Some(Step::Done { status }) => {
                    events.push(Event::Done(status, forwarded));
                    return events;
                }
                Some(Step::Continue) => panic!("scan finished with Continue"),
            }
        }
    }
    events
}

/// Raw bytes through the scanner: large packets, continuations, anything.
fn raw_scan(kind: ResponseKind, format: ResultFormat, seq: u8, stream: &[u8], chunk: usize) {
    let mut scanner = ResponseScanner::new(kind, format, seq);
    let (mut buf, mut received) = (Vec::new(), 0usize);
    while received < stream.len() {
        let n = chunk.min(stream.len() - received);
        buf.extend_from_slice(&stream[received..received + n]);
        received += n;
        loop {
            let Ok(scan) = scanner.scan(&buf) else {
                return;
            };
            assert!(scan.consumed <= buf.len(), "consumed more than given");
            buf.drain(..scan.consumed);
            let _ = (scanner.mid_packet(), scanner.last_seq(), scanner.inserted());
            match scan.finished {
                None => break,
                Some(Step::Done { .. }) => return,
                Some(_) => {}
            }
        }
    }
}
