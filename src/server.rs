//! The composition root: `dbrouter serve` builds what the router runs with — the admin
//! listener, the topology (file or ZooKeeper, followed), the readiness wait for the
//! global shard's master, the backend pools, the health checker, the pool sweeper, the
//! wake-up queue and the coordinator (hibernated users), the shared session context and
//! the serving threads — and hands them to the client
//! listener ([`crate::frontend::listener`]). Nothing below this module builds its own
//! collaborators.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use mysql_common::constants::MariadbCapabilities;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tracing::{info, warn};

use crate::admin::reload::ReloadOutcome;
use crate::backend::health::{self, CheckerSettings, HealthRegistry};
use crate::backend::{self, BackendError, LoginOptions, PoolLimits, Pools};
use crate::config::reload::{self, Changes};
use crate::config::{Config, SharedConfig};
use crate::frontend::accounts::AccountDirectory;
use crate::frontend::drain::DrainSignal;
use crate::frontend::listener::accept_until_signal;
use crate::frontend::login_limits::LoginLimits;
use crate::frontend::session::SessionContext;
use crate::frontend::workers::Workers;
use crate::net::{PreparedTls, Slots, TlsConfig};
use crate::protocol::handshake::offered_mariadb_capabilities;
use crate::router::ring::RingError;
use crate::router::RoutingTable;
use crate::topology::wakeups::WakeupQueue;
use crate::topology::watcher::{self, FollowerSettings, TopologyStatus};
use crate::topology::{RouterDoc, TopologyError, SCHEMA};

/// Why `serve` stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The backend never became reachable within `timeouts.startup_ms`.
    #[error("backend not ready after {after:?}: {last}")]
    NotReady {
        /// The start-up timeout.
        after: Duration,
        /// The last failure.
        last: BackendError,
    },
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The configured address.
        addr: String,
        /// The socket error.
        source: std::io::Error,
    },
    /// Signal handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    /// The serving threads could not be started.
    #[error("cannot start the serving threads (server.worker_threads): {0}")]
    Workers(std::io::Error),
    /// The shard ring could not be built.
    #[error("invalid sharding configuration: {0}")]
    Ring(#[from] RingError),
    /// No topology could be loaded.
    #[error("no topology: {0}")]
    Topology(#[from] TopologyError),
    /// `[server.tls]` names files that cannot serve TLS.
    #[error("server.tls: {0}")]
    Tls(#[from] crate::net::tls::TlsError),
}

/// Facts learned from the backend before accepting clients.
struct BackendFacts {
    server_version: String,
    collation: u8,
    mariadb_capabilities: MariadbCapabilities,
}

/// Waits until the global shard's master accepts the service login.
async fn wait_until_ready(
    config: &Config,
    routing: &RoutingTable,
    tls: Option<&crate::net::BackendTls>,
) -> Result<BackendFacts, ServeError> {
    let shard = routing
        .shard(routing.global_shard())
        .ok_or(ServeError::Topology(TopologyError::Invalid {
            what: "topology".into(),
            reason: "no global shard".into(),
        }))?;
    let opts = LoginOptions {
        user: config.backend.user.clone(),
        password: config.backend.password().to_string(),
        ..LoginOptions::default()
    };
    let deadline = tokio::time::Instant::now() + config.timeouts.startup();
    loop {
        match backend::connect(&shard.master, &opts, config.timeouts.connect(), tls).await {
            Ok(conn) => {
                let facts = BackendFacts {
                    server_version: conn.server_version.clone(),
                    collation: conn.server_collation,
                    mariadb_capabilities: conn.server_mariadb_capabilities,
                };
                conn.quit().await;
                return Ok(facts);
            }
            Err(e) if tokio::time::Instant::now() >= deadline => {
                return Err(ServeError::NotReady {
                    after: config.timeouts.startup(),
                    last: e,
                })
            }
            Err(e) => {
                warn!(shard = %shard.name, error = %e, "backend not ready yet; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

/// The routing snapshot from the configured topology source: the config file, or
/// ZooKeeper (followed in the background from then on).
/// TLS to the MariaDB servers, when `[backend.tls]` is configured.
pub fn backend_tls(
    config: &Config,
) -> Result<Option<Arc<crate::net::BackendTls>>, crate::net::tls::TlsError> {
    let Some(t) = &config.backend.tls else {
        return Ok(None);
    };
    let client = t.cert_file.as_deref().zip(t.key_file.as_deref());
    crate::net::BackendTls::load(&t.ca_file, client, t.server_name.as_deref()).map(Some)
}

/// Replaces the log filter (tracing-subscriber's reload layer, set up by `main`) with
/// directives already validated; `None` when `DBROUTER_LOG` fixes the filter instead.
pub type LogFilter = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// What a reload changes in place: everything built from a reloadable field.
struct Reloader {
    path: PathBuf,
    config: SharedConfig,
    tls: Option<Arc<TlsConfig>>,
    pools: Arc<Pools>,
    logins: Arc<LoginLimits>,
    connections: Arc<Slots>,
    log: Option<LogFilter>,
    admin: Arc<crate::admin::Admin>,
    /// One reload at a time (SIGHUP and `POST /reload` may race).
    one_at_a_time: tokio::sync::Mutex<()>,
}

impl Reloader {
    /// Re-reads the config file and applies it, or refuses it whole; logs, counts and
    /// records the outcome for the status page.
    async fn reload(&self, trigger: &'static str) -> ReloadOutcome {
        let _one = self.one_at_a_time.lock().await;
        // systemd shows the unit as reloading until READY=1 (below, whatever the outcome).
        crate::net::sd_notify::reloading();
        let at_ms = crate::topology::now_ms();
        let outcome = match self.apply().await {
            Ok(changes) => {
                info!(
                    trigger,
                    applied = ?changes.applied,
                    needs_restart = ?changes.needs_restart,
                    "config reloaded from {}",
                    self.path.display()
                );
                if !changes.needs_restart.is_empty() {
                    warn!(
                        fields = ?changes.needs_restart,
                        "config reload: these fields changed but take effect only after a restart; the running values are kept"
                    );
                }
                ReloadOutcome {
                    at_ms,
                    trigger: trigger.into(),
                    ok: true,
                    error: None,
                    applied: changes.applied.iter().map(|f| f.to_string()).collect(),
                    needs_restart: changes
                        .needs_restart
                        .iter()
                        .map(|f| f.to_string())
                        .collect(),
                }
            }
            Err(error) => {
                tracing::error!(trigger, %error, "config not reloaded; the previous configuration stays in force");
                ReloadOutcome {
                    at_ms,
                    trigger: trigger.into(),
                    ok: false,
                    error: Some(error),
                    applied: Vec::new(),
                    needs_restart: Vec::new(),
                }
            }
        };
        self.admin.reloads.record(&outcome);
        crate::net::sd_notify::reloaded();
        outcome
    }

    /// Reads, validates and prepares everything that can fail (the file, its fields, the
    /// TLS pair), and only then swaps the new settings in.
    async fn apply(&self) -> Result<Changes, String> {
        let path = self.path.clone();
        let fresh = tokio::task::spawn_blocking(move || Config::load(&path))
            .await
            .map_err(|e| format!("reading the config file: {e}"))?
            .map_err(|e| e.to_string())?;
        let running = self.config.load_full();
        let (merged, changes) = reload::merge(&running, fresh);
        // The certificate and key are read again on every reload (a renewed pair under
        // the same names), and must be usable before anything changes.
        let tls = match (&self.tls, &merged.server.tls) {
            (Some(_), Some(section)) => {
                let files = section.files();
                let prepared = tokio::task::spawn_blocking(move || PreparedTls::load(files))
                    .await
                    .map_err(|e| format!("server.tls: {e}"))?
                    .map_err(|e| format!("server.tls: {e}"))?;
                Some(prepared)
            }
            _ => None,
        };
        // Commit: every piece built from a reloadable field, then the config itself.
        if let (Some(current), Some(prepared)) = (&self.tls, tls) {
            current.install(prepared);
        }
        self.pools.resize(PoolLimits::from_config(&merged));
        self.logins.set(merged.limits.clone());
        self.connections.resize(merged.server.max_connections);
        crate::error::set_error_detail(merged.server.error_detail);
        if let Some(set_filter) = &self.log {
            if let Err(e) = set_filter(merged.log.directives()) {
                warn!(error = %e, "log.filter not applied");
            }
        }
        self.config.store(Arc::new(merged));
        Ok(changes)
    }
}

/// Reloads the config on every SIGHUP, for the life of the process. `hangup` was
/// registered at the very start, so a SIGHUP that came before is handled now, not fatal.
fn reload_on_sighup(mut hangup: Signal, reloader: Arc<Reloader>) {
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            reloader.reload("SIGHUP").await;
        }
    });
}

/// This router's id in ZooKeeper: `topology.router_id`, else host, listen address and pid.
fn router_id(config: &Config) -> String {
    config.topology.router_id.clone().unwrap_or_else(|| {
        let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
        format!(
            "{}-{}-{}",
            host.trim(),
            config.server.listen.replace(':', "_"),
            std::process::id()
        )
    })
}

async fn load_topology(
    config: &Config,
) -> Result<(Arc<ArcSwap<RoutingTable>>, Arc<TopologyStatus>), ServeError> {
    let Some(target) = crate::topology::zk::ZkTarget::of(&config.topology) else {
        let table = crate::topology::file::routing_table(config)?;
        return Ok((
            Arc::new(ArcSwap::from_pointee(table)),
            TopologyStatus::file(),
        ));
    };
    let id = router_id(config);
    let settings = FollowerSettings {
        target,
        session_timeout: Duration::from_millis(config.topology.session_timeout_ms),
        connect_timeout: config.timeouts.connect(),
        registration: RouterDoc {
            schema: SCHEMA,
            id,
            address: config.server.listen.clone(),
            build: env!("CARGO_PKG_VERSION").to_string(),
            applied_version: 0,
            applied_at_ms: 0,
            holds_acked_version: 0,
        },
        sharding: config.sharding.clone(),
        stale_serving: Duration::from_millis(config.topology.stale_serving_ms),
    };
    Ok(watcher::start(settings, config.timeouts.startup()).await?)
}

/// Runs the proxy until SIGTERM or SIGINT, then drains. `path` is the file `config` was
/// read from, read again on SIGHUP or `POST /reload`; `log` replaces the log filter.
pub async fn serve(
    config: Config,
    path: PathBuf,
    log: Option<LogFilter>,
) -> Result<(), ServeError> {
    // First of all: SIGHUP's default action would end the process.
    let hangup = signal(SignalKind::hangup()).map_err(ServeError::Signals)?;
    let shared: SharedConfig = Arc::new(ArcSwap::from_pointee(config));
    // What is built once from restart-only fields reads this snapshot.
    let config = shared.load_full();
    crate::error::set_error_detail(config.server.error_detail);
    // Loaded before anything listens: a router told to serve TLS never serves without it.
    let tls = match &config.server.tls {
        Some(section) => Some(TlsConfig::load(section.files())?),
        None => None,
    };
    let admin = crate::admin::start(&shared)
        .await
        .map_err(|e| ServeError::Bind {
            addr: format!("{} (server.admin_listen)", e.addr),
            source: e.source,
        })?;
    let (routing, topology) = load_topology(&config).await?;
    admin.set_phase(crate::admin::Phase::WaitingForBackend);
    let backend_tls = backend_tls(&config)?;
    let facts = wait_until_ready(&config, &routing.load(), backend_tls.as_deref()).await?;
    let pools = Pools::with_tls(PoolLimits::from_config(&config), backend_tls);
    // Session ids carry this router's number: claimed before the first session.
    let sessions = crate::frontend::sessions::SessionRegistry::new();
    let killer = crate::frontend::kill::Killer {
        sessions: Arc::clone(&sessions),
        routing: Arc::clone(&routing),
        pools: Arc::clone(&pools),
        timeout: config.timeouts.connect(),
    };
    let remote_kills = match crate::topology::zk::ZkTarget::of(&config.topology) {
        Some(target) => {
            let session = Duration::from_millis(config.topology.session_timeout_ms);
            let timeouts = (session, config.timeouts.connect());
            Some(
                crate::frontend::kill::RemoteKills::start(
                    target,
                    timeouts,
                    router_id(&config),
                    killer.clone(),
                )
                .await?,
            )
        }
        None => None,
    };
    let listener = TcpListener::bind(&config.server.listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: config.server.listen.clone(),
            source,
        })?;
    let health = Arc::new(HealthRegistry::default());
    if config.health.interval_ms > 0 {
        health::spawn_checker(
            Arc::clone(&routing),
            Arc::clone(&health),
            CheckerSettings {
                user: config.backend.user.clone(),
                password: config.backend.password().to_string(),
                interval: Duration::from_millis(config.health.interval_ms),
                timeout: config.timeouts.connect(),
                tls: config.backend.tls.clone(),
            },
        );
    }
    // This router's view of every master, for the coordinator's automatic failover.
    if let (Some(target), true) = (
        crate::topology::zk::ZkTarget::of(&config.topology),
        config.health.interval_ms > 0,
    ) {
        crate::backend::opinions::spawn_publisher(
            target,
            (
                Duration::from_millis(config.topology.session_timeout_ms),
                config.timeouts.connect(),
            ),
            Arc::clone(&routing),
            Arc::clone(&health),
            router_id(&config),
            Duration::from_millis(config.health.interval_ms),
        );
    }
    // Hibernated users: sessions queue wake-ups; one router (elected) carries them out.
    let wakeups = match crate::topology::zk::ZkTarget::of(&config.topology) {
        Some(target) => {
            let session = Duration::from_millis(config.topology.session_timeout_ms);
            tokio::spawn(crate::moves::coordinator::run(
                target.clone(),
                Arc::clone(&config),
                router_id(&config),
            ));
            WakeupQueue::start(target, session, config.timeouts.connect())
        }
        None => WakeupQueue::disabled(),
    };
    let accounts = AccountDirectory::new(Arc::clone(&shared), Arc::clone(&routing));
    tokio::spawn(Arc::clone(&accounts).refresh_loop());
    let ctx = Arc::new(SessionContext {
        config: Arc::clone(&shared),
        connections: Slots::new(config.server.max_connections),
        health,
        routing,
        topology,
        pools,
        server_version: config
            .server
            .server_version
            .clone()
            .unwrap_or(facts.server_version),
        server_collation: facts.collation,
        mariadb_capabilities: facts.mariadb_capabilities & offered_mariadb_capabilities(),
        drain: DrainSignal::new(),
        held: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
        wakeups,
        tls,
        logins: LoginLimits::new(config.limits.clone()),
        accounts,
        sessions,
        killer,
        remote_kills,
    });
    admin.serving(crate::admin::RouterView {
        config: Arc::clone(&ctx.config),
        routing: Arc::clone(&ctx.routing),
        health: Arc::clone(&ctx.health),
        topology: Arc::clone(&ctx.topology),
        pools: Arc::clone(&ctx.pools),
        held: Arc::clone(&ctx.held),
    });
    let reloader = Arc::new(Reloader {
        path: path.clone(),
        config: Arc::clone(&shared),
        tls: ctx.tls.clone(),
        pools: Arc::clone(&ctx.pools),
        logins: Arc::clone(&ctx.logins),
        connections: Arc::clone(&ctx.connections),
        log,
        admin: Arc::clone(&admin),
        one_at_a_time: tokio::sync::Mutex::new(()),
    });
    let trigger = Arc::clone(&reloader);
    admin.reloads.enable(
        path,
        Arc::new(move |why| {
            let reloader = Arc::clone(&trigger);
            Box::pin(async move { reloader.reload(why).await })
        }),
    );
    reload_on_sighup(hangup, reloader);
    tokio::spawn(sweep_pools(
        Arc::clone(&ctx.pools),
        Arc::clone(&ctx.routing),
    ));
    let threads = config.server.worker_threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let workers = Workers::start(threads, &ctx).map_err(ServeError::Workers)?;
    info!(
        threads = workers.len(),
        pinned = config.server.pin_threads,
        "serving threads started"
    );
    info!(listen = %config.server.listen, shards = config.shards.len(), "ready; accepting clients");
    crate::net::sd_notify::ready();
    accept_until_signal(listener, &ctx, workers, || {
        crate::net::sd_notify::stopping();
        admin.set_phase(crate::admin::Phase::Draining)
    })
    .await
    .map_err(ServeError::Signals)?;
    // Drained: no session serves any more. Leave ZooKeeper at once, so that switchovers
    // and moves do not wait for this router until its session expires.
    ctx.topology.leave(Duration::from_secs(2)).await;
    Ok(())
}

/// Once a second, closes the pooled idle connections to servers that are no longer a
/// shard's master (after a switchover or failover) and those idle too long. Sessions
/// never take them (a pool is per master address); this frees the old master's slots.
async fn sweep_pools(pools: Arc<Pools>, routing: Arc<ArcSwap<RoutingTable>>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let table = routing.load_full();
        let is_master = |addr: &str| table.shards.iter().any(|s| s.master == addr);
        let closed = crate::backend::pool::sweep(&pools, &is_master).await;
        if closed > 0 {
            tracing::debug!(
                closed,
                "closed idle backend connections (demoted master or idle timeout)"
            );
        }
    }
}
