//! Text result sets that dbrouter answers itself (e.g. `SHOW DBROUTER ROUTE FOR …`):
//! column definitions via `mysql_common::packets::Column`, rows as length-encoded
//! strings, framed as the client negotiated: EOF packets or CLIENT_DEPRECATE_EOF's OK,
//! the "metadata follows" byte of MariaDB metadata caching, and the (empty) extended type
//! information of MARIADB_CLIENT_EXTENDED_METADATA.

use mysql_common::constants::ColumnType;

use super::packets::{ok_packet, put_lenenc_int, EOF_HEADER};
use super::response::{ResultFormat, SERVER_STATUS_AUTOCOMMIT};

/// The one value of a text result set with one column and one row (a whole response:
/// count, definition, rows, terminators); None for NULL or any other shape.
pub fn single_value<P: AsRef<[u8]>>(packets: &[P]) -> Option<&[u8]> {
    if packets.len() < 4 || packets.first()?.as_ref().first() != Some(&1) {
        return None;
    }
    let row = packets.get(packets.len() - 2)?.as_ref();
    if row.first() == Some(&0xfb) {
        return None;
    }
    let (len, at) = super::packets::read_lenenc_int(row, 0)?;
    let end = at.checked_add(usize::try_from(len).ok()?)?;
    (end == row.len()).then(|| &row[at..end])
}

/// utf8mb4_general_ci, the collation of every column dbrouter returns.
const UTF8MB4_GENERAL_CI: u16 = 45;

/// The payloads of a complete text result set framed as `format`: column count,
/// definitions, EOF, rows, EOF (the first EOF dropped and the last one an OK with the
/// 0xfe header under CLIENT_DEPRECATE_EOF).
pub fn text_result_set(
    columns: &[&str],
    rows: &[Vec<Option<String>>],
    status: u16,
    format: ResultFormat,
) -> Vec<Vec<u8>> {
    let mut packets = Vec::with_capacity(columns.len() + rows.len() + 3);
    let mut count = Vec::new();
    put_lenenc_int(&mut count, columns.len() as u64);
    if format.metadata_flag {
        count.push(1); // metadata follows
    }
    packets.push(count);
    for name in columns {
        packets.push(column_definition(name, format.extended_metadata));
    }
    if !format.deprecate_eof {
        packets.push(eof(status));
    }
    for row in rows {
        let mut out = Vec::new();
        for value in row {
            match value {
                None => out.push(0xfb),
                Some(v) => {
                    put_lenenc_int(&mut out, v.len() as u64);
                    out.extend_from_slice(v.as_bytes());
                }
            }
        }
        packets.push(out);
    }
    if format.deprecate_eof {
        // The OK packet with the 0xfe header that ends rows under CLIENT_DEPRECATE_EOF.
        let mut ok = ok_packet(0, 0, status, 0);
        ok[0] = EOF_HEADER;
        packets.push(ok);
    } else {
        packets.push(eof(status));
    }
    packets
}

/// A column definition (protocol 4.1) of a utf8mb4 VAR_STRING column: catalog `def`,
/// empty schema and tables, the name as name and original name, the (empty) extended
/// type information when MARIADB_CLIENT_EXTENDED_METADATA is on, then the fixed fields:
/// their length 0x0c, character set, column length, type, flags, decimals and filler.
/// Written by hand: `mysql_common`'s `Column::serialize` (0.37) puts the column length
/// before the character set, which clients read the other way round.
fn column_definition(name: &str, extended_metadata: bool) -> Vec<u8> {
    let mut def = Vec::with_capacity(32 + 2 * name.len());
    for text in [&b"def"[..], b"", b"", b"", name.as_bytes(), name.as_bytes()] {
        put_lenenc_int(&mut def, text.len() as u64);
        def.extend_from_slice(text);
    }
    if extended_metadata {
        def.push(0);
    }
    def.push(0x0c);
    def.extend_from_slice(&UTF8MB4_GENERAL_CI.to_le_bytes());
    def.extend_from_slice(&COLUMN_LENGTH.to_le_bytes());
    def.push(ColumnType::MYSQL_TYPE_VAR_STRING as u8);
    def.extend_from_slice(&0u16.to_le_bytes()); // flags
    def.push(0); // decimals
    def.extend_from_slice(&[0, 0]); // filler
    def
}

/// The column length announced for every column (in bytes).
const COLUMN_LENGTH: u32 = 1024;

fn eof(status: u16) -> Vec<u8> {
    let mut p = vec![0xfe, 0, 0];
    p.extend_from_slice(&status.to_le_bytes());
    p
}

/// Default status flags for locally answered results.
pub const LOCAL_STATUS: u16 = SERVER_STATUS_AUTOCOMMIT;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::response::{ResponseKind, ResponseTracker, Step};

    /// Every framing a client may negotiate.
    fn every_format() -> impl Iterator<Item = ResultFormat> {
        (0..8u8).map(|bits| ResultFormat {
            deprecate_eof: bits & 1 != 0,
            metadata_flag: bits & 2 != 0,
            extended_metadata: bits & 4 != 0,
        })
    }

    #[test]
    fn the_single_value_of_a_one_by_one_result_is_read_in_every_framing() {
        for format in every_format() {
            let one = text_result_set(&["v"], &[vec![Some("42".into())]], 2, format);
            assert_eq!(single_value(&one), Some(&b"42"[..]));
            let null = text_result_set(&["v"], &[vec![None]], 2, format);
            assert_eq!(single_value(&null), None);
            let two_columns = text_result_set(&["v", "w"], &[vec![None, None]], 2, format);
            assert_eq!(single_value(&two_columns), None);
        }
    }

    #[test]
    fn result_set_is_well_formed() {
        for format in every_format() {
            let rows = [vec![Some("1".into()), None]];
            let packets = text_result_set(&["a", "b"], &rows, LOCAL_STATUS, format);
            let mut t = ResponseTracker::new(ResponseKind::Query, format);
            let steps: Vec<Step> = packets
                .iter()
                .map(|p| t.feed(p, p.len()).unwrap())
                .collect();
            assert_eq!(
                steps.last(),
                Some(&Step::Done {
                    status: Some(LOCAL_STATUS)
                })
            );
            let count: &[u8] = if format.metadata_flag { &[2, 1] } else { &[2] };
            assert_eq!(packets[0], count);
            // catalog "def", schema, table, org_table (empty), name, org_name "a", then
            // the extended type information (empty) when negotiated, then 0x0c.
            let def = &packets[1];
            let after_names = 4 + 1 + 1 + 1 + 2 + 2;
            assert_eq!(&def[..after_names], b"\x03def\0\0\0\x01a\x01a");
            let fixed_fields = after_names + usize::from(format.extended_metadata);
            if format.extended_metadata {
                assert_eq!(def[after_names], 0, "empty extended type information");
            }
            assert_eq!(def[fixed_fields], 0x0c, "{format:?}");
            assert_eq!(def.len(), fixed_fields + 13, "{format:?}");
            // Character set (utf8mb4_general_ci) before the column length, as clients
            // read them; then VAR_STRING.
            assert_eq!(&def[fixed_fields + 1..fixed_fields + 3], &[45, 0]);
            assert_eq!(
                &def[fixed_fields + 3..fixed_fields + 7],
                &1024u32.to_le_bytes()
            );
            assert_eq!(def[fixed_fields + 7], 0xfd);
            // And mysql_common reads it back as that.
            use mysql_common::proto::MyDeserialize;
            let col = mysql_common::packets::Column::deserialize(
                (),
                &mut mysql_common::io::ParseBuf(
                    &[&def[..after_names], &def[fixed_fields..]].concat(),
                ),
            )
            .unwrap();
            assert_eq!((col.character_set(), col.column_length()), (45, 1024));
            let row = format.text_rows_start(2);
            assert_eq!(row, if format.deprecate_eof { 3 } else { 4 });
            assert_eq!(packets[row], vec![1, b'1', 0xfb]);
            assert_eq!(packets.len(), row + 2);
        }
    }
}
