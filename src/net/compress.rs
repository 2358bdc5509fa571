//! MySQL protocol compression (`CLIENT_COMPRESS`, zlib) on a client's byte stream.
//!
//! With compression on, the bytes of ordinary packets travel inside *compressed packets*:
//! a 7-byte header — compressed length (3 bytes LE), a compressed sequence id, the
//! uncompressed length (3 bytes LE; 0 when the body is stored as is) — then the body, one
//! zlib stream per packet. A compressed packet may carry several ordinary packets or part
//! of one, so the packet layer above ([`super::PacketConn`]) reads and writes the
//! ordinary byte stream unchanged: [`Compressible`] sits between it and the socket (or
//! TLS), decompressing what it reads and compressing what it writes. Off (the usual
//! case), every call goes straight through.
//!
//! Sequence ids: the client numbers its compressed packets from 0 at each command; the
//! answer continues from the last one read (as MariaDB's `net_serv.cc` does), so the
//! next id written is always the last id read plus one, then counts up.
//!
//! Bounds: a compressed packet announces at most 16 MiB - 1 of uncompressed bytes (a
//! 3-byte field), and decompression stops there — a "zip bomb" inflates to no more than
//! that, and one packet at a time. A body that does not inflate to exactly the announced
//! length is an error (the connection ends). Bodies under [`MIN_COMPRESS_LENGTH`] bytes,
//! or that zlib cannot shrink, are sent stored, as MariaDB does.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Header of a compressed packet.
const HEADER: usize = 7;

/// Most uncompressed bytes one compressed packet carries (the 3-byte length field).
const MAX_CHUNK: usize = 0xff_ffff;

/// Bodies shorter than this are sent stored (MariaDB's `MIN_COMPRESS_LENGTH`).
pub const MIN_COMPRESS_LENGTH: usize = 50;

/// A byte stream that may switch to the compressed protocol.
#[derive(Debug)]
pub struct Compressible<T> {
    inner: T,
    zlib: Option<Box<Zlib>>,
}

/// The state of the compressed protocol on one connection.
struct Zlib {
    compress: Compress,
    decompress: Decompress,
    /// Bytes read from the peer that do not yet make a whole compressed packet.
    raw: BytesMut,
    /// Decompressed bytes not yet handed to the reader.
    plain: BytesMut,
    /// Compressed packets written but not yet accepted by the stream below.
    out: BytesMut,
    /// The sequence id of the next compressed packet written.
    seq: u8,
}

impl std::fmt::Debug for Zlib {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Zlib")
            .field("raw", &self.raw.len())
            .field("plain", &self.plain.len())
            .field("out", &self.out.len())
            .field("seq", &self.seq)
            .finish()
    }
}

impl<T> Compressible<T> {
    /// The stream, uncompressed.
    pub fn new(inner: T) -> Self {
        Compressible { inner, zlib: None }
    }

    /// From now on, reads and writes use the compressed protocol; `read_ahead` holds
    /// bytes already read from the stream (the start of the first compressed packet).
    pub fn start_compression(&mut self, read_ahead: BytesMut) {
        self.zlib = Some(Box::new(Zlib {
            compress: Compress::new(Compression::default(), true),
            decompress: Decompress::new(true),
            raw: read_ahead,
            plain: BytesMut::new(),
            out: BytesMut::new(),
            seq: 0,
        }));
    }

    /// Whether the compressed protocol is on.
    pub fn is_compressed(&self) -> bool {
        self.zlib.is_some()
    }

    /// The stream below.
    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    /// The stream below, mutable.
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.inner
    }
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("compressed protocol: {what}"),
    )
}

impl Zlib {
    /// Decompresses the first whole compressed packet of `raw` into `plain`; false when
    /// `raw` holds no whole packet yet.
    fn unpack(&mut self) -> io::Result<bool> {
        let Some(header) = self.raw.get(..HEADER) else {
            return Ok(false);
        };
        let len =
            usize::from(header[0]) | usize::from(header[1]) << 8 | usize::from(header[2]) << 16;
        let seq = header[3];
        let plain_len =
            usize::from(header[4]) | usize::from(header[5]) << 8 | usize::from(header[6]) << 16;
        if self.raw.len() < HEADER + len {
            self.raw.reserve(HEADER + len - self.raw.len());
            return Ok(false);
        }
        self.raw.advance(HEADER);
        let body = self.raw.split_to(len);
        self.seq = seq.wrapping_add(1);
        if plain_len == 0 {
            self.plain.extend_from_slice(&body);
            return Ok(true);
        }
        // At most the announced length, which the 3-byte field bounds to 16 MiB - 1.
        let start = self.plain.len();
        self.plain.resize(start + plain_len, 0);
        self.decompress.reset(true);
        let status = self
            .decompress
            .decompress(&body, &mut self.plain[start..], FlushDecompress::Finish)
            .map_err(|e| invalid(&format!("zlib: {e}")))?;
        let produced = usize::try_from(self.decompress.total_out()).unwrap_or(usize::MAX);
        let consumed = usize::try_from(self.decompress.total_in()).unwrap_or(usize::MAX);
        if status != Status::StreamEnd || produced != plain_len || consumed != body.len() {
            return Err(invalid(
                "a packet does not inflate to the length it announces",
            ));
        }
        Ok(true)
    }

    /// Puts `data` (at most [`MAX_CHUNK`] bytes) in one compressed packet into `out`.
    fn pack(&mut self, data: &[u8]) -> io::Result<()> {
        let at = self.out.len();
        self.out.extend_from_slice(&[0; HEADER]);
        let mut plain_len = 0;
        if data.len() >= MIN_COMPRESS_LENGTH {
            self.compress.reset();
            // zlib's bound for one-shot compression of `data`.
            let room = data.len() + data.len() / 1000 + 64;
            self.out.resize(at + HEADER + room, 0);
            let status = self
                .compress
                .compress(data, &mut self.out[at + HEADER..], FlushCompress::Finish)
                .map_err(|e| invalid(&format!("zlib: {e}")))?;
            let written = usize::try_from(self.compress.total_out()).unwrap_or(usize::MAX);
            if status == Status::StreamEnd && written < data.len() {
                self.out.truncate(at + HEADER + written);
                plain_len = data.len();
            } else {
                self.out.truncate(at + HEADER);
            }
        }
        if plain_len == 0 {
            self.out.extend_from_slice(data);
        }
        let len = self.out.len() - at - HEADER;
        let header = &mut self.out[at..at + HEADER];
        header[..3].copy_from_slice(&(len as u32).to_le_bytes()[..3]);
        header[3] = self.seq;
        header[4..].copy_from_slice(&(plain_len as u32).to_le_bytes()[..3]);
        self.seq = self.seq.wrapping_add(1);
        Ok(())
    }
}

/// Writes what `out` holds to `inner`; Ready once it is all written.
fn drain<T: AsyncWrite + Unpin>(
    inner: &mut T,
    out: &mut BytesMut,
    cx: &mut Context<'_>,
) -> Poll<io::Result<()>> {
    while !out.is_empty() {
        match Pin::new(&mut *inner).poll_write(cx, out) {
            Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
            Poll::Ready(Ok(n)) => out.advance(n),
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        }
    }
    Poll::Ready(Ok(()))
}

impl<T: AsyncRead + Unpin> AsyncRead for Compressible<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let Some(zlib) = this.zlib.as_mut() else {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        };
        loop {
            if super::read_buffered(&mut zlib.plain, buf) {
                return Poll::Ready(Ok(()));
            }
            if zlib.unpack()? {
                continue;
            }
            // More compressed bytes from below.
            let mut chunk = [0u8; 16 * 1024];
            let mut read = ReadBuf::new(&mut chunk);
            match Pin::new(&mut this.inner).poll_read(cx, &mut read) {
                Poll::Ready(Ok(())) => {
                    if read.filled().is_empty() {
                        // EOF: the reader sees it (a cut compressed packet is lost with it).
                        return Poll::Ready(Ok(()));
                    }
                    zlib.raw.extend_from_slice(read.filled());
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Compressible<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let Some(zlib) = this.zlib.as_mut() else {
            return Pin::new(&mut this.inner).poll_write(cx, buf);
        };
        // What was packed before goes first; then this write becomes one packet.
        if drain(&mut this.inner, &mut zlib.out, cx)?.is_pending() {
            return Poll::Pending;
        }
        let n = buf.len().min(MAX_CHUNK);
        zlib.pack(&buf[..n])?;
        // Accepted once packed; what the stream below does not take now goes out with the
        // next write or the flush.
        if let Poll::Ready(Err(e)) = drain(&mut this.inner, &mut zlib.out, cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(zlib) = this.zlib.as_mut() {
            if drain(&mut this.inner, &mut zlib.out, cx)?.is_pending() {
                return Poll::Pending;
            }
        }
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(zlib) = this.zlib.as_mut() {
            if drain(&mut this.inner, &mut zlib.out, cx)?.is_pending() {
                return Poll::Pending;
            }
        }
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{duplex, AsyncReadExt, AsyncWriteExt};

    /// A compressed packet as a client would build it.
    fn packet(seq: u8, data: &[u8], compress: bool) -> Vec<u8> {
        let mut z = Zlib {
            compress: Compress::new(Compression::default(), true),
            decompress: Decompress::new(true),
            raw: BytesMut::new(),
            plain: BytesMut::new(),
            out: BytesMut::new(),
            seq,
        };
        if compress {
            z.pack(data).unwrap();
        } else {
            let mut p = (data.len() as u32).to_le_bytes()[..3].to_vec();
            p.push(seq);
            p.extend_from_slice(&[0, 0, 0]);
            p.extend_from_slice(data);
            return p;
        }
        z.out.to_vec()
    }

    #[tokio::test]
    async fn round_trips_small_large_stored_and_split_packets() {
        let (a, b) = duplex(1 << 20);
        let mut server = Compressible::new(a);
        server.start_compression(BytesMut::new());
        let mut client = b;
        // A stored packet, a compressed one, and one split across two writes.
        let big = vec![b'x'; 100_000];
        let mut bytes = packet(0, b"\x06\x00\x00\x00\x03hello", false);
        bytes.extend(packet(1, &big, true));
        client.write_all(&bytes[..10]).await.unwrap();
        client.write_all(&bytes[10..]).await.unwrap();
        let mut got = vec![0; 10 + big.len()];
        server.read_exact(&mut got).await.unwrap();
        assert_eq!(&got[..10], b"\x06\x00\x00\x00\x03hello");
        assert_eq!(&got[10..], &big[..]);
        // The answer continues the client's sequence: 2, then 3.
        server
            .write_all(b"\x07\x00\x00\x01\x00\x00\x00\x02\x00\x00\x00")
            .await
            .unwrap();
        server.write_all(&[b'y'; 200]).await.unwrap();
        server.flush().await.unwrap();
        let mut header = [0u8; HEADER];
        client.read_exact(&mut header).await.unwrap();
        assert_eq!(header[3], 2);
        assert_eq!(&header[4..], &[0, 0, 0], "short: stored");
        let mut body = vec![0; usize::from(header[0])];
        client.read_exact(&mut body).await.unwrap();
        client.read_exact(&mut header).await.unwrap();
        assert_eq!(header[3], 3);
        assert_eq!(&header[4..], &[200, 0, 0], "compressed, 200 bytes inflated");
        let len = usize::from(header[0]) | usize::from(header[1]) << 8;
        assert!(len < 200);
    }

    #[tokio::test]
    async fn a_bomb_or_a_lie_about_the_length_is_an_error() {
        for lie in [1usize, 1000] {
            let (a, b) = duplex(1 << 16);
            let mut server = Compressible::new(a);
            server.start_compression(BytesMut::new());
            let mut client = b;
            let mut p = packet(0, &vec![b'z'; 5000], true);
            // Announce another uncompressed length than the body inflates to.
            p[4..7].copy_from_slice(&((5000 + lie) as u32).to_le_bytes()[..3]);
            client.write_all(&p).await.unwrap();
            let mut got = vec![0; 10];
            let err = server.read_exact(&mut got).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        }
        // Garbage instead of zlib.
        let (a, b) = duplex(1 << 16);
        let mut server = Compressible::new(a);
        server.start_compression(BytesMut::new());
        let mut client = b;
        client.write_all(&[60, 0, 0, 0, 100, 0, 0]).await.unwrap();
        client.write_all(&[0xab; 60]).await.unwrap();
        let mut got = vec![0; 10];
        assert!(server.read_exact(&mut got).await.is_err());
    }

    #[tokio::test]
    async fn off_it_is_the_stream_itself() {
        let (a, b) = duplex(1024);
        let mut server = Compressible::new(a);
        let mut client = b;
        client.write_all(b"plain").await.unwrap();
        let mut got = [0u8; 5];
        server.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"plain");
        assert!(!server.is_compressed());
    }
}
