//! Writers under load for the tests that change masters or kill servers on a
//! `PrivateCluster`: autocommit inserts through a router that record what was
//! acknowledged, the check that every acknowledged row is on the master, and the router
//! and topology helpers such tests share (the same as `failover.rs` keeps for itself).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mysql_async::prelude::*;
use mysql_async::{Conn, Opts};

use super::{admin_opts_at, app_opts, ctl, PrivateCluster, RouterSettings, TestRouter};

/// Users on shard1 (the shard whose master changes) for this router's ring.
pub fn shard1_users(router: &TestRouter, n: usize) -> Vec<u64> {
    let table = router.routing();
    (1u64..)
        .filter(|u| table.shard_for_key(u.to_string().as_bytes()).0 == 0)
        .take(n)
        .collect()
}

/// Creates the `writes` table (userid, seq) on both masters of the cluster.
pub async fn create_writes_table(cluster: &PrivateCluster) {
    for addr in [cluster.var("DBR_S1_MASTER"), cluster.var("DBR_S2_MASTER")] {
        let mut c = Conn::new(Opts::from(admin_opts_at(&addr, Some("app"))))
            .await
            .unwrap();
        c.query_drop("CREATE TABLE IF NOT EXISTS writes (userid BIGINT NOT NULL, seq BIGINT NOT NULL, PRIMARY KEY (userid, seq))")
            .await
            .unwrap();
    }
}

/// Result of one writer: acknowledged sequence numbers, errors, and the latency of each
/// acknowledged insert (a pause shows as one long one).
pub struct WriterLog {
    /// The writer's user id.
    pub user: u64,
    /// Sequence numbers the router acknowledged.
    pub acked: Vec<u64>,
    /// Every failed statement or connect.
    pub errors: Vec<String>,
    /// Latency of each acknowledged insert.
    pub latencies: Vec<Duration>,
}

/// Inserts (user, 1), (user, 2), … through the router until `stop`, reconnecting after
/// errors; records what was acknowledged.
pub fn writer(
    addr: String,
    user: u64,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<WriterLog> {
    tokio::spawn(async move {
        let mut log = WriterLog {
            user,
            acked: Vec::new(),
            errors: Vec::new(),
            latencies: Vec::new(),
        };
        let mut conn: Option<Conn> = None;
        let mut seq = 0u64;
        while !stop.load(Ordering::Relaxed) {
            if conn.is_none() {
                match Conn::new(Opts::from(app_opts(&addr, Some("app")))).await {
                    Ok(c) => conn = Some(c),
                    Err(e) => {
                        log.errors.push(format!("connect: {e}"));
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                }
            }
            let Some(c) = conn.as_mut() else { continue };
            seq += 1;
            let started = Instant::now();
            let result = c
                .exec_drop(
                    "INSERT INTO writes (userid, seq) VALUES (?, ?)",
                    (user, seq),
                )
                .await;
            match result {
                Ok(()) => {
                    log.acked.push(seq);
                    log.latencies.push(started.elapsed());
                }
                Err(e) => {
                    log.errors.push(format!("seq {seq}: {e}"));
                    conn = None;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
        log
    })
}

/// Every acknowledged write must be on `master`; returns how many there were.
pub async fn assert_nothing_lost(master: &str, logs: &[WriterLog]) -> usize {
    let mut c = Conn::new(Opts::from(admin_opts_at(master, Some("app"))))
        .await
        .unwrap();
    let mut total = 0;
    for log in logs {
        let present: HashSet<u64> = c
            .exec::<u64, _, _>("SELECT seq FROM writes WHERE userid = ?", (log.user,))
            .await
            .unwrap()
            .into_iter()
            .collect();
        let lost: Vec<u64> = log
            .acked
            .iter()
            .copied()
            .filter(|s| !present.contains(s))
            .collect();
        assert!(
            lost.is_empty(),
            "user {}: {} acknowledged writes lost, e.g. {:?}",
            log.user,
            lost.len(),
            &lost[..lost.len().min(10)]
        );
        total += log.acked.len();
    }
    total
}

/// The `p`th percentile of `samples` (sorted in place).
pub fn percentile(samples: &mut [Duration], p: usize) -> Duration {
    samples.sort();
    samples
        .get((samples.len() * p / 100).min(samples.len().saturating_sub(1)))
        .copied()
        .unwrap_or_default()
}

/// The master of `shard` in the topology at `url`, read with a session of its own.
pub async fn current_master(url: &str, shard: &str) -> String {
    let store = dbrouter::topology::zk::ZkStore::connect(
        &dbrouter::topology::zk::ZkTarget::parse(url).unwrap(),
        Duration::from_secs(10),
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    let (doc, _) = store.read_topology().await.unwrap();
    doc.shards
        .into_iter()
        .find(|s| s.name == shard)
        .unwrap()
        .master
}

/// A router with these settings (which follow ZooKeeper at `url`), after `ctl topology
/// init` from its config; waits until it listens.
pub fn start_router_from(settings: RouterSettings, url: &str) -> TestRouter {
    let router = TestRouter::spawn(settings);
    let (ok, out) = ctl(&[
        "topology",
        "init",
        "--from",
        router.config_path.to_str().unwrap(),
        "--zk",
        url,
    ]);
    assert!(ok, "{out}");
    router.wait_listening(Duration::from_secs(30));
    router
}
