//! The operations' tables: `[failover]` (switchover, failover, automatic failover and
//! the buffering of statements meanwhile) and `[clone]` (how new standbys get their data).

use std::path::PathBuf;

use serde::Deserialize;

/// How `ctl standby add|rebuild` copies a server (`[clone]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum CloneMethod {
    /// `mariadb-dump` into the target over SQL: nothing runs on the database hosts.
    #[default]
    Logical,
    /// `mariadb-backup` streamed from the source's host into the target's data directory
    /// (the target server is stopped and started with `stop_server` / `start_server`).
    Physical,
}

/// The `[clone]` table: how new standbys get their data (docs/operations.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CloneConfig {
    /// The default method of `ctl standby add|rebuild` (`--method` overrides it).
    pub method: CloneMethod,
    /// Runs a command on a database host (physical copies): empty = on this machine,
    /// else a prefix such as `ssh -o BatchMode=yes {host}` (the command is its last argument).
    pub shell: String,
    /// Stops the target MariaDB server, run through `shell` on its host; placeholders
    /// `{host}`, `{port}`, `{datadir}`.
    pub stop_server: String,
    /// Starts it again (same placeholders).
    pub start_server: String,
    /// How long the restored server may take to answer after `start_server`.
    pub start_timeout_ms: u64,
}

impl Default for CloneConfig {
    fn default() -> Self {
        Self {
            method: CloneMethod::Logical,
            shell: String::new(),
            stop_server: "systemctl stop mariadb".into(),
            start_server: "systemctl start mariadb".into(),
            start_timeout_ms: 300_000,
        }
    }
}

/// The `[failover]` table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FailoverConfig {
    /// Replication account standbys use to connect to their master.
    pub repl_user: String,
    /// Its password (development; or `repl_password_env` / `repl_password_file`).
    pub repl_password: String,
    /// Environment variable holding the replication password.
    pub repl_password_env: Option<String>,
    /// A file holding the replication password (relative to the config file).
    pub repl_password_file: Option<PathBuf>,
    /// How long a router holds a statement for a switching shard before a retryable error.
    pub buffer_max_ms: u64,
    /// How many statements a router holds at once for switching shards; more get the
    /// retryable error at once.
    pub buffer_max_statements: usize,
    /// During a switchover: how long open transactions on the old master may finish
    /// before its remaining connections are killed.
    pub drain_ms: u64,
    /// How long the new master may take to apply the old master's last transaction.
    pub catchup_timeout_ms: u64,
    /// Automatic failover: the coordinator fails a shard over when a majority of the live
    /// routers has not reached its master for `auto_after_ms` (docs/operations.md).
    pub auto: bool,
    /// How long a majority of routers must have lost the master before it is failed over.
    pub auto_after_ms: u64,
    /// A second automatic failover of a shard within this time is not made: the shard is
    /// disarmed until `dbrouter ctl failover arm` (anti-flap).
    pub auto_min_interval_ms: u64,
    /// The coordinator rebuilds a former master that cannot rejoin (errant transactions)
    /// as `dbrouter ctl standby rebuild` does (with `auto`).
    pub auto_rebuild: bool,
}

impl Default for FailoverConfig {
    fn default() -> Self {
        Self {
            repl_user: "repl".into(),
            repl_password: String::new(),
            repl_password_env: None,
            repl_password_file: None,
            buffer_max_ms: 10_000,
            buffer_max_statements: 10_000,
            drain_ms: 5_000,
            catchup_timeout_ms: 30_000,
            auto: false,
            auto_after_ms: 1_500,
            auto_min_interval_ms: 600_000,
            auto_rebuild: false,
        }
    }
}
