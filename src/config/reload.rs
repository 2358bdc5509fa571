//! Reloading the config file in a running router (SIGHUP, `dbrouter ctl reload`): which
//! fields take effect at runtime and which only at the next start, and the config a router
//! switches to. [`merge`] takes the freshly validated file and keeps every restart-only
//! field as the running router has it, so that nothing is half-applied; what differs there
//! is reported as "needs restart", never silently dropped. Each field is named in one of
//! the two lists below (the destructuring is exhaustive: a new field does not compile
//! until it is classified); docs/configuration.md marks each the same way.

use super::*;

/// What a reload changes, field by field (dotted names, never values: secrets stay out).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Reloadable fields whose value changed: in force for new connections and statements.
    pub applied: Vec<&'static str>,
    /// Restart-only fields whose value in the file differs from the one the router runs
    /// with: kept as they are until the router is restarted.
    pub needs_restart: Vec<&'static str>,
}

impl Changes {
    /// A reloadable field: noted when it changed; the fresh value stays.
    fn reload<T: PartialEq>(&mut self, name: &'static str, fresh: &T, running: &T) {
        if fresh != running {
            self.applied.push(name);
        }
    }

    /// A restart-only field: when it changed, noted and set back to the running value.
    fn keep<T: PartialEq + Clone>(&mut self, name: &'static str, fresh: &mut T, running: &T) {
        if fresh != running {
            self.needs_restart.push(name);
            *fresh = running.clone();
        }
    }
}

/// The config a running router switches to on reload: `fresh` (parsed and validated) with
/// every restart-only field set back to `running`'s value, and the per-field changes.
pub fn merge(running: &Config, mut fresh: Config) -> (Config, Changes) {
    let mut c = Changes::default();
    let r = running;
    let Config {
        server,
        timeouts,
        backend,
        shards,
        sharding,
        overrides,
        pool,
        topology,
        admin,
        failover,
        clone,
        health,
        users,
        limits,
        auth,
        log,
        accounts: _, // built from `users`
    } = &mut fresh;

    let ServerConfig {
        listen,
        max_connections,
        max_packet_size,
        default_auth_plugin,
        server_version,
        worker_threads,
        pin_threads,
        admin_listen,
        error_detail,
        tls,
        compression,
        require_secure_transport,
        admin_token,
        admin_token_env,
        admin_token_file,
    } = server;
    let rs = &r.server;
    c.keep("server.listen", listen, &rs.listen);
    c.reload(
        "server.max_connections",
        max_connections,
        &rs.max_connections,
    );
    c.reload(
        "server.max_packet_size",
        max_packet_size,
        &rs.max_packet_size,
    );
    c.reload(
        "server.default_auth_plugin",
        default_auth_plugin,
        &rs.default_auth_plugin,
    );
    c.keep("server.server_version", server_version, &rs.server_version);
    c.keep("server.worker_threads", worker_threads, &rs.worker_threads);
    c.keep("server.pin_threads", pin_threads, &rs.pin_threads);
    c.keep("server.admin_listen", admin_listen, &rs.admin_listen);
    c.reload("server.error_detail", error_detail, &rs.error_detail);
    // New files or version: reloaded. Turning TLS on or off changes what the greeting
    // offers and what every session was built with: at the next start.
    if tls.is_some() == rs.tls.is_some() {
        c.reload("server.tls", tls, &rs.tls);
    } else {
        c.keep("server.tls", tls, &rs.tls);
        if *require_secure_transport && tls.is_none() {
            // Only with the TLS the file also asks for (validated together).
            c.keep(
                "server.require_secure_transport",
                require_secure_transport,
                &rs.require_secure_transport,
            );
        }
    }
    c.reload("server.compression", compression, &rs.compression);
    c.reload(
        "server.require_secure_transport",
        require_secure_transport,
        &rs.require_secure_transport,
    );
    // The token is resolved into `admin_token` when the file is loaded.
    c.reload("server.admin_token", admin_token, &rs.admin_token);
    c.reload(
        "server.admin_token_env",
        admin_token_env,
        &rs.admin_token_env,
    );
    c.reload(
        "server.admin_token_file",
        admin_token_file,
        &rs.admin_token_file,
    );

    let Timeouts {
        connect_ms,
        handshake_ms,
        idle_ms,
        backend_read_ms,
        client_write_ms,
        net_read_ms,
        drain_ms,
        startup_ms,
    } = timeouts;
    let rt = &r.timeouts;
    c.reload("timeouts.connect_ms", connect_ms, &rt.connect_ms);
    c.reload("timeouts.handshake_ms", handshake_ms, &rt.handshake_ms);
    c.reload("timeouts.idle_ms", idle_ms, &rt.idle_ms);
    c.reload(
        "timeouts.backend_read_ms",
        backend_read_ms,
        &rt.backend_read_ms,
    );
    c.reload(
        "timeouts.client_write_ms",
        client_write_ms,
        &rt.client_write_ms,
    );
    c.reload("timeouts.net_read_ms", net_read_ms, &rt.net_read_ms);
    c.reload("timeouts.drain_ms", drain_ms, &rt.drain_ms);
    c.keep("timeouts.startup_ms", startup_ms, &rt.startup_ms);

    // The service account and its TLS: the pools, health checker, coordinator and
    // topology follower were built with them.
    let BackendConfig {
        user,
        password,
        password_env,
        password_file,
        tls: backend_tls,
        resolved_password,
    } = backend;
    let rb = &r.backend;
    c.keep("backend.user", user, &rb.user);
    c.keep("backend.password", password, &rb.password);
    c.keep("backend.password_env", password_env, &rb.password_env);
    c.keep("backend.password_file", password_file, &rb.password_file);
    // The secret itself (an environment variable's or a file's new contents).
    if resolved_password != &rb.resolved_password {
        if !c
            .needs_restart
            .iter()
            .any(|f| f.starts_with("backend.password"))
        {
            c.needs_restart.push("backend.password (its value)");
        }
        *resolved_password = rb.resolved_password.clone();
    }
    c.keep("backend.tls", backend_tls, &rb.tls);

    // The topology source and everything a file topology is built from.
    c.keep("shards", shards, &r.shards);
    c.keep("sharding", sharding, &r.sharding);
    c.keep("overrides", overrides, &r.overrides);

    let PoolConfig {
        mode,
        max_per_shard,
        max_idle_per_shard,
        wait_ms,
        max_waiting_per_shard,
    } = pool;
    let rp = &r.pool;
    c.reload("pool.mode", mode, &rp.mode);
    c.reload(
        "pool.max_waiting_per_shard",
        max_waiting_per_shard,
        &rp.max_waiting_per_shard,
    );
    c.reload("pool.max_per_shard", max_per_shard, &rp.max_per_shard);
    c.reload(
        "pool.max_idle_per_shard",
        max_idle_per_shard,
        &rp.max_idle_per_shard,
    );
    c.reload("pool.wait_ms", wait_ms, &rp.wait_ms);

    c.keep("topology", topology, &r.topology);
    c.keep("admin", admin, &r.admin);

    let FailoverConfig {
        repl_user,
        repl_password,
        repl_password_env,
        repl_password_file,
        buffer_max_ms,
        buffer_max_statements,
        drain_ms: failover_drain_ms,
        catchup_timeout_ms,
        auto,
        auto_after_ms,
        auto_min_interval_ms,
        auto_rebuild,
    } = failover;
    let rf = &r.failover;
    c.keep("failover.repl_user", repl_user, &rf.repl_user);
    c.keep("failover.repl_password", repl_password, &rf.repl_password);
    c.keep(
        "failover.repl_password_env",
        repl_password_env,
        &rf.repl_password_env,
    );
    c.keep(
        "failover.repl_password_file",
        repl_password_file,
        &rf.repl_password_file,
    );
    c.reload("failover.buffer_max_ms", buffer_max_ms, &rf.buffer_max_ms);
    c.reload(
        "failover.buffer_max_statements",
        buffer_max_statements,
        &rf.buffer_max_statements,
    );
    c.keep("failover.drain_ms", failover_drain_ms, &rf.drain_ms);
    c.keep(
        "failover.catchup_timeout_ms",
        catchup_timeout_ms,
        &rf.catchup_timeout_ms,
    );
    // Sessions and the coordinator must agree on whether a lost master is failed over.
    c.keep("failover.auto", auto, &rf.auto);
    c.keep("failover.auto_after_ms", auto_after_ms, &rf.auto_after_ms);
    c.keep(
        "failover.auto_min_interval_ms",
        auto_min_interval_ms,
        &rf.auto_min_interval_ms,
    );
    c.keep("failover.auto_rebuild", auto_rebuild, &rf.auto_rebuild);

    // `[clone]`: the CLI reads the file afresh each time; a router's coordinator uses it
    // for `auto_rebuild` with the settings it started with.
    let CloneConfig {
        method,
        shell,
        stop_server,
        start_server,
        start_timeout_ms,
    } = clone;
    let rc = &r.clone;
    c.keep("clone.method", method, &rc.method);
    c.keep("clone.shell", shell, &rc.shell);
    c.keep("clone.stop_server", stop_server, &rc.stop_server);
    c.keep("clone.start_server", start_server, &rc.start_server);
    c.keep(
        "clone.start_timeout_ms",
        start_timeout_ms,
        &rc.start_timeout_ms,
    );

    c.keep(
        "health.interval_ms",
        &mut health.interval_ms,
        &r.health.interval_ms,
    );

    c.reload("users", users, &r.users);

    let LimitsConfig {
        max_logins_per_address,
        failures_per_address,
        failures_per_account,
        delay_step_ms,
        delay_max_ms,
        forget_after_ms,
        max_prepared_per_session,
        max_session_bytes,
    } = limits;
    let rl = &r.limits;
    c.reload(
        "limits.max_logins_per_address",
        max_logins_per_address,
        &rl.max_logins_per_address,
    );
    c.reload(
        "limits.failures_per_address",
        failures_per_address,
        &rl.failures_per_address,
    );
    c.reload(
        "limits.failures_per_account",
        failures_per_account,
        &rl.failures_per_account,
    );
    c.reload("limits.delay_step_ms", delay_step_ms, &rl.delay_step_ms);
    c.reload("limits.delay_max_ms", delay_max_ms, &rl.delay_max_ms);
    c.reload(
        "limits.forget_after_ms",
        forget_after_ms,
        &rl.forget_after_ms,
    );
    c.reload(
        "limits.max_prepared_per_session",
        max_prepared_per_session,
        &rl.max_prepared_per_session,
    );
    c.reload(
        "limits.max_session_bytes",
        max_session_bytes,
        &rl.max_session_bytes,
    );

    let AuthConfig {
        identity,
        source,
        refresh_ms,
    } = auth;
    c.reload("auth.identity", identity, &r.auth.identity);
    // The `mysql.user` reader runs (or not) from the start.
    c.keep("auth.source", source, &r.auth.source);
    c.reload("auth.refresh_ms", refresh_ms, &r.auth.refresh_ms);

    c.reload("log.filter", &log.filter, &r.log.filter);

    (fresh, c)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
[server]
listen = "127.0.0.1:6033"
admin_listen = "127.0.0.1:6034"
[backend]
user = "dbrouter"
password = "secret"
[[shards]]
name = "s1"
master = "127.0.0.1:3311"
[[users]]
name = "app"
password = "app-secret"
"#;

    fn parse(text: &str) -> Config {
        Config::parse(text, Path::new("test.toml")).unwrap()
    }

    #[test]
    fn an_unchanged_file_changes_nothing() {
        let (merged, changes) = merge(&parse(BASE), parse(BASE));
        assert_eq!(changes, Changes::default());
        assert!(merged.account("app").is_some());
    }

    #[test]
    fn reloadable_fields_are_applied_and_named() {
        let text = BASE.replace(
            "[backend]",
            "max_connections = 7\n[limits]\nmax_logins_per_address = 3\n[timeouts]\nidle_ms = 5000\n[pool]\nmax_per_shard = 4\n[log]\nfilter = \"debug\"\n[backend]",
        ) + "[[users]]\nname = \"new\"\npassword = \"x\"\n";
        let (merged, changes) = merge(&parse(BASE), parse(&text));
        assert_eq!(
            changes.applied,
            [
                "server.max_connections",
                "timeouts.idle_ms",
                "pool.max_per_shard",
                "users",
                "limits.max_logins_per_address",
                "log.filter",
            ]
        );
        assert!(changes.needs_restart.is_empty());
        assert_eq!(merged.server.max_connections, 7);
        assert_eq!(merged.limits.max_logins_per_address, 3);
        assert_eq!(merged.pool.max_per_shard, 4);
        assert_eq!(merged.log.directives(), "debug");
        assert!(
            merged.account("new").is_some(),
            "accounts rebuilt from users"
        );
    }

    #[test]
    fn restart_only_fields_keep_the_running_value_and_are_reported() {
        let text = BASE
            .replace("127.0.0.1:6033", "127.0.0.1:7033")
            .replace("127.0.0.1:3311", "127.0.0.1:4411")
            .replace("password = \"secret\"", "password = \"other\"")
            .replace(
                "[backend]",
                "worker_threads = 3\n[failover]\nauto_after_ms = 2000\nbuffer_max_ms = 99\n[backend]",
            );
        let running = parse(BASE);
        let (merged, changes) = merge(&running, parse(&text));
        assert_eq!(
            changes.needs_restart,
            [
                "server.listen",
                "server.worker_threads",
                "backend.password",
                "shards",
                "failover.auto_after_ms",
            ]
        );
        assert_eq!(changes.applied, ["failover.buffer_max_ms"]);
        assert_eq!(merged.server.listen, "127.0.0.1:6033");
        assert_eq!(merged.server.worker_threads, None);
        assert_eq!(merged.backend.password(), "secret");
        assert_eq!(merged.shards, running.shards);
        assert_eq!(merged.failover.auto_after_ms, 1_500);
        assert_eq!(merged.failover.buffer_max_ms, 99);
    }

    #[test]
    fn turning_tls_on_needs_a_restart_and_so_does_requiring_it() {
        let dir = std::env::temp_dir();
        let text = BASE.replace(
            "[backend]",
            "require_secure_transport = true\n[server.tls]\ncert_file = \"c.pem\"\nkey_file = \"k.pem\"\n[backend]",
        );
        let (merged, changes) = merge(
            &parse(BASE),
            Config::parse(&text, &dir.join("t.toml")).unwrap(),
        );
        assert_eq!(
            changes.needs_restart,
            ["server.tls", "server.require_secure_transport"]
        );
        assert!(changes.applied.is_empty());
        assert!(merged.server.tls.is_none());
        assert!(!merged.server.require_secure_transport);
    }

    #[test]
    fn new_tls_files_are_applied() {
        let with = |cert: &str| {
            BASE.replace(
                "[backend]",
                &format!("[server.tls]\ncert_file = \"{cert}\"\nkey_file = \"k.pem\"\n[backend]"),
            )
        };
        let (merged, changes) = merge(&parse(&with("a.pem")), parse(&with("b.pem")));
        assert_eq!(changes.applied, ["server.tls"]);
        assert!(merged.server.tls.unwrap().cert_file.ends_with("b.pem"));
    }

    #[test]
    fn a_bad_log_filter_is_a_field_error() {
        let text = BASE.replace("[backend]", "[log]\nfilter = \"dbrouter=loud\"\n[backend]");
        let e = Config::parse(&text, Path::new("t.toml")).unwrap_err();
        assert!(e.to_string().contains("field `log.filter`"), "{e}");
    }

    /// Every field row of docs/configuration.md says whether a reload applies it.
    #[test]
    fn every_documented_field_is_marked_reloadable_or_restart_only() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let docs = std::fs::read_to_string(root.join("docs/configuration.md")).unwrap();
        let mut unmarked = Vec::new();
        let mut rows = 0;
        for line in docs.lines() {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            // | `field` | default | reload | meaning |
            if cells.len() < 4 || !cells[1].starts_with('`') {
                continue;
            }
            rows += 1;
            if !cells.iter().any(|c| *c == "yes" || *c == "restart") {
                unmarked.push(cells[1].to_string());
            }
        }
        assert!(rows > 60, "only {rows} field rows found");
        assert!(
            unmarked.is_empty(),
            "fields without a reload mark: {unmarked:?}"
        );
    }
}
