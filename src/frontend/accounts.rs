//! The accounts clients log in with, and the MariaDB account each session acts as.
//!
//! Accounts come from the `[[users]]` entries of the config and, with `[auth] source =
//! "backend"`, from the global shard's `mysql.user` table: read with the service account,
//! cached, read again every `auth.refresh_ms` and at once (at most once a second) when a
//! client names an account the cache does not know, so that `CREATE USER` on the backends
//! works through the router within a second. A `[[users]]` entry wins over a backend
//! account of the same name.
//!
//! Backend accounts keep MariaDB's host patterns: of an account's rows, the first one
//! (in MariaDB's order: literal hosts before patterns, longer literal prefixes first, `%`
//! last) whose host matches the client's address is the one whose password is checked.
//! Addresses are matched as IP literals, `%`/`_` patterns and `net/mask`; `localhost`
//! matches the loopback addresses; host names are not resolved (as with MariaDB's
//! `skip_name_resolve`). Only `mysql_native_password` accounts (and accounts without a
//! password) can be checked by the router; anonymous accounts and roles are skipped.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use mysql_async::prelude::Queryable;
use tracing::{debug, warn};

use crate::config::{AccountSource, BackendAccount, SharedConfig};
use crate::protocol::auth::Credentials;
use crate::router::RoutingTable;

/// A client account, as a login finds it.
#[derive(Debug, Clone)]
pub struct Account {
    /// Account name.
    pub name: String,
    /// The verifiers of its password; `None` for a backend account whose plugin the
    /// router cannot check (named in `unsupported_plugin`).
    pub credentials: Option<Credentials>,
    /// The plugin of a backend account the router cannot verify.
    pub unsupported_plugin: Option<String>,
    /// Which MariaDB account its sessions log in as.
    pub backend: BackendAccount,
    /// Refused without TLS (`require_tls`, or a backend account's `REQUIRE SSL`).
    pub require_tls: bool,
    /// Sessions at once (0: no limit): `max_connections`, or the backend account's
    /// `MAX_USER_CONNECTIONS` (counted per router: MariaDB counts the backend connections).
    pub max_connections: usize,
}

/// One row of `mysql.user`.
#[derive(Debug, Clone)]
struct BackendRow {
    host: String,
    plugin: String,
    auth: String,
    require_tls: bool,
    max_connections: usize,
}

/// The accounts of `mysql.user`, by name, rows in match order.
type BackendAccounts = HashMap<String, Vec<BackendRow>>;

/// Every account source of the router.
pub struct AccountDirectory {
    /// The config in force: `[[users]]` as the last reload left them.
    config: SharedConfig,
    routing: Arc<ArcSwap<RoutingTable>>,
    backend: ArcSwap<BackendAccounts>,
    /// When the backend accounts were last read (or tried), to bound reads on misses.
    last_read: Mutex<Option<Instant>>,
    /// One read at a time.
    reading: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for AccountDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountDirectory")
            .field("backend_accounts", &self.backend.load().len())
            .finish()
    }
}

/// Least time between two reads of `mysql.user` caused by unknown names.
const MISS_READ_INTERVAL: Duration = Duration::from_secs(1);

impl AccountDirectory {
    /// A directory over the config's accounts and, with `source = "backend"`, the global
    /// shard's (read on first need and by [`AccountDirectory::refresh_loop`]).
    pub fn new(config: SharedConfig, routing: Arc<ArcSwap<RoutingTable>>) -> Arc<Self> {
        Arc::new(AccountDirectory {
            config,
            routing,
            backend: ArcSwap::from_pointee(HashMap::new()),
            last_read: Mutex::new(None),
            reading: tokio::sync::Mutex::new(()),
        })
    }

    /// The account `name` logging in from `ip`, if there is one.
    pub async fn find(&self, name: &str, ip: IpAddr) -> Option<Account> {
        if let Some(account) = self.config_account(name) {
            return Some(account);
        }
        if self.config.load().auth.source != AccountSource::Backend || name.is_empty() {
            return None;
        }
        if let Some(account) = self.mariadb_account(name, ip) {
            return Some(account);
        }
        // Perhaps created since the last read: read again, at most once a second however
        // many logins name unknown accounts (each waits for the one read).
        {
            let _one = self.reading.lock().await;
            if self.read_is_due() {
                self.read_locked().await;
            }
        }
        self.mariadb_account(name, ip)
    }

    fn read_is_due(&self) -> bool {
        self.last_read
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_none_or(|at| at.elapsed() >= MISS_READ_INTERVAL)
    }

    fn config_account(&self, name: &str) -> Option<Account> {
        let config = self.config.load();
        let credentials = config.account(name)?.clone();
        let user = config.users.iter().find(|u| u.name == name);
        Some(Account {
            name: name.to_string(),
            credentials: Some(credentials),
            unsupported_plugin: None,
            backend: config.backend_account(name),
            require_tls: user.is_some_and(|u| u.require_tls),
            max_connections: user.map_or(0, |u| u.max_connections),
        })
    }

    fn mariadb_account(&self, name: &str, ip: IpAddr) -> Option<Account> {
        let accounts = self.backend.load();
        let row = accounts
            .get(name)?
            .iter()
            .find(|row| host_matches(&row.host, ip))?;
        let (credentials, unsupported_plugin) = match row_credentials(row) {
            Some(c) => (Some(c), None),
            None => (None, Some(row.plugin.clone())),
        };
        Some(Account {
            name: name.to_string(),
            credentials,
            unsupported_plugin,
            backend: self.config.load().backend_account(name),
            require_tls: row.require_tls,
            max_connections: row.max_connections,
        })
    }

    /// Reads `mysql.user` again now (one read at a time; a failed read keeps the accounts
    /// read before).
    pub async fn read_backend(&self) {
        let _one = self.reading.lock().await;
        self.read_locked().await;
    }

    /// The read itself; the caller holds `reading`.
    async fn read_locked(&self) {
        *self.last_read.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        match self.load().await {
            Ok(accounts) => {
                debug!(accounts = accounts.len(), "backend accounts read");
                self.backend.store(Arc::new(accounts));
            }
            Err(e) => {
                warn!(error = %e, "cannot read the backend accounts; keeping the last ones read")
            }
        }
    }

    /// Reads the backend accounts every `auth.refresh_ms`, forever (`source = "backend"`).
    pub async fn refresh_loop(self: Arc<Self>) {
        if self.config.load().auth.source != AccountSource::Backend {
            return;
        }
        loop {
            self.read_backend().await;
            // Read each time: a reload may change it.
            let every = Duration::from_millis(self.config.load().auth.refresh_ms);
            tokio::time::sleep(every).await;
        }
    }

    async fn load(&self) -> Result<BackendAccounts, String> {
        let table = self.routing.load_full();
        let addr = table
            .shard(table.global_shard())
            .map(|s| s.master.clone())
            .ok_or("the topology has no global shard")?;
        let timeout = self.config.load().timeouts.connect();
        let mut conn = tokio::time::timeout(
            timeout,
            crate::moves::data::connect(&self.config.load(), &addr),
        )
        .await
        .map_err(|_| format!("{addr}: no connection within {timeout:?}"))??;
        let query = conn.query::<(String, String, String, String, String, i64, String), _>(
            "SELECT User, Host, plugin, authentication_string, ssl_type, max_user_connections, is_role \
             FROM mysql.user",
        );
        let rows = tokio::time::timeout(timeout * 2, query)
            .await
            .map_err(|_| {
                format!(
                    "{addr}: reading mysql.user took longer than {:?}",
                    timeout * 2
                )
            })?
            .map_err(|e| format!("{addr}: reading mysql.user: {e}"))?;
        let _ = conn.disconnect().await;
        Ok(accounts_from_rows(rows))
    }
}

/// Groups `mysql.user` rows by account name, each account's rows in MariaDB's match
/// order; roles and anonymous accounts are left out.
fn accounts_from_rows(
    rows: Vec<(String, String, String, String, String, i64, String)>,
) -> BackendAccounts {
    let mut accounts: BackendAccounts = HashMap::new();
    for (user, host, plugin, auth, ssl_type, max_user_connections, is_role) in rows {
        if user.is_empty() || is_role.eq_ignore_ascii_case("y") {
            continue;
        }
        accounts.entry(user).or_default().push(BackendRow {
            host: host.to_ascii_lowercase(),
            plugin,
            auth,
            require_tls: !ssl_type.is_empty(),
            max_connections: usize::try_from(max_user_connections).unwrap_or(0),
        });
    }
    for rows in accounts.values_mut() {
        rows.sort_by_key(|r| host_rank(&r.host));
    }
    accounts
}

/// The verifiers of a `mysql.user` row, if the router can check its plugin.
fn row_credentials(row: &BackendRow) -> Option<Credentials> {
    match row.plugin.as_str() {
        "mysql_native_password" | "" if row.auth.is_empty() => Some(Credentials::empty()),
        "mysql_native_password" | "" => Credentials::from_hashes(Some(&row.auth), None).ok(),
        _ => None,
    }
}

/// Sort key of a host pattern: literal hosts first, then patterns by their literal
/// prefix, longest first; `%` (and an empty host) last.
fn host_rank(host: &str) -> (u8, usize) {
    match host.find(['%', '_']) {
        None if !host.is_empty() => (0, 0),
        None => (2, 0),
        Some(0) => (2, 0),
        Some(prefix) => (1, usize::MAX - prefix),
    }
}

/// Whether MariaDB's host pattern `pattern` (lower case) admits a client at `ip`.
pub fn host_matches(pattern: &str, ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    if pattern == "localhost" {
        return ip.is_loopback();
    }
    if let Some((net, mask)) = pattern.split_once('/') {
        return match (net.parse::<IpAddr>(), mask.parse::<IpAddr>(), ip) {
            (Ok(IpAddr::V4(net)), Ok(IpAddr::V4(mask)), IpAddr::V4(ip)) => {
                u32::from(ip) & u32::from(mask) == u32::from(net)
            }
            _ => false,
        };
    }
    like(pattern.as_bytes(), ip.to_string().as_bytes())
}

/// SQL `LIKE` matching: `%` any run, `_` one character, `\` escapes.
fn like(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'%', rest)) => (0..=text.len()).any(|skip| like(rest, &text[skip..])),
        Some((b'_', rest)) => !text.is_empty() && like(rest, &text[1..]),
        Some((b'\\', rest)) if !rest.is_empty() => {
            text.first() == rest.first() && like(&rest[1..], &text[1..])
        }
        Some((c, rest)) => text.first() == Some(c) && like(rest, &text[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn host_patterns_match_like_mariadb() {
        assert!(host_matches("%", ip("10.1.2.3")));
        assert!(host_matches("10.1.2.%", ip("10.1.2.3")));
        assert!(!host_matches("10.1.2.%", ip("10.1.20.3")));
        assert!(host_matches("10.1._.3", ip("10.1.2.3")));
        assert!(!host_matches("10.1._.3", ip("10.1.22.3")));
        assert!(host_matches("10.1.2.3", ip("10.1.2.3")));
        assert!(host_matches("10.1.2.3", ip("::ffff:10.1.2.3")));
        assert!(host_matches("10.1.0.0/255.255.0.0", ip("10.1.200.3")));
        assert!(!host_matches("10.1.0.0/255.255.0.0", ip("10.2.0.3")));
        assert!(host_matches("localhost", ip("127.0.0.1")));
        assert!(host_matches("localhost", ip("::1")));
        assert!(!host_matches("localhost", ip("10.0.0.1")));
        assert!(!host_matches("db.example.com", ip("10.0.0.1")));
        assert!(host_matches("::1", ip("::1")));
        assert!(!host_matches("", ip("10.0.0.1")));
    }

    #[test]
    fn the_most_specific_matching_row_is_the_account() {
        let row = |host: &str, auth: &str| {
            (
                "app".to_string(),
                host.to_string(),
                "mysql_native_password".to_string(),
                auth.to_string(),
                String::new(),
                0i64,
                "N".to_string(),
            )
        };
        let wide = crate::protocol::auth::native_hash_string("wide");
        let lan = crate::protocol::auth::native_hash_string("lan");
        let exact = crate::protocol::auth::native_hash_string("exact");
        let mut role = row("%", "");
        role.0 = "a_role".into();
        role.6 = "Y".into();
        let mut anonymous = row("%", "");
        anonymous.0 = String::new();
        let accounts = accounts_from_rows(vec![
            row("%", &wide),
            row("10.0.%", &lan),
            row("10.0.0.7", &exact),
            role,
            anonymous,
        ]);
        assert_eq!(
            accounts.len(),
            1,
            "roles and anonymous accounts are skipped"
        );
        let pick = |addr: &str| {
            accounts["app"]
                .iter()
                .find(|r| host_matches(&r.host, ip(addr)))
                .map(|r| r.auth.clone())
        };
        assert_eq!(pick("10.0.0.7"), Some(exact));
        assert_eq!(pick("10.0.3.1"), Some(lan));
        assert_eq!(pick("192.168.1.1"), Some(wide));
    }

    #[test]
    fn only_native_and_passwordless_rows_can_be_checked() {
        let row = |plugin: &str, auth: &str| BackendRow {
            host: "%".into(),
            plugin: plugin.into(),
            auth: auth.into(),
            require_tls: false,
            max_connections: 0,
        };
        let hash = crate::protocol::auth::native_hash_string("pw");
        assert!(row_credentials(&row("mysql_native_password", &hash)).is_some());
        assert_eq!(
            row_credentials(&row("mysql_native_password", "")),
            Some(Credentials::empty())
        );
        assert!(row_credentials(&row("ed25519", "abc")).is_none());
        assert!(row_credentials(&row("unix_socket", "")).is_none());
        assert!(row_credentials(&row("mysql_native_password", "invalid")).is_none());
    }
}
