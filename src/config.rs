//! The TOML configuration file: listener, timeouts, backend service credentials, shards
//! and client accounts. Parsing rejects unknown fields (a typo is an error, not a silent
//! default) and validation names the offending field; see docs/configuration.md.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::protocol::auth::{AuthMethod, Credentials};

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TOML is malformed or has unknown/mistyped fields (the message has the line).
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A value is out of range or inconsistent with another.
    #[error("invalid config file {path}: field `{field}`: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Dotted path of the field, e.g. `shards[1].master`.
        field: String,
        /// What is wrong and how to fix it.
        message: String,
    },
}

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The client-facing listener.
    pub server: ServerConfig,
    /// Timeouts of every kind.
    #[serde(default)]
    pub timeouts: Timeouts,
    /// The service account dbrouter uses on every backend.
    pub backend: BackendConfig,
    /// The shards, in ring order (their position is their `ShardId`).
    pub shards: Vec<ShardConfig>,
    /// Which tables are sharded by which key column, and where global tables live.
    #[serde(default)]
    pub sharding: ShardingConfig,
    /// Users placed on a shard explicitly (moved by ops), checked before the ring.
    #[serde(default)]
    pub overrides: Vec<OverrideConfig>,
    /// Backend connection pools.
    #[serde(default)]
    pub pool: PoolConfig,
    /// Where the shared topology lives.
    #[serde(default)]
    pub topology: TopologyConfig,
    /// The operations account (`dbrouter ctl promote/failover/rejoin`).
    #[serde(default)]
    pub admin: Option<AdminConfig>,
    /// Switchover and failover settings.
    #[serde(default)]
    pub failover: FailoverConfig,
    /// How standbys are cloned (`[clone]`: `ctl standby add|rebuild`).
    #[serde(default)]
    pub clone: CloneConfig,
    /// The health checker.
    #[serde(default)]
    pub health: HealthConfig,
    /// Accounts that clients log in with.
    #[serde(default)]
    pub users: Vec<UserConfig>,
    /// Abuse limits on logins (`[limits]`).
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Whose identity sessions use at the database, and where accounts come from.
    #[serde(default)]
    pub auth: AuthConfig,
    /// Logging (`[log]`).
    #[serde(default)]
    pub log: LogConfig,
    #[serde(skip)]
    accounts: HashMap<String, Credentials>,
}

/// The `[server]` table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address clients connect to, e.g. `127.0.0.1:6033`.
    pub listen: String,
    /// Concurrent client connections; more get ERR 1040.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Largest client packet (a statement, a LOAD DATA chunk) in bytes.
    #[serde(default = "default_max_packet_size")]
    pub max_packet_size: usize,
    /// The plugin named in the greeting; clients may be switched per account.
    #[serde(default = "default_auth_plugin")]
    pub default_auth_plugin: String,
    /// Server version in the greeting; default: the first shard master's own.
    #[serde(default)]
    pub server_version: Option<String>,
    /// Serving threads, each with its own single-threaded runtime (default: one per CPU core).
    #[serde(default)]
    pub worker_threads: Option<usize>,
    /// Pin serving thread i to the i-th CPU core the process may run on (round robin).
    #[serde(default = "default_true")]
    pub pin_threads: bool,
    /// Admin HTTP listener (`/metrics`, `/healthz`, `/readyz`, status page); off if unset.
    #[serde(default)]
    pub admin_listen: Option<String>,
    /// Put internal details (backend addresses, socket errors) in the error messages
    /// clients see; off by default: they are in the router's log only.
    #[serde(default)]
    pub error_detail: bool,
    /// TLS for clients (`[server.tls]`); without it the router offers no TLS.
    #[serde(default)]
    pub tls: Option<TlsSection>,
    /// Offer the compressed protocol (`CLIENT_COMPRESS`, zlib) to clients that ask for it.
    #[serde(default = "default_true")]
    pub compression: bool,
    /// Refuse clients that do not use TLS (ERR 3159), as MariaDB's
    /// `require_secure_transport`.
    #[serde(default)]
    pub require_secure_transport: bool,
    /// A token the admin HTTP port requires (`Authorization: Bearer …`) on everything but
    /// `/healthz` and `/readyz` (development; or `admin_token_env` / `admin_token_file`).
    #[serde(default)]
    pub admin_token: Option<String>,
    /// Environment variable holding the admin token.
    #[serde(default)]
    pub admin_token_env: Option<String>,
    /// A file holding the admin token (relative to the config file).
    #[serde(default)]
    pub admin_token_file: Option<PathBuf>,
}

impl ServerConfig {
    /// The admin token, if one is configured (resolved when the config is loaded).
    pub fn admin_token(&self) -> Option<&str> {
        self.admin_token.as_deref().filter(|t| !t.is_empty())
    }
}

/// The `[limits]` table: what one client address or account may cost the router before
/// it logs in (docs/security.md, "Abuse limits").
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Connections from one address in their connection phase at once; more are refused
    /// (ERR 1040) before the greeting.
    pub max_logins_per_address: usize,
    /// Failed logins from one address before its logins are delayed.
    pub failures_per_address: u32,
    /// Failed logins of one account, from anywhere, before its logins are delayed.
    pub failures_per_account: u32,
    /// The delay grows by this much per failure beyond the threshold (ms).
    pub delay_step_ms: u64,
    /// Up to this (ms); at most half of `timeouts.handshake_ms`.
    pub delay_max_ms: u64,
    /// A failure count is forgotten this long after its last failure (ms).
    pub forget_after_ms: u64,
    /// Prepared statements one session may hold (MySQL's `max_prepared_stmt_count`, per
    /// session); more get ERR 1461.
    pub max_prepared_per_session: usize,
    /// Bytes one session may hold in prepared-statement texts and buffered long data.
    pub max_session_bytes: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_logins_per_address: 512,
            failures_per_address: 5,
            failures_per_account: 50,
            delay_step_ms: 1000,
            delay_max_ms: 5000,
            forget_after_ms: 15 * 60 * 1000,
            max_prepared_per_session: 1024,
            max_session_bytes: 256 << 20,
        }
    }
}

/// The `[log]` table.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// What is logged, in tracing's `EnvFilter` syntax (`info`, `dbrouter=debug,info`);
    /// default `info`. The `DBROUTER_LOG` environment variable, when set, wins.
    pub filter: Option<String>,
}

impl LogConfig {
    /// The filter directives in force: `filter`, else `info`.
    pub fn directives(&self) -> &str {
        self.filter.as_deref().unwrap_or("info")
    }
}

/// The `[server.tls]` table. Relative paths are read from the config file's directory.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// PEM certificate chain, the server's certificate first.
    pub cert_file: PathBuf,
    /// PEM private key.
    pub key_file: PathBuf,
    /// Lowest TLS version accepted: "1.2" (default) or "1.3".
    #[serde(default = "default_tls_version")]
    pub min_version: String,
}

impl TlsSection {
    /// The files and version, checked.
    pub fn files(&self) -> crate::net::TlsFiles {
        crate::net::TlsFiles {
            cert_file: self.cert_file.clone(),
            key_file: self.key_file.clone(),
            tls13_only: self.min_version == "1.3",
        }
    }
}

fn default_tls_version() -> String {
    "1.2".into()
}

/// The `[timeouts]` table; all values in milliseconds.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Timeouts {
    /// TCP connect plus handshake with a backend.
    pub connect_ms: u64,
    /// A client's whole connection phase (greeting to OK).
    pub handshake_ms: u64,
    /// A client idle between statements (like wait_timeout).
    pub idle_ms: u64,
    /// Silence from a backend while a response is due (a long query sends nothing).
    pub backend_read_ms: u64,
    /// A client that does not accept the bytes we write it.
    pub client_write_ms: u64,
    /// A client that stopped in the middle of a packet (a command or LOAD DATA LOCAL
    /// data), like MariaDB's `net_read_timeout`: the connection is closed and its
    /// buffer freed.
    pub net_read_ms: u64,
    /// On SIGTERM: how long open transactions may take to finish.
    pub drain_ms: u64,
    /// At start-up: how long to wait for the backend before giving up.
    pub startup_ms: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect_ms: 3_000,
            handshake_ms: 10_000,
            idle_ms: 28_800_000,
            backend_read_ms: 600_000,
            client_write_ms: 60_000,
            net_read_ms: 30_000,
            drain_ms: 30_000,
            startup_ms: 60_000,
        }
    }
}

impl Timeouts {
    /// `connect_ms` as a duration.
    pub fn connect(&self) -> Duration {
        Duration::from_millis(self.connect_ms)
    }
    /// `handshake_ms` as a duration.
    pub fn handshake(&self) -> Duration {
        Duration::from_millis(self.handshake_ms)
    }
    /// `idle_ms` as a duration.
    pub fn idle(&self) -> Duration {
        Duration::from_millis(self.idle_ms)
    }
    /// `backend_read_ms` as a duration.
    pub fn backend_read(&self) -> Duration {
        Duration::from_millis(self.backend_read_ms)
    }
    /// `net_read_ms` as a duration.
    pub fn net_read(&self) -> Duration {
        Duration::from_millis(self.net_read_ms)
    }

    /// `client_write_ms` as a duration.
    pub fn client_write(&self) -> Duration {
        Duration::from_millis(self.client_write_ms)
    }
    /// `drain_ms` as a duration.
    pub fn drain(&self) -> Duration {
        Duration::from_millis(self.drain_ms)
    }
    /// `startup_ms` as a duration.
    pub fn startup(&self) -> Duration {
        Duration::from_millis(self.startup_ms)
    }
}

/// The `[backend]` table: dbrouter's own account on the MariaDB servers.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendConfig {
    /// Account name.
    pub user: String,
    /// Password in the file (development).
    #[serde(default)]
    pub password: Option<String>,
    /// Name of an environment variable holding the password (production).
    #[serde(default)]
    pub password_env: Option<String>,
    /// A file holding the password (production; relative to the config file).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// TLS to every MariaDB server (`[backend.tls]`): relayed connections, health checks,
    /// moves and `ctl` operations alike.
    #[serde(default)]
    pub tls: Option<BackendTlsSection>,
    #[serde(skip)]
    resolved_password: String,
}

/// The `[backend.tls]` table. Relative paths are read from the config file's directory.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendTlsSection {
    /// PEM CA certificate(s) the servers' certificates must chain to.
    pub ca_file: PathBuf,
    /// PEM client certificate chain, for servers that require one (with `key_file`).
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// The name the servers' certificates must carry (default: the host of each
    /// server's address; an IP address must then be in the certificate's IP SANs).
    #[serde(default)]
    pub server_name: Option<String>,
}

impl BackendConfig {
    /// The service password, from the file or the environment.
    pub fn password(&self) -> &str {
        &self.resolved_password
    }
}

/// One `[[shards]]` entry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardConfig {
    /// Unique shard name.
    pub name: String,
    /// `host:port` of the master.
    pub master: String,
    /// `host:port` of each hot standby (monitored, never queried).
    #[serde(default)]
    pub standbys: Vec<String>,
    /// Virtual nodes on the ring; 0 = takes no new users (overridden users stay).
    #[serde(default = "default_weight")]
    pub weight: u32,
}

/// The `[sharding]` table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShardingConfig {
    /// Key column of every sharded table that does not name its own.
    pub key_column: String,
    /// Shard holding the global (unsharded) tables and serving keyless statements.
    pub global_shard: Option<String>,
    /// Unsharded tables, all on `global_shard`.
    pub global_tables: Vec<String>,
    /// Sharded tables, each with its key column (default `key_column`).
    pub tables: Vec<ShardedTableConfig>,
    /// Tables in neither list: `"sharded"` (need the key; the safe default) or
    /// `"global"` (live on `global_shard`).
    pub unlisted_tables: UnlistedTables,
    /// SQL type of the key columns, so that key values are read as MariaDB converts them.
    pub key_type: KeyColumnType,
}

/// SQL type of the shard-key columns (`sharding.key_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum KeyColumnType {
    /// `BIGINT` (signed): user ids 0 ..= 9223372036854775807. The default.
    #[serde(rename = "bigint")]
    Bigint,
    /// `BIGINT UNSIGNED`: user ids 0 ..= 18446744073709551615.
    #[serde(rename = "bigint unsigned")]
    BigintUnsigned,
    /// `INT` (signed): user ids 0 ..= 2147483647.
    #[serde(rename = "int")]
    Int,
    /// `INT UNSIGNED`: user ids 0 ..= 4294967295.
    #[serde(rename = "int unsigned")]
    IntUnsigned,
    /// A string type (`VARCHAR`, `CHAR`, `VARBINARY`…): user ids are text.
    #[serde(rename = "text")]
    Text,
}

impl KeyColumnType {
    /// The largest user id an integer key column holds; None for text keys.
    pub fn max(self) -> Option<u64> {
        match self {
            KeyColumnType::Bigint => Some(i64::MAX as u64),
            KeyColumnType::BigintUnsigned => Some(u64::MAX),
            KeyColumnType::Int => Some(i32::MAX as u64),
            KeyColumnType::IntUnsigned => Some(u64::from(u32::MAX)),
            KeyColumnType::Text => None,
        }
    }
}

/// How tables named in neither `sharding.tables` nor `sharding.global_tables` are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnlistedTables {
    /// Sharded by `key_column`: a statement without the key is refused.
    Sharded,
    /// Global: on `global_shard`.
    Global,
}

impl Default for ShardingConfig {
    fn default() -> Self {
        Self {
            key_column: "userid".into(),
            global_shard: None,
            global_tables: Vec::new(),
            tables: Vec::new(),
            unlisted_tables: UnlistedTables::Sharded,
            key_type: KeyColumnType::Bigint,
        }
    }
}

/// One `[[sharding.tables]]` entry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardedTableConfig {
    /// Table name.
    pub name: String,
    /// Its shard-key column (default: `sharding.key_column`).
    #[serde(default)]
    pub key: Option<String>,
}

/// One `[[overrides]]` entry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverrideConfig {
    /// The user id (an integer or a string).
    pub user: toml::Value,
    /// The shard name.
    pub shard: String,
}

/// The `[pool]` table: backend connections per shard master.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PoolConfig {
    /// When a session gives its backend connections back (docs/sharding.md, "Pool modes").
    pub mode: PoolMode,
    /// Most backend connections per shard master (in use plus idle).
    pub max_per_shard: usize,
    /// Idle connections kept per shard master for reuse.
    pub max_idle_per_shard: usize,
    /// How long a statement waits for a free connection before a retryable error.
    pub wait_ms: u64,
    /// Most statements (and logins) waiting for a connection of one master at once; the
    /// next one is refused at once with the retryable error.
    pub max_waiting_per_shard: usize,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            mode: PoolMode::Session,
            max_per_shard: 1000,
            max_idle_per_shard: 100,
            wait_ms: 2000,
            max_waiting_per_shard: 10_000,
        }
    }
}

/// How long a session keeps a backend connection (`[pool] mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PoolMode {
    /// From the first statement that needs the shard until the session ends.
    #[default]
    Session,
    /// Only while it must: inside a transaction, a multi-result or a cursor, or while the
    /// session holds state that cannot follow it to another connection.
    Transaction,
}

/// The `[topology]` table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TopologyConfig {
    /// `"file"` (the `[[shards]]` of this file) or `"zk://host:port[,…]/dbrouter/<cluster>"`.
    pub source: String,
    /// ZooKeeper session timeout.
    pub session_timeout_ms: u64,
    /// How long a router cut off from ZooKeeper keeps serving its last topology; after
    /// that it refuses statements (retryable) until ZooKeeper is back (0 = forever).
    pub stale_serving_ms: u64,
    /// This router's id in the registrations (default: host name, port and process id).
    pub router_id: Option<String>,
    /// ZooKeeper digest user dbrouter authenticates as; the nodes it creates are then
    /// writable by that identity only (docs/security.md).
    pub zk_user: Option<String>,
    /// Its password (development; or `zk_password_env` / `zk_password_file`).
    pub zk_password: Option<String>,
    /// Environment variable holding the ZooKeeper password.
    pub zk_password_env: Option<String>,
    /// A file holding the ZooKeeper password (relative to the config file).
    pub zk_password_file: Option<PathBuf>,
}

impl TopologyConfig {
    /// `(user, password)` for ZooKeeper's digest scheme, when `zk_user` is set (the
    /// password is resolved when the config is loaded).
    pub fn zk_digest(&self) -> Option<(String, String)> {
        self.zk_user
            .clone()
            .map(|u| (u, self.zk_password.clone().unwrap_or_default()))
    }
}

/// Splits a `zk://host:port[,host:port…]/path` topology source into the ZooKeeper connect
/// string and the root path (`/path`), checking each host as the ZooKeeper client reads it
/// (`host[:port]`, an IPv6 address in brackets; the port defaults to 2181).
pub fn parse_zk_url(url: &str) -> Result<(&str, String), String> {
    let rest = url
        .strip_prefix("zk://")
        .ok_or_else(|| format!("{url:?} does not start with zk://"))?;
    let (hosts, path) = rest
        .split_once('/')
        .ok_or_else(|| format!("{url:?} has no root path (zk://host:port/dbrouter/<cluster>)"))?;
    if hosts.is_empty() || path.is_empty() || path.ends_with('/') || path.contains("//") {
        return Err(format!("{url:?} is not zk://host:port/path"));
    }
    if let Some(bad) = hosts.split(',').find(|h| !valid_zk_host(h)) {
        return Err(format!(
            "{url:?}: {bad:?} is not host:port (hosts are separated by commas)"
        ));
    }
    Ok((hosts, format!("/{path}")))
}

/// Whether `h` is `host[:port]` with a port from 1 to 65535 (`[v6-address]:port`).
fn valid_zk_host(h: &str) -> bool {
    let (host, port, extra) = match h.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((host, "")) => (host, None, ":%"),
            Some((host, port)) => match port.strip_prefix(':') {
                Some(port) => (host, Some(port), ":%"),
                None => return false,
            },
            None => return false,
        },
        None => match h.rsplit_once(':') {
            Some((host, port)) => (host, Some(port), "-_"),
            None => (h, None, "-_"),
        },
    };
    !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || extra.contains(c))
        && port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0))
}

impl Default for TopologyConfig {
    fn default() -> Self {
        Self {
            source: "file".into(),
            session_timeout_ms: 10_000,
            stale_serving_ms: 300_000,
            router_id: None,
            zk_user: None,
            zk_password: None,
            zk_password_env: None,
            zk_password_file: None,
        }
    }
}

/// The `[admin]` table: an account with SUPER / replication privileges on every server.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Account name.
    pub user: String,
    /// Password in the file (development).
    #[serde(default)]
    pub password: Option<String>,
    /// Environment variable holding the password (production).
    #[serde(default)]
    pub password_env: Option<String>,
    /// A file holding the password (production; relative to the config file).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    #[serde(skip)]
    resolved_password: String,
}

impl AdminConfig {
    /// The password, from the config, the environment or a file.
    pub fn password(&self) -> Result<String, String> {
        Ok(self.resolved_password.clone())
    }
}

/// The `[health]` table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    /// Time between two probes of every server (0 = no health checker).
    pub interval_ms: u64,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self { interval_ms: 500 }
    }
}

fn default_weight() -> u32 {
    256
}

/// One `[[users]]` entry: an account clients log in with.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// Account name.
    pub name: String,
    /// `*` + 40 hex digits, as MySQL's PASSWORD() (`dbrouter ctl hash-password`).
    #[serde(default)]
    pub mysql_native_password: Option<String>,
    /// 64 hex digits: SHA256(SHA256(password)) (`dbrouter ctl hash-password`).
    #[serde(default)]
    pub caching_sha2_password: Option<String>,
    /// Plaintext password; accepted for development, prefer the hashes.
    #[serde(default)]
    pub password: Option<String>,
    /// Refuse this account over a connection without TLS (ERR 3159).
    #[serde(default)]
    pub require_tls: bool,
    /// Sessions of this account at once (0: no limit); more get ERR 1226.
    #[serde(default)]
    pub max_connections: usize,
    /// The MariaDB account this client account acts as (default: itself with
    /// `[auth] identity = "client"`, the service account with `"service"`).
    #[serde(default)]
    pub backend_user: Option<String>,
    /// Password of `backend_user` (development; or `backend_password_env` /
    /// `backend_password_file`; not needed when `backend_user` is the `[backend]` account).
    #[serde(default)]
    pub backend_password: Option<String>,
    /// Environment variable holding the password of `backend_user`.
    #[serde(default)]
    pub backend_password_env: Option<String>,
    /// A file holding the password of `backend_user` (relative to the config file).
    #[serde(default)]
    pub backend_password_file: Option<PathBuf>,
}

fn default_max_connections() -> usize {
    10_000
}
fn default_max_packet_size() -> usize {
    64 * 1024 * 1024
}
fn default_true() -> bool {
    true
}
fn default_auth_plugin() -> String {
    AuthMethod::Native.plugin_name().to_string()
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses and validates config text; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        config.validate(path)?;
        Ok(config)
    }

    /// The verifiers of a client account.
    pub fn account(&self, name: &str) -> Option<&Credentials> {
        self.accounts.get(name)
    }

    /// How sessions of a client account log in to MariaDB: as a `[[users]]` entry's
    /// `backend_user`, else as `[auth] identity` says.
    pub fn backend_account(&self, name: &str) -> BackendAccount {
        let mapped = self.users.iter().find(|u| u.name == name).and_then(|u| {
            let user = u.backend_user.clone()?;
            // Resolved when the config was loaded (the service password when unset).
            let password = u.backend_password.clone().unwrap_or_default();
            Some(BackendAccount::As { user, password })
        });
        match (mapped, self.auth.identity) {
            (Some(mapped), _) => mapped,
            (None, Identity::Client) => BackendAccount::Own,
            (None, Identity::Service) => BackendAccount::As {
                user: self.backend.user.clone(),
                password: self.backend.password().to_string(),
            },
        }
    }

    /// The greeting's default plugin.
    pub fn default_auth_method(&self) -> AuthMethod {
        AuthMethod::from_plugin_name(self.server.default_auth_plugin.as_bytes())
            .unwrap_or(AuthMethod::Native)
    }

    /// The shard of global tables and keyless statements (`sharding.global_shard`, else
    /// the first shard); `None` only for a ZooKeeper topology without `[[shards]]`.
    pub fn global_shard(&self) -> Option<&ShardConfig> {
        let name = self.sharding.global_shard.as_deref();
        self.shards
            .iter()
            .find(|s| Some(s.name.as_str()) == name)
            .or(self.shards.first())
    }
}

/// The configuration a running router serves with, swapped whole by a reload
/// ([`reload::merge`]); readers take one atomic load per connection or statement.
pub type SharedConfig = std::sync::Arc<arc_swap::ArcSwap<Config>>;

mod auth;
mod operations;
pub mod reload;
mod validate;
pub use auth::{AccountSource, AuthConfig, BackendAccount, Identity};
pub use operations::{CloneConfig, CloneMethod, FailoverConfig};
pub use validate::check_host_port;

#[cfg(test)]
mod tests;
