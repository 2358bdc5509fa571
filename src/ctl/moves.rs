//! `dbrouter ctl user move`, `user moves` and `shard drain`: online moves of users' rows
//! to another shard (the state machine is [`crate::moves`]), each step printed as it ends;
//! a drain moves every user of a shard away, several at a time.

use super::{CtlError, Report};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::moves::drain::{drain_plan, move_many, ring_table, BatchReport, Ended};
use crate::moves::{describe, move_user, MoveSettings};
use crate::topology::jobs::{describe_jobs, JobDoc, JobKind, JobState};
use crate::topology::zk::ZkTarget;
use crate::topology::{TopologyError, SCHEMA};

pub use crate::moves::drain::DrainSettings;

use super::failover::printer;
use super::placement::{change_ring, change_ring_pinning, RingChange};
use super::store;

/// `user move USER SHARD [--force] [--max-hold-ms N]`. The environment variable
/// `DBROUTER_MOVE_CRASH_AFTER` (`copy`, `hold`, `catchup`, `flip`) makes the mover exit
/// after that step: the fault-injection switch of the crash-and-resume tests;
/// `DBROUTER_MOVE_PAUSE_AFTER_COPY_MS` makes it wait between the copy and the hold (the
/// catch-up tests write in that window).
pub async fn user_move(
    target: &ZkTarget,
    config: &Config,
    user: &str,
    shard: &str,
    force: bool,
    max_hold_ms: u64,
) -> Result<String, CtlError> {
    let store = store(target).await?;
    let settings = MoveSettings {
        force,
        max_hold: Duration::from_millis(max_hold_ms),
        crash_after: std::env::var("DBROUTER_MOVE_CRASH_AFTER").ok(),
        pause_after_copy: std::env::var("DBROUTER_MOVE_PAUSE_AFTER_COPY_MS")
            .ok()
            .and_then(|ms| ms.parse().ok())
            .map(Duration::from_millis),
    };
    let doc = move_user(&store, config, user, shard, &settings, &mut printer()).await?;
    Ok(format!(
        "user {} moved {} -> {}: {} row(s), statements held {} ms\n",
        doc.user,
        doc.source,
        doc.target,
        doc.rows,
        doc.hold_ms.unwrap_or(0)
    ))
}

/// `user moves`: current and recent moves with their state and timings.
pub async fn user_moves(target: &ZkTarget) -> Result<Report, CtlError> {
    let store = store(target).await?;
    let moves = store.moves().await.map_err(CtlError::from)?;
    Ok(Report::new(
        describe(&moves),
        serde_json::json!({ "moves": moves }),
    ))
}

/// `shard drain SHARD [--to S,…] [--parallel N] [--rate U] [--background]`: weight 0
/// (existing users pinned where their rows are, [`super::placement::change_ring`]), then
/// every user with rows on the shard moved to its ring shard (or one of `--to`, chosen by
/// the user's hash), with progress lines and a summary. Run it again to resume: it moves
/// whoever is left. With `background`, the moves are queued as a job that the
/// coordinator router runs (`ctl jobs` follows it).
pub async fn shard_drain(
    target: &ZkTarget,
    config: &Config,
    shard: &str,
    settings: &DrainSettings,
    background: bool,
) -> Result<String, CtlError> {
    let store = store(target).await?;
    let (topology, _) = store.read_topology().await.map_err(CtlError::from)?;
    let from = topology
        .shards
        .iter()
        .find(|s| s.name == shard)
        .cloned()
        .ok_or_else(|| format!("no shard is named {shard}"))?;
    for t in &settings.to {
        if t == shard || !topology.shards.iter().any(|s| &s.name == t) {
            return Err(format!("--to {t}: not another shard of the topology").into());
        }
    }
    let mut say = printer();
    if from.weight > 0 {
        let change = RingChange::Weight {
            name: shard.to_string(),
            weight: 0,
        };
        say(change_ring(target, config, change, false)
            .await?
            .trim_end()
            .to_string());
    }
    if background {
        return queue_drain(&store, shard, settings).await;
    }
    let work = drain_plan(&store, config, shard, &settings.to).await?;
    say(format!(
        "draining {shard}: {} user(s) with rows",
        work.len()
    ));
    let done = format!("drained {shard}");
    run_printed(store, config, work, settings, false, &done, "moved").await
}

/// Runs a batch of moves printing each as it ends, then its summary: `done: N of M
/// user(s) <what> in S s`, an error naming the failed users if any.
async fn run_printed(
    store: crate::topology::zk::ZkStore,
    config: &Config,
    work: Vec<(String, String)>,
    settings: &DrainSettings,
    unpin: bool,
    done: &str,
    what: &str,
) -> Result<String, CtlError> {
    let total = work.len();
    let started = Instant::now();
    let failed = move_many(
        Arc::new(store),
        Arc::new(config.clone()),
        work,
        settings,
        unpin,
        &mut Printed::new(),
    )
    .await;
    let out = format!(
        "{done}: {} of {total} user(s) {what} in {:.1} s",
        total - failed.len(),
        started.elapsed().as_secs_f64()
    );
    finish(out, &failed)
}

/// Queues a drain as the job `drain-<shard>` (replacing a finished one of that name).
async fn queue_drain(
    store: &crate::topology::zk::ZkStore,
    shard: &str,
    settings: &DrainSettings,
) -> Result<String, CtlError> {
    let id = format!("drain-{shard}");
    let expected = match store.read_job(&id).await.map_err(CtlError::from)? {
        Some((job, _)) if job.state.is_open() => {
            return Err(format!(
                "job {id} is {} already: `dbrouter ctl jobs` shows its progress, `dbrouter ctl jobs cancel {id}` stops it",
                format!("{:?}", job.state).to_lowercase()
            ).into())
        }
        Some((_, version)) => Some(version),
        None => None,
    };
    let now = crate::moves::now_ms();
    let job = JobDoc {
        schema: SCHEMA,
        id: id.clone(),
        kind: JobKind::Drain {
            shard: shard.to_string(),
            to: settings.to.clone(),
            parallel: settings.parallel.max(1),
            rate: settings.rate,
            max_hold_ms: settings.max_hold_ms,
        },
        state: JobState::Queued,
        created_ms: now,
        updated_ms: now,
        runner: None,
        total: 0,
        moved: 0,
        failed: Vec::new(),
        failures: 0,
        message: None,
    };
    store.write_job(&job, expected).await.map_err(|e| match e {
        TopologyError::Conflict => format!("job {id} was queued meanwhile by someone else"),
        e => e.to_string(),
    })?;
    let coordinator = match store.lock_owner("coordinator").await {
        Ok(Some(owner)) => format!("the coordinator ({owner}) runs it"),
        _ => "no router is the coordinator now: it runs once one is".to_string(),
    };
    Ok(format!(
        "drain of {shard} queued as job {id}; {coordinator}. Follow it with `dbrouter ctl jobs`; stop it with `dbrouter ctl jobs cancel {id}`\n"
    ))
}

/// `jobs`: the background jobs and their progress.
pub async fn jobs(target: &ZkTarget) -> Result<Report, CtlError> {
    let store = store(target).await?;
    let jobs = store.jobs().await.map_err(CtlError::from)?;
    let text = if jobs.is_empty() {
        "no job\n".to_string()
    } else {
        describe_jobs(&jobs)
    };
    Ok(Report::new(text, serde_json::json!({ "jobs": jobs })))
}

/// `jobs cancel ID`: no new move of the job starts; those under way finish.
pub async fn job_cancel(target: &ZkTarget, id: &str) -> Result<String, CtlError> {
    let store = store(target).await?;
    loop {
        let Some((mut job, version)) = store.read_job(id).await.map_err(CtlError::from)? else {
            return Err(format!("no job is named {id} (`dbrouter ctl jobs` lists them)").into());
        };
        if !job.state.is_open() {
            return Err(format!(
                "job {id} is {} already",
                format!("{:?}", job.state).to_lowercase()
            )
            .into());
        }
        job.state = JobState::Cancelled;
        job.updated_ms = crate::moves::now_ms();
        job.message = Some("cancelled by an operator".into());
        match store.write_job(&job, Some(version)).await {
            Ok(_) => {
                return Ok(format!(
                    "job {id} cancelled: no new move starts; moves under way finish\n"
                ))
            }
            Err(TopologyError::Conflict) => continue,
            Err(e) => return Err(e.to_string().into()),
        }
    }
}

/// The summary of a batch of moves: an error naming the failed users, if any.
fn finish(mut out: String, failed: &[String]) -> Result<String, CtlError> {
    if failed.is_empty() {
        out.push('\n');
        return Ok(out);
    }
    Err(format!(
        "{out}; {} failed ({}): run the command again to retry them",
        failed.len(),
        failed
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    )
    .into())
}

/// Prints a progress line per finished move (done/total, rate, ETA, failures).
struct Printed {
    say: Box<dyn FnMut(String) + Send + Sync>,
    started: Instant,
}

impl Printed {
    fn new() -> Self {
        Printed {
            say: Box::new(printer()),
            started: Instant::now(),
        }
    }
}

impl BatchReport for Printed {
    async fn ended(&mut self, e: Ended<'_>) -> bool {
        let rate = e.done as f64 / self.started.elapsed().as_secs_f64().max(0.001);
        let eta = (e.total - e.done) as f64 / rate.max(0.001);
        let (done, total, user, to) = (e.done, e.total, e.user, e.to);
        (self.say)(match e.result {
            Ok(doc) => format!(
                "[{done}/{total}] user {user} -> {to}: {} row(s), held {} ms; {rate:.1} users/s, ETA {eta:.0} s, {} failed",
                doc.rows,
                doc.hold_ms.unwrap_or(0),
                e.failed
            ),
            Err(why) => format!("[{done}/{total}] user {user} -> {to}: FAILED: {why}"),
        });
        true
    }
}

/// `shard add --rebalance` / `shard set-weight --rebalance`: the ring change (existing
/// users pinned where their rows are), then each pinned user moved to its new ring shard
/// and unpinned.
pub async fn change_ring_and_rebalance(
    target: &ZkTarget,
    config: &Config,
    change: RingChange,
    settings: &DrainSettings,
) -> Result<String, CtlError> {
    let (out, pinned) = change_ring_pinning(target, config, change, false).await?;
    let mut say = printer();
    say(out.trim_end().to_string());
    let store = store(target).await?;
    let ring = ring_table(&store, config).await?;
    let work: Vec<(String, String)> = pinned
        .iter()
        .map(|user| {
            let to = ring.shard_name(ring.shard_for_key(user).0).to_string();
            (String::from_utf8_lossy(user).into_owned(), to)
        })
        .collect();
    say(format!(
        "rebalancing: {} pinned user(s) to their new ring shards",
        work.len()
    ));
    run_printed(
        store,
        config,
        work,
        settings,
        true,
        "rebalanced",
        "moved and unpinned",
    )
    .await
}

/// `user hibernate USER… [--from-file F] [--to SHARD]`: moves idle users to a hibernation
/// shard (the only one, or `--to`). A statement for one of them later moves them back.
pub async fn user_hibernate(
    target: &ZkTarget,
    config: &Config,
    users: &[String],
    to: Option<&str>,
    max_hold: Duration,
) -> Result<String, CtlError> {
    let store = store(target).await?;
    let (topology, _) = store.read_topology().await.map_err(CtlError::from)?;
    let hibernation: Vec<&str> = topology
        .shards
        .iter()
        .filter(|s| s.hibernation)
        .map(|s| s.name.as_str())
        .collect();
    let shard =
        match (to, hibernation.as_slice()) {
            (Some(t), _) if hibernation.contains(&t) => t.to_string(),
            (Some(t), _) => return Err(format!("{t} is not a hibernation shard").into()),
            (None, [only]) => only.to_string(),
            (None, []) => return Err(
                "no hibernation shard: add one with `shard add NAME --master H:P --hibernation`"
                    .into(),
            ),
            (None, _) => {
                return Err(format!(
                    "several hibernation shards ({}): say which with --to",
                    hibernation.join(", ")
                )
                .into())
            }
        };
    let mut say = printer();
    let mut failed = Vec::new();
    for (i, user) in users.iter().enumerate() {
        let mut quiet = |_: String| {};
        let settings = MoveSettings {
            max_hold,
            ..MoveSettings::default()
        };
        match move_user(&store, config, user, &shard, &settings, &mut quiet).await {
            Ok(doc) => say(format!(
                "[{}/{}] user {} hibernated on {shard}: {} row(s)",
                i + 1,
                users.len(),
                doc.user,
                doc.rows
            )),
            Err(e) => {
                say(format!(
                    "[{}/{}] user {user}: FAILED: {e}",
                    i + 1,
                    users.len()
                ));
                failed.push(user.clone());
            }
        }
    }
    if failed.is_empty() {
        Ok(format!("{} user(s) hibernated on {shard}\n", users.len()))
    } else {
        Err(format!(
            "{} of {} failed: {}",
            failed.len(),
            users.len(),
            failed.join(", ")
        )
        .into())
    }
}
