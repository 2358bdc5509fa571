//! The operator's surface on its own port (`[server] admin_listen`): Prometheus metrics,
//! liveness and readiness for load balancers and orchestrators, and a status page.
//!
//! | path | answers |
//! |---|---|
//! | `/metrics` | Prometheus text ([`crate::metrics`], docs/metrics.md) |
//! | `/healthz` | 200 `ok` while the process runs |
//! | `/readyz` | 200 when clients can be served, else 503 with the reason ([`Admin::readiness`]) |
//! | `/`, `/status` | the HTML status page ([`status`]) |
//! | `/status.json` | the same data as JSON |
//! | `POST /reload` | re-reads the config file ([`reload`]); JSON of the outcome: 200 applied, 422 refused |
//!
//! The admin server never touches the client path: it has its own listener and a small
//! bound on its own connections, reads the router's shared state (routing snapshot,
//! health registry, pools) the same way `SHOW DBROUTER STATUS` does, and its only remote
//! call (the registered routers, from ZooKeeper) is bounded by a short timeout and cached.

pub mod http;
pub mod reload;
pub mod status;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use metrics_exporter_prometheus::PrometheusHandle;

use std::sync::atomic::AtomicUsize;

use arc_swap::ArcSwap;

use crate::backend::health::HealthRegistry;
use crate::backend::Pools;
use crate::config::SharedConfig;
use crate::router::RoutingTable;
use crate::topology::watcher::TopologyStatus;

/// What the admin listener reads from a serving router: the structures its sessions
/// share, never the sessions themselves (the admin imports nothing from the frontend).
#[derive(Debug, Clone)]
pub struct RouterView {
    /// The configuration in force.
    pub config: SharedConfig,
    /// The current routing snapshot.
    pub routing: Arc<ArcSwap<RoutingTable>>,
    /// The latest health of every server.
    pub health: Arc<HealthRegistry>,
    /// Where the topology comes from and how that source is doing.
    pub topology: Arc<TopologyStatus>,
    /// Backend connection pools.
    pub pools: Arc<Pools>,
    /// Statements currently held because their shard is switching masters.
    pub held: Arc<AtomicUsize>,
}

/// The admin listener's address could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr} (server.admin_listen): {source}")]
pub struct BindError {
    /// The address.
    pub addr: String,
    /// The socket error.
    pub source: std::io::Error,
}

/// Where the router is in its life, as far as readiness is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    /// Loading the topology (config file or ZooKeeper).
    LoadingTopology = 0,
    /// Topology loaded; waiting for the global shard's master to accept the service login.
    WaitingForBackend = 1,
    /// The client listener is bound and accepting.
    Serving = 2,
    /// SIGTERM/SIGINT received: the listener is closed, sessions are draining.
    Draining = 3,
}

impl Phase {
    fn from_u8(v: u8) -> Self {
        match v {
            0 => Phase::LoadingTopology,
            1 => Phase::WaitingForBackend,
            2 => Phase::Serving,
            _ => Phase::Draining,
        }
    }

    /// A short name for pages and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Phase::LoadingTopology => "loading-topology",
            Phase::WaitingForBackend => "waiting-for-backend",
            Phase::Serving => "serving",
            Phase::Draining => "draining",
        }
    }
}

/// The admin server's view of the router. The listener reports its phase; the session
/// context (routing, health, pools) is attached once the client listener is bound.
pub struct Admin {
    config: SharedConfig,
    /// Configuration reloads: the last outcome, counts, the restart-only fields pending.
    pub reloads: reload::Reloads,
    phase: AtomicU8,
    ctx: OnceLock<RouterView>,
    prometheus: Option<PrometheusHandle>,
    /// The admin listener's bound address (none when `admin_listen` is unset).
    pub addr: Option<SocketAddr>,
    started: Instant,
    started_wall: SystemTime,
    routers: status::RoutersCache,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin")
            .field("addr", &self.addr)
            .field("phase", &self.phase())
            .finish()
    }
}

/// Starts the admin server if `server.admin_listen` is set (binding it before anything
/// else, so `/healthz` answers and `/readyz` says why not yet during start-up), and
/// installs the metrics recorder. Without `admin_listen` it returns a handle that only
/// tracks the phase, and metrics calls stay no-ops.
pub async fn start(config: &SharedConfig) -> Result<Arc<Admin>, BindError> {
    let listen = config.load().server.admin_listen.clone();
    let Some(listen) = listen else {
        return Ok(Arc::new(Admin::new(Arc::clone(config), None, None)));
    };
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .map_err(|source| BindError {
            addr: listen.clone(),
            source,
        })?;
    let handle = crate::metrics::install();
    let addr = listener.local_addr().ok();
    let admin = Arc::new(Admin::new(Arc::clone(config), Some(handle.clone()), addr));
    http::spawn(listener, Arc::clone(&admin));
    // Histogram samples are buffered until flushed; flush them even if nobody scrapes.
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            crate::metrics::upkeep(&handle);
        }
    });
    tracing::info!(admin = %listen, "admin listener (metrics, health, status) bound");
    Ok(admin)
}

impl Admin {
    /// Whether a request with this `Authorization` header may read everything: always
    /// without `server.admin_token`; else only with `Bearer <token>` (compared in time
    /// independent of where the bytes differ).
    pub fn authorized(&self, authorization: Option<&str>) -> bool {
        let config = self.config.load();
        let Some(token) = config.server.admin_token() else {
            return true;
        };
        let given = authorization
            .and_then(|h| h.strip_prefix("Bearer "))
            .unwrap_or("")
            .trim();
        given.len() == token.len()
            && given
                .bytes()
                .zip(token.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }

    fn new(
        config: SharedConfig,
        prometheus: Option<PrometheusHandle>,
        addr: Option<SocketAddr>,
    ) -> Self {
        Admin {
            config,
            reloads: reload::Reloads::default(),
            phase: AtomicU8::new(Phase::LoadingTopology as u8),
            ctx: OnceLock::new(),
            prometheus,
            addr,
            started: Instant::now(),
            started_wall: SystemTime::now(),
            routers: status::RoutersCache::default(),
        }
    }

    /// Reports a new phase.
    pub fn set_phase(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::Release);
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        Phase::from_u8(self.phase.load(Ordering::Acquire))
    }

    /// The client listener is bound: from now on the status and readiness read `view`.
    pub fn serving(&self, view: RouterView) {
        let _ = self.ctx.set(view);
        self.set_phase(Phase::Serving);
    }

    /// The router's shared structures, once serving.
    fn context(&self) -> Option<&RouterView> {
        self.ctx.get()
    }

    /// `Ok` when the router can serve clients; otherwise every reason it cannot: the
    /// topology is not loaded, the client listener is not bound or is draining, or a
    /// shard's master is unreachable (or not yet checked) per the health checker.
    pub fn readiness(&self) -> Result<(), String> {
        let ctx =
            match (self.phase(), self.context()) {
                (Phase::LoadingTopology, _) => {
                    return Err("starting: the topology is not loaded yet".into())
                }
                (Phase::WaitingForBackend, _) => return Err(
                    "starting: waiting for the global shard's master to accept the service login"
                        .into(),
                ),
                (Phase::Draining, _) => return Err("draining: this router is shutting down".into()),
                (Phase::Serving, None) => {
                    return Err("starting: the client listener is not bound yet".into())
                }
                (Phase::Serving, Some(ctx)) => ctx,
            };
        let config = ctx.config.load();
        let interval = config.health.interval_ms;
        if interval == 0 {
            return Ok(()); // health checks disabled: nothing more to go by
        }
        // A result older than a few rounds means the checker is stuck: do not trust it.
        let max_age = Duration::from_millis(interval.saturating_mul(3))
            + config.timeouts.connect().saturating_mul(2);
        let table = ctx.routing.load();
        let health = ctx.health.snapshot();
        let now = SystemTime::now();
        let mut problems = Vec::new();
        for shard in &table.shards {
            let found = health
                .iter()
                .find(|h| h.role == "master" && h.health.addr == shard.master);
            match found {
                None => problems.push(format!(
                    "shard {} master {} has no health check result yet",
                    shard.name, shard.master
                )),
                Some(h) if !h.health.reachable => problems.push(format!(
                    "shard {} master {} is unreachable: {}",
                    shard.name,
                    shard.master,
                    h.health.last_error.as_deref().unwrap_or("no answer")
                )),
                Some(h) => {
                    let age = now.duration_since(h.checked_at).unwrap_or_default();
                    if age > max_age {
                        problems.push(format!(
                            "shard {} master {} was last checked {:.1} s ago",
                            shard.name,
                            shard.master,
                            age.as_secs_f64()
                        ));
                    }
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::config::Config;

    fn config() -> SharedConfig {
        let text = r#"
[server]
listen = "127.0.0.1:6033"
[backend]
user = "dbrouter"
password = "x"
[[shards]]
name = "s1"
master = "127.0.0.1:3311"
"#;
        Arc::new(ArcSwap::from_pointee(
            Config::parse(text, std::path::Path::new("t.toml")).unwrap(),
        ))
    }

    #[test]
    fn readiness_follows_the_phase() {
        let admin = Admin::new(config(), None, None);
        assert!(admin.readiness().unwrap_err().contains("topology"));
        admin.set_phase(Phase::WaitingForBackend);
        assert!(admin.readiness().unwrap_err().contains("waiting"));
        admin.set_phase(Phase::Serving);
        assert!(admin.readiness().unwrap_err().contains("not bound"));
        admin.set_phase(Phase::Draining);
        assert!(admin.readiness().unwrap_err().contains("draining"));
    }
}
