//! The router's health checker: every `health.interval_ms` it probes every master,
//! standby and fenced former master of the current topology, concurrently (one probe task
//! per server, each bounded by `timeouts.connect_ms`), and keeps the latest result per
//! server for `SHOW DBROUTER STATUS` and the admin endpoints. It only observes: it never
//! sends application queries to a standby and never changes a server.
//!
//! A session that cannot connect to a master calls [`HealthRegistry::suspect`], which
//! starts the next probes at once: a crashed master is seen within a round trip, not an
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

/// The shortest gap between two probes of a server that sessions asked for.
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
    /// Starts the next probes now (a session could not reach a master).
    probe_now: Notify,
    /// Told after every probe (one stored permit: a slow reader misses none).
    probed: Notify,
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
        self.probe_now.notify_waiters();
    }

    /// Waits for the next probe result (or one that came unseen).
    pub async fn next_probe(&self) {
        self.probed.notified().await;
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
    /// Time between two probes of a server.
    pub interval: Duration,
    /// Bound on each probe.
    pub timeout: Duration,
    /// TLS to the servers (`[backend.tls]`).
    pub tls: Option<crate::config::BackendTlsSection>,
}

/// Spawns the checker; it runs for the life of the process. Every server has its own
/// probe loop, so a server that answers slowly (a black-holed address waits out the
/// connect timeout) never delays what is learnt about the others; a supervisor starts and
/// stops the loops as servers enter and leave the topology, and follows their roles.
pub fn spawn_checker(
    routing: Arc<ArcSwap<RoutingTable>>,
    registry: Arc<HealthRegistry>,
    settings: CheckerSettings,
) {
    tokio::spawn(async move {
        let roles: Arc<Mutex<HashMap<String, (String, &'static str)>>> = Arc::default();
        let mut loops: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
        loop {
            let table = routing.load_full();
            let mut targets: HashMap<String, (String, &'static str)> = HashMap::new();
            for s in &table.shards {
                for a in &s.rejoin {
                    targets.insert(a.clone(), (s.name.clone(), "needs-rejoin"));
                }
                for a in &s.standbys {
                    targets.insert(a.clone(), (s.name.clone(), "standby"));
                }
                targets.insert(s.master.clone(), (s.name.clone(), "master"));
            }
            registry.retain(&targets.keys().cloned().collect::<Vec<_>>());
            loops.retain(|addr, task| {
                let keep = targets.contains_key(addr) && !task.is_finished();
                if !keep {
                    task.abort();
                }
                keep
            });
            for addr in targets.keys() {
                if !loops.contains_key(addr) {
                    let task = probe_loop(
                        addr.clone(),
                        Arc::clone(&roles),
                        Arc::clone(&registry),
                        settings.clone(),
                    );
                    loops.insert(addr.clone(), tokio::spawn(task));
                }
            }
            *roles.lock().unwrap_or_else(|e| e.into_inner()) = targets;
            tokio::time::sleep(settings.interval).await;
        }
    });
}

/// Probes one server every interval (sooner when a session suspects a master) until it
/// leaves the topology.
async fn probe_loop(
    addr: String,
    roles: Arc<Mutex<HashMap<String, (String, &'static str)>>>,
    registry: Arc<HealthRegistry>,
    settings: CheckerSettings,
) {
    loop {
        let started = Instant::now();
        let health = probe(
            &addr,
            &settings.user,
            &settings.password,
            settings.timeout,
            settings.tls.as_ref(),
        )
        .await;
        let role = roles
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&addr)
            .cloned();
        let Some((shard, role)) = role else { return };
        registry.record(shard, role, health, started);
        registry.probed.notify_one();
        tokio::select! {
            _ = tokio::time::sleep(settings.interval) => {}
            _ = registry.probe_now.notified() => {
                // Many sessions may suspect at once: a probe at most every SOON.
                tokio::time::sleep_until((started + SOON.min(settings.interval)).into()).await;
            }
        }
    }
}
