//! The status page: one snapshot of what this router serves and how its servers are
//! doing ([`Status`]), rendered as HTML (`/`, plain server-side HTML with inline CSS that
//! refreshes itself) and JSON (`/status.json`). Every value shown in HTML goes through
//! [`escape`]: shard names, addresses and error texts come from config, ZooKeeper and
//! servers, not from us.

use std::fmt::Write as _;
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

/// Escapes text for HTML element content and double- or single-quoted attributes.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `2026-11-23 18:34:05 UTC` from milliseconds since the Unix epoch.
fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn duration_text(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        s => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
    }
}

const CSS: &str = "
body{font:14px/1.4 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;background:#f4f5f7;color:#1d2330}
header{background:#1d2330;color:#fff;padding:14px 24px;display:flex;align-items:center;gap:16px;flex-wrap:wrap}
header h1{font-size:20px;margin:0;font-weight:600}
header .meta{color:#b8c0cf;font-size:13px}
main{padding:16px 24px;max-width:1400px}
section{background:#fff;border:1px solid #dde1e8;border-radius:6px;margin:0 0 16px;padding:12px 16px}
h2{font-size:16px;margin:0 0 8px;display:flex;gap:8px;align-items:center;flex-wrap:wrap}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:4px 10px 4px 0;border-bottom:1px solid #eef0f4;vertical-align:top}
th{font-weight:600;color:#5a6478;font-size:12px;text-transform:uppercase;letter-spacing:.03em}
td.num{font-variant-numeric:tabular-nums}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12px;word-break:break-all}
.badge{display:inline-block;border-radius:10px;padding:1px 9px;font-size:12px;font-weight:600;border:1px solid transparent}
.ok{background:#e3f6e8;color:#17692e;border-color:#bfe6ca}
.warn{background:#fff4d6;color:#7a5300;border-color:#f3dc9b}
.bad{background:#fde5e5;color:#9d1c1c;border-color:#f4bcbc}
.info{background:#e7eefc;color:#23467e;border-color:#c6d6f5}
.kv{display:grid;grid-template-columns:max-content 1fr;gap:2px 18px}
.kv div:nth-child(odd){color:#5a6478}
.muted{color:#7a8497}
.err{color:#9d1c1c}
footer{padding:0 24px 24px;color:#7a8497;font-size:12px}
footer a{color:#23467e}
";

fn badge(class: &str, text: &str) -> String {
    format!(
        "<span class=\"badge {}\">{}</span>",
        escape(class),
        escape(text)
    )
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// The HTML page.
pub fn render_html(s: &Status) -> String {
    let mut h = String::with_capacity(16 * 1024);
    let r = &s.router;
    let t = &s.topology;
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_SECS}\">\n\
         <title>dbrouter {listen} — status</title>\n<style>{CSS}</style>\n</head>\n<body>\n",
        listen = escape(&r.listen)
    );
    let ready = if r.ready {
        badge("ok", "READY")
    } else {
        badge("bad", "NOT READY")
    };
    let _ = write!(
        h,
        "<header><h1>dbrouter</h1>{ready}{phase}<span class=\"meta\">clients on <span class=\"mono\">{listen}</span> · version {version} · up {uptime}</span></header>\n<main>\n",
        phase = badge(if r.phase == "serving" { "info" } else { "warn" }, &r.phase),
        listen = escape(&r.listen),
        version = escape(&r.version),
        uptime = escape(&duration_text(r.uptime_seconds)),
    );
    if let Some(reason) = &r.not_ready_reason {
        let _ = writeln!(
            h,
            "<section><h2>Not ready</h2><p class=\"err\">{}</p></section>",
            escape(reason)
        );
    }

    // Router and topology summary.
    let zk_class = match t.zookeeper_state.as_str() {
        "connected" => "ok",
        "none" => "info",
        "connecting" => "warn",
        _ => "bad",
    };
    let _ = writeln!(
        h,
        "<section><h2>Router and topology</h2><div class=\"kv\">\
         <div>topology source</div><div class=\"mono\">{source}</div>\
         <div>topology version</div><div>{version}</div>\
         <div>ZooKeeper</div><div>{zk}</div>\
         <div>last topology error</div><div class=\"{err_class}\">{last_error}</div>\
         <div>overridden users</div><div>{overrides}</div>\
         <div>users held by a move</div><div>{held_users}</div>\
         <div>stale (cut off from ZooKeeper)</div><div>{stale}</div>\
         <div>client connections</div><div>{conns}</div>\
         <div>held statements</div><div>{held}</div>\
         <div>pool mode</div><div>{pool_mode}</div>\
         <div>pinned sessions</div><div>{pinned}</div>\
         <div>admin address</div><div class=\"mono\">{admin}</div>\
         </div></section>",
        source = escape(&t.source),
        version = t.version,
        zk = badge(zk_class, &t.zookeeper_state),
        err_class = if t.last_error.is_some() {
            "err"
        } else {
            "muted"
        },
        last_error = escape(t.last_error.as_deref().unwrap_or("none")),
        overrides = t.overridden_users,
        held_users = t.held_users,
        stale = if t.stale {
            "yes: refusing statements"
        } else {
            "no"
        },
        conns = r.client_connections,
        held = r.held_statements,
        pool_mode = escape(&r.pool_mode),
        pinned = if r.pinned_sessions.is_empty() {
            "none".to_string()
        } else {
            r.pinned_sessions
                .iter()
                .map(|(why, n)| format!("{n} {why}"))
                .collect::<Vec<_>>()
                .join(", ")
        },
        admin = escape(r.admin.as_deref().unwrap_or("-")),
    );

    config_section(&mut h, &s.config);

    if s.shards.is_empty() {
        h.push_str("<section><h2>Shards</h2><p class=\"muted\">No topology yet.</p></section>\n");
    }
    for shard in &s.shards {
        let state = if shard.switching {
            badge("warn", "SWITCHING (statements held)")
        } else {
            badge("ok", "serving")
        };
        let _ = write!(
            h,
            "<section><h2>Shard {name} {state}{epoch}{weight}{pool}</h2>\n<table>\n\
             <tr><th>role</th><th>server</th><th>health</th><th>lag</th><th>rtt</th>\
             <th>read_only</th><th>semi-sync</th><th>replication</th><th>GTID position</th>\
             <th>last error</th></tr>\n",
            name = escape(&shard.name),
            epoch = badge("info", &format!("epoch {}", shard.epoch)),
            weight = badge(
                if shard.weight == 0 { "warn" } else { "info" },
                &format!("weight {}", shard.weight)
            ),
            pool = badge(
                if shard.pool.in_use >= shard.pool.max {
                    "bad"
                } else {
                    "info"
                },
                &format!(
                    "pool {} in use / {} idle / {} waiting / max {}",
                    shard.pool.in_use, shard.pool.idle, shard.pool.waiting, shard.pool.max
                )
            ),
        );
        let servers = std::iter::once(&shard.master)
            .chain(&shard.standbys)
            .chain(&shard.rejoin_pending);
        for x in servers {
            server_row(&mut h, x);
        }
        h.push_str("</table></section>\n");
    }

    if let Some(routers) = &s.routers {
        let _ = writeln!(
            h,
            "<section><h2>Registered routers {}</h2>",
            badge(
                "info",
                &format!("ZooKeeper version {}", routers.current_version)
            )
        );
        if let Some(e) = &routers.error {
            let _ = writeln!(h, "<p class=\"err\">cannot read them: {}</p>", escape(e));
        } else if routers.routers.is_empty() {
            h.push_str("<p class=\"muted\">none registered</p>\n");
        } else {
            h.push_str("<table>\n<tr><th>id</th><th>address</th><th>build</th><th>version</th><th>state</th><th>applied at</th></tr>\n");
            for x in &routers.routers {
                let lag = if x.behind_by == 0 {
                    badge("ok", "current")
                } else {
                    badge("bad", &format!("behind by {}", x.behind_by))
                };
                let _ = writeln!(
                    h,
                    "<tr><td class=\"mono\">{}</td><td class=\"mono\">{}</td><td>{}</td><td class=\"num\">{}</td><td>{lag}</td><td>{}</td></tr>",
                    escape(&x.id),
                    escape(&x.address),
                    escape(&x.build),
                    x.applied_version,
                    escape(&utc(x.applied_at_ms)),
                );
            }
            h.push_str("</table>\n");
        }
        let _ = writeln!(
            h,
            "<p class=\"muted\">read from ZooKeeper {} s ago (cached for {} s)</p></section>",
            routers.read_ago_ms / 1000,
            ROUTERS_TTL.as_secs()
        );
    }
    let _ = write!(
        h,
        "</main>\n<footer>Generated {} · refreshes every {REFRESH_SECS} s · \
         <a href=\"/status.json\">status.json</a> · <a href=\"/metrics\">metrics</a> · \
         <a href=\"/readyz\">readyz</a></footer>\n</body>\n</html>\n",
        escape(&utc(r.generated_at_ms))
    );
    h
}

/// The configuration section: the file, the last reload and the restart-only changes
/// waiting for a restart.
fn config_section(h: &mut String, c: &super::reload::ReloadStatus) {
    let last = match &c.last {
        None => "<span class=\"muted\">none since start</span>".to_string(),
        Some(l) if l.ok => format!(
            "{} {} ({}){}",
            badge("ok", "APPLIED"),
            escape(&utc(l.at_ms)),
            escape(&l.trigger),
            if l.applied.is_empty() {
                " — no reloadable field changed".to_string()
            } else {
                format!(
                    " — <span class=\"mono\">{}</span>",
                    escape(&l.applied.join(", "))
                )
            }
        ),
        Some(l) => format!(
            "{} {} ({}): <span class=\"err\">{}</span> — the previous configuration stays in force",
            badge("bad", "REFUSED"),
            escape(&utc(l.at_ms)),
            escape(&l.trigger),
            escape(l.error.as_deref().unwrap_or("unknown error"))
        ),
    };
    let pending = if c.needs_restart.is_empty() {
        "<span class=\"muted\">none</span>".to_string()
    } else {
        format!(
            "{} <span class=\"mono\">{}</span>",
            badge("warn", "NEEDS RESTART"),
            escape(&c.needs_restart.join(", "))
        )
    };
    let _ = writeln!(
        h,
        "<section><h2>Configuration</h2><div class=\"kv\">\
         <div>config file</div><div class=\"mono\">{path}</div>\
         <div>last reload</div><div>{last}</div>\
         <div>reloads applied / refused</div><div>{ok} / {failed}</div>\
         <div>changed, not applied until restart</div><div>{pending}</div>\
         </div></section>",
        path = escape(c.path.as_deref().unwrap_or("-")),
        ok = c.reloads,
        failed = c.failures,
    );
}

fn server_row(h: &mut String, x: &ServerStatus) {
    let unknown = "<span class=\"muted\">–</span>".to_string();
    let lag = match x.lag_seconds {
        Some(l) => format!("{l} s"),
        None if x.role == "master" => String::new(),
        None => unknown.clone(),
    };
    let (lag, rtt, read_only, semi, repl) = if x.checked && x.reachable {
        let semi = match (x.semi_sync_master, x.semi_sync_slave) {
            (true, _) => "master on",
            (false, true) => "slave on",
            (false, false) => "off",
        };
        let repl = if x.role == "master" && !x.io_running && !x.sql_running {
            "—".to_string()
        } else {
            format!(
                "IO {} · SQL {}",
                yes_no(x.io_running),
                yes_no(x.sql_running)
            )
        };
        (
            escape(&lag),
            escape(&format!("{:.2} ms", x.rtt_ms)),
            yes_no(x.read_only).to_string(),
            semi.to_string(),
            escape(&repl),
        )
    } else {
        (
            unknown.clone(),
            unknown.clone(),
            unknown.clone(),
            unknown.clone(),
            unknown,
        )
    };
    let checked = x
        .checked_ago_ms
        .map(|ms| format!(" · checked {:.1} s ago", ms as f64 / 1000.0))
        .unwrap_or_default();
    let failures = if x.consecutive_failures > 0 {
        format!(" ({} failed probes in a row)", x.consecutive_failures)
    } else {
        String::new()
    };
    let _ = writeln!(
        h,
        "<tr><td>{role}</td><td class=\"mono\">{addr}</td><td>{state}<div class=\"muted\">{checked}</div></td>\
         <td class=\"num\">{lag}</td><td class=\"num\">{rtt}</td><td>{read_only}</td><td>{semi}</td>\
         <td>{repl}</td><td class=\"mono\">{gtid}</td><td class=\"err\">{error}{failures}</td></tr>",
        role = escape(&x.role),
        addr = escape(&x.addr),
        state = badge(x.severity, &x.state),
        checked = escape(checked.trim_start_matches(" · ")),
        gtid = escape(&x.gtid_current_pos),
        error = escape(x.last_error.as_deref().unwrap_or("")),
        failures = escape(&failures),
    );
}

#[cfg(test)]
mod tests;
