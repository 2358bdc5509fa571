//! Health of database servers and the master changes of a shard: planned switchover
//! (`promote`), emergency failover (`failover`) and bringing a former master back as a
//! standby (`rejoin`). Each operation takes the shard's lock in ZooKeeper (one operation
//! per shard at a time), logs and reports every step, and publishes the new master with
//! epoch + 1 through a compare-and-set topology write. Every step is idempotent, so
//! running an interrupted operation again resumes it. See docs/operations.md.
//!
//! Server operations use `mysql_async` with the `[admin]` account: this is the control
//! path, not the relay.

pub mod gtid;

use std::time::{Duration, Instant};

use mysql_async::prelude::*;
use mysql_async::{Conn, Opts, OptsBuilder, Row};
use zookeeper_client as zk;

use crate::topology::zk::ZkStore;
use crate::topology::{ShardDoc, ShardState, TopologyDoc, TopologyError};
use gtid::GtidPos;

/// Credentials and limits of the operations.
#[derive(Debug, Clone)]
pub struct Ops {
    /// Admin account on every server.
    pub admin_user: String,
    /// Its password.
    pub admin_password: String,
    /// Replication account.
    pub repl_user: String,
    /// Its password.
    pub repl_password: String,
    /// The routers' service account (its connections are killed when fencing).
    pub service_user: String,
    /// How long open transactions may finish during a switchover.
    pub drain: Duration,
    /// How long the new master may take to catch up.
    pub catchup: Duration,
    /// Connect / statement timeout.
    pub timeout: Duration,
}

/// Why an operation failed.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    /// Another operation holds the shard's lock.
    #[error("another operation holds the lock of shard {shard} ({holder}); wait for it, or check `dbrouter ctl status`")]
    Locked {
        /// The shard.
        shard: String,
        /// Who holds it.
        holder: String,
    },
    /// A precondition does not hold; nothing was changed.
    #[error("{0}")]
    Refused(String),
    /// A step failed (the message says what was rolled back).
    #[error("{0}")]
    Failed(String),
    /// The topology store failed.
    #[error(transparent)]
    Topology(#[from] TopologyError),
}

/// What a probe of one server found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Health {
    /// `host:port`.
    pub addr: String,
    /// Reachable with the admin (or service) account.
    pub reachable: bool,
    /// Round trip of a `SELECT 1`, microseconds.
    pub rtt_us: u64,
    /// `@@read_only`.
    pub read_only: bool,
    /// `@@gtid_binlog_pos`.
    pub gtid_binlog_pos: String,
    /// `@@gtid_slave_pos`.
    pub gtid_slave_pos: String,
    /// `@@gtid_current_pos`.
    pub gtid_current_pos: String,
    /// `Rpl_semi_sync_master_status` is ON.
    pub semi_sync_master: bool,
    /// `Rpl_semi_sync_slave_status` is ON.
    pub semi_sync_slave: bool,
    /// `host:port` it replicates from, if it is a replica.
    pub replicates_from: Option<String>,
    /// Slave IO thread running.
    pub io_running: bool,
    /// Slave SQL thread running.
    pub sql_running: bool,
    /// `Seconds_Behind_Master`.
    pub lag_seconds: Option<u64>,
    /// `Gtid_IO_Pos`: what it has received.
    pub gtid_io_pos: String,
    /// The last error (connection, IO or SQL thread).
    pub last_error: Option<String>,
}

fn opts(addr: &str, user: &str, password: &str) -> Result<Opts, String> {
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| format!("{addr:?} is not host:port"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("{addr:?} has a bad port"))?;
    Ok(Opts::from(
        OptsBuilder::default()
            .ip_or_hostname(host)
            .tcp_port(port)
            .user(Some(user))
            .pass(Some(password))
            .prefer_socket(false),
    ))
}

/// Runs `f` within `timeout`, turning both failure kinds into a message.
async fn within<T, F>(timeout: Duration, what: &str, f: F) -> Result<T, String>
where
    F: std::future::Future<Output = Result<T, mysql_async::Error>>,
{
    match tokio::time::timeout(timeout, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{what}: {e}")),
        Err(_) => Err(format!("{what}: no answer within {timeout:?}")),
    }
}

/// Probes one server: reachability, round trip, read_only, GTID positions, semi-sync,
/// replication threads and lag. Never fails: an unreachable server is a result.
pub async fn probe(addr: &str, user: &str, password: &str, timeout: Duration) -> Health {
    let mut h = Health {
        addr: addr.to_string(),
        ..Health::default()
    };
    let result: Result<(), String> = async {
        let o = opts(addr, user, password)?;
        let mut c = within(timeout, "connect", Conn::new(o)).await?;
        let t0 = Instant::now();
        within(timeout, "ping", c.query_drop("SELECT 1")).await?;
        h.rtt_us = t0.elapsed().as_micros() as u64;
        h.reachable = true;
        let row: Option<(i64, String, String, String)> = within(
            timeout,
            "variables",
            c.query_first("SELECT @@read_only, @@gtid_binlog_pos, @@gtid_slave_pos, @@gtid_current_pos"),
        )
        .await?;
        if let Some((ro, binlog, slave, current)) = row {
            h.read_only = ro != 0;
            h.gtid_binlog_pos = binlog;
            h.gtid_slave_pos = slave;
            h.gtid_current_pos = current;
        }
        let status: Vec<(String, String)> = within(
            timeout,
            "semi-sync status",
            c.query("SHOW GLOBAL STATUS WHERE Variable_name IN ('Rpl_semi_sync_master_status', 'Rpl_semi_sync_slave_status')"),
        )
        .await?;
        for (name, value) in status {
            let on = value.eq_ignore_ascii_case("ON");
            match name.as_str() {
                "Rpl_semi_sync_master_status" => h.semi_sync_master = on,
                "Rpl_semi_sync_slave_status" => h.semi_sync_slave = on,
                _ => {}
            }
        }
        let slave: Option<Row> = within(timeout, "slave status", c.query_first("SHOW SLAVE STATUS")).await?;
        if let Some(row) = slave {
            let text = |name: &str| row.get_opt::<Option<String>, _>(name).and_then(Result::ok).flatten();
            if let (Some(host), Some(port)) = (text("Master_Host"), text("Master_Port")) {
                h.replicates_from = Some(format!("{host}:{port}"));
            }
            h.io_running = text("Slave_IO_Running").as_deref() == Some("Yes");
            h.sql_running = text("Slave_SQL_Running").as_deref() == Some("Yes");
            h.lag_seconds = text("Seconds_Behind_Master").and_then(|s| s.parse().ok());
            h.gtid_io_pos = text("Gtid_IO_Pos").unwrap_or_default();
            let io_err = text("Last_IO_Error").filter(|e| !e.is_empty());
            let sql_err = text("Last_SQL_Error").filter(|e| !e.is_empty());
            h.last_error = io_err.or(sql_err);
        }
        let _ = c.disconnect().await;
        Ok(())
    }
    .await;
    if let Err(e) = result {
        h.last_error = Some(e);
    }
    h
}

/// A connection to one server with the admin account.
struct Admin {
    conn: Conn,
    addr: String,
    timeout: Duration,
}

impl Admin {
    async fn connect(ops: &Ops, addr: &str) -> Result<Self, String> {
        let o = opts(addr, &ops.admin_user, &ops.admin_password)?;
        let conn = within(ops.timeout, &format!("connect to {addr}"), Conn::new(o)).await?;
        Ok(Admin {
            conn,
            addr: addr.to_string(),
            timeout: ops.timeout,
        })
    }

    async fn exec(&mut self, sql: &str) -> Result<(), String> {
        let what = format!("{}: {sql}", self.addr);
        within(self.timeout, &what, self.conn.query_drop(sql)).await
    }

    async fn value(&mut self, sql: &str) -> Result<Option<String>, String> {
        let what = format!("{}: {sql}", self.addr);
        let v: Option<Option<String>> =
            within(self.timeout, &what, self.conn.query_first(sql)).await?;
        Ok(v.flatten())
    }

    async fn gtid(&mut self, var: &str) -> Result<GtidPos, String> {
        let text = self
            .value(&format!("SELECT @@{var}"))
            .await?
            .unwrap_or_default();
        GtidPos::parse(&text).ok_or_else(|| format!("{}: cannot parse {var} {text:?}", self.addr))
    }

    /// Waits until this server has applied `pos`. Polls `@@gtid_binlog_pos` (every server
    /// logs replicated transactions, `log_slave_updates`): MASTER_GTID_WAIT follows
    /// `@@gtid_slave_pos` only, which misses a former master's own transactions.
    async fn wait_for(&mut self, pos: &GtidPos, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            let now = self.gtid("gtid_binlog_pos").await?;
            if now.covers(pos) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{} did not reach GTID position {pos} within {timeout:?} (it is at {now})",
                    self.addr
                ));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Makes this server the master: replication stopped and forgotten, writable, semi-sync
    /// master side on when it will have standbys.
    async fn become_master(&mut self, with_standbys: bool) -> Result<(), String> {
        self.exec("STOP SLAVE").await?;
        self.exec("RESET SLAVE ALL").await?;
        self.exec("SET GLOBAL rpl_semi_sync_slave_enabled = OFF")
            .await?;
        if with_standbys {
            self.exec("SET GLOBAL rpl_semi_sync_master_wait_point = AFTER_SYNC, rpl_semi_sync_master_enabled = ON")
                .await?;
        }
        self.exec("SET GLOBAL read_only = OFF").await
    }

    /// Makes this server a read-only semi-sync standby of `master`.
    async fn become_standby(
        &mut self,
        ops: &Ops,
        master: &str,
        use_gtid: &str,
    ) -> Result<(), String> {
        let (host, port) = master
            .rsplit_once(':')
            .ok_or_else(|| format!("{master:?} is not host:port"))?;
        self.exec("SET GLOBAL read_only = ON").await?;
        self.exec("STOP SLAVE").await?;
        self.exec(
            "SET GLOBAL rpl_semi_sync_master_enabled = OFF, rpl_semi_sync_slave_enabled = ON",
        )
        .await?;
        self.exec(&format!(
            "CHANGE MASTER TO MASTER_HOST = '{host}', MASTER_PORT = {port}, MASTER_USER = '{}', MASTER_PASSWORD = '{}', MASTER_USE_GTID = {use_gtid}, MASTER_CONNECT_RETRY = 1",
            ops.repl_user.replace('\'', "''"),
            ops.repl_password.replace('\'', "''")
        ))
        .await?;
        self.exec("START SLAVE").await
    }
}

/// The shard's operation lock: an ephemeral znode, so a crashed operator's lock vanishes
/// with its session.
pub struct ShardLock<'a> {
    store: &'a ZkStore,
    path: String,
}

impl<'a> ShardLock<'a> {
    /// Takes the lock of `shard`, or reports who holds it.
    pub async fn acquire(
        store: &'a ZkStore,
        shard: &str,
        operation: &str,
    ) -> Result<ShardLock<'a>, OpError> {
        let path = store.path(&format!("locks/{shard}"));
        let holder = format!(
            "{operation} by pid {} on {} since {}",
            std::process::id(),
            std::fs::read_to_string("/etc/hostname")
                .unwrap_or_default()
                .trim(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        );
        let ephemeral = zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all());
        match store
            .client()
            .create(&path, holder.as_bytes(), &ephemeral)
            .await
        {
            Ok(_) => Ok(ShardLock { store, path }),
            Err(zk::Error::NodeExists) => {
                let holder = match store.client().get_data(&path).await {
                    Ok((data, _)) => String::from_utf8_lossy(&data).into_owned(),
                    Err(_) => "unknown holder".into(),
                };
                Err(OpError::Locked {
                    shard: shard.to_string(),
                    holder,
                })
            }
            Err(e) => Err(OpError::Topology(TopologyError::Zk(e.to_string()))),
        }
    }

    /// Releases the lock.
    pub async fn release(self) {
        let _ = self.store.client().delete(&self.path, None).await;
    }
}

/// Runs `work` holding the shard's lock (the future does nothing until awaited here).
async fn under_lock<T>(
    store: &ZkStore,
    shard: &str,
    operation: &str,
    work: impl std::future::Future<Output = Result<T, OpError>>,
) -> Result<T, OpError> {
    let lock = ShardLock::acquire(store, shard, operation).await?;
    let result = work.await;
    lock.release().await;
    result
}

/// Reads the topology and the shard; `Refused` if there is no such shard.
async fn shard_of(store: &ZkStore, shard: &str) -> Result<(TopologyDoc, i32, ShardDoc), OpError> {
    let (doc, version) = store.read_topology().await?;
    let s = doc
        .shards
        .iter()
        .find(|s| s.name == shard)
        .cloned()
        .ok_or_else(|| OpError::Refused(format!("no shard is named {shard}")))?;
    Ok((doc, version, s))
}

/// Writes the shard back with compare-and-set; returns the new topology version.
async fn publish(
    store: &ZkStore,
    mut doc: TopologyDoc,
    expected: i32,
    shard: ShardDoc,
) -> Result<u64, OpError> {
    if let Some(slot) = doc.shards.iter_mut().find(|s| s.name == shard.name) {
        *slot = shard;
    }
    Ok(store.write_topology(&doc, expected).await?)
}

/// Planned switchover of `shard` to `to` (or the most advanced healthy standby). `say`
/// receives a line per step.
pub async fn promote(
    store: &ZkStore,
    ops: &Ops,
    shard: &str,
    to: Option<&str>,
    say: &mut dyn FnMut(String),
) -> Result<(), OpError> {
    under_lock(
        store,
        shard,
        "promote",
        promote_locked(store, ops, shard, to, say),
    )
    .await
}

async fn promote_locked(
    store: &ZkStore,
    ops: &Ops,
    shard: &str,
    to: Option<&str>,
    say: &mut dyn FnMut(String),
) -> Result<(), OpError> {
    let (_, _, current) = shard_of(store, shard).await?;
    let old = current.master.clone();
    say(format!(
        "lock taken for shard {shard}; master {old}, epoch {}",
        current.epoch
    ));
    // Pick and check the target.
    let target = match to {
        Some(t) if t == old => {
            return Err(OpError::Refused(format!(
                "{t} is already the master of {shard}"
            )))
        }
        Some(t) if !current.standbys.iter().any(|s| s == t) => {
            return Err(OpError::Refused(format!(
                "{t} is not a standby of {shard} (standbys: {})",
                current.standbys.join(", ")
            )))
        }
        Some(t) => t.to_string(),
        None => {
            let mut best: Option<(u64, String)> = None;
            for s in &current.standbys {
                let h = probe(s, &ops.admin_user, &ops.admin_password, ops.timeout).await;
                if h.reachable && h.io_running && h.sql_running {
                    let p = GtidPos::parse(&h.gtid_slave_pos).map_or(0, |g| g.progress());
                    if best.as_ref().is_none_or(|(bp, _)| p > *bp) {
                        best = Some((p, s.clone()));
                    }
                }
            }
            best.map(|(_, s)| s).ok_or_else(|| {
                OpError::Refused(format!(
                    "shard {shard} has no healthy replicating standby to promote"
                ))
            })?
        }
    };
    let mut master = Admin::connect(ops, &old).await.map_err(|e| {
        OpError::Refused(format!(
            "the master is not reachable ({e}); use `dbrouter ctl failover {shard}`"
        ))
    })?;
    let mut new = Admin::connect(ops, &target)
        .await
        .map_err(OpError::Refused)?;
    let target_health = probe(&target, &ops.admin_user, &ops.admin_password, ops.timeout).await;
    let resumed = !target_health.read_only && target_health.replicates_from.is_none();
    let replicating = target_health.io_running && target_health.sql_running;
    if !resumed && !replicating {
        return Err(OpError::Refused(format!(
            "{target} is not replicating (IO={}, SQL={}, error {:?}); fix it or choose another standby",
            target_health.io_running, target_health.sql_running, target_health.last_error
        )));
    }
    say(format!(
        "target {target}{}",
        if resumed {
            " (already promoted by an interrupted run: resuming)"
        } else {
            ""
        }
    ));

    // 1. Routers hold new statements for the shard.
    let (doc, version, mut s) = shard_of(store, shard).await?;
    if s.state != ShardState::Switching {
        s.state = ShardState::Switching;
        let v = publish(store, doc, version, s).await?;
        say(format!("shard {shard} marked switching (topology version {v}): routers hold its new statements"));
        // Wait (within the drain time) until every registered router serves that version, so
        // none sends a new statement to the old master after the fence. One that does not
        // answer in time is fenced off by read_only anyway.
        let deadline = Instant::now() + ops.drain;
        loop {
            let routers = store.routers().await.unwrap_or_default();
            let behind: Vec<String> = routers
                .iter()
                .filter(|r| r.applied_version < v)
                .map(|r| r.id.clone())
                .collect();
            if behind.is_empty() {
                say(format!(
                    "all {} registered router(s) hold statements for {shard}",
                    routers.len()
                ));
                break;
            }
            if Instant::now() >= deadline {
                say(format!("WARNING: router(s) {} did not confirm in time; the fence protects the old master", behind.join(", ")));
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    if !resumed {
        // 2. Let open transactions finish, then fence the old master.
        let deadline = Instant::now() + ops.drain;
        loop {
            let open = master
                .value("SELECT COUNT(*) FROM information_schema.INNODB_TRX WHERE trx_mysql_thread_id <> CONNECTION_ID()")
                .await
                .unwrap_or(None)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
            if open == 0 || Instant::now() >= deadline {
                say(format!(
                    "{open} transaction(s) still open on {old} after the drain"
                ));
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if let Err(e) = master.exec("SET GLOBAL read_only = ON").await {
            return Err(rollback(
                store,
                shard,
                &mut master,
                format!("fencing {old} failed: {e}"),
            )
            .await);
        }
        let ids: Vec<u64> = within(
            ops.timeout,
            "list connections",
            master.conn.exec(
                "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = ? AND ID <> CONNECTION_ID()",
                (ops.service_user.as_str(),),
            ),
        )
        .await
        .unwrap_or_default();
        for id in &ids {
            let _ = master.exec(&format!("KILL CONNECTION {id}")).await;
        }
        say(format!(
            "old master {old} fenced: read_only = ON, {} router connection(s) killed",
            ids.len()
        ));
        // 3. The target applies everything the old master has.
        let pos = match master.gtid("gtid_binlog_pos").await {
            Ok(p) => p,
            Err(e) => return Err(rollback(store, shard, &mut master, e).await),
        };
        say(format!("waiting for {target} to apply {pos}"));
        if let Err(e) = new.wait_for(&pos, ops.catchup).await {
            return Err(rollback(store, shard, &mut master, e).await);
        }
        // 4. Promote.
        if let Err(e) = new.become_master(true).await {
            let _ = new.exec("SET GLOBAL read_only = ON").await;
            let _ = new.exec("START SLAVE").await;
            return Err(rollback(
                store,
                shard,
                &mut master,
                format!("promoting {target} failed: {e}"),
            )
            .await);
        }
        say(format!(
            "{target} promoted: replication reset, read_only = OFF, semi-sync master on"
        ));
    }
    // 5. The old master and the other standbys follow the new one.
    master
        .become_standby(ops, &target, "current_pos")
        .await
        .map_err(|e| {
            OpError::Failed(format!(
                "{e}; {target} is the master: run promote again to finish"
            ))
        })?;
    say(format!("{old} is now a semi-sync standby of {target}"));
    let (doc, version, mut s) = shard_of(store, shard).await?;
    repoint_standbys(
        ops,
        s.standbys.iter().filter(|x| **x != target),
        &target,
        say,
    )
    .await;
    // 6. Publish: routers release their held statements to the new master.
    s.standbys.retain(|x| *x != target);
    if !s.standbys.contains(&old) {
        s.standbys.push(old.clone());
    }
    s.master = target.clone();
    s.epoch += 1;
    s.state = ShardState::Serving;
    let epoch = s.epoch;
    let v = publish(store, doc, version, s).await?;
    say(format!(
        "published: shard {shard} master {target}, epoch {epoch} (topology version {v})"
    ));
    Ok(())
}

/// Points standbys at a new master; a standby that cannot be reached or repointed is
/// reported and left for the operator (`ctl status` shows it as not replicating).
async fn repoint_standbys<'a>(
    ops: &Ops,
    standbys: impl IntoIterator<Item = &'a String>,
    target: &str,
    say: &mut dyn FnMut(String),
) {
    for other in standbys {
        match Admin::connect(ops, other).await {
            Ok(mut a) => match a.become_standby(ops, target, "slave_pos").await {
                Ok(()) => say(format!("{other} repointed to {target}")),
                Err(e) => say(format!("WARNING: could not repoint {other}: {e}")),
            },
            Err(e) => say(format!("WARNING: could not reach {other}: {e}")),
        }
    }
}

/// Undoes a switchover that failed before the promotion: the old master writable again,
/// the shard serving again.
async fn rollback(store: &ZkStore, shard: &str, master: &mut Admin, reason: String) -> OpError {
    let _ = master.exec("SET GLOBAL read_only = OFF").await;
    if let Ok((doc, version, mut s)) = shard_of(store, shard).await {
        s.state = ShardState::Serving;
        let _ = publish(store, doc, version, s).await;
    }
    OpError::Failed(format!(
        "{reason}; rolled back: {} is master again and serving",
        master.addr
    ))
}

/// Emergency failover of `shard` whose master is unreachable.
pub async fn failover(
    store: &ZkStore,
    ops: &Ops,
    shard: &str,
    force: bool,
    say: &mut dyn FnMut(String),
) -> Result<(), OpError> {
    under_lock(
        store,
        shard,
        "failover",
        failover_locked(store, ops, shard, force, say),
    )
    .await
}

async fn failover_locked(
    store: &ZkStore,
    ops: &Ops,
    shard: &str,
    force: bool,
    say: &mut dyn FnMut(String),
) -> Result<(), OpError> {
    let (_, _, current) = shard_of(store, shard).await?;
    let old = current.master.clone();
    let old_health = probe(&old, &ops.admin_user, &ops.admin_password, ops.timeout).await;
    if old_health.reachable && !force {
        return Err(OpError::Refused(format!(
            "the master {old} of {shard} is reachable: use `dbrouter ctl promote {shard}` for a planned switchover (or --force)"
        )));
    }
    say(format!(
        "master {old} is {}",
        if old_health.reachable {
            "reachable (forced)"
        } else {
            "unreachable"
        }
    ));
    // The most advanced standby by what it has received.
    let mut best: Option<(u64, String, GtidPos)> = None;
    for s in &current.standbys {
        let h = probe(s, &ops.admin_user, &ops.admin_password, ops.timeout).await;
        say(format!(
            "standby {s}: reachable={} received={} applied={} error={:?}",
            h.reachable, h.gtid_io_pos, h.gtid_slave_pos, h.last_error
        ));
        if !h.reachable || h.replicates_from.is_none() {
            continue;
        }
        let received = GtidPos::parse(if h.gtid_io_pos.is_empty() {
            &h.gtid_slave_pos
        } else {
            &h.gtid_io_pos
        })
        .unwrap_or_default();
        if best
            .as_ref()
            .is_none_or(|(p, _, _)| received.progress() > *p)
        {
            best = Some((received.progress(), s.clone(), received));
        }
    }
    let Some((_, target, received)) = best else {
        return Err(OpError::Refused(format!(
            "no standby of {shard} is reachable and replicating: none is safe to promote; restore the master or rebuild a standby"
        )));
    };
    let mut new = Admin::connect(ops, &target)
        .await
        .map_err(OpError::Refused)?;
    say(format!(
        "promoting {target}: waiting for it to apply everything it received ({received})"
    ));
    new.wait_for(&received, ops.catchup)
        .await
        .map_err(OpError::Failed)?;
    let (doc, version, mut s) = shard_of(store, shard).await?;
    let others: Vec<String> = s
        .standbys
        .iter()
        .filter(|x| **x != target)
        .cloned()
        .collect();
    new.become_master(!others.is_empty())
        .await
        .map_err(OpError::Failed)?;
    say(format!(
        "{target} promoted: replication reset, read_only = OFF"
    ));
    repoint_standbys(ops, others.iter(), &target, say).await;
    s.master = target.clone();
    s.standbys = others;
    if !s.rejoin.contains(&old) {
        s.rejoin.push(old.clone());
    }
    s.epoch += 1;
    s.state = ShardState::Serving;
    let epoch = s.epoch;
    let v = publish(store, doc, version, s).await?;
    say(format!(
        "published: shard {shard} master {target}, epoch {epoch} (topology version {v}); {old} stays fenced until `dbrouter ctl rejoin {shard} {old}`"
    ));
    Ok(())
}

/// Makes a fenced former master a standby again, unless it has errant transactions.
pub async fn rejoin(
    store: &ZkStore,
    ops: &Ops,
    shard: &str,
    server: &str,
    say: &mut dyn FnMut(String),
) -> Result<(), OpError> {
    under_lock(
        store,
        shard,
        "rejoin",
        rejoin_locked(store, ops, shard, server, say),
    )
    .await
}

async fn rejoin_locked(
    store: &ZkStore,
    ops: &Ops,
    shard: &str,
    server: &str,
    say: &mut dyn FnMut(String),
) -> Result<(), OpError> {
    let (_, _, current) = shard_of(store, shard).await?;
    if current.master == server {
        return Err(OpError::Refused(format!(
            "{server} is the master of {shard}"
        )));
    }
    let mut node = Admin::connect(ops, server)
        .await
        .map_err(OpError::Refused)?;
    let mut master = Admin::connect(ops, &current.master)
        .await
        .map_err(OpError::Refused)?;
    // Fence first: whatever happens next, it must not take writes.
    node.exec("SET GLOBAL read_only = ON")
        .await
        .map_err(OpError::Failed)?;
    // Errant transactions: GTIDs the node wrote itself that the new master never got.
    let node_id: u32 = node
        .value("SELECT @@server_id")
        .await
        .map_err(OpError::Failed)?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let node_pos = node
        .gtid("gtid_binlog_pos")
        .await
        .map_err(OpError::Failed)?;
    // The new master's gtid_slave_pos is the last GTID it applied from its old master.
    let master_got = master
        .gtid("gtid_slave_pos")
        .await
        .map_err(OpError::Failed)?;
    if let Some(g) = gtid::errant(node_id, &node_pos, &master_got) {
        return Err(OpError::Refused(format!(
            "{server} has errant transactions: its binlog ends at {}-{}-{} but the master applied only up to {master_got} from it; \
             it stays fenced (read_only). Rebuild it from a snapshot of the master",
            g.domain, g.server, g.seq
        )));
    }
    node.become_standby(ops, &current.master, "current_pos")
        .await
        .map_err(OpError::Failed)?;
    let target = master
        .gtid("gtid_binlog_pos")
        .await
        .map_err(OpError::Failed)?;
    node.wait_for(&target, ops.catchup).await.map_err(|e| {
        OpError::Failed(format!(
            "{e}; it is replicating but not caught up: check `dbrouter ctl status`"
        ))
    })?;
    say(format!(
        "{server} replicates from {} and has caught up to {target}",
        current.master
    ));
    master
        .exec("SET GLOBAL rpl_semi_sync_master_wait_point = AFTER_SYNC, rpl_semi_sync_master_enabled = ON")
        .await
        .map_err(OpError::Failed)?;
    let (doc, version, mut s) = shard_of(store, shard).await?;
    s.rejoin.retain(|x| x != server);
    if !s.standbys.iter().any(|x| x == server) {
        s.standbys.push(server.to_string());
    }
    let v = publish(store, doc, version, s).await?;
    say(format!(
        "{server} is a standby of {shard} again (topology version {v})"
    ));
    Ok(())
}
