//! Framing of MySQL packets over byte streams: the 4-byte header (3-byte little-endian
//! payload length + sequence id), continuation packets for payloads of 16 MiB - 1 and
//! more, a buffered packet connection used by both the client and the backend side, TLS
//! for client and backend connections, the compressed protocol for clients, resizable
//! connection bounds (`slots.rs`), and systemd's readiness notifications (`sd_notify.rs`).

pub mod compress;
pub mod conn;
pub mod packet;
pub mod sd_notify;
pub mod slots;
pub mod tls;
pub mod watchdog;

pub use compress::Compressible;
pub use conn::{ClientStream, NetError, PacketConn};
pub use packet::{parse_header, write_packet, HEADER_LEN, MAX_PAYLOAD_LEN};
pub use slots::Slots;
pub use tls::{BackendIo, BackendTls, ClientIo, PreparedTls, TlsConfig, TlsFiles};
pub use watchdog::{Elapsed, Watchdog};

/// Hands bytes buffered ahead of a stream to a read, before the stream itself is read;
/// false when there are none (TLS's read-ahead after the SSLRequest, decompressed bytes).
fn read_buffered(ahead: &mut bytes::BytesMut, buf: &mut tokio::io::ReadBuf<'_>) -> bool {
    if ahead.is_empty() {
        return false;
    }
    let n = ahead.len().min(buf.remaining());
    buf.put_slice(&ahead[..n]);
    bytes::Buf::advance(ahead, n);
    true
}
