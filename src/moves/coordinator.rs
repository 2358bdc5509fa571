//! The coordinator: one router of a cluster, elected through ZooKeeper (whoever holds the
//! ephemeral `<root>/locks/coordinator`; when it dies the lock vanishes with its session
//! and another router takes it within seconds), runs the queued background work:
//!
//! - the wake-ups of hibernated users: each is moved back to its ring shard
//!   ([`super::move_user`]) and its request removed. A failed wake-up stays queued and is
//!   tried again; a request for a user no longer on a hibernation shard is dropped;
//! - the jobs queued with `dbrouter ctl` (`topology::jobs`: drains), one at a time, their
//!   progress written to the job's record as moves end. A job left `running` by a
//!   coordinator that died is resumed: its drain moves whoever is still on the shard (an
//!   interrupted move is finished or rolled back by the next move of that user).
//!
//! - with `[failover] auto`, automatic failover and rejoin (`failover::auto`): every
//!   [`AUTO_POLL`] it reads the routers' opinions of every master and fails over a shard
//!   whose master a majority has lost, and rejoins former masters that are back.
//!
//! The three run side by side, so a long drain never delays a wake-up or a failover.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::drain::{drain_plan, move_many, BatchReport, DrainSettings, Ended};
use super::{move_user, now_ms, MoveSettings};
use crate::config::Config;
use crate::failover::auto::{AutoFailover, AutoSettings};
use crate::failover::{Ops, ShardLock};
use crate::topology::jobs::{JobDoc, JobKind, JobState};
use crate::topology::zk::{ZkStore, ZkTarget};
use crate::topology::TopologyError;

/// How often the coordinator looks for work, and a candidate for the lock.
const POLL: Duration = Duration::from_millis(500);

/// How often automatic failover looks at the routers' opinions.
const AUTO_POLL: Duration = Duration::from_millis(250);

/// How often a running job's record is rewritten with its progress (and checked for a
/// cancellation), at most.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// Runs for the router's life: competes for the coordinator lock and, while it holds it,
/// wakes hibernated users and runs queued jobs. `me` names this router in job records.
pub async fn run(target: ZkTarget, config: Arc<Config>, me: String) {
    let session = Duration::from_millis(config.topology.session_timeout_ms);
    let connect = config.timeouts.connect();
    loop {
        let store = match ZkStore::connect(&target, session, connect).await {
            Ok(s) => Arc::new(s),
            Err(_) => {
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
        };
        let lock = loop {
            if store.client().state().is_terminated() {
                break None;
            }
            match ShardLock::acquire(&store, "coordinator", &format!("coordinator {me}")).await {
                Ok(lock) => break Some(lock),
                Err(_) => tokio::time::sleep(POLL * 4).await,
            }
        };
        let Some(lock) = lock else { continue };
        info!(
            auto_failover = config.failover.auto,
            "this router is the coordinator (wake-ups of hibernated users, queued jobs, automatic failover)"
        );
        let alive = || !store.client().state().is_terminated();
        let wake_ups = async {
            while alive() {
                if let Err(e) = wake_up(&store, &config).await {
                    warn!(error = %e, "coordinator: wake-ups failed; retrying");
                }
                tokio::time::sleep(POLL).await;
            }
        };
        let jobs = async {
            while alive() {
                if let Err(e) = run_jobs(&store, &config, &me).await {
                    warn!(error = %e, "coordinator: jobs failed; retrying");
                }
                tokio::time::sleep(POLL).await;
            }
        };
        let auto_failover = async {
            if !config.failover.auto {
                return;
            }
            let ops = match Ops::from_config(&config) {
                Ok(ops) => ops,
                Err(e) => {
                    warn!(error = %e, "coordinator: automatic failover cannot run");
                    return;
                }
            };
            let settings = AutoSettings::of(&config);
            let mut auto = AutoFailover::default();
            while alive() {
                if let Err(e) = auto.round(&store, &ops, &settings).await {
                    warn!(error = %e, "coordinator: automatic failover round failed; retrying");
                }
                tokio::time::sleep(AUTO_POLL).await;
            }
        };
        tokio::join!(wake_ups, jobs, auto_failover);
        lock.release().await;
        warn!("coordinator: ZooKeeper session ended; competing again");
    }
}

/// Runs every open job, oldest first.
async fn run_jobs(store: &Arc<ZkStore>, config: &Arc<Config>, me: &str) -> Result<(), String> {
    let jobs = store.jobs().await.map_err(|e| e.to_string())?;
    for (job, version) in jobs {
        if job.state.is_open() {
            run_job(store, config, job, version, me).await?;
        }
    }
    Ok(())
}

/// Runs one job to its end (done, failed or cancelled), recording its progress.
async fn run_job(
    store: &Arc<ZkStore>,
    config: &Arc<Config>,
    mut job: JobDoc,
    version: i32,
    me: &str,
) -> Result<(), String> {
    let resumed = job.state == JobState::Running;
    job.state = JobState::Running;
    job.runner = Some(me.to_string());
    job.message = None;
    job.updated_ms = now_ms();
    let JobKind::Drain {
        shard,
        to,
        parallel,
        rate,
        max_hold_ms,
    } = job.kind.clone();
    let mut report = JobReport {
        store: Arc::clone(store),
        version,
        job,
        written: Instant::now(),
        cancelled: false,
    };
    // Claim it (compare-and-set: an operator's cancel meanwhile wins).
    if !report.write().await? {
        return Ok(());
    }
    let work = match drain_plan(store, config, &shard, &to).await {
        Ok(work) => work,
        Err(e) => {
            report.job.state = JobState::Failed;
            report.job.message = Some(format!("could not list the users of {shard}: {e}"));
            report.write().await?;
            return Ok(());
        }
    };
    info!(job = %report.job.id, users = work.len(), resumed, "coordinator: running job");
    report.job.total = work.len() as u64;
    report.job.moved = 0;
    report.write().await?;
    let settings = DrainSettings {
        to,
        parallel,
        rate,
        max_hold_ms,
    };
    let failed = move_many(
        Arc::clone(store),
        Arc::clone(config),
        work,
        &settings,
        false,
        &mut report,
    )
    .await;
    let job = &mut report.job;
    if !report.cancelled {
        job.state = if failed.is_empty() {
            JobState::Done
        } else {
            JobState::Failed
        };
        job.message = Some(if failed.is_empty() {
            format!("{shard} drained")
        } else {
            format!(
                "{} user(s) not moved: queue the drain again to retry them",
                failed.len()
            )
        });
    }
    info!(job = %job.id, moved = job.moved, failed = failed.len(), state = ?job.state, "coordinator: job ended");
    report.write().await?;
    Ok(())
}

/// Keeps a running job's record up to date.
struct JobReport {
    store: Arc<ZkStore>,
    version: i32,
    job: JobDoc,
    written: Instant,
    /// An operator cancelled the job: its record says so.
    cancelled: bool,
}

impl JobReport {
    /// Writes the record (compare-and-set). A cancellation written meanwhile is kept —
    /// the counts are added to it — and returns false.
    async fn write(&mut self) -> Result<bool, String> {
        loop {
            self.job.updated_ms = now_ms();
            if self.cancelled {
                self.job.state = JobState::Cancelled;
            }
            match self.store.write_job(&self.job, Some(self.version)).await {
                Ok(v) => {
                    self.version = v;
                    self.written = Instant::now();
                    return Ok(!self.cancelled);
                }
                Err(TopologyError::Conflict) => {
                    let Some((now, v)) = self
                        .store
                        .read_job(&self.job.id)
                        .await
                        .map_err(|e| e.to_string())?
                    else {
                        return Err(format!("job {} was deleted", self.job.id));
                    };
                    self.version = v;
                    if now.state == JobState::Cancelled {
                        self.cancelled = true;
                        self.job.message = now.message;
                    }
                }
                Err(e) => return Err(e.to_string()),
            }
        }
    }
}

impl BatchReport for JobReport {
    async fn ended(&mut self, e: Ended<'_>) -> bool {
        match e.result {
            Ok(_) => self.job.moved += 1,
            Err(why) => {
                self.job.failures += 1;
                if self.job.failed.len() < 20 {
                    self.job.failed.push(e.user.to_string());
                }
                warn!(job = %self.job.id, user = %e.user, error = %why, "coordinator: a move of the job failed");
            }
        }
        if self.written.elapsed() >= PROGRESS_EVERY || e.done == e.total {
            if let Err(why) = self.write().await {
                warn!(job = %self.job.id, error = %why, "coordinator: progress not recorded");
            }
        }
        !self.cancelled
    }
}

/// One round: every queued wake-up.
async fn wake_up(store: &ZkStore, config: &Config) -> Result<(), String> {
    let users = store.wakeups().await.map_err(|e| e.to_string())?;
    if users.is_empty() {
        return Ok(());
    }
    let snapshot = store.read_all().await.map_err(|e| e.to_string())?;
    let table = snapshot
        .routing_table(&config.sharding)
        .map_err(|e| e.to_string())?;
    for user in users {
        let here = table.shard_for_key(user.as_bytes()).0;
        if !table.is_hibernation(here) {
            let _ = store.delete_wakeup(&user).await;
            continue;
        }
        // Its ring shard: where it goes without its override.
        let mut plain = snapshot.clone();
        for b in &mut plain.buckets {
            b.users.remove(&user);
        }
        let ring = plain
            .routing_table(&config.sharding)
            .map_err(|e| e.to_string())?;
        let home = ring
            .shard_name(ring.shard_for_key(user.as_bytes()).0)
            .to_string();
        let mut log = |line: String| info!(user = %user, "wake-up: {line}");
        match move_user(
            store,
            config,
            &user,
            &home,
            &MoveSettings::default(),
            &mut log,
        )
        .await
        {
            Ok(doc) => {
                info!(user = %user, to = %home, rows = doc.rows, hold_ms = doc.hold_ms.unwrap_or(0), "hibernated user woken up");
                let _ = store.delete_wakeup(&user).await;
            }
            Err(e) => warn!(user = %user, error = %e, "wake-up failed; it stays queued"),
        }
    }
    Ok(())
}
