//! Password storage and verification for the accounts dbrouter authenticates itself.
//!
//! dbrouter stores, per account, the hashes that the two supported plugins verify against,
//! never the password:
//! - `mysql_native_password`: `SHA1(SHA1(password))`, written as MySQL's `PASSWORD()`
//!   format (`*` + 40 upper-case hex digits), so it can be copied from `mysql.user`.
//! - `caching_sha2_password`: `SHA256(SHA256(password))`, 64 hex digits. This is exactly
//!   what a MySQL server keeps in its in-memory cache for the plugin's fast path; because
//!   dbrouter always has it, every login takes the fast path and no full authentication
//!   (which would need the plaintext over TLS or RSA) is ever required.
//!
//! Both hashes are password equivalents for their protocol: protect the config file.

use sha1::{Digest, Sha1};
use sha2::Sha256;

/// Length of the authentication scramble (nonce) dbrouter sends.
pub const SCRAMBLE_LEN: usize = 20;

/// An authentication plugin dbrouter verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// `mysql_native_password` (SHA1 challenge-response).
    Native,
    /// `caching_sha2_password`, fast path (SHA256 challenge-response).
    CachingSha2,
}

impl AuthMethod {
    /// The plugin name on the wire.
    pub fn plugin_name(self) -> &'static str {
        match self {
            AuthMethod::Native => "mysql_native_password",
            AuthMethod::CachingSha2 => "caching_sha2_password",
        }
    }

    /// The method for a plugin name, if dbrouter supports it.
    pub fn from_plugin_name(name: &[u8]) -> Option<Self> {
        match name {
            b"mysql_native_password" => Some(AuthMethod::Native),
            b"caching_sha2_password" => Some(AuthMethod::CachingSha2),
            _ => None,
        }
    }
}

/// The stored verifiers of one account.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    native: Option<[u8; 20]>,
    sha2: Option<[u8; 32]>,
    empty_password: bool,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Hashes are password equivalents: never print them.
        f.debug_struct("Credentials")
            .field("native", &self.native.is_some())
            .field("sha2", &self.sha2.is_some())
            .field("empty_password", &self.empty_password)
            .finish()
    }
}

/// Why a stored hash string could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashFormatError {
    /// Not `*` followed by 40 hex digits.
    #[error("expected '*' followed by 40 hex digits (the format of MySQL's PASSWORD())")]
    Native,
    /// Not 64 hex digits.
    #[error("expected 64 hex digits: SHA256(SHA256(password)), see `dbrouter ctl hash-password`")]
    Sha2,
}

impl Credentials {
    /// Verifiers for an account with an empty password.
    pub fn empty() -> Self {
        Self {
            native: None,
            sha2: None,
            empty_password: true,
        }
    }

    /// Verifiers computed from a plaintext password (for development configs).
    pub fn from_plaintext(password: &str) -> Self {
        if password.is_empty() {
            return Self::empty();
        }
        Self {
            native: Some(sha1(&sha1(password.as_bytes()))),
            sha2: Some(sha256(&sha256(password.as_bytes()))),
            empty_password: false,
        }
    }

    /// Verifiers from stored hash strings; at least one must be given.
    pub fn from_hashes(native: Option<&str>, sha2: Option<&str>) -> Result<Self, HashFormatError> {
        let native = native.map(parse_native_hash).transpose()?;
        let sha2 = sha2.map(parse_sha2_hash).transpose()?;
        Ok(Self {
            native,
            sha2,
            empty_password: false,
        })
    }

    /// Whether this account can log in with the given plugin.
    pub fn supports(&self, method: AuthMethod) -> bool {
        self.empty_password
            || match method {
                AuthMethod::Native => self.native.is_some(),
                AuthMethod::CachingSha2 => self.sha2.is_some(),
            }
    }

    /// The plugin to switch a client to when it chose one this account cannot use.
    pub fn preferred_method(&self) -> AuthMethod {
        if self.native.is_some() || self.empty_password {
            AuthMethod::Native
        } else {
            AuthMethod::CachingSha2
        }
    }

    /// Whether the account has an empty password (the client sends an empty answer).
    pub fn is_empty_password(&self) -> bool {
        self.empty_password
    }

    /// `SHA1(password)` from a `mysql_native_password` answer that [`Credentials::verify`]
    /// accepted; `None` for another answer, or an account without a native hash.
    pub fn native_password_sha1(&self, scramble: &[u8], token: &[u8]) -> Option<PasswordSha1> {
        let stored = self.native?;
        let candidate = native_candidate(&stored, scramble, token)?;
        constant_time_eq(&sha1(&candidate), &stored).then_some(PasswordSha1(candidate))
    }

    /// Checks a client's scrambled password `token` against the nonce we sent.
    pub fn verify(&self, method: AuthMethod, scramble: &[u8], token: &[u8]) -> bool {
        if self.empty_password {
            return token.is_empty();
        }
        match method {
            AuthMethod::Native => self
                .native
                .is_some_and(|stored| verify_native(&stored, scramble, token)),
            AuthMethod::CachingSha2 => self
                .sha2
                .is_some_and(|stored| verify_sha2(&stored, scramble, token)),
        }
    }
}

/// `SHA1(password)`: what a `mysql_native_password` answer proves knowledge of.
///
/// The router recovers it from a client's verified answer (the answer is
/// `SHA1(pw) XOR SHA1(nonce + SHA1(SHA1(pw)))`, and the router knows `SHA1(SHA1(pw))`), and
/// uses it to answer a MariaDB server's challenge as the same account: the client's identity
/// reaches the database without the password being stored anywhere. It is a password
/// equivalent for that plugin: it lives in memory only, for the sessions of the account
/// and the connections they opened, and is never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordSha1([u8; 20]);

impl std::fmt::Debug for PasswordSha1 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordSha1(<hidden>)")
    }
}

impl PasswordSha1 {
    /// The SHA1 of a plaintext password (for tests and tools).
    pub fn of(password: &str) -> Self {
        PasswordSha1(sha1(password.as_bytes()))
    }

    /// The `mysql_native_password` answer to a server's `nonce`, as a client that knows the
    /// password would compute it.
    pub fn answer(&self, nonce: &[u8]) -> [u8; 20] {
        let mut hasher = Sha1::new();
        hasher.update(nonce);
        hasher.update(sha1(&self.0));
        let mask: [u8; 20] = hasher.finalize().into();
        let mut out = [0u8; 20];
        for (o, (a, m)) in out.iter_mut().zip(self.0.iter().zip(mask)) {
            *o = a ^ m;
        }
        out
    }
}

/// The `mysql_native_password` hash of a password, in MySQL's `PASSWORD()` format.
pub fn native_hash_string(password: &str) -> String {
    format!("*{}", hex::encode_upper(sha1(&sha1(password.as_bytes()))))
}

/// The `caching_sha2_password` verifier of a password: hex of SHA256(SHA256(password)).
pub fn sha2_hash_string(password: &str) -> String {
    hex::encode(sha256(&sha256(password.as_bytes())))
}

/// A fresh random nonce of printable, non-NUL bytes (as MySQL servers send).
pub fn new_scramble() -> Result<[u8; SCRAMBLE_LEN], getrandom::Error> {
    let mut raw = [0u8; SCRAMBLE_LEN];
    getrandom::fill(&mut raw)?;
    for b in raw.iter_mut() {
        // 94 printable ASCII characters from '!' (0x21) to '~' (0x7e): never NUL.
        *b = 0x21 + (*b % 94);
    }
    Ok(raw)
}

fn parse_native_hash(s: &str) -> Result<[u8; 20], HashFormatError> {
    let hex_part = s.strip_prefix('*').ok_or(HashFormatError::Native)?;
    let mut out = [0u8; 20];
    hex::decode_to_slice(hex_part, &mut out).map_err(|_| HashFormatError::Native)?;
    Ok(out)
}

fn parse_sha2_hash(s: &str) -> Result<[u8; 32], HashFormatError> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).map_err(|_| HashFormatError::Sha2)?;
    Ok(out)
}

/// token = SHA1(pw) XOR SHA1(nonce + SHA1(SHA1(pw))); recover SHA1(pw) and hash it again.
fn verify_native(stored: &[u8; 20], scramble: &[u8], token: &[u8]) -> bool {
    native_candidate(stored, scramble, token)
        .is_some_and(|candidate| constant_time_eq(&sha1(&candidate), stored))
}

/// The `SHA1(pw)` a native answer claims (checked by hashing it again).
fn native_candidate(stored: &[u8; 20], scramble: &[u8], token: &[u8]) -> Option<[u8; 20]> {
    if token.len() != 20 {
        return None;
    }
    let mut hasher = Sha1::new();
    hasher.update(scramble);
    hasher.update(stored);
    let mask: [u8; 20] = hasher.finalize().into();
    let mut candidate = [0u8; 20];
    for i in 0..20 {
        candidate[i] = token[i] ^ mask[i];
    }
    Some(candidate)
}

/// token = SHA256(pw) XOR SHA256(SHA256(SHA256(pw)) + nonce); recover SHA256(pw), hash it again.
fn verify_sha2(stored: &[u8; 32], scramble: &[u8], token: &[u8]) -> bool {
    if token.len() != 32 {
        return false;
    }
    let mut hasher = Sha256::new();
    hasher.update(stored);
    hasher.update(scramble);
    let mask: [u8; 32] = hasher.finalize().into();
    let mut candidate = [0u8; 32];
    for i in 0..32 {
        candidate[i] = token[i] ^ mask[i];
    }
    constant_time_eq(&sha256(&candidate), stored)
}

fn sha1(data: &[u8]) -> [u8; 20] {
    Sha1::digest(data).into()
}

fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use mysql_common::scramble::{scramble_native, scramble_sha256};

    #[test]
    fn native_hash_matches_mysql_password_function() {
        // SELECT PASSWORD('secret') on MySQL 5.7 / MariaDB.
        assert_eq!(
            native_hash_string("secret"),
            "*14E65567ABDB5135D0CFD9A70B3032C179A49EE7"
        );
    }

    #[test]
    fn native_roundtrip_with_client_scramble() {
        let creds = Credentials::from_hashes(Some(&native_hash_string("pw")), None).unwrap();
        let nonce = new_scramble().unwrap();
        let token = scramble_native(&nonce, b"pw").unwrap();
        assert!(creds.verify(AuthMethod::Native, &nonce, &token));
        let wrong = scramble_native(&nonce, b"pX").unwrap();
        assert!(!creds.verify(AuthMethod::Native, &nonce, &wrong));
        assert!(!creds.verify(AuthMethod::Native, &nonce, &[]));
        assert!(!creds.verify(AuthMethod::CachingSha2, &nonce, &token));
    }

    #[test]
    fn recovered_sha1_answers_a_servers_challenge_like_the_password() {
        let creds = Credentials::from_hashes(Some(&native_hash_string("pw")), None).unwrap();
        let nonce = new_scramble().unwrap();
        let token = scramble_native(&nonce, b"pw").unwrap();
        let sha = creds.native_password_sha1(&nonce, &token).unwrap();
        assert_eq!(sha, PasswordSha1::of("pw"));
        // A server's fresh challenge: the answer is the one the client itself would give.
        let server_nonce = *b"01234567890123456789";
        assert_eq!(
            sha.answer(&server_nonce),
            scramble_native(&server_nonce, b"pw").unwrap()
        );
        // A wrong answer yields nothing.
        let wrong = scramble_native(&nonce, b"pX").unwrap();
        assert!(creds.native_password_sha1(&nonce, &wrong).is_none());
        assert!(format!("{sha:?}").contains("hidden"));
    }

    #[test]
    fn sha2_roundtrip_with_client_scramble() {
        let creds = Credentials::from_hashes(None, Some(&sha2_hash_string("pw"))).unwrap();
        let nonce = new_scramble().unwrap();
        let token = scramble_sha256(&nonce, b"pw").unwrap();
        assert!(creds.verify(AuthMethod::CachingSha2, &nonce, &token));
        let wrong = scramble_sha256(&nonce, b"other").unwrap();
        assert!(!creds.verify(AuthMethod::CachingSha2, &nonce, &wrong));
        assert!(!creds.supports(AuthMethod::Native));
        assert_eq!(creds.preferred_method(), AuthMethod::CachingSha2);
    }

    #[test]
    fn empty_password_accepts_only_empty_token() {
        let creds = Credentials::from_plaintext("");
        assert!(creds.verify(AuthMethod::Native, b"x", &[]));
        assert!(!creds.verify(AuthMethod::Native, b"x", &[1; 20]));
    }

    #[test]
    fn bad_hash_strings_are_rejected() {
        assert_eq!(
            Credentials::from_hashes(Some("14E6"), None),
            Err(HashFormatError::Native)
        );
        assert_eq!(
            Credentials::from_hashes(None, Some("zz")),
            Err(HashFormatError::Sha2)
        );
    }

    #[test]
    fn scramble_is_printable() {
        let s = new_scramble().unwrap();
        assert!(s.iter().all(|b| (0x21..=0x7e).contains(b)));
    }
}
