//! The status page: one snapshot of what this router serves and how its servers are
//! doing ([`Status`]), gathered here and served as JSON (`/status.json`, its serde form)
//! and as HTML (`/`, rendered by the `html` submodule, which escapes every value).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::Admin;
use crate::backend::health::ServerHealth;
use crate::metrics as m;
use crate::topology::zk::ZkStore;

/// Seconds the page waits before reloading itself.
pub const REFRESH_SECS: u32 = 5;
/// How long the registered routers read from ZooKeeper are reused.
const ROUTERS_TTL: Duration = Duration::from_secs(10);
/// Bound on reading them.
const ROUTERS_TIMEOUT: Duration = Duration::from_secs(2);

/// Everything the page shows.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// This process.
    pub router: RouterStatus,
    /// The topology it serves.
    pub topology: TopologyStatusView,
    /// Shards in ring order.
    pub shards: Vec<ShardStatus>,
    /// Routers registered in ZooKeeper (ZooKeeper topology only).
    pub routers: Option<RoutersView>,
    /// Configuration reloads: the last one, and restart-only changes pending.
    pub config: super::reload::ReloadStatus,
}

/// This process.
#[derive(Debug, Clone, Serialize)]
pub struct RouterStatus {
    /// dbrouter version.
    pub version: String,
    /// Client listen address.
    pub listen: String,
    /// Admin listen address.
    pub admin: Option<String>,
    /// Phase (`loading-topology`, `waiting-for-backend`, `serving`, `draining`).
    pub phase: String,
    /// Whether `/readyz` answers 200.
    pub ready: bool,
    /// Why not, if not.
    pub not_ready_reason: Option<String>,
    /// Seconds since start.
    pub uptime_seconds: u64,
    /// Client connections open now.
    pub client_connections: i64,
    /// Statements held now for switching shards.
    pub held_statements: usize,
    /// `pool.mode`: `session` or `transaction`.
    pub pool_mode: String,
    /// Sessions tied to their backend connections in transaction pooling, by reason
    /// (docs/sharding.md, "Pool modes"); reasons with none are left out.
    pub pinned_sessions: std::collections::BTreeMap<&'static str, usize>,
    /// When this snapshot was taken (ms since the Unix epoch).
    pub generated_at_ms: u64,
}

/// The topology source and version.
#[derive(Debug, Clone, Serialize)]
pub struct TopologyStatusView {
    /// `file` or the ZooKeeper target.
    pub source: String,
    /// Version served (0 before the topology is loaded or for a file topology).
    pub version: u64,
    /// ZooKeeper session state (`none` for a file topology).
    pub zookeeper_state: String,
    /// The last refused document or connection error.
    pub last_error: Option<String>,
    /// Users placed by an override.
    pub overridden_users: usize,
    /// Users whose statements a move holds now.
    pub held_users: usize,
    /// Cut off from ZooKeeper for longer than `topology.stale_serving_ms` (refusing).
    pub stale: bool,
}

/// One shard.
#[derive(Debug, Clone, Serialize)]
pub struct ShardStatus {
    /// Name.
    pub name: String,
    /// Master epoch.
    pub epoch: u64,
    /// Ring weight.
    pub weight: u32,
    /// Switching masters (statements held).
    pub switching: bool,
    /// The master.
    pub master: ServerStatus,
    /// Hot standbys.
    pub standbys: Vec<ServerStatus>,
    /// Former masters waiting for a rejoin (never routed to).
    pub rejoin_pending: Vec<ServerStatus>,
    /// This router's pool to the master.
    pub pool: PoolStatus,
}

/// A master's pool in this router.
#[derive(Debug, Clone, Serialize)]
pub struct PoolStatus {
    /// Connections lent to sessions or being opened.
    pub in_use: usize,
    /// Idle connections.
    pub idle: usize,
    /// Checkouts waiting for a connection now.
    pub waiting: usize,
    /// `pool.max_per_shard`.
    pub max: usize,
}

/// One server as the health checker last saw it.
#[derive(Debug, Clone, Serialize)]
pub struct ServerStatus {
    /// `host:port`.
    pub addr: String,
    /// `master`, `standby` or `needs-rejoin`.
    pub role: String,
    /// Summary: `ok`, `FENCED (read_only)`, `DOWN`, `replicating`, `NOT REPLICATING`,
    /// `fenced, needs rejoin`, `WRITABLE`, `unknown`.
    pub state: String,
    /// `ok`, `warn` or `bad` (for colours and alerts).
    pub severity: &'static str,
    /// Whether the checker has a result for it.
    pub checked: bool,
    /// Reachable at the last probe.
    pub reachable: bool,
    /// `@@read_only`.
    pub read_only: bool,
    /// Round trip of the probe, milliseconds.
    pub rtt_ms: f64,
    /// `Seconds_Behind_Master`.
    pub lag_seconds: Option<u64>,
    /// Replication IO thread running.
    pub io_running: bool,
    /// Replication SQL thread running.
    pub sql_running: bool,
    /// Semi-sync master side on.
    pub semi_sync_master: bool,
    /// Semi-sync slave side on.
    pub semi_sync_slave: bool,
    /// `@@gtid_current_pos`.
    pub gtid_current_pos: String,
    /// Probes failed in a row.
    pub consecutive_failures: u32,
    /// The last error.
    pub last_error: Option<String>,
    /// Milliseconds since the last probe.
    pub checked_ago_ms: Option<u64>,
}

/// The routers registered in ZooKeeper.
#[derive(Debug, Clone, Serialize)]
pub struct RoutersView {
    /// The topology version in ZooKeeper.
    pub current_version: u64,
    /// One per router.
    pub routers: Vec<RouterEntry>,
    /// Why they could not be read, if so.
    pub error: Option<String>,
    /// Age of this reading (it is cached briefly), milliseconds.
    pub read_ago_ms: u64,
}

/// One registered router.
#[derive(Debug, Clone, Serialize)]
pub struct RouterEntry {
    /// Router id.
    pub id: String,
    /// Its client address.
    pub address: String,
    /// Its build.
    pub build: String,
    /// Topology version it serves.
    pub applied_version: u64,
    /// How many versions behind ZooKeeper it is.
    pub behind_by: u64,
    /// When it applied it (ms since the Unix epoch).
    pub applied_at_ms: u64,
}

/// The last reading of the registered routers.
#[derive(Default)]
pub(super) struct RoutersCache {
    last: tokio::sync::Mutex<Option<(Instant, RoutersView)>>,
}

impl RoutersCache {
    /// The routers, read again if the last reading is older than the TTL. One reader at a
    /// time (the mutex): concurrent page loads share the reading.
    async fn get(&self, target: &crate::topology::zk::ZkTarget) -> RoutersView {
        let mut last = self.last.lock().await;
        if let Some((at, view)) = last.as_ref() {
            if at.elapsed() < ROUTERS_TTL {
                let mut view = view.clone();
                view.read_ago_ms = millis(at.elapsed());
                return view;
            }
        }
        let view = read_routers(target).await;
        *last = Some((Instant::now(), view.clone()));
        view
    }
}

/// Reads the registrations with a session of its own, bounded by `ROUTERS_TIMEOUT`; the
/// session is closed when the store is dropped.
async fn read_routers(target: &crate::topology::zk::ZkTarget) -> RoutersView {
    let work = async {
        let store = ZkStore::connect(target, ROUTERS_TIMEOUT * 2, ROUTERS_TIMEOUT).await?;
        let current = store.read_version().await?.map_or(0, |v| v.0);
        let routers = store.routers().await?;
        Ok::<_, crate::topology::TopologyError>((current, routers))
    };
    match tokio::time::timeout(ROUTERS_TIMEOUT, work).await {
        Ok(Ok((current, routers))) => RoutersView {
            current_version: current,
            routers: routers
                .into_iter()
                .map(|r| RouterEntry {
                    behind_by: current.saturating_sub(r.applied_version),
                    id: r.id,
                    address: r.address,
                    build: r.build,
                    applied_version: r.applied_version,
                    applied_at_ms: r.applied_at_ms,
                })
                .collect(),
            error: None,
            read_ago_ms: 0,
        },
        Ok(Err(e)) => routers_error(e.to_string()),
        Err(_) => routers_error(format!(
            "ZooKeeper did not answer within {ROUTERS_TIMEOUT:?}"
        )),
    }
}

fn routers_error(error: String) -> RoutersView {
    RoutersView {
        current_version: 0,
        routers: Vec::new(),
        error: Some(error),
        read_ago_ms: 0,
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

use crate::topology::now_ms;

/// Summary of a server's health: (state, severity), worded as `dbrouter ctl status`.
fn server_state(role: &str, h: Option<&ServerHealth>) -> (&'static str, &'static str) {
    let Some(h) = h else {
        return ("unknown (not checked yet)", "warn");
    };
    let x = &h.health;
    if !x.reachable {
        return ("DOWN", "bad");
    }
    match role {
        "master" if x.read_only => ("FENCED (read_only)", "warn"),
        "master" => ("ok", "ok"),
        "needs-rejoin" if x.read_only => ("fenced, needs rejoin", "warn"),
        "needs-rejoin" => ("WRITABLE", "bad"),
        _ if x.io_running && x.sql_running => ("replicating", "ok"),
        _ => ("NOT REPLICATING", "bad"),
    }
}

fn server_status(role: &str, addr: &str, health: &[ServerHealth], now: SystemTime) -> ServerStatus {
    let h = health.iter().find(|h| h.health.addr == addr);
    let (state, severity) = server_state(role, h);
    let x = h.map(|h| &h.health);
    ServerStatus {
        addr: addr.to_string(),
        role: role.to_string(),
        state: state.to_string(),
        severity,
        checked: h.is_some(),
        reachable: x.is_some_and(|x| x.reachable),
        read_only: x.is_some_and(|x| x.read_only),
        rtt_ms: x.map_or(0.0, |x| x.rtt_us as f64 / 1000.0),
        lag_seconds: x.and_then(|x| x.lag_seconds),
        io_running: x.is_some_and(|x| x.io_running),
        sql_running: x.is_some_and(|x| x.sql_running),
        semi_sync_master: x.is_some_and(|x| x.semi_sync_master),
        semi_sync_slave: x.is_some_and(|x| x.semi_sync_slave),
        gtid_current_pos: x.map(|x| x.gtid_current_pos.clone()).unwrap_or_default(),
        consecutive_failures: h.map_or(0, |h| h.consecutive_failures),
        last_error: x.and_then(|x| x.last_error.clone()),
        checked_ago_ms: h.map(|h| millis(now.duration_since(h.checked_at).unwrap_or_default())),
    }
}

impl Admin {
    /// A snapshot of everything the status page shows. With `routers`, the registered
    /// routers are read from ZooKeeper (cached, bounded); `/metrics` does without.
    pub async fn status(&self, routers: bool) -> Status {
        let phase = self.phase();
        let readiness = self.readiness();
        let ctx = self.context();
        let config = self.config.load_full();
        let (source, condition) = match ctx {
            Some(c) => (c.topology.source.clone(), Some(c.topology.condition())),
            None => (config.topology.source.clone(), None),
        };
        let mut shards = Vec::new();
        let mut version = 0;
        let mut overridden_users = 0;
        let mut held_users = 0;
        let mut stale = false;
        let mut held = 0;
        if let Some(ctx) = ctx {
            let table = ctx.routing.load_full();
            version = table.version;
            overridden_users = table.override_count();
            held_users = table.held_count();
            stale = ctx.topology.is_stale();
            held = ctx.held.load(std::sync::atomic::Ordering::Relaxed);
            let health = ctx.health.snapshot();
            let now = SystemTime::now();
            for s in &table.shards {
                shards.push(ShardStatus {
                    name: s.name.clone(),
                    epoch: s.epoch,
                    weight: s.weight,
                    switching: s.switching,
                    master: server_status("master", &s.master, &health, now),
                    standbys: s
                        .standbys
                        .iter()
                        .map(|a| server_status("standby", a, &health, now))
                        .collect(),
                    rejoin_pending: s
                        .rejoin
                        .iter()
                        .map(|a| server_status("needs-rejoin", a, &health, now))
                        .collect(),
                    pool: PoolStatus {
                        in_use: ctx.pools.in_use(&s.master),
                        idle: ctx.pools.idle_count(&s.master),
                        waiting: ctx.pools.waiting(&s.master),
                        max: ctx.pools.max_per_master(),
                    },
                });
            }
        }
        let routers = match (routers, crate::topology::zk::ZkTarget::of(&config.topology)) {
            (true, Some(target)) => Some(self.routers.get(&target).await),
            _ => None,
        };
        Status {
            router: RouterStatus {
                version: env!("CARGO_PKG_VERSION").to_string(),
                listen: config.server.listen.clone(),
                admin: self.addr.map(|a| a.to_string()),
                phase: phase.name().to_string(),
                ready: readiness.is_ok(),
                not_ready_reason: readiness.err(),
                uptime_seconds: self.started.elapsed().as_secs(),
                client_connections: m::open_connections(),
                held_statements: held,
                pool_mode: match config.pool.mode {
                    crate::config::PoolMode::Session => "session",
                    crate::config::PoolMode::Transaction => "transaction",
                }
                .to_string(),
                pinned_sessions: m::pinned_sessions()
                    .into_iter()
                    .filter(|(_, n)| *n > 0)
                    .collect(),
                generated_at_ms: now_ms(),
            },
            topology: TopologyStatusView {
                source,
                version,
                zookeeper_state: match &condition {
                    Some(c) => c.state,
                    None if crate::topology::zk::ZkTarget::of(&config.topology).is_some() => {
                        "connecting"
                    }
                    None => "none",
                }
                .to_string(),
                last_error: condition.and_then(|c| c.last_error),
                overridden_users,
                held_users,
                stale,
            },
            shards,
            routers,
            config: self.reloads.status(),
        }
    }

    /// The `/metrics` body: the recorded events, then this moment's state gauges.
    pub async fn metrics_text(&self) -> String {
        let status = self.status(false).await;
        let g = m::StateGauges::new();
        g.set(m::BUILD_INFO, &[("version", &status.router.version)], 1.0);
        let start = self
            .started_wall
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        g.set(m::START_TIME, &[], start.as_secs_f64());
        g.set(m::READY, &[], f64::from(u8::from(status.router.ready)));
        g.set(m::CONNECTIONS, &[], status.router.client_connections as f64);
        g.set(m::HELD, &[], status.router.held_statements as f64);
        for (reason, n) in m::pinned_sessions() {
            g.set(m::SESSIONS_PINNED, &[("reason", reason)], n as f64);
        }
        g.set(m::TOPOLOGY_VERSION, &[], status.topology.version as f64);
        g.set(m::OVERRIDES, &[], status.topology.overridden_users as f64);
        g.set(m::HELD_USERS, &[], status.topology.held_users as f64);
        g.set(m::STALE, &[], f64::from(u8::from(status.topology.stale)));
        for state in ["connected", "disconnected", "expired", "connecting", "none"] {
            let on = status.topology.zookeeper_state == state;
            g.set(m::ZK_STATE, &[("state", state)], f64::from(u8::from(on)));
        }
        let max = self.context().map(|c| c.pools.max_per_master());
        let max = max.unwrap_or(self.config.load().pool.max_per_shard);
        g.set(m::POOL_MAX, &[], max as f64);
        let reloads = &status.config;
        let last_ok = reloads.last.as_ref().is_none_or(|l| l.ok);
        g.set(m::CONFIG_LAST_RELOAD_OK, &[], f64::from(u8::from(last_ok)));
        if let Some(ms) = reloads.last_success_ms {
            g.set(m::CONFIG_LAST_RELOAD_SUCCESS, &[], ms as f64 / 1000.0);
        }
        g.set(
            m::CONFIG_NEEDS_RESTART,
            &[],
            reloads.needs_restart.len() as f64,
        );
        for s in &status.shards {
            let shard = [("shard", s.name.as_str())];
            g.set(m::SHARD_EPOCH, &shard, s.epoch as f64);
            g.set(m::SHARD_SWITCHING, &shard, f64::from(u8::from(s.switching)));
            let pool = [("shard", s.name.as_str()), ("addr", s.master.addr.as_str())];
            g.set(m::POOL_IN_USE, &pool, s.pool.in_use as f64);
            g.set(m::POOL_IDLE, &pool, s.pool.idle as f64);
            g.set(m::POOL_WAITING, &pool, s.pool.waiting as f64);
            let servers = std::iter::once(&s.master)
                .chain(&s.standbys)
                .chain(&s.rejoin_pending);
            for x in servers.filter(|x| x.checked) {
                let labels = [
                    ("shard", s.name.as_str()),
                    ("role", x.role.as_str()),
                    ("addr", x.addr.as_str()),
                ];
                let flag = |b: bool| f64::from(u8::from(b));
                g.set(m::SERVER_UP, &labels, flag(x.reachable));
                g.set(
                    m::SERVER_FAILURES,
                    &labels,
                    f64::from(x.consecutive_failures),
                );
                if !x.reachable {
                    continue;
                }
                g.set(m::SERVER_READ_ONLY, &labels, flag(x.read_only));
                g.set(
                    m::SERVER_SEMI_SYNC_MASTER,
                    &labels,
                    flag(x.semi_sync_master),
                );
                g.set(m::SERVER_SEMI_SYNC_SLAVE, &labels, flag(x.semi_sync_slave));
                g.set(
                    m::SERVER_REPLICATING,
                    &labels,
                    flag(x.io_running && x.sql_running),
                );
                g.set(m::SERVER_RTT, &labels, x.rtt_ms / 1000.0);
                if let Some(lag) = x.lag_seconds {
                    g.set(m::SERVER_LAG, &labels, lag as f64);
                }
            }
        }
        let mut text = m::render_events(self.prometheus.as_ref());
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&g.render());
        text
    }
}

mod html;
pub use html::{escape, render_html};

#[cfg(test)]
mod tests;
