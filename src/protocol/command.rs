//! Command bytes (the first payload byte of a client packet in the command phase)
//! and their names for logs and error messages.

/// COM_SLEEP (internal to the server; a client sending it gets "unknown command").
pub const COM_SLEEP: u8 = 0x00;
/// COM_QUIT: close the connection.
pub const COM_QUIT: u8 = 0x01;
/// COM_INIT_DB: change the default database.
pub const COM_INIT_DB: u8 = 0x02;
/// COM_QUERY: a text-protocol statement.
pub const COM_QUERY: u8 = 0x03;
/// COM_FIELD_LIST: list the columns of a table (deprecated, still used by the CLI).
pub const COM_FIELD_LIST: u8 = 0x04;
/// COM_CREATE_DB (deprecated).
pub const COM_CREATE_DB: u8 = 0x05;
/// COM_DROP_DB (deprecated).
pub const COM_DROP_DB: u8 = 0x06;
/// COM_REFRESH: flush caches (needs RELOAD).
pub const COM_REFRESH: u8 = 0x07;
/// COM_SHUTDOWN: shut the server down.
pub const COM_SHUTDOWN: u8 = 0x08;
/// COM_STATISTICS: a one-line status string.
pub const COM_STATISTICS: u8 = 0x09;
/// COM_PROCESS_INFO: the process list (deprecated).
pub const COM_PROCESS_INFO: u8 = 0x0a;
/// COM_PROCESS_KILL: kill a connection by id (deprecated).
pub const COM_PROCESS_KILL: u8 = 0x0c;
/// COM_DEBUG: dump debug info to the server log.
pub const COM_DEBUG: u8 = 0x0d;
/// COM_PING: liveness check.
pub const COM_PING: u8 = 0x0e;
/// COM_CHANGE_USER: re-authenticate and reset the session.
pub const COM_CHANGE_USER: u8 = 0x11;
/// COM_BINLOG_DUMP: replication stream.
pub const COM_BINLOG_DUMP: u8 = 0x12;
/// COM_REGISTER_SLAVE: replication registration.
pub const COM_REGISTER_SLAVE: u8 = 0x15;
/// COM_STMT_PREPARE: prepare a statement.
pub const COM_STMT_PREPARE: u8 = 0x16;
/// COM_STMT_EXECUTE: execute a prepared statement.
pub const COM_STMT_EXECUTE: u8 = 0x17;
/// COM_STMT_SEND_LONG_DATA: stream a parameter value (no response).
pub const COM_STMT_SEND_LONG_DATA: u8 = 0x18;
/// COM_STMT_CLOSE: deallocate a prepared statement (no response).
pub const COM_STMT_CLOSE: u8 = 0x19;
/// COM_STMT_RESET: reset a prepared statement's long data and cursor.
pub const COM_STMT_RESET: u8 = 0x1a;
/// COM_SET_OPTION: turn multi-statements on or off.
pub const COM_SET_OPTION: u8 = 0x1b;
/// COM_STMT_FETCH: fetch rows from a cursor.
pub const COM_STMT_FETCH: u8 = 0x1c;
/// COM_BINLOG_DUMP_GTID: replication stream by GTID.
pub const COM_BINLOG_DUMP_GTID: u8 = 0x1e;
/// COM_RESET_CONNECTION: reset session state without re-authenticating.
pub const COM_RESET_CONNECTION: u8 = 0x1f;
/// COM_STMT_BULK_EXECUTE: MariaDB array binding (needs an extended capability).
pub const COM_STMT_BULK_EXECUTE: u8 = 0xfa;

/// The COM_STMT_CLOSE payload that closes statement `id` (the server sends no answer).
pub fn stmt_close(id: u32) -> [u8; 5] {
    let [a, b, c, d] = id.to_le_bytes();
    [COM_STMT_CLOSE, a, b, c, d]
}

/// The protocol name of a command byte, for logs and error messages.
pub fn name(command: u8) -> &'static str {
    match command {
        COM_SLEEP => "COM_SLEEP",
        COM_QUIT => "COM_QUIT",
        COM_INIT_DB => "COM_INIT_DB",
        COM_QUERY => "COM_QUERY",
        COM_FIELD_LIST => "COM_FIELD_LIST",
        COM_CREATE_DB => "COM_CREATE_DB",
        COM_DROP_DB => "COM_DROP_DB",
        COM_REFRESH => "COM_REFRESH",
        COM_SHUTDOWN => "COM_SHUTDOWN",
        COM_STATISTICS => "COM_STATISTICS",
        COM_PROCESS_INFO => "COM_PROCESS_INFO",
        COM_PROCESS_KILL => "COM_PROCESS_KILL",
        COM_DEBUG => "COM_DEBUG",
        COM_PING => "COM_PING",
        COM_CHANGE_USER => "COM_CHANGE_USER",
        COM_BINLOG_DUMP => "COM_BINLOG_DUMP",
        COM_REGISTER_SLAVE => "COM_REGISTER_SLAVE",
        COM_STMT_PREPARE => "COM_STMT_PREPARE",
        COM_STMT_EXECUTE => "COM_STMT_EXECUTE",
        COM_STMT_SEND_LONG_DATA => "COM_STMT_SEND_LONG_DATA",
        COM_STMT_CLOSE => "COM_STMT_CLOSE",
        COM_STMT_RESET => "COM_STMT_RESET",
        COM_SET_OPTION => "COM_SET_OPTION",
        COM_STMT_FETCH => "COM_STMT_FETCH",
        COM_BINLOG_DUMP_GTID => "COM_BINLOG_DUMP_GTID",
        COM_RESET_CONNECTION => "COM_RESET_CONNECTION",
        COM_STMT_BULK_EXECUTE => "COM_STMT_BULK_EXECUTE",
        _ => "unknown command",
    }
}
