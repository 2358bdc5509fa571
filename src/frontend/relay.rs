//! The relay of one backend response to the client: backend bytes are copied to the
//! client in the batches they arrived in, without decoding rows; the
//! [`ResponseScanner`] finds where the response ends. LOCAL INFILE uploads are relayed
//! from the client to the backend in between.

use std::time::Duration;

use bytes::Buf;
use tokio::io::AsyncWriteExt;

use crate::net::{BackendIo, ClientStream, NetError, PacketConn, Watchdog, MAX_PAYLOAD_LEN};
use crate::protocol::response::{ProtocolViolation, ResponseKind, ResultFormat, Step};
use crate::protocol::scanner::{ResponseScanner, STREAM_THRESHOLD};

/// How a relay ended when it did not complete.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// Reading from or writing to the backend failed, or it closed the connection.
    #[error("backend connection failed: {0}")]
    Backend(NetError),
    /// The backend sent nothing for the configured time.
    #[error("backend sent nothing for {0:?}")]
    BackendTimeout(Duration),
    /// Writing to (or reading a LOCAL INFILE upload from) the client failed.
    #[error("client connection failed: {0}")]
    Client(NetError),
    /// The backend stream made no sense.
    #[error(transparent)]
    Protocol(#[from] ProtocolViolation),
    /// The server refused the statement as read-only (ERR 1290, its whole answer, not sent
    /// to the client): it did not run, and the server may no longer be the master.
    #[error("the server is read-only (ERR 1290)")]
    ReadOnly(Vec<u8>),
    /// The server stopped answering and the topology names another master of its shard
    /// now (a failover): the statement's outcome is unknown.
    #[error("the server stopped answering and is no longer the shard's master")]
    MasterReplaced,
}

/// MariaDB's ER_OPTION_PREVENTS_STATEMENT: "running with the --read-only option".
const ER_OPTION_PREVENTS_STATEMENT: u16 = 1290;

/// The payload of `bytes` when they are exactly one ERR packet with code 1290.
fn read_only_refusal(bytes: &[u8]) -> Option<&[u8]> {
    let header = bytes.get(..4)?;
    let len = usize::from(header[0]) | usize::from(header[1]) << 8 | usize::from(header[2]) << 16;
    let payload = bytes.get(4..)?;
    let code = u16::from_le_bytes([*payload.get(1)?, *payload.get(2)?]);
    (payload.len() == len && payload.first() == Some(&0xFF) && code == ER_OPTION_PREVENTS_STATEMENT)
        .then_some(payload)
}

/// How long the backend may be silent before the relay checks whether its server is still
/// the shard's master (a master cut off by the network never closes its connections).
const MASTER_RECHECK: Duration = Duration::from_secs(1);

/// What the relay left behind when it failed: can an ERR packet still be sent?
#[derive(Debug, Clone, Copy)]
pub struct RelayPosition {
    /// Sequence id of the last packet forwarded to the client.
    pub last_seq: u8,
    /// True when the client received part of a packet: nothing more can be sent.
    pub mid_packet: bool,
}

/// Timeouts the relay applies.
#[derive(Debug, Clone, Copy)]
pub struct RelayTimeouts {
    /// Silence allowed from the backend.
    pub backend_read: Duration,
    /// Time allowed for a client write.
    pub client_write: Duration,
    /// Silence allowed from a client uploading a LOCAL INFILE.
    pub client_read: Duration,
}

/// What a relayed response said that the session needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Relayed {
    /// Server status flags of the final OK or EOF (`None` after an ERR).
    pub status: Option<u16>,
    /// An OK carried a non-zero last insert id.
    pub inserted: bool,
    /// A terminator reported warnings.
    pub warned: bool,
}

/// Relays the response to the command that ended with sequence id `command_seq`, under
/// the time limits of `timeouts` kept by the session's `watchdog`; `replaced` says
/// whether the backend's server is no longer its shard's master (asked only after a
/// silence of [`MASTER_RECHECK`]).
/// Returns the final server status flags (`None` after an ERR), or the error with the
/// position reached.
pub async fn relay_response(
    client: &mut PacketConn<impl ClientStream>,
    backend: &mut PacketConn<BackendIo>,
    (kind, format): (ResponseKind, ResultFormat),
    command_seq: u8,
    timeouts: RelayTimeouts,
    watchdog: &mut Watchdog,
    replaced: impl Fn() -> bool,
) -> Result<Relayed, (RelayError, RelayPosition)> {
    let mut scanner = ResponseScanner::new(kind, format, command_seq);
    let position = |s: &ResponseScanner| RelayPosition {
        last_seq: s.last_seq(),
        mid_packet: s.mid_packet(),
    };
    let mut first = true;
    loop {
        let buf = backend.read_buffer();
        let scan = scanner
            .scan(buf)
            .map_err(|e| (e.into(), position(&scanner)))?;
        if first && scan.consumed > 0 {
            first = false;
            if let Some(payload) = read_only_refusal(&buf[..scan.consumed]) {
                // Kept from the client: the session decides (a newer master may take it).
                let payload = payload.to_vec();
                buf.advance(scan.consumed);
                return Err((RelayError::ReadOnly(payload), position(&scanner)));
            }
        }
        if scan.consumed > 0 {
            // Everything scanned goes to the client in one write, as it arrived.
            write_client(
                client,
                &buf[..scan.consumed],
                timeouts.client_write,
                watchdog,
            )
            .await
            .map_err(|e| (RelayError::Client(e), position(&scanner)))?;
            buf.advance(scan.consumed);
        }
        if scan.incomplete_packet > buf.len() {
            buf.reserve(scan.incomplete_packet - buf.len());
        }
        match scan.finished {
            Some(Step::Done { status }) => {
                return Ok(Relayed {
                    status,
                    inserted: scanner.inserted(),
                    warned: scanner.warned(),
                })
            }
            Some(Step::LocalInfile) => {
                relay_local_infile(client, backend, timeouts, watchdog)
                    .await
                    .map_err(|e| (e, position(&scanner)))?;
            }
            Some(Step::Continue) | None => {
                // Waited for in slices of MASTER_RECHECK (reading into the buffer is
                // cancel-safe): between two, a server that is no longer the master is
                // given up. A fast answer costs one timer, as before.
                let deadline = tokio::time::Instant::now() + timeouts.backend_read;
                loop {
                    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                    match watchdog
                        .limit(left.min(MASTER_RECHECK), backend.fill())
                        .await
                    {
                        Ok(Ok(_)) => break,
                        Ok(Err(e)) => return Err((RelayError::Backend(e), position(&scanner))),
                        Err(_) if left <= MASTER_RECHECK => {
                            return Err((
                                RelayError::BackendTimeout(timeouts.backend_read),
                                position(&scanner),
                            ))
                        }
                        Err(_) if replaced() => {
                            return Err((RelayError::MasterReplaced, position(&scanner)))
                        }
                        Err(_) => {}
                    }
                }
            }
        }
    }
}

async fn write_client(
    client: &mut PacketConn<impl ClientStream>,
    bytes: &[u8],
    timeout: Duration,
    watchdog: &mut Watchdog,
) -> Result<(), NetError> {
    let stream = client.stream_mut();
    let write = async {
        stream.write_all(bytes).await?;
        // TLS may hold back records it could not write yet (a socket: nothing to flush).
        stream.flush().await
    };
    match watchdog.limit(timeout, write).await {
        Ok(result) => result.map_err(NetError::from),
        Err(_) => Err(NetError::Timeout(timeout)),
    }
}

/// After the server's LOCAL INFILE request: copies the client's file packets to the
/// backend up to and including the empty packet that ends the upload.
async fn relay_local_infile(
    client: &mut PacketConn<impl ClientStream>,
    backend: &mut PacketConn<BackendIo>,
    timeouts: RelayTimeouts,
    watchdog: &mut Watchdog,
) -> Result<(), RelayError> {
    loop {
        let read = watchdog.limit(timeouts.client_read, client.read_physical(MAX_PAYLOAD_LEN));
        let (seq, data) = match read.await {
            Ok(Ok(packet)) => packet,
            Ok(Err(e)) => return Err(RelayError::Client(e)),
            Err(_) => return Err(RelayError::Client(NetError::Timeout(timeouts.client_read))),
        };
        // Re-framing one physical packet reproduces its header byte for byte.
        backend.queue(seq, &data);
        if data.is_empty() || backend.pending_write_len() >= STREAM_THRESHOLD {
            backend.flush().await.map_err(RelayError::Backend)?;
        }
        if data.is_empty() {
            return Ok(());
        }
    }
}
