//! The shared topology in ZooKeeper, with real ZooKeeper servers: two routers following
//! the same topology (pins and master changes reach both), compare-and-set writes,
//! malformed documents refused, routers serving through a ZooKeeper outage, and
//! registrations and watches coming back after a session expiry.

use std::time::{Duration, Instant};

use mysql_async::prelude::*;
use mysql_async::Conn;

use crate::harness::*;
use dbrouter::topology::zk::{ZkStore, ZkTarget};
use dbrouter::topology::TopologyError;

const SHARDING: &str = "[sharding]\nunlisted_tables = \"global\"\n";

/// A root znode private to one test on the cluster's ZooKeeper.
pub(crate) fn unique_root(tag: &str) -> String {
    format!("/dbrouter/test-{tag}-{}", std::process::id())
}

/// Router settings following the topology at `hosts` + `root`.
fn zk_settings(hosts: &str, root: &str) -> RouterSettings {
    zk_settings_sharding(hosts, root, &[])
}

/// [`zk_settings`] with these tables sharded by `userid` (all others global).
pub(crate) fn zk_settings_sharding(hosts: &str, root: &str, tables: &[&str]) -> RouterSettings {
    let listed: String = tables
        .iter()
        .map(|t| format!("\n[[sharding.tables]]\nname = \"{t}\"\n"))
        .collect();
    let sharding = if tables.is_empty() {
        SHARDING.to_string()
    } else {
        format!("[sharding]\nkey_column = \"userid\"\nunlisted_tables = \"global\"\n{listed}")
    };
    let mut s = two_shards(&sharding);
    s.sharding = format!(
        "{sharding}\n[topology]\nsource = \"zk://{hosts}{root}\"\nsession_timeout_ms = 2000\n"
    );
    s.timeouts = "startup_ms = 30000".into();
    s
}

/// Initialises the topology from a (not yet started) router's config, then starts it.
pub(crate) fn init_and_start(settings: RouterSettings, url: &str) -> TestRouter {
    let router = TestRouter::spawn(settings);
    let config = router.config_path.to_str().unwrap().to_string();
    let (ok, out) = ctl(&["topology", "init", "--from", &config, "--zk", url]);
    assert!(ok, "{out}");
    router.wait_listening(Duration::from_secs(30));
    router
}

pub(crate) fn start_follower(settings: RouterSettings) -> TestRouter {
    TestRouter::start(settings)
}

/// `SHOW DBROUTER STATUS` as (name, value) pairs.
pub(crate) async fn status(conn: &mut Conn) -> Vec<(String, Option<String>)> {
    conn.query("SHOW DBROUTER STATUS").await.unwrap()
}

pub(crate) fn value(rows: &[(String, Option<String>)], name: &str) -> Option<String> {
    rows.iter()
        .find(|(n, _)| n == name)
        .and_then(|(_, v)| v.clone())
}

/// A row of `SHOW DBROUTER ROUTE FOR`.
pub(crate) type RouteRow = (
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
);

/// Waits until the router routes `user` to `shard`.
pub(crate) async fn wait_route(conn: &mut Conn, user: &str, shard: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got: Option<RouteRow> = conn
            .query_first(format!("SHOW DBROUTER ROUTE FOR {user}"))
            .await
            .unwrap();
        if got.as_ref().map(|g| g.1.as_str()) == Some(shard) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "user {user} never reached {shard}: {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub(crate) async fn store(url: &str) -> ZkStore {
    ZkStore::connect(
        &ZkTarget::parse(url).unwrap(),
        Duration::from_secs(10),
        Duration::from_secs(5),
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_routers_follow_pins_and_master_changes() {
    let hosts = env("DBR_ZK");
    let root = unique_root("follow");
    let url = format!("zk://{hosts}{root}");
    let a = init_and_start(zk_settings(&hosts, &root), &url);
    let b = start_follower(zk_settings(&hosts, &root));
    let mut ca = a.app_conn(Some("app")).await;
    let mut cb = b.app_conn(Some("app")).await;

    // init is idempotent.
    let (ok, out) = ctl(&[
        "topology",
        "init",
        "--from",
        a.config_path.to_str().unwrap(),
        "--zk",
        &url,
    ]);
    assert!(ok && out.contains("already initialised"), "{out}");

    // A pin reaches both routers.
    let table = a.routing();
    let user = (1..)
        .find(|u: &u64| table.shard_for_key(u.to_string().as_bytes()).0 == 0)
        .unwrap()
        .to_string();
    let config = a.config_path.to_str().unwrap();
    let (ok, out) = ctl(&[
        "user",
        "pin",
        &user,
        "shard2",
        "--no-data-check",
        "--zk",
        &url,
        "-c",
        config,
    ]);
    assert!(
        ok && out.contains("pinned to shard2") && out.contains("topology version 2"),
        "{out}"
    );
    wait_route(&mut ca, &user, "shard2").await;
    wait_route(&mut cb, &user, "shard2").await;
    let (ok, out) = ctl(&[
        "user",
        "show",
        &user,
        "--zk",
        &url,
        "--config",
        a.config_path.to_str().unwrap(),
    ]);
    assert!(
        ok && out.contains("shard2") && out.contains("override"),
        "{out}"
    );

    // A master change written by the CLI reaches both: shard1's "master" becomes its
    // standby's address here (read-only is fine for this check).
    let standby = env("DBR_S1_STANDBY");
    let (ok, out) = ctl(&["shard", "set-master", "shard1", &standby, "--zk", &url]);
    assert!(ok && out.contains("epoch 2"), "{out}");
    for conn in [&mut ca, &mut cb] {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let rows = status(conn).await;
            if value(&rows, "shard.shard1")
                .is_some_and(|v| v.contains(&standby) && v.contains("epoch=2"))
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "master change not applied: {rows:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // Statements for shard1 now reach the new master (the standby's port).
    let port: Option<i64> = ca.query_first("SELECT @@port").await.unwrap();
    let standby_port: i64 = standby.rsplit_once(':').unwrap().1.parse().unwrap();
    assert_eq!(
        port,
        Some(standby_port),
        "keyless statement must follow the new global master"
    );

    // Both routers are registered with the current version.
    let (ok, out) = ctl(&["routers", "--zk", &url]);
    assert!(ok, "{out}");
    assert!(
        out.contains("2 router(s)") && out.matches("(current)").count() == 2,
        "{out}"
    );
    let (ok, out) = ctl(&["topology", "show", "--zk", &url, "--json"]);
    assert!(ok && out.contains("\"version\": 3"), "{out}");
}

#[tokio::test]
async fn concurrent_writes_exactly_one_wins() {
    let hosts = env("DBR_ZK");
    let root = unique_root("cas");
    let url = format!("zk://{hosts}{root}");
    let router = TestRouter::spawn(zk_settings(&hosts, &root));
    let (ok, out) = ctl(&[
        "topology",
        "init",
        "--from",
        router.config_path.to_str().unwrap(),
        "--zk",
        &url,
    ]);
    assert!(ok, "{out}");
    let s1 = store(&url).await;
    let s2 = store(&url).await;
    // Both operators read the same version, then both write.
    let (mut doc1, v1) = s1.read_topology().await.unwrap();
    let (mut doc2, v2) = s2.read_topology().await.unwrap();
    assert_eq!(v1, v2);
    doc1.shards[0].weight = 11;
    doc2.shards[0].weight = 22;
    let (r1, r2) = tokio::join!(s1.write_topology(&doc1, v1), s2.write_topology(&doc2, v2));
    let wins = [r1.is_ok(), r2.is_ok()].iter().filter(|w| **w).count();
    assert_eq!(wins, 1, "exactly one writer must win: {r1:?} {r2:?}");
    let loser = if r1.is_err() { r1 } else { r2 };
    assert!(matches!(loser, Err(TopologyError::Conflict)));
    assert!(loser.unwrap_err().to_string().contains("changed under you"));
    let (now, _) = s1.read_topology().await.unwrap();
    assert!([11, 22].contains(&now.shards[0].weight));
    // The same through the CLI: a concurrent pin and weight change both land, in some order.
    let url2 = url.clone();
    let config = router.config_path.to_str().unwrap().to_string();
    let config2 = config.clone();
    let t = std::thread::spawn(move || {
        ctl(&[
            "shard",
            "set-weight",
            "shard2",
            "7",
            "--zk",
            &url2,
            "-c",
            &config2,
        ])
    });
    let (ok1, out1) = ctl(&[
        "user",
        "pin",
        "99",
        "shard1",
        "--no-data-check",
        "--zk",
        &url,
        "-c",
        &config,
    ]);
    let (ok2, out2) = t.join().unwrap();
    for (ok, out) in [(ok1, &out1), (ok2, &out2)] {
        assert!(ok || out.contains("changed under you"), "{out}");
    }
    drop(router);
}

#[tokio::test]
async fn with_a_digest_identity_only_dbrouter_can_change_what_it_created() {
    let hosts = env("DBR_ZK");
    let root = unique_root("acl");
    let url = format!("zk://{hosts}{root}");
    let mut settings = zk_settings(&hosts, &root);
    settings
        .sharding
        .push_str("zk_user = \"dbrouter\"\nzk_password = \"zk-secret\"\n");
    let router = TestRouter::spawn(settings);
    let config = router.config_path.to_str().unwrap().to_string();
    let (ok, out) = ctl(&[
        "topology", "init", "--from", &config, "--zk", &url, "-c", &config,
    ]);
    assert!(ok, "{out}");
    router.wait_listening(Duration::from_secs(30));
    let mut c = router.app_conn(Some("app")).await;
    let v: Option<i64> = c.query_first("SELECT 7").await.unwrap();
    assert_eq!(v, Some(7));
    // Anyone may read; nobody else may write the topology, the version counter or the
    // router's registration, nor add nodes under the root.
    let anon = store(&url).await;
    let (doc, _) = anon.read_topology().await.unwrap();
    assert!(!doc.shards.is_empty());
    for node in ["topology", "version"] {
        let err = anon.write_raw(node, b"{}").await.unwrap_err().to_string();
        assert!(err.to_lowercase().contains("auth"), "{node}: {err}");
    }
    let routers = anon.routers().await.unwrap();
    assert_eq!(routers.len(), 1);
    let reg = anon.path(&format!("routers/{}", routers[0].id));
    assert!(anon.client().delete(&reg, None).await.is_err());
    let intruder =
        zookeeper_client::CreateMode::Persistent.with_acls(zookeeper_client::Acls::anyone_all());
    assert!(anon
        .client()
        .create(&anon.path("intruder"), b"", &intruder)
        .await
        .is_err());
    // dbrouter's own commands, with the config's identity, still change it.
    let (ok, out) = ctl(&[
        "shard",
        "set-weight",
        "shard2",
        "128",
        "--zk",
        &url,
        "-c",
        &config,
    ]);
    assert!(ok, "{out}");
    let (doc, _) = anon.read_topology().await.unwrap();
    assert_eq!(
        doc.shards
            .iter()
            .find(|s| s.name == "shard2")
            .map(|s| s.weight),
        Some(128)
    );
    // The password is nowhere in what the router shows.
    let log = std::fs::read_to_string(&router.log).unwrap();
    assert!(!log.contains("zk-secret"));
    c.disconnect().await.unwrap();
}

#[tokio::test]
async fn ctl_topology_secure_puts_the_identity_on_an_open_tree() {
    let hosts = env("DBR_ZK");
    let root = unique_root("secure");
    let url = format!("zk://{hosts}{root}");
    // A tree made before an identity was configured: anyone may write it.
    let router = init_and_start(zk_settings(&hosts, &root), &url);
    let open = router.config_path.to_str().unwrap().to_string();
    let anon = store(&url).await;
    let open_acl =
        zookeeper_client::CreateMode::Persistent.with_acls(zookeeper_client::Acls::anyone_all());
    anon.client()
        .create(&anon.path("intruder-was-here"), b"", &open_acl)
        .await
        .unwrap();
    // Without an identity the command refuses (it would lock everybody out).
    let (ok, out) = ctl(&["topology", "secure", "--zk", &url, "-c", &open]);
    assert!(!ok && out.contains("zk_user"), "{out}");
    // With the identity in the config: every node becomes the identity's.
    let text = std::fs::read_to_string(&router.config_path).unwrap();
    let secured = text.replacen(
        "[topology]\n",
        "[topology]\nzk_user = \"dbrouter\"\nzk_password = \"zk-secret\"\n",
        1,
    );
    assert_ne!(text, secured, "the test config has a [topology] table");
    let dir = TempDir::new("secure");
    let config = dir.0.join("dbrouter.toml");
    std::fs::write(&config, secured).unwrap();
    let config = config.to_str().unwrap().to_string();
    let (ok, out) = ctl(&["topology", "secure", "--zk", &url, "-c", &config]);
    assert!(ok, "{out}");
    assert!(out.contains("node(s)"), "{out}");
    for node in ["topology", "version", "intruder-was-here"] {
        let err = anon.write_raw(node, b"{}").await.unwrap_err().to_string();
        assert!(err.to_lowercase().contains("auth"), "{node}: {err}");
    }
    let (doc, _) = anon.read_topology().await.unwrap();
    assert!(!doc.shards.is_empty(), "still readable by anyone");
    // The identity still changes it; a router without it still reads it and serves.
    let (ok, out) = ctl(&[
        "shard",
        "set-weight",
        "shard1",
        "64",
        "--zk",
        &url,
        "-c",
        &config,
    ]);
    assert!(ok, "{out}");
    let mut c = router.app_conn(Some("app")).await;
    let v: Option<i64> = c.query_first("SELECT 5").await.unwrap();
    assert_eq!(v, Some(5));
}

#[tokio::test]
async fn a_standby_address_with_a_quote_is_refused_before_any_sql_is_built() {
    let hosts = env("DBR_ZK");
    let root = unique_root("injection");
    let url = format!("zk://{hosts}{root}");
    let mut settings = zk_settings(&hosts, &root);
    settings.sharding.push_str(
        "\n[admin]\nuser = \"dbrouter_admin\"\npassword = \"admin-secret\"\n\n[failover]\nrepl_user = \"repl\"\nrepl_password = \"repl-secret\"\n",
    );
    let router = init_and_start(settings, &url);
    let config = router.config_path.to_str().unwrap().to_string();
    let mut c = router.app_conn(Some("app")).await;
    let s = store(&url).await;
    // Someone with write access to ZooKeeper plants a standby whose "address" would
    // close the string in CHANGE MASTER TO MASTER_HOST = '…' and add its own options.
    let (mut doc, _) = s.read_topology().await.unwrap();
    let planted = "127.0.0.1:3312', MASTER_USER = 'root";
    doc.shards[0].standbys.push(planted.to_string());
    s.write_raw("topology", &serde_json::to_vec(&doc).unwrap())
        .await
        .unwrap();
    s.write_raw("version", br#"{"schema":1,"version":60}"#)
        .await
        .unwrap();
    // The router refuses the document and keeps serving the last good one.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let rows = status(&mut c).await;
        if let Some(e) = value(&rows, "topology_last_error") {
            assert!(e.contains("is not host:port"), "{e}");
            break;
        }
        assert!(Instant::now() < deadline, "not refused: {rows:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let v: Option<i64> = c.query_first("SELECT 6").await.unwrap();
    assert_eq!(v, Some(6));
    // An operation refuses to read it: no statement is built from it.
    let shard = doc.shards[0].name.clone();
    let (ok, out) = ctl(&["promote", &shard, "--zk", &url, "-c", &config]);
    assert!(!ok && out.contains("is not host:port"), "{out}");
    c.disconnect().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_topology_is_refused_and_the_last_good_kept() {
    let hosts = env("DBR_ZK");
    let root = unique_root("malformed");
    let url = format!("zk://{hosts}{root}");
    let router = init_and_start(zk_settings(&hosts, &root), &url);
    let mut c = router.app_conn(Some("app")).await;
    let s = store(&url).await;
    // A buggy writer: garbage topology and a bumped version counter.
    s.write_raw("topology", b"{\"schema\": 1, \"shards\": \"oops\"")
        .await
        .unwrap();
    s.write_raw("version", br#"{"schema":1,"version":50}"#)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let rows = status(&mut c).await;
        if value(&rows, "topology_last_error").is_some() {
            assert_eq!(
                value(&rows, "topology_version").as_deref(),
                Some("1"),
                "{rows:?}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the malformed topology was not reported: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Still serving from the last good topology.
    let v: Option<i64> = c.query_first("SELECT 5").await.unwrap();
    assert_eq!(v, Some(5));
    // An unknown schema version is refused too.
    s.write_raw(
        "topology",
        br#"{"schema":9,"shards":[],"global_shard":"x"}"#,
    )
    .await
    .unwrap();
    s.write_raw("version", br#"{"schema":1,"version":51}"#)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rows = status(&mut c).await;
    assert_eq!(value(&rows, "topology_version").as_deref(), Some("1"));
    // A repair (forced init) is applied.
    let (ok, out) = ctl(&[
        "topology",
        "init",
        "--force",
        "--from",
        router.config_path.to_str().unwrap(),
        "--zk",
        &url,
    ]);
    assert!(ok, "{out}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let rows = status(&mut c).await;
        if value(&rows, "topology_version").as_deref() == Some("52") {
            assert_eq!(value(&rows, "topology_last_error"), None);
            break;
        }
        assert!(Instant::now() < deadline, "repair not applied: {rows:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs `SELECT` statements through each router until `stop` is set; returns failures.
fn query_load(
    addrs: Vec<String>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<(u64, Vec<String>)> {
    tokio::spawn(async move {
        let mut conns = Vec::new();
        for a in &addrs {
            conns.push(
                Conn::new(mysql_async::Opts::from(app_opts(a, Some("app"))))
                    .await
                    .unwrap(),
            );
        }
        let (mut ok, mut failures) = (0u64, Vec::new());
        let mut i = 0u64;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            for c in conns.iter_mut() {
                match c.query_first::<i64, _>(format!("SELECT {i}")).await {
                    Ok(Some(v)) if v == i as i64 => ok += 1,
                    other => failures.push(format!("{other:?}")),
                }
            }
            // Also new connections (login, pool) during the outage.
            if i.is_multiple_of(50) {
                for a in &addrs {
                    match Conn::new(mysql_async::Opts::from(app_opts(a, Some("app")))).await {
                        Ok(c) => drop(c),
                        Err(e) => failures.push(format!("connect: {e}")),
                    }
                }
            }
            i += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        (ok, failures)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routers_serve_through_a_zookeeper_outage_and_catch_up() {
    let outage = Duration::from_secs(env_number("DBR_ZK_OUTAGE_SECS", 60));
    let mut zk = TestZk::start();
    let root = "/dbrouter/outage";
    let url = format!("zk://{}{root}", zk.hosts());
    let a = init_and_start(zk_settings(&zk.hosts(), root), &url);
    let b = start_follower(zk_settings(&zk.hosts(), root));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = query_load(vec![a.addr.clone(), b.addr.clone()], stop.clone());

    zk.stop();
    let mut ca = a.app_conn(Some("app")).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let rows = status(&mut ca).await;
        if value(&rows, "zookeeper_state").is_some_and(|s| s != "connected") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the outage is not reported: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(outage).await;
    zk.restart();
    // A change made after ZooKeeper returns reaches both routers.
    let (ok, out) = ctl(&[
        "user",
        "pin",
        "123456",
        "shard2",
        "--no-data-check",
        "--zk",
        &url,
        "-c",
        a.config_path.to_str().unwrap(),
    ]);
    assert!(ok, "{out}");
    let mut cb = b.app_conn(Some("app")).await;
    wait_route(&mut ca, "123456", "shard2").await;
    wait_route(&mut cb, "123456", "shard2").await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (ok_count, failures) = load.await.unwrap();
    assert!(
        failures.is_empty(),
        "{} queries failed during the outage: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(ok_count > 100, "too few queries ran: {ok_count}");
    // Both re-registered.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (ok, out) = ctl(&["routers", "--zk", &url]);
        if ok && out.contains("2 router(s)") && out.matches("(current)").count() == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "routers did not re-register: {out}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_expiry_brings_back_registration_and_watches() {
    let zk = TestZk::start();
    let root = "/dbrouter/expiry";
    let url = format!("zk://{}{root}", zk.hosts());
    let router = init_and_start(zk_settings(&zk.hosts(), root), &url);
    let mut c = router.app_conn(Some("app")).await;
    // Freeze ZooKeeper well past the 2 s session timeout: the session expires.
    zk.signal("-STOP");
    tokio::time::sleep(Duration::from_secs(6)).await;
    zk.signal("-CONT");
    // The registration comes back and a change made now is applied (watches re-armed).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (ok, out) = ctl(&["routers", "--zk", &url]);
        if ok && out.contains("1 router(s)") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "registration did not come back: {out}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (ok, out) = ctl(&[
        "user",
        "pin",
        "777",
        "shard2",
        "--no-data-check",
        "--zk",
        &url,
        "-c",
        router.config_path.to_str().unwrap(),
    ]);
    assert!(ok, "{out}");
    wait_route(&mut c, "777", "shard2").await;
    let log = router.log_text();
    assert!(
        log.contains("new ZooKeeper session"),
        "the session did not expire and get rebuilt:\n{log}"
    );
}

/// Propagation time from a CLI write to "applied" on two routers. A report, not a check:
/// `scripts/report-propagation` runs it (`cargo test --test proto report_propagation -- --ignored --nocapture`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn report_propagation() {
    let hosts = env("DBR_ZK");
    let root = unique_root("propagation");
    let url = format!("zk://{hosts}{root}");
    let a = init_and_start(zk_settings(&hosts, &root), &url);
    let b = start_follower(zk_settings(&hosts, &root));
    let mut conns = [a.app_conn(Some("app")).await, b.app_conn(Some("app")).await];
    let s = store(&url).await;
    let mut samples = Vec::new();
    for i in 0..100u64 {
        let user = format!("{}", 5_000_000 + i);
        let shard = if i % 2 == 0 { "shard1" } else { "shard2" };
        let started = Instant::now();
        let version = s
            .set_override(user.as_bytes(), Some(shard))
            .await
            .unwrap()
            .unwrap();
        for c in conns.iter_mut() {
            loop {
                let rows = status(c).await;
                if value(&rows, "topology_version").and_then(|v| v.parse::<u64>().ok())
                    >= Some(version)
                {
                    break;
                }
            }
        }
        samples.push(started.elapsed());
    }
    samples.sort();
    let pct = |p: usize| samples[(samples.len() * p / 100).min(samples.len() - 1)];
    println!(
        "propagation write -> applied on both routers, {} changes: p50 {:?}, p99 {:?}, max {:?}",
        samples.len(),
        pct(50),
        pct(99),
        samples[samples.len() - 1]
    );
}

#[tokio::test]
async fn health_checker_reports_every_server() {
    let mut c = Conn::new(mysql_async::Opts::from(app_opts(
        &cluster_router_addr(),
        Some("app"),
    )))
    .await
    .unwrap();
    let (master, standby) = (master_addr(), env("DBR_S1_STANDBY"));
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let rows = status(&mut c).await;
        let m = value(&rows, &format!("server.{master}")).unwrap_or_default();
        let s = value(&rows, &format!("server.{standby}")).unwrap_or_default();
        if m.contains("role=master reachable=true read_only=false")
            && s.contains("role=standby reachable=true read_only=true")
        {
            assert!(
                s.contains("io=true sql=true"),
                "standby not replicating: {s}"
            );
            assert!(s.contains("semi_sync_slave=true"), "{s}");
            assert!(m.contains("semi_sync_master=true"), "{m}");
            break;
        }
        assert!(Instant::now() < deadline, "health not reported: {rows:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_that_stops_leaves_zookeeper_at_once() {
    let hosts = env("DBR_ZK");
    let root = unique_root("leave");
    let url = format!("zk://{hosts}{root}");
    let router = init_and_start(zk_settings(&hosts, &root), &url);
    let (ok, out) = ctl(&["routers", "--zk", &url]);
    assert!(ok && out.contains("1 router(s)"), "{out}");
    let term = std::process::Command::new("kill")
        .args(["-TERM", &router.pid().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    // Well within the 2 s ZooKeeper session timeout of these routers.
    let deadline = Instant::now() + Duration::from_millis(1500);
    loop {
        let (ok, out) = ctl(&["routers", "--zk", &url]);
        if ok && out.contains("0 router(s)") && !out.contains("gone from ZooKeeper") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the stopped router is still registered: {out}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Session ids are unique across routers (each claims a number in ZooKeeper, the top
/// bits of its ids), and a KILL that reaches another router than the session's is
/// carried out by the session's router.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_reaching_another_router_is_carried_out_by_the_sessions_router() {
    use dbrouter::frontend::sessions::router_of;
    let hosts = env("DBR_ZK");
    let root = unique_root("kill");
    let url = format!("zk://{hosts}{root}");
    let a = init_and_start(zk_settings(&hosts, &root), &url);
    let b = TestRouter::start(zk_settings(&hosts, &root));
    let mut on_a = a.app_conn(Some("app")).await;
    let mut on_b = b.app_conn(Some("app")).await;
    let (id_a, id_b) = (u64::from(on_a.id()), u64::from(on_b.id()));
    let (ra, rb) = (router_of(id_a).unwrap(), router_of(id_b).unwrap());
    assert!(
        ra >= 1 && rb >= 1 && ra != rb,
        "router numbers {ra} and {rb}"
    );

    // KILL QUERY through router B of a statement running through router A.
    let running = tokio::spawn(async move {
        let r = on_a
            .query_drop("SELECT COUNT(*) FROM seq_1_to_1000000000 WHERE seq % 7 = 3")
            .await;
        (on_a, r)
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    on_b.query_drop(format!("KILL QUERY {id_a}")).await.unwrap();
    let (mut on_a, result) = running.await.unwrap();
    assert_eq!(server_error(result.unwrap_err()).0, 1317);
    let v: Option<i64> = on_a.query_first("SELECT 3").await.unwrap();
    assert_eq!(v, Some(3));

    // KILL CONNECTION through B ends the session on A.
    on_b.query_drop(format!("KILL {id_a}")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(on_a.query_drop("SELECT 1").await.is_err());
    // Gone now: unknown, also from the other router; so is an id of no router.
    let err = on_b.query_drop(format!("KILL {id_a}")).await.unwrap_err();
    assert_eq!(server_error(err).0, 1094);
    let nobody = (1000u64 << 22) | 5;
    let err = on_b.query_drop(format!("KILL {nobody}")).await.unwrap_err();
    assert_eq!(server_error(err).0, 1094);
}

/// `dbrouter ctl --output json ARGS…`: the exit code and the one JSON document on stdout.
fn ctl_json(args: &[&str]) -> (i32, serde_json::Value) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dbrouter"))
        .arg("ctl")
        .args(args)
        .args(["--output", "json"])
        .output()
        .expect("run dbrouter ctl");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let doc: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "not one JSON document ({e}): {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(doc["format"], "dbrouter-ctl/1", "{doc}");
    let code = out.status.code().unwrap_or(-1);
    assert_eq!(doc["exit_code"], code, "{doc}");
    assert_eq!(doc["ok"], code == 0, "{doc}");
    (code, doc)
}

/// Machine-readable ctl: the state commands print one versioned JSON document with what
/// their text says, and the exit codes say done (0), refused (1), usage (2), retry (3).
#[test]
fn ctl_prints_state_as_versioned_json_with_documented_exit_codes() {
    let config = env("DBR_CONFIG");
    let c = ["--config", config.as_str()];
    let with = |args: &[&'static str]| -> Vec<&str> {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(c);
        all
    };

    let (code, doc) = ctl_json(&with(&["status"]));
    assert_eq!(code, 0, "{doc}");
    let shards = doc["result"]["shards"].as_array().expect("shards");
    assert_eq!(shards.len(), 2, "{doc}");
    for shard in shards {
        let servers = shard["servers"].as_array().expect("servers");
        let master = servers
            .iter()
            .find(|s| s["role"] == "master")
            .expect("a master");
        assert_eq!(master["health"]["reachable"], true, "{doc}");
        assert_eq!(master["health"]["read_only"], false, "{doc}");
        assert!(servers.iter().any(|s| s["role"] == "standby"), "{doc}");
        assert!(shard["automatic_failover"]["armed"].is_boolean(), "{doc}");
    }
    assert!(
        doc["result"]["topology_version"].as_u64().unwrap_or(0) >= 1,
        "{doc}"
    );

    // Where user 42 goes: the file topology (`route`) and ZooKeeper (`user show`) agree.
    let (code, route) = ctl_json(&with(&["route", "42"]));
    assert_eq!(code, 0, "{route}");
    let (code, shown) = ctl_json(&with(&["user", "show", "42"]));
    assert_eq!(code, 0, "{shown}");
    assert_eq!(route["result"]["user"], "42");
    assert_eq!(
        route["result"]["shard"], shown["result"]["shard"],
        "{route} {shown}"
    );
    assert!(
        ["ring", "override"].contains(&shown["result"]["why"]["kind"].as_str().unwrap_or("")),
        "{shown}"
    );

    let (code, routers) = ctl_json(&with(&["routers"]));
    assert_eq!(code, 0, "{routers}");
    let list = routers["result"]["routers"].as_array().expect("routers");
    assert!(
        list.iter().any(|r| r["address"] == env("DBR_ROUTER")),
        "the cluster's router is registered: {routers}"
    );
    let (code, topo) = ctl_json(&with(&["topology", "show"]));
    assert_eq!(code, 0, "{topo}");
    assert_eq!(
        topo["result"]["version"], doc["result"]["topology_version"],
        "{topo}"
    );
    for args in [&["jobs"][..], &["user", "moves"][..], &["check-config"][..]] {
        let (code, d) = ctl_json(&with(args));
        assert_eq!(code, 0, "{args:?}: {d}");
    }

    // Refused: nothing to promote on a shard that does not exist.
    let (code, d) = ctl_json(&with(&["promote", "no-such-shard"]));
    assert_eq!(
        (code, d["error"]["kind"].as_str()),
        (1, Some("refused")),
        "{d}"
    );
    assert!(
        d["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("no-such-shard"),
        "{d}"
    );
    // Usage: a failover without a shard.
    let (code, d) = ctl_json(&with(&["failover"]));
    assert_eq!(
        (code, d["error"]["kind"].as_str()),
        (2, Some("usage")),
        "{d}"
    );
    // Retry later: ZooKeeper cannot be reached.
    let port = crate::harness::free_port();
    let zk = format!("zk://127.0.0.1:{port}/dbrouter/nowhere");
    let (code, d) = ctl_json(&["status", "--zk", &zk, "--config", &config]);
    assert_eq!(
        (code, d["error"]["kind"].as_str()),
        (3, Some("retry")),
        "{d}"
    );
}
