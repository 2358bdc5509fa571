//! Automatic failover with real semi-sync MariaDB pairs, a real ZooKeeper and two real
//! router processes, on a private cluster per test: `kill -9` of a master under write
//! load is failed over by the coordinator with nobody at the keyboard, no acknowledged
//! write is lost, clients see errors only for statements in flight at the crash, and the
//! old master, restarted, is rejoined as a standby by the coordinator; a master stopped
//! for less than `auto_after_ms` is not failed over; a second loss within
//! `auto_min_interval_ms` disarms the shard until `ctl failover arm`.
//!
//! `DBR_AUTO_FAILOVER_ROUNDS` (default 2) sets how many kill/failover/rejoin rounds the
//! first test runs, alternating shards; `scripts/report-failover` runs 20 and prints the
//! unavailability figures.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mysql_async::prelude::*;
use mysql_async::{Conn, Opts};

use crate::failover::start_router_with;
use crate::harness::*;

/// The `[failover]` lines of these tests' routers.
fn auto_config(min_interval_ms: u64) -> String {
    format!("auto = true\nauto_after_ms = 1500\nauto_min_interval_ms = {min_interval_ms}\n\n[health]\ninterval_ms = 300\n")
}

/// `n` users of the shard at `index` of the router's ring.
fn users_on(router: &TestRouter, index: u16, n: usize) -> Vec<u64> {
    let table = router.routing();
    (1u64..)
        .filter(|u| table.shard_for_key(u.to_string().as_bytes()).0 == index)
        .take(n)
        .collect()
}

/// A second router on the same ZooKeeper root, with the same settings.
fn second_router(cluster: &PrivateCluster, root: &str, extra: &str) -> TestRouter {
    let router = TestRouter::spawn(cluster.router_settings(root, extra));
    router.wait_listening(Duration::from_secs(30));
    router
}

/// Errors a client may see from an automatic failover: the outcome of a statement in
/// flight at the crash is unknown (1158), or its connection broke under it.
fn in_flight_error(e: &str) -> bool {
    e.contains("1158") || e.contains("Input/output error") || e.contains("broken pipe")
}

/// Kills the server at `addr` with SIGKILL; returns its command line to restart it.
fn kill_9(cluster: &PrivateCluster, addr: &str) -> Vec<String> {
    let pid = cluster.server_pid(addr);
    let cmdline = PrivateCluster::cmdline(pid);
    let status = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    cmdline
}

/// Writes one row for `user` through `router` until it succeeds; the time it took.
async fn first_write(router: &TestRouter, user: u64, seq: u64, limit: Duration) -> Duration {
    let started = Instant::now();
    let mut last = String::new();
    while started.elapsed() < limit {
        match Conn::new(Opts::from(app_opts(&router.addr, Some("app")))).await {
            Ok(mut c) => match c
                .exec_drop(
                    "INSERT INTO writes (userid, seq) VALUES (?, ?)",
                    (user, seq),
                )
                .await
            {
                Ok(()) => return started.elapsed(),
                Err(e) => last = e.to_string(),
            },
            Err(e) => last = format!("connect: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let log = std::fs::read_to_string(&router.log).unwrap_or_default();
    let kept =
        std::env::temp_dir().join(format!("auto-failover-router-{}.log", std::process::id()));
    let _ = std::fs::write(&kept, &log);
    println!("router log kept in {}", kept.display());
    let tail: Vec<&str> = log
        .lines()
        .rev()
        .filter(|l| !l.contains("zookeeper_client") && !l.contains(" DEBUG "))
        .take(80)
        .collect();
    panic!(
        "no write for user {user} succeeded within {limit:?}; last error: {last}\nrouter log (newest first):\n{}",
        tail.join("\n")
    );
}

/// Waits until `router`'s health checker has seen semi-sync active on `master` (a master
/// lost before any router saw that is, rightly, not failed over automatically).
async fn wait_semi_sync_seen(router: &TestRouter, master: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(mut c) = Conn::new(Opts::from(app_opts(&router.addr, Some("app")))).await {
            let rows: Vec<(String, Option<String>)> =
                c.query("SHOW DBROUTER STATUS").await.unwrap_or_default();
            let seen = rows.iter().any(|(name, value)| {
                name.contains(master)
                    && value.as_deref().is_some_and(|v| {
                        v.contains("role=master") && v.contains("semi_sync_master=true")
                    })
            });
            if seen {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{} never saw semi-sync active on {master}",
            router.addr
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until `server` is a replicating standby of `shard` again (the coordinator's
/// automatic rejoin); `Err` with the status text if it refused (errant transactions).
async fn wait_rejoined(url: &str, config: &str, shard: &str, server: &str) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (_, out) = ctl(&["status", "--zk", url, "--config", config]);
        let line = out
            .lines()
            .find(|l| l.contains(server))
            .unwrap_or_default()
            .to_string();
        if line.contains("standby") && line.contains("replicating") {
            return Ok(());
        }
        if out.contains("rejoin_refused") {
            return Err(out);
        }
        assert!(
            Instant::now() < deadline,
            "{server} of {shard} was not rejoined automatically:\n{out}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_a_master_is_failed_over_automatically_and_the_old_master_rejoins() {
    let rounds: usize = env_number("DBR_AUTO_FAILOVER_ROUNDS", 2);
    let cluster = PrivateCluster::start("autofail");
    let root = "/dbrouter/autofail";
    let url = format!("zk://{}{root}", cluster.var("DBR_ZK"));
    create_writes_table(&cluster).await;
    // Rounds on one shard follow each other within minutes: no anti-flap here.
    let extra = auto_config(1_000);
    let r1 = start_router_with(&cluster, root, &url, &extra);
    let r2 = second_router(&cluster, root, &extra);
    let config = r1.config_path.to_str().unwrap().to_string();
    let mut unavailable = Vec::new();
    let mut total = 0;
    let mut in_flight_errors = 0;
    for round in 0..rounds {
        let (index, shard) = if round % 2 == 0 {
            (0u16, "shard1")
        } else {
            (1u16, "shard2")
        };
        let stop = Arc::new(AtomicBool::new(false));
        // Fresh users each round (a round on the same shard again writes seq 1, 2, …).
        let all = users_on(&r1, index, 5 * (round / 2 + 1));
        let users = &all[all.len() - 5..];
        let writers: Vec<_> = users[..4]
            .iter()
            .enumerate()
            .map(|(i, u)| {
                let router = if i % 2 == 0 { &r1 } else { &r2 };
                writer(router.addr.clone(), *u, stop.clone())
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(1_000)).await;
        let old = current_master(&url, shard).await;
        wait_semi_sync_seen(&r1, &old).await;
        wait_semi_sync_seen(&r2, &old).await;
        let cmdline = kill_9(&cluster, &old);
        // Nobody runs ctl: the first write after the kill waits for the coordinator.
        let took = first_write(
            &r2,
            users[4],
            1_000_000 + round as u64,
            Duration::from_secs(30),
        )
        .await;
        unavailable.push(took);
        tokio::time::sleep(Duration::from_millis(500)).await;
        stop.store(true, Ordering::Relaxed);
        let mut logs: Vec<WriterLog> = Vec::new();
        for w in writers {
            logs.push(w.await.unwrap());
        }
        let new = current_master(&url, shard).await;
        assert_ne!(new, old, "round {round}: {shard} was not failed over");
        total += assert_nothing_lost(&new, &logs).await;
        for log in &logs {
            for e in &log.errors {
                assert!(
                    in_flight_error(e),
                    "round {round}: a client saw an error other than for a statement in flight: {e}"
                );
                in_flight_errors += 1;
            }
        }
        // The old master comes back (as semi-sync slave, read-only: a crashed master's
        // restart) and the coordinator rejoins it.
        restart_in_slave_role(&cmdline);
        if let Err(out) = wait_rejoined(&url, &config, shard, &old).await {
            // Legitimate only if the killed master logged a transaction no standby
            // received (never acknowledged); every acknowledged write was checked above.
            println!("round {round}: automatic rejoin refused (errant, unacknowledged transaction on the killed master):\n{out}");
            return;
        }
    }
    let mut samples = unavailable.clone();
    println!(
        "automatic failover after kill -9, {rounds} rounds: {total} acknowledged writes, 0 lost; {in_flight_errors} client errors, all for statements in flight; kill to first successful write p50 {:?} p99 {:?} max {:?}",
        percentile(&mut samples, 50),
        percentile(&mut samples, 99),
        samples.iter().max().copied().unwrap_or_default()
    );
    drop(r2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_stopped_for_less_than_auto_after_ms_is_not_failed_over() {
    let cluster = PrivateCluster::start("autoslow");
    let root = "/dbrouter/autoslow";
    let url = format!("zk://{}{root}", cluster.var("DBR_ZK"));
    create_writes_table(&cluster).await;
    let extra = "auto = true\nauto_after_ms = 4000\n\n[health]\ninterval_ms = 300\n";
    let r1 = start_router_with(&cluster, root, &url, extra);
    let _r2 = second_router(&cluster, root, extra);
    let config = r1.config_path.to_str().unwrap().to_string();
    let old = current_master(&url, "shard1").await;
    let pid = cluster.server_pid(&old).to_string();
    let user = users_on(&r1, 0, 1)[0];
    // Stopped for 2 s: every router's probe fails, none for 4 s.
    assert!(std::process::Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .unwrap()
        .success());
    let stopped = Instant::now();
    let write = tokio::spawn({
        let addr = r1.addr.clone();
        async move {
            let mut c = Conn::new(Opts::from(app_opts(&addr, Some("app"))))
                .await
                .unwrap();
            c.exec_drop("INSERT INTO writes (userid, seq) VALUES (?, 1)", (user,))
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    assert!(std::process::Command::new("kill")
        .args(["-CONT", &pid])
        .status()
        .unwrap()
        .success());
    // The write made while it was stopped completes once it runs again.
    let result = write.await.unwrap();
    assert!(result.is_ok(), "{result:?}");
    tokio::time::sleep(Duration::from_millis(4_000)).await;
    assert_eq!(current_master(&url, "shard1").await, old);
    let (_, out) = ctl(&["status", "--zk", &url, "--config", &config]);
    assert!(!out.contains("ALERT"), "{out}");
    println!(
        "master stopped for {:?}: not failed over",
        stopped.elapsed().min(Duration::from_secs(2))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_loss_within_the_interval_disarms_the_shard_until_it_is_armed() {
    let cluster = PrivateCluster::start("autoflap");
    let root = "/dbrouter/autoflap";
    let url = format!("zk://{}{root}", cluster.var("DBR_ZK"));
    create_writes_table(&cluster).await;
    let extra = auto_config(600_000);
    let r1 = start_router_with(&cluster, root, &url, &extra);
    let config = r1.config_path.to_str().unwrap().to_string();
    let user = users_on(&r1, 0, 1)[0];
    first_write(&r1, user, 1, Duration::from_secs(10)).await;

    // First loss: failed over automatically; the old master rejoins.
    let first = current_master(&url, "shard1").await;
    wait_semi_sync_seen(&r1, &first).await;
    let cmdline = kill_9(&cluster, &first);
    first_write(&r1, user, 2, Duration::from_secs(30)).await;
    let second = current_master(&url, "shard1").await;
    assert_ne!(second, first);
    restart_in_slave_role(&cmdline);
    if let Err(out) = wait_rejoined(&url, &config, "shard1", &first).await {
        println!("automatic rejoin refused (errant, unacknowledged transaction):\n{out}");
        return;
    }

    // Second loss within auto_min_interval_ms: not failed over, the shard is disarmed
    // and the alert says why.
    wait_semi_sync_seen(&r1, &second).await;
    let cmdline = kill_9(&cluster, &second);
    let deadline = Instant::now() + Duration::from_secs(30);
    let out = loop {
        let (_, out) = ctl(&["status", "--zk", &url, "--config", &config]);
        if out.contains("DISARMED") && out.contains("ALERT") {
            break out;
        }
        assert!(Instant::now() < deadline, "no anti-flap alert:\n{out}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(out.contains("failover arm shard1"), "{out}");
    assert_eq!(current_master(&url, "shard1").await, second);
    // While disarmed, statements are not held: the client hears at once.
    let started = Instant::now();
    let mut c = Conn::new(Opts::from(app_opts(&r1.addr, Some("app"))))
        .await
        .unwrap();
    let refused = c
        .exec_drop("INSERT INTO writes (userid, seq) VALUES (?, 3)", (user,))
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("1053"), "{refused}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    // Re-armed by an operator: the coordinator fails it over.
    let (ok, out) = ctl(&["failover", "arm", "shard1", "--zk", &url]);
    assert!(ok, "{out}");
    first_write(&r1, user, 4, Duration::from_secs(30)).await;
    let third = current_master(&url, "shard1").await;
    assert_ne!(third, second);
    let (_, out) = ctl(&["status", "--zk", &url, "--config", &config]);
    assert!(!out.contains("DISARMED"), "{out}");
    restart_in_slave_role(&cmdline);
}

/// A master out of connections refuses the routers' probes with ERR 1040: it answered, so
/// it runs, and it is not failed over (found by the transaction-pooling benchmarks, where
/// the pools of several routers filled a master).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_out_of_connections_is_not_failed_over() {
    let cluster = PrivateCluster::start("autofull");
    let root = "/dbrouter/autofull";
    let url = format!("zk://{}{root}", cluster.var("DBR_ZK"));
    create_writes_table(&cluster).await;
    let extra = auto_config(1_000);
    let r1 = start_router_with(&cluster, root, &url, &extra);
    let _r2 = second_router(&cluster, root, &extra);
    let old = current_master(&url, "shard1").await;
    wait_semi_sync_seen(&r1, &old).await;
    let opts_as = |user: &str, password: &str| account_opts_at(&old, user, password);
    let mut admin = Conn::new(opts_as("dbrouter_admin", "admin-secret"))
        .await
        .unwrap();
    admin
        .query_drop("SET GLOBAL max_connections = 10")
        .await
        .unwrap();
    // Full for every account the probes may use (a privileged one gets one more).
    let mut fillers = Vec::new();
    for (user, password) in [
        ("dbrouter", "dbrouter-secret"),
        ("dbrouter_admin", "admin-secret"),
    ] {
        loop {
            match Conn::new(opts_as(user, password)).await {
                Ok(c) => fillers.push(c),
                Err(e) => {
                    assert_eq!(server_error(e).0, 1040);
                    break;
                }
            }
            assert!(fillers.len() < 30, "the master never refused a connection");
        }
    }
    // Refused for well over auto_after_ms (1.5 s), by both routers.
    tokio::time::sleep(Duration::from_millis(6_000)).await;
    let now = current_master(&url, "shard1").await;
    for c in fillers {
        let _ = c.disconnect().await;
    }
    admin
        .query_drop("SET GLOBAL max_connections = 500")
        .await
        .unwrap();
    assert_eq!(now, old, "a master out of connections was failed over");
}
