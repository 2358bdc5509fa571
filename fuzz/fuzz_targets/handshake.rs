//! Fuzz target `handshake`: the connection phase's decoders (`protocol::handshake`,
//! `protocol::auth`).
//!
//! Checks, on arbitrary bytes:
//! - `is_ssl_request` says yes exactly for a 32-byte payload with CLIENT_SSL (the
//!   SSLRequest, after which the TLS handshake starts);
//! - `parse_handshake_response` never panics; a pre-4.1 response is refused as
//!   `OldProtocol`;
//! - `parse_change_user` never panics under several negotiated capability sets, and keeps
//!   the session's capabilities as given;
//! - the auth-switch exchange: the request `auth_switch` builds for an input-chosen plugin
//!   and nonce parses back (as the backend side parses one, `AuthSwitchRequest`) to that
//!   plugin and nonce; the client's answer — arbitrary bytes — given to
//!   `Credentials::verify` never panics and never verifies unless it is the right token,
//!   while the token a real client computes (`mysql_common::scramble`) for the account's
//!   password always verifies;
//! - `AuthSwitchRequest` (what a backend sends) and `parse_err` on arbitrary bytes.
//!
//! Input: a whole handshake response or COM_CHANGE_USER payload (seeds are real ones);
//! the auth checks take their plugin, nonce and password from the same bytes.

#![no_main]

use dbrouter::protocol::auth::{AuthMethod, Credentials, SCRAMBLE_LEN};
use dbrouter::protocol::handshake::{
    auth_switch, is_ssl_request, offered_capabilities, offered_mariadb_capabilities,
    parse_change_user, parse_handshake_response, LoginParseError,
};
use dbrouter::protocol::packets::parse_err;
use libfuzzer_sys::fuzz_target;
use mysql_common::constants::{CapabilityFlags, MariadbCapabilities};
use mysql_common::io::ParseBuf;
use mysql_common::packets::AuthSwitchRequest;
use mysql_common::proto::MyDeserialize;
use mysql_common::scramble::{scramble_native, scramble_sha256};

fuzz_target!(|data: &[u8]| {
    handshake_response(data);
    change_user(data);
    auth(data);
    let _ = AuthSwitchRequest::deserialize((), &mut ParseBuf(data));
    let _ = parse_err(data);
});

fn handshake_response(data: &[u8]) {
    let result = parse_handshake_response(data);
    let flags = data.first_chunk::<4>().map(|b| u32::from_le_bytes(*b));
    let ssl = flags.is_some_and(|f| f & CapabilityFlags::CLIENT_SSL.bits() != 0);
    assert_eq!(
        is_ssl_request(data),
        ssl && data.len() == 32,
        "is_ssl_request"
    );
    if flags.is_some_and(|f| f & CapabilityFlags::CLIENT_PROTOCOL_41.bits() == 0) {
        assert_eq!(result, Err(LoginParseError::OldProtocol));
    }
    if let Ok(login) = result {
        // Formatting what was parsed (the session logs it) must not panic either.
        let _ = format!("{login:?}");
    }
}

fn change_user(data: &[u8]) {
    let plain = offered_capabilities()
        - CapabilityFlags::CLIENT_PLUGIN_AUTH
        - CapabilityFlags::CLIENT_CONNECT_ATTRS;
    for (caps, mariadb) in [
        (offered_capabilities(), offered_mariadb_capabilities()),
        (plain, MariadbCapabilities::empty()),
        (CapabilityFlags::all(), MariadbCapabilities::all()),
    ] {
        if let Ok(login) = parse_change_user(data, caps, mariadb, 8) {
            assert_eq!(
                login.capabilities, caps,
                "COM_CHANGE_USER keeps the capabilities"
            );
            assert_eq!(login.mariadb_capabilities, mariadb);
            assert!(login.database.as_deref() != Some(""), "empty database kept");
        }
    }
}

/// The auth switch: request built, parsed back; the client's answer verified.
fn auth(data: &[u8]) {
    let method = match data.first() {
        Some(b) if b & 1 == 1 => AuthMethod::CachingSha2,
        _ => AuthMethod::Native,
    };
    // A nonce as `new_scramble` makes them: printable, never NUL.
    let mut nonce = [b'!'; SCRAMBLE_LEN];
    for (n, b) in nonce.iter_mut().zip(data.iter().skip(1)) {
        *n = 0x21 + (b % 94);
    }
    let request = auth_switch(method.plugin_name(), &nonce);
    match AuthSwitchRequest::deserialize((), &mut ParseBuf(&request)) {
        Ok(switch) => {
            assert_eq!(
                switch.auth_plugin().as_bytes(),
                method.plugin_name().as_bytes()
            );
            let sent = switch.plugin_data();
            assert_eq!(sent.strip_suffix(&[0]).unwrap_or(sent), &nonce[..]);
        }
        Err(e) => panic!("our own auth switch request does not parse: {e}"),
    }

    // The account's password and the client's answer come from the input.
    let split = data.len() / 2;
    let password = String::from_utf8_lossy(&data[..split]).into_owned();
    let answer = &data[split..];
    let creds = Credentials::from_plaintext(&password);
    let right = right_token(method, &nonce, &password);
    let verified = creds.verify(method, &nonce, answer);
    if password.is_empty() {
        // An empty password is verified by an empty answer.
        assert_eq!(verified, answer.is_empty());
    } else {
        assert_eq!(
            verified,
            right.as_deref() == Some(answer),
            "verify({answer:?})"
        );
        if let Some(token) = right {
            assert!(
                creds.verify(method, &nonce, &token),
                "the right token is refused"
            );
            // The other plugin's token never passes for this one.
            let other = match method {
                AuthMethod::Native => AuthMethod::CachingSha2,
                AuthMethod::CachingSha2 => AuthMethod::Native,
            };
            assert!(!creds.verify(other, &nonce, &token));
        }
    }
    // Arbitrary nonces too (a client may answer a nonce we never sent).
    let _ = creds.verify(method, answer, &nonce);
}

fn right_token(method: AuthMethod, nonce: &[u8], password: &str) -> Option<Vec<u8>> {
    match method {
        AuthMethod::Native => scramble_native(nonce, password.as_bytes()).map(|t| t.to_vec()),
        AuthMethod::CachingSha2 => scramble_sha256(nonce, password.as_bytes()).map(|t| t.to_vec()),
    }
}
