//! The router's ZooKeeper follower: keeps a session, watches the version counter, and on
//! every change reads the whole topology, validates it, builds a new routing snapshot and
//! swaps it in (never one older than a version already applied). It keeps the router's
//! ephemeral registration up to date with the version it serves.
//!
//! When ZooKeeper is unreachable the router keeps serving its last snapshot; when the
//! session expires it builds a new client, re-registers and re-reads everything. Watch
//! events can be lost across reconnects, so after every reconnect the counter is read
//! again rather than trusting the event stream.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tracing::{debug, error, info, warn};
use zookeeper_client as zk;

use super::zk::{ZkStore, ZkTarget};
use super::{now_ms, RouterDoc, RouterLease, TopologyError, SCHEMA};
use crate::config::ShardingConfig;
use crate::router::RoutingTable;

/// The router's ZooKeeper condition, as shown by `SHOW DBROUTER STATUS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZkCondition {
    /// `connected`, `disconnected`, `expired` or `connecting`.
    pub state: &'static str,
    /// Topology version served.
    pub applied_version: u64,
    /// The last problem (refused document, connection error), if any.
    pub last_error: Option<String>,
}

/// Shared, cheaply readable status of the follower.
#[derive(Debug)]
pub struct TopologyStatus {
    /// Where the topology lives (`file` or the ZooKeeper target).
    pub source: String,
    inner: Mutex<ZkCondition>,
    /// When the router last heard from ZooKeeper (a topology read or a lease renewal), in
    /// ms since `started`.
    last_contact_ms: AtomicU64,
    /// `topology.stale_serving_ms` (0: never stale).
    stale_after_ms: u64,
    started: Instant,
    /// Whether a follower runs (not for a config-file topology).
    followed: bool,
    /// Asks the follower to remove the registration and lease (the router stops).
    leave: tokio::sync::Notify,
    /// The follower has.
    left: tokio::sync::Notify,
    /// Asks the follower to read the topology now (a master answered read-only).
    read_now: tokio::sync::Notify,
    /// Topology reads the follower finished (successful or not).
    reads: AtomicU64,
}

impl TopologyStatus {
    fn new(
        source: String,
        state: &'static str,
        followed: bool,
        stale_after: Duration,
    ) -> Arc<Self> {
        Arc::new(TopologyStatus {
            source,
            inner: Mutex::new(ZkCondition {
                state,
                applied_version: 0,
                last_error: None,
            }),
            last_contact_ms: AtomicU64::new(0),
            stale_after_ms: stale_after.as_millis() as u64,
            started: Instant::now(),
            followed,
            leave: tokio::sync::Notify::new(),
            left: tokio::sync::Notify::new(),
            read_now: tokio::sync::Notify::new(),
            reads: AtomicU64::new(0),
        })
    }

    /// Status of a topology that comes from the config file.
    pub fn file() -> Arc<Self> {
        Self::new("file".into(), "none", false, Duration::ZERO)
    }

    /// The current condition.
    pub fn condition(&self) -> ZkCondition {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn update(&self, f: impl FnOnce(&mut ZkCondition)) {
        f(&mut self.inner.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// Whether the router has not heard from ZooKeeper for longer than
    /// `topology.stale_serving_ms`: it must not serve from its last topology any more (a
    /// user may have been moved meanwhile; docs/moves.md). Computed from the clock at each
    /// call, so that a router frozen for a while (SIGSTOP, a VM pause) refuses from its
    /// first statement after it wakes, before its ZooKeeper client notices anything.
    #[inline]
    pub fn is_stale(&self) -> bool {
        self.stale_after_ms > 0 && self.since_contact_ms() > self.stale_after_ms
    }

    /// Milliseconds since the router last heard from ZooKeeper.
    pub fn since_contact_ms(&self) -> u64 {
        let now = self.started.elapsed().as_millis() as u64;
        now.saturating_sub(self.last_contact_ms.load(Ordering::Relaxed))
    }

    /// Records that ZooKeeper answered (a topology read, a lease renewal).
    fn heard_from_zookeeper(&self) {
        let now = self.started.elapsed().as_millis() as u64;
        self.last_contact_ms.store(now, Ordering::Relaxed);
    }

    /// Whether a follower keeps the topology up to date (not a config-file topology).
    pub fn is_followed(&self) -> bool {
        self.followed
    }

    /// Asks the follower to read the topology now, and returns how many reads had
    /// finished before: [`TopologyStatus::reads`] passing it means a read began after the
    /// request.
    pub fn request_read(&self) -> u64 {
        let before = self.reads();
        self.read_now.notify_one();
        before
    }

    /// Topology reads the follower finished so far.
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Acquire)
    }

    /// Removes this router's registration and lease from ZooKeeper at once (a router that
    /// stops after its drain), waiting at most `within`.
    pub async fn leave(&self, within: Duration) {
        if !self.followed {
            return;
        }
        self.leave.notify_one();
        let _ = tokio::time::timeout(within, self.left.notified()).await;
    }
}

/// Settings of the follower.
#[derive(Debug, Clone)]
pub struct FollowerSettings {
    /// The store.
    pub target: ZkTarget,
    /// ZooKeeper session timeout.
    pub session_timeout: Duration,
    /// Connect timeout (per attempt).
    pub connect_timeout: Duration,
    /// This router's registration (its applied version is filled in).
    pub registration: RouterDoc,
    /// Table rules from the config.
    pub sharding: ShardingConfig,
    /// `topology.stale_serving_ms` (zero: serve the last topology forever).
    pub stale_serving: Duration,
}

impl FollowerSettings {
    /// How often the router renews its lease: often enough that a mover waits little
    /// more than `stale_serving` after the router vanished.
    fn heartbeat(&self) -> Duration {
        (self.stale_serving / 10).clamp(Duration::from_secs(1), Duration::from_secs(30))
    }

    fn lease(&self) -> RouterLease {
        RouterLease {
            schema: SCHEMA,
            id: self.registration.id.clone(),
            heartbeat_ms: self.heartbeat().as_millis() as u64,
            stale_serving_ms: self.stale_serving.as_millis() as u64,
        }
    }
}

/// How long a new topology version waits for statements routed with the previous one.
const IN_FLIGHT_DRAIN: Duration = Duration::from_secs(2);

/// Connects, applies the first snapshot, registers, and spawns the follower. Fails if no
/// topology could be loaded within `startup` (the router must not serve without one).
pub async fn start(
    settings: FollowerSettings,
    startup: Duration,
) -> Result<(Arc<ArcSwap<RoutingTable>>, Arc<TopologyStatus>), TopologyError> {
    let status = TopologyStatus::new(
        settings.target.to_string(),
        "connecting",
        true,
        settings.stale_serving,
    );
    let deadline = tokio::time::Instant::now() + startup;
    let (store, table) = loop {
        let attempt = async {
            let store = ZkStore::connect(
                &settings.target,
                settings.session_timeout,
                settings.connect_timeout,
            )
            .await?;
            let snapshot = store.read_all().await?;
            let table = snapshot.routing_table(&settings.sharding)?;
            Ok::<_, TopologyError>((store, table))
        };
        match attempt.await {
            Ok(ok) => break ok,
            Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
            Err(e) => {
                warn!(target = %settings.target, error = %e, "no topology yet; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    };
    info!(target = %settings.target, version = table.version, shards = table.shards.len(), "topology loaded");
    let routing = Arc::new(ArcSwap::from_pointee(table));
    let mut follower = Follower {
        settings,
        routing: Arc::clone(&routing),
        status: Arc::clone(&status),
        applied: routing.load().version,
        in_flight_drained: true,
        holds_acked: 0,
        held_at: Default::default(),
    };
    follower.holds_clear();
    follower.mark_connected();
    follower.register(&store).await;
    follower.status.heard_from_zookeeper();
    tokio::spawn(async move { follower.run(Some(store)).await });
    Ok((routing, status))
}

struct Follower {
    settings: FollowerSettings,
    routing: Arc<ArcSwap<RoutingTable>>,
    status: Arc<TopologyStatus>,
    applied: u64,
    /// Whether the statements routed before the last applied version have all finished.
    in_flight_drained: bool,
    /// The newest version whose holds this router acknowledges ([`RouterDoc`]).
    holds_acked: u64,
    /// When this router began holding each held user.
    held_at: std::collections::HashMap<Vec<u8>, Instant>,
}

impl Follower {
    fn mark_connected(&self) {
        let applied = self.applied;
        self.status.update(|c| {
            c.state = "connected";
            c.applied_version = applied;
        });
    }

    fn registration(&self) -> RouterDoc {
        let mut doc = self.settings.registration.clone();
        doc.schema = SCHEMA;
        doc.applied_version = self.applied;
        doc.applied_at_ms = now_ms();
        doc.holds_acked_version = self.holds_acked;
        doc
    }

    /// Times each user's hold on this router, from the version that applied it to the one
    /// that released it (`dbrouter_move_hold_seconds`): flipped if the user now goes to
    /// another shard, lifted (rolled back) if not.
    fn time_holds(&mut self, previous: &RoutingTable, next: &RoutingTable) {
        let now = Instant::now();
        for user in next.held_users() {
            self.held_at.entry(user.to_vec()).or_insert(now);
        }
        let released: Vec<Vec<u8>> = self
            .held_at
            .keys()
            .filter(|u| !next.is_held(u))
            .cloned()
            .collect();
        for user in released {
            let Some(since) = self.held_at.remove(&user) else {
                continue;
            };
            let before = previous.shard_name(previous.shard_for_key(&user).0);
            let after = next.shard_name(next.shard_for_key(&user).0);
            let outcome = if before == after { "lifted" } else { "flipped" };
            crate::metrics::move_hold_released(outcome, since.elapsed().as_secs_f64());
        }
    }

    /// Acknowledges the served version's holds if nothing they wait for remains: no
    /// statement routed with an older table in flight, and no transaction that began
    /// before a user's hold still open on that user's source shard (it may write the
    /// user's rows there: `router::open_transactions`). Returns whether the
    /// acknowledgement moved.
    fn holds_clear(&mut self) -> bool {
        if self.holds_acked >= self.applied {
            return false;
        }
        if !self.in_flight_drained {
            if !crate::router::in_flight::previous_drained() {
                return false;
            }
            self.in_flight_drained = true;
        }
        let table = self.routing.load();
        let open = table
            .held_sources()
            .into_iter()
            .any(|(shard, since)| crate::router::open_transactions::any_open_before(shard, since));
        if open {
            return false;
        }
        self.holds_acked = self.applied;
        true
    }

    async fn register(&self, store: &ZkStore) {
        if let Err(e) = store.register(&self.registration()).await {
            warn!(error = %e, "router registration failed; will retry");
            self.status
                .update(|c| c.last_error = Some(format!("registration: {e}")));
        }
        self.renew_lease(store).await;
    }

    async fn renew_lease(&self, store: &ZkStore) {
        match store.write_lease(&self.settings.lease()).await {
            // A router that has been out of contact long enough to refuse statements
            // serves again only once it has read the topology (`refresh`): a lease
            // renewed first (a router woken from SIGSTOP renews before it reads) must not
            // let it route with the table it had before the outage.
            Ok(()) if !self.status.is_stale() => self.status.heard_from_zookeeper(),
            Ok(()) => {}
            Err(e) => warn!(error = %e, "could not renew the router's lease"),
        }
    }

    /// Reads and applies the topology if its version is newer than the one served.
    async fn refresh(&mut self, store: &ZkStore) -> Result<(), TopologyError> {
        let snapshot = store.read_all().await?;
        if snapshot.version <= self.applied {
            return Ok(());
        }
        // Built on a blocking thread: with a million overrides it takes about a second,
        // which must not stall the listener and admin tasks sharing this runtime.
        let sharding = self.settings.sharding.clone();
        let table = tokio::task::spawn_blocking(move || snapshot.routing_table(&sharding))
            .await
            .map_err(|e| TopologyError::Zk(format!("building the routing table: {e}")))??;
        let mut table = table;
        let previous = self.routing.load_full();
        table.carry_hold_since(&previous);
        self.time_holds(&previous, &table);
        let version = table.version;
        // Built off the hot path; sessions pick it up with their next statement.
        self.routing.store(Arc::new(table));
        // Confirmed only once no statement routed with an older table is in flight (so
        // none reaches a master the new version says to hold), within a bound.
        self.in_flight_drained = crate::router::in_flight::advance_and_drain(IN_FLIGHT_DRAIN).await;
        if !self.in_flight_drained {
            warn!(version, "statements routed with the previous topology still in flight after {IN_FLIGHT_DRAIN:?}; confirming anyway (a move's hold is acknowledged only once they end)");
        }
        self.applied = version;
        self.holds_clear();
        self.status.update(|c| {
            c.applied_version = version;
            c.last_error = None;
        });
        info!(version, "topology applied");
        if let Err(e) = store.update_registration(&self.registration()).await {
            warn!(error = %e, "could not update the registration");
        }
        Ok(())
    }

    async fn run(&mut self, mut store: Option<ZkStore>) {
        let mut backoff = Duration::from_millis(200);
        loop {
            let current = match store.take() {
                Some(s) if !s.client().state().is_terminated() => s,
                _ => {
                    self.status.update(|c| c.state = "connecting");
                    match ZkStore::connect(
                        &self.settings.target,
                        self.settings.session_timeout,
                        self.settings.connect_timeout,
                    )
                    .await
                    {
                        Ok(s) => {
                            info!(target = %self.settings.target, "new ZooKeeper session; re-registering and re-reading everything");
                            self.register(&s).await;
                            self.mark_connected();
                            backoff = Duration::from_millis(200);
                            s
                        }
                        Err(e) => {
                            self.status.update(|c| {
                                c.state = "disconnected";
                                c.last_error = Some(e.to_string());
                            });
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(Duration::from_secs(5));
                            continue;
                        }
                    }
                }
            };
            let mut states = current.client().state_watcher();
            // Arm the watch first, then read: a change after the read fires the watch.
            let watched = tokio::time::timeout(
                self.settings.session_timeout,
                current.client().get_and_watch_data(&current.version_path()),
            )
            .await;
            let watcher = match watched {
                Ok(Ok((_, _, watcher))) => watcher,
                Ok(Err(e)) => {
                    warn!(error = %e, "cannot watch the topology version");
                    self.status.update(|c| c.last_error = Some(e.to_string()));
                    tokio::time::sleep(backoff).await;
                    if !matches!(e, zk::Error::SessionExpired | zk::Error::ClientClosed) {
                        store = Some(current);
                    }
                    continue;
                }
                Err(_) => {
                    self.status.update(|c| c.state = "disconnected");
                    store = Some(current);
                    continue;
                }
            };
            match self.refresh(&current).await {
                // Serving again only once the topology is read after the outage: a user
                // moved meanwhile is routed to its new shard from the first statement.
                Ok(()) => self.status.heard_from_zookeeper(),
                Err(e @ (TopologyError::Invalid { .. } | TopologyError::Ring(_))) => {
                    // A malformed or unknown-version document: keep the last good snapshot.
                    self.status.heard_from_zookeeper();
                    error!(error = %e, applied = self.applied, "refusing the topology in ZooKeeper; serving the last good one");
                    self.status.update(|c| c.last_error = Some(e.to_string()));
                }
                Err(e) => {
                    warn!(error = %e, "could not read the topology");
                    self.status.update(|c| c.last_error = Some(e.to_string()));
                }
            }
            self.status.reads.fetch_add(1, Ordering::AcqRel);
            // Wait for the next change, or for the session to break or reconnect.
            let changed = watcher.changed();
            tokio::pin!(changed);
            let mut heartbeat = tokio::time::interval(self.settings.heartbeat());
            heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // While a hold waits for transactions to end: looked at every 2 ms.
            let mut hold_check = tokio::time::interval(Duration::from_millis(2));
            hold_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = hold_check.tick(), if self.holds_acked < self.applied => {
                        if self.holds_clear() {
                            debug!(version = self.applied, "holds acknowledged");
                            if let Err(e) = current.update_registration(&self.registration()).await {
                                warn!(error = %e, "could not update the registration");
                            }
                        }
                    }
                    _ = self.status.leave.notified() => {
                        if let Err(e) = current.deregister(&self.settings.registration.id).await {
                            warn!(error = %e, "could not remove the registration; it expires with the session");
                        }
                        info!("registration and lease removed");
                        self.status.left.notify_one();
                        return;
                    }
                    _ = heartbeat.tick() => self.renew_lease(&current).await,
                    _ = self.status.read_now.notified() => {
                        // Read again (and re-arm the watch) at once.
                        store = Some(current);
                        break;
                    }
                    event = &mut changed => {
                        if event.session_state.is_terminated() {
                            warn!(state = %event.session_state, "ZooKeeper session ended");
                            self.status.update(|c| c.state = "expired");
                        } else {
                            store = Some(current);
                        }
                        break;
                    }
                    state = states.changed() => {
                        match state {
                            zk::SessionState::Disconnected => {
                                warn!("ZooKeeper disconnected; serving the last topology");
                                    self.status.update(|c| c.state = "disconnected");
                            }
                            zk::SessionState::SyncConnected | zk::SessionState::ConnectedReadOnly => {
                                info!("ZooKeeper reconnected; re-reading the topology");
                                self.mark_connected();
                                // Events may have been lost while disconnected.
                                store = Some(current);
                                break;
                            }
                            s if s.is_terminated() => {
                                warn!(state = %s, "ZooKeeper session ended; building a new one");
                                    self.status.update(|c| c.state = "expired");
                                break;
                            }
                            _ => {}
                        }
                    }
                }
            }
        }
    }
}
