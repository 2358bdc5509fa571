//! `dbrouter ctl user move`, `user moves` and `shard drain`: online moves of users' rows
//! to another shard (the state machine is [`crate::moves`]), each step printed as it ends;
//! a drain moves every user of a shard away, several at a time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::moves::data::users_on;
use crate::moves::{describe, move_user, MoveSettings};
use crate::router::ring::key_hash;
use crate::router::RoutingTable;
use crate::topology::zk::{ZkStore, ZkTarget};
use crate::topology::TopologyError;

use super::failover::printer;
use super::placement::{change_ring, change_ring_pinning, RingChange};
use super::store;

/// `user move USER SHARD [--force] [--max-hold-ms N]`. The environment variable
/// `DBROUTER_MOVE_CRASH_AFTER` (`copy`, `hold`, `catchup`, `flip`) makes the mover exit
/// after that step: the fault-injection switch of the crash-and-resume tests.
pub async fn user_move(
    target: &ZkTarget,
    config: &Config,
    user: &str,
    shard: &str,
    force: bool,
    max_hold_ms: u64,
) -> Result<String, String> {
    let store = store(target).await?;
    let settings = MoveSettings {
        force,
        max_hold: Duration::from_millis(max_hold_ms),
        crash_after: std::env::var("DBROUTER_MOVE_CRASH_AFTER").ok(),
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
pub async fn user_moves(target: &ZkTarget) -> Result<String, String> {
    let store = store(target).await?;
    let moves = store.moves().await.map_err(|e| e.to_string())?;
    Ok(describe(&moves))
}

/// How `shard drain` runs.
#[derive(Debug, Clone, Default)]
pub struct DrainSettings {
    /// Target shards (default: each user's ring shard).
    pub to: Vec<String>,
    /// Moves at once.
    pub parallel: usize,
    /// At most this many moves started per second.
    pub rate: Option<f64>,
    /// Per move: see [`MoveSettings`].
    pub max_hold_ms: u64,
}

/// `shard drain SHARD [--to S,…] [--parallel N] [--rate U]`: weight 0 (existing users
/// pinned where their rows are, [`super::placement::change_ring`]), then every user with
/// rows on the shard moved to its ring shard (or one of `--to`, chosen by the user's hash),
/// with progress lines and a summary. Run it again to resume: it moves whoever is left.
pub async fn shard_drain(
    target: &ZkTarget,
    config: &Config,
    shard: &str,
    settings: &DrainSettings,
) -> Result<String, String> {
    let store = store(target).await?;
    let (topology, _) = store.read_topology().await.map_err(|e| e.to_string())?;
    let from = topology
        .shards
        .iter()
        .find(|s| s.name == shard)
        .cloned()
        .ok_or_else(|| format!("no shard is named {shard}"))?;
    for t in &settings.to {
        if t == shard || !topology.shards.iter().any(|s| &s.name == t) {
            return Err(format!("--to {t}: not another shard of the topology"));
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
    // Where each user goes: one of --to, else its ring shard (overrides left out: the
    // draining shard's users are pinned to it now).
    let ring = ring_table(&store, config).await?;
    let (users, _) = users_on(config, &from.master).await?;
    say(format!(
        "draining {shard}: {} user(s) with rows",
        users.len()
    ));
    let work: Vec<(String, String)> = users
        .iter()
        .map(|user| {
            let to = if settings.to.is_empty() {
                ring.shard_name(ring.shard_for_key(user).0).to_string()
            } else {
                let i = (key_hash(user) % settings.to.len() as u64) as usize;
                settings.to[i].clone()
            };
            (String::from_utf8_lossy(user).into_owned(), to)
        })
        .collect();
    let total = work.len();
    let started = Instant::now();
    let failed = move_many(store, config, work, settings, false).await;
    let out = format!(
        "drained {shard}: {} of {total} user(s) moved in {:.1} s",
        total - failed.len(),
        started.elapsed().as_secs_f64()
    );
    finish(out, &failed)
}

/// The routing table of the topology without any override: where the ring puts each
/// user (the targets of drains and rebalances).
async fn ring_table(store: &ZkStore, config: &Config) -> Result<RoutingTable, String> {
    let mut snapshot = store.read_all().await.map_err(|e| e.to_string())?;
    for b in &mut snapshot.buckets {
        b.users.clear();
    }
    snapshot
        .routing_table(&config.sharding)
        .map_err(|e| e.to_string())
}

/// The summary of a batch of moves: an error naming the failed users, if any.
fn finish(mut out: String, failed: &[String]) -> Result<String, String> {
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
    ))
}

/// Moves each (user, target shard) — `parallel` at a time, at most `rate` started per
/// second — printing a progress line per finished move (done/total, rate, ETA, failures).
/// With `unpin`, a moved user's override is removed afterwards (its target is its ring
/// shard). Returns the users whose move failed.
async fn move_many(
    store: ZkStore,
    config: &Config,
    work: Vec<(String, String)>,
    settings: &DrainSettings,
    unpin: bool,
) -> Vec<String> {
    let mut say = printer();
    let total = work.len();
    let store = Arc::new(store);
    let config = Arc::new(config.clone());
    let started = Instant::now();
    let (mut done, mut failed) = (0usize, Vec::new());
    let mut running = tokio::task::JoinSet::new();
    let mut queue = work.into_iter();
    let parallel = settings.parallel.max(1);
    loop {
        while running.len() < parallel {
            let Some((user, to)) = queue.next() else {
                break;
            };
            let (store, config) = (Arc::clone(&store), Arc::clone(&config));
            let move_settings = MoveSettings {
                max_hold: Duration::from_millis(settings.max_hold_ms),
                ..MoveSettings::default()
            };
            running.spawn(async move {
                let mut quiet = |_: String| {};
                let mut result =
                    move_user(&store, &config, &user, &to, &move_settings, &mut quiet).await;
                if unpin {
                    if let Ok(doc) = &result {
                        // Other moves write the same documents: retry on a conflict.
                        let mut attempt = 0;
                        loop {
                            match store.set_override(doc.user.as_bytes(), None).await {
                                Ok(_) => break,
                                Err(TopologyError::Conflict) if attempt < 20 => attempt += 1,
                                Err(e) => {
                                    result = Err(format!("moved, but the override stays: {e}"));
                                    break;
                                }
                            }
                        }
                    }
                }
                (user, to, result)
            });
            if let Some(rate) = settings.rate.filter(|r| *r > 0.0) {
                tokio::time::sleep(Duration::from_secs_f64(1.0 / rate)).await;
            }
        }
        let Some(joined) = running.join_next().await else {
            break;
        };
        let Ok((user, to, result)) = joined else {
            failed.push("(a move task panicked)".to_string());
            continue;
        };
        done += 1;
        let rate = done as f64 / started.elapsed().as_secs_f64().max(0.001);
        let eta = (total - done) as f64 / rate.max(0.001);
        match result {
            Ok(doc) => say(format!(
                "[{done}/{total}] user {user} -> {to}: {} row(s), held {} ms; {rate:.1} users/s, ETA {eta:.0} s, {} failed",
                doc.rows,
                doc.hold_ms.unwrap_or(0),
                failed.len()
            )),
            Err(e) => {
                say(format!("[{done}/{total}] user {user} -> {to}: FAILED: {e}"));
                failed.push(user);
            }
        }
    }
    failed
}

/// `shard add --rebalance` / `shard set-weight --rebalance`: the ring change (existing
/// users pinned where their rows are), then each pinned user moved to its new ring shard
/// and unpinned.
pub async fn change_ring_and_rebalance(
    target: &ZkTarget,
    config: &Config,
    change: RingChange,
    settings: &DrainSettings,
) -> Result<String, String> {
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
    let total = work.len();
    say(format!(
        "rebalancing: {total} pinned user(s) to their new ring shards"
    ));
    let started = Instant::now();
    let failed = move_many(store, config, work, settings, true).await;
    let out = format!(
        "rebalanced: {} of {total} user(s) moved and unpinned in {:.1} s",
        total - failed.len(),
        started.elapsed().as_secs_f64()
    );
    finish(out, &failed)
}

/// `user hibernate USER… [--from-file F] [--to SHARD]`: moves idle users to a hibernation
/// shard (the only one, or `--to`). A statement for one of them later moves them back.
pub async fn user_hibernate(
    target: &ZkTarget,
    config: &Config,
    users: &[String],
    to: Option<&str>,
    max_hold: Duration,
) -> Result<String, String> {
    let store = store(target).await?;
    let (topology, _) = store.read_topology().await.map_err(|e| e.to_string())?;
    let hibernation: Vec<&str> = topology
        .shards
        .iter()
        .filter(|s| s.hibernation)
        .map(|s| s.name.as_str())
        .collect();
    let shard =
        match (to, hibernation.as_slice()) {
            (Some(t), _) if hibernation.contains(&t) => t.to_string(),
            (Some(t), _) => return Err(format!("{t} is not a hibernation shard")),
            (None, [only]) => only.to_string(),
            (None, []) => return Err(
                "no hibernation shard: add one with `shard add NAME --master H:P --hibernation`"
                    .into(),
            ),
            (None, _) => {
                return Err(format!(
                    "several hibernation shards ({}): say which with --to",
                    hibernation.join(", ")
                ))
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
        ))
    }
}
