//! The standby lifecycle: `add` (clone a new or wiped server from a healthy member of the
//! shard and publish it as a standby), `rebuild` (the same for a fenced former master that
//! cannot rejoin: its errant transactions are thrown away with its data), `remove`, and
//! `snapshot` (a consistent logical backup of a shard, with its GTID position, into a
//! directory; `add` can restore from one).
//!
//! **The clone** is logical by default: `mariadb-dump --single-transaction --gtid
//! --master-data=2` of the source's databases (a standby by preference: the master is
//! never loaded more than needed), streamed by this process into `mariadb` on the target
//! with binary logging off for the load (the copied rows must not become the target's own
//! GTIDs), plus the source's accounts and grants (`SHOW CREATE USER` / `SHOW GRANTS`:
//! clients act as their own accounts, so a standby that may be promoted needs them). With
//! `--method physical` (`[clone] method`) it is `mariadb-backup` from the source's host into
//! the target's data directory instead (`physical.rs`; accounts come with the `mysql`
//! schema). Either way the copy names the GTID position it is consistent with; the
//! target's `gtid_slave_pos` is set to it and it
//! replicates from the shard's master with `MASTER_USE_GTID = slave_pos`, is waited for
//! until it has caught up, semi-sync is made active, and only then is it published (under
//! the shard's lock, compare-and-set). A master change while the copy runs is fine: the
//! target replicates from whoever is master at the end (GTIDs are global).
//!
//! **Guarantees.** A target is never published before it has every transaction the
//! master had when the catch-up started; a server in any role of the topology is refused
//! (`rebuild` takes only a fenced former master, made read-only first); nothing is
//! written to a server other than the target, and the target's binary log is reset so
//! that no stale own transaction can ever be replicated.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use mysql_async::prelude::*;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

use super::copy::{copy_with_progress, Progress};
use super::gtid::GtidPos;
use super::{publish, shard_of, under_lock, Admin, OpError, Ops};
use crate::config::CloneMethod;
use crate::topology::zk::ZkStore;
use crate::topology::{now_ms, ShardDoc};

/// Schemas that belong to the server, never copied nor wiped.
const SYSTEM_SCHEMAS: [&str; 4] = ["mysql", "information_schema", "performance_schema", "sys"];

/// Where a new standby's data comes from.
#[derive(Debug, Clone)]
pub enum CloneSource {
    /// A member of the shard (`None`: the healthiest standby, else the master), copied
    /// with this method (`None`: `[clone] method`).
    Server(Option<String>, Option<CloneMethod>),
    /// A snapshot written by [`snapshot`] (its `.sql` file).
    Snapshot(PathBuf),
}

/// What [`snapshot`] writes next to the dump (`<name>.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotMeta {
    /// The shard it is of.
    pub shard: String,
    /// The server it was taken from.
    pub source: String,
    /// The GTID position the dump is consistent with.
    pub gtid: String,
    /// When it was taken (ms since the Unix epoch).
    pub taken_ms: u64,
    /// Size of the dump in bytes.
    pub bytes: u64,
}

/// `ctl standby add`: clones `server` and publishes it as a standby of `shard`. With
/// `wipe`, the target's own databases are dropped first (else a target holding any is
/// refused).
pub async fn add(
    store: &ZkStore,
    ops: &Ops,
    shard: &str,
    server: &str,
    source: CloneSource,
    wipe: bool,
    say: &mut (dyn FnMut(String) + Send),
) -> Result<(), OpError> {
    crate::config::check_host_port(server).map_err(OpError::Refused)?;
    let (_, _, s) = shard_of(store, shard).await?;
    if let Some(role) = role_in(&s, server) {
        return Err(OpError::Refused(format!(
            "{server} is already the {role} of {shard}: remove it first"
        )));
    }
    let mut target = Admin::connect(ops, server)
        .await
        .map_err(OpError::Refused)?;
    let source = match source {
        CloneSource::Server(from, method) => {
            CloneSource::Server(from, Some(method.unwrap_or(ops.clone.method)))
        }
        snapshot => snapshot,
    };
    let physical = matches!(source, CloneSource::Server(_, Some(CloneMethod::Physical)));
    prepare_target(&mut target, wipe, physical, say).await?;
    clone_into(store, ops, shard, &mut target, source, say).await?;
    join(store, ops, shard, &mut target, say).await
}

/// `ctl standby rebuild`: a fenced former master of `shard` (in its rejoin list) is wiped
/// — its errant transactions with it — cloned from a standby with `method` and published
/// as a standby (`None`: `[clone] method`).
pub async fn rebuild(
    store: &ZkStore,
    ops: &Ops,
    shard: &str,
    server: &str,
    method: Option<CloneMethod>,
    say: &mut (dyn FnMut(String) + Send),
) -> Result<(), OpError> {
    let (_, _, s) = shard_of(store, shard).await?;
    if !s.rejoin.iter().any(|r| r == server) {
        return Err(OpError::Refused(format!(
            "{server} is not a fenced former master of {shard} (its rejoin list: {:?}); \
             use `dbrouter ctl standby add` for a new server",
            s.rejoin
        )));
    }
    let mut target = Admin::connect(ops, server)
        .await
        .map_err(OpError::Refused)?;
    // Fenced first: whatever happens next, it must not take writes.
    target
        .exec("SET GLOBAL read_only = ON")
        .await
        .map_err(OpError::Failed)?;
    say(format!(
        "{server} is read-only; wiping its databases and binary log"
    ));
    let method = method.unwrap_or(ops.clone.method);
    prepare_target(&mut target, true, method == CloneMethod::Physical, say).await?;
    clone_into(
        store,
        ops,
        shard,
        &mut target,
        CloneSource::Server(None, Some(method)),
        say,
    )
    .await?;
    join(store, ops, shard, &mut target, say).await
}

/// `ctl standby remove`: `server` is no longer a standby of `shard` (its replication is
/// left running; the server is not changed). The last standby needs `force`.
pub async fn remove(
    store: &ZkStore,
    shard: &str,
    server: &str,
    force: bool,
    say: &mut (dyn FnMut(String) + Send),
) -> Result<(), OpError> {
    under_lock(store, shard, "standby remove", async {
        let (doc, version, mut s) = shard_of(store, shard).await?;
        if s.master == server {
            return Err(OpError::Refused(format!(
                "{server} is the master of {shard}: promote a standby first"
            )));
        }
        let listed = s.standbys.iter().any(|x| x == server) || s.rejoin.iter().any(|x| x == server);
        if !listed {
            return Err(OpError::Refused(format!(
                "{server} is not a standby of {shard}"
            )));
        }
        s.standbys.retain(|x| x != server);
        s.rejoin.retain(|x| x != server);
        if s.standbys.is_empty() && !force {
            return Err(OpError::Refused(format!(
                "{server} is the last standby of {shard}: without it no failover is possible; use --force"
            )));
        }
        let v = publish(store, doc, version, s).await?;
        say(format!(
            "{server} removed from {shard} (topology version {v}); it still replicates: stop it when you are done with it"
        ));
        Ok(())
    })
    .await
}

/// `ctl snapshot`: a consistent logical backup of `shard` from a standby (the master only
/// when it has none) into `dir`; returns the dump's path (`<shard>-<ms>.sql`, with its
/// [`SnapshotMeta`] beside it).
pub async fn snapshot(
    store: &ZkStore,
    ops: &Ops,
    shard: &str,
    dir: &Path,
    say: &mut (dyn FnMut(String) + Send),
) -> Result<PathBuf, OpError> {
    let (_, _, s) = shard_of(store, shard).await?;
    let source = pick_source(ops, &s, None, say).await?;
    std::fs::create_dir_all(dir)
        .map_err(|e| OpError::Failed(format!("cannot create {}: {e}", dir.display())))?;
    let taken_ms = now_ms();
    let path = dir.join(format!("{shard}-{taken_ms}.sql"));
    let mut file = tokio::fs::File::create(&path)
        .await
        .map_err(|e| OpError::Failed(format!("cannot write {}: {e}", path.display())))?;
    let estimate = data_size(ops, &source).await;
    let from_master = source == s.master;
    let (gtid, bytes) = dump(ops, (&source, from_master), &mut file, estimate, say).await?;
    file.flush()
        .await
        .map_err(|e| OpError::Failed(format!("cannot write {}: {e}", path.display())))?;
    let meta = SnapshotMeta {
        shard: shard.to_string(),
        source,
        gtid: gtid.to_string(),
        taken_ms,
        bytes,
    };
    let meta_path = path.with_extension("json");
    let text = serde_json::to_vec_pretty(&meta).unwrap_or_default();
    std::fs::write(&meta_path, text)
        .map_err(|e| OpError::Failed(format!("cannot write {}: {e}", meta_path.display())))?;
    say(format!(
        "snapshot of {shard} written: {} ({bytes} bytes, GTID {gtid}); restore it with `dbrouter ctl standby add {shard} HOST:PORT --from-snapshot {}`",
        path.display(),
        path.display()
    ));
    Ok(path)
}

/// The role `server` has in the shard, if any.
fn role_in(s: &ShardDoc, server: &str) -> Option<&'static str> {
    if s.master == server {
        Some("master")
    } else if s.standbys.iter().any(|x| x == server) {
        Some("standby")
    } else if s.rejoin.iter().any(|x| x == server) {
        Some("fenced former master")
    } else {
        None
    }
}

/// The target before a clone: read-only, not replicating, no binary log of its own,
/// and no database of its own (dropped with `wipe`, else refused). Before a `physical`
/// copy only the first two: the restore replaces its whole data directory.
async fn prepare_target(
    target: &mut Admin,
    wipe: bool,
    physical: bool,
    say: &mut (dyn FnMut(String) + Send),
) -> Result<(), OpError> {
    let failed = OpError::Failed;
    target
        .exec("SET GLOBAL read_only = ON")
        .await
        .map_err(failed)?;
    let schemas = user_schemas(target).await.map_err(OpError::Failed)?;
    if !schemas.is_empty() && !wipe {
        return Err(OpError::Refused(format!(
            "{} holds databases ({}): give a new or wiped server, or --wipe to drop them",
            target.addr,
            schemas.join(", ")
        )));
    }
    target.exec("STOP SLAVE").await.map_err(OpError::Failed)?;
    if physical {
        return Ok(());
    }
    target
        .exec("RESET SLAVE ALL")
        .await
        .map_err(OpError::Failed)?;
    target
        .exec("SET SESSION sql_log_bin = 0")
        .await
        .map_err(OpError::Failed)?;
    for schema in &schemas {
        // A name from information_schema, quoted as an identifier.
        let sql = format!("DROP DATABASE `{}`", schema.replace('`', "``"));
        target.exec(&sql).await.map_err(OpError::Failed)?;
    }
    if !schemas.is_empty() {
        say(format!("{}: dropped {}", target.addr, schemas.join(", ")));
    }
    // Its own transactions (a former master's errant ones) go with its binary log.
    target.exec("RESET MASTER").await.map_err(OpError::Failed)?;
    target
        .exec("SET GLOBAL gtid_slave_pos = ''")
        .await
        .map_err(OpError::Failed)
}

/// The non-system schemas of a server.
async fn user_schemas(admin: &mut Admin) -> Result<Vec<String>, String> {
    let rows: Vec<String> = admin
        .conn
        .query("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA ORDER BY SCHEMA_NAME")
        .await
        .map_err(|e| format!("{}: {e}", admin.addr))?;
    Ok(rows
        .into_iter()
        .filter(|s| !SYSTEM_SCHEMAS.contains(&s.to_ascii_lowercase().as_str()))
        .collect())
}

/// The clone's source: `wanted` if given (a member of the shard), else the standby that
/// replicates with the least lag, else the master.
async fn pick_source(
    ops: &Ops,
    s: &ShardDoc,
    wanted: Option<&str>,
    say: &mut (dyn FnMut(String) + Send),
) -> Result<String, OpError> {
    if let Some(w) = wanted {
        if s.master != w && !s.standbys.iter().any(|x| x == w) {
            return Err(OpError::Refused(format!(
                "{w} is not the master or a standby of {}",
                s.name
            )));
        }
        return Ok(w.to_string());
    }
    let mut best: Option<(u64, String)> = None;
    for standby in &s.standbys {
        let h = ops.probe(standby).await;
        if h.reachable && h.io_running && h.sql_running {
            let lag = h.lag_seconds.unwrap_or(u64::MAX);
            if best.as_ref().is_none_or(|(l, _)| lag < *l) {
                best = Some((lag, standby.clone()));
            }
        }
    }
    match best {
        Some((_, standby)) => {
            say(format!("copying from the standby {standby}"));
            Ok(standby)
        }
        None => {
            say(format!(
                "no standby of {} replicates: copying from the master {} (a consistent read, no lock held)",
                s.name, s.master
            ));
            Ok(s.master.clone())
        }
    }
}

/// Bytes of data and indexes in the source's own schemas (the ETA's estimate).
async fn data_size(ops: &Ops, source: &str) -> u64 {
    let Ok(mut admin) = Admin::connect(ops, source).await else {
        return 0;
    };
    admin
        .value("SELECT COALESCE(SUM(DATA_LENGTH + INDEX_LENGTH), 0) FROM information_schema.TABLES WHERE TABLE_SCHEMA NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys')")
        .await
        .ok()
        .flatten()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Copies the data and accounts into the target and sets its `gtid_slave_pos` to the
/// position the copy is consistent with.
async fn clone_into(
    store: &ZkStore,
    ops: &Ops,
    shard: &str,
    target: &mut Admin,
    source: CloneSource,
    say: &mut (dyn FnMut(String) + Send),
) -> Result<(), OpError> {
    let (_, _, s) = shard_of(store, shard).await?;
    let started = Instant::now();
    let (gtid, bytes, accounts_from) = match source {
        CloneSource::Server(wanted, Some(CloneMethod::Physical)) => {
            let source = pick_source(ops, &s, wanted.as_deref(), say).await?;
            let estimate = data_size(ops, &source).await;
            let from_master = source == s.master;
            let (gtid, bytes) =
                super::physical::clone_physical(ops, (&source, from_master), target, estimate, say)
                    .await?;
            // Accounts and grants came with the copied `mysql` schema.
            (gtid, bytes, None)
        }
        CloneSource::Server(wanted, _) => {
            let source = pick_source(ops, &s, wanted.as_deref(), say).await?;
            let estimate = data_size(ops, &source).await;
            let mut load = Loader::start(ops, &target.addr)?;
            let from_master = source == s.master;
            let copied = dump(ops, (&source, from_master), load.stdin()?, estimate, say).await;
            let loaded = load.finish().await;
            let (gtid, bytes) = copied?;
            loaded?;
            (gtid, bytes, Some(source))
        }
        CloneSource::Snapshot(path) => {
            let meta = read_meta(&path)?;
            if meta.shard != shard {
                return Err(OpError::Refused(format!(
                    "{} is a snapshot of {}, not of {shard}",
                    path.display(),
                    meta.shard
                )));
            }
            let gtid = GtidPos::parse(&meta.gtid).ok_or_else(|| {
                OpError::Refused(format!("{}: bad GTID {:?}", path.display(), meta.gtid))
            })?;
            let mut load = Loader::start(ops, &target.addr)?;
            let copied = copy_file(&path, load.stdin()?, meta.bytes, say).await;
            let loaded = load.finish().await;
            copied?;
            loaded?;
            say(format!(
                "restored the snapshot taken from {} {} s ago",
                meta.source,
                now_ms().saturating_sub(meta.taken_ms) / 1000
            ));
            (gtid, meta.bytes, Some(s.master.clone()))
        }
    };
    let accounts = match accounts_from {
        Some(from) => format!("{} accounts", copy_accounts(ops, &from, target, say).await?),
        None => "the accounts and grants with the data".to_string(),
    };
    say(format!(
        "copied {bytes} bytes in {:.1} s and {accounts}; the copy is at GTID {gtid}",
        started.elapsed().as_secs_f64()
    ));
    target
        .exec(&format!("SET GLOBAL gtid_slave_pos = '{gtid}'"))
        .await
        .map_err(OpError::Failed)
}

/// Replicates the target from the shard's master, waits until it caught up, makes
/// semi-sync active and publishes it as a standby.
async fn join(
    store: &ZkStore,
    ops: &Ops,
    shard: &str,
    target: &mut Admin,
    say: &mut (dyn FnMut(String) + Send),
) -> Result<(), OpError> {
    let server = target.addr.clone();
    under_lock(store, shard, "standby add", async {
        let (_, _, s) = shard_of(store, shard).await?;
        let mut master = Admin::connect(ops, &s.master)
            .await
            .map_err(OpError::Refused)?;
        master
            .exec("SET GLOBAL rpl_semi_sync_master_wait_point = AFTER_SYNC, rpl_semi_sync_master_enabled = ON")
            .await
            .map_err(OpError::Failed)?;
        target
            .become_standby(ops, &s.master, "slave_pos")
            .await
            .map_err(OpError::Failed)?;
        let goal = master
            .gtid("gtid_binlog_pos")
            .await
            .map_err(OpError::Failed)?;
        say(format!(
            "{server} replicates from {}; catching up to {goal}",
            s.master
        ));
        if let Err(e) = target.wait_for(&goal, ops.catchup).await {
            let replication = ops
                .probe(&server)
                .await
                .last_error
                .map(|err| format!(" (replication: {err})"))
                .unwrap_or_default();
            return Err(OpError::Failed(format!(
                "{e}{replication}; it is not published. If the master no longer has the binary logs from the copy's position, copy again or take a newer snapshot"
            )));
        }
        if !master.semi_sync_active(Duration::from_secs(10)).await {
            say(format!(
                "WARNING: semi-sync is not active on {} yet: check `dbrouter ctl status`",
                s.master
            ));
        }
        let (doc, version, mut s) = shard_of(store, shard).await?;
        s.rejoin.retain(|x| *x != server);
        if !s.standbys.contains(&server) {
            s.standbys.push(server.clone());
        }
        let v = publish(store, doc, version, s).await?;
        say(format!(
            "{server} is a standby of {shard} (topology version {v})"
        ));
        Ok(())
    })
    .await
}

/// The `mariadb` client loading a dump into the target, binary logging off.
struct Loader {
    child: tokio::process::Child,
    addr: String,
}

impl Loader {
    fn start(ops: &Ops, addr: &str) -> Result<Self, OpError> {
        let mut cmd = client_command("mariadb", ops, addr)?;
        cmd.arg("--binary-mode")
            .arg("--init-command=SET SESSION sql_log_bin = 0")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let child = cmd.spawn().map_err(|e| {
            OpError::Failed(format!("cannot run mariadb (package mariadb-client): {e}"))
        })?;
        Ok(Loader {
            child,
            addr: addr.to_string(),
        })
    }

    fn stdin(&mut self) -> Result<&mut tokio::process::ChildStdin, OpError> {
        self.child
            .stdin
            .as_mut()
            .ok_or_else(|| OpError::Failed("the loader has no input".into()))
    }

    async fn finish(mut self) -> Result<(), OpError> {
        drop(self.child.stdin.take());
        let out = self
            .child
            .wait_with_output()
            .await
            .map_err(|e| OpError::Failed(format!("loading into {}: {e}", self.addr)))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(OpError::Failed(format!(
                "loading into {} failed: {}",
                self.addr,
                String::from_utf8_lossy(&out.stderr).trim()
            )))
        }
    }
}

/// A `mariadb` / `mariadb-dump` command for `addr` with the admin account (its password
/// in the environment, never on the command line) and the backend TLS settings.
fn client_command(program: &str, ops: &Ops, addr: &str) -> Result<Command, OpError> {
    let (host, port) = super::copy::host_port(addr)?;
    let mut cmd = Command::new(program);
    cmd.arg(format!("--host={host}"))
        .arg(format!("--port={port}"))
        .arg(format!("--user={}", ops.admin_user))
        .arg("--protocol=TCP")
        .env("MYSQL_PWD", &ops.admin_password)
        .kill_on_drop(true);
    match &ops.tls {
        Some(tls) => {
            cmd.arg(format!("--ssl-ca={}", tls.ca_file.display()));
            if let (Some(cert), Some(key)) = (&tls.cert_file, &tls.key_file) {
                cmd.arg(format!("--ssl-cert={}", cert.display()))
                    .arg(format!("--ssl-key={}", key.display()));
            }
        }
        None => {
            cmd.arg("--skip-ssl");
        }
    }
    Ok(cmd)
}

/// Dumps the source's own databases into `out`, reporting progress against `estimate`
/// bytes; returns the GTID position the dump is consistent with and its size.
async fn dump(
    ops: &Ops,
    (source, from_master): (&str, bool),
    out: &mut (impl tokio::io::AsyncWrite + Unpin),
    estimate: u64,
    say: &mut (dyn FnMut(String) + Send),
) -> Result<(GtidPos, u64), OpError> {
    let mut admin = Admin::connect(ops, source)
        .await
        .map_err(OpError::Refused)?;
    let schemas = user_schemas(&mut admin).await.map_err(OpError::Failed)?;
    drop(admin);
    if schemas.is_empty() {
        return Err(OpError::Refused(format!(
            "{source} has no database to copy"
        )));
    }
    let mut cmd = client_command("mariadb-dump", ops, source)?;
    // The position a replica of the shard's master starts from: a master's own binary log
    // position, a standby's position in its master's stream (`--dump-slave` pauses the
    // standby's SQL thread for the consistent point; the master is not slowed down).
    cmd.arg(if from_master {
        "--master-data=2"
    } else {
        "--dump-slave=2"
    });
    cmd.args([
        "--single-transaction",
        "--gtid",
        "--routines",
        "--triggers",
        "--events",
        "--hex-blob",
        "--default-character-set=utf8mb4",
        "--databases",
    ])
    .args(&schemas)
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| {
        OpError::Failed(format!(
            "cannot run mariadb-dump (package mariadb-client): {e}"
        ))
    })?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| OpError::Failed("mariadb-dump has no output".into()))?;
    let mut reader = BufReader::with_capacity(1 << 20, stdout);
    let mut line = Vec::with_capacity(1 << 16);
    let mut gtid = None;
    let mut progress = Progress::new(estimate);
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .await
            .map_err(|e| OpError::Failed(format!("reading mariadb-dump: {e}")))?;
        if n == 0 {
            break;
        }
        if gtid.is_none() && line.starts_with(b"-- SET GLOBAL gtid_slave_pos='") {
            gtid = std::str::from_utf8(&line)
                .ok()
                .and_then(|l| l.split('\'').nth(1))
                .and_then(GtidPos::parse);
        }
        out.write_all(&line)
            .await
            .map_err(|e| OpError::Failed(format!("writing the copy: {e}")))?;
        progress.add(n as u64, say);
    }
    let status = child
        .wait_with_output()
        .await
        .map_err(|e| OpError::Failed(format!("mariadb-dump: {e}")))?;
    if !status.status.success() {
        return Err(OpError::Failed(format!(
            "mariadb-dump of {source} failed: {}",
            String::from_utf8_lossy(&status.stderr).trim()
        )));
    }
    let gtid = gtid.filter(|g| !g.domains.is_empty()).ok_or_else(|| {
        OpError::Failed(format!(
            "the dump of {source} names no GTID position (is its binary log on? does it replicate?)"
        ))
    })?;
    progress.done(say);
    Ok((gtid, progress.bytes))
}

/// Streams a snapshot file into the loader.
async fn copy_file(
    path: &Path,
    out: &mut (impl tokio::io::AsyncWrite + Unpin),
    size: u64,
    say: &mut (dyn FnMut(String) + Send),
) -> Result<(), OpError> {
    let mut file = tokio::fs::File::open(path)
        .await
        .map_err(|e| OpError::Refused(format!("cannot read {}: {e}", path.display())))?;
    let name = path.display().to_string();
    copy_with_progress(&mut file, out, size, (&name, "the copy"), say).await?;
    Ok(())
}

/// The snapshot metadata beside a dump.
fn read_meta(path: &Path) -> Result<SnapshotMeta, OpError> {
    let meta_path = path.with_extension("json");
    let text = std::fs::read(&meta_path).map_err(|e| {
        OpError::Refused(format!(
            "cannot read {} (written by `dbrouter ctl snapshot` beside the dump): {e}",
            meta_path.display()
        ))
    })?;
    serde_json::from_slice(&text)
        .map_err(|e| OpError::Refused(format!("{}: {e}", meta_path.display())))
}

/// Copies the source's accounts and grants into the target (those it lacks; binary
/// logging off). Accounts the source cannot show (a broken entry) are skipped.
async fn copy_accounts(
    ops: &Ops,
    source: &str,
    target: &mut Admin,
    say: &mut (dyn FnMut(String) + Send),
) -> Result<usize, OpError> {
    let mut src = Admin::connect(ops, source)
        .await
        .map_err(OpError::Refused)?;
    let accounts: Vec<(String, String)> = src
        .conn
        .query("SELECT User, Host FROM mysql.user WHERE User <> '' AND is_role = 'N'")
        .await
        .map_err(|e| OpError::Failed(format!("{source}: {e}")))?;
    target
        .exec("SET SESSION sql_log_bin = 0")
        .await
        .map_err(OpError::Failed)?;
    let mut copied = 0;
    let mut skipped = Vec::new();
    for (user, host) in accounts {
        let name = format!(
            "'{}'@'{}'",
            user.replace('\'', "''"),
            host.replace('\'', "''")
        );
        let Ok(Some(create)) = src
            .conn
            .query_first::<String, _>(format!("SHOW CREATE USER {name}"))
            .await
        else {
            continue;
        };
        let Ok(grants) = src
            .conn
            .query::<String, _>(format!("SHOW GRANTS FOR {name}"))
            .await
        else {
            continue;
        };
        let create = create.replacen("CREATE USER ", "CREATE USER IF NOT EXISTS ", 1);
        if let Err(e) = target.exec(&create).await {
            skipped.push(e);
            continue;
        }
        for grant in grants {
            // A grant the admin account may not give (PROXY of root) is reported.
            if let Err(e) = target.exec(&grant).await {
                skipped.push(e);
            }
        }
        copied += 1;
    }
    for e in &skipped {
        say(format!("WARNING: not copied: {e}"));
    }
    Ok(copied)
}
