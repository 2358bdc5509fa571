//! The relay's hot loop without the I/O: scans a buffer of backend bytes packet header by
//! packet header, feeds packet heads to the [`ResponseTracker`], and says how many bytes
//! may be forwarded to the client and whether the response is complete. Small packets are
//! classified whole; packets of [`STREAM_THRESHOLD`] bytes or more, and continuation
//! packets of payloads over 16 MiB, are passed through as their bytes arrive.

use crate::net::{parse_header, HEADER_LEN, MAX_PAYLOAD_LEN};

use super::response::{ProtocolViolation, ResponseKind, ResponseTracker, ResultFormat, Step};

/// Packets at least this large are streamed to the client as their bytes arrive instead
/// of being buffered whole; they are rows or data, never terminators.
pub const STREAM_THRESHOLD: usize = 64 * 1024;

/// The outcome of scanning the bytes buffered so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scan {
    /// Bytes from the start of the buffer that may be forwarded now.
    pub consumed: usize,
    /// Set when a packet ended the response or asked for a LOCAL INFILE upload; then
    /// `consumed` ends exactly after that packet.
    pub finished: Option<Step>,
    /// When more bytes are needed to classify a packet: how many in total (header
    /// included) the incomplete packet has, counted from `consumed`, so the caller can
    /// reserve buffer space once.
    pub incomplete_packet: usize,
}

/// Scans one response, buffer after buffer.
#[derive(Debug, Clone)]
pub struct ResponseScanner {
    tracker: ResponseTracker,
    /// Bytes of the current physical packet still to pass through unexamined.
    passthrough: usize,
    /// The last physical packet was MAX_PAYLOAD_LEN long: the next one continues it.
    continuation: bool,
    /// A step decided on the head of a long logical packet, applied when it ends.
    pending: Option<Step>,
    last_seq: u8,
}

impl ResponseScanner {
    /// Whether an OK of this response carried a non-zero last insert id.
    pub fn inserted(&self) -> bool {
        self.tracker.inserted()
    }

    /// Whether a terminator of this response reported warnings.
    pub fn warned(&self) -> bool {
        self.tracker.warned()
    }

    /// A scanner for the response to a command whose last packet had `command_seq`, on a
    /// connection whose result sets are framed as `format`.
    pub fn new(kind: ResponseKind, format: ResultFormat, command_seq: u8) -> Self {
        Self {
            tracker: ResponseTracker::new(kind, format),
            passthrough: 0,
            continuation: false,
            pending: None,
            last_seq: command_seq,
        }
    }

    /// Sequence id of the last packet whose header was scanned.
    pub fn last_seq(&self) -> u8 {
        self.last_seq
    }

    /// True while a packet has been forwarded only in part: nothing else (such as an
    /// ERR packet) may be sent to the client now.
    pub fn mid_packet(&self) -> bool {
        self.passthrough > 0 || self.continuation
    }

    /// Scans `buf`, the unforwarded backend bytes (they always start at a packet
    /// boundary or inside a packet being passed through).
    #[inline]
    pub fn scan(&mut self, buf: &[u8]) -> Result<Scan, ProtocolViolation> {
        let mut pos = 0;
        loop {
            if self.passthrough > 0 {
                let n = self.passthrough.min(buf.len() - pos);
                pos += n;
                self.passthrough -= n;
                if self.passthrough > 0 {
                    return Ok(self.partial(pos, 0));
                }
                if let Some(step) = self.end_of_physical_packet() {
                    return Ok(Scan {
                        consumed: pos,
                        finished: Some(step),
                        incomplete_packet: 0,
                    });
                }
                continue;
            }
            let Some((len, seq)) = parse_header(&buf[pos..]) else {
                return Ok(self.partial(pos, 0));
            };
            let available = buf.len() - pos - HEADER_LEN;
            if self.continuation {
                // A continuation of a logical packet classified already: pass it through.
                self.last_seq = seq;
                self.continuation = len == MAX_PAYLOAD_LEN;
                self.passthrough = len;
                pos += HEADER_LEN;
                if len == 0 {
                    if let Some(step) = self.end_of_physical_packet() {
                        return Ok(Scan {
                            consumed: pos,
                            finished: Some(step),
                            incomplete_packet: 0,
                        });
                    }
                }
                continue;
            }
            if available < len {
                if len < STREAM_THRESHOLD {
                    // Small packets are classified whole: wait for the rest.
                    return Ok(self.partial(pos, HEADER_LEN + len));
                }
                if available == 0 {
                    // A large packet is classified by its first byte: wait for it.
                    return Ok(self.partial(pos, 0));
                }
                // Large and incomplete: classify by its head, then stream it.
                let head = &buf[pos + HEADER_LEN..];
                self.pending = Some(self.tracker.feed(head, len)?);
                self.last_seq = seq;
                self.continuation = len == MAX_PAYLOAD_LEN;
                self.passthrough = len;
                pos += HEADER_LEN;
                continue;
            }
            let step = self
                .tracker
                .feed(&buf[pos + HEADER_LEN..pos + HEADER_LEN + len], len)?;
            self.last_seq = seq;
            pos += HEADER_LEN + len;
            self.continuation = len == MAX_PAYLOAD_LEN;
            if self.continuation {
                self.pending = Some(step);
            } else if step != Step::Continue {
                return Ok(Scan {
                    consumed: pos,
                    finished: Some(step),
                    incomplete_packet: 0,
                });
            }
        }
    }

    fn partial(&self, consumed: usize, incomplete_packet: usize) -> Scan {
        Scan {
            consumed,
            finished: None,
            incomplete_packet,
        }
    }

    /// A physical packet was fully passed through: if it ended its logical packet, the
    /// step decided on that packet's head takes effect.
    fn end_of_physical_packet(&mut self) -> Option<Step> {
        if self.continuation {
            return None;
        }
        self.pending.take().filter(|s| *s != Step::Continue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::write_packet;
    use crate::protocol::packets::ok_packet;
    use bytes::BytesMut;

    fn eof(status: u16) -> Vec<u8> {
        let mut p = vec![0xfe, 0, 0];
        p.extend_from_slice(&status.to_le_bytes());
        p
    }

    /// A text result set with one column and the given rows, framed from sequence 1.
    fn result_set(rows: &[Vec<u8>], final_status: u16) -> Vec<u8> {
        let mut out = BytesMut::new();
        let mut seq = 1;
        seq = write_packet(&mut out, seq, &[1]);
        seq = write_packet(
            &mut out,
            seq,
            b"\x03def\x00\x00\x00\x01a\x00\x0c\x3f\x00\x0b\x00\x00\x00\x03\x00\x00\x00\x00\x00",
        );
        seq = write_packet(&mut out, seq, &eof(2));
        for row in rows {
            seq = write_packet(&mut out, seq, row);
        }
        write_packet(&mut out, seq, &eof(final_status));
        out.to_vec()
    }

    /// Feeds `stream` in chunks of `chunk` bytes the way the relay does (unconsumed bytes
    /// stay buffered); returns the bytes forwarded before completion and the final step.
    fn run(stream: &[u8], chunk: usize) -> (usize, Step) {
        let mut scanner = ResponseScanner::new(ResponseKind::Query, ResultFormat::default(), 0);
        let mut buffered: Vec<u8> = Vec::new();
        let mut forwarded = 0;
        let mut fed = 0;
        loop {
            let scan = scanner.scan(&buffered).unwrap();
            forwarded += scan.consumed;
            buffered.drain(..scan.consumed);
            if let Some(step) = scan.finished {
                assert!(
                    buffered.is_empty(),
                    "bytes left after the end of the response"
                );
                return (forwarded, step);
            }
            assert!(
                fed < stream.len(),
                "stream ended but the response is not complete"
            );
            let end = (fed + chunk).min(stream.len());
            buffered.extend_from_slice(&stream[fed..end]);
            fed = end;
        }
    }

    #[test]
    fn any_chunking_forwards_exactly_the_response() {
        let rows: Vec<Vec<u8>> = (0..50u8)
            .map(|i| {
                let mut r = vec![3];
                r.extend_from_slice(&[b'a' + (i % 26); 3]);
                r
            })
            .collect();
        let stream = result_set(&rows, 0x22);
        for chunk in [1, 2, 3, 4, 5, 7, 16, 64, 1000, stream.len()] {
            assert_eq!(
                run(&stream, chunk),
                (stream.len(), Step::Done { status: Some(0x22) }),
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn large_rows_are_streamed_and_continuations_skipped() {
        // A 100 KiB row (streamed) and a row of exactly 16 MiB - 1 + 10 bytes (a full
        // packet, a continuation) whose continuation starts with 0xfe like an EOF would.
        let mut big = vec![0xfc, 0xa0, 0x86];
        big.resize(100 * 1024, b'x');
        let mut huge = vec![0xfe];
        huge.extend_from_slice(&((MAX_PAYLOAD_LEN + 1) as u64).to_le_bytes());
        huge.resize(MAX_PAYLOAD_LEN + 10, 0xfe);
        let stream = result_set(&[big, huge, vec![1, b'z']], 2);
        for chunk in [4096, 65_536, 1 << 20, stream.len()] {
            assert_eq!(
                run(&stream, chunk),
                (stream.len(), Step::Done { status: Some(2) }),
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn single_ok_and_incomplete_hint() {
        let mut out = BytesMut::new();
        write_packet(&mut out, 1, &ok_packet(1, 0, 2, 0));
        let mut scanner = ResponseScanner::new(ResponseKind::Query, ResultFormat::default(), 0);
        let scan = scanner.scan(&out[..6]).unwrap();
        assert_eq!(
            scan,
            Scan {
                consumed: 0,
                finished: None,
                incomplete_packet: out.len()
            }
        );
        let scan = scanner.scan(&out).unwrap();
        assert_eq!(scan.consumed, out.len());
        assert_eq!(scan.finished, Some(Step::Done { status: Some(2) }));
        assert_eq!(scanner.last_seq(), 1);
        assert!(!scanner.mid_packet());
    }
}
