//! Many moves at once: the users of a drained shard, or the users a ring change pinned.
//! Shared by `dbrouter ctl` (which prints each move as it ends) and the coordinator
//! (which runs background drains and records their progress in the job's record): both
//! report through [`BatchReport`].

use std::sync::Arc;
use std::time::Duration;

use super::data::users_on;
use super::{move_user, MoveSettings};
use crate::config::Config;
use crate::router::ring::key_hash;
use crate::router::RoutingTable;
use crate::topology::zk::ZkStore;
use crate::topology::{MoveDoc, TopologyError};

/// How a batch of moves runs.
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

/// One move of a batch ended.
#[derive(Debug)]
pub struct Ended<'a> {
    /// The user.
    pub user: &'a str,
    /// Where it went (or was to go).
    pub to: &'a str,
    /// The move's record, or why it failed.
    pub result: &'a Result<MoveDoc, String>,
    /// Moves ended so far (this one included), of `total`.
    pub done: usize,
    /// Moves in the batch.
    pub total: usize,
    /// Moves failed so far.
    pub failed: usize,
}

/// Who hears about each move of a batch as it ends.
#[allow(async_fn_in_trait)]
pub trait BatchReport {
    /// A move ended. Returns false to start no further move (the batch was cancelled);
    /// moves under way finish.
    async fn ended(&mut self, ended: Ended<'_>) -> bool;
}

/// The routing table of the topology without any override: where the ring puts each
/// user (the targets of drains and rebalances).
pub async fn ring_table(store: &ZkStore, config: &Config) -> Result<RoutingTable, String> {
    let mut snapshot = store.read_all().await.map_err(|e| e.to_string())?;
    for b in &mut snapshot.buckets {
        b.users.clear();
    }
    snapshot
        .routing_table(&config.sharding)
        .map_err(|e| e.to_string())
}

/// The users with rows on `shard`'s master and where each goes: one of `to` (chosen by
/// the user's hash), else its ring shard.
pub async fn drain_plan(
    store: &ZkStore,
    config: &Config,
    shard: &str,
    to: &[String],
) -> Result<Vec<(String, String)>, String> {
    let (topology, _) = store.read_topology().await.map_err(|e| e.to_string())?;
    let from = topology
        .shards
        .iter()
        .find(|s| s.name == shard)
        .ok_or_else(|| format!("no shard is named {shard}"))?;
    for t in to {
        if t == shard || !topology.shards.iter().any(|s| &s.name == t) {
            return Err(format!("--to {t}: not another shard of the topology"));
        }
    }
    let ring = ring_table(store, config).await?;
    let (users, _) = users_on(config, &from.master).await?;
    Ok(users
        .iter()
        .map(|user| {
            let target = if to.is_empty() {
                ring.shard_name(ring.shard_for_key(user).0).to_string()
            } else {
                let i = (key_hash(user) % to.len() as u64) as usize;
                to[i].clone()
            };
            (String::from_utf8_lossy(user).into_owned(), target)
        })
        .collect())
}

/// Moves each (user, target shard) — `parallel` at a time, at most `rate` started per
/// second — telling `report` as each ends. With `unpin`, a moved user's override is
/// removed afterwards (its target is its ring shard). Returns the users whose move failed.
pub async fn move_many(
    store: Arc<ZkStore>,
    config: Arc<Config>,
    work: Vec<(String, String)>,
    settings: &DrainSettings,
    unpin: bool,
    report: &mut impl BatchReport,
) -> Vec<String> {
    let total = work.len();
    let (mut done, mut failed) = (0usize, Vec::new());
    let mut running = tokio::task::JoinSet::new();
    let mut queue = work.into_iter();
    let parallel = settings.parallel.max(1);
    let mut go_on = true;
    loop {
        while go_on && running.len() < parallel {
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
                        if let Err(e) = unpin_user(&store, &doc.user).await {
                            result = Err(format!("moved, but the override stays: {e}"));
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
        let (user, to, result) = joined.unwrap_or_else(|e| {
            let why = format!("the move task failed: {e}");
            ("?".to_string(), "?".to_string(), Err(why))
        });
        done += 1;
        if result.is_err() {
            failed.push(user.clone());
        }
        let ended = Ended {
            user: &user,
            to: &to,
            result: &result,
            done,
            total,
            failed: failed.len(),
        };
        go_on = report.ended(ended).await && go_on;
    }
    failed
}

/// Removes a moved user's override (other moves write the same documents: retried on a
/// conflict).
async fn unpin_user(store: &ZkStore, user: &str) -> Result<(), TopologyError> {
    let mut attempt = 0;
    loop {
        match store.set_override(user.as_bytes(), None).await {
            Ok(_) => return Ok(()),
            Err(TopologyError::Conflict) if attempt < 20 => attempt += 1,
            Err(e) => return Err(e),
        }
    }
}
