//! The MySQL packet header and payload splitting, as pure functions over byte slices.

use bytes::{BufMut, BytesMut};

/// Size of a packet header: 3 bytes of payload length and 1 byte of sequence id.
pub const HEADER_LEN: usize = 4;

/// Largest payload of one physical packet; a payload of exactly this length is
/// followed by a continuation packet (possibly empty).
pub const MAX_PAYLOAD_LEN: usize = 0xFF_FFFF;

/// Reads a packet header from the start of `buf`: `(payload length, sequence id)`,
/// or `None` when fewer than 4 bytes are there.
#[inline]
pub fn parse_header(buf: &[u8]) -> Option<(usize, u8)> {
    if buf.len() < HEADER_LEN {
        return None;
    }
    let len = usize::from(buf[0]) | usize::from(buf[1]) << 8 | usize::from(buf[2]) << 16;
    Some((len, buf[3]))
}

/// Appends `payload` to `out` as one logical packet starting at sequence id `seq`,
/// split into 16 MiB - 1 chunks as the protocol requires. Returns the next sequence id.
pub fn write_packet(out: &mut BytesMut, mut seq: u8, payload: &[u8]) -> u8 {
    let mut rest = payload;
    loop {
        let chunk = rest.len().min(MAX_PAYLOAD_LEN);
        out.reserve(HEADER_LEN + chunk);
        // The chunk length fits in 24 bits by construction.
        out.put_uint_le(chunk as u64, 3);
        out.put_u8(seq);
        out.put_slice(&rest[..chunk]);
        seq = seq.wrapping_add(1);
        rest = &rest[chunk..];
        // A chunk of exactly MAX_PAYLOAD_LEN must be followed by another (maybe empty) one.
        if chunk < MAX_PAYLOAD_LEN {
            return seq;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_roundtrip() {
        let mut out = BytesMut::new();
        let next = write_packet(&mut out, 7, b"hello");
        assert_eq!(next, 8);
        assert_eq!(parse_header(&out), Some((5, 7)));
        assert_eq!(&out[4..], b"hello");
        assert_eq!(parse_header(&out[..3]), None);
    }

    #[test]
    fn large_payload_is_split_with_trailing_empty_packet() {
        let payload = vec![0xAB; MAX_PAYLOAD_LEN];
        let mut out = BytesMut::new();
        let next = write_packet(&mut out, 0, &payload);
        assert_eq!(next, 2);
        assert_eq!(parse_header(&out), Some((MAX_PAYLOAD_LEN, 0)));
        let tail = &out[HEADER_LEN + MAX_PAYLOAD_LEN..];
        assert_eq!(parse_header(tail), Some((0, 1)));
        assert_eq!(tail.len(), HEADER_LEN);
    }

    #[test]
    fn payload_over_max_splits_in_two() {
        let payload = vec![1u8; MAX_PAYLOAD_LEN + 10];
        let mut out = BytesMut::new();
        assert_eq!(write_packet(&mut out, 250, &payload), 252);
        let tail = &out[HEADER_LEN + MAX_PAYLOAD_LEN..];
        assert_eq!(parse_header(tail), Some((10, 251)));
    }
}
