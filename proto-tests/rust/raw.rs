//! A raw protocol client for commands drivers rarely send (COM_FIELD_LIST, cursors and
//! COM_STMT_FETCH, COM_STMT_RESET, COM_SET_OPTION, COM_STATISTICS, unknown commands):
//! it logs in with dbrouter's own backend handshake code and returns response packets
//! as bytes, so router and direct answers can be compared byte for byte.

use dbrouter::backend::{connect, LoginOptions};
use dbrouter::net::{BackendIo, PacketConn};
use dbrouter::protocol::handshake::offered_capabilities;
use dbrouter::protocol::response::{ResponseKind, ResponseTracker, ResultFormat, Step};
use mysql_common::constants::MariadbCapabilities;
use std::time::Duration;

/// A logged-in raw connection.
pub struct RawClient {
    /// The framed socket.
    pub io: PacketConn<BackendIo>,
    /// How result sets are framed on it.
    pub format: ResultFormat,
    /// The OK that ended the login.
    pub login_ok: Vec<u8>,
    /// The id in the server's greeting.
    pub connection_id: u32,
    /// The MariaDB extended capabilities the server's greeting offered.
    pub offered: MariadbCapabilities,
}

impl RawClient {
    /// Logs in to `addr`.
    pub async fn connect(addr: &str, user: &str, password: &str, db: Option<&str>) -> Self {
        Self::connect_with(addr, user, password, db, MariadbCapabilities::empty()).await
    }

    /// Logs in to `addr` asking for these MariaDB extended capabilities (the login fails
    /// if the server does not offer them all).
    pub async fn connect_with(
        addr: &str,
        user: &str,
        password: &str,
        db: Option<&str>,
        mariadb_capabilities: MariadbCapabilities,
    ) -> Self {
        let opts = LoginOptions {
            user: user.into(),
            password: password.into(),
            password_sha1: None,
            database: db.map(Into::into),
            collation: None,
            capabilities: offered_capabilities(),
            mariadb_capabilities,
            attributes: None,
        };
        let conn = connect(addr, &opts, Duration::from_secs(10), None)
            .await
            .unwrap_or_else(|e| panic!("raw login to {addr} failed: {e}"));
        let format = conn.result_format();
        RawClient {
            connection_id: conn.connection_id,
            offered: conn.server_mariadb_capabilities,
            login_ok: conn.login_ok.clone(),
            io: conn.io,
            format,
        }
    }

    /// Sends a command and collects its whole response (payloads, in order).
    pub async fn command(&mut self, payload: &[u8], kind: ResponseKind) -> Vec<Vec<u8>> {
        self.send(payload).await;
        self.read_response(kind).await
    }

    /// Sends a command that has no response.
    pub async fn send(&mut self, payload: &[u8]) {
        self.io.queue(0, payload);
        self.io.flush().await.unwrap();
    }

    /// The first row of a collected one-column text result.
    pub fn first_row<'a>(&self, packets: &'a [Vec<u8>]) -> &'a [u8] {
        packets
            .get(self.format.text_rows_start(1))
            .map(Vec::as_slice)
            .unwrap_or_else(|| panic!("no row in {packets:?}"))
    }

    /// Reads one response.
    pub async fn read_response(&mut self, kind: ResponseKind) -> Vec<Vec<u8>> {
        let mut tracker = ResponseTracker::new(kind, self.format);
        let mut packets = Vec::new();
        loop {
            let (_, p) =
                tokio::time::timeout(Duration::from_secs(10), self.io.read_logical(1 << 30, None))
                    .await
                    .expect("response in time")
                    .expect("response packet");
            let step = tracker.feed(&p, p.len()).expect("well-formed response");
            packets.push(p.to_vec());
            if let Step::Done { .. } = step {
                return packets;
            }
        }
    }
}

/// A COM_STMT_PREPARE payload.
pub fn prepare(sql: &str) -> Vec<u8> {
    let mut p = vec![0x16];
    p.extend_from_slice(sql.as_bytes());
    p
}

/// The statement id of a prepare-OK payload.
pub fn stmt_id(prepare_ok: &[u8]) -> u32 {
    u32::from_le_bytes(prepare_ok[1..5].try_into().unwrap())
}

/// A COM_STMT_EXECUTE payload without parameters.
pub fn execute(id: u32, cursor: bool) -> Vec<u8> {
    let mut p = vec![0x17];
    p.extend_from_slice(&id.to_le_bytes());
    p.push(u8::from(cursor));
    p.extend_from_slice(&1u32.to_le_bytes());
    p
}

/// A COM_STMT_FETCH payload.
pub fn fetch(id: u32, rows: u32) -> Vec<u8> {
    let mut p = vec![0x1c];
    p.extend_from_slice(&id.to_le_bytes());
    p.extend_from_slice(&rows.to_le_bytes());
    p
}

/// A connection logged in by hand with CLIENT_COMPRESS, for writing compressed packets
/// (well- or ill-formed) on its socket.
pub struct CompressedClient {
    /// The socket, after the login's OK (compression is on from here).
    pub stream: tokio::net::TcpStream,
}

impl RawClient {
    /// Logs in to `addr` with the compressed protocol (mysql_native_password).
    pub async fn connect_compressed(addr: &str, user: &str, password: &str) -> CompressedClient {
        use mysql_common::constants::CapabilityFlags;
        use mysql_common::io::ParseBuf;
        use mysql_common::packets::{AuthPlugin, HandshakePacket, HandshakeResponse};
        use mysql_common::proto::{MyDeserialize, MySerialize};
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut io = PacketConn::new(stream);
        let (seq, greeting) = io.read_logical(1 << 16, Some(0)).await.unwrap();
        let hello = HandshakePacket::deserialize((), &mut ParseBuf(&greeting)).unwrap();
        assert!(hello
            .capabilities()
            .contains(CapabilityFlags::CLIENT_COMPRESS));
        let token = mysql_common::scramble::scramble_native(&hello.nonce(), password.as_bytes())
            .unwrap()
            .to_vec();
        let caps = CapabilityFlags::CLIENT_PROTOCOL_41
            | CapabilityFlags::CLIENT_SECURE_CONNECTION
            | CapabilityFlags::CLIENT_PLUGIN_AUTH
            | CapabilityFlags::CLIENT_COMPRESS
            | CapabilityFlags::CLIENT_LONG_PASSWORD;
        let response = HandshakeResponse::new(
            Some(token),
            (10, 11, 0),
            Some(user.as_bytes()),
            None::<&[u8]>,
            Some(AuthPlugin::MysqlNativePassword),
            caps,
            None,
            1 << 24,
        );
        let mut payload = Vec::new();
        response.serialize(&mut payload);
        io.queue(seq.wrapping_add(1), &payload);
        io.flush().await.unwrap();
        let (_, ok) = io.read_logical(1 << 16, None).await.unwrap();
        assert_eq!(ok.first(), Some(&0x00), "login OK: {ok:?}");
        assert!(!io.has_buffered_input());
        CompressedClient {
            stream: io.into_stream(),
        }
    }
}
