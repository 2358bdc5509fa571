//! Fuzz target `stmt_execute`: COM_STMT_EXECUTE decoding (`protocol::execute`), as the
//! session reads a prepared statement's shard key out of an execute packet.
//!
//! Checks, for an arbitrary payload and an arbitrary parameter count, parameter types in
//! force (the packet's own or an earlier execute's) and set of long-data parameters:
//! - `stmt_id`, `set_stmt_id`, `parse_head` and `param_value` never panic;
//! - a head that parses is consistent with the packet: the NULL bitmap has
//!   `(n + 7) / 8` bytes, new types `2 n`, and values start inside the payload;
//! - `param_value(i)` succeeds only if every parameter before `i` could be read (values
//!   are walked in order), and returned bytes lie inside the payload;
//! - a value is turned into a routing key (`key_from_int` / `key_from_text`, every key
//!   column type) without panicking.
//!
//! The same payload is also read as a COM_STMT_BULK_EXECUTE (`parse_bulk_head`,
//! `bulk_param_values`, `with_bulk_types`): no panic; the head is consistent (types of
//! `2 n` bytes, rows starting inside the packet); every value returned lies inside the
//! packet and becomes a routing key without panicking; putting types back in keeps the
//! rows unchanged.
//!
//! Input: `params u16, long-data mask u16, n_prev, n_prev types, payload...`.

#![no_main]

use dbrouter::config::KeyColumnType;
use dbrouter::protocol::execute::{
    bulk_param_values, param_value, parse_bulk_head, parse_head, set_stmt_id, stmt_id,
    with_bulk_types, ParamValue,
};
use dbrouter::router::{key_from_int, key_from_text};
use libfuzzer_sys::fuzz_target;

/// Parameters read per input, at most (each read walks the values before it).
const MAX_READ: u16 = 64;

const KEY_TYPES: [KeyColumnType; 5] = [
    KeyColumnType::Bigint,
    KeyColumnType::BigintUnsigned,
    KeyColumnType::Int,
    KeyColumnType::IntUnsigned,
    KeyColumnType::Text,
];

fuzz_target!(|data: &[u8]| {
    let Some((&[p0, p1, l0, l1, n_prev], rest)) = data.split_first_chunk::<5>() else {
        return;
    };
    let params = u16::from_le_bytes([p0, p1]);
    let long_data = u16::from_le_bytes([l0, l1]);
    let n_prev = usize::from(n_prev).min(rest.len());
    let (prev_types, payload) = rest.split_at(n_prev);

    let mut copy = payload.to_vec();
    let id = stmt_id(payload);
    assert_eq!(id.is_some(), payload.len() >= 5);
    assert_eq!(set_stmt_id(&mut copy, 0xdead_beef), id.is_some());
    if id.is_some() {
        assert_eq!(stmt_id(&copy), Some(0xdead_beef));
        assert_eq!(copy[5..], payload[5..]);
    }

    bulk(payload, params, prev_types);

    let Ok(head) = parse_head(payload, params) else {
        return;
    };
    assert_eq!(Some(head.stmt_id), id);
    assert!(
        head.values_at <= payload.len(),
        "values start past the packet"
    );
    let n = usize::from(params);
    if params > 0 {
        assert_eq!(head.null_bitmap.len(), n.div_ceil(8));
        if let Some(t) = head.new_types {
            assert_eq!(t.len(), 2 * n);
        }
    }
    let types = head.new_types.unwrap_or(prev_types);
    // Parameter i came by COM_STMT_SEND_LONG_DATA when bit (i % 16) of the mask is set.
    let is_long = |i: u16| long_data & (1 << (i % 16)) != 0;

    // The first parameters, and the last one (the key may be anywhere).
    let indexes = (0..params.min(MAX_READ)).chain(params.checked_sub(1));
    let mut failed_at: Option<u16> = None;
    let range = payload.as_ptr_range();
    for i in indexes {
        let value = param_value(payload, &head, types, i, is_long);
        match value {
            Ok(v) => {
                if let Some(f) = failed_at.filter(|f| *f < i) {
                    panic!("parameter {i} read although parameter {f} before it could not be");
                }
                if let ParamValue::Bytes(b) = v {
                    assert!(range.start <= b.as_ptr() && b.as_ptr_range().end <= range.end);
                }
                to_keys(&v);
            }
            Err(_) => {
                failed_at.get_or_insert(i);
            }
        }
    }
});

/// The payload read as a bulk execute.
fn bulk(payload: &[u8], params: u16, prev_types: &[u8]) {
    let Ok(head) = parse_bulk_head(payload, params) else {
        return;
    };
    assert!(head.rows_at <= payload.len(), "rows start past the packet");
    if let Some(t) = head.new_types {
        assert_eq!(t.len(), 2 * usize::from(params));
    }
    let types = head.new_types.unwrap_or(prev_types);
    let range = payload.as_ptr_range();
    for i in (0..params.min(4)).chain(params.checked_sub(1)) {
        if let Ok(values) = bulk_param_values(payload, &head, types, params, i) {
            assert!(!values.is_empty());
            for v in &values {
                if let ParamValue::Bytes(b) = v {
                    assert!(range.start <= b.as_ptr() && b.as_ptr_range().end <= range.end);
                }
                to_keys(v);
            }
        }
    }
    if head.new_types.is_none() && payload.len() >= 7 {
        let with = with_bulk_types(payload, types);
        assert_eq!(with.len(), payload.len() + types.len());
        assert_eq!(with[7 + types.len()..], payload[7..]);
    }
}

/// What the session does with the key parameter's value.
fn to_keys(v: &ParamValue<'_>) {
    for ty in KEY_TYPES {
        match *v {
            ParamValue::Int(n) => {
                if let Ok(k) = key_from_int(n, ty) {
                    assert!(!k.is_empty() && k.iter().all(u8::is_ascii_digit));
                }
            }
            ParamValue::Bytes(b) => {
                let _ = key_from_text(b, ty);
            }
            ParamValue::Null | ParamValue::LongData | ParamValue::Other | ParamValue::Absent => {}
        }
    }
}
