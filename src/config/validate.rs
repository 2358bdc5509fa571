//! Validation of a parsed config file: every field checked, named in the error, secrets
//! resolved (inline, environment variable or file) and client accounts built.

use std::collections::HashMap;
use std::path::Path;

use super::*;

impl Config {
    /// Checks every field (naming the offending one) and resolves secrets and accounts.
    pub(super) fn validate(&mut self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |field: String, message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            field,
            message,
        };
        self.server
            .listen
            .parse::<SocketAddr>()
            .map_err(|e| invalid("server.listen".into(), format!("{e}; expected ip:port")))?;
        if let Some(tls) = &mut self.server.tls {
            if tls.min_version != "1.2" && tls.min_version != "1.3" {
                return Err(invalid(
                    "server.tls.min_version".into(),
                    format!("{:?}: give \"1.2\" or \"1.3\"", tls.min_version),
                ));
            }
            // Relative to the config file, wherever the router was started from.
            let dir = path.parent().unwrap_or(Path::new("."));
            for file in [&mut tls.cert_file, &mut tls.key_file] {
                if file.is_relative() {
                    *file = dir.join(&*file);
                }
            }
        }
        if let Some(filter) = &self.log.filter {
            if let Err(e) = tracing_subscriber::EnvFilter::builder().parse(filter) {
                return Err(invalid(
                    "log.filter".into(),
                    format!("{filter:?}: {e} (e.g. \"info\" or \"dbrouter=debug,info\")"),
                ));
            }
        }
        // A delayed login must still finish within the handshake timeout.
        self.limits.delay_max_ms = self.limits.delay_max_ms.min(self.timeouts.handshake_ms / 2);
        if self.limits.max_logins_per_address == 0 {
            return Err(invalid(
                "limits.max_logins_per_address".into(),
                "must be at least 1".into(),
            ));
        }
        if self.server.require_secure_transport && self.server.tls.is_none() {
            return Err(invalid(
                "server.require_secure_transport".into(),
                "needs [server.tls]: no client could connect".into(),
            ));
        }
        if let Some(admin) = &self.server.admin_listen {
            let addr = admin.parse::<SocketAddr>().map_err(|e| {
                invalid(
                    "server.admin_listen".into(),
                    format!("{e}; expected ip:port"),
                )
            })?;
            if self.server.listen.parse::<SocketAddr>().ok() == Some(addr) {
                return Err(invalid(
                    "server.admin_listen".into(),
                    "must differ from server.listen".into(),
                ));
            }
        }
        if self.server.worker_threads == Some(0) {
            return Err(invalid(
                "server.worker_threads".into(),
                "must be at least 1".into(),
            ));
        }
        if self.server.max_connections == 0 {
            return Err(invalid(
                "server.max_connections".into(),
                "must be at least 1".into(),
            ));
        }
        if self.server.max_packet_size < 1024 || self.server.max_packet_size > 1 << 30 {
            return Err(invalid(
                "server.max_packet_size".into(),
                "must be between 1024 and 1073741824 bytes".into(),
            ));
        }
        if AuthMethod::from_plugin_name(self.server.default_auth_plugin.as_bytes()).is_none() {
            return Err(invalid(
                "server.default_auth_plugin".into(),
                "must be mysql_native_password or caching_sha2_password".into(),
            ));
        }
        let t = &self.timeouts;
        for (name, value) in [
            ("connect_ms", t.connect_ms),
            ("handshake_ms", t.handshake_ms),
            ("idle_ms", t.idle_ms),
            ("backend_read_ms", t.backend_read_ms),
            ("client_write_ms", t.client_write_ms),
            ("net_read_ms", t.net_read_ms),
            ("startup_ms", t.startup_ms),
        ] {
            if value == 0 {
                return Err(invalid(
                    format!("timeouts.{name}"),
                    "must be greater than 0".into(),
                ));
            }
        }
        let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        if let Some(tls) = &mut self.backend.tls {
            for file in std::iter::once(&mut tls.ca_file)
                .chain(tls.cert_file.as_mut())
                .chain(tls.key_file.as_mut())
            {
                if file.is_relative() {
                    *file = dir.join(&*file);
                }
            }
            if tls.cert_file.is_some() != tls.key_file.is_some() {
                return Err(invalid(
                    "backend.tls".into(),
                    "give both cert_file and key_file, or neither".into(),
                ));
            }
        }
        let b = &self.backend;
        self.backend.resolved_password = secret(
            "backend.password",
            (
                b.password.as_deref(),
                b.password_env.as_deref(),
                b.password_file.as_deref(),
            ),
            &dir,
        )
        .map_err(|(field, m)| invalid(field, m))?;
        if let Some(a) = &self.admin {
            let resolved = secret(
                "admin.password",
                (
                    a.password.as_deref(),
                    a.password_env.as_deref(),
                    a.password_file.as_deref(),
                ),
                &dir,
            )
            .map_err(|(field, m)| invalid(field, m))?;
            if let Some(a) = &mut self.admin {
                a.resolved_password = resolved;
            }
        }
        let t = &self.topology;
        if t.source != "file" {
            parse_zk_url(&t.source).map_err(|m| {
                invalid(
                    "topology.source".into(),
                    format!(
                        "{m}; give \"file\" or \"zk://host:port[,host:port…]/dbrouter/<cluster>\""
                    ),
                )
            })?;
        }
        if t.zk_user.is_some() {
            let password = secret(
                "topology.zk_password",
                (
                    t.zk_password.as_deref(),
                    t.zk_password_env.as_deref(),
                    t.zk_password_file.as_deref(),
                ),
                &dir,
            )
            .map_err(|(field, m)| invalid(field, m))?;
            self.topology.zk_password = Some(password);
        } else if t.zk_password.is_some()
            || t.zk_password_env.is_some()
            || t.zk_password_file.is_some()
        {
            return Err(invalid(
                "topology.zk_user".into(),
                "a ZooKeeper password needs zk_user".into(),
            ));
        }
        let s = &self.server;
        if s.admin_token.is_some() || s.admin_token_env.is_some() || s.admin_token_file.is_some() {
            let token = secret(
                "server.admin_token",
                (
                    s.admin_token.as_deref(),
                    s.admin_token_env.as_deref(),
                    s.admin_token_file.as_deref(),
                ),
                &dir,
            )
            .map_err(|(field, m)| invalid(field, m))?;
            if token.len() < 16 {
                return Err(invalid(
                    "server.admin_token".into(),
                    "must be at least 16 characters".into(),
                ));
            }
            self.server.admin_token = Some(token);
        }
        let f = &self.failover;
        let inline = (!f.repl_password.is_empty()).then_some(f.repl_password.as_str());
        if inline.is_some() || f.repl_password_env.is_some() || f.repl_password_file.is_some() {
            let resolved = secret(
                "failover.repl_password",
                (
                    inline,
                    f.repl_password_env.as_deref(),
                    f.repl_password_file.as_deref(),
                ),
                &dir,
            )
            .map_err(|(field, m)| invalid(field, m))?;
            self.failover.repl_password = resolved;
        }
        // They are written into CHANGE MASTER TO on every standby: only characters that
        // need no escaping in a string literal, whatever the server's sql_mode.
        for (field, value) in [
            ("failover.repl_user", &self.failover.repl_user),
            ("failover.repl_password", &self.failover.repl_password),
        ] {
            if value
                .chars()
                .any(|c| c == '\'' || c == '\\' || c.is_control())
            {
                return Err(invalid(
                    field.into(),
                    "must not contain quotes, backslashes or control characters (it is written into CHANGE MASTER TO)".into(),
                ));
            }
        }
        self.validate_clone(path)?;
        if self.failover.auto {
            let why = if self.admin.is_none() {
                Some("needs an [admin] account (the coordinator promotes standbys with it)")
            } else if !self.topology.source.starts_with("zk://") {
                Some("needs a ZooKeeper topology (routers agree on a dead master there)")
            } else if self.health.interval_ms == 0 {
                Some("needs the health checker (health.interval_ms > 0)")
            } else if self.failover.auto_after_ms <= self.health.interval_ms {
                Some("failover.auto_after_ms must be longer than health.interval_ms (a master must miss more than one probe)")
            } else {
                None
            };
            if let Some(why) = why {
                return Err(invalid("failover.auto".into(), why.into()));
            }
        }
        if self.shards.is_empty() {
            return Err(invalid(
                "shards".into(),
                "at least one [[shards]] entry is required".into(),
            ));
        }
        let mut names = std::collections::HashSet::new();
        for (i, shard) in self.shards.iter().enumerate() {
            if shard.name.is_empty() || !names.insert(shard.name.clone()) {
                return Err(invalid(
                    format!("shards[{i}].name"),
                    format!("shard name {:?} is empty or used twice", shard.name),
                ));
            }
            for (field, addr) in std::iter::once(("master".to_string(), &shard.master)).chain(
                shard
                    .standbys
                    .iter()
                    .enumerate()
                    .map(|(j, a)| (format!("standbys[{j}]"), a)),
            ) {
                check_host_port(addr).map_err(|m| invalid(format!("shards[{i}].{field}"), m))?;
            }
        }
        if !self.shards.is_empty() && self.shards.iter().all(|s| s.weight == 0) {
            return Err(invalid(
                "shards".into(),
                "every shard has weight 0: at least one must take new users".into(),
            ));
        }
        if self.shards.len() > 65_535 {
            return Err(invalid("shards".into(), "at most 65535 shards".into()));
        }
        let known = |name: &str| self.shards.iter().any(|s| s.name == name);
        if let Some(g) = &self.sharding.global_shard {
            if !known(g) {
                return Err(invalid(
                    "sharding.global_shard".into(),
                    format!("no shard is named {g:?}"),
                ));
            }
        }
        if self.sharding.key_column.is_empty() {
            return Err(invalid(
                "sharding.key_column".into(),
                "must not be empty".into(),
            ));
        }
        for (i, t) in self.sharding.tables.iter().enumerate() {
            if t.name.is_empty() || t.key.as_deref() == Some("") {
                return Err(invalid(
                    format!("sharding.tables[{i}]"),
                    "name and key must not be empty".into(),
                ));
            }
            if self
                .sharding
                .global_tables
                .iter()
                .any(|g| g.eq_ignore_ascii_case(&t.name))
            {
                return Err(invalid(
                    format!("sharding.tables[{i}].name"),
                    format!("{:?} is also a global table", t.name),
                ));
            }
        }
        for (i, o) in self.overrides.iter().enumerate() {
            if !is_user_id(&o.user) {
                return Err(invalid(
                    format!("overrides[{i}].user"),
                    "must be a non-negative integer or a string".into(),
                ));
            }
            if !known(&o.shard) {
                return Err(invalid(
                    format!("overrides[{i}].shard"),
                    format!("no shard is named {:?}", o.shard),
                ));
            }
        }
        if self.pool.max_per_shard == 0 {
            return Err(invalid(
                "pool.max_per_shard".into(),
                "must be at least 1".into(),
            ));
        }
        if self.auth.refresh_ms < 100 {
            return Err(invalid(
                "auth.refresh_ms".into(),
                "must be at least 100".into(),
            ));
        }
        let service = (
            self.backend.user.clone(),
            self.backend.password().to_string(),
        );
        for (i, user) in self.users.iter_mut().enumerate() {
            let u = &*user;
            let given = u.backend_password.is_some()
                || u.backend_password_env.is_some()
                || u.backend_password_file.is_some();
            let resolved = match &u.backend_user {
                None if given => {
                    return Err(invalid(
                        format!("users[{i}].backend_user"),
                        "a backend password needs backend_user".into(),
                    ))
                }
                None => None,
                Some(name) if name.is_empty() => {
                    return Err(invalid(
                        format!("users[{i}].backend_user"),
                        "must not be empty".into(),
                    ))
                }
                // The service account's password is known already.
                Some(name) if *name == service.0 && !given => Some(service.1.clone()),
                Some(_) => Some(
                    secret(
                        &format!("users[{i}].backend_password"),
                        (
                            u.backend_password.as_deref(),
                            u.backend_password_env.as_deref(),
                            u.backend_password_file.as_deref(),
                        ),
                        &dir,
                    )
                    .map_err(|(field, m)| invalid(field, m))?,
                ),
            };
            user.backend_password = resolved;
        }
        let mut accounts = HashMap::new();
        for (i, user) in self.users.iter().enumerate() {
            let creds = match (&user.password, &user.mysql_native_password, &user.caching_sha2_password) {
                (Some(p), None, None) => Credentials::from_plaintext(p),
                (None, None, None) => {
                    return Err(invalid(
                        format!("users[{i}]"),
                        "give mysql_native_password and/or caching_sha2_password (see `dbrouter ctl hash-password`), or password".into(),
                    ))
                }
                (Some(_), _, _) => {
                    return Err(invalid(
                        format!("users[{i}].password"),
                        "give either a plaintext password or hashes, not both".into(),
                    ))
                }
                (None, native, sha2) => Credentials::from_hashes(native.as_deref(), sha2.as_deref())
                    .map_err(|e| invalid(format!("users[{i}]"), e.to_string()))?,
            };
            // Acting as the client's own account needs SHA1(password), which only a
            // mysql_native_password answer yields (a caching_sha2_password answer proves
            // SHA256(password), which MariaDB does not check).
            if self.auth.identity == Identity::Client
                && user.backend_user.is_none()
                && !creds.supports(AuthMethod::Native)
            {
                return Err(invalid(
                    format!("users[{i}]"),
                    format!(
                        "account {:?} has no mysql_native_password hash, which [auth] identity = \"client\" \
                         needs to log in to MariaDB as it; add one, map the account with backend_user, \
                         or set identity = \"service\"",
                        user.name
                    ),
                ));
            }
            if accounts.insert(user.name.clone(), creds).is_some() {
                return Err(invalid(
                    format!("users[{i}].name"),
                    format!("account {:?} is defined twice", user.name),
                ));
            }
        }
        self.accounts = accounts;
        Ok(())
    }
}

/// Whether an override's user id is one: a non-negative integer or a string (its
/// canonical key bytes are the topology's business, `topology::override_key`).
fn is_user_id(user: &toml::Value) -> bool {
    matches!(user, toml::Value::Integer(i) if *i >= 0) || matches!(user, toml::Value::String(_))
}

/// A secret given one way of three: inline (development), an environment variable, or a
/// file (a trailing newline is dropped; relative to the config file's directory).
/// Errors name the field; they never contain the secret.
fn secret(
    field: &str,
    (inline, env, file): (Option<&str>, Option<&str>, Option<&Path>),
    dir: &Path,
) -> Result<String, (String, String)> {
    match (inline, env, file) {
        (Some(p), None, None) => Ok(p.to_string()),
        (None, Some(var), None) => std::env::var(var).map_err(|_| {
            (
                format!("{field}_env"),
                format!("environment variable {var} is not set"),
            )
        }),
        (None, None, Some(file)) => {
            let path = dir.join(file);
            let text = std::fs::read_to_string(&path).map_err(|e| {
                (
                    format!("{field}_file"),
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            Ok(text
                .strip_suffix('\n')
                .unwrap_or(&text)
                .trim_end_matches('\r')
                .to_string())
        }
        _ => Err((
            field.to_string(),
            format!(
                "set exactly one of `{0}`, `{0}_env` and `{0}_file`",
                field.rsplit('.').next().unwrap_or(field)
            ),
        )),
    }
}

/// Checks an address is `host:port` and nothing else: a host name (letters, digits,
/// `-`, `_` and dots), an IPv4 literal or a bracketed IPv6 literal, and a port 1–65535.
/// Addresses from the config and from ZooKeeper pass here before anything connects to
/// them or writes them into SQL (`CHANGE MASTER TO MASTER_HOST = '…'`).
pub fn check_host_port(addr: &str) -> Result<(), String> {
    let bad = || {
        format!("{addr:?} is not host:port (a host name, an IPv4 address or [IPv6], and a port)")
    };
    let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
    if port.is_empty()
        || !port.bytes().all(|b| b.is_ascii_digit())
        || port.parse::<u16>().map_or(true, |p| p == 0)
    {
        return Err(bad());
    }
    let ok = if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        inner.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        host.parse::<std::net::Ipv4Addr>().is_ok()
            || (host.len() <= 253
                && host.split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && !label.starts_with('-')
                        && !label.ends_with('-')
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                }))
    };
    if ok {
        Ok(())
    } else {
        Err(bad())
    }
}

impl Config {
    /// `[clone]`: the command templates name only known placeholders, and a remote shell
    /// says which host it reaches.
    fn validate_clone(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |field: String, message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            field,
            message,
        };
        let c = &self.clone;
        let templates = [
            ("clone.shell", &c.shell, &["{host}"][..]),
            (
                "clone.stop_server",
                &c.stop_server,
                &["{host}", "{port}", "{datadir}"][..],
            ),
            (
                "clone.start_server",
                &c.start_server,
                &["{host}", "{port}", "{datadir}"][..],
            ),
        ];
        for (field, text, allowed) in templates {
            let mut rest = text.as_str();
            while let Some(open) = rest.find('{') {
                let tail = rest.get(open..).unwrap_or_default();
                let name = tail.find('}').and_then(|end| tail.get(..=end));
                match name {
                    Some(name) if allowed.contains(&name) => {
                        rest = tail.get(name.len()..).unwrap_or_default();
                    }
                    _ => {
                        return Err(invalid(
                            field.into(),
                            format!(
                                "unknown placeholder in {text:?}: the known ones are {}",
                                allowed.join(" ")
                            ),
                        ))
                    }
                }
            }
        }
        if !c.shell.trim().is_empty() && !c.shell.contains("{host}") {
            return Err(invalid(
                "clone.shell".into(),
                "a remote shell must name the host it reaches with {host} (e.g. \"ssh -o BatchMode=yes {host}\"); leave it empty to run on this machine".into(),
            ));
        }
        if c.method == CloneMethod::Physical
            && (c.stop_server.trim().is_empty() || c.start_server.trim().is_empty())
        {
            return Err(invalid(
                "clone.method".into(),
                "physical copies stop and start the target server: set clone.stop_server and clone.start_server".into(),
            ));
        }
        Ok(())
    }
}
