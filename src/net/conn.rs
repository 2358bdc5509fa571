//! A buffered packet connection: reads whole physical or logical packets out of a
//! `BytesMut` read buffer (a partial packet never allocates more than its declared
//! length, and that length is checked against a limit first) and queues outgoing packets
//! in a write buffer that is flushed with one write.

use std::io;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::packet::{parse_header, write_packet, HEADER_LEN, MAX_PAYLOAD_LEN};

/// Initial capacity of a client's read buffer: statements are small, and an idle client
/// connection should cost little memory (10 000 of them are a normal load).
pub const CLIENT_READ_CAPACITY: usize = 2 * 1024;

/// A read buffer larger than this is given back once empty ([`PacketConn::shrink_read_buffer`]).
const SHRINK_ABOVE: usize = 1 << 20;

/// Initial capacity of a backend's read buffer: results arrive in bulk, and larger reads
/// mean fewer system calls on the relay path.
pub const BACKEND_READ_CAPACITY: usize = 32 * 1024;

/// Why reading or writing packets failed.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The peer closed the connection.
    #[error("connection closed by peer")]
    Closed,
    /// The socket failed.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    /// A packet (logical, with continuations) is larger than the configured limit.
    #[error("packet of at least {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Bytes announced so far.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// A packet arrived with an unexpected sequence id.
    #[error("packets out of order: expected sequence id {expected}, got {got}")]
    OutOfOrder {
        /// The sequence id the protocol requires here.
        expected: u8,
        /// The one that arrived.
        got: u8,
    },
    /// The peer did not send or accept data in time.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
}

/// A byte stream with MySQL packet framing on top.
#[derive(Debug)]
pub struct PacketConn<S> {
    stream: S,
    rbuf: BytesMut,
    wbuf: BytesMut,
    /// Whether packet sequence ids are checked: not under the compressed protocol, where
    /// the compressed packets carry the sequence (MariaDB's C connector numbers the inner
    /// packets of one command all 0) and MariaDB checks only those.
    check_sequence: bool,
}

/// A client's byte stream: TCP, TLS over TCP ([`super::ClientIo`]), an in-memory duplex in tests.
pub trait ClientStream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> ClientStream for T {}

impl<S: AsyncRead + AsyncWrite + Unpin> PacketConn<S> {
    /// Wraps a connected stream with a client-sized read buffer.
    pub fn new(stream: S) -> Self {
        Self::with_capacity(stream, CLIENT_READ_CAPACITY)
    }

    /// Wraps a connected stream with a read buffer of `capacity` bytes to start with (it
    /// grows as packets need).
    pub fn with_capacity(stream: S, capacity: usize) -> Self {
        Self {
            stream,
            rbuf: BytesMut::with_capacity(capacity),
            wbuf: BytesMut::new(),
            check_sequence: true,
        }
    }

    /// The bytes read from the peer but not consumed yet.
    pub fn read_buffer(&mut self) -> &mut BytesMut {
        &mut self.rbuf
    }

    /// The underlying stream, for raw writes of relayed bytes.
    pub fn stream_mut(&mut self) -> &mut S {
        &mut self.stream
    }

    /// Whether unconsumed bytes are waiting in the read buffer.
    pub fn has_buffered_input(&self) -> bool {
        !self.rbuf.is_empty()
    }

    /// The stream, for a caller that speaks another framing from here on (nothing may
    /// be buffered: see [`PacketConn::has_buffered_input`]).
    pub fn into_stream(self) -> S {
        self.stream
    }

    /// Whether the read buffer holds a whole packet that ends a logical packet (no
    /// continuation follows): reading it needs no more bytes from the peer.
    pub fn has_complete_packet(&self) -> bool {
        parse_header(&self.rbuf)
            .is_some_and(|(len, _)| len < MAX_PAYLOAD_LEN && self.rbuf.len() >= HEADER_LEN + len)
    }

    /// Gives back the memory of a read buffer that grew for a big packet, once it is
    /// empty: a session keeps [`CLIENT_READ_CAPACITY`] between commands, not the size of
    /// the largest statement it ever sent.
    pub fn shrink_read_buffer(&mut self) {
        if self.rbuf.is_empty() && self.rbuf.capacity() > SHRINK_ABOVE {
            self.rbuf = BytesMut::with_capacity(CLIENT_READ_CAPACITY);
        }
    }

    /// Reads more bytes from the peer into the read buffer.
    pub async fn fill(&mut self) -> Result<usize, NetError> {
        if self.rbuf.capacity() - self.rbuf.len() < 1024 {
            // Grow geometrically; a buffer that held a big result keeps its room.
            self.rbuf
                .reserve(self.rbuf.capacity().max(CLIENT_READ_CAPACITY));
        }
        let n = self.stream.read_buf(&mut self.rbuf).await?;
        if n == 0 {
            return Err(NetError::Closed);
        }
        Ok(n)
    }

    /// Reads one physical packet whose payload may be at most `limit` bytes.
    /// Returns its sequence id and payload.
    pub async fn read_physical(&mut self, limit: usize) -> Result<(u8, BytesMut), NetError> {
        loop {
            if let Some((len, seq)) = parse_header(&self.rbuf) {
                if len > limit {
                    return Err(NetError::TooLarge { size: len, limit });
                }
                let total = HEADER_LEN + len;
                if self.rbuf.len() >= total {
                    let mut packet = self.rbuf.split_to(total);
                    packet.advance(HEADER_LEN);
                    return Ok((seq, packet));
                }
                self.rbuf.reserve(total - self.rbuf.len());
            }
            self.fill().await?;
        }
    }

    /// Reads one logical packet (joining continuation packets) of at most `limit` bytes.
    /// The first packet must carry sequence id `first_seq` when given, and continuations
    /// must follow in order. Returns the last sequence id seen and the payload.
    pub async fn read_logical(
        &mut self,
        limit: usize,
        first_seq: Option<u8>,
    ) -> Result<(u8, BytesMut), NetError> {
        let (mut seq, mut payload) = self.read_physical(limit).await?;
        if let Some(expected) = first_seq.filter(|_| self.check_sequence) {
            if seq != expected {
                return Err(NetError::OutOfOrder { expected, got: seq });
            }
        }
        let mut last_len = payload.len();
        while last_len == MAX_PAYLOAD_LEN {
            let remaining = limit.saturating_sub(payload.len());
            let (next_seq, more) = match self.read_physical(remaining).await {
                Err(NetError::TooLarge { size, .. }) => {
                    return Err(NetError::TooLarge {
                        size: payload.len() + size,
                        limit,
                    })
                }
                other => other?,
            };
            let expected = seq.wrapping_add(1);
            if next_seq != expected && self.check_sequence {
                return Err(NetError::OutOfOrder {
                    expected,
                    got: next_seq,
                });
            }
            seq = next_seq;
            last_len = more.len();
            payload.unsplit(more);
        }
        Ok((seq, payload))
    }

    /// Queues one logical packet for sending; returns the next sequence id.
    pub fn queue(&mut self, seq: u8, payload: &[u8]) -> u8 {
        write_packet(&mut self.wbuf, seq, payload)
    }

    /// Bytes queued but not sent yet.
    pub fn pending_write_len(&self) -> usize {
        self.wbuf.len()
    }

    /// Sends everything queued.
    pub async fn flush(&mut self) -> Result<(), NetError> {
        if !self.wbuf.is_empty() {
            self.stream.write_all(&self.wbuf).await?;
            self.wbuf.clear();
            // A TLS stream may keep records it could not write yet; a socket has nothing
            // to flush (the call returns at once).
            self.stream.flush().await?;
        }
        Ok(())
    }

    /// Sends already framed bytes after anything queued.
    pub async fn write_raw(&mut self, bytes: &[u8]) -> Result<(), NetError> {
        self.flush().await?;
        self.stream.write_all(bytes).await?;
        self.stream.flush().await?;
        Ok(())
    }

    /// Shuts the write side down, ignoring errors (the peer may be gone already).
    pub async fn shutdown(&mut self) {
        let _ = self.flush().await;
        let _ = self.stream.shutdown().await;
    }

    /// Shuts the write side down, then reads and drops what the peer still sends — at
    /// most `limit` bytes, for at most `within` — before the socket is closed. For a peer
    /// still writing a packet that was refused: closing with its bytes unread would send
    /// a reset, which can make the peer lose the ERR that explains the refusal. Nothing is
    /// kept (a small buffer, reused).
    pub async fn shutdown_discarding(&mut self, limit: usize, within: std::time::Duration) {
        self.shutdown().await;
        let mut scratch = [0u8; 16 * 1024];
        let mut left = limit;
        let drain = async {
            while left > 0 {
                match self.stream.read(&mut scratch).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => left = left.saturating_sub(n),
                }
            }
        };
        let _ = tokio::time::timeout(within, drain).await;
    }
}

impl PacketConn<super::BackendIo> {
    /// Re-registers the socket with the calling thread's runtime, keeping buffered bytes
    /// (and the TLS session, if any).
    pub fn rehome(mut self) -> io::Result<Self> {
        self.stream.rehome()?;
        Ok(self)
    }

    /// After the SSLRequest: the TLS handshake with the server at `host`.
    pub async fn start_tls_client(
        &mut self,
        tls: &super::BackendTls,
        host: &str,
    ) -> io::Result<()> {
        if !self.rbuf.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the server sent data before the TLS handshake",
            ));
        }
        self.stream.start_tls(tls, host).await
    }

    /// Whether the connection is encrypted.
    pub fn is_tls(&self) -> bool {
        self.stream.is_tls()
    }

    /// Whether an idle connection was closed by its server (or has unread bytes).
    pub fn looks_closed(&self) -> bool {
        !self.rbuf.is_empty() || self.stream.looks_closed()
    }

    /// Whether anything may have arrived since the last answer was read: unread bytes, or
    /// the reactor of the thread the socket is registered with saw it readable (bytes or
    /// EOF). No syscall. False is reliable only for a socket registered with the calling
    /// thread since before it went idle (a fresh registration has seen nothing yet).
    pub fn may_have_input(&self) -> bool {
        !self.rbuf.is_empty() || self.stream.may_have_input()
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> PacketConn<super::ClientIo<T>> {
    /// A client connection over `stream`, in clear text and uncompressed.
    pub fn client(stream: T) -> Self {
        Self::new(super::Compressible::new(super::tls::MaybeTls::Plain(
            stream,
        )))
    }

    /// After the client's SSLRequest: the TLS handshake, fed first with whatever the
    /// client sent past the request (its hello usually arrives with it).
    pub async fn start_tls(&mut self, acceptor: &tokio_rustls::TlsAcceptor) -> io::Result<()> {
        let read_ahead = std::mem::take(&mut self.rbuf);
        self.stream.get_mut().start_tls(acceptor, read_ahead).await
    }

    /// Whether the connection is encrypted.
    pub fn is_tls(&self) -> bool {
        self.stream.get_ref().is_tls()
    }

    /// After the login's OK (sent uncompressed): the compressed protocol from now on,
    /// both ways. Bytes already read belong to the first compressed packet.
    pub fn start_compression(&mut self) {
        let read_ahead = std::mem::take(&mut self.rbuf);
        self.stream.start_compression(read_ahead);
        self.check_sequence = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{duplex, AsyncWriteExt};

    #[tokio::test]
    async fn reads_packets_split_across_writes() {
        let (mut a, b) = duplex(64);
        let mut conn = PacketConn::new(b);
        tokio::spawn(async move {
            a.write_all(&[3, 0, 0]).await.unwrap();
            a.write_all(&[0, b'a', b'b']).await.unwrap();
            a.write_all(b"c").await.unwrap();
        });
        let (seq, payload) = conn.read_logical(100, Some(0)).await.unwrap();
        assert_eq!(seq, 0);
        assert_eq!(&payload[..], b"abc");
    }

    #[tokio::test]
    async fn rejects_oversized_header_before_body() {
        let (mut a, b) = duplex(64);
        let mut conn = PacketConn::new(b);
        a.write_all(&[0xff, 0xff, 0x00, 0]).await.unwrap();
        let err = conn.read_logical(1000, Some(0)).await.unwrap_err();
        assert!(matches!(err, NetError::TooLarge { .. }), "{err}");
    }

    #[tokio::test]
    async fn rejects_wrong_sequence() {
        let (mut a, b) = duplex(64);
        let mut conn = PacketConn::new(b);
        a.write_all(&[1, 0, 0, 5, 0x0e]).await.unwrap();
        let err = conn.read_logical(1000, Some(0)).await.unwrap_err();
        assert!(matches!(
            err,
            NetError::OutOfOrder {
                expected: 0,
                got: 5
            }
        ));
    }

    #[tokio::test]
    async fn truncated_packet_reports_closed() {
        let (mut a, b) = duplex(64);
        let mut conn = PacketConn::new(b);
        a.write_all(&[10, 0, 0, 0, 1, 2]).await.unwrap();
        drop(a);
        let err = conn.read_logical(1000, Some(0)).await.unwrap_err();
        assert!(matches!(err, NetError::Closed));
    }
}
