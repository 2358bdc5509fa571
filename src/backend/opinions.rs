//! Publishing this router's opinion of every shard's master in ZooKeeper
//! (`topology::opinions`), after each health probe: written when it changes, and after
//! every probe while the master is down (the growing `down_for_ms` and a fresh
//! modification time tell the coordinator the opinion is current). A healthy cluster
//! therefore costs ZooKeeper no writes; a down master one write per router per
//! `health.interval_ms`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tracing::warn;

use super::health::HealthRegistry;
use crate::router::RoutingTable;
use crate::topology::opinions::OpinionDoc;
use crate::topology::zk::{ZkStore, ZkTarget};

/// Spawns the publisher; it runs for the life of the process.
pub fn spawn_publisher(
    target: ZkTarget,
    (session_timeout, connect_timeout): (Duration, Duration),
    routing: Arc<ArcSwap<RoutingTable>>,
    registry: Arc<HealthRegistry>,
    router_id: String,
    refresh: Duration,
) {
    tokio::spawn(async move {
        let mut store: Option<ZkStore> = None;
        // What was last written per shard, by which ZooKeeper session, and when.
        let mut written: HashMap<String, (OpinionDoc, i64, Instant)> = HashMap::new();
        loop {
            registry.next_probe().await;
            let current = match store.take() {
                Some(s) if !s.client().state().is_terminated() => s,
                _ => match ZkStore::connect(&target, session_timeout, connect_timeout).await {
                    Ok(s) => s,
                    Err(e) => {
                        warn!(error = %e, "health opinions: cannot reach ZooKeeper; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                },
            };
            let session = current.client().session_id().0;
            let table = routing.load_full();
            let now = Instant::now();
            for shard in &table.shards {
                let Some(doc) = opinion_of(&registry, &shard.master, now) else {
                    continue;
                };
                // A down master's opinion is rewritten at most every `refresh` (each
                // server's probe wakes this loop).
                let unchanged = written.get(&shard.name).is_some_and(|(last, s, at)| {
                    *s == session
                        && same_view(last, &doc)
                        && (doc.reachable || at.elapsed() < refresh)
                });
                if unchanged {
                    continue;
                }
                match current.write_opinion(&shard.name, &router_id, &doc).await {
                    Ok(()) => {
                        written.insert(shard.name.clone(), (doc, session, Instant::now()));
                    }
                    Err(e) => {
                        warn!(shard = %shard.name, error = %e, "health opinion not written");
                        written.remove(&shard.name);
                    }
                }
            }
            store = Some(current);
        }
    });
}

/// This router's opinion of `master`, from its latest probe (none before the first).
pub fn opinion_of(registry: &HealthRegistry, master: &str, now: Instant) -> Option<OpinionDoc> {
    let h = registry.get(master)?;
    let down_for_ms = h
        .down_since
        .map(|t| u64::try_from(now.saturating_duration_since(t).as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    let mut doc = OpinionDoc::new(master.to_string(), h.health.reachable, down_for_ms);
    if let Some(ok) = &h.last_reachable {
        doc.semi_sync = Some(ok.semi_sync_master);
        doc.binlog_pos = ok.gtid_binlog_pos.clone();
    }
    doc.error = h.health.last_error.clone().filter(|_| !h.health.reachable);
    Some(doc)
}

/// Whether two opinions of a reachable master say the same (the GTID position moves
/// with every write and is not worth a ZooKeeper write of its own).
fn same_view(a: &OpinionDoc, b: &OpinionDoc) -> bool {
    a.master == b.master && a.reachable == b.reachable && a.semi_sync == b.semi_sync
}
