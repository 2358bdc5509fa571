//! Prometheus metrics: what the hot path records, and what is read at scrape time. A leaf
//! module: the data path records into it through these functions, the admin listener
//! renders it; it imports nothing of the router.
//!
//! Two kinds, rendered together by `/metrics` (docs/metrics.md lists every one):
//!
//! - **Events** (counters, the latency histogram) are recorded where they happen, through
//!   the `metrics` facade into one process-wide [`PrometheusRecorder`] installed by
//!   [`install`]. Before that (and in processes without an admin listener: `ctl`, unit
//!   tests) every call here is a cheap no-op. The per-statement calls use handles
//!   registered once per shard and cached by shard id, so a statement costs an `Instant`,
//!   an atomic load, a string comparison, two atomic adds and a histogram push; no
//!   allocation and no registry lookup.
//! - **State** (health of every server, topology version, ZooKeeper state, pool usage,
//!   held statements, open client connections) is read from the router's shared structures
//!   at scrape time into a fresh recorder that lives for one scrape. A server that left
//!   the topology therefore leaves the output at once, instead of lingering as a stale
//!   series.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use ::metrics::{Counter, Histogram, Key, Label, Recorder, Unit};
use arc_swap::ArcSwap;
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

/// Client connections accepted (a session was started).
pub const CONNECTIONS_ACCEPTED: &str = "dbrouter_client_connections_accepted_total";
/// Client connections refused with ERR 1040 (`server.max_connections`).
pub const CONNECTIONS_REFUSED: &str = "dbrouter_client_connections_refused_total";
/// Configuration reloads applied (SIGHUP, `POST /reload`).
pub const CONFIG_RELOADS: &str = "dbrouter_config_reloads_total";
/// Configuration reloads refused (the file failed validation; nothing changed).
pub const CONFIG_RELOAD_FAILURES: &str = "dbrouter_config_reload_failures_total";
/// Whether the last reload was applied (1) or refused (0); 1 before any reload.
pub const CONFIG_LAST_RELOAD_OK: &str = "dbrouter_config_last_reload_ok";
/// When the last applied reload was done (Unix seconds); absent before any.
pub const CONFIG_LAST_RELOAD_SUCCESS: &str =
    "dbrouter_config_last_reload_success_timestamp_seconds";
/// Restart-only fields changed in the config file that the running router does not apply.
pub const CONFIG_NEEDS_RESTART: &str = "dbrouter_config_needs_restart_fields";
/// Client connections open now.
pub const CONNECTIONS: &str = "dbrouter_client_connections";
/// Login attempts delayed after failed logins of their address or account.
pub const LOGIN_DELAYS: &str = "dbrouter_login_delays_total";
/// Statements by shard and outcome.
pub const STATEMENTS: &str = "dbrouter_statements_total";
/// Statement latency by shard.
pub const STATEMENT_DURATION: &str = "dbrouter_statement_duration_seconds";
/// ERR packets dbrouter itself sent, by `ClientError::kind()`.
pub const ERRORS_SENT: &str = "dbrouter_errors_sent_total";
/// Pool checkouts that had to wait for a free connection slot.
pub const POOL_WAITS: &str = "dbrouter_pool_waits_total";
/// Idle pooled connections found closed by their server when about to be lent out.
pub const POOL_DISCARDED: &str = "dbrouter_pool_discarded_total";
/// Pool checkouts that gave up (`pool.wait_ms` passed; the client got ERR 1040).
pub const POOL_EXHAUSTED: &str = "dbrouter_pool_exhausted_total";
/// How long pool checkouts waited in a master's queue.
pub const POOL_WAIT_DURATION: &str = "dbrouter_pool_wait_seconds";
/// Pool checkouts waiting now, per master.
pub const POOL_WAITING: &str = "dbrouter_pool_waiting";
/// Sessions tied to their backend connection in transaction pooling, by reason.
pub const SESSIONS_PINNED: &str = "dbrouter_sessions_pinned";
/// Backend connections lent to sessions (or being opened), per master.
pub const POOL_IN_USE: &str = "dbrouter_pool_connections_in_use";
/// Idle pooled backend connections, per master.
pub const POOL_IDLE: &str = "dbrouter_pool_connections_idle";
/// `pool.max_per_shard`.
pub const POOL_MAX: &str = "dbrouter_pool_connections_max";
/// Statements held because their shard is switching masters.
pub const HELD: &str = "dbrouter_held_statements";
/// Automatic failovers run by this router (the coordinator), by shard and outcome.
pub const FAILOVER_AUTO: &str = "dbrouter_failover_auto_total";
/// Alerts raised by this router's automatic failover, by shard and reason.
pub const FAILOVER_BLOCKED: &str = "dbrouter_failover_auto_blocked_total";
/// Topology version served.
pub const TOPOLOGY_VERSION: &str = "dbrouter_topology_version";
/// Users with an override.
pub const OVERRIDES: &str = "dbrouter_topology_overridden_users";
/// Users whose statements a move holds now.
pub const HELD_USERS: &str = "dbrouter_topology_held_users";
/// 1 while the router is cut off from ZooKeeper past `topology.stale_serving_ms`.
pub const STALE: &str = "dbrouter_topology_stale";
/// Move holds this router applied and then released, by outcome (`flipped`, `lifted`).
pub const MOVE_HOLDS: &str = "dbrouter_move_holds_total";
/// How long this router held a moving user's statements (from applying the hold to
/// applying its release).
pub const MOVE_HOLD_DURATION: &str = "dbrouter_move_hold_seconds";
/// Moves run by this process (the coordinator's wake-ups and background drains), by
/// outcome (`done`, `failed`).
pub const MOVES: &str = "dbrouter_moves_total";
/// Rows copied by the moves this process ran.
pub const MOVE_ROWS: &str = "dbrouter_move_rows_copied_total";
/// Bytes of column values copied by the moves this process ran.
pub const MOVE_BYTES: &str = "dbrouter_move_bytes_copied_total";
/// ZooKeeper session state, one series per state.
pub const ZK_STATE: &str = "dbrouter_zookeeper_state";
/// Master epoch per shard.
pub const SHARD_EPOCH: &str = "dbrouter_shard_epoch";
/// 1 while a shard is switching masters.
pub const SHARD_SWITCHING: &str = "dbrouter_shard_switching";
/// 1 when the health checker reached a server.
pub const SERVER_UP: &str = "dbrouter_server_up";
/// `@@read_only` of a server.
pub const SERVER_READ_ONLY: &str = "dbrouter_server_read_only";
/// Semi-sync master side active.
pub const SERVER_SEMI_SYNC_MASTER: &str = "dbrouter_server_semi_sync_master";
/// Semi-sync slave side active.
pub const SERVER_SEMI_SYNC_SLAVE: &str = "dbrouter_server_semi_sync_slave";
/// Both replication threads running.
pub const SERVER_REPLICATING: &str = "dbrouter_server_replicating";
/// `Seconds_Behind_Master`.
pub const SERVER_LAG: &str = "dbrouter_server_lag_seconds";
/// Round trip of the health probe's `SELECT 1`.
pub const SERVER_RTT: &str = "dbrouter_server_rtt_seconds";
/// Health probes failed in a row.
pub const SERVER_FAILURES: &str = "dbrouter_server_consecutive_failures";
/// 1 when `/readyz` answers 200.
pub const READY: &str = "dbrouter_ready";
/// Always 1; the `version` label carries the build.
pub const BUILD_INFO: &str = "dbrouter_build_info";
/// Process start, seconds since the Unix epoch.
pub const START_TIME: &str = "dbrouter_start_time_seconds";

/// Latency buckets (seconds): a point select through the router takes ~0.2 ms here; a
/// statement held during a switchover up to `failover.buffer_max_ms`.
const LATENCY_BUCKETS: &[f64] = &[
    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    10.0, 30.0,
];

/// Move hold buckets (seconds): ~10–100 ms for most users, up to `--max-hold-ms`.
const HOLD_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Whether the recorder is installed (checked first by every hot-path call).
static ENABLED: AtomicBool = AtomicBool::new(false);
/// The installed recorder (for handles and rendering).
static RECORDER: OnceLock<Arc<PrometheusRecorder>> = OnceLock::new();
/// Client connections open now (also shown on the status page).
static OPEN_CONNECTIONS: AtomicI64 = AtomicI64::new(0);

/// Handles of one shard's statement metrics, registered once.
struct ShardHandles {
    name: String,
    ok: Counter,
    error: Counter,
    latency: Histogram,
}

/// Per-shard handles by `ShardId`; replaced whole (rarely) when a shard is new or renamed.
static SHARDS: OnceLock<ArcSwap<Vec<Option<Arc<ShardHandles>>>>> = OnceLock::new();
/// Serialises the (rare) rebuilds of `SHARDS`.
static SHARDS_WRITE: Mutex<()> = Mutex::new(());

/// Installs the process-wide recorder; returns the handle `/metrics` renders. Idempotent:
/// a second call returns the first recorder's handle.
pub fn install() -> PrometheusHandle {
    let recorder = RECORDER.get_or_init(|| {
        // Fails only for an empty bucket list; then latencies render as summaries.
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(STATEMENT_DURATION.into()), LATENCY_BUCKETS)
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Full(MOVE_HOLD_DURATION.into()), HOLD_BUCKETS)
            })
            .unwrap_or_else(|_| PrometheusBuilder::new());
        Arc::new(builder.build_recorder())
    });
    let handle = recorder.handle();
    describe(recorder.as_ref());
    // Counters without labels exist from the start (0), so rates work from the first scrape.
    let meta = metadata();
    for name in [
        CONNECTIONS_ACCEPTED,
        CONNECTIONS_REFUSED,
        CONFIG_RELOADS,
        CONFIG_RELOAD_FAILURES,
    ] {
        recorder
            .register_counter(&Key::from_static_name(name), &meta)
            .increment(0);
    }
    ENABLED.store(true, Ordering::Release);
    handle
}

/// Flushes recorded histogram samples into their buckets. Without a scrape they would
/// accumulate, so the admin server calls this every few seconds.
pub fn upkeep(handle: &PrometheusHandle) {
    handle.run_upkeep();
}

fn metadata() -> metrics::Metadata<'static> {
    metrics::Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()))
}

#[inline]
fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

fn recorder() -> Option<&'static PrometheusRecorder> {
    RECORDER.get().map(|r| r.as_ref())
}

fn counter(name: &'static str, labels: Vec<Label>) -> Counter {
    match recorder() {
        Some(r) => r.register_counter(&Key::from_parts(name, labels), &metadata()),
        None => Counter::noop(),
    }
}

/// The start time of a statement, if metrics are on.
#[inline]
pub fn start_timer() -> Option<Instant> {
    enabled().then(Instant::now)
}

/// Records one statement's outcome and latency on a shard. `outcome` is `ok`, `error`
/// (the server's own ERR, relayed), a `ClientError::kind()` (refused or failed by the
/// router), `client_gone` or `closed`.
pub fn statement(shard: u16, name: &str, outcome: &'static str, started: Instant) {
    if !enabled() {
        return;
    }
    let seconds = started.elapsed().as_secs_f64();
    let index = usize::from(shard);
    if let Some(list) = SHARDS.get().map(ArcSwap::load) {
        if let Some(Some(h)) = list.get(index) {
            if h.name == name {
                return record(h, name, outcome, seconds);
            }
        }
    }
    record(&register_shard(index, name), name, outcome, seconds);
}

fn record(handles: &ShardHandles, name: &str, outcome: &'static str, seconds: f64) {
    handles.latency.record(seconds);
    match outcome {
        "ok" => handles.ok.increment(1),
        "error" => handles.error.increment(1),
        // Rare outcomes (router errors): registered on the spot.
        other => counter(
            STATEMENTS,
            vec![
                Label::new("shard", name.to_string()),
                Label::from_static_parts("outcome", other),
            ],
        )
        .increment(1),
    }
}

/// Registers the handles of a shard (first statement on it, or it was renamed).
fn register_shard(index: usize, name: &str) -> Arc<ShardHandles> {
    let statements = |outcome: &'static str| {
        counter(
            STATEMENTS,
            vec![
                Label::new("shard", name.to_string()),
                Label::from_static_parts("outcome", outcome),
            ],
        )
    };
    let latency = match recorder() {
        Some(r) => r.register_histogram(
            &Key::from_parts(
                STATEMENT_DURATION,
                vec![Label::new("shard", name.to_string())],
            ),
            &metadata(),
        ),
        None => Histogram::noop(),
    };
    let handles = Arc::new(ShardHandles {
        name: name.to_string(),
        ok: statements("ok"),
        error: statements("error"),
        latency,
    });
    let _guard = SHARDS_WRITE.lock().unwrap_or_else(|e| e.into_inner());
    let slot = SHARDS.get_or_init(|| ArcSwap::from_pointee(Vec::new()));
    let mut list = Vec::clone(&slot.load());
    if list.len() <= index {
        list.resize(index + 1, None);
    }
    list[index] = Some(Arc::clone(&handles));
    slot.store(Arc::new(list));
    handles
}

/// Counts an ERR packet dbrouter sent itself.
pub fn error_sent(kind: &'static str) {
    if enabled() {
        counter(ERRORS_SENT, vec![Label::from_static_parts("kind", kind)]).increment(1);
    }
}

/// A move's hold on this router ended after `seconds`: `flipped` (the user now goes to
/// the target) or `lifted` (rolled back).
pub fn move_hold_released(outcome: &'static str, seconds: f64) {
    if let Some(r) = recorder().filter(|_| enabled()) {
        let labels = vec![Label::from_static_parts("outcome", outcome)];
        counter(MOVE_HOLDS, labels).increment(1);
        r.register_histogram(&Key::from_static_name(MOVE_HOLD_DURATION), &metadata())
            .record(seconds);
    }
}

/// A move this process ran ended: `done` with `rows` and `bytes` copied, or `failed`.
pub fn move_finished(outcome: &'static str, rows: u64, bytes: u64) {
    if enabled() {
        counter(MOVES, vec![Label::from_static_parts("outcome", outcome)]).increment(1);
        counter(MOVE_ROWS, Vec::new()).increment(rows);
        counter(MOVE_BYTES, Vec::new()).increment(bytes);
    }
}

/// Counts a login attempt delayed after failed logins (`[limits]`).
pub fn login_delayed() {
    if enabled() {
        counter(LOGIN_DELAYS, Vec::new()).increment(1);
    }
}

/// Counts a client refused with ERR 1040 before its greeting.
pub fn connection_refused() {
    if enabled() {
        counter(CONNECTIONS_REFUSED, Vec::new()).increment(1);
    }
}

/// Counts a configuration reload, applied or refused.
pub fn config_reload(ok: bool) {
    if enabled() {
        let name = if ok {
            CONFIG_RELOADS
        } else {
            CONFIG_RELOAD_FAILURES
        };
        counter(name, Vec::new()).increment(1);
    }
}

/// Client connections open now.
pub fn open_connections() -> i64 {
    OPEN_CONNECTIONS.load(Ordering::Relaxed)
}

/// Counts an accepted client connection and keeps it in the open count until dropped.
#[derive(Debug)]
pub struct ConnectionGuard(());

impl ConnectionGuard {
    /// A connection was accepted and its session starts.
    pub fn new() -> Self {
        OPEN_CONNECTIONS.fetch_add(1, Ordering::Relaxed);
        if enabled() {
            counter(CONNECTIONS_ACCEPTED, Vec::new()).increment(1);
        }
        ConnectionGuard(())
    }
}

impl Default for ConnectionGuard {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        OPEN_CONNECTIONS.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A pool checkout for master `addr` had to wait for a free slot (`handle`: that master's
/// counter, registered here on its first use).
pub fn pool_wait(handle: &mut Option<Counter>, addr: &str) {
    if !enabled() {
        return;
    }
    if handle.is_none() && recorder().is_some() {
        *handle = Some(counter(
            POOL_WAITS,
            vec![Label::new("addr", addr.to_string())],
        ));
    }
    if let Some(c) = handle {
        c.increment(1);
    }
}

/// Reasons a session keeps its backend connections in transaction pooling, in the order
/// of `frontend::session::multiplex::Pin`.
pub const PIN_REASONS: [&str; 7] = [
    "temporary_table",
    "lock",
    "user_variable",
    "procedure",
    "handler",
    "sequence",
    "state_change",
];

/// Sessions pinned now, by reason ([`PIN_REASONS`]' order).
static PINNED: [std::sync::atomic::AtomicUsize; 7] =
    [const { std::sync::atomic::AtomicUsize::new(0) }; 7];

/// A session became pinned for reason `index` of [`PIN_REASONS`] (`pinned`), or was
/// unpinned or ended.
pub fn session_pinned(index: usize, pinned: bool) {
    use std::sync::atomic::Ordering::Relaxed;
    if let Some(n) = PINNED.get(index) {
        if pinned {
            n.fetch_add(1, Relaxed);
        } else {
            n.fetch_sub(1, Relaxed);
        }
    }
}

/// Sessions pinned now, by reason.
pub fn pinned_sessions() -> Vec<(&'static str, usize)> {
    use std::sync::atomic::Ordering::Relaxed;
    PIN_REASONS
        .iter()
        .zip(&PINNED)
        .map(|(r, n)| (*r, n.load(Relaxed)))
        .collect()
}

/// A pool checkout left the wait queue after `seconds` (with a connection or not).
pub fn pool_waited(seconds: f64) {
    static HANDLE: OnceLock<Histogram> = OnceLock::new();
    if let Some(r) = recorder().filter(|_| enabled()) {
        HANDLE
            .get_or_init(|| {
                r.register_histogram(&Key::from_static_name(POOL_WAIT_DURATION), &metadata())
            })
            .record(seconds);
    }
}

/// An idle pooled connection to `addr` was found closed by its server and dropped.
pub fn pool_discarded(addr: &str) {
    if enabled() {
        counter(POOL_DISCARDED, vec![Label::new("addr", addr.to_string())]).increment(1);
    }
}

/// An automatic failover of `shard` ended: `done` or `failed`.
pub fn failover_auto(shard: &str, outcome: &'static str) {
    if enabled() {
        let labels = vec![
            Label::new("shard", shard.to_string()),
            Label::from_static_parts("outcome", outcome),
        ];
        counter(FAILOVER_AUTO, labels).increment(1);
    }
}

/// Automatic failover (or rejoin) of `shard` raised an alert: it will not act, for
/// `reason` (docs/operations.md lists them).
pub fn failover_blocked(shard: &str, reason: &'static str) {
    if enabled() {
        let labels = vec![
            Label::new("shard", shard.to_string()),
            Label::from_static_parts("reason", reason),
        ];
        counter(FAILOVER_BLOCKED, labels).increment(1);
    }
}

/// A pool checkout for master `addr` gave up.
pub fn pool_exhausted(addr: &str) {
    if enabled() {
        counter(POOL_EXHAUSTED, vec![Label::new("addr", addr.to_string())]).increment(1);
    }
}

/// HELP texts and units of every metric (docs/metrics.md says the same).
fn describe(r: &dyn Recorder) {
    use Unit::{Count, Seconds};
    let d = |name: &'static str, unit: Unit, help: &'static str| {
        // A gauge and a counter share one description table in the exporter.
        r.describe_counter(name.into(), Some(unit), help.into());
    };
    d(CONNECTIONS_ACCEPTED, Count, "Client connections accepted.");
    d(
        CONFIG_RELOADS,
        Count,
        "Configuration reloads applied (SIGHUP, POST /reload).",
    );
    d(
        CONFIG_RELOAD_FAILURES,
        Count,
        "Configuration reloads refused: the file failed validation and nothing changed.",
    );
    d(
        CONFIG_LAST_RELOAD_OK,
        Count,
        "Whether the last configuration reload was applied (1) or refused (0); 1 before any.",
    );
    d(
        CONFIG_LAST_RELOAD_SUCCESS,
        Seconds,
        "When the last configuration reload was applied (Unix time).",
    );
    d(
        CONFIG_NEEDS_RESTART,
        Count,
        "Restart-only fields the config file changes that the running router does not apply until restarted.",
    );
    d(
        CONNECTIONS_REFUSED,
        Count,
        "Client connections refused with ERR 1040 (server.max_connections).",
    );
    d(
        LOGIN_DELAYS,
        Count,
        "Login attempts delayed after failed logins of their address or account ([limits]).",
    );
    d(STATEMENTS, Count, "Statements sent to a shard, by outcome: ok, error (the server's ERR), a dbrouter error kind, client_gone or closed.");
    r.describe_histogram(
        STATEMENT_DURATION.into(),
        Some(Seconds),
        "Statement latency through the router, from the command to the end of the response (including time held during a switchover).".into(),
    );
    d(
        ERRORS_SENT,
        Count,
        "ERR packets dbrouter itself sent, by kind (docs/errors.md).",
    );
    d(
        MOVE_HOLDS,
        Count,
        "Move holds this router applied and then released, by outcome: flipped (the user goes to the target) or lifted (the move rolled back).",
    );
    r.describe_histogram(
        POOL_WAIT_DURATION.into(),
        Some(Seconds),
        "How long pool checkouts that found every connection of the master in use waited in its queue (with a connection or not).".into(),
    );
    r.describe_histogram(
        MOVE_HOLD_DURATION.into(),
        Some(Seconds),
        "How long this router held a moving user's statements, from applying the hold to applying its release.".into(),
    );
    d(
        MOVES,
        Count,
        "Moves run by this process (the coordinator's wake-ups and background drains), by outcome: done or failed.",
    );
    d(
        MOVE_ROWS,
        Count,
        "Rows copied by the moves this process ran.",
    );
    d(
        MOVE_BYTES,
        Count,
        "Bytes of column values copied by the moves this process ran.",
    );
    d(
        FAILOVER_AUTO,
        Count,
        "Automatic failovers this router ran as the coordinator, by shard and outcome: done or failed.",
    );
    d(
        FAILOVER_BLOCKED,
        Count,
        "Alerts raised by automatic failover, by shard and reason (no_standby, disarmed, flapping, never_reached, async, failed, rejoin_refused, rejoin_failed, rebuilding, rebuild_failed): it will not act until the reason is gone.",
    );
    d(
        POOL_DISCARDED,
        Count,
        "Idle pooled connections found closed by their server (KILL, wait_timeout, restart) when about to be lent out, and dropped.",
    );
    d(
        POOL_WAITS,
        Count,
        "Pool checkouts that had to wait for a free connection slot.",
    );
    d(
        POOL_EXHAUSTED,
        Count,
        "Pool checkouts that gave up after pool.wait_ms (the client got ERR 1040).",
    );
}

/// One scrape's state gauges, written into a recorder that lives for this scrape only.
pub(super) struct StateGauges {
    recorder: PrometheusRecorder,
}

impl StateGauges {
    pub(super) fn new() -> Self {
        let recorder = PrometheusBuilder::new().build_recorder();
        let describe = |name: &'static str, unit: Unit, help: &'static str| {
            recorder.describe_gauge(name.into(), Some(unit), help.into());
        };
        use Unit::{Count, Seconds};
        describe(
            BUILD_INFO,
            Count,
            "Always 1; the version label is the dbrouter build.",
        );
        describe(
            START_TIME,
            Seconds,
            "When the process started (seconds since the Unix epoch).",
        );
        describe(READY, Count, "1 when /readyz answers 200 (topology loaded, listening, not draining, every master reachable).");
        describe(CONNECTIONS, Count, "Client connections open now.");
        describe(
            HELD,
            Count,
            "Statements held now because their shard is switching masters.",
        );
        describe(
            TOPOLOGY_VERSION,
            Count,
            "Topology version served (0 for a config-file topology).",
        );
        describe(
            OVERRIDES,
            Count,
            "Users placed by an override in the served topology.",
        );
        describe(ZK_STATE, Count, "ZooKeeper session state: 1 for the current state, 0 for the others (state none = file topology).");
        describe(
            SHARD_EPOCH,
            Count,
            "Master epoch of the shard (bumped by every master change).",
        );
        describe(
            SHARD_SWITCHING,
            Count,
            "1 while the shard is switching masters (statements are held).",
        );
        describe(
            POOL_IN_USE,
            Count,
            "Backend connections to the master lent to sessions or being opened.",
        );
        describe(
            POOL_IDLE,
            Count,
            "Idle pooled backend connections to the master.",
        );
        describe(
            POOL_WAITING,
            Count,
            "Pool checkouts waiting for a connection to the master now.",
        );
        describe(
            SESSIONS_PINNED,
            Count,
            "Sessions tied to their backend connection between statements in transaction pooling, by reason (docs/sharding.md, Pool modes).",
        );
        describe(
            POOL_MAX,
            Count,
            "Backend connections allowed per master (pool.max_per_shard).",
        );
        describe(
            SERVER_UP,
            Count,
            "1 when the last health probe reached the server.",
        );
        describe(
            SERVER_READ_ONLY,
            Count,
            "1 when the server has read_only on.",
        );
        describe(
            SERVER_SEMI_SYNC_MASTER,
            Count,
            "1 when the server's semi-sync master side is active.",
        );
        describe(
            SERVER_SEMI_SYNC_SLAVE,
            Count,
            "1 when the server's semi-sync slave side is active.",
        );
        describe(
            SERVER_REPLICATING,
            Count,
            "1 when both replication threads of the server run.",
        );
        describe(
            SERVER_LAG,
            Seconds,
            "Replication lag of the server (Seconds_Behind_Master), when it replicates.",
        );
        describe(
            SERVER_RTT,
            Seconds,
            "Round trip of the health probe's SELECT 1.",
        );
        describe(
            SERVER_FAILURES,
            Count,
            "Health probes of the server that failed in a row.",
        );
        StateGauges { recorder }
    }

    /// Sets a gauge with these labels.
    pub(super) fn set(&self, name: &'static str, labels: &[(&'static str, &str)], value: f64) {
        let labels: Vec<Label> = labels
            .iter()
            .map(|(k, v)| Label::new(*k, (*v).to_string()))
            .collect();
        self.recorder
            .register_gauge(&Key::from_parts(name, labels), &metadata())
            .set(value);
    }

    /// The Prometheus text of these gauges.
    pub(super) fn render(&self) -> String {
        self.recorder.handle().render()
    }
}

/// Renders the process-wide recorder (events), if installed.
pub(super) fn render_events(handle: Option<&PrometheusHandle>) -> String {
    handle.map(PrometheusHandle::render).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_gauges_render_with_help_and_escaped_labels() {
        let g = StateGauges::new();
        g.set(
            SERVER_UP,
            &[("shard", "s\"1\n"), ("role", "master"), ("addr", "h:1")],
            1.0,
        );
        g.set(TOPOLOGY_VERSION, &[], 7.0);
        let text = g.render();
        assert!(text.contains("# TYPE dbrouter_server_up gauge"), "{text}");
        assert!(text.contains("# HELP dbrouter_topology_version"), "{text}");
        assert!(text.contains("dbrouter_topology_version 7"), "{text}");
        // Quotes and newlines in label values are escaped, never break the line format.
        assert!(text.contains(r#"shard="s\"1\n""#), "{text}");
    }

    #[test]
    fn hot_path_calls_without_a_recorder_are_no_ops() {
        // ENABLED may be set by another test in this process; either way nothing panics.
        let started = Instant::now();
        statement(3, "shardX", "ok", started);
        error_sent("route");
        pool_wait(&mut None, "127.0.0.1:1");
        pool_waited(0.001);
        let before = open_connections();
        let guard = ConnectionGuard::new();
        assert_eq!(open_connections(), before + 1);
        drop(guard);
    }
}
