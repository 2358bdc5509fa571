//! Packets the router writes itself (OK, ERR, EOF-free auth packets) and the minimal
//! decoding of relayed packets: terminator status flags and server errors.
//!
//! Terminator parsing is hand-written rather than `mysql_common::OkPacketDeserializer`
//! because it runs for every relayed result and needs only the status flags: it does not
//! allocate or decode the info string / session-state payload.

use mysql_common::constants::CapabilityFlags;
use mysql_common::io::ParseBuf;
use mysql_common::packets::{ErrPacket, ServerError, SqlState};
use mysql_common::proto::{MyDeserialize, MySerialize};

/// First payload byte of an OK packet.
pub const OK_HEADER: u8 = 0x00;
/// First payload byte of an EOF packet (and of a DEPRECATE_EOF OK terminator).
pub const EOF_HEADER: u8 = 0xfe;
/// First payload byte of an ERR packet.
pub const ERR_HEADER: u8 = 0xff;
/// First payload byte of a LOCAL INFILE request.
pub const LOCAL_INFILE_HEADER: u8 = 0xfb;

/// Status flag: the OK packet carries session-state information (CLIENT_SESSION_TRACK).
pub const SERVER_SESSION_STATE_CHANGED: u16 = 0x4000;

/// Builds an OK packet payload (protocol 4.1 layout, no info, no session state).
pub fn ok_packet(affected_rows: u64, last_insert_id: u64, status: u16, warnings: u16) -> Vec<u8> {
    // It carries no session-state information: never the flag that announces some.
    let status = status & !SERVER_SESSION_STATE_CHANGED;
    let mut out = Vec::with_capacity(11);
    out.push(OK_HEADER);
    put_lenenc_int(&mut out, affected_rows);
    put_lenenc_int(&mut out, last_insert_id);
    out.extend_from_slice(&status.to_le_bytes());
    out.extend_from_slice(&warnings.to_le_bytes());
    out
}

/// Builds an ERR packet payload with a SQLSTATE (protocol 4.1 layout).
pub fn err_packet(code: u16, sql_state: &[u8; 5], message: &str) -> Vec<u8> {
    let err = ErrPacket::Error(ServerError::new(
        code,
        Some(SqlState::new(*sql_state)),
        message.as_bytes(),
    ));
    let mut out = Vec::with_capacity(9 + message.len());
    err.serialize(&mut out);
    out
}

/// A server error decoded from an ERR packet payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerErrorInfo {
    /// The MySQL error code.
    pub code: u16,
    /// The SQLSTATE, when the packet had one.
    pub sql_state: String,
    /// The message text.
    pub message: String,
}

impl std::fmt::Display for ServerErrorInfo {
    /// As the mariadb client prints it: `ERROR 1049 (42000): Unknown database 'x'`, without
    /// the parentheses when the packet had no SQLSTATE (an ERR sent instead of a greeting).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.sql_state.as_str() {
            "" => write!(f, "ERROR {}: {}", self.code, self.message),
            state => write!(f, "ERROR {} ({state}): {}", self.code, self.message),
        }
    }
}

/// Decodes an ERR packet payload; `None` if it is not a well-formed one.
/// A server that refuses a connection before its greeting (e.g. 1040 Too many
/// connections) sends the pre-4.1 layout without a SQLSTATE: both layouts are accepted.
pub fn parse_err(payload: &[u8]) -> Option<ServerErrorInfo> {
    let flags = if payload.get(3) == Some(&b'#') {
        CapabilityFlags::CLIENT_PROTOCOL_41
    } else {
        CapabilityFlags::empty()
    };
    let mut buf = ParseBuf(payload);
    match ErrPacket::deserialize(flags, &mut buf).ok()? {
        ErrPacket::Error(e) => Some(ServerErrorInfo {
            code: e.error_code(),
            sql_state: e
                .sql_state_ref()
                .map(|s| s.as_str().into_owned())
                .unwrap_or_default(),
            message: e.message_str().into_owned(),
        }),
        ErrPacket::Progress(_) => None,
    }
}

/// Appends a length-encoded integer.
pub fn put_lenenc_int(out: &mut Vec<u8>, value: u64) {
    match value {
        0..=250 => out.push(value as u8),
        251..=0xffff => {
            out.push(0xfc);
            out.extend_from_slice(&(value as u16).to_le_bytes());
        }
        0x1_0000..=0xff_ffff => {
            out.push(0xfd);
            out.extend_from_slice(&value.to_le_bytes()[..3]);
        }
        _ => {
            out.push(0xfe);
            out.extend_from_slice(&value.to_le_bytes());
        }
    }
}

/// Reads a length-encoded integer at `pos`; returns the value and the position after it.
/// `None` if truncated or if the first byte is not a length prefix (0xfb, 0xff).
#[inline]
pub fn read_lenenc_int(buf: &[u8], pos: usize) -> Option<(u64, usize)> {
    let first = *buf.get(pos)?;
    let width = match first {
        0..=0xfa => return Some((u64::from(first), pos + 1)),
        0xfc => 2,
        0xfd => 3,
        0xfe => 8,
        _ => return None,
    };
    let bytes = buf.get(pos + 1..pos + 1 + width)?;
    let mut value = 0u64;
    for (i, b) in bytes.iter().enumerate() {
        value |= u64::from(*b) << (8 * i);
    }
    Some((value, pos + 1 + width))
}

/// Whether a packet (first byte + payload length) is an old-style EOF packet.
#[inline]
pub fn is_eof(first: u8, len: usize) -> bool {
    first == EOF_HEADER && len < 9
}

/// Server status flags of an EOF packet payload (`0xfe, warnings u16, status u16`).
#[inline]
pub fn eof_status(payload: &[u8]) -> Option<u16> {
    let b = payload.get(3..5)?;
    Some(u16::from_le_bytes([b[0], b[1]]))
}

/// Whether a packet (first byte + payload length) ends rows or metadata when
/// CLIENT_DEPRECATE_EOF is in force: an OK packet with the 0xfe header (or, after a
/// cursor's metadata, an old-style EOF). A row starting with 0xfe is at least 16 MiB.
#[inline]
pub fn is_ok_terminator(first: u8, len: usize) -> bool {
    first == EOF_HEADER && len < 0xff_ffff
}

/// Server status flags of a 0xfe-headed terminator: an old-style EOF (5 bytes) or an OK
/// packet with the 0xfe header (CLIENT_DEPRECATE_EOF; at least 7 bytes).
#[inline]
pub fn terminator_status(payload: &[u8]) -> Option<u16> {
    if payload.len() < 7 {
        eof_status(payload)
    } else {
        ok_status(payload)
    }
}

/// The last insert id of an OK packet payload (its AUTO_INCREMENT value, 0 if none).
pub fn ok_insert_id(payload: &[u8]) -> Option<u64> {
    let (_, pos) = read_lenenc_int(payload, 1)?;
    read_lenenc_int(payload, pos).map(|(id, _)| id)
}

/// The warning count of an OK packet or a 0xfe-headed terminator (an old-style EOF or an
/// OK with the 0xfe header); 0 when the packet is too short to say.
pub fn terminator_warnings(payload: &[u8]) -> u16 {
    let at = if payload.first() == Some(&EOF_HEADER) && payload.len() < 7 {
        Some(1)
    } else {
        read_lenenc_int(payload, 1)
            .and_then(|(_, pos)| read_lenenc_int(payload, pos))
            .map(|(_, pos)| pos + 2)
    };
    at.and_then(|at| payload.get(at..at + 2))
        .map_or(0, |b| u16::from_le_bytes([b[0], b[1]]))
}

/// Sets extra status flags in an OK packet payload in place (the router's view of the
/// session, e.g. IN_TRANS while BEGIN is pending); false if it is not a whole OK packet.
pub fn add_ok_status(payload: &mut [u8], flags: u16) -> bool {
    if payload.first() != Some(&OK_HEADER) {
        return false;
    }
    let Some((_, pos)) = read_lenenc_int(payload, 1) else {
        return false;
    };
    let Some((_, pos)) = read_lenenc_int(payload, pos) else {
        return false;
    };
    match payload.get_mut(pos..pos + 2) {
        Some(b) => {
            let status = u16::from_le_bytes([b[0], b[1]]) | flags;
            b.copy_from_slice(&status.to_le_bytes());
            true
        }
        None => false,
    }
}

/// Server status flags of an OK packet payload (header, affected rows, last insert id, status).
#[inline]
pub fn ok_status(payload: &[u8]) -> Option<u16> {
    let (_, pos) = read_lenenc_int(payload, 1)?;
    let (_, pos) = read_lenenc_int(payload, pos)?;
    let b = payload.get(pos..pos + 2)?;
    Some(u16::from_le_bytes([b[0], b[1]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ok_packet_status_roundtrip() {
        let p = ok_packet(300, 70_000, 0x0003, 2);
        assert_eq!(ok_status(&p), Some(0x0003));
        assert_eq!(read_lenenc_int(&p, 1), Some((300, 4)));
        assert_eq!(ok_insert_id(&p), Some(70_000));
        assert_eq!(terminator_warnings(&p), 2);
        assert_eq!(terminator_warnings(&[EOF_HEADER, 3, 0, 2, 0]), 3);
        let mut q = p.clone();
        assert!(add_ok_status(&mut q, 0x0001));
        assert_eq!(ok_status(&q), Some(0x0003));
        assert!(add_ok_status(&mut q, 0x0100));
        assert_eq!(ok_status(&q), Some(0x0103));
        assert!(!add_ok_status(&mut [0xff, 0, 0], 1));
        assert!(!add_ok_status(&mut [0x00, 0xfc], 1));
    }

    #[test]
    fn err_packet_roundtrip() {
        let p = err_packet(1045, b"28000", "Access denied");
        assert_eq!(p[0], ERR_HEADER);
        let e = parse_err(&p).unwrap();
        assert_eq!(e.code, 1045);
        assert_eq!(e.sql_state, "28000");
        assert_eq!(e.message, "Access denied");
    }

    #[test]
    fn pre_greeting_error_without_sqlstate() {
        // 0xff, code 1040, message: what MariaDB sends instead of a greeting when full.
        let mut p = vec![0xff, 0x10, 0x04];
        p.extend_from_slice(b"Too many connections");
        let e = parse_err(&p).unwrap();
        assert_eq!(
            (e.code, e.sql_state.as_str(), e.message.as_str()),
            (1040, "", "Too many connections")
        );
    }

    #[test]
    fn truncated_inputs_do_not_panic() {
        assert_eq!(ok_status(&[0]), None);
        assert_eq!(ok_status(&[0, 0xfc, 1]), None);
        assert_eq!(eof_status(&[0xfe, 0]), None);
        assert_eq!(read_lenenc_int(&[0xfe, 1, 2], 0), None);
        assert_eq!(parse_err(&[0xff]), None);
        assert_eq!(parse_err(&[]), None);
    }
}
