//! A three-node ZooKeeper ensemble (`DBR_ZK_NODES=3 scripts/dev-cluster up`) under a real
//! router and real semi-sync MariaDB pairs, on a private cluster per test: losing one node
//! — the leader, killed with `kill -9` — costs nothing. Writers through the router see no
//! error and lose no acknowledged row while the leader dies, a new one is elected and the
//! old one rejoins; the router's ZooKeeper session moves to a surviving node and stays
//! the same session; operator commands work with a node frozen (it accepts connections
//! and never answers); and with the node down a planned switchover succeeds and the
//! router follows it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mysql_async::prelude::*;
use mysql_async::{Conn, Opts, Row};

use crate::harness::*;

/// The router's ZooKeeper session timeout here: the default of `[topology]` (and of the
/// dev cluster), within which the client library must reach another node.
const SESSION_TIMEOUT_MS: u64 = 10_000;

/// A 3-node cluster, the `writes` table, and a router following the ensemble (its URL
/// names all three nodes) at `root`.
async fn ensemble_with_router(tag: &str) -> (PrivateCluster, String, TestRouter) {
    let cluster = PrivateCluster::start_with_zk_nodes(tag, 3);
    let root = format!("/dbrouter/{tag}");
    let url = format!("zk://{}{root}", cluster.var("DBR_ZK"));
    assert_eq!(
        url.matches("127.0.0.1:").count(),
        3,
        "the URL names every node: {url}"
    );
    cluster.wait_zk_all_serving();
    create_writes_table(&cluster).await;
    let settings = cluster.router_settings_with_session(&root, "", SESSION_TIMEOUT_MS);
    let router = start_router_from(settings, &url);
    (cluster, url, router)
}

/// Column `name` of `SHOW DBROUTER ROUTE FOR user` through the router.
async fn route(c: &mut Conn, user: u64, name: &str) -> String {
    let row: Row = c
        .query_first(format!("SHOW DBROUTER ROUTE FOR {user}"))
        .await
        .unwrap()
        .unwrap();
    row.get::<String, _>(name).unwrap()
}

/// Waits up to 10 s until the router routes `user` with column `name` = `want`.
async fn wait_route(c: &mut Conn, user: u64, name: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = route(c, user, name).await;
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "user {user}: {name} is {got}, expected {want}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits up to `within` for a line of the router's log.
fn wait_log(router: &TestRouter, line: &str, within: Duration) {
    let deadline = Instant::now() + within;
    while !router.log_text().contains(line) {
        assert!(
            Instant::now() < deadline,
            "no {line:?} in the router's log within {within:?}:\n{}",
            router.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Seconds between the first log lines containing `from` and then `to` (the log's
/// RFC 3339 timestamps; within one day).
fn log_interval(log: &str, from: &str, to: &str) -> Option<f64> {
    let at = |needle: &str, after: usize| {
        log.lines().enumerate().skip(after).find_map(|(i, l)| {
            if !l.contains(needle) {
                return None;
            }
            let clock = l.split_once('T')?.1.split_once('Z')?.0;
            let mut parts = clock.split(':').map(|p| p.parse::<f64>().ok());
            let (h, m, s) = (parts.next()??, parts.next()??, parts.next()??);
            Some((i, h * 3600.0 + m * 60.0 + s))
        })
    };
    let (i, start) = at(from, 0)?;
    let (_, end) = at(to, i)?;
    Some((end - start).rem_euclid(86_400.0))
}

/// Stops the writers and asserts none saw an error.
async fn stop_writers(
    stop: &AtomicBool,
    writers: Vec<tokio::task::JoinHandle<WriterLog>>,
) -> Vec<WriterLog> {
    stop.store(true, Ordering::Relaxed);
    let mut logs = Vec::new();
    for w in writers {
        logs.push(w.await.unwrap());
    }
    for log in &logs {
        assert!(
            log.errors.is_empty(),
            "user {}: {} failed statements, e.g. {:?}",
            log.user,
            log.errors.len(),
            &log.errors[..log.errors.len().min(3)]
        );
    }
    logs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_zookeeper_leader_under_write_load_fails_no_statement_and_loses_no_write() {
    let (cluster, url, router) = ensemble_with_router("zkleader").await;
    let config = router.config_path.to_str().unwrap().to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = shard1_users(&router, 4)
        .into_iter()
        .map(|u| writer(router.addr.clone(), u, stop.clone()))
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;

    // kill -9 of the leader: its peers hold an election, every client is disconnected
    // (followers drop theirs while they have no leader) and reconnects to a survivor.
    let leader = cluster.zk_leader();
    let killed_at = Instant::now();
    cluster.zk_kill9(leader);
    let new_leader = cluster.zk_leader();
    let elected_after = killed_at.elapsed();
    assert_ne!(new_leader, leader);
    wait_log(
        &router,
        "ZooKeeper reconnected",
        Duration::from_millis(SESSION_TIMEOUT_MS),
    );
    // The same session, moved to another node: no expiry, no new session.
    let log = router.log_text();
    let outage = log_interval(&log, "ZooKeeper disconnected", "ZooKeeper reconnected")
        .map_or("?".to_string(), |s| format!("{:.0} ms", s * 1000.0));
    assert!(
        !log.contains("new ZooKeeper session") && !log.contains("ZooKeeper session ended"),
        "the router's ZooKeeper session did not survive:\n{log}"
    );

    // Down for a few seconds of writes, then back: it rejoins as a follower.
    tokio::time::sleep(Duration::from_secs(3)).await;
    cluster.zk_start(leader);
    cluster.wait_zk_all_serving();
    assert_eq!(cluster.zk_mode(leader).as_deref(), Some("follower"));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let logs = stop_writers(&stop, writers).await;
    let total = assert_nothing_lost(&cluster.var("DBR_S1_MASTER"), &logs).await;
    assert!(total > 100, "too few writes: {total}");

    // The router still follows the topology: a pin written now reaches it.
    let user = 4_242_424_242u64;
    let mut c = router.app_conn(Some("app")).await;
    let ring_shard = route(&mut c, user, "shard").await;
    let other = if ring_shard == "shard1" {
        "shard2"
    } else {
        "shard1"
    };
    let user_arg = user.to_string();
    let (ok, out) = ctl(&[
        "user",
        "pin",
        &user_arg,
        other,
        "--no-data-check",
        "--zk",
        &url,
        "--config",
        &config,
    ]);
    assert!(ok, "{out}");
    wait_route(&mut c, user, "shard", other).await;

    // A node that accepts connections but never answers (frozen; or cut off by the
    // network): operator commands still work — the client gives it its connect timeout
    // and moves on to the next node.
    let follower = (1..=3).find(|n| *n != new_leader).unwrap();
    let frozen = cluster.zk_freeze(follower);
    for _ in 0..6 {
        let started = Instant::now();
        let (ok, out) = ctl(&["topology", "show", "--zk", &url, "--config", &config]);
        assert!(
            ok,
            "ctl with node {follower} frozen failed after {:?}:\n{out}",
            started.elapsed()
        );
    }
    drop(frozen);

    let mut latencies: Vec<Duration> = logs
        .iter()
        .flat_map(|l| l.latencies.iter().copied())
        .collect();
    println!(
        "kill -9 of ZooKeeper leader node {leader}: a new leader (node {new_leader}) within {elected_after:.1?}; the router's ZooKeeper connection was down {outage} (same session); {total} acknowledged writes, 0 lost, 0 errors; write latency p50 {:?}, p99 {:?}, max {:?}",
        percentile(&mut latencies, 50),
        percentile(&mut latencies, 99),
        latencies.iter().max().copied().unwrap_or_default()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_one_zookeeper_node_down_a_switchover_succeeds_and_the_router_follows_it() {
    let (cluster, url, router) = ensemble_with_router("zkswitch").await;
    let config = router.config_path.to_str().unwrap().to_string();
    let users = shard1_users(&router, 4);
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = users
        .iter()
        .map(|u| writer(router.addr.clone(), *u, stop.clone()))
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;

    let down = cluster.zk_leader();
    cluster.zk_kill9(down);
    assert_ne!(cluster.zk_leader(), down);
    let old = current_master(&url, "shard1").await;

    // The operator's URL still names the dead node: the client skips it.
    let (ok, out) = ctl(&["promote", "shard1", "--zk", &url, "--config", &config]);
    assert!(ok, "promote with ZooKeeper node {down} down failed:\n{out}");
    assert!(out.contains("published"), "{out}");
    let new = current_master(&url, "shard1").await;
    assert_ne!(new, old);

    // The router follows: shard1's users go to the new master.
    let mut c = router.app_conn(Some("app")).await;
    wait_route(&mut c, users[0], "master", &new).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let logs = stop_writers(&stop, writers).await;
    let total = assert_nothing_lost(&new, &logs).await;
    assert!(total > 50, "too few writes: {total}");
    // Writes after the switchover landed on the new master: the old one is fenced
    // (read_only, which the router's accounts cannot write through).
    c.exec_drop(
        "INSERT INTO writes (userid, seq) VALUES (?, ?)",
        (users[0], 1_000_000u64),
    )
    .await
    .unwrap();
    let mut on_new = Conn::new(Opts::from(admin_opts_at(&new, Some("app"))))
        .await
        .unwrap();
    let found: Option<u64> = on_new
        .exec_first(
            "SELECT seq FROM writes WHERE userid = ? AND seq = 1000000",
            (users[0],),
        )
        .await
        .unwrap();
    assert_eq!(found, Some(1_000_000));
    let mut on_old = Conn::new(Opts::from(admin_opts_at(&old, None)))
        .await
        .unwrap();
    let read_only: Option<i64> = on_old.query_first("SELECT @@read_only").await.unwrap();
    assert_eq!(read_only, Some(1), "the old master {old} is not fenced");

    // The node that missed the switchover catches up when it rejoins.
    cluster.zk_start(down);
    cluster.wait_zk_all_serving();
    let only_it = format!("zk://{}/dbrouter/zkswitch", cluster.zk_addr(down));
    assert_eq!(current_master(&only_it, "shard1").await, new);
    println!(
        "switchover with ZooKeeper node {down} down: {old} -> {new}; {total} acknowledged writes, 0 lost, 0 errors"
    );
}
