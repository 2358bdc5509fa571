//! Text result sets that dbrouter answers itself (e.g. `SHOW DBROUTER ROUTE FOR …`):
//! column definitions via `mysql_common::packets::Column`, rows as length-encoded
//! strings, EOF packets (CLIENT_DEPRECATE_EOF is never negotiated), and the
//! "metadata follows" byte when the client negotiated MariaDB metadata caching.

use mysql_common::constants::{ColumnFlags, ColumnType};
use mysql_common::packets::Column;
use mysql_common::proto::MySerialize;

use super::packets::{ok_packet, put_lenenc_int, EOF_HEADER};
use super::response::{ResultFormat, SERVER_STATUS_AUTOCOMMIT};

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
        let col = Column::new(ColumnType::MYSQL_TYPE_VAR_STRING)
            .with_name(name.as_bytes())
            .with_org_name(name.as_bytes())
            .with_character_set(UTF8MB4_GENERAL_CI)
            .with_column_length(1024)
            .with_flags(ColumnFlags::empty());
        let mut def = Vec::new();
        col.serialize(&mut def);
        packets.push(def);
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

    #[test]
    fn result_set_is_well_formed() {
        for (deprecate_eof, metadata_flag) in
            [(false, false), (false, true), (true, false), (true, true)]
        {
            let format = ResultFormat {
                deprecate_eof,
                metadata_flag,
            };
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
            let count: &[u8] = if metadata_flag { &[2, 1] } else { &[2] };
            assert_eq!(packets[0], count);
            let row = format.text_rows_start(2);
            assert_eq!(row, if deprecate_eof { 3 } else { 4 });
            assert_eq!(packets[row], vec![1, b'1', 0xfb]);
            assert_eq!(packets.len(), row + 2);
        }
    }
}
