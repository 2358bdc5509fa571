//! The `[auth]` table and what it decides: which MariaDB account a client account's
//! sessions log in as, and where the accounts come from.

use serde::Deserialize;

/// The `[auth]` table: which account a session acts as at the database, and where the
/// accounts clients log in with come from (docs/security.md, "Identities").
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// `"client"`: each session logs in to MariaDB as the client's own account (or the
    /// account's `backend_user`); `"service"`: as the `[backend]` account.
    pub identity: Identity,
    /// `"config"`: only the `[[users]]` accounts; `"backend"`: also the accounts of the
    /// global shard's `mysql.user` (a `[[users]]` entry of the same name wins).
    pub source: AccountSource,
    /// How often the accounts of `source = "backend"` are read again, in milliseconds
    /// (an unknown name is also looked up at once, at most once a second).
    pub refresh_ms: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            identity: Identity::Client,
            source: AccountSource::Config,
            refresh_ms: 10_000,
        }
    }
}

/// Which account a session acts as at the database (`[auth] identity`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Identity {
    /// The client's own account: MariaDB's grants, process list and KILL rights apply.
    Client,
    /// The `[backend]` service account, for every client.
    Service,
}

/// Where client accounts come from (`[auth] source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccountSource {
    /// The `[[users]]` entries only.
    Config,
    /// Also the global shard's `mysql.user` (accounts made with `CREATE USER`).
    Backend,
}

/// The account a session of a client account logs in to MariaDB as.
#[derive(Clone, PartialEq, Eq)]
pub enum BackendAccount {
    /// The client's own account, proven with what the client's login proved.
    Own,
    /// Another account, with its password (`backend_user`, or the service account).
    As {
        /// Account name.
        user: String,
        /// Its password.
        password: String,
    },
}

impl std::fmt::Debug for BackendAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BackendAccount::Own => f.write_str("Own"),
            BackendAccount::As { user, .. } => write!(f, "As({user})"),
        }
    }
}
