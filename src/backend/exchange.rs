//! Internal exchanges with a backend: sending a command dbrouter issues itself (a state
//! replay, a prepare on another shard, a pool reset) and collecting its whole, small
//! response. Relayed client results never come through here: they stream.

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::net::{NetError, PacketConn};
use crate::protocol::response::{
    ProtocolViolation, ResponseKind, ResponseTracker, ResultFormat, Step,
};

/// Largest internal response (prepare metadata, OK/ERR of a replayed command) collected.
const INTERNAL_RESPONSE_LIMIT: usize = 1 << 24;

/// Reads one whole response (for internal exchanges, never for relayed results) on a
/// connection whose result sets are framed as `format`.
pub async fn read_response(
    io: &mut PacketConn<impl AsyncRead + AsyncWrite + Unpin>,
    kind: ResponseKind,
    format: ResultFormat,
    timeout: std::time::Duration,
) -> Result<Vec<BytesMut>, ExchangeError> {
    let mut tracker = ResponseTracker::new(kind, format);
    let mut packets = Vec::new();
    loop {
        let (_, packet) =
            tokio::time::timeout(timeout, io.read_logical(INTERNAL_RESPONSE_LIMIT, None))
                .await
                .map_err(|_| ExchangeError::Net(NetError::Timeout(timeout)))??;
        let step = tracker.feed(&packet, packet.len())?;
        packets.push(packet);
        match step {
            Step::Continue => {}
            Step::Done { .. } => return Ok(packets),
            Step::LocalInfile => return Err(ExchangeError::UnexpectedInfile),
        }
    }
}

/// Why an internal exchange with a backend failed.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// The connection failed.
    #[error(transparent)]
    Net(#[from] NetError),
    /// The backend's answer made no sense.
    #[error(transparent)]
    Protocol(#[from] ProtocolViolation),
    /// A LOCAL INFILE request where none can be served.
    #[error("unexpected LOCAL INFILE request")]
    UnexpectedInfile,
}

/// Sends one command and collects its whole response (an ERR answer is a response too;
/// the error is about the connection, whose state is then unknown).
pub async fn exchange(
    io: &mut PacketConn<impl AsyncRead + AsyncWrite + Unpin>,
    payload: &[u8],
    kind: ResponseKind,
    format: ResultFormat,
    timeout: std::time::Duration,
) -> Result<Vec<BytesMut>, ExchangeError> {
    io.queue(0, payload);
    io.flush().await?;
    read_response(io, kind, format, timeout).await
}
