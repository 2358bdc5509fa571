//! The relay of one backend response to the client: backend bytes are scanned for packet
//! headers and copied to the client in the batches they arrived in, without decoding rows.
//! Only packet heads go through the [`ResponseTracker`] to find where the response ends;
//! packets larger than [`STREAM_THRESHOLD`] are streamed through without being buffered
//! whole. LOCAL INFILE uploads are relayed from the client to the backend in between.

use std::time::Duration;

use bytes::Buf;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::net::{parse_header, NetError, PacketConn, HEADER_LEN, MAX_PAYLOAD_LEN};
use crate::protocol::response::{ProtocolViolation, ResponseKind, ResponseTracker, Step};

/// Packets at least this large are streamed to the client as their bytes arrive instead
/// of being buffered whole; they are rows or data, never terminators.
pub const STREAM_THRESHOLD: usize = 64 * 1024;

/// How a relay ended when it did not complete.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// Reading from the backend failed or it closed the connection.
    #[error("backend read failed: {0}")]
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
}

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

/// Relays the response to the command that ended with sequence id `command_seq`.
/// Returns the final server status flags (`None` after an ERR), or the error with the
/// position reached.
pub async fn relay_response(
    client: &mut PacketConn<TcpStream>,
    backend: &mut PacketConn<TcpStream>,
    kind: ResponseKind,
    command_seq: u8,
    timeouts: RelayTimeouts,
) -> Result<Option<u16>, (RelayError, RelayPosition)> {
    let mut tracker = ResponseTracker::new(kind);
    let mut pos_info = RelayPosition {
        last_seq: command_seq,
        mid_packet: false,
    };
    // Bytes of the current physical packet still to copy without looking at them.
    let mut passthrough = 0usize;
    // The last physical packet was MAX_PAYLOAD_LEN long: the next one continues it.
    let mut continuation = false;
    // A step decided on the head of a long logical packet, applied when it ends.
    let mut pending: Option<Step> = None;

    loop {
        let mut finished = None;
        let buf = backend.read_buffer();
        let mut pos = 0;
        while finished.is_none() {
            if passthrough > 0 {
                let n = passthrough.min(buf.len() - pos);
                pos += n;
                passthrough -= n;
                if passthrough > 0 {
                    break;
                }
                if !continuation {
                    finished = pending.take().filter(|s| *s != Step::Continue);
                }
                continue;
            }
            let Some((len, seq)) = parse_header(&buf[pos..]) else {
                break;
            };
            let available = buf.len() - pos - HEADER_LEN;
            let was_continuation = continuation;
            if !was_continuation && available < len {
                if len < STREAM_THRESHOLD {
                    // Small packets are classified whole: wait for the rest of it.
                    buf.reserve(len - available);
                    break;
                }
                if available == 0 {
                    // A large packet is classified by its first byte: wait for it.
                    break;
                }
            }
            if was_continuation || available < len {
                // Stream this packet: it is a continuation or too large to buffer.
                if !was_continuation {
                    let step = tracker
                        .feed(&buf[pos + HEADER_LEN..pos + HEADER_LEN + available], len)
                        .map_err(|e| (e.into(), pos_info))?;
                    pending = Some(step);
                }
                continuation = len == MAX_PAYLOAD_LEN;
                pos_info.last_seq = seq;
                pos += HEADER_LEN;
                passthrough = len;
                if passthrough == 0 && !continuation {
                    finished = pending.take().filter(|s| *s != Step::Continue);
                }
                continue;
            }
            let payload = &buf[pos + HEADER_LEN..pos + HEADER_LEN + len];
            let step = tracker
                .feed(payload, len)
                .map_err(|e| (e.into(), pos_info))?;
            pos_info.last_seq = seq;
            pos += HEADER_LEN + len;
            continuation = len == MAX_PAYLOAD_LEN;
            if continuation {
                pending = Some(step);
            } else if step != Step::Continue {
                finished = Some(step);
            }
        }

        if pos > 0 {
            write_client(client, &buf[..pos], timeouts.client_write)
                .await
                .map_err(|e| (RelayError::Client(e), pos_info))?;
            buf.advance(pos);
        }
        pos_info.mid_packet = passthrough > 0 || continuation;

        match finished {
            Some(Step::Done { status }) => return Ok(status),
            Some(Step::LocalInfile) => {
                relay_local_infile(client, backend, &mut pos_info, timeouts).await?;
            }
            Some(Step::Continue) | None => {
                match tokio::time::timeout(timeouts.backend_read, backend.fill()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return Err((RelayError::Backend(e), pos_info)),
                    Err(_) => {
                        return Err((RelayError::BackendTimeout(timeouts.backend_read), pos_info))
                    }
                }
            }
        }
    }
}

async fn write_client(
    client: &mut PacketConn<TcpStream>,
    bytes: &[u8],
    timeout: Duration,
) -> Result<(), NetError> {
    match tokio::time::timeout(timeout, client.stream_mut().write_all(bytes)).await {
        Ok(result) => result.map_err(NetError::from),
        Err(_) => Err(NetError::Timeout(timeout)),
    }
}

/// After the server's LOCAL INFILE request: copies the client's file packets to the
/// backend up to and including the empty packet that ends the upload.
async fn relay_local_infile(
    client: &mut PacketConn<TcpStream>,
    backend: &mut PacketConn<TcpStream>,
    pos_info: &mut RelayPosition,
    timeouts: RelayTimeouts,
) -> Result<(), (RelayError, RelayPosition)> {
    loop {
        let read =
            tokio::time::timeout(timeouts.client_read, client.read_physical(MAX_PAYLOAD_LEN));
        let (seq, data) = match read.await {
            Ok(Ok(packet)) => packet,
            Ok(Err(e)) => return Err((RelayError::Client(e), *pos_info)),
            Err(_) => {
                return Err((
                    RelayError::Client(NetError::Timeout(timeouts.client_read)),
                    *pos_info,
                ))
            }
        };
        // Re-framing one physical packet reproduces its header byte for byte.
        backend.queue(seq, &data);
        pos_info.last_seq = seq;
        if data.is_empty() || backend.pending_write_len() >= STREAM_THRESHOLD {
            backend
                .flush()
                .await
                .map_err(|e| (RelayError::Backend(e), *pos_info))?;
        }
        if data.is_empty() {
            return Ok(());
        }
    }
}
