//! Backend connection pools, one per shard master, shared by every session.
//!
//! A session borrows a connection per shard it touches and keeps it until it ends
//! (session-pinned pooling, like pgbouncer's session mode): the pool saves the connect
//! and login round trips of short-lived clients and bounds the connections per master.
//! Connections carry session state, so a returned connection is reset before anyone
//! else may have it: COM_RESET_CONNECTION (variables, user variables, temporary tables,
//! locks, prepared statements, open transaction), then the database and collation of its
//! pool key are restored. A connection that cannot be reset cleanly is closed instead.
//! Idle connections are keyed by everything a login fixes: master address, account,
//! capability flags, collation and initial database.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tokio::sync::OwnedSemaphorePermit;

use super::connection::{connect, BackendConn, BackendError, LoginOptions};
use super::exchange::ExchangeError;
use super::pipeline::{Expect, Pipeline, PipelineError};
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
    /// Idle connections older than this are closed instead of reused.
    pub idle_timeout: Duration,
    /// Connect plus login timeout.
    pub connect_timeout: Duration,
}

impl PoolLimits {
    /// The limits `[pool]` and `[timeouts]` of a config set (idle connections live 5 min).
    pub fn from_config(config: &crate::config::Config) -> Self {
        PoolLimits {
            max_per_master: config.pool.max_per_shard,
            max_idle_per_master: config.pool.max_idle_per_shard,
            wait: Duration::from_millis(config.pool.wait_ms),
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
    _permit: OwnedSemaphorePermit,
}

struct Idle {
    conn: BackendConn,
    since: Instant,
    permit: OwnedSemaphorePermit,
}

struct MasterPool {
    slots: Arc<Slots>,
    idle: HashMap<PoolKey, Vec<Idle>>,
    idle_count: usize,
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
        let pool = masters
            .entry(addr.to_string())
            .or_insert_with(|| MasterPool {
                slots: Slots::new(self.limits.load().max_per_master),
                idle: HashMap::new(),
                idle_count: 0,
            });
        f(pool)
    }

    /// Lends a connection for `key`: an idle one if there is one, else a new login with
    /// `login` (whose database, collation and capabilities must match the key). When the
    /// master's slots are all taken, an idle connection of another key is closed to make
    /// room, or the checkout waits — for a slot, or for a connection of its key to come
    /// back — up to the pool's wait time.
    pub async fn checkout(
        &self,
        key: PoolKey,
        login: &LoginOptions,
    ) -> Result<PooledConn, PoolError> {
        let limits = self.limits.load_full();
        let deadline = tokio::time::Instant::now() + limits.wait;
        let slots = self.with_master(&key.addr, |pool| Arc::clone(&pool.slots));
        let mut waited = false;
        // The server's last "too many connections", reported if the wait runs out.
        let mut refused = None;
        loop {
            if let Some(idle) = self.take_idle(&key) {
                match idle.conn.bring_home() {
                    // Its server closed it while it idled (KILL, wait_timeout, a restart):
                    // seen without a round trip, never lent out to fail a statement.
                    Ok(conn) if conn.io.looks_closed() => {
                        crate::metrics::pool_discarded(&key.addr);
                        continue;
                    }
                    Ok(conn) => {
                        return Ok(PooledConn {
                            conn,
                            key,
                            _permit: idle.permit,
                        })
                    }
                    // Closed; its slot is free again (the permit was dropped with it).
                    Err(_) => continue,
                }
            }
            let permit = match slots.try_acquire() {
                Some(permit) => Some(permit),
                None => self.evict_idle(&key.addr),
            };
            if let Some(permit) = permit {
                let tls = self.tls.as_deref();
                let connected = match connect(&key.addr, login, limits.connect_timeout, tls).await {
                    // The global sql_mode and the login character set decide how the
                    // session's statements are read on it.
                    Ok(mut conn) => learn_dialect(&mut conn, limits.connect_timeout)
                        .await
                        .map(|()| conn),
                    Err(e) => Err(e),
                };
                match connected {
                    Ok(conn) => {
                        return Ok(PooledConn {
                            conn,
                            key,
                            _permit: permit,
                        })
                    }
                    // The server is out of connections (its limits, shared with other
                    // clients, are below pool.max_per_shard): as good as an exhausted pool,
                    // so wait for a connection to come free, up to pool.wait_ms.
                    Err(e) if out_of_connections(&e) && tokio::time::Instant::now() < deadline => {
                        drop(permit);
                        refused = Some(e);
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            if tokio::time::Instant::now() >= deadline {
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
            if !waited {
                waited = true;
                crate::metrics::pool_wait(&key.addr);
            }
            // A slot frees when a session ends; a connection of our key comes back after
            // its reset. Either shows up at the next look.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// A fresh-enough idle connection for exactly this key.
    fn take_idle(&self, key: &PoolKey) -> Option<Idle> {
        let now = Instant::now();
        let idle_timeout = self.limits.load().idle_timeout;
        self.with_master(&key.addr, |pool| {
            let list = pool.idle.get_mut(key)?;
            while let Some(idle) = list.pop() {
                pool.idle_count -= 1;
                if now.duration_since(idle.since) < idle_timeout {
                    return Some(idle);
                }
            }
            None
        })
    }

    /// Closes one idle connection (of any key) of a master and hands over its slot.
    fn evict_idle(&self, addr: &str) -> Option<OwnedSemaphorePermit> {
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
            if let Err(e) = reset(&mut conn, &key).await {
                tracing::debug!(addr = %key.addr, error = %e, "reset failed; connection closed");
                return;
            }
            let addr = key.addr.clone();
            pools.with_master(&addr, |pool| {
                if pool.idle_count >= pools.limits.load().max_idle_per_master {
                    return;
                }
                pool.idle_count += 1;
                pool.idle.entry(key).or_default().push(Idle {
                    conn,
                    since: Instant::now(),
                    permit,
                });
            });
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

/// Restores a returned connection to the state of a fresh login with its key, in one
/// round trip ([`Pipeline`]). COM_RESET_CONNECTION keeps the current database, so it is
/// set again (or, for a key without one, checked to be none: a connection that cannot be
/// brought back is closed). The reset brought back the global sql_mode, which ops may
/// have changed since the login: the dialect is read again in the same round trip.
async fn reset(conn: &mut BackendConn, key: &PoolKey) -> Result<(), PipelineError> {
    let mut pipeline = Pipeline::new();
    pipeline.push(vec![COM_RESET_CONNECTION], ResponseKind::Single, Expect::Ok);
    if let Some(db) = &key.database {
        let mut cmd = vec![COM_INIT_DB];
        cmd.extend_from_slice(db.as_bytes());
        pipeline.push(cmd, ResponseKind::Single, Expect::Ok);
    }
    let c = key.collation;
    let mut set = vec![COM_QUERY];
    set.extend_from_slice(
        format!("SET character_set_client = {c}, character_set_results = {c}, collation_connection = {c}")
            .as_bytes(),
    );
    pipeline.push(set, ResponseKind::Query, Expect::Ok);
    if key.database.is_none() {
        let check = b"\x03SELECT DATABASE() IS NULL".to_vec();
        pipeline.push(check, ResponseKind::Query, Expect::Row(b"\x011"));
    }
    pipeline.read_dialect();
    let deadline = Duration::from_secs(5);
    tokio::time::timeout(deadline, pipeline.run(conn, deadline))
        .await
        .map_err(|_| ExchangeError::Net(NetError::Timeout(deadline)))?
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
