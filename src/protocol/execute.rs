//! The server-side view of COM_STMT_EXECUTE and MariaDB's COM_STMT_BULK_EXECUTE that
//! routing needs (mysql_common has no parser for them): the statement id, and the value
//! of one parameter — the shard key — read without decoding the others.
//!
//! COM_STMT_EXECUTE: 0x17, statement id u32, flags u8, iteration count u32; then, when the
//! statement has parameters: NULL bitmap ((n + 7) / 8 bytes), new-params-bound flag u8,
//! if set n × 2 type bytes (type, flags with 0x80 = unsigned), then the values of the
//! parameters that are neither NULL nor sent by COM_STMT_SEND_LONG_DATA, in order.
//!
//! COM_STMT_BULK_EXECUTE (MariaDB's array binding): 0xfa, statement id u32, flags u16
//! ([`BULK_SEND_TYPES`]: n × 2 type bytes follow), then rows up to the end of the
//! packet: for each parameter an indicator byte (0 a value follows, 1 NULL, 2 DEFAULT,
//! 3 IGNORE) and, after 0, the value in the binary format of COM_STMT_EXECUTE.

/// Why an execute packet could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ExecuteError {
    /// The packet is shorter than its layout requires.
    #[error("malformed COM_STMT_EXECUTE packet")]
    Malformed,
    /// Parameter types were never sent for this statement.
    #[error("COM_STMT_EXECUTE without parameter types for a statement that never had them")]
    NoTypes,
}

/// A parameter value as sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamValue<'a> {
    /// SQL NULL.
    Null,
    /// An integer type.
    Int(i128),
    /// A string, decimal, blob or other length-encoded value (raw bytes).
    Bytes(&'a [u8]),
    /// Sent by COM_STMT_SEND_LONG_DATA, not in this packet.
    LongData,
    /// A float, double or temporal value.
    Other,
    /// No value: a bulk row's DEFAULT or IGNORE indicator.
    Absent,
}

/// COM_STMT_BULK_EXECUTE flag: the parameter types follow the flags.
pub const BULK_SEND_TYPES: u16 = 128;

/// The fixed part of a COM_STMT_BULK_EXECUTE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BulkHead<'a> {
    /// The statement id.
    pub stmt_id: u32,
    /// Bulk flags.
    pub flags: u16,
    /// Types sent with this packet ([`BULK_SEND_TYPES`]).
    pub new_types: Option<&'a [u8]>,
    /// Offset of the first row.
    pub rows_at: usize,
}

/// Reads the fixed part of a bulk execute for a statement with `params` parameters.
pub fn parse_bulk_head(payload: &[u8], params: u16) -> Result<BulkHead<'_>, ExecuteError> {
    let stmt_id = stmt_id(payload).ok_or(ExecuteError::Malformed)?;
    let flags = payload
        .get(5..7)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
        .ok_or(ExecuteError::Malformed)?;
    let mut pos = 7;
    let new_types = if flags & BULK_SEND_TYPES != 0 {
        let len = 2 * usize::from(params);
        let t = payload.get(pos..pos + len).ok_or(ExecuteError::Malformed)?;
        pos += len;
        Some(t)
    } else {
        None
    };
    Ok(BulkHead {
        stmt_id,
        flags,
        new_types,
        rows_at: pos,
    })
}

/// The values of parameter `index` in every row of a bulk execute, in row order. `types`
/// are the types in force for the statement's `params` parameters. A bulk execute with
/// no row is malformed (MariaDB's connectors never send one).
pub fn bulk_param_values<'a>(
    payload: &'a [u8],
    head: &BulkHead<'_>,
    types: &[u8],
    params: u16,
    index: u16,
) -> Result<Vec<ParamValue<'a>>, ExecuteError> {
    if params == 0 || index >= params || types.len() < 2 * usize::from(params) {
        return Err(ExecuteError::NoTypes);
    }
    let mut pos = head.rows_at;
    let mut values = Vec::new();
    while pos < payload.len() {
        for i in 0..params {
            let indicator = *payload.get(pos).ok_or(ExecuteError::Malformed)?;
            pos += 1;
            let (value, len) = match indicator {
                0 => {
                    let at = 2 * usize::from(i);
                    read_value(payload, pos, types[at], types[at + 1] & 0x80 != 0)?
                }
                1 => (ParamValue::Null, 0),
                2 | 3 => (ParamValue::Absent, 0),
                _ => return Err(ExecuteError::Malformed),
            };
            if i == index {
                values.push(value);
            }
            pos = pos.checked_add(len).ok_or(ExecuteError::Malformed)?;
        }
    }
    if values.is_empty() {
        return Err(ExecuteError::Malformed);
    }
    Ok(values)
}

/// A bulk execute with `types` put in (and [`BULK_SEND_TYPES`] set), for a statement
/// copy that never received them.
pub fn with_bulk_types(payload: &[u8], types: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + types.len());
    out.extend_from_slice(payload.get(..5).unwrap_or(payload));
    let flags = payload
        .get(5..7)
        .map_or(0, |b| u16::from_le_bytes([b[0], b[1]]));
    out.extend_from_slice(&(flags | BULK_SEND_TYPES).to_le_bytes());
    out.extend_from_slice(types);
    out.extend_from_slice(payload.get(7..).unwrap_or_default());
    out
}

/// The fixed part of a COM_STMT_EXECUTE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecuteHead<'a> {
    /// The statement id.
    pub stmt_id: u32,
    /// Cursor flags.
    pub flags: u8,
    /// The NULL bitmap.
    pub null_bitmap: &'a [u8],
    /// Types sent with this packet, if the new-params-bound flag is set.
    pub new_types: Option<&'a [u8]>,
    /// Offset of the first value.
    pub values_at: usize,
}

/// The statement id of a COM_STMT_EXECUTE / FETCH / CLOSE / RESET / SEND_LONG_DATA payload.
pub fn stmt_id(payload: &[u8]) -> Option<u32> {
    let b = payload.get(1..5)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// Replaces the statement id of such a payload in place.
pub fn set_stmt_id(payload: &mut [u8], id: u32) -> bool {
    match payload.get_mut(1..5) {
        Some(slot) => {
            slot.copy_from_slice(&id.to_le_bytes());
            true
        }
        None => false,
    }
}

/// Reads the fixed part of an execute packet for a statement with `params` parameters.
pub fn parse_head(payload: &[u8], params: u16) -> Result<ExecuteHead<'_>, ExecuteError> {
    let stmt_id = stmt_id(payload).ok_or(ExecuteError::Malformed)?;
    let flags = *payload.get(5).ok_or(ExecuteError::Malformed)?;
    let mut pos = 10;
    if payload.len() < pos {
        return Err(ExecuteError::Malformed);
    }
    if params == 0 {
        return Ok(ExecuteHead {
            stmt_id,
            flags,
            null_bitmap: &[],
            new_types: None,
            values_at: pos,
        });
    }
    let n = usize::from(params);
    let bitmap_len = n.div_ceil(8);
    let null_bitmap = payload
        .get(pos..pos + bitmap_len)
        .ok_or(ExecuteError::Malformed)?;
    pos += bitmap_len;
    let bound = *payload.get(pos).ok_or(ExecuteError::Malformed)?;
    pos += 1;
    let new_types = if bound == 1 {
        let t = payload
            .get(pos..pos + 2 * n)
            .ok_or(ExecuteError::Malformed)?;
        pos += 2 * n;
        Some(t)
    } else {
        None
    };
    Ok(ExecuteHead {
        stmt_id,
        flags,
        null_bitmap,
        new_types,
        values_at: pos,
    })
}

/// Reads parameter `index`. `types` are the types in force (this packet's, or those of
/// an earlier execute of the same statement); `long_data(i)` tells whether parameter `i`
/// was sent by COM_STMT_SEND_LONG_DATA (such parameters have no value in the packet).
pub fn param_value<'a>(
    payload: &'a [u8],
    head: &ExecuteHead<'_>,
    types: &[u8],
    index: u16,
    long_data: impl Fn(u16) -> bool,
) -> Result<ParamValue<'a>, ExecuteError> {
    let mut pos = head.values_at;
    for i in 0..=index {
        let is_null = head
            .null_bitmap
            .get(usize::from(i / 8))
            .is_some_and(|b| b & (1 << (i % 8)) != 0);
        let ty = types
            .get(2 * usize::from(i)..2 * usize::from(i) + 2)
            .ok_or(ExecuteError::NoTypes)?;
        let (value, len) = if is_null {
            (ParamValue::Null, 0)
        } else if long_data(i) {
            (ParamValue::LongData, 0)
        } else {
            read_value(payload, pos, ty[0], ty[1] & 0x80 != 0)?
        };
        if i == index {
            return Ok(value);
        }
        pos = pos.checked_add(len).ok_or(ExecuteError::Malformed)?;
    }
    Err(ExecuteError::Malformed)
}

fn read_value(
    payload: &[u8],
    pos: usize,
    ty: u8,
    unsigned: bool,
) -> Result<(ParamValue<'_>, usize), ExecuteError> {
    let int = |width: usize| -> Result<(ParamValue<'_>, usize), ExecuteError> {
        let b = payload
            .get(pos..pos.saturating_add(width))
            .ok_or(ExecuteError::Malformed)?;
        let mut raw = [0u8; 8];
        raw[..width].copy_from_slice(b);
        let u = u64::from_le_bytes(raw);
        let v = if unsigned {
            i128::from(u)
        } else {
            // Sign-extend from `width` bytes.
            let shift = 64 - 8 * width as u32;
            i128::from(((u << shift) as i64) >> shift)
        };
        Ok((ParamValue::Int(v), width))
    };
    match ty {
        0x01 => int(1),
        0x02 | 0x0d => int(2),
        0x03 | 0x09 => int(4),
        0x08 => int(8),
        0x04 => Ok((ParamValue::Other, 4)),
        0x05 => Ok((ParamValue::Other, 8)),
        0x06 => Ok((ParamValue::Null, 0)),
        0x07 | 0x0a | 0x0b | 0x0c | 0x0e => {
            let n = usize::from(*payload.get(pos).ok_or(ExecuteError::Malformed)?);
            if payload.len() < pos.saturating_add(1 + n) {
                return Err(ExecuteError::Malformed);
            }
            Ok((ParamValue::Other, 1 + n))
        }
        _ => {
            let (len, start) =
                super::packets::read_lenenc_int(payload, pos).ok_or(ExecuteError::Malformed)?;
            // A length from the packet: checked, never added blindly (it may be near
            // u64::MAX; found by the `stmt_execute` fuzz target).
            let end = usize::try_from(len)
                .ok()
                .and_then(|len| start.checked_add(len))
                .ok_or(ExecuteError::Malformed)?;
            let bytes = payload.get(start..end).ok_or(ExecuteError::Malformed)?;
            Ok((ParamValue::Bytes(bytes), end - pos))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bulk execute of statement 3 with (LONGLONG userid, VARCHAR body) rows.
    fn bulk(rows: &[(Option<i64>, &str)], with_types: bool) -> Vec<u8> {
        let mut p = vec![0xfa, 3, 0, 0, 0];
        let flags: u16 = if with_types { BULK_SEND_TYPES } else { 0 };
        p.extend_from_slice(&flags.to_le_bytes());
        if with_types {
            p.extend_from_slice(&[0x08, 0x00, 0xfd, 0x00]);
        }
        for (id, body) in rows {
            match id {
                Some(id) => {
                    p.push(0);
                    p.extend_from_slice(&id.to_le_bytes());
                }
                None => p.push(1),
            }
            p.push(0);
            p.push(body.len() as u8);
            p.extend_from_slice(body.as_bytes());
        }
        p
    }

    #[test]
    fn bulk_rows_give_every_value_of_one_parameter() {
        let p = bulk(&[(Some(5), "a"), (None, "bb"), (Some(7), "")], true);
        let head = parse_bulk_head(&p, 2).unwrap();
        assert_eq!((head.stmt_id, head.flags), (3, BULK_SEND_TYPES));
        let types = head.new_types.unwrap().to_vec();
        assert_eq!(
            bulk_param_values(&p, &head, &types, 2, 0).unwrap(),
            vec![ParamValue::Int(5), ParamValue::Null, ParamValue::Int(7)]
        );
        assert_eq!(
            bulk_param_values(&p, &head, &types, 2, 1).unwrap(),
            vec![
                ParamValue::Bytes(b"a"),
                ParamValue::Bytes(b"bb"),
                ParamValue::Bytes(b"")
            ]
        );
        // Without types in the packet, those of an earlier execute; put back in for a
        // copy that never saw them, the packet is the one that carried them.
        let bare = bulk(&[(Some(5), "a")], false);
        let head = parse_bulk_head(&bare, 2).unwrap();
        assert!(head.new_types.is_none());
        assert_eq!(
            bulk_param_values(&bare, &head, &types, 2, 0).unwrap(),
            vec![ParamValue::Int(5)]
        );
        assert_eq!(
            with_bulk_types(&bare, &types),
            bulk(&[(Some(5), "a")], true)
        );
    }

    #[test]
    fn bad_bulk_packets_are_malformed_never_a_panic() {
        let types = [0x08, 0x00, 0xfd, 0x00];
        let full = bulk(&[(Some(5), "abc")], false);
        for cut in 0..full.len() {
            let p = &full[..cut];
            if let Ok(head) = parse_bulk_head(p, 2) {
                assert!(
                    bulk_param_values(p, &head, &types, 2, 0).is_err(),
                    "cut at {cut}"
                );
            }
        }
        // An unknown indicator, no types, an index beyond the parameters.
        let mut odd = bulk(&[(Some(5), "a")], false);
        odd[7] = 9;
        let head = parse_bulk_head(&odd, 2).unwrap();
        assert_eq!(
            bulk_param_values(&odd, &head, &types, 2, 0),
            Err(ExecuteError::Malformed)
        );
        assert_eq!(
            bulk_param_values(&full, &head, &[], 2, 0),
            Err(ExecuteError::NoTypes)
        );
        assert_eq!(
            bulk_param_values(&full, &head, &types, 2, 2),
            Err(ExecuteError::NoTypes)
        );
    }

    #[test]
    fn a_length_near_u64_max_is_malformed_not_a_panic() {
        // The fuzz target's regression (fuzz/regressions/stmt_execute): one VARCHAR
        // parameter whose length-encoded length is 0xfe ff ff ff ff ff ff ff ff.
        let mut p = vec![0x17, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0xfd, 0];
        p.extend_from_slice(&[0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
        let head = parse_head(&p, 1).unwrap();
        let types = head.new_types.unwrap_or_default().to_vec();
        assert_eq!(
            param_value(&p, &head, &types, 0, |_| false),
            Err(ExecuteError::Malformed)
        );
    }

    /// An execute of statement 7 with params (LONGLONG 42, VARCHAR "12345", NULL, unsigned TINY 200).
    fn sample() -> Vec<u8> {
        let mut p = vec![0x17, 7, 0, 0, 0, 0, 1, 0, 0, 0];
        p.push(0b0000_0100); // param 2 is NULL
        p.push(1);
        p.extend_from_slice(&[0x08, 0x00, 0xfd, 0x00, 0x06, 0x00, 0x01, 0x80]);
        p.extend_from_slice(&42i64.to_le_bytes());
        p.push(5);
        p.extend_from_slice(b"12345");
        p.push(200);
        p
    }

    #[test]
    fn reads_each_parameter() {
        let p = sample();
        let head = parse_head(&p, 4).unwrap();
        assert_eq!(head.stmt_id, 7);
        let types = head.new_types.unwrap();
        let v = |i| param_value(&p, &head, types, i, |_| false).unwrap();
        assert_eq!(v(0), ParamValue::Int(42));
        assert_eq!(v(1), ParamValue::Bytes(b"12345"));
        assert_eq!(v(2), ParamValue::Null);
        assert_eq!(v(3), ParamValue::Int(200));
    }

    #[test]
    fn signed_values_sign_extend_and_long_data_is_skipped() {
        let mut p = vec![
            0x17, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0x01, 0x00, 0xfc, 0x00, 0x03, 0x00,
        ];
        p.push(0xff); // TINY -1
        p.extend_from_slice(&(-5i32).to_le_bytes());
        let head = parse_head(&p, 3).unwrap();
        let types = head.new_types.unwrap();
        assert_eq!(
            param_value(&p, &head, types, 0, |_| false).unwrap(),
            ParamValue::Int(-1)
        );
        // Parameter 1 came as long data: parameter 2's value follows parameter 0's.
        assert_eq!(
            param_value(&p, &head, types, 1, |i| i == 1).unwrap(),
            ParamValue::LongData
        );
        assert_eq!(
            param_value(&p, &head, types, 2, |i| i == 1).unwrap(),
            ParamValue::Int(-5)
        );
    }

    #[test]
    fn truncation_is_an_error() {
        let p = sample();
        for cut in 0..p.len() {
            let Ok(head) = parse_head(&p[..cut], 4) else {
                continue;
            };
            if let Some(types) = head.new_types {
                for i in 0..4 {
                    let _ = param_value(&p[..cut], &head, types, i, |_| false);
                }
            }
        }
        assert!(parse_head(&p[..5], 4).is_err());
        let mut id = p.clone();
        assert!(set_stmt_id(&mut id, 99));
        assert_eq!(stmt_id(&id), Some(99));
    }
}
