//! The router's health checker: every `health.interval_ms` it probes every master,
//! standby and fenced former master of the current topology, concurrently (one probe task
//! per server, each bounded by `timeouts.connect_ms`), and keeps the latest result per
//! server for `SHOW DBROUTER STATUS` and the admin endpoints. It only observes: it never
//! sends application queries to a standby and never changes a server.
//!
//! A session that cannot connect to a master calls [`HealthRegistry::suspect`], which
//! starts the next round at once: a crashed master is seen within a round trip, not an
//! interval. For every master the registry keeps since when it has been unreachable and
//! what its last successful probe saw (semi-sync on, GTID position), which is what this
//! router tells the others in ZooKeeper (`backend::opinions`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use tokio::sync::Notify;

use crate::failover::{probe, Health};
use crate::router::RoutingTable;

/// The shortest gap between two rounds that sessions asked for.
const SOON: Duration = Duration::from_millis(100);

/// The latest health of one server.
#[derive(Debug, Clone)]
pub struct ServerHealth {
    /// Shard it belongs to.
    pub shard: String,
    /// `master`, `standby` or `needs-rejoin`.
    pub role: &'static str,
    /// What the probe found.
    pub health: Health,
    /// Probes failed in a row (0 when reachable).
    pub consecutive_failures: u32,
    /// When it was probed.
    pub checked_at: SystemTime,
    /// Since when it has been unreachable without a break (the start of its first failed
    /// probe); `None` while reachable.
    pub down_since: Option<Instant>,
    /// What its last successful probe found, if any probe of this process reached it.
    pub last_reachable: Option<Health>,
}

/// The latest results, by server address.
#[derive(Debug, Default)]
pub struct HealthRegistry {
    servers: Mutex<HashMap<String, ServerHealth>>,
    /// Starts the next round now (a session could not reach a master).
    probe_now: Notify,
    /// Told after every round (one stored permit: a slow reader misses none).
    round_done: Notify,
}

impl HealthRegistry {
    /// All results, sorted by shard, role and address.
    pub fn snapshot(&self) -> Vec<ServerHealth> {
        let map = self.servers.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<ServerHealth> = map.values().cloned().collect();
        out.sort_by(|a, b| {
            (&a.shard, a.role, &a.health.addr).cmp(&(&b.shard, b.role, &b.health.addr))
        });
        out
    }

    /// The latest result for `addr`.
    pub fn get(&self, addr: &str) -> Option<ServerHealth> {
        let map = self.servers.lock().unwrap_or_else(|e| e.into_inner());
        map.get(addr).cloned()
    }

    /// A session could not connect to a master: probe every server now.
    pub fn suspect(&self) {
        self.probe_now.notify_one();
    }

    /// Waits for the end of the next health round (or one that ended unseen).
    pub async fn round_done(&self) {
        self.round_done.notified().await;
    }

    /// Records a probe that started at `started`.
    fn record(&self, shard: String, role: &'static str, health: Health, started: Instant) {
        let mut map = self.servers.lock().unwrap_or_else(|e| e.into_inner());
        let prev = map.get(&health.addr);
        let failures = match prev {
            Some(prev) if !health.reachable => prev.consecutive_failures + 1,
            None if !health.reachable => 1,
            _ => 0,
        };
        let down_since = match prev {
            _ if health.reachable => None,
            Some(ServerHealth {
                down_since: Some(t),
                ..
            }) => Some(*t),
            _ => Some(started),
        };
        let last_reachable = if health.reachable {
            Some(health.clone())
        } else {
            prev.and_then(|p| p.last_reachable.clone())
        };
        map.insert(
            health.addr.clone(),
            ServerHealth {
                shard,
                role,
                health,
                consecutive_failures: failures,
                checked_at: SystemTime::now(),
                down_since,
                last_reachable,
            },
        );
    }

    /// Forgets servers that are no longer in the topology.
    fn retain(&self, addrs: &[String]) {
        let mut map = self.servers.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|addr, _| addrs.contains(addr));
    }
}

/// Who to probe with and how often.
#[derive(Debug, Clone)]
pub struct CheckerSettings {
    /// Account (the routers' service account: it has the monitor privileges it needs).
    pub user: String,
    /// Its password.
    pub password: String,
    /// Time between rounds.
    pub interval: Duration,
    /// Bound on each probe.
    pub timeout: Duration,
    /// TLS to the servers (`[backend.tls]`).
    pub tls: Option<crate::config::BackendTlsSection>,
}

/// Spawns the checker; it runs for the life of the process.
pub fn spawn_checker(
    routing: Arc<ArcSwap<RoutingTable>>,
    registry: Arc<HealthRegistry>,
    settings: CheckerSettings,
) {
    tokio::spawn(async move {
        loop {
            let table = routing.load_full();
            let mut targets: Vec<(String, &'static str, String)> = Vec::new();
            for s in &table.shards {
                targets.push((s.name.clone(), "master", s.master.clone()));
                targets.extend(
                    s.standbys
                        .iter()
                        .map(|a| (s.name.clone(), "standby", a.clone())),
                );
                targets.extend(
                    s.rejoin
                        .iter()
                        .map(|a| (s.name.clone(), "needs-rejoin", a.clone())),
                );
            }
            registry.retain(&targets.iter().map(|t| t.2.clone()).collect::<Vec<_>>());
            let mut probes = Vec::with_capacity(targets.len());
            for (shard, role, addr) in targets {
                let (user, password, timeout, tls) = (
                    settings.user.clone(),
                    settings.password.clone(),
                    settings.timeout,
                    settings.tls.clone(),
                );
                let registry = Arc::clone(&registry);
                probes.push(tokio::spawn(async move {
                    let started = Instant::now();
                    let health = probe(&addr, &user, &password, timeout, tls.as_ref()).await;
                    registry.record(shard, role, health, started);
                }));
            }
            for p in probes {
                let _ = p.await;
            }
            registry.round_done.notify_one();
            tokio::select! {
                _ = tokio::time::sleep(settings.interval) => {}
                _ = registry.probe_now.notified() => {
                    // Many sessions may suspect at once: a round at most every SOON.
                    tokio::time::sleep(SOON.min(settings.interval)).await;
                }
            }
        }
    });
}
