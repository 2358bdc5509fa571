//! Master changes with real semi-sync MariaDB pairs and a real ZooKeeper, on a private
//! cluster per test: planned switchovers back and forth under write load lose no
//! acknowledged write and show autocommit clients only a pause; an emergency failover
//! after `kill -9` of the master loses no acknowledged write; the old master stays fenced
//! until `rejoin`; two operators cannot promote at once; a router that misses the
//! switchover cannot write to the old master.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mysql_async::prelude::*;
use mysql_async::{Conn, Opts};

use crate::harness::*;
use crate::sharding::direct_to;

/// A router on the private cluster's ZooKeeper root (initialised from its config).
pub(crate) fn start_router(cluster: &PrivateCluster, root: &str, url: &str) -> TestRouter {
    start_router_with(cluster, root, url, "")
}

/// `start_router` with `extra` TOML appended to the config.
pub(crate) fn start_router_with(
    cluster: &PrivateCluster,
    root: &str,
    url: &str,
    extra: &str,
) -> TestRouter {
    start_router_from(cluster.router_settings(root, extra), url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switchovers_back_and_forth_lose_no_acknowledged_write() {
    let cluster = PrivateCluster::start("switchover");
    let root = "/dbrouter/switchover";
    let url = format!("zk://{}{root}", cluster.var("DBR_ZK"));
    create_writes_table(&cluster).await;
    let router = start_router(&cluster, root, &url);
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = shard1_users(&router, 4)
        .into_iter()
        .map(|u| writer(router.addr.clone(), u, stop.clone()))
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let config = router.config_path.to_str().unwrap().to_string();
    let mut masters = vec![current_master(&url, "shard1").await];
    for _ in 0..4 {
        let (ok, out) = ctl(&["promote", "shard1", "--zk", &url, "--config", &config]);
        assert!(ok, "promote failed:\n{out}");
        assert!(out.contains("published"), "{out}");
        masters.push(current_master(&url, "shard1").await);
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut logs = Vec::new();
    for w in writers {
        logs.push(w.await.unwrap());
    }
    // Back and forth: the masters alternate.
    assert_ne!(masters[0], masters[1]);
    assert_eq!(masters[0], masters[2]);
    let total = assert_nothing_lost(&masters[4], &logs).await;
    assert!(total > 100, "too few writes: {total}");
    // Autocommit clients saw no error, only a pause.
    for log in &logs {
        assert!(
            log.errors.is_empty(),
            "user {}: errors during switchovers: {:?}",
            log.user,
            &log.errors[..log.errors.len().min(3)]
        );
    }
    let mut latencies: Vec<Duration> = logs
        .iter()
        .flat_map(|l| l.latencies.iter().copied())
        .collect();
    println!(
        "switchover x4 under load: {total} acknowledged writes, 0 lost, 0 errors; write latency p50 {:?}, p99 {:?}, max (the pause) {:?}",
        percentile(&mut latencies, 50),
        percentile(&mut latencies, 99),
        latencies.iter().max().copied().unwrap_or_default()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_after_kill_9_loses_no_acknowledged_write_and_the_old_master_stays_fenced() {
    let cluster = PrivateCluster::start("failover");
    let root = "/dbrouter/failover";
    let url = format!("zk://{}{root}", cluster.var("DBR_ZK"));
    create_writes_table(&cluster).await;
    let router = start_router(&cluster, root, &url);
    let config = router.config_path.to_str().unwrap().to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = shard1_users(&router, 4)
        .into_iter()
        .map(|u| writer(router.addr.clone(), u, stop.clone()))
        .collect();
    tokio::time::sleep(Duration::from_millis(800)).await;

    let old = current_master(&url, "shard1").await;
    let pid = cluster.server_pid(&old);
    let cmdline = PrivateCluster::cmdline(pid);
    // A refused failover while the master answers.
    let (ok, out) = ctl(&["failover", "shard1", "--zk", &url, "--config", &config]);
    assert!(!ok && out.contains("is reachable"), "{out}");

    let killed_at = Instant::now();
    std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (ok, out) = ctl(&["failover", "shard1", "--zk", &url, "--config", &config]);
    assert!(ok, "failover failed:\n{out}");
    let new = current_master(&url, "shard1").await;
    assert_ne!(new, old);
    // Writes come back on the new master.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut probe = None;
    while Instant::now() < deadline {
        if let Ok(mut c) = Conn::new(Opts::from(app_opts(&router.addr, Some("app")))).await {
            if c.exec_drop(
                "INSERT INTO writes (userid, seq) VALUES (?, ?)",
                (shard1_users(&router, 1)[0], 999_999_999u64),
            )
            .await
            .is_ok()
            {
                probe = Some(killed_at.elapsed());
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let unavailable = probe.expect("writes never came back after the failover");
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut logs = Vec::new();
    for w in writers {
        logs.push(w.await.unwrap());
    }
    let total = assert_nothing_lost(&new, &logs).await;
    let errors: usize = logs.iter().map(|l| l.errors.len()).sum();
    println!("failover after kill -9: {total} acknowledged writes, 0 lost; writes unavailable for {unavailable:?} (kill to first successful write, including the operator's ctl failover); {errors} failed attempts meanwhile");

    // The old master comes back: fenced (read_only) and shown as needing a rejoin.
    restart_in_slave_role(&cmdline);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, out) = ctl(&["status", "--zk", &url, "--config", &config]);
        if out.contains("fenced, needs rejoin") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "old master not shown as fenced:\n{out}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let (ok, out) = ctl(&["rejoin", "shard1", &old, "--zk", &url, "--config", &config]);
    if !ok {
        // Legitimate only if the old master logged a transaction no standby received (its
        // client never got an OK: semi-sync had fallen back to asynchronous under load).
        // Every acknowledged write was checked on the new master above.
        assert!(out.contains("errant"), "rejoin failed:\n{out}");
        println!("rejoin refused (errant transaction on the killed master, unacknowledged): {out}");
        return;
    }
    let (_, out) = ctl(&["status", "--zk", &url, "--config", &config]);
    let standby_line = out
        .lines()
        .find(|l| l.contains(&old))
        .unwrap_or_default()
        .to_string();
    assert!(
        standby_line.contains("standby") && standby_line.contains("replicating"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_operators_promoting_at_once_one_wins_and_a_cut_off_router_cannot_write() {
    let cluster = PrivateCluster::start("racepromote");
    let root = "/dbrouter/race";
    let zk = cluster.var("DBR_ZK");
    let url = format!("zk://{zk}{root}");
    create_writes_table(&cluster).await;
    let router = start_router(&cluster, root, &url);
    // A second router reaches ZooKeeper through a proxy we can cut.
    let zk_proxy = CutProxy::start(zk.clone()).await;
    let mut settings = cluster.router_settings(root, "");
    settings.sharding = settings.sharding.replace(&zk, &zk_proxy.addr);
    let cut_off = TestRouter::start(settings);
    let user = shard1_users(&router, 1)[0];
    let mut victim = cut_off.app_conn(Some("app")).await;
    victim
        .exec_drop("INSERT INTO writes (userid, seq) VALUES (?, 1)", (user,))
        .await
        .unwrap();
    let old = current_master(&url, "shard1").await;
    zk_proxy.cut();

    let config = router.config_path.to_str().unwrap().to_string();
    let (a, b) = (url.clone(), config.clone());
    let t = std::thread::spawn(move || ctl(&["promote", "shard1", "--zk", &a, "--config", &b]));
    let (ok1, out1) = ctl(&["promote", "shard1", "--zk", &url, "--config", &config]);
    let (ok2, out2) = t.join().unwrap();
    assert!(
        ok1 ^ ok2,
        "exactly one promote must win:\n--- 1:\n{out1}\n--- 2:\n{out2}"
    );
    let loser = if ok1 { &out2 } else { &out1 };
    assert!(
        loser.contains("lock") || loser.contains("changed under you") || loser.contains("already"),
        "unclear loser message: {loser}"
    );
    let new = current_master(&url, "shard1").await;
    assert_ne!(new, old);
    // Never two writable masters: the old one is read-only.
    let mut d_old = direct_to(&old, Some("app")).await;
    let ro: Option<i64> = d_old.query_first("SELECT @@read_only").await.unwrap();
    assert_eq!(ro, Some(1));
    let mut d_new = direct_to(&new, Some("app")).await;
    let ro: Option<i64> = d_new.query_first("SELECT @@read_only").await.unwrap();
    assert_eq!(ro, Some(0));

    // The router that missed the switchover still believes in the old master: its writes
    // are refused by the fence, never applied there.
    let before: Option<i64> = d_old
        .exec_first("SELECT COUNT(*) FROM writes WHERE userid = ?", (user,))
        .await
        .unwrap();
    let mut fresh = cut_off.app_conn(Some("app")).await;
    let result = fresh
        .exec_drop("INSERT INTO writes (userid, seq) VALUES (?, 2)", (user,))
        .await;
    assert!(
        result.is_err(),
        "a write through the cut-off router succeeded"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after: Option<i64> = d_old
        .exec_first("SELECT COUNT(*) FROM writes WHERE userid = ?", (user,))
        .await
        .unwrap();
    assert_eq!(
        before, after,
        "the old master took a write after the switchover"
    );
    let on_new: Option<i64> = d_new
        .exec_first(
            "SELECT COUNT(*) FROM writes WHERE userid = ? AND seq = 2",
            (user,),
        )
        .await
        .unwrap();
    assert_eq!(on_new, Some(0));
}

/// Restarts a killed former master from its command line (read-only) and writes on it
/// anyway: an errant transaction the new master never had. Returns an admin connection
/// to it.
async fn restart_with_an_errant_write(cmdline: &[String], old: &str, user: u64) -> Conn {
    // Restarted as it was (not in the slave role): a slave-role restart truncates the
    // transactions the standby may already have, and a write taken afterwards would reuse
    // their GTIDs — indistinguishable from them (docs/operations.md, "Rejoin").
    assert!(std::process::Command::new("setsid")
        .arg("-f")
        .args(cmdline)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap()
        .success());
    // The old master comes back (read-only); someone writes on it anyway: an errant
    // transaction the new master never had.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut d_old = loop {
        let (host, port) = old.rsplit_once(':').unwrap();
        let o = mysql_async::OptsBuilder::default()
            .ip_or_hostname(host)
            .tcp_port(port.parse().unwrap())
            .user(Some("dbrouter_admin"))
            .pass(Some("admin-secret"))
            .db_name(Some("app"))
            .prefer_socket(false);
        if let Ok(conn) = Conn::new(Opts::from(o)).await {
            break conn;
        }
        assert!(Instant::now() < deadline, "old master did not restart");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let ro: Option<i64> = d_old.query_first("SELECT @@read_only").await.unwrap();
    assert_eq!(
        ro,
        Some(1),
        "a restarted former master must come back read-only"
    );
    d_old
        .query_drop("SET GLOBAL read_only = OFF")
        .await
        .unwrap();
    d_old
        .exec_drop(
            "INSERT INTO writes (userid, seq) VALUES (?, 424242)",
            (user,),
        )
        .await
        .unwrap();
    d_old.query_drop("SET GLOBAL read_only = ON").await.unwrap();
    d_old
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejoin_refuses_a_former_master_with_errant_transactions() {
    let cluster = PrivateCluster::start("errant");
    let root = "/dbrouter/errant";
    let url = format!("zk://{}{root}", cluster.var("DBR_ZK"));
    create_writes_table(&cluster).await;
    let router = start_router(&cluster, root, &url);
    let config = router.config_path.to_str().unwrap().to_string();
    let user = shard1_users(&router, 1)[0];
    let mut c = router.app_conn(Some("app")).await;
    c.exec_drop("INSERT INTO writes (userid, seq) VALUES (?, 1)", (user,))
        .await
        .unwrap();

    let old = current_master(&url, "shard1").await;
    let pid = cluster.server_pid(&old);
    let cmdline = PrivateCluster::cmdline(pid);
    std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (ok, out) = ctl(&["failover", "shard1", "--zk", &url, "--config", &config]);
    assert!(ok, "failover failed:\n{out}");
    let mut d_old = restart_with_an_errant_write(&cmdline, &old, user).await;

    let (ok, out) = ctl(&["rejoin", "shard1", &old, "--zk", &url, "--config", &config]);
    assert!(!ok && out.contains("errant"), "rejoin must refuse:\n{out}");
    let ro: Option<i64> = d_old.query_first("SELECT @@read_only").await.unwrap();
    assert_eq!(ro, Some(1), "it must stay fenced");
    let (_, out) = ctl(&["status", "--zk", &url, "--config", &config]);
    let line = out
        .lines()
        .find(|l| l.contains(&old))
        .unwrap_or_default()
        .to_string();
    assert!(line.contains("needs-rejoin"), "{out}");

    // The operator rebuilds it: wiped (the errant transaction with it), cloned from the
    // new master (the shard has no other member), caught up and published as a standby.
    let (ok, out) = ctl(&[
        "standby", "rebuild", "shard1", &old, "--zk", &url, "--config", &config,
    ]);
    assert!(ok, "rebuild failed:\n{out}");
    assert!(out.contains("copied"), "{out}");
    // A new client (the first one's session ended with the old master's connection).
    let mut c = router.app_conn(Some("app")).await;
    c.exec_drop("INSERT INTO writes (userid, seq) VALUES (?, 2)", (user,))
        .await
        .unwrap();
    let new = current_master(&url, "shard1").await;
    let mut d_new = direct_to(&new, Some("app")).await;
    let pos: String = d_new
        .query_first("SELECT @@gtid_binlog_pos")
        .await
        .unwrap()
        .unwrap();
    let waited: Option<i64> = d_old
        .query_first(format!("SELECT MASTER_GTID_WAIT('{pos}', 30)"))
        .await
        .unwrap();
    assert_eq!(waited, Some(0));
    let seqs: Vec<u64> = d_old
        .exec(
            "SELECT seq FROM writes WHERE userid = ? ORDER BY seq",
            (user,),
        )
        .await
        .unwrap();
    assert_eq!(
        seqs,
        [1, 2],
        "the rebuilt standby has the master's rows, not its errant one"
    );
    let (_, out) = ctl(&["status", "--zk", &url, "--config", &config]);
    let line = out
        .lines()
        .find(|l| l.contains(&old))
        .unwrap_or_default()
        .to_string();
    assert!(
        line.contains("standby") && line.contains("replicating"),
        "{out}"
    );
}

/// A master at its max_connections refuses logins with ERR 1040: the pool waits for a
/// connection to come free (up to pool.wait_ms) as it does when it is exhausted itself,
/// instead of failing the client at once (a login storm then queues instead of failing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_out_of_connections_makes_logins_wait_for_a_free_one() {
    let cluster = PrivateCluster::start("maxconn");
    let root = "/dbrouter/maxconn";
    let url = format!("zk://{}{root}", cluster.var("DBR_ZK"));
    // No health checker: its probes would take and free connection slots meanwhile. No
    // idle connections either: a returned one is closed, and only a new login can follow.
    let router = start_router_with(
        &cluster,
        root,
        &url,
        // Session pooling: the holder keeps its connection while idle.
        "\n[pool]\nmode = \"session\"\nmax_per_shard = 50\nmax_idle_per_shard = 0\nwait_ms = 4000\n\n[health]\ninterval_ms = 0\n",
    );
    // Keyless statements run on the global shard (shard2 here): the holder keeps a
    // connection to its master.
    let global = cluster.var("DBR_S2_MASTER");
    let mut holder = router.app_conn(None).await;
    holder.query_drop("SELECT 1").await.unwrap();
    // Fill the master: its smallest max_connections (10), then direct connections of the
    // service account until the master refuses one.
    let opts_as = |user: &str, password: &str| account_opts_at(&global, user, password);
    let admin_opts = opts_as("dbrouter_admin", "admin-secret");
    let mut admin = Conn::new(admin_opts.clone()).await.unwrap();
    admin
        .query_drop("SET GLOBAL max_connections = 10")
        .await
        .unwrap();
    admin.disconnect().await.unwrap();
    let mut fillers = Vec::new();
    loop {
        match Conn::new(opts_as("dbrouter", "dbrouter-secret")).await {
            Ok(c) => fillers.push(c),
            Err(e) => {
                assert_eq!(server_error(e).0, 1040);
                break;
            }
        }
        assert!(fillers.len() < 20, "the master never refused a connection");
    }

    let started = Instant::now();
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(700)).await;
        holder.disconnect().await.unwrap();
    });
    // The login needs a backend connection; the master refuses a new one (1040), so the
    // login waits until the holder's connection is back in the pool.
    let mut waiter = Conn::new(Opts::from(router.app_opts(None)))
        .await
        .expect("the login waits for a free connection");
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "logged in after {:?}: the master was not full?",
        started.elapsed(),
    );
    let v: Option<i64> = waiter.query_first("SELECT 5").await.unwrap();
    assert_eq!(v, Some(5));
    release.await.unwrap();

    // Nothing comes free within pool.wait_ms: the master's refusal is reported, retryable.
    let started = Instant::now();
    let err = Conn::new(Opts::from(router.app_opts(None)))
        .await
        .unwrap_err();
    let (code, _, msg) = server_error(err);
    assert_eq!(code, 1053, "{msg}");
    assert!(
        msg.contains("Too many connections") && msg.contains("retry"),
        "{msg}"
    );
    assert!(started.elapsed() >= Duration::from_millis(3500));
    waiter.disconnect().await.unwrap();
    drop(fillers);
    let mut admin = Conn::new(admin_opts).await.unwrap();
    admin
        .query_drop("SET GLOBAL max_connections = 500")
        .await
        .unwrap();
}

/// The standby lifecycle from the CLI on a quiet shard: the last standby is removed only
/// with --force; a server holding databases is added only with --wipe; it is cloned,
/// caught up and published; a snapshot taken from it restores a standby that catches up
/// although its binary log is empty (nothing was written since the snapshot).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standbys_are_removed_added_by_cloning_and_restored_from_a_snapshot() {
    let cluster = PrivateCluster::start("standbys");
    let root = "/dbrouter/standbys";
    let url = format!("zk://{}{root}", cluster.var("DBR_ZK"));
    create_writes_table(&cluster).await;
    let router = start_router(&cluster, root, &url);
    let config = router.config_path.to_str().unwrap().to_string();
    let user = shard1_users(&router, 1)[0];
    let mut c = router.app_conn(Some("app")).await;
    for seq in 1..=50u64 {
        c.exec_drop(
            "INSERT INTO writes (userid, seq) VALUES (?, ?)",
            (user, seq),
        )
        .await
        .unwrap();
    }
    let standby = cluster.var("DBR_S1_STANDBY");
    let run = |args: &[&str]| {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--zk", &url, "--config", &config]);
        ctl(&all)
    };
    let (ok, out) = run(&["standby", "remove", "shard1", &standby]);
    assert!(!ok && out.contains("--force"), "{out}");
    let (ok, out) = run(&["standby", "remove", "shard1", &standby, "--force"]);
    assert!(ok, "{out}");
    let (ok, out) = run(&["standby", "add", "shard1", &standby]);
    assert!(!ok && out.contains("--wipe"), "{out}");
    let (ok, out) = run(&["standby", "add", "shard1", &standby, "--wipe"]);
    assert!(ok, "add failed:\n{out}");
    assert!(out.contains("is a standby of shard1"), "{out}");
    let count = |addr: String| async move {
        let mut d = direct_to(&addr, Some("app")).await;
        let n: Option<i64> = d
            .exec_first("SELECT COUNT(*) FROM writes WHERE userid = ?", (user,))
            .await
            .unwrap();
        n.unwrap_or(0)
    };
    assert_eq!(count(standby.clone()).await, 50);

    // A snapshot (from the standby), then the standby restored from it on a quiet shard.
    let dir = TempDir::new("snapshots");
    let (ok, out) = run(&["snapshot", "shard1", "--to", dir.0.to_str().unwrap()]);
    assert!(ok, "snapshot failed:\n{out}");
    let file = out.lines().last().unwrap_or_default().trim().to_string();
    assert!(
        file.ends_with(".sql") && std::path::Path::new(&file).exists(),
        "{out}"
    );
    let (ok, out) = run(&["standby", "remove", "shard1", &standby, "--force"]);
    assert!(ok, "{out}");
    let (ok, out) = run(&[
        "standby",
        "add",
        "shard1",
        &standby,
        "--from-snapshot",
        &file,
        "--wipe",
    ]);
    assert!(ok, "restore failed:\n{out}");
    assert_eq!(count(standby.clone()).await, 50);
    // It replicates: a write through the router reaches it.
    c.exec_drop("INSERT INTO writes (userid, seq) VALUES (?, 51)", (user,))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while count(standby.clone()).await != 51 {
        assert!(
            Instant::now() < deadline,
            "the restored standby does not replicate"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, out) = ctl(&["status", "--zk", &url, "--config", &config]);
    let line = out
        .lines()
        .find(|l| l.contains(&standby))
        .unwrap_or_default()
        .to_string();
    assert!(
        line.contains("standby") && line.contains("replicating"),
        "{out}"
    );
}

/// Physical clones (`--method physical`: mariadb-backup streamed into the target's data
/// directory, the target stopped and started with `[clone]`'s commands): from the master
/// (a shard without standby: the position from its binary log) and from a standby (the
/// position from its replication state) into a server of another shard, whose own data is
/// replaced whole. Both hold the rows and the accounts, replicate, and are standbys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standbys_are_added_by_a_physical_copy_from_the_master_and_from_a_standby() {
    let cluster = PrivateCluster::start("physical");
    let root = "/dbrouter/physical";
    let url = format!("zk://{}{root}", cluster.var("DBR_ZK"));
    create_writes_table(&cluster).await;
    let router = start_router_with(&cluster, root, &url, &cluster.clone_settings());
    let config = router.config_path.to_str().unwrap().to_string();
    let user = shard1_users(&router, 1)[0];
    let mut c = router.app_conn(Some("app")).await;
    for seq in 1..=50u64 {
        c.exec_drop(
            "INSERT INTO writes (userid, seq) VALUES (?, ?)",
            (user, seq),
        )
        .await
        .unwrap();
    }
    let run = |args: &[&str]| {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--zk", &url, "--config", &config]);
        ctl(&all)
    };
    let count = |addr: String| async move {
        let mut d = direct_to(&addr, Some("app")).await;
        let n: Option<i64> = d
            .exec_first("SELECT COUNT(*) FROM writes WHERE userid = ?", (user,))
            .await
            .unwrap();
        n.unwrap_or(0)
    };

    // From the master: shard1 has no standby left.
    let standby = cluster.var("DBR_S1_STANDBY");
    let (ok, out) = run(&["standby", "remove", "shard1", &standby, "--force"]);
    assert!(ok, "{out}");
    let (ok, out) = run(&["standby", "add", "shard1", &standby, "--method", "physical"]);
    assert!(!ok && out.contains("--wipe"), "{out}");
    let (ok, out) = run(&[
        "standby", "add", "shard1", &standby, "--method", "physical", "--wipe",
    ]);
    assert!(ok, "physical add from the master failed:\n{out}");
    assert!(
        out.contains("streaming a physical backup")
            && out.contains("MiB")
            && out.contains("is a standby of shard1"),
        "{out}"
    );
    assert_eq!(count(standby.clone()).await, 50);

    // From that standby into shard2's standby server: its own data goes.
    let other = cluster.var("DBR_S2_STANDBY");
    let (ok, out) = ctl(&[
        "standby", "remove", "shard2", &other, "--force", "--zk", &url, "--config", &config,
    ]);
    assert!(ok, "{out}");
    let (ok, out) = run(&[
        "standby", "add", "shard1", &other, "--method", "physical", "--wipe",
    ]);
    assert!(ok, "physical add from a standby failed:\n{out}");
    assert!(
        out.contains(&format!("copying from the standby {standby}")),
        "{out}"
    );
    assert_eq!(count(other.clone()).await, 50);

    // Both replicate from the master.
    c.exec_drop("INSERT INTO writes (userid, seq) VALUES (?, 51)", (user,))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    for addr in [standby.clone(), other.clone()] {
        while count(addr.clone()).await != 51 {
            assert!(
                Instant::now() < deadline,
                "{addr}, cloned physically, does not replicate"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let (_, out) = ctl(&["status", "--zk", &url, "--config", &config]);
    for addr in [&standby, &other] {
        let line = out
            .lines()
            .find(|l| l.contains(addr.as_str()))
            .unwrap_or_default()
            .to_string();
        assert!(
            line.contains("standby") && line.contains("replicating"),
            "{out}"
        );
    }
}

/// A router that missed a switchover (cut off from ZooKeeper during it: it never
/// acknowledged, and the fence did its job) sends its next write to the old, now
/// read-only master: the 1290 is not the client's answer; the router holds the write,
/// reads the topology again once it can, and the write lands on the new master.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_that_missed_a_switchover_sends_refused_writes_to_the_new_master() {
    let cluster = PrivateCluster::start("missed");
    let root = "/dbrouter/missed";
    let zk = cluster.var("DBR_ZK");
    let url = format!("zk://{zk}{root}");
    create_writes_table(&cluster).await;
    let a = start_router(&cluster, root, &url);
    let config = a.config_path.to_str().unwrap().to_string();
    let zk_proxy = CutProxy::start(zk.clone()).await;
    let proxy_port: u16 = zk_proxy.addr.rsplit_once(':').unwrap().1.parse().unwrap();
    let mut settings = cluster.router_settings(root, "");
    settings.sharding = settings.sharding.replace(&zk, &zk_proxy.addr);
    let b = TestRouter::start(settings);
    let user = shard1_users(&a, 1)[0];
    let mut via_b = b.app_conn(Some("app")).await;
    via_b
        .exec_drop("INSERT INTO writes (userid, seq) VALUES (?, 1)", (user,))
        .await
        .unwrap();
    let old = current_master(&url, "shard1").await;

    zk_proxy.cut();
    let (ok, out) = ctl(&["promote", "shard1", "--zk", &url, "--config", &config]);
    assert!(ok, "promote failed:\n{out}");
    let new = current_master(&url, "shard1").await;
    assert_ne!(new, old);
    // ZooKeeper comes back for b a moment after its write is refused by the fence.
    let restore = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        CutProxy::start_at(proxy_port, zk).await
    });
    via_b
        .exec_drop("INSERT INTO writes (userid, seq) VALUES (?, 2)", (user,))
        .await
        .expect("the write refused by the fenced old master goes to the new one");
    let _proxy = restore.await.unwrap();
    let mut d_new = direct_to(&new, Some("app")).await;
    let seqs: Vec<u64> = d_new
        .exec(
            "SELECT seq FROM writes WHERE userid = ? ORDER BY seq",
            (user,),
        )
        .await
        .unwrap();
    assert_eq!(seqs, [1, 2]);
}

/// With `[failover] auto_rebuild`, the coordinator rebuilds a former master that cannot
/// rejoin (errant transactions) by itself: wiped, cloned, published as a standby.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_coordinator_rebuilds_a_former_master_that_cannot_rejoin() {
    let cluster = PrivateCluster::start("autorebuild");
    let root = "/dbrouter/autorebuild";
    let url = format!("zk://{}{root}", cluster.var("DBR_ZK"));
    create_writes_table(&cluster).await;
    // First a router without automatic failover (it is the coordinator): the operator
    // fails over, and the old master comes back with an errant transaction.
    let manual = start_router(&cluster, root, &url);
    let config = manual.config_path.to_str().unwrap().to_string();
    let user = shard1_users(&manual, 1)[0];
    let mut c = manual.app_conn(Some("app")).await;
    c.exec_drop("INSERT INTO writes (userid, seq) VALUES (?, 1)", (user,))
        .await
        .unwrap();
    let old = current_master(&url, "shard1").await;
    let cmdline = PrivateCluster::cmdline(cluster.server_pid(&old));
    std::process::Command::new("kill")
        .args(["-9", &cluster.server_pid(&old).to_string()])
        .status()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (ok, out) = ctl(&["failover", "shard1", "--zk", &url, "--config", &config]);
    assert!(ok, "failover failed:\n{out}");
    let mut d_old = restart_with_an_errant_write(&cmdline, &old, user).await;

    // Then a router with automatic failover and rebuild takes over as the coordinator.
    let auto = TestRouter::spawn(cluster.router_settings(
        root,
        "auto = true\nauto_after_ms = 1500\nauto_rebuild = true\n",
    ));
    auto.wait_listening(Duration::from_secs(30));
    let config = auto.config_path.to_str().unwrap().to_string();
    drop(c);
    drop(manual);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (_, out) = ctl(&["status", "--zk", &url, "--config", &config]);
        let line = out
            .lines()
            .find(|l| l.contains(&old))
            .unwrap_or_default()
            .to_string();
        if line.contains("standby") && line.contains("replicating") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the former master was not rebuilt:\n{out}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let seqs: Vec<u64> = d_old
        .exec(
            "SELECT seq FROM writes WHERE userid = ? ORDER BY seq",
            (user,),
        )
        .await
        .unwrap();
    assert_eq!(
        seqs,
        [1],
        "rebuilt from the new master, without its errant row"
    );
}

/// A report, not a test of timings (`scripts/report-clone`): the time `ctl standby add`
/// takes to clone shard1's standby from its master, logical (mariadb-dump) and physical
/// (mariadb-backup) side by side in one run, over `DBR_CLONE_MB` MiB of rows (default
/// 256), `DBR_CLONE_ROUNDS` rounds each (default 2, the order alternating).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a report: run through scripts/report-clone"]
async fn report_clone() {
    let mib: u64 = env_number("DBR_CLONE_MB", 256);
    let rounds: usize = env_number("DBR_CLONE_ROUNDS", 2);
    let cluster = PrivateCluster::start("clonereport");
    let root = "/dbrouter/clonereport";
    let url = format!("zk://{}{root}", cluster.var("DBR_ZK"));
    let router = start_router_with(&cluster, root, &url, &cluster.clone_settings());
    let config = router.config_path.to_str().unwrap().to_string();
    let master = cluster.var("DBR_S1_MASTER");
    let standby = cluster.var("DBR_S1_STANDBY");
    // Rows of ~1 KiB of random text, doubled until the table holds `mib` MiB.
    let mut d = direct_to(&master, Some("app")).await;
    d.query_drop("CREATE TABLE clone_fill (id BIGINT AUTO_INCREMENT PRIMARY KEY, pad VARCHAR(1024) NOT NULL)")
        .await
        .unwrap();
    d.query_drop("INSERT INTO clone_fill (pad) SELECT REPEAT(MD5(RAND()), 30) FROM seq_1_to_1024")
        .await
        .unwrap();
    let mut rows = 1024u64;
    while rows * 1024 < mib * 1024 * 1024 {
        d.query_drop("INSERT INTO clone_fill (pad) SELECT REPEAT(MD5(RAND()), 30) FROM clone_fill")
            .await
            .unwrap();
        rows *= 2;
    }
    d.query_drop("ANALYZE TABLE clone_fill").await.unwrap();
    let size: Option<u64> = d
        .query_first("SELECT DATA_LENGTH + INDEX_LENGTH FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'app' AND TABLE_NAME = 'clone_fill'")
        .await
        .unwrap();
    let size_mib = size.unwrap_or(0) as f64 / (1024.0 * 1024.0);
    let run = |args: &[&str]| {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--zk", &url, "--config", &config]);
        ctl(&all)
    };
    let mut times: Vec<(&str, f64)> = Vec::new();
    for round in 0..rounds {
        let order = if round % 2 == 0 {
            ["logical", "physical"]
        } else {
            ["physical", "logical"]
        };
        for method in order {
            let (ok, out) = run(&["standby", "remove", "shard1", &standby, "--force"]);
            assert!(ok, "{out}");
            let started = Instant::now();
            let (ok, out) = run(&[
                "standby", "add", "shard1", &standby, "--method", method, "--wipe",
            ]);
            let secs = started.elapsed().as_secs_f64();
            assert!(ok, "{method} add failed:\n{out}");
            times.push((method, secs));
        }
    }
    let median = |method: &str| {
        let mut t: Vec<f64> = times
            .iter()
            .filter(|(m, _)| *m == method)
            .map(|(_, s)| *s)
            .collect();
        t.sort_by(f64::total_cmp);
        t.get(t.len() / 2).copied().unwrap_or(f64::NAN)
    };
    let (logical, physical) = (median("logical"), median("physical"));
    for (method, secs) in [("logical", logical), ("physical", physical)] {
        println!(
            "clone {method}: {rows} rows, {size_mib:.0} MiB of table data, median {secs:.1} s over {rounds} rounds ({:.1} MiB/s), standby add end to end (copy, catch-up, publish)",
            size_mib / secs
        );
    }
    println!(
        "clone ratio: physical is {:.2}x as fast as logical",
        logical / physical
    );
}
