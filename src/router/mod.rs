//! Routing: from a statement to the shard whose master must run it. The shard-key
//! scanner ([`key`]) finds the user id in the SQL text without parsing it; the ring
//! ([`ring`]) maps a user id to a shard by consistent hashing, after per-user overrides;
//! the routing table ([`table`]) applies the rules (global tables, keyless statements,
//! cross-shard refusals) and is the immutable snapshot every session routes with.

pub mod dialect;
mod fast;
pub mod key;
pub mod ring;
pub mod table;

pub use table::{Route, RouteError, RoutingTable, Why};

/// Canonical key bytes of a user id given as text (a config value, a CLI argument, a
/// string parameter): a run of decimal digits that fits in a u64 is normalised like an
/// integer (`"00123"` → `"123"`, as MySQL compares an integer column numerically);
/// anything else is taken as is.
pub fn canonical_key_text(text: &[u8]) -> Vec<u8> {
    match parse_decimal(text) {
        Some(n) => itoa::Buffer::new().format(n).as_bytes().to_vec(),
        None => text.to_vec(),
    }
}

/// The value of a non-empty run of ASCII digits that fits in a u64.
pub fn parse_decimal(text: &[u8]) -> Option<u64> {
    if text.is_empty() || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    text.iter().try_fold(0u64, |acc, d| {
        acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_text() {
        assert_eq!(canonical_key_text(b"00123"), b"123");
        assert_eq!(canonical_key_text(b"0"), b"0");
        assert_eq!(canonical_key_text(b"abc"), b"abc");
        assert_eq!(
            canonical_key_text(b"99999999999999999999"),
            b"99999999999999999999"
        );
        assert_eq!(canonical_key_text(b""), b"");
    }
}
