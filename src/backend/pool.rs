//! Backend connections pools, one per shard master, shared by every session.
//!
//! In session pooling (`pool.mode = "session"`) a session borrows a connection per shard
//! it touches and keeps it until it ends; a returned connection is reset before anyone
//! else may have it: COM_RESET_CONNECTION (variables, user variables, temporary tables,
//! locks, prepared statements, open transaction), then the database and collation of its
//! pool key are restored. A connection that cannot be reset cleanly is closed instead.
//! In transaction pooling a session gives its connection back between transactions
//! ([`Pools::give_back`]) with the session state it carries
//! ([`super::carried::Carried`]); a checkout prefers an idle connection that carries the
//! state it asks for, and on the calling thread ([`Pools::checkout`]).
//! Idle connections are keyed by everything a login fixes: master address, account,
//! capability flags, collation and initial database.
//!
//! A checkout that finds every connection of the master in use waits in the master's
//! queue (woken in arrival order when a connection comes back or a slot frees, a waiter on
//! the returning thread first within a bound: [`super::queue`]), at most `pool.wait_ms`,
//! and at most `pool.max_waiting_per_shard` checkouts wait at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tokio::sync::{Notify, OwnedSemaphorePermit};

use super::connection::{connect, BackendConn, BackendError, LoginOptions};
use super::exchange::ExchangeError;
use super::pipeline::{Expect, Pipeline, PipelineError};
use super::queue::{pick_waiter, Waiter};
use crate::net::{NetError, Slots};
use crate::protocol::command::{COM_INIT_DB, COM_QUERY, COM_RESET_CONNECTION};
use crate::protocol::response::ResponseKind;

/// What a pooled connection was logged in with; only equal keys may share connections.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PoolKey {
    /// Master address.
    pub addr: String,
    /// The account the connection is logged in as (the client's own, a mapped one, or the
    /// service account): a connection serves sessions of that account only.
    pub user: String,
    /// Capability flags negotiated at login.
    pub capabilities: u32,
    /// MariaDB extended capabilities negotiated at login.
    pub mariadb_capabilities: u32,
    /// Collation id at login.
    pub collation: u16,
    /// Initial database.
    pub database: Option<String>,
}

/// Why no connection could be had.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// Every connection of this master is in use and none came free in time.
    #[error("all {max} connections to {addr} are in use (pool.max_per_shard); none came free within {waited:?}")]
    Exhausted {
        /// The master.
        addr: String,
        /// The limit.
        max: usize,
        /// How long the session waited.
        waited: Duration,
    },
    /// Every connection of this master is in use and the wait queue is full.
    #[error("all {max} connections to {addr} are in use (pool.max_per_shard) and {waiting} statements wait for one already (pool.max_waiting_per_shard)")]
    QueueFull {
        /// The master.
        addr: String,
        /// The limit.
        max: usize,
        /// The queue's length.
        waiting: usize,
    },
    /// Dialling or logging in failed.
    #[error(transparent)]
    Connect(#[from] BackendError),
}

/// Pool limits.
#[derive(Debug, Clone, Copy)]
pub struct PoolLimits {
    /// Connections per master, in use plus idle.
    pub max_per_master: usize,
    /// Idle connections kept per master.
    pub max_idle_per_master: usize,
    /// How long a checkout waits for a free slot.
    pub wait: Duration,
    /// Most checkouts waiting per master at once.
    pub max_waiting: usize,
    /// Idle connections older than this are closed instead of reused.
    pub idle_timeout: Duration,
    /// Connect plus login timeout.
    pub connect_timeout: Duration,
}

impl PoolLimits {
    /// The limits `[pool]` and `[timeouts]` of a config set (idle connections live 5 min;
    /// in transaction pooling up to `max_per_shard` of them are kept).
    pub fn from_config(config: &crate::config::Config) -> Self {
        PoolLimits {
            max_per_master: config.pool.max_per_shard,
            // In transaction pooling the idle connections are the working set that
            // sessions take and give back between transactions: all of them are kept.
            max_idle_per_master: match config.pool.mode {
                crate::config::PoolMode::Session => config.pool.max_idle_per_shard,
                crate::config::PoolMode::Transaction => config
                    .pool
                    .max_idle_per_shard
                    .max(config.pool.max_per_shard),
            },
            wait: Duration::from_millis(config.pool.wait_ms),
            max_waiting: config.pool.max_waiting_per_shard,
            idle_timeout: Duration::from_secs(300),
            connect_timeout: config.timeouts.connect(),
        }
    }
}

/// A connection lent to a session.
#[derive(Debug)]
pub struct PooledConn {
    /// The connection.
    pub conn: BackendConn,
    key: PoolKey,
    _permit: Slot,
}

impl PooledConn {
    /// What the connection was logged in with.
    pub fn key(&self) -> &PoolKey {
        &self.key
    }
}

/// A connection's place in its master's pool: dropping it (the connection closed) frees
/// the place and wakes the first checkout waiting for one.
#[derive(Debug)]
struct Slot {
    _permit: OwnedSemaphorePermit,
    freed: Arc<Notify>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.freed.notify_one();
    }
}

struct Idle {
    conn: BackendConn,
    since: Instant,
    permit: Slot,
}

struct MasterPool {
    slots: Arc<Slots>,
    idle: HashMap<PoolKey, Vec<Idle>>,
    idle_count: usize,
    /// Woken (one waiter at a time) when a slot frees: a connection closed.
    freed: Arc<Notify>,
    /// Checkouts waiting for a connection given back, in arrival order.
    queue: std::collections::VecDeque<Waiter<PoolKey, Idle>>,
    /// Checkouts waiting now.
    waiting: usize,
    /// Checkouts waiting now, by key.
    waiting_keys: HashMap<PoolKey, usize>,
    /// `dbrouter_pool_waits_total` of this master, registered at its first wait (at a
    /// thousand clients on a few dozen connections nearly every statement waits).
    wait_counter: Option<::metrics::Counter>,
}

/// This checkout's place in the queue.
struct Queued<'a> {
    waiting: Waiting<'a>,
    /// None while it is being put back in the queue.
    handoff: Option<tokio::sync::oneshot::Receiver<Idle>>,
}

/// An idle or handed-over connection made the caller's: registered with its thread's
/// runtime; None when its server closed it meanwhile (seen without a round trip).
///
/// The check costs a syscall (a peek) only when it may find something: a connection that
/// idled on this thread is peeked only if the thread's reactor saw it readable (bytes or
/// the server's FIN) since its last answer was read; one moved here from another thread
/// has no readiness yet and is always peeked. (In transaction pooling that peek was one
/// of seven syscalls per statement.)
fn lend(idle: Idle, key: &PoolKey) -> Option<PooledConn> {
    let moved = !idle.conn.is_home();
    match idle.conn.bring_home() {
        Ok(conn) if (moved || conn.io.may_have_input()) && conn.io.looks_closed() => {
            crate::metrics::pool_discarded(&key.addr);
            None
        }
        Ok(mut conn) => {
            conn.uses += 1;
            Some(PooledConn {
                conn,
                key: key.clone(),
                _permit: idle.permit,
            })
        }
        // Closed; its slot is free again (the permit was dropped with it).
        Err(_) => None,
    }
}

/// All pools of this process.
pub struct Pools {
    /// Replaced whole by [`Pools::resize`] (a config reload).
    limits: ArcSwap<PoolLimits>,
    /// TLS to the masters (`[backend.tls]`).
    tls: Option<Arc<crate::net::BackendTls>>,
    masters: Mutex<HashMap<String, MasterPool>>,
}

impl std::fmt::Debug for Pools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pools")
            .field("limits", &*self.limits.load())
            .finish()
    }
}

impl Pools {
    /// Empty pools with these limits, over clear-text connections.
    pub fn new(limits: PoolLimits) -> Arc<Self> {
        Self::with_tls(limits, None)
    }

    /// Empty pools with these limits whose connections use TLS when `tls` is given.
    pub fn with_tls(limits: PoolLimits, tls: Option<Arc<crate::net::BackendTls>>) -> Arc<Self> {
        Arc::new(Pools {
            limits: ArcSwap::from_pointee(limits),
            tls,
            masters: Mutex::new(HashMap::new()),
        })
    }

    fn with_master<T>(&self, addr: &str, f: impl FnOnce(&mut MasterPool) -> T) -> T {
        let mut masters = self.masters.lock().unwrap_or_else(|e| e.into_inner());
        // Looked up without building a key: this runs several times per statement.
        if let Some(pool) = masters.get_mut(addr) {
            return f(pool);
        }
        let pool = masters
            .entry(addr.to_string())
            .or_insert_with(|| MasterPool {
                slots: Slots::new(self.limits.load().max_per_master),
                idle: HashMap::new(),
                idle_count: 0,
                freed: Arc::new(Notify::new()),
                queue: std::collections::VecDeque::new(),
                waiting: 0,
                waiting_keys: HashMap::new(),
                wait_counter: None,
            });
        f(pool)
    }

    /// Lends a connection for `key`: an idle one if there is one (preferring one that
    /// carries the session state `state` and lives on the calling thread), else a new
    /// login with `login` (whose database, collation and capabilities must match the
    /// key). When the master's slots are all taken, an idle connection of another key is
    /// closed to make room, or the checkout waits in the master's queue up to the pool's
    /// wait time: a connection of its key given back goes straight to the first checkout
    /// waiting for that key, and a freed slot (a connection closed) wakes the waiters to
    /// open one. While checkouts of its key wait, a new one queues behind them.
    pub async fn checkout(
        &self,
        key: PoolKey,
        login: &LoginOptions,
        state: u64,
    ) -> Result<PooledConn, PoolError> {
        let limits = self.limits.load_full();
        let (slots, freed) = self.with_master(&key.addr, |pool| {
            (Arc::clone(&pool.slots), Arc::clone(&pool.freed))
        });
        let mut queued: Option<Queued<'_>> = None;
        // The server's last "too many connections", reported if the wait runs out.
        let mut refused = None;
        let mut refused_now = false;
        loop {
            // Registered before looking, so that a slot freed between the look and the
            // wait is not missed.
            let notified = freed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            // Counted per key, not found by a walk of the queue: a thousand clients may
            // wait on a few dozen connections.
            let ahead = queued.is_none()
                && self.with_master(&key.addr, |pool| {
                    pool.waiting_keys.get(&key).is_some_and(|n| *n > 0)
                });
            if !ahead {
                if let Some(idle) = self.take_idle(&key, state) {
                    match lend(idle, &key) {
                        Some(conn) => return Ok(conn),
                        None => continue,
                    }
                }
                let permit = match slots.try_acquire() {
                    Some(permit) => Some(Slot {
                        _permit: permit,
                        freed: Arc::clone(&freed),
                    }),
                    None => self.evict_idle(&key.addr),
                };
                if let Some(permit) = permit {
                    let tls = self.tls.as_deref();
                    let connected =
                        match connect(&key.addr, login, limits.connect_timeout, tls).await {
                            // The global sql_mode and the login character set decide how the
                            // session's statements are read on it.
                            Ok(mut conn) => learn_dialect(&mut conn, limits.connect_timeout)
                                .await
                                .map(|()| conn),
                            Err(e) => Err(e),
                        };
                    match connected {
                        Ok(mut conn) => {
                            conn.uses = 1;
                            return Ok(PooledConn {
                                conn,
                                key,
                                _permit: permit,
                            });
                        }
                        // The server is out of connections (its limits, shared with other
                        // clients, are below pool.max_per_shard): as good as an exhausted
                        // pool, so wait for a connection to come free, up to pool.wait_ms.
                        Err(e) if out_of_connections(&e) => {
                            drop(permit);
                            refused = Some(e);
                            refused_now = true;
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            let q = match &mut queued {
                Some(q) => q,
                None => {
                    let (handoff, wait) = tokio::sync::oneshot::channel();
                    let admitted = self.with_master(&key.addr, |pool| {
                        if pool.waiting >= limits.max_waiting {
                            return Err(pool.waiting);
                        }
                        pool.waiting += 1;
                        *pool.waiting_keys.entry(key.clone()).or_default() += 1;
                        pool.queue.push_back(Waiter::new(key.clone(), handoff));
                        crate::metrics::pool_wait(&mut pool.wait_counter, &key.addr);
                        Ok(())
                    });
                    if let Err(queue) = admitted {
                        crate::metrics::pool_exhausted(&key.addr);
                        return Err(PoolError::QueueFull {
                            addr: key.addr.clone(),
                            max: slots.max(),
                            waiting: queue,
                        });
                    }
                    queued.insert(Queued {
                        waiting: Waiting {
                            pools: self,
                            key: key.clone(),
                            since: tokio::time::Instant::now(),
                        },
                        handoff: Some(wait),
                    })
                }
            };
            let deadline = q.waiting.since + limits.wait;
            let now = tokio::time::Instant::now();
            if now >= deadline {
                if let Some(e) = refused {
                    return Err(e.into());
                }
                crate::metrics::pool_exhausted(&key.addr);
                return Err(PoolError::Exhausted {
                    addr: key.addr.clone(),
                    max: slots.max(),
                    waited: limits.wait,
                });
            }
            // A server that refused a new login just now is tried again in a moment (the
            // slot this checkout just freed must not wake it at once).
            let retry_soon = std::mem::take(&mut refused_now);
            let wake = if retry_soon {
                deadline.min(now + Duration::from_millis(20))
            } else {
                deadline
            };
            let handed = async {
                match q.handoff.as_mut() {
                    Some(rx) => rx.await.ok(),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                idle = handed => {
                    q.handoff = None;
                    if let Some(conn) = idle.and_then(|idle| lend(idle, &key)) {
                        return Ok(conn);
                    }
                    // Closed meanwhile: back in the queue, at its end.
                    let (handoff, wait) = tokio::sync::oneshot::channel();
                    self.with_master(&key.addr, |pool| {
                        pool.queue.push_back(Waiter::new(key.clone(), handoff))
                    });
                    q.handoff = Some(wait);
                }
                () = &mut notified, if !retry_soon => {}
                () = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    /// Takes back the connection `serial` if it is still idle and nobody used it since
    /// this session gave it back (its `uses` unchanged): what the previous statement left
    /// on it (`ROW_COUNT()`, warnings) is still there.
    pub fn take_back(&self, key: &PoolKey, serial: u64, uses: u64) -> Option<PooledConn> {
        let idle = self.with_master(&key.addr, |pool| {
            let list = pool.idle.get_mut(key)?;
            let at = list
                .iter()
                .position(|i| i.conn.serial == serial && i.conn.uses == uses)?;
            pool.idle_count -= 1;
            Some(list.swap_remove(at))
        })?;
        lend(idle, key)
    }

    /// Takes a connection back from a session in transaction pooling, with the session
    /// state it carries (no reset): handed to the first checkout waiting for its key, or
    /// kept for the next one.
    pub fn give_back(&self, conn: PooledConn) {
        let PooledConn {
            conn,
            key,
            _permit: permit,
        } = conn;
        // Idle ones are bounded by `max_idle_per_master` (in transaction pooling all the
        // connections allowed: `PoolLimits::from_config`); the surplus closes.
        let max = self.limits.load().max_idle_per_master;
        self.put_back(key, conn, permit, max);
    }

    /// A connection coming back: to the first checkout waiting for its key; closed when
    /// only checkouts of other keys wait (its slot is theirs then) or `max_idle` are idle;
    /// else kept idle.
    fn put_back(&self, key: PoolKey, conn: BackendConn, permit: Slot, max_idle: usize) {
        let addr = key.addr.clone();
        let mut idle = Idle {
            conn,
            since: Instant::now(),
            permit,
        };
        self.with_master(&addr, |pool| {
            while let Some(at) = pick_waiter(&mut pool.queue, &key) {
                let Some(waiter) = pool.queue.remove(at) else {
                    break;
                };
                match waiter.handoff.send(idle) {
                    Ok(()) => return,
                    Err(back) => idle = back,
                }
            }
            if !pool.queue.is_empty() || pool.idle_count >= max_idle {
                return; // dropped: closed, and its slot freed for the waiters
            }
            pool.idle_count += 1;
            pool.idle.entry(key).or_default().push(idle);
        });
    }

    /// A fresh-enough idle connection for exactly this key: the newest one that carries
    /// `state` on this thread, else carrying `state`, else on this thread, else the newest.
    fn take_idle(&self, key: &PoolKey, state: u64) -> Option<Idle> {
        let now = Instant::now();
        let idle_timeout = self.limits.load().idle_timeout;
        self.with_master(&key.addr, |pool| {
            let list = pool.idle.get_mut(key)?;
            // Expired ones (at the front: the oldest) are dropped, closing them.
            let expired = list
                .iter()
                .take_while(|i| now.duration_since(i.since) >= idle_timeout)
                .count();
            list.drain(..expired);
            pool.idle_count -= expired;
            let rank =
                |i: &Idle| u8::from(i.conn.carried.state == state) * 2 + u8::from(i.conn.is_home());
            let mut best: Option<(usize, u8)> = None;
            for (at, idle) in list.iter().enumerate().rev() {
                let r = rank(idle);
                if best.is_none_or(|(_, b)| r > b) {
                    best = Some((at, r));
                    if r == 3 {
                        break;
                    }
                }
            }
            let (at, _) = best?;
            pool.idle_count -= 1;
            Some(list.remove(at))
        })
    }

    /// Closes one idle connection (of any key) of a master and hands over its slot.
    fn evict_idle(&self, addr: &str) -> Option<Slot> {
        self.with_master(addr, |pool| {
            let list = pool.idle.values_mut().find(|l| !l.is_empty())?;
            let idle = list.pop()?;
            pool.idle_count -= 1;
            Some(idle.permit)
        })
    }

    /// Takes a connection back. A `clean` one (not mid-response) is reset in the
    /// background and kept for reuse if the reset succeeds; anything else is closed.
    pub fn checkin(self: &Arc<Self>, conn: PooledConn, clean: bool) {
        if !clean {
            return; // dropping closes the socket and frees the slot
        }
        let pools = Arc::clone(self);
        tokio::spawn(async move {
            let PooledConn {
                mut conn,
                key,
                _permit: permit,
            } = conn;
            let mut pipeline = Pipeline::new();
            push_reset(&mut pipeline, &key);
            if let Err(e) = run_reset(&mut conn, pipeline).await {
                tracing::debug!(addr = %key.addr, error = %e, "reset failed; connection closed");
                return;
            }
            let max_idle = pools.limits.load().max_idle_per_master;
            pools.put_back(key, conn, permit, max_idle);
        });
    }

    /// Takes out the idle connections that should not wait any longer: all those to a
    /// server that is no longer a master (`is_master` says no: the topology moved on), and
    /// those idle for longer than the idle timeout. The caller says goodbye to them
    /// ([`sweep`]); their slots are free at once.
    pub fn retire_idle(&self, is_master: &dyn Fn(&str) -> bool) -> Vec<BackendConn> {
        let now = Instant::now();
        let limits = self.limits.load();
        let mut retired = Vec::new();
        let mut masters = self.masters.lock().unwrap_or_else(|e| e.into_inner());
        for (addr, pool) in masters.iter_mut() {
            let demoted = !is_master(addr);
            for list in pool.idle.values_mut() {
                let (gone, kept): (Vec<Idle>, Vec<Idle>) = std::mem::take(list)
                    .into_iter()
                    .partition(|i| demoted || now.duration_since(i.since) >= limits.idle_timeout);
                *list = kept;
                pool.idle_count = pool.idle_count.saturating_sub(gone.len());
                retired.extend(gone.into_iter().map(|i| i.conn));
            }
            // Smaller limits (a reload): idle connections beyond them go, oldest first;
            // connections lent to sessions are never taken away.
            let over_max = (pool.slots.in_use()).saturating_sub(limits.max_per_master);
            let mut surplus = pool
                .idle_count
                .saturating_sub(limits.max_idle_per_master)
                .max(over_max.min(pool.idle_count));
            while surplus > 0 {
                let Some(list) = pool.idle.values_mut().find(|l| !l.is_empty()) else {
                    break;
                };
                // The oldest of the list: reuse pops the newest.
                let idle = list.remove(0);
                pool.idle_count -= 1;
                surplus -= 1;
                retired.push(idle.conn);
            }
            pool.idle.retain(|_, list| !list.is_empty());
        }
        retired
    }

    /// New limits (a config reload): larger bounds at once; smaller ones as connections
    /// come back (idle ones beyond them are closed by the next [`sweep`]), never by taking
    /// a connection away from a session.
    pub fn resize(&self, limits: PoolLimits) {
        let max = limits.max_per_master;
        self.limits.store(Arc::new(limits));
        let masters = self.masters.lock().unwrap_or_else(|e| e.into_inner());
        for pool in masters.values() {
            pool.slots.resize(max);
        }
    }

    /// The connections allowed per master now (`pool.max_per_shard`).
    pub fn max_per_master(&self) -> usize {
        self.limits.load().max_per_master
    }

    /// Idle connections to `addr` right now.
    pub fn idle_count(&self, addr: &str) -> usize {
        self.with_master(addr, |pool| pool.idle_count)
    }

    /// Checkouts waiting for a connection to `addr` right now.
    pub fn waiting(&self, addr: &str) -> usize {
        self.with_master(addr, |pool| pool.waiting)
    }

    /// Connections to `addr` lent to sessions (or being opened) right now.
    pub fn in_use(&self, addr: &str) -> usize {
        self.with_master(addr, |pool| {
            pool.slots.in_use().saturating_sub(pool.idle_count)
        })
    }
}

/// Whether a login was refused because the server or the service account is out of
/// connections (1040 max_connections, 1203 max_user_connections, 1226 the account's
/// MAX_USER_CONNECTIONS): a connection may come free, as in an exhausted pool.
fn out_of_connections(e: &BackendError) -> bool {
    match e {
        BackendError::Server { error, .. } => match error.code {
            1040 | 1203 => true,
            1226 => error.message.contains("max_user_connections"),
            _ => false,
        },
        _ => false,
    }
}

/// Adds to `pipeline` what restores a connection to the state of a fresh login with its
/// key. COM_RESET_CONNECTION keeps the current database, so it is set again (or, for a
/// key without one, checked to be none: a connection that cannot be brought back is
/// closed). The reset brought back the global sql_mode, which ops may have changed since
/// the login: the dialect is read again in the same round trip.
pub fn push_reset(pipeline: &mut Pipeline, key: &PoolKey) {
    pipeline.push(vec![COM_RESET_CONNECTION], ResponseKind::Single, Expect::Ok);
    if let Some(db) = &key.database {
        let mut cmd = vec![COM_INIT_DB];
        cmd.extend_from_slice(db.as_bytes());
        pipeline.push(cmd, ResponseKind::Single, Expect::Ok);
    }
    // The login's collation, and its character set for the client and the results, as a
    // login with it sets them (`character_set_client = <id>` would take only a character
    // set's default collation id: 224, utf8mb4_unicode_ci, is refused).
    let c = key.collation;
    for sql in [
        format!("SET collation_connection = {c}"),
        "SET character_set_client = @@character_set_connection, character_set_results = @@character_set_connection".to_string(),
    ] {
        let mut set = vec![COM_QUERY];
        set.extend_from_slice(sql.as_bytes());
        pipeline.push(set, ResponseKind::Query, Expect::Ok);
    }
    if key.database.is_none() {
        let check = b"\x03SELECT DATABASE() IS NULL".to_vec();
        pipeline.push(check, ResponseKind::Query, Expect::Row(b"\x011"));
    }
    pipeline.read_dialect();
}

/// Runs a reset ([`push_reset`]) within 5 s; the connection then carries nothing.
async fn run_reset(conn: &mut BackendConn, pipeline: Pipeline) -> Result<(), PipelineError> {
    let deadline = Duration::from_secs(5);
    tokio::time::timeout(deadline, pipeline.run(conn, deadline))
        .await
        .map_err(|_| ExchangeError::Net(NetError::Timeout(deadline)))??;
    conn.carried = super::carried::Carried::fresh();
    Ok(())
}

/// A checkout in its master's wait queue: counted out when it leaves (with a connection,
/// an error, or abandoned by its session), its wait recorded.
struct Waiting<'a> {
    pools: &'a Pools,
    key: PoolKey,
    since: tokio::time::Instant,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.pools.with_master(&self.key.addr, |pool| {
            pool.waiting = pool.waiting.saturating_sub(1);
            if let Some(n) = pool.waiting_keys.get_mut(&self.key) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    pool.waiting_keys.remove(&self.key);
                }
            }
        });
        crate::metrics::pool_waited(self.since.elapsed().as_secs_f64());
    }
}

/// Reads how the server lexes statements on a new connection ([`Pipeline::read_dialect`]).
async fn learn_dialect(conn: &mut BackendConn, timeout: Duration) -> Result<(), BackendError> {
    let mut pipeline = Pipeline::new();
    pipeline.read_dialect();
    pipeline
        .run(conn, timeout)
        .await
        .map_err(|e| BackendError::Protocol {
            addr: conn.addr.clone(),
            message: format!("reading sql_mode and character_set_client: {e}"),
        })
}

/// Retires the idle connections [`Pools::retire_idle`] picks and says goodbye
/// (COM_QUIT) to each, so the demoted master does not log them as aborted. Returns how
/// many. Run by the pool sweeper (`frontend::listener`) once a second.
pub async fn sweep(pools: &Pools, is_master: &(dyn Fn(&str) -> bool + Sync)) -> usize {
    let retired = pools.retire_idle(is_master);
    let count = retired.len();
    for conn in retired {
        // Registered with a serving thread's runtime: move it here first.
        if let Ok(conn) = conn.bring_home() {
            let _ = tokio::time::timeout(Duration::from_secs(1), conn.quit()).await;
        }
    }
    count
}
