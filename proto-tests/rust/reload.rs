//! Reloading the config of a real router (#21): SIGHUP and `dbrouter ctl reload` with
//! clients connected (they stay connected and keep working, an open transaction too), a
//! new account that logs in only after the reload, a lower `server.max_connections` for
//! new connections, pool sizes, a broken file refused whole (old config in force, failure
//! counted and shown), a restart-only change (the listen address) reported as needing a
//! restart, the log filter changed, and `ctl reload`'s exit codes.

use std::process::Command;
use std::time::{Duration, Instant};

use mysql_async::prelude::*;
use mysql_async::{Conn, Opts, OptsBuilder};

use crate::admin::{get, sample};
use crate::harness::*;

/// A router with an admin listener (and optionally an admin token); its admin address.
fn start(server_extra: &str, log: Option<&str>) -> (TestRouter, String) {
    let admin = format!("127.0.0.1:{}", free_port());
    let settings = RouterSettings {
        server_extra: format!("admin_listen = \"{admin}\"\n{server_extra}"),
        ..Default::default()
    };
    let router = TestRouter::spawn_with_log(settings, log);
    router.wait_listening(Duration::from_secs(30));
    (router, admin)
}

/// The router's config file with `edit` applied.
fn rewrite(router: &TestRouter, edit: impl FnOnce(String) -> String) {
    let text = std::fs::read_to_string(&router.config_path).unwrap();
    std::fs::write(&router.config_path, edit(text)).unwrap();
}

/// `text` with `keys` in its `[pool]` table (added when it has none: the harness may
/// have written one with the pool mode).
fn with_pool(text: String, keys: &str) -> String {
    match text.find("\n[pool]\n") {
        Some(at) => {
            let end = at + "\n[pool]\n".len();
            format!("{}{keys}\n{}", &text[..end], &text[end..])
        }
        None => format!("{text}\n[pool]\n{keys}\n"),
    }
}

fn hup(router: &TestRouter) {
    let st = Command::new("kill")
        .args(["-HUP", &router.pid().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
}

/// `dbrouter ctl reload --router admin`: (exit code, stdout, stderr).
fn ctl_reload(admin: &str, token: Option<&str>) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dbrouter"));
    cmd.args(["ctl", "reload", "--router", admin]);
    match token {
        Some(t) => cmd.env("DBROUTER_ADMIN_TOKEN", t),
        None => cmd.env_remove("DBROUTER_ADMIN_TOKEN"),
    };
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn status_json(admin: &str) -> serde_json::Value {
    let (code, _, body) = get(admin, "/status.json").await;
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// Waits until the status page reports `n` reloads (applied + refused) in all.
async fn wait_reloads(admin: &str, n: u64) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = status_json(admin).await;
        let done = s["config"]["reloads"].as_u64().unwrap_or(0)
            + s["config"]["failures"].as_u64().unwrap_or(0);
        if done >= n {
            return s;
        }
        assert!(Instant::now() < deadline, "no reload seen: {s}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn opts(router: &TestRouter, user: &str, password: &str) -> Opts {
    Opts::from(
        OptsBuilder::from_opts(router.app_opts(None))
            .user(Some(user))
            .pass(Some(password)),
    )
}

const NEWBIE: &str = "\n[[users]]\nname = \"newbie\"\npassword = \"newbie-secret\"\nbackend_user = \"app\"\nbackend_password = \"app-secret\"\n";

#[tokio::test]
async fn sighup_applies_accounts_limits_and_pools_while_clients_stay_connected() {
    let (router, admin) = start("max_connections = 100\n", Some("debug"));
    // Clients connected across the reload: one idle, one inside a transaction.
    let mut idle = router.app_conn(None).await;
    let mut in_tx = router.app_conn(None).await;
    in_tx.query_drop("BEGIN").await.unwrap();
    let n: i64 = in_tx.query_first("SELECT 41 + 1").await.unwrap().unwrap();
    assert_eq!(n, 42);
    // No such account yet.
    let e = Conn::new(opts(&router, "newbie", "newbie-secret"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("1045"), "{e}");

    rewrite(&router, |t| {
        with_pool(
            t.replace("max_connections = 100", "max_connections = 3") + NEWBIE,
            "max_per_shard = 7\nmax_idle_per_shard = 1",
        )
    });
    hup(&router);
    let s = wait_reloads(&admin, 1).await;
    let last = &s["config"]["last"];
    assert_eq!(last["ok"], true, "{s}");
    assert_eq!(last["trigger"], "SIGHUP");
    let applied = last["applied"].to_string();
    for field in ["server.max_connections", "users", "pool.max_per_shard"] {
        assert!(applied.contains(field), "{applied}");
    }
    assert_eq!(s["config"]["needs_restart"], serde_json::json!([]));
    assert_eq!(s["shards"][0]["pool"]["max"], 7, "{s}");

    // The new account logs in now.
    let mut newbie = Conn::new(opts(&router, "newbie", "newbie-secret"))
        .await
        .expect("the account added by the reload logs in");
    let who: String = newbie.query_first("SELECT 'hello'").await.unwrap().unwrap();
    assert_eq!(who, "hello");
    // The sessions opened before go on; the transaction too.
    let n: i64 = in_tx.query_first("SELECT 2 * 21").await.unwrap().unwrap();
    assert_eq!(n, 42);
    in_tx.query_drop("COMMIT").await.unwrap();
    let one: i64 = idle.query_first("SELECT 1").await.unwrap().unwrap();
    assert_eq!(one, 1);
    // max_connections = 3 for new connections: three are open, the next is refused.
    let e = Conn::new(Opts::from(router.app_opts(None)))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("1040"), "{e}");
    drop(newbie);
    // One came free: a new connection is accepted again.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut again = loop {
        match Conn::new(Opts::from(router.app_opts(None))).await {
            Ok(c) => break c,
            Err(e) => {
                assert!(Instant::now() < deadline, "{e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let one: i64 = again.query_first("SELECT 1").await.unwrap().unwrap();
    assert_eq!(one, 1);

    let (_, _, metrics) = get(&admin, "/metrics").await;
    assert_eq!(
        sample(&metrics, "dbrouter_config_reloads_total", &[]),
        Some(1.0)
    );
    assert_eq!(
        sample(&metrics, "dbrouter_config_reload_failures_total", &[]),
        Some(0.0)
    );
    assert_eq!(
        sample(&metrics, "dbrouter_pool_connections_max", &[]),
        Some(7.0)
    );
    assert!(router.log_text().contains("config reloaded"));
    for c in [idle, in_tx, again] {
        c.disconnect().await.unwrap();
    }
}

#[tokio::test]
async fn a_broken_config_is_refused_whole_and_the_previous_one_stays() {
    let (router, admin) = start("", Some("debug"));
    let mut open = router.app_conn(None).await;
    // A new account and a field error in one file: nothing of it applies.
    rewrite(&router, |t| with_pool(t + NEWBIE, "max_per_shard = 0"));
    hup(&router);
    let s = wait_reloads(&admin, 1).await;
    let last = &s["config"]["last"];
    assert_eq!(last["ok"], false, "{s}");
    let error = last["error"].as_str().unwrap();
    assert!(error.contains("pool.max_per_shard"), "{error}");
    let e = Conn::new(opts(&router, "newbie", "newbie-secret"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("1045"), "{e}");
    let one: i64 = open.query_first("SELECT 1").await.unwrap().unwrap();
    assert_eq!(one, 1);
    let (_, _, metrics) = get(&admin, "/metrics").await;
    assert_eq!(
        sample(&metrics, "dbrouter_config_reload_failures_total", &[]),
        Some(1.0)
    );
    assert_eq!(
        sample(&metrics, "dbrouter_config_last_reload_ok", &[]),
        Some(0.0)
    );
    let (_, _, page) = get(&admin, "/").await;
    assert!(page.contains("REFUSED") && page.contains("pool.max_per_shard"));
    assert!(router.log_text().contains("config not reloaded"));

    // Not TOML at all, through ctl: exit 1 with the parser's message.
    rewrite(&router, |t| t + "\n[pool\n");
    let (code, _, err) = ctl_reload(&admin, None);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("refused") && err.contains("invalid config file"),
        "{err}"
    );
    // Fixed: applied, and the account exists now.
    rewrite(&router, |t| {
        t.replace("\n[pool\n", "")
            .replace("max_per_shard = 0", "max_per_shard = 50")
    });
    let (code, out, err) = ctl_reload(&admin, None);
    assert_eq!(code, 0, "{out} {err}");
    assert!(out.contains("applied") && out.contains("users"), "{out}");
    Conn::new(opts(&router, "newbie", "newbie-secret"))
        .await
        .expect("applied once the file is valid")
        .disconnect()
        .await
        .unwrap();
    let (_, _, metrics) = get(&admin, "/metrics").await;
    assert_eq!(
        sample(&metrics, "dbrouter_config_reload_failures_total", &[]),
        Some(2.0)
    );
    assert_eq!(
        sample(&metrics, "dbrouter_config_reloads_total", &[]),
        Some(1.0)
    );
    open.disconnect().await.unwrap();
}

#[tokio::test]
async fn a_restart_only_change_is_reported_and_not_applied() {
    const TOKEN: &str = "reload-test-token-0123456789";
    let (router, admin) = start(&format!("admin_token = \"{TOKEN}\"\n"), Some("debug"));
    let mut open = router.app_conn(None).await;
    let new_listen = format!("127.0.0.1:{}", free_port());
    rewrite(&router, |t| {
        t.replace(
            &format!("listen = \"{}\"", router.addr),
            &format!("listen = \"{new_listen}\""),
        )
        .replace("[timeouts]\n", "[timeouts]\nidle_ms = 600000\n")
    });
    // Without the token: refused by the admin listener, exit 3 (nothing reloaded).
    let (code, _, err) = ctl_reload(&admin, None);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("unauthorized"), "{err}");
    let (code, out, err) = ctl_reload(&admin, Some(TOKEN));
    assert_eq!(code, 0, "{out} {err}");
    assert!(out.contains("timeouts.idle_ms"), "{out}");
    assert!(
        out.contains("needs restart") && out.contains("server.listen"),
        "{out}"
    );
    // Still on the old address, not on the new one.
    let one: i64 = open.query_first("SELECT 1").await.unwrap().unwrap();
    assert_eq!(one, 1);
    router.app_conn(None).await.disconnect().await.unwrap();
    assert!(std::net::TcpStream::connect(&new_listen).is_err());
    let request = format!(
        "GET /status.json HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"
    );
    let mut s = tokio::net::TcpStream::connect(&admin).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    s.write_all(request.as_bytes()).await.unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).await.unwrap();
    let body = raw.split_once("\r\n\r\n").unwrap().1;
    let status: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(
        status["config"]["needs_restart"],
        serde_json::json!(["server.listen"])
    );
    assert_eq!(status["router"]["listen"], router.addr.as_str());
    assert!(router
        .log_text()
        .contains("take effect only after a restart"));
    // A router that does not answer: exit 3; no --router: usage, exit 2.
    let (code, _, _) = ctl_reload(&format!("127.0.0.1:{}", free_port()), None);
    assert_eq!(code, 3);
    let out = Command::new(env!("CARGO_BIN_EXE_dbrouter"))
        .args(["ctl", "reload"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    open.disconnect().await.unwrap();
}

#[tokio::test]
async fn the_log_filter_changes_on_reload() {
    // No DBROUTER_LOG: the config's [log] filter decides.
    let (router, admin) = start("", None);
    rewrite(&router, |t| t + "\n[log]\nfilter = \"info\"\n");
    let (code, out, err) = ctl_reload(&admin, None);
    assert_eq!(code, 0, "{out} {err}");
    // A session's end ("client quit") is logged at debug only.
    router.app_conn(None).await.disconnect().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!router.log_text().contains("client quit"));
    rewrite(&router, |t| {
        t.replace("filter = \"info\"", "filter = \"debug\"")
    });
    let (code, out, err) = ctl_reload(&admin, None);
    assert_eq!(code, 0, "{out} {err}");
    assert!(out.contains("log.filter"), "{out}");
    router.app_conn(None).await.disconnect().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !router.log_text().contains("client quit") {
        assert!(Instant::now() < deadline, "{}", router.log_text());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A filter that does not parse is refused, naming the field.
    rewrite(&router, |t| {
        t.replace("filter = \"debug\"", "filter = \"dbrouter=loud\"")
    });
    let (code, _, err) = ctl_reload(&admin, None);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("log.filter"), "{err}");
}
