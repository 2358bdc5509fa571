//! The one way dbrouter brings a backend connection to a state with commands of its own:
//! the pool's reset of a returned connection, the session's state replay on a connection
//! it takes, and reading the connection's dialect back. The commands go out in one write
//! and their answers are read in order — one round trip however many there are — and
//! each answer is checked against what it must be. The dialect query, when asked for,
//! rides at the end of the same round trip.

use std::time::Duration;

use super::connection::{dialect_from_answer, BackendConn};
use super::exchange::{read_response, ExchangeError};
use crate::protocol::packets::{parse_err, ERR_HEADER, OK_HEADER};
use crate::protocol::response::ResponseKind;
use crate::router::dialect::DIALECT_QUERY;

/// What the answer to one command of a pipeline must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// An OK packet.
    Ok,
    /// Anything but an ERR (COM_SET_OPTION answers EOF; a SET may answer with warnings).
    NotErr,
    /// A result set whose first row is exactly this text row (length-encoded values).
    Row(&'static [u8]),
}

/// Commands dbrouter sends on its own, answered in one round trip.
#[derive(Debug, Default)]
pub struct Pipeline {
    steps: Vec<(Vec<u8>, ResponseKind, Expect)>,
    dialect: bool,
}

/// Why a pipeline failed. After any of these the connection's state is unknown: close it.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The connection failed or timed out, or its answer made no sense.
    #[error(transparent)]
    Exchange(#[from] ExchangeError),
    /// The server refused one of the commands.
    #[error("ERROR {code}: {message}")]
    Refused {
        /// MySQL error code.
        code: u16,
        /// The server's message.
        message: String,
    },
    /// An answer other than the one the command must have.
    #[error("unexpected answer to {0}")]
    Unexpected(String),
}

impl Pipeline {
    /// An empty pipeline.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a command (a whole payload, command byte first) and what its answer must be.
    pub fn push(&mut self, payload: Vec<u8>, kind: ResponseKind, expect: Expect) {
        self.steps.push((payload, kind, expect));
    }

    /// Ends the round trip with the dialect query ([`DIALECT_QUERY`]); its answer becomes
    /// the connection's [`BackendConn::dialect`].
    pub fn read_dialect(&mut self) {
        self.dialect = true;
    }

    /// Whether there is nothing to send.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty() && !self.dialect
    }

    /// Sends every command in one write and checks every answer, each read within
    /// `timeout`. Stops at the first answer that is not what it must be.
    pub async fn run(
        &self,
        conn: &mut BackendConn,
        timeout: Duration,
    ) -> Result<(), PipelineError> {
        if self.is_empty() {
            return Ok(());
        }
        let format = conn.result_format();
        for (payload, _, _) in &self.steps {
            conn.io.queue(0, payload);
        }
        if self.dialect {
            conn.io.queue(0, DIALECT_QUERY);
        }
        conn.io.flush().await.map_err(ExchangeError::Net)?;
        for (payload, kind, expect) in &self.steps {
            let packets = read_response(&mut conn.io, *kind, format, timeout).await?;
            let first = packets.first().map(|p| &p[..]).unwrap_or_default();
            if first.first() == Some(&ERR_HEADER) {
                let (code, message) =
                    parse_err(first).map_or((0, "an error".to_string()), |e| (e.code, e.message));
                return Err(PipelineError::Refused { code, message });
            }
            let fine = match expect {
                Expect::Ok => first.first() == Some(&OK_HEADER),
                Expect::NotErr => true,
                Expect::Row(row) => packets
                    .get(format.text_rows_start(1))
                    .is_some_and(|r| &r[..] == *row),
            };
            if !fine {
                return Err(PipelineError::Unexpected(describe(payload)));
            }
        }
        if self.dialect {
            let packets = read_response(&mut conn.io, ResponseKind::Query, format, timeout).await?;
            conn.dialect = dialect_from_answer(&packets, format, &conn.server_version)
                .ok_or_else(|| PipelineError::Unexpected(describe(DIALECT_QUERY)))?;
        }
        Ok(())
    }
}

/// A command for an error message: its protocol name, and the statement of a COM_QUERY.
fn describe(payload: &[u8]) -> String {
    let command = payload.first().copied().unwrap_or(0);
    match payload.get(1..) {
        Some(sql) if command == crate::protocol::command::COM_QUERY => {
            format!("`{}`", String::from_utf8_lossy(sql))
        }
        _ => crate::protocol::command::name(command).to_string(),
    }
}
