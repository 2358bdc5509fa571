//! The router's health checker: every `health.interval_ms` it probes every master,
//! standby and fenced former master of the current topology, concurrently (one probe task
//! per server, each bounded by `timeouts.connect_ms`), and keeps the latest result per
//! server for `SHOW DBROUTER STATUS` and the admin endpoints. It only observes: it never
//! sends application queries to a standby and never changes a server.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;

use crate::failover::{probe, Health};
use crate::router::RoutingTable;

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
}

/// The latest results, by server address.
#[derive(Debug, Default)]
pub struct HealthRegistry {
    servers: Mutex<HashMap<String, ServerHealth>>,
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

    fn record(&self, shard: String, role: &'static str, health: Health) {
        let mut map = self.servers.lock().unwrap_or_else(|e| e.into_inner());
        let failures = match map.get(&health.addr) {
            Some(prev) if !health.reachable => prev.consecutive_failures + 1,
            None if !health.reachable => 1,
            _ => 0,
        };
        map.insert(
            health.addr.clone(),
            ServerHealth {
                shard,
                role,
                health,
                consecutive_failures: failures,
                checked_at: SystemTime::now(),
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
                    let health = probe(&addr, &user, &password, timeout, tls.as_ref()).await;
                    registry.record(shard, role, health);
                }));
            }
            for p in probes {
                let _ = p.await;
            }
            tokio::time::sleep(settings.interval).await;
        }
    });
}
