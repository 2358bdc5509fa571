//! Health of database servers and the master changes of a shard: planned switchover
//! (`promote`), emergency failover (`failover`) and bringing a former master back as a
//! standby (`rejoin`). Each operation takes the shard's lock in ZooKeeper (one operation
//! per shard at a time), logs and reports every step, and publishes the new master with
//! epoch + 1 through a compare-and-set topology write. Every step is idempotent, so
//! running an interrupted operation again resumes it. See docs/operations.md.
//!
//! Server operations use `mysql_async` with the `[admin]` account: this is the control
//! path, not the relay.
//!
//! This file holds what the operations share (credentials, errors, the shard lock, the
//! compare-and-set publish); `probe.rs` probes a server, `server.rs` runs the server
//! commands, and `switchover.rs`, `emergency.rs` and `rejoin.rs` are the operations;
//! `auto.rs` the automatic failover; `standby.rs` (logical) and `physical.rs` the standby
//! lifecycle, `copy.rs` the byte copies with progress they share.

pub mod auto;
mod copy;
mod emergency;
pub mod gtid;
mod physical;
mod probe;
mod rejoin;
mod server;
pub mod standby;
mod switchover;

use std::time::Duration;

use mysql_async::{Opts, OptsBuilder};
use zookeeper_client as zk;

use crate::topology::zk::ZkStore;
use crate::topology::{ShardDoc, TopologyDoc, TopologyError};
use server::Admin;

pub use emergency::{failover, Trigger};
pub use probe::{probe, Health};
pub use rejoin::rejoin;
pub use switchover::promote;

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
    /// TLS to the servers (`[backend.tls]`).
    pub tls: Option<crate::config::BackendTlsSection>,
    /// How standbys are cloned (`[clone]`).
    pub clone: crate::config::CloneConfig,
}

impl Ops {
    /// The operation settings of a config (`[admin]`, `[failover]`, `[backend]`).
    pub fn from_config(config: &crate::config::Config) -> Result<Ops, String> {
        let admin = config
            .admin
            .as_ref()
            .ok_or("there is no [admin] account: the operations need one")?;
        Ok(Ops {
            admin_user: admin.user.clone(),
            admin_password: admin.password()?,
            repl_user: config.failover.repl_user.clone(),
            repl_password: config.failover.repl_password.clone(),
            service_user: config.backend.user.clone(),
            drain: Duration::from_millis(config.failover.drain_ms),
            catchup: Duration::from_millis(config.failover.catchup_timeout_ms),
            timeout: config.timeouts.connect().max(Duration::from_secs(3)),
            tls: config.backend.tls.clone(),
            clone: config.clone.clone(),
        })
    }

    /// Probes the server at `addr` with the admin account, within the operations' timeout.
    pub async fn probe(&self, addr: &str) -> Health {
        probe(
            addr,
            &self.admin_user,
            &self.admin_password,
            self.timeout,
            self.tls.as_ref(),
        )
        .await
    }
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

/// The TLS options of mysql_async connections (health checks, operations, moves) for
/// `[backend.tls]`: the same CA, client certificate and name as the relayed connections.
pub fn ssl_opts(tls: &crate::config::BackendTlsSection) -> mysql_async::SslOpts {
    let mut ssl = mysql_async::SslOpts::default().with_root_certs(vec![tls.ca_file.clone().into()]);
    if let (Some(cert), Some(key)) = (&tls.cert_file, &tls.key_file) {
        ssl = ssl.with_client_identity(Some(mysql_async::ClientIdentity::new(
            cert.clone().into(),
            key.clone().into(),
        )));
    }
    if let Some(name) = &tls.server_name {
        ssl = ssl.with_danger_tls_hostname_override(Some(name.clone()));
    }
    ssl
}

fn opts(
    addr: &str,
    user: &str,
    password: &str,
    tls: Option<&crate::config::BackendTlsSection>,
) -> Result<Opts, String> {
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
            .prefer_socket(false)
            .ssl_opts(tls.map(ssl_opts)),
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
        let ephemeral = zk::CreateMode::Ephemeral.with_acls(store.acls());
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

/// Points standbys at a new master; a standby that cannot be reached or repointed is
/// reported and left for the operator (`ctl status` shows it as not replicating).
async fn repoint_standbys<'a>(
    ops: &Ops,
    standbys: impl IntoIterator<Item = &'a String>,
    target: &str,
    say: &mut (dyn FnMut(String) + Send),
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
