//! The response state machine: fed the relayed backend packets one by one (first bytes
//! and length only; rows are never decoded), it says when the response to the current
//! command is complete, what the final server status flags are, and when the client must
//! upload a LOCAL INFILE. Pure logic, unit-tested here, used by the relay loop.

use mysql_common::constants::{CapabilityFlags, MariadbCapabilities};

use super::packets::{
    eof_status, is_eof, is_ok_terminator, ok_insert_id, ok_status, read_lenenc_int,
    terminator_status, terminator_warnings, ERR_HEADER, LOCAL_INFILE_HEADER, OK_HEADER,
};

/// SERVER_MORE_RESULTS_EXISTS: another result follows this one.
pub const SERVER_MORE_RESULTS_EXISTS: u16 = 0x0008;
/// SERVER_STATUS_CURSOR_EXISTS: COM_STMT_EXECUTE opened a cursor; rows come by COM_STMT_FETCH.
pub const SERVER_STATUS_CURSOR_EXISTS: u16 = 0x0040;
/// SERVER_STATUS_IN_TRANS: a transaction is open on the session.
pub const SERVER_STATUS_IN_TRANS: u16 = 0x0001;
/// SERVER_STATUS_AUTOCOMMIT: autocommit is on.
pub const SERVER_STATUS_AUTOCOMMIT: u16 = 0x0002;
/// Status flag: the open transaction is read only.
pub const SERVER_STATUS_IN_TRANS_READONLY: u16 = 0x2000;
/// Status flag: the OK carries session-state changes (CLIENT_SESSION_TRACK).
pub const SERVER_SESSION_STATE_CHANGED: u16 = 0x4000;

/// The shape of the response a command gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseKind {
    /// COM_QUERY: OK, ERR, a LOCAL INFILE request or text result sets, repeated while
    /// SERVER_MORE_RESULTS_EXISTS is set.
    Query,
    /// COM_STMT_EXECUTE: like `Query` with binary rows; an opened cursor ends the
    /// response after the column metadata.
    Execute,
    /// COM_STMT_PREPARE: a prepare-OK followed by parameter and column definitions.
    Prepare,
    /// COM_FIELD_LIST: column definitions up to an EOF, or an ERR.
    FieldList,
    /// COM_STMT_FETCH: rows up to an EOF, or an ERR.
    Fetch,
    /// Exactly one packet of any kind (COM_PING, COM_INIT_DB, COM_STATISTICS, …).
    Single,
}

/// How result sets are framed on a connection: follows from the capabilities negotiated
/// on it (a client session and its backend connections always agree).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ResultFormat {
    /// CLIENT_DEPRECATE_EOF: no EOF after column (or parameter) definitions, and rows end
    /// with an OK packet carrying the 0xfe header instead of an EOF packet.
    pub deprecate_eof: bool,
    /// MARIADB_CLIENT_CACHE_METADATA: a result set's column count is followed by one
    /// "metadata follows" byte; when it is 0 no column definitions come (the client kept
    /// those of the prepared statement).
    pub metadata_flag: bool,
    /// MARIADB_CLIENT_EXTENDED_METADATA: every column definition carries, after
    /// `org_name`, a length-encoded block of extended type information (`json`, `uuid`,
    /// `inet6`…), empty for plain columns.
    pub extended_metadata: bool,
}

impl ResultFormat {
    /// The framing for these negotiated capabilities.
    pub fn negotiated(capabilities: CapabilityFlags, mariadb: MariadbCapabilities) -> Self {
        ResultFormat {
            deprecate_eof: capabilities.contains(CapabilityFlags::CLIENT_DEPRECATE_EOF),
            metadata_flag: mariadb.contains(MariadbCapabilities::MARIADB_CLIENT_CACHE_METADATA),
            extended_metadata: mariadb
                .contains(MariadbCapabilities::MARIADB_CLIENT_EXTENDED_METADATA),
        }
    }

    /// Index of the first row in the collected packets of a text result set with
    /// `columns` columns (text results always carry their metadata): after the column
    /// count and the definitions, and the EOF unless CLIENT_DEPRECATE_EOF dropped it.
    pub fn text_rows_start(self, columns: usize) -> usize {
        1 + columns + usize::from(!self.deprecate_eof)
    }
}

/// What the relay does after a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// More packets of this response follow.
    Continue,
    /// The response is complete; the status flags of its last OK/EOF, if it had one.
    Done {
        /// Server status flags of the final OK or EOF packet (`None` after an ERR).
        status: Option<u16>,
    },
    /// The server asked for a LOCAL INFILE: relay the client's file packets up to the
    /// empty one, then keep feeding the server's packets.
    LocalInfile,
}

/// A packet that cannot appear where it did: the backend stream is out of sync.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unexpected packet from the backend while expecting {expecting}: first byte 0x{first:02x}, length {len}")]
pub struct ProtocolViolation {
    /// What the tracker expected.
    pub expecting: &'static str,
    /// First payload byte of the offending packet.
    pub first: u8,
    /// Payload length of the offending packet.
    pub len: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    ResultStart,
    Columns { left: u64 },
    ColumnsEof,
    Rows,
    PrepareParams { left: u64, columns: u64 },
    PrepareParamsEof { columns: u64 },
    PrepareColumns { left: u64 },
    PrepareColumnsEof,
    FieldList,
    Single,
}

/// Tracks one response from its first packet to its end.
#[derive(Debug, Clone)]
pub struct ResponseTracker {
    kind: ResponseKind,
    state: State,
    format: ResultFormat,
    /// An OK of this response carried a last insert id (the statement generated an
    /// AUTO_INCREMENT value): `LAST_INSERT_ID()` now answers on this connection.
    inserted: bool,
    /// A terminator of this response reported warnings (`SHOW WARNINGS` now answers with
    /// them on this connection).
    warned: bool,
}

impl ResponseTracker {
    /// A tracker for the response to a command of the given kind, framed as `format`.
    pub fn new(kind: ResponseKind, format: ResultFormat) -> Self {
        let state = match kind {
            ResponseKind::Query | ResponseKind::Execute | ResponseKind::Prepare => {
                State::ResultStart
            }
            ResponseKind::FieldList => State::FieldList,
            ResponseKind::Fetch => State::Rows,
            ResponseKind::Single => State::Single,
        };
        Self {
            kind,
            state,
            format,
            inserted: false,
            warned: false,
        }
    }

    /// Whether an OK of this response carried a non-zero last insert id.
    pub fn inserted(&self) -> bool {
        self.inserted
    }

    /// Whether a terminator of this response reported warnings.
    pub fn warned(&self) -> bool {
        self.warned
    }

    /// Feeds one logical packet. `head` is its payload, or at least its first byte when
    /// the packet is large (large packets are rows or data, never terminators); `len` is
    /// the full payload length.
    pub fn feed(&mut self, head: &[u8], len: usize) -> Result<Step, ProtocolViolation> {
        let first = head.first().copied().unwrap_or(0);
        let violation = |expecting| ProtocolViolation {
            expecting,
            first,
            len,
        };
        if len == 0 {
            return Err(violation("a non-empty packet"));
        }
        match self.state {
            State::Single => Ok(Step::Done {
                status: match first {
                    OK_HEADER => ok_status(head),
                    _ if is_eof(first, len) => eof_status(head),
                    _ => None,
                },
            }),
            State::ResultStart if self.kind == ResponseKind::Prepare => match first {
                ERR_HEADER => Ok(Step::Done { status: None }),
                OK_HEADER => {
                    let field = |at: usize| {
                        head.get(at..at + 2)
                            .map(|b| u64::from(u16::from_le_bytes([b[0], b[1]])))
                    };
                    let (Some(columns), Some(params)) = (field(5), field(7)) else {
                        return Err(violation("a complete prepare-OK packet"));
                    };
                    self.state = if params > 0 {
                        State::PrepareParams {
                            left: params,
                            columns,
                        }
                    } else if columns > 0 {
                        State::PrepareColumns { left: columns }
                    } else {
                        return Ok(Step::Done { status: None });
                    };
                    Ok(Step::Continue)
                }
                _ => Err(violation("a prepare-OK or ERR packet")),
            },
            State::ResultStart => match first {
                OK_HEADER => {
                    self.inserted |= ok_insert_id(head).is_some_and(|id| id != 0);
                    self.warned |= terminator_warnings(head) != 0;
                    Ok(self.after_terminator(ok_status(head)))
                }
                ERR_HEADER => Ok(Step::Done { status: None }),
                LOCAL_INFILE_HEADER => Ok(Step::LocalInfile),
                _ => match read_lenenc_int(head, 0) {
                    Some((n, used)) if n > 0 => {
                        self.state = if !self.format.metadata_flag {
                            State::Columns { left: n }
                        } else {
                            match head.get(used) {
                                Some(0) => self.after_definitions(),
                                Some(_) => State::Columns { left: n },
                                None => {
                                    return Err(violation(
                                        "a column count with its metadata-follows byte",
                                    ))
                                }
                            }
                        };
                        Ok(Step::Continue)
                    }
                    _ => Err(violation("OK, ERR, LOCAL INFILE or a column count")),
                },
            },
            State::Columns { left } => {
                if first == ERR_HEADER {
                    return Ok(Step::Done { status: None });
                }
                self.state = if left > 1 {
                    State::Columns { left: left - 1 }
                } else {
                    self.after_definitions()
                };
                Ok(Step::Continue)
            }
            State::ColumnsEof => {
                if !is_eof(first, len) {
                    return Err(violation("the EOF after column definitions"));
                }
                let status = eof_status(head).unwrap_or(0);
                if self.kind == ResponseKind::Execute && status & SERVER_STATUS_CURSOR_EXISTS != 0 {
                    return Ok(Step::Done {
                        status: Some(status),
                    });
                }
                self.state = State::Rows;
                Ok(Step::Continue)
            }
            State::Rows => {
                if first == ERR_HEADER && len < 0xff_ffff {
                    return Ok(Step::Done { status: None });
                }
                // With CLIENT_DEPRECATE_EOF an opened cursor is also reported here, by the
                // packet right after the metadata (its status has no MORE_RESULTS: done).
                match self.rows_end(head, first, len) {
                    Some(status) => {
                        self.warned |= terminator_warnings(head) != 0;
                        Ok(self.after_terminator(status))
                    }
                    None => Ok(Step::Continue),
                }
            }
            State::PrepareParams { left, columns } => {
                self.state = if left > 1 {
                    State::PrepareParams {
                        left: left - 1,
                        columns,
                    }
                } else if !self.format.deprecate_eof {
                    State::PrepareParamsEof { columns }
                } else if columns > 0 {
                    State::PrepareColumns { left: columns }
                } else {
                    return Ok(Step::Done { status: None });
                };
                Ok(Step::Continue)
            }
            State::PrepareParamsEof { columns } => {
                if !is_eof(first, len) {
                    return Err(violation("the EOF after parameter definitions"));
                }
                if columns == 0 {
                    return Ok(Step::Done { status: None });
                }
                self.state = State::PrepareColumns { left: columns };
                Ok(Step::Continue)
            }
            State::PrepareColumns { left } => {
                self.state = if left > 1 {
                    State::PrepareColumns { left: left - 1 }
                } else if !self.format.deprecate_eof {
                    State::PrepareColumnsEof
                } else {
                    return Ok(Step::Done { status: None });
                };
                Ok(Step::Continue)
            }
            State::PrepareColumnsEof => {
                if !is_eof(first, len) {
                    return Err(violation("the EOF after column definitions"));
                }
                Ok(Step::Done { status: None })
            }
            State::FieldList => match first {
                ERR_HEADER => Ok(Step::Done { status: None }),
                _ => match self.rows_end(head, first, len) {
                    Some(status) => Ok(Step::Done { status }),
                    None => Ok(Step::Continue),
                },
            },
        }
    }

    /// If this packet ends rows (or column definitions of COM_FIELD_LIST), its status: an
    /// EOF packet, or under CLIENT_DEPRECATE_EOF an OK packet with the 0xfe header.
    fn rows_end(&self, head: &[u8], first: u8, len: usize) -> Option<Option<u16>> {
        if self.format.deprecate_eof {
            is_ok_terminator(first, len).then(|| terminator_status(head))
        } else {
            is_eof(first, len).then(|| eof_status(head))
        }
    }

    /// After the last column definition (or none, when the metadata was left out): the
    /// EOF that closes the metadata, unless CLIENT_DEPRECATE_EOF dropped it.
    fn after_definitions(&self) -> State {
        if self.format.deprecate_eof {
            State::Rows
        } else {
            State::ColumnsEof
        }
    }

    /// After an OK or EOF that ends a result: either another result follows or we are done.
    fn after_terminator(&mut self, status: Option<u16>) -> Step {
        match status {
            Some(s) if s & SERVER_MORE_RESULTS_EXISTS != 0 => {
                self.state = State::ResultStart;
                Step::Continue
            }
            _ => Step::Done { status },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::packets::{err_packet, ok_packet};

    fn eof(status: u16) -> Vec<u8> {
        let mut p = vec![0xfe, 0, 0];
        p.extend_from_slice(&status.to_le_bytes());
        p
    }

    fn feed_all(kind: ResponseKind, packets: &[Vec<u8>]) -> Vec<Step> {
        feed_all_as(kind, ResultFormat::default(), packets)
    }

    fn feed_all_as(kind: ResponseKind, format: ResultFormat, packets: &[Vec<u8>]) -> Vec<Step> {
        let mut t = ResponseTracker::new(kind, format);
        packets
            .iter()
            .map(|p| t.feed(p, p.len()).expect("valid packet"))
            .collect()
    }

    const COLDEF: &[u8] =
        b"\x03def\x00\x00\x00\x01a\x00\x0c\x3f\x00\x0b\x00\x00\x00\x03\x00\x00\x00\x00\x00";

    #[test]
    fn simple_ok_is_done() {
        let steps = feed_all(ResponseKind::Query, &[ok_packet(1, 0, 0x0003, 0)]);
        assert_eq!(steps, vec![Step::Done { status: Some(3) }]);
    }

    #[test]
    fn text_result_set_ends_at_eof() {
        let packets = vec![
            vec![1],
            COLDEF.to_vec(),
            eof(2),
            b"\x011".to_vec(),
            b"\x012".to_vec(),
            eof(0x22),
        ];
        let steps = feed_all(ResponseKind::Query, &packets);
        assert_eq!(steps[..5], [Step::Continue; 5]);
        assert_eq!(steps[5], Step::Done { status: Some(0x22) });
    }

    #[test]
    fn multi_results_continue_until_last() {
        let packets = vec![
            vec![1],
            COLDEF.to_vec(),
            eof(2),
            b"\x011".to_vec(),
            eof(2 | SERVER_MORE_RESULTS_EXISTS),
            ok_packet(0, 0, 2 | SERVER_MORE_RESULTS_EXISTS, 0),
            ok_packet(0, 0, 2, 0),
        ];
        let steps = feed_all(ResponseKind::Query, &packets);
        assert!(steps[..6].iter().all(|s| *s == Step::Continue));
        assert_eq!(steps[6], Step::Done { status: Some(2) });
    }

    #[test]
    fn error_mid_rows_ends_response() {
        let packets = vec![
            vec![1],
            COLDEF.to_vec(),
            eof(2),
            err_packet(1317, b"70100", "Query execution was interrupted"),
        ];
        let steps = feed_all(ResponseKind::Query, &packets);
        assert_eq!(steps[3], Step::Done { status: None });
    }

    #[test]
    fn a_row_starting_with_0xfe_is_not_eof() {
        // A row whose first column is a 0xfe-prefixed (8-byte length) string is >= 9 bytes.
        let mut row = vec![0xfe];
        row.extend_from_slice(&[0u8; 12]);
        let packets = vec![vec![1], COLDEF.to_vec(), eof(2), row, eof(2)];
        let steps = feed_all(ResponseKind::Query, &packets);
        assert_eq!(steps[3], Step::Continue);
        assert_eq!(steps[4], Step::Done { status: Some(2) });
    }

    #[test]
    fn local_infile_then_ok() {
        let mut t = ResponseTracker::new(ResponseKind::Query, ResultFormat::default());
        assert_eq!(t.feed(b"\xfb/tmp/x", 7), Ok(Step::LocalInfile));
        let ok = ok_packet(5, 0, 2, 0);
        assert_eq!(t.feed(&ok, ok.len()), Ok(Step::Done { status: Some(2) }));
    }

    #[test]
    fn execute_with_cursor_ends_after_metadata() {
        let packets = vec![
            vec![1],
            COLDEF.to_vec(),
            eof(2 | SERVER_STATUS_CURSOR_EXISTS),
        ];
        let steps = feed_all(ResponseKind::Execute, &packets);
        assert_eq!(
            steps[2],
            Step::Done {
                status: Some(2 | SERVER_STATUS_CURSOR_EXISTS)
            }
        );
    }

    const CACHED: ResultFormat = ResultFormat {
        deprecate_eof: false,
        metadata_flag: true,
        extended_metadata: false,
    };
    const NO_EOF: ResultFormat = ResultFormat {
        deprecate_eof: true,
        metadata_flag: false,
        extended_metadata: false,
    };

    /// An OK packet with the 0xfe header (CLIENT_DEPRECATE_EOF's end of rows).
    fn ok_fe(status: u16) -> Vec<u8> {
        let mut p = ok_packet(0, 0, status, 0);
        p[0] = 0xfe;
        p
    }

    #[test]
    fn deprecate_eof_results_end_at_the_ok_terminator() {
        // Text rows: no EOF after the definitions; a row may start with 0xfe if huge.
        let packets = vec![vec![1], COLDEF.to_vec(), b"\x011".to_vec(), ok_fe(0x22)];
        let steps = feed_all_as(ResponseKind::Query, NO_EOF, &packets);
        assert!(steps[..3].iter().all(|s| *s == Step::Continue));
        assert_eq!(steps[3], Step::Done { status: Some(0x22) });
        let mut t = ResponseTracker::new(ResponseKind::Query, NO_EOF);
        t.feed(&[1], 1).unwrap();
        t.feed(COLDEF, COLDEF.len()).unwrap();
        assert_eq!(t.feed(&[0xfe, 0, 0], 0xff_ffff), Ok(Step::Continue));
        // More results: the terminator's status says so.
        let packets = vec![
            vec![1],
            COLDEF.to_vec(),
            ok_fe(2 | SERVER_MORE_RESULTS_EXISTS),
            ok_packet(0, 0, 2, 0),
        ];
        let steps = feed_all_as(ResponseKind::Query, NO_EOF, &packets);
        assert_eq!(steps[2], Step::Continue);
        assert_eq!(steps[3], Step::Done { status: Some(2) });
        // A cursor: the packet after the metadata reports it (EOF or 0xfe OK).
        for cursor in [
            eof(2 | SERVER_STATUS_CURSOR_EXISTS),
            ok_fe(2 | SERVER_STATUS_CURSOR_EXISTS),
        ] {
            let steps = feed_all_as(
                ResponseKind::Execute,
                NO_EOF,
                &[vec![1], COLDEF.to_vec(), cursor],
            );
            assert_eq!(
                steps[2],
                Step::Done {
                    status: Some(2 | SERVER_STATUS_CURSOR_EXISTS)
                }
            );
        }
        // Prepare: no EOF after parameters or columns.
        let prep_ok = vec![0, 1, 0, 0, 0, 1, 0, 2, 0, 0, 0, 0];
        let packets = vec![prep_ok, COLDEF.to_vec(), COLDEF.to_vec(), COLDEF.to_vec()];
        let steps = feed_all_as(ResponseKind::Prepare, NO_EOF, &packets);
        assert!(steps[..3].iter().all(|s| *s == Step::Continue));
        assert_eq!(steps[3], Step::Done { status: None });
        let params_only = vec![vec![0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0], COLDEF.to_vec()];
        let steps = feed_all_as(ResponseKind::Prepare, NO_EOF, &params_only);
        assert_eq!(steps[1], Step::Done { status: None });
        // Field list and fetch end at the 0xfe OK as well.
        let steps = feed_all_as(
            ResponseKind::FieldList,
            NO_EOF,
            &[COLDEF.to_vec(), ok_fe(2)],
        );
        assert_eq!(steps[1], Step::Done { status: Some(2) });
        let fetched = [b"\x00\x00\x01".to_vec(), ok_fe(0x82)];
        let steps = feed_all_as(ResponseKind::Fetch, NO_EOF, &fetched);
        assert_eq!(steps[1], Step::Done { status: Some(0x82) });
        // Both capabilities: skipped metadata goes straight to the rows.
        let both = ResultFormat {
            deprecate_eof: true,
            metadata_flag: true,
            extended_metadata: false,
        };
        let packets = vec![vec![1, 0], b"\x00\x00\x01".to_vec(), ok_fe(2)];
        let steps = feed_all_as(ResponseKind::Execute, both, &packets);
        assert_eq!(steps[2], Step::Done { status: Some(2) });
    }

    #[test]
    fn cached_metadata_is_skipped_when_the_flag_says_so() {
        // Metadata follows (1): definitions and their EOF, rows, EOF.
        let with = vec![
            vec![1, 1],
            COLDEF.to_vec(),
            eof(2),
            b"\x00\x00\x01".to_vec(),
            eof(2),
        ];
        let steps = feed_all_as(ResponseKind::Execute, CACHED, &with);
        assert!(steps[..4].iter().all(|s| *s == Step::Continue));
        assert_eq!(steps[4], Step::Done { status: Some(2) });
        // Metadata skipped (0): the EOF comes right after the column count.
        let without = vec![vec![1, 0], eof(2), b"\x00\x00\x01".to_vec(), eof(0x22)];
        let steps = feed_all_as(ResponseKind::Execute, CACHED, &without);
        assert!(steps[..3].iter().all(|s| *s == Step::Continue));
        assert_eq!(steps[3], Step::Done { status: Some(0x22) });
        // Skipped metadata with a cursor: done at that EOF.
        let cursor = vec![vec![1, 0], eof(2 | SERVER_STATUS_CURSOR_EXISTS)];
        let steps = feed_all_as(ResponseKind::Execute, CACHED, &cursor);
        assert_eq!(
            steps[1],
            Step::Done {
                status: Some(2 | SERVER_STATUS_CURSOR_EXISTS)
            }
        );
        // Without the capability the byte after the count is not read: [1, 0] is still
        // a one-column count followed by its definition.
        let steps = feed_all(ResponseKind::Query, &with);
        assert_eq!(steps[4], Step::Done { status: Some(2) });
        // The flag byte missing is a violation, not a guess.
        let mut t = ResponseTracker::new(ResponseKind::Execute, CACHED);
        assert!(t.feed(&[1], 1).is_err());
    }

    #[test]
    fn prepare_with_params_and_columns() {
        let prep_ok = vec![0, 1, 0, 0, 0, 1, 0, 2, 0, 0, 0, 0];
        let packets = vec![
            prep_ok,
            COLDEF.to_vec(),
            COLDEF.to_vec(),
            eof(2),
            COLDEF.to_vec(),
            eof(2),
        ];
        let steps = feed_all(ResponseKind::Prepare, &packets);
        assert!(steps[..5].iter().all(|s| *s == Step::Continue));
        assert_eq!(steps[5], Step::Done { status: None });
    }

    #[test]
    fn prepare_without_params_or_columns_is_one_packet() {
        let steps = feed_all(
            ResponseKind::Prepare,
            &[vec![0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]],
        );
        assert_eq!(steps, vec![Step::Done { status: None }]);
    }

    #[test]
    fn field_list_and_fetch_end_at_eof() {
        let steps = feed_all(ResponseKind::FieldList, &[COLDEF.to_vec(), eof(2)]);
        assert_eq!(steps[1], Step::Done { status: Some(2) });
        let steps = feed_all(ResponseKind::Fetch, &[b"\x00\x00\x01".to_vec(), eof(0x82)]);
        assert_eq!(steps[1], Step::Done { status: Some(0x82) });
    }

    #[test]
    fn garbage_is_a_violation_not_a_panic() {
        let mut t = ResponseTracker::new(ResponseKind::Query, ResultFormat::default());
        assert!(t.feed(&[], 0).is_err());
        let mut t = ResponseTracker::new(ResponseKind::Prepare, ResultFormat::default());
        assert!(t.feed(&[0, 1], 2).is_err());
        let mut t = ResponseTracker::new(ResponseKind::Query, ResultFormat::default());
        assert!(t.feed(&[0xfc], 1).is_err());
        t.feed(&[1], 1).unwrap();
        t.feed(COLDEF, COLDEF.len()).unwrap();
        assert!(t.feed(b"\x011", 2).is_err());
    }
}
