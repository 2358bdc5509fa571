//! Placement commands that never separate a user from their rows. A user's rows live on
//! the shard the user is routed to; anything that would route a user elsewhere — a shard
//! given ring weight (`shard add --weight`, `shard set-weight`), a pin or an unpin — first
//! looks at where users actually have rows, on every shard's master:
//!
//! * a ring change pins every existing user whose ring shard would change to the shard
//!   that holds their rows (per-bucket compare-and-set writes of overrides), and only then
//!   publishes the new ring (a compare-and-set on the topology document read before the
//!   scan, so nothing changed meanwhile). The shards are scanned twice — the second pass,
//!   right before the publish, catches users whose first rows were written during the
//!   first — which leaves a window of one round trip for a user's very first row;
//! * `user pin` / `unpin` of a user with rows on another shard than the one they would go
//!   to is refused (pointing to `user move`), unless the operator says `--no-data-check`.
//!
//! Users are found with `SELECT DISTINCT <key>` over every sharded table (the tables of
//! `[sharding]` in every schema, plus, with `unlisted_tables = "sharded"`, every table with
//! the key column), in chunks, with the service account (`moves::data`).

use super::CtlError;
use std::collections::BTreeMap;

use crate::config::Config;
use crate::moves::data::{shards_holding, users_on};
use crate::router::RoutingTable;
use crate::topology::zk::{ZkStore, ZkTarget};
use crate::topology::{ShardDoc, ShardState, Snapshot, TopologyDoc};

/// What a ring change means for the users that exist.
#[derive(Debug, Default)]
struct Affected {
    /// Users whose ring shard changes, with the shard holding their rows.
    pins: BTreeMap<Vec<u8>, String>,
    /// Users with rows on a shard they are not routed to today (already separated).
    stray: Vec<(Vec<u8>, String)>,
    /// Users seen.
    users: usize,
    /// Key values no router can route (NULL or out of range).
    unroutable: usize,
}

/// Scans every shard's master and works out who must be pinned for `before` → `after`.
async fn affected_users(
    config: &Config,
    topology: &TopologyDoc,
    before: &RoutingTable,
    after: &RoutingTable,
) -> Result<Affected, String> {
    let mut out = Affected::default();
    for shard in &topology.shards {
        let (users, unroutable) = users_on(config, &shard.master).await?;
        out.users += users.len();
        out.unroutable += unroutable;
        for user in users {
            let now = before.shard_for_key(&user).0;
            let next = after.shard_for_key(&user).0;
            if Some(now) != before.shard_id(&shard.name) {
                out.stray.push((user, shard.name.clone()));
            } else if next != now {
                out.pins.insert(user, shard.name.clone());
            }
        }
    }
    Ok(out)
}

/// A ring change: a shard added, or a weight changed.
#[derive(Debug, Clone)]
pub enum RingChange {
    /// A new shard (appended, so existing shard ids stay).
    Add(ShardDoc),
    /// A new weight for a shard.
    Weight {
        /// The shard.
        name: String,
        /// Its new weight.
        weight: u32,
    },
}

/// `shard add` / `shard set-weight`: changes the ring without separating any user from
/// their rows (see the module comment). With `dry_run`, only says what it would do.
pub async fn change_ring(
    target: &ZkTarget,
    config: &Config,
    change: RingChange,
    dry_run: bool,
) -> Result<String, CtlError> {
    change_ring_pinning(target, config, change, dry_run)
        .await
        .map(|(out, _)| out)
        .map_err(CtlError::from)
}

/// [`change_ring`], also returning the users it pinned (their rows are now off their
/// ring shard: `--rebalance` moves them).
pub async fn change_ring_pinning(
    target: &ZkTarget,
    config: &Config,
    change: RingChange,
    dry_run: bool,
) -> Result<(String, Vec<Vec<u8>>), String> {
    let store = super::store(target).await?;
    let (doc, expected) = store.read_topology().await.map_err(CtlError::from)?;
    let mut next = doc.clone();
    let what = match &change {
        RingChange::Add(shard) => {
            if doc.shards.iter().any(|s| s.name == shard.name) {
                return Err(format!("shard {} exists already", shard.name));
            }
            next.shards.push(shard.clone());
            format!(
                "added shard {} (master {}, weight {})",
                shard.name, shard.master, shard.weight
            )
        }
        RingChange::Weight { name, weight } => {
            let shard = next
                .shard_mut(name)
                .ok_or_else(|| format!("no shard is named {name}"))?;
            let old = std::mem::replace(&mut shard.weight, *weight);
            format!("shard {name}: weight {old} -> {weight}")
        }
    };
    next.validate().map_err(CtlError::from)?;
    if next.shards.iter().any(|s| s.state == ShardState::Switching) {
        return Err("a shard is switching masters; change the ring after the switchover".into());
    }
    let mut out = String::new();
    let mut pinned_users = Vec::new();
    let ring_changes = ring_of(&doc) != ring_of(&next);
    if ring_changes {
        let snapshot = store.read_all().await.map_err(CtlError::from)?;
        let tables = |topology: &TopologyDoc| {
            Snapshot {
                topology: topology.clone(),
                ..snapshot.clone()
            }
            .routing_table(&config.sharding)
            .map_err(CtlError::from)
        };
        let (before, after) = (tables(&doc)?, tables(&next)?);
        let first = affected_users(config, &doc, &before, &after).await?;
        out.push_str(&format!(
            "scanned {} shard(s): {} user(s) with rows; {} would move on the new ring\n",
            doc.shards.len(),
            first.users,
            first.pins.len()
        ));
        report_strays(&mut out, &first);
        if dry_run {
            out.push_str("dry run: nothing written\n");
            return Ok((out, Vec::new()));
        }
        let pinned = pin_all(&store, &first.pins).await?;
        // Users whose first rows arrived during the first pass.
        let second = affected_users(config, &doc, &before, &after).await?;
        let late: BTreeMap<Vec<u8>, String> = second
            .pins
            .into_iter()
            .filter(|(u, _)| !first.pins.contains_key(u))
            .collect();
        let pinned_late = pin_all(&store, &late).await?;
        pinned_users = first.pins.keys().chain(late.keys()).cloned().collect();
        out.push_str(&format!(
            "pinned {} user(s) to the shards holding their rows ({} found by the second pass); `dbrouter ctl user move` moves them later\n",
            pinned + pinned_late,
            pinned_late
        ));
    } else if dry_run {
        return Ok((
            format!("{what}: the ring does not change; dry run: nothing written\n"),
            Vec::new(),
        ));
    }
    let version = store
        .write_topology(&next, expected)
        .await
        .map_err(|e| match e {
            crate::topology::TopologyError::Conflict => {
                "the topology changed under you (another command); nothing was published, retry. \
                 The pins written place users where their rows are and stay: harmless"
                    .to_string()
            }
            other => other.to_string(),
        })?;
    out.push_str(&format!("{what}; topology version {version}\n"));
    Ok((out, pinned_users))
}

/// The ring's inputs: serving shards and weights, in order.
fn ring_of(doc: &TopologyDoc) -> Vec<(String, u32)> {
    doc.shards
        .iter()
        .filter(|s| s.weight > 0)
        .map(|s| (s.name.clone(), s.weight))
        .collect()
}

fn report_strays(out: &mut String, affected: &Affected) {
    if affected.unroutable > 0 {
        out.push_str(&format!(
            "note: {} key value(s) are NULL or outside sharding.key_type: no router routes them\n",
            affected.unroutable
        ));
    }
    if affected.stray.is_empty() {
        return;
    }
    out.push_str(&format!(
        "warning: {} user(s) already have rows on a shard they are not routed to (left as they are):\n",
        affected.stray.len()
    ));
    for (user, shard) in affected.stray.iter().take(10) {
        out.push_str(&format!(
            "  user {} has rows on {shard}\n",
            String::from_utf8_lossy(user)
        ));
    }
}

/// Writes overrides bucket by bucket (one compare-and-set per bucket, retried on a
/// conflict); a user who got an override meanwhile keeps it. Returns how many were
/// written.
async fn pin_all(store: &ZkStore, pins: &BTreeMap<Vec<u8>, String>) -> Result<usize, String> {
    let mut by_bucket: BTreeMap<usize, Vec<(&[u8], &str)>> = BTreeMap::new();
    for (user, shard) in pins {
        by_bucket
            .entry(crate::topology::bucket_of(user))
            .or_default()
            .push((user, shard));
    }
    let mut written = 0;
    for (bucket, entries) in by_bucket {
        written += store
            .add_overrides(bucket, &entries)
            .await
            .map_err(|e| format!("writing overrides of bucket {bucket}: {e}"))?;
    }
    Ok(written)
}

/// Refuses a pin or unpin that would route `user` away from their rows.
pub async fn check_placement(
    config: &Config,
    topology: &TopologyDoc,
    user: &[u8],
    destination: &str,
) -> Result<(), String> {
    let holding = shards_holding(config, topology, user).await?;
    // Two shard names on one server (a shard being set up there) share its rows.
    let master = |name: &str| {
        topology
            .shards
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.master.as_str())
    };
    let elsewhere: Vec<&String> = holding
        .iter()
        .filter(|s| master(s) != master(destination))
        .collect();
    if elsewhere.is_empty() {
        return Ok(());
    }
    let user = String::from_utf8_lossy(user);
    Err(format!(
        "user {user} has rows on {}: routing them to {destination} would separate them from their data. \
         Use `dbrouter ctl user move {user} {destination}` to move the rows with the user, \
         or --no-data-check if those rows are not needed",
        elsewhere
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    ))
}
