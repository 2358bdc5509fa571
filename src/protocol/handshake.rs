//! The connection phase as the server side: the greeting dbrouter sends, the client's
//! handshake response and COM_CHANGE_USER it parses, and the capability flags it offers.

use std::collections::HashMap;

use mysql_common::constants::{CapabilityFlags, MariadbCapabilities, StatusFlags};
use mysql_common::io::ParseBuf;
use mysql_common::packets::{AuthSwitchRequest, HandshakePacket, HandshakeResponse};
use mysql_common::proto::{MyDeserialize, MySerialize};

use super::auth::SCRAMBLE_LEN;

/// The capabilities dbrouter offers to clients: only what the relay handles faithfully.
///
/// CLIENT_DEPRECATE_EOF is offered: a client's backend connections are opened with its
/// capabilities (pooled per capability set), so both sides use one framing and the relay
/// only has to recognise it (`ResultFormat`). MariaDB clients that cache metadata expect
/// both together.
///
/// The session adds CLIENT_SSL when `[server.tls]` is configured and CLIENT_COMPRESS when
/// `server.compression` is on (the compressed protocol runs between the client and the
/// router only, `net::compress`; backend logins never ask for it). Not offered:
/// CLIENT_SESSION_TRACK and CLIENT_QUERY_ATTRIBUTES (session state must stay
/// router-owned once backend connections are pooled) and progress reports; the MariaDB
/// extended capabilities are in [`offered_mariadb_capabilities`].
pub fn offered_capabilities() -> CapabilityFlags {
    CapabilityFlags::CLIENT_LONG_PASSWORD
        | CapabilityFlags::CLIENT_FOUND_ROWS
        | CapabilityFlags::CLIENT_LONG_FLAG
        | CapabilityFlags::CLIENT_CONNECT_WITH_DB
        | CapabilityFlags::CLIENT_NO_SCHEMA
        | CapabilityFlags::CLIENT_ODBC
        | CapabilityFlags::CLIENT_LOCAL_FILES
        | CapabilityFlags::CLIENT_IGNORE_SPACE
        | CapabilityFlags::CLIENT_PROTOCOL_41
        | CapabilityFlags::CLIENT_INTERACTIVE
        | CapabilityFlags::CLIENT_IGNORE_SIGPIPE
        | CapabilityFlags::CLIENT_TRANSACTIONS
        | CapabilityFlags::CLIENT_RESERVED
        | CapabilityFlags::CLIENT_SECURE_CONNECTION
        | CapabilityFlags::CLIENT_MULTI_STATEMENTS
        | CapabilityFlags::CLIENT_MULTI_RESULTS
        | CapabilityFlags::CLIENT_PS_MULTI_RESULTS
        | CapabilityFlags::CLIENT_PLUGIN_AUTH
        | CapabilityFlags::CLIENT_CONNECT_ATTRS
        | CapabilityFlags::CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
        | CapabilityFlags::CLIENT_DEPRECATE_EOF
        | CapabilityFlags::CLIENT_SESSION_TRACK
}

/// The MariaDB extended capabilities dbrouter offers when its backends are MariaDB:
/// MARIADB_CLIENT_CACHE_METADATA (10.6+), with which the server leaves out the column
/// definitions of a prepared statement's result when the client already has them. The
/// relay only has to read one more byte of a result set's column-count packet, and a
/// point select's answer shrinks by one column definition per column; and
/// MARIADB_CLIENT_EXTENDED_METADATA, with which column definitions name a column's
/// extended type (`json`, `uuid`, `inet6`): relayed as they come, and locally answered
/// result sets carry the (empty) block too; and MARIADB_CLIENT_STMT_BULK_OPERATIONS:
/// COM_STMT_BULK_EXECUTE is routed by the key parameter of every row (all on one shard).
pub fn offered_mariadb_capabilities() -> MariadbCapabilities {
    MariadbCapabilities::MARIADB_CLIENT_CACHE_METADATA
        | MariadbCapabilities::MARIADB_CLIENT_EXTENDED_METADATA
        | MariadbCapabilities::MARIADB_CLIENT_STMT_BULK_OPERATIONS
}

/// The MariaDB extended capabilities a greeting or handshake response carries: they
/// count only when CLIENT_MYSQL (= CLIENT_LONG_PASSWORD) is clear, i.e. from a MariaDB
/// server or a MariaDB client answering one; otherwise those bytes are filler.
pub fn mariadb_extended(
    capabilities: CapabilityFlags,
    extended: MariadbCapabilities,
) -> MariadbCapabilities {
    if capabilities.contains(CapabilityFlags::CLIENT_LONG_PASSWORD) {
        MariadbCapabilities::empty()
    } else {
        extended
    }
}

/// Builds the initial handshake packet payload. With MariaDB capabilities to offer, it
/// is a MariaDB greeting: CLIENT_MYSQL (= CLIENT_LONG_PASSWORD) clear, the extended
/// capabilities in the last four reserved bytes.
pub fn greeting(
    connection_id: u32,
    server_version: &str,
    scramble: &[u8; SCRAMBLE_LEN],
    capabilities: CapabilityFlags,
    mariadb_capabilities: MariadbCapabilities,
    collation: u8,
    plugin: &str,
) -> Vec<u8> {
    let capabilities = if mariadb_capabilities.is_empty() {
        capabilities
    } else {
        capabilities - CapabilityFlags::CLIENT_LONG_PASSWORD
    };
    let mut scramble_1 = [0u8; 8];
    scramble_1.copy_from_slice(&scramble[..8]);
    // The second part is sent NUL-terminated (13 bytes), as MySQL servers do.
    let mut scramble_2 = scramble[8..].to_vec();
    scramble_2.push(0);
    let packet = HandshakePacket::new(
        10,
        server_version.as_bytes(),
        connection_id,
        scramble_1,
        Some(scramble_2),
        capabilities,
        collation,
        StatusFlags::SERVER_STATUS_AUTOCOMMIT,
        Some(plugin.as_bytes()),
    )
    .with_mariadb_ext_capabilities(mariadb_capabilities);
    let mut out = Vec::with_capacity(96);
    packet.serialize(&mut out);
    out
}

/// Builds an AuthSwitchRequest payload asking the client to use `plugin` with `scramble`.
pub fn auth_switch(plugin: &str, scramble: &[u8; SCRAMBLE_LEN]) -> Vec<u8> {
    let mut data = scramble.to_vec();
    data.push(0);
    let req = AuthSwitchRequest::new(plugin.as_bytes(), data);
    let mut out = Vec::with_capacity(64);
    req.serialize(&mut out);
    out
}

/// What a client sent in its handshake response (or COM_CHANGE_USER).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientLogin {
    /// Capability flags the client asked for (before intersecting with ours).
    pub capabilities: CapabilityFlags,
    /// MariaDB extended capabilities the client asked for (empty unless it answered a
    /// MariaDB greeting as a MariaDB client, i.e. with CLIENT_MYSQL clear).
    pub mariadb_capabilities: MariadbCapabilities,
    /// Character set / collation id.
    pub collation: u16,
    /// Account name.
    pub user: String,
    /// Scrambled password, computed for `plugin` with the nonce we sent.
    pub auth_response: Vec<u8>,
    /// Initial default database.
    pub database: Option<String>,
    /// Authentication plugin the client used.
    pub plugin: Option<Vec<u8>>,
    /// Connection attributes (`_client_name`, `program_name`, …).
    pub attributes: Option<HashMap<String, String>>,
}

/// Why a handshake response or COM_CHANGE_USER could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoginParseError {
    /// A pre-4.1 client.
    #[error("client does not support the 4.1 protocol (CLIENT_PROTOCOL_41); upgrade the client")]
    OldProtocol,
    /// Truncated or malformed packet.
    #[error("malformed handshake packet: {0}")]
    Malformed(String),
}

/// An SSLRequest: the first 32 bytes of a handshake response (capabilities with
/// CLIENT_SSL, max packet size, collation, filler) and nothing more; the client starts
/// its TLS handshake right after it.
pub fn is_ssl_request(payload: &[u8]) -> bool {
    let flags = payload
        .get(..4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .unwrap_or(0);
    payload.len() == 32 && flags & CapabilityFlags::CLIENT_SSL.bits() != 0
}

/// Parses the client's handshake response.
pub fn parse_handshake_response(payload: &[u8]) -> Result<ClientLogin, LoginParseError> {
    if payload.len() >= 4 {
        let flags = u32::from_le_bytes([payload[0], payload[1], payload[2], payload[3]]);
        if flags & CapabilityFlags::CLIENT_PROTOCOL_41.bits() == 0 {
            return Err(LoginParseError::OldProtocol);
        }
    }
    let mut buf = ParseBuf(payload);
    let resp = HandshakeResponse::deserialize((), &mut buf)
        .map_err(|e| LoginParseError::Malformed(e.to_string()))?;
    let capabilities = resp.capabilities();
    let mariadb_capabilities = mariadb_extended(capabilities, resp.mariadb_ext_capabilities());
    Ok(ClientLogin {
        capabilities,
        mariadb_capabilities,
        collation: u16::from(resp.collation()),
        user: String::from_utf8_lossy(resp.user()).into_owned(),
        auth_response: resp.scramble_buf().to_vec(),
        database: resp
            .db_name()
            .filter(|db| !db.is_empty())
            .map(|db| String::from_utf8_lossy(db).into_owned()),
        plugin: resp.auth_plugin().map(|p| p.as_bytes().to_vec()),
        attributes: resp.connect_attributes(),
    })
}

/// Parses a COM_CHANGE_USER payload (including the command byte), given the session's
/// negotiated capabilities (which it keeps).
///
/// Layout: user NUL, auth-response (1-byte length), database NUL, then optionally
/// charset u16, plugin name NUL (CLIENT_PLUGIN_AUTH), connect attributes
/// (CLIENT_CONNECT_ATTRS). Hand-written: `mysql_common`'s `ComChangeUser` has no getters.
pub fn parse_change_user(
    payload: &[u8],
    capabilities: CapabilityFlags,
    mariadb_capabilities: MariadbCapabilities,
    previous_collation: u16,
) -> Result<ClientLogin, LoginParseError> {
    let malformed = |what: &str| LoginParseError::Malformed(format!("COM_CHANGE_USER: {what}"));
    let mut buf = ParseBuf(payload.get(1..).ok_or_else(|| malformed("empty"))?);
    let user = take_null_str(&mut buf).ok_or_else(|| malformed("user name not terminated"))?;
    let auth_response = buf
        .checked_eat_u8_str()
        .ok_or_else(|| malformed("truncated auth response"))?
        .to_vec();
    let database = take_null_str(&mut buf).unwrap_or_default();
    let mut collation = previous_collation;
    let mut plugin = None;
    let mut attributes = None;
    if !buf.is_empty() {
        collation = buf
            .checked_eat_u16_le()
            .ok_or_else(|| malformed("truncated character set"))?;
        if capabilities.contains(CapabilityFlags::CLIENT_PLUGIN_AUTH) && !buf.is_empty() {
            plugin = Some(take_null_str(&mut buf).unwrap_or_default().into_bytes());
        }
        if capabilities.contains(CapabilityFlags::CLIENT_CONNECT_ATTRS) && !buf.is_empty() {
            attributes =
                Some(parse_attributes(&mut buf).ok_or_else(|| malformed("bad attributes"))?);
        }
    }
    Ok(ClientLogin {
        capabilities,
        mariadb_capabilities,
        collation,
        user,
        auth_response,
        database: Some(database).filter(|d| !d.is_empty()),
        plugin,
        attributes,
    })
}

fn take_null_str(buf: &mut ParseBuf<'_>) -> Option<String> {
    let pos = buf.0.iter().position(|b| *b == 0)?;
    let s = String::from_utf8_lossy(&buf.0[..pos]).into_owned();
    buf.skip(pos + 1);
    Some(s)
}

fn parse_attributes(buf: &mut ParseBuf<'_>) -> Option<HashMap<String, String>> {
    let total = buf.checked_eat_lenenc_int()?;
    let data = buf.checked_eat(usize::try_from(total).ok()?)?;
    let mut inner = ParseBuf(data);
    let mut attrs = HashMap::new();
    while !inner.is_empty() {
        let k = inner.checked_eat_lenenc_str()?;
        let v = inner.checked_eat_lenenc_str()?;
        attrs.insert(
            String::from_utf8_lossy(k).into_owned(),
            String::from_utf8_lossy(v).into_owned(),
        );
    }
    Some(attrs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mysql_common::packets::AuthPlugin;

    #[test]
    fn greeting_parses_back() {
        let scramble = *b"abcdefghijklmnopqrst";
        let bytes = greeting(
            7,
            "10.11.6-MariaDB",
            &scramble,
            offered_capabilities(),
            MariadbCapabilities::empty(),
            45,
            "mysql_native_password",
        );
        let mut buf = ParseBuf(&bytes);
        let p = HandshakePacket::deserialize((), &mut buf).unwrap();
        assert_eq!(p.connection_id(), 7);
        assert_eq!(p.nonce(), scramble.to_vec());
        assert_eq!(p.auth_plugin(), Some(AuthPlugin::MysqlNativePassword));
        assert!(!p.capabilities().contains(CapabilityFlags::CLIENT_SSL));
        // A MySQL-style greeting: CLIENT_MYSQL set, no extended capabilities.
        assert!(p
            .capabilities()
            .contains(CapabilityFlags::CLIENT_LONG_PASSWORD));
        assert!(p.mariadb_ext_capabilities().is_empty());
    }

    #[test]
    fn mariadb_greeting_carries_extended_capabilities() {
        let scramble = *b"abcdefghijklmnopqrst";
        let bytes = greeting(
            7,
            "10.11.6-MariaDB",
            &scramble,
            offered_capabilities(),
            offered_mariadb_capabilities(),
            45,
            "mysql_native_password",
        );
        let p = HandshakePacket::deserialize((), &mut ParseBuf(&bytes)).unwrap();
        assert!(!p
            .capabilities()
            .contains(CapabilityFlags::CLIENT_LONG_PASSWORD));
        assert_eq!(
            p.mariadb_ext_capabilities(),
            MariadbCapabilities::MARIADB_CLIENT_CACHE_METADATA
                | MariadbCapabilities::MARIADB_CLIENT_EXTENDED_METADATA
                | MariadbCapabilities::MARIADB_CLIENT_STMT_BULK_OPERATIONS
        );
        assert_eq!(p.nonce(), scramble.to_vec());
    }

    #[test]
    fn extended_capabilities_are_read_only_from_mariadb_clients() {
        let response = |caps: CapabilityFlags| {
            let resp = HandshakeResponse::new(
                Some(vec![1u8; 20]),
                (10, 11, 0),
                Some(&b"app"[..]),
                None::<&[u8]>,
                Some(AuthPlugin::MysqlNativePassword),
                caps,
                None,
                1 << 24,
            )
            .with_mariadb_ext_capabilities(MariadbCapabilities::MARIADB_CLIENT_CACHE_METADATA);
            let mut bytes = Vec::new();
            resp.serialize(&mut bytes);
            parse_handshake_response(&bytes).unwrap()
        };
        let mariadb = response(offered_capabilities() - CapabilityFlags::CLIENT_LONG_PASSWORD);
        assert_eq!(
            mariadb.mariadb_capabilities,
            MariadbCapabilities::MARIADB_CLIENT_CACHE_METADATA
        );
        // CLIENT_MYSQL set: those bytes are filler, whatever they hold.
        let mysql = response(offered_capabilities());
        assert!(mysql.mariadb_capabilities.is_empty());
    }

    #[test]
    fn handshake_response_roundtrip() {
        let mut attrs = HashMap::new();
        attrs.insert("program_name".to_string(), "test".to_string());
        let resp = HandshakeResponse::new(
            Some(vec![1u8; 20]),
            (10, 11, 0),
            Some(&b"app"[..]),
            Some(&b"appdb"[..]),
            Some(AuthPlugin::MysqlNativePassword),
            offered_capabilities(),
            Some(attrs),
            1 << 24,
        );
        let mut bytes = Vec::new();
        resp.serialize(&mut bytes);
        let login = parse_handshake_response(&bytes).unwrap();
        assert_eq!(login.user, "app");
        assert_eq!(login.database.as_deref(), Some("appdb"));
        assert_eq!(login.auth_response, vec![1u8; 20]);
        assert_eq!(login.plugin.as_deref(), Some(&b"mysql_native_password"[..]));
        assert_eq!(login.attributes.unwrap()["program_name"], "test");
    }

    #[test]
    fn truncated_handshake_response_is_an_error() {
        for len in 0..40 {
            let payload = vec![0x0fu8; len];
            let _ = parse_handshake_response(&payload);
        }
        assert!(parse_handshake_response(&[0, 2, 0, 0, 1]).is_err());
    }

    #[test]
    fn ssl_request_is_recognised() {
        let mut p = (offered_capabilities() | CapabilityFlags::CLIENT_SSL)
            .bits()
            .to_le_bytes()
            .to_vec();
        p.extend_from_slice(&[0u8; 28]);
        assert!(is_ssl_request(&p));
        // Without the flag, or a full response (longer): not an SSLRequest.
        let mut plain = offered_capabilities().bits().to_le_bytes().to_vec();
        plain.extend_from_slice(&[0u8; 28]);
        assert!(!is_ssl_request(&plain));
        p.extend_from_slice(b"app\0");
        assert!(!is_ssl_request(&p));
        assert!(!is_ssl_request(&[0x00, 0x08]));
    }

    #[test]
    fn change_user_parses() {
        let mut p = vec![0x11];
        p.extend_from_slice(b"bob\0");
        p.push(20);
        p.extend_from_slice(&[7u8; 20]);
        p.extend_from_slice(b"db2\0");
        p.extend_from_slice(&33u16.to_le_bytes());
        p.extend_from_slice(b"mysql_native_password\0");
        let cache = MariadbCapabilities::MARIADB_CLIENT_CACHE_METADATA;
        let login = parse_change_user(&p, offered_capabilities(), cache, 8).unwrap();
        assert_eq!(login.mariadb_capabilities, cache);
        assert_eq!(login.user, "bob");
        assert_eq!(login.auth_response, vec![7u8; 20]);
        assert_eq!(login.database.as_deref(), Some("db2"));
        assert_eq!(login.collation, 33);
        for cut in 0..p.len() {
            let _ = parse_change_user(&p[..cut], offered_capabilities(), cache, 8);
        }
    }
}
