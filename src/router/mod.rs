//! Routing: from a statement to the shard whose master must run it. The shard-key
//! scanner ([`key`]) finds the user id in the SQL text without parsing it; the ring
//! ([`ring`]) maps a user id to a shard by consistent hashing, after per-user overrides;
//! the routing table ([`table`]) applies the rules (global tables, keyless statements,
//! cross-shard refusals) and is the immutable snapshot every session routes with.

mod charset_idents;
pub mod dialect;
mod fast;
pub mod in_flight;
pub mod key;
pub mod open_transactions;
pub mod ring;
pub mod table;

pub use key::words::{words, Word, Words};
pub use table::{Route, RouteError, RoutingTable, Why};

use crate::config::KeyColumnType;

/// Canonical key bytes of a user id given as text (a config value, a CLI argument, a
/// string parameter): a run of decimal digits that fits in a u64 is normalised like an
/// integer (`"00123"` → `"123"`, as MySQL compares an integer column numerically);
/// anything else is taken as is.
pub fn canonical_key_text(text: &[u8]) -> Vec<u8> {
    match parse_decimal(text) {
        Some(n) => decimal(n),
        None => text.to_vec(),
    }
}

/// The shard-key scanner's entry points: the fast path first, the full scanner when it
/// gives up (`key` and `fast` never call each other's entry points: no module cycle).
/// Scans one statement as MariaDB reads it by default (see [`scan_in`]).
pub fn scan<'a>(sql: &'a [u8], columns: &key::KeyColumns) -> key::Scan<'a> {
    scan_in(sql, dialect::Dialect::default(), columns)
}

/// Scans one statement as MariaDB reads it on a connection of this dialect.
pub fn scan_in<'a>(
    sql: &'a [u8],
    dialect: dialect::Dialect,
    columns: &key::KeyColumns,
) -> key::Scan<'a> {
    // Built in place (the result is ~0.5 KB), in the one variable returned.
    let mut out = key::Scan::empty();
    if u32::try_from(sql.len()).is_err() {
        // Token positions are u32; MySQL packets stay far below 4 GiB anyway.
        out.problem = Some(key::KeyProblem::TooComplex);
        return out;
    }
    // The fast path reads ASCII outside quotes, strings without backslashes and no
    // comment but a leading `/* */`: the same under every dialect except ANSI_QUOTES.
    if dialect.ansi_quotes || fast::scan_into(sql, columns, &mut out).is_none() {
        // Not one of the common simple shapes: the full scanner starts over.
        out.clear();
        key::scan_full_into(sql, dialect, columns, &mut out);
    }
    out
}

/// Whether `needle` occurs in `haystack`, ASCII case-insensitively (statement texts are
/// searched for variable and function names with it).
pub fn contains_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty()
        && haystack
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
}

/// Why a user id is not routed: MariaDB would store or compare it as a value whose
/// conversion the router does not reproduce exactly (see docs/sharding.md, "Key values").
pub type KeyRefusal = &'static str;

/// Checks a key literal read from a statement against the key columns' type.
pub fn admit_key(value: &key::KeyValue<'_>, ty: KeyColumnType) -> Result<(), KeyRefusal> {
    match (value, ty.max()) {
        (key::KeyValue::Int(n), Some(max)) if *n > max => Err(OUT_OF_RANGE),
        (key::KeyValue::Int(_), _) => Ok(()),
        (key::KeyValue::Str(_), Some(_)) => Err(NOT_DIGITS),
        (key::KeyValue::Str(s), None) => text_key(s).map(drop),
    }
}

/// Canonical key bytes of a user id given as text (a string or decimal parameter, long
/// data, the session pin, a CLI argument), or why it is refused: integer keys must be
/// plain decimal digits within the column's range; text keys printable ASCII without
/// upper case or surrounding spaces (digits-only text is read as the integer).
pub fn key_from_text(text: &[u8], ty: KeyColumnType) -> Result<Vec<u8>, KeyRefusal> {
    if let Some(max) = ty.max() {
        return match parse_decimal(text) {
            Some(n) if n <= max => Ok(decimal(n)),
            Some(_) => Err(OUT_OF_RANGE),
            None if text.iter().all(u8::is_ascii_digit) && !text.is_empty() => Err(OUT_OF_RANGE),
            None => Err(NOT_DIGITS),
        };
    }
    if let Some(n) = parse_decimal(text) {
        return Ok(decimal(n));
    }
    text_key(text).map(<[u8]>::to_vec)
}

/// Canonical key bytes of a user id given as an integer parameter.
pub fn key_from_int(value: i128, ty: KeyColumnType) -> Result<Vec<u8>, KeyRefusal> {
    let max = ty.max().unwrap_or(u64::MAX);
    match u64::try_from(value) {
        Ok(n) if n <= max => Ok(decimal(n)),
        Ok(_) => Err(OUT_OF_RANGE),
        Err(_) => Err("is negative; user ids are non-negative"),
    }
}

const OUT_OF_RANGE: KeyRefusal =
    "is above the key column's range (sharding.key_type); MariaDB would clamp or refuse it";
const NOT_DIGITS: KeyRefusal = "is not plain decimal digits: MariaDB converts spaces, signs, decimals, exponents and other text to an integer the router does not reproduce; send the user id as an integer or as digits only";

/// A text user id (text key columns): printable ASCII, no upper case (a case-insensitive
/// collation would equate users the ring tells apart), no leading or trailing space
/// (PAD SPACE collations ignore trailing spaces), no number in another spelling.
fn text_key(s: &[u8]) -> Result<&[u8], KeyRefusal> {
    let printable = s
        .iter()
        .all(|&c| (b' '..=b'~').contains(&c) && !c.is_ascii_uppercase());
    let spaced = s.first() == Some(&b' ') || s.last() == Some(&b' ');
    if s.is_empty() || !printable || spaced || key::numeric_text(s) {
        return Err("is not a plain text user id (printable ASCII without upper case, surrounding spaces or a number's spelling)");
    }
    Ok(s)
}

/// The canonical key bytes of an integer user id: its decimal digits.
fn decimal(n: u64) -> Vec<u8> {
    itoa::Buffer::new().format(n).as_bytes().to_vec()
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

#[cfg(test)]
mod key_conversion_tests {
    use super::*;

    #[test]
    fn text_and_integer_parameters_convert_as_mariadb_or_are_refused() {
        let big = KeyColumnType::Bigint;
        assert_eq!(key_from_text(b"00123", big), Ok(b"123".to_vec()));
        assert_eq!(
            key_from_text(b"9223372036854775807", big).map(|k| k.len()),
            Ok(19)
        );
        for refused in [
            &b" 5"[..],
            b"5 ",
            b"\t5",
            b"+5",
            b"5.0",
            b"5.00",
            b"5e0",
            b"5abc",
            b"",
            b"0x5",
            b"9223372036854775808",
            b"99999999999999999999999",
        ] {
            assert!(key_from_text(refused, big).is_err(), "{refused:?}");
        }
        assert_eq!(key_from_int(5, big), Ok(b"5".to_vec()));
        assert!(key_from_int(-1, big).is_err());
        assert!(key_from_int(i128::from(u64::MAX), big).is_err());
        assert!(key_from_int(i128::from(u64::MAX), KeyColumnType::BigintUnsigned).is_ok());
        assert!(key_from_int(i128::from(u32::MAX) + 1, KeyColumnType::IntUnsigned).is_err());
        let text = KeyColumnType::Text;
        assert_eq!(key_from_text(b"alice", text), Ok(b"alice".to_vec()));
        assert_eq!(key_from_text(b"007", text), Ok(b"7".to_vec()));
        for refused in [
            &b"Alice"[..],
            b" alice",
            b"alice ",
            b"5.0",
            b"",
            b"caf\xc3\xa9",
        ] {
            assert!(key_from_text(refused, text).is_err(), "{refused:?}");
        }
    }
}
