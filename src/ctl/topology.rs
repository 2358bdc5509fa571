//! `dbrouter ctl topology|shard|user|routers`: reading and changing the shared topology in
//! ZooKeeper. Every write is a compare-and-set: if someone else changed the topology
//! between our read and our write, the command fails with "changed under you, retry" and
//! nothing is written. Every write prints what it changed and the new version.

use super::{CtlError, Report};
use std::path::Path;

use super::store;

use crate::config::Config;
use crate::router::key_from_text;
use crate::topology::override_key;
use crate::topology::zk::{InitOutcome, ZkTarget};
use crate::topology::{MoveState, ShardDoc, ShardState, TopologyDoc, TopologyError};

use super::placement::{check_placement, RingChange};

/// Where a ctl command finds ZooKeeper: `--zk`, else the config's `[topology] source`.
pub fn target(zk: Option<&str>, config: &Path) -> Result<ZkTarget, String> {
    if let Some(url) = zk {
        // The digest identity still comes from the config, when there is one.
        let target = ZkTarget::parse(url)?;
        return Ok(match Config::load(config) {
            Ok(config) => target.with_digest(&config.topology),
            Err(_) => target,
        });
    }
    let config = Config::load(config).map_err(CtlError::from)?;
    crate::topology::zk::ZkTarget::of(&config.topology).ok_or_else(|| {
        format!(
            "the config's [topology] source is {:?}: give --zk zk://host:port/path",
            config.topology.source
        )
    })
}

fn fail(e: TopologyError) -> String {
    e.to_string()
}

/// `ctl topology secure`: the ACL of an identity-protected tree on every existing node.
pub async fn secure(target: &ZkTarget) -> Result<String, CtlError> {
    let store = store(target).await?;
    let changed = store.restrict_tree().await.map_err(fail)?;
    Ok(format!(
        "{target}: {changed} node(s) now writable by the configured identity only (readable by anyone)\n"
    ))
}

/// `topology init --from FILE`: creates the layout from a config file's shards and
/// overrides; idempotent. With `force`, replaces an existing topology document.
pub async fn init(target: &ZkTarget, from: &Path, force: bool) -> Result<String, CtlError> {
    let config = Config::load(from).map_err(|e| CtlError::from(e.to_string()))?;
    if config.shards.is_empty() {
        return Err(format!(
            "{} has no [[shards]] to initialise the topology with",
            from.display()
        )
        .into());
    }
    let topology = TopologyDoc::from_config(&config);
    let overrides: Vec<(Vec<u8>, String)> = config
        .overrides
        .iter()
        .filter_map(|o| Some((override_key(&o.user)?, o.shard.clone())))
        .collect();
    let store = store(target).await?;
    match store.init(&topology, &overrides).await.map_err(fail)? {
        InitOutcome::Created => Ok(format!(
            "initialised {target}: {} shard(s), {} override(s); topology version 1\n",
            topology.shards.len(),
            overrides.len()
        )),
        InitOutcome::AlreadyInitialized(version) if force => {
            // Replace the document whatever it holds (repairs a malformed one).
            let (_, stat) = store
                .client()
                .get_data(&store.path("topology"))
                .await
                .map_err(|e| CtlError::retry(format!("zookeeper: {e}")))?;
            let new = store
                .write_topology(&topology, stat.version)
                .await
                .map_err(fail)?;
            Ok(format!("replaced the topology of {target} (was version {version}); topology version {new}\n"))
        }
        InitOutcome::AlreadyInitialized(version) => Ok(format!(
            "{target} is already initialised (topology version {version}); nothing changed\n"
        )),
    }
}

/// `topology show`: the topology, human-readable or JSON (`--json`: the document alone,
/// pretty; `--output json`: the same as the `result` of the ctl document).
pub async fn show(target: &ZkTarget, json: bool) -> Result<Report, CtlError> {
    let store = store(target).await?;
    let snapshot = store.read_all().await.map_err(fail)?;
    let overrides: usize = snapshot.buckets.iter().map(|b| b.users.len()).sum();
    let value = serde_json::json!({
        "version": snapshot.version,
        "topology": snapshot.topology,
        "overrides": overrides,
    });
    if json {
        let text = serde_json::to_string_pretty(&value)
            .map(|s| s + "\n")
            .map_err(|e| CtlError::from(e.to_string()))?;
        return Ok(Report::new(text, value));
    }
    let mut out = format!(
        "topology {target} version {}\nglobal shard: {}\noverridden users: {overrides}\n\n{:<12} {:>6} {:>6} {:<9} {:<22} standbys\n",
        snapshot.version, snapshot.topology.global_shard, "shard", "weight", "epoch", "state", "master"
    );
    for s in &snapshot.topology.shards {
        let state = match s.state {
            ShardState::Serving => "serving",
            ShardState::Switching => "switching",
        };
        out.push_str(&format!(
            "{:<12} {:>6} {:>6} {:<9} {:<22} {}\n",
            s.name,
            s.weight,
            s.epoch,
            state,
            s.master,
            s.standbys.join(", ")
        ));
    }
    Ok(Report::new(out, value))
}

/// Applies `change` to the topology with compare-and-set; reports what changed.
async fn change_topology(
    target: &ZkTarget,
    change: impl FnOnce(&mut TopologyDoc) -> Result<String, CtlError>,
) -> Result<String, CtlError> {
    let store = store(target).await?;
    let (mut doc, expected) = store.read_topology().await.map_err(fail)?;
    let what = change(&mut doc)?;
    let version = store.write_topology(&doc, expected).await.map_err(fail)?;
    Ok(format!("{what}; topology version {version}\n"))
}

/// `shard add`: appends a shard (new shards go last so existing ids stay). With a
/// weight, existing users whose ring shard changes are pinned first
/// ([`super::placement::change_ring`]).
pub async fn shard_add(
    target: &ZkTarget,
    config: &Config,
    shard: NewShard<'_>,
    dry_run: bool,
) -> Result<String, CtlError> {
    super::placement::change_ring(target, config, RingChange::Add(shard.doc()), dry_run).await
}

impl NewShard<'_> {
    /// The shard's topology document: serving, epoch 1.
    pub fn doc(&self) -> ShardDoc {
        ShardDoc {
            name: self.name.to_string(),
            master: self.master.to_string(),
            standbys: self.standbys.to_vec(),
            weight: self.weight,
            epoch: 1,
            state: ShardState::Serving,
            rejoin: Vec::new(),
            hibernation: self.hibernation,
            auto_failover: Default::default(),
        }
    }
}

/// A shard for `shard add`.
#[derive(Debug, Clone, Copy)]
pub struct NewShard<'a> {
    /// Its name.
    pub name: &'a str,
    /// host:port of its master.
    pub master: &'a str,
    /// host:port of its standbys.
    pub standbys: &'a [String],
    /// Ring weight (0: no users until given weight).
    pub weight: u32,
    /// A hibernation shard (weight 0): idle users moved there wake up on access.
    pub hibernation: bool,
}

/// `shard set-weight`: changes a shard's ring weight (0 = no new users), pinning the
/// existing users whose ring shard changes first.
pub async fn shard_set_weight(
    target: &ZkTarget,
    config: &Config,
    name: &str,
    weight: u32,
    dry_run: bool,
) -> Result<String, CtlError> {
    let change = RingChange::Weight {
        name: name.to_string(),
        weight,
    };
    super::placement::change_ring(target, config, change, dry_run).await
}

/// `shard set-master`: records a new master (epoch + 1) without moving anything. For a
/// safe master change use the failover commands; this is for repairs and tests.
pub async fn shard_set_master(
    target: &ZkTarget,
    name: &str,
    master: &str,
) -> Result<String, CtlError> {
    change_topology(target, |doc| {
        let shard = doc
            .shard_mut(name)
            .ok_or_else(|| format!("no shard is named {name}"))?;
        let old = std::mem::replace(&mut shard.master, master.to_string());
        shard.standbys.retain(|s| s != master);
        if old != master {
            shard.standbys.push(old.clone());
        }
        shard.epoch += 1;
        Ok(format!(
            "shard {name}: master {old} -> {master}, epoch {}",
            shard.epoch
        ))
    })
    .await
}

/// The canonical key of a user id given on the command line, read as the key column's
/// type reads it.
fn user_key(user: &str, config: &Config) -> Result<Vec<u8>, String> {
    key_from_text(user.as_bytes(), config.sharding.key_type)
        .map_err(|why| format!("user id {user:?} {why}"))
}

/// `user pin`: places a user on a shard (override). Refused when the user has rows on
/// another shard, unless `no_data_check`.
pub async fn user_pin(
    target: &ZkTarget,
    config: &Config,
    user: &str,
    shard: &str,
    no_data_check: bool,
) -> Result<String, CtlError> {
    let key = user_key(user, config)?;
    let store = store(target).await?;
    let shown = String::from_utf8_lossy(&key).into_owned();
    if !no_data_check {
        let (topology, _) = store.read_topology().await.map_err(fail)?;
        if !topology.shards.iter().any(|s| s.name == shard) {
            return Err(format!("no shard is named {shard}").into());
        }
        check_placement(config, &topology, &key, shard).await?;
    }
    match store.set_override(&key, Some(shard)).await.map_err(fail)? {
        Some(v) => Ok(format!(
            "user {shown} pinned to {shard}; topology version {v}\n"
        )),
        None => Ok(format!(
            "user {shown} was already pinned to {shard}; nothing changed\n"
        )),
    }
}

/// `user unpin`: removes a user's override (it goes back to its ring position). Refused
/// when the user has rows on another shard than the ring's, unless `no_data_check`.
pub async fn user_unpin(
    target: &ZkTarget,
    config: &Config,
    user: &str,
    no_data_check: bool,
) -> Result<String, CtlError> {
    let key = user_key(user, config)?;
    let store = store(target).await?;
    let shown = String::from_utf8_lossy(&key).into_owned();
    if !no_data_check {
        let mut snapshot = store.read_all().await.map_err(fail)?;
        let bucket = crate::topology::bucket_of(&key);
        if let Some(b) = snapshot.buckets.get_mut(bucket) {
            b.users.remove(shown.as_str());
        }
        let table = snapshot.routing_table(&config.sharding).map_err(fail)?;
        let ring_shard = table.shard_name(table.shard_for_key(&key).0).to_string();
        check_placement(config, &snapshot.topology, &key, &ring_shard).await?;
    }
    match store.set_override(&key, None).await.map_err(fail)? {
        Some(v) => Ok(format!("user {shown} unpinned; topology version {v}\n")),
        None => Ok(format!("user {shown} had no override; nothing changed\n")),
    }
}

/// `user show`: where a user is placed and why, per the topology in ZooKeeper.
pub async fn user_show(target: &ZkTarget, user: &str, config: &Config) -> Result<Report, CtlError> {
    let store = store(target).await?;
    let snapshot = store.read_all().await.map_err(fail)?;
    let table = snapshot.routing_table(&config.sharding).map_err(fail)?;
    Ok(super::describe_route(&table, user.as_bytes()))
}

/// `routers`: the registered routers and the topology version each serves (JSON:
/// `topology_version`, `routers` as registered plus `behind`, `gone` leases).
pub async fn routers(target: &ZkTarget) -> Result<Report, CtlError> {
    let store = store(target).await?;
    let current = store.read_version().await.map_err(fail)?.map_or(0, |v| v.0);
    let routers = store.routers().await.map_err(fail)?;
    let mut out = format!("topology version {current}; {} router(s)\n", routers.len());
    let mut listed = Vec::new();
    let mut gone_json = Vec::new();
    let gone: Vec<(crate::topology::RouterLease, i64)> = store
        .leases()
        .await
        .map_err(fail)?
        .into_iter()
        .filter(|(l, _)| !routers.iter().any(|r| r.id == l.id))
        .collect();
    for r in routers {
        let lag = if r.applied_version == current {
            "current".to_string()
        } else {
            format!("behind by {}", current.saturating_sub(r.applied_version))
        };
        out.push_str(&format!(
            "{:<40} {:<22} build {:<8} version {:>5} ({lag})\n",
            r.id, r.address, r.build, r.applied_version
        ));
        let mut doc = serde_json::to_value(&r).unwrap_or_default();
        if let Some(map) = doc.as_object_mut() {
            map.insert(
                "behind".into(),
                current.saturating_sub(r.applied_version).into(),
            );
        }
        listed.push(doc);
    }
    for (lease, renewed) in gone {
        gone_json.push(serde_json::json!({
            "id": lease.id,
            "last_renewal_ms": renewed,
            "may_serve_for_ms": lease.heartbeat_ms + lease.stale_serving_ms,
        }));
        out.push_str(&format!(
            "{:<40} gone from ZooKeeper; last lease renewal at {renewed} ms since the epoch; may serve its last topology for {} ms after it (moves wait for that, or `ctl routers forget {}`)\n",
            lease.id,
            lease.heartbeat_ms + lease.stale_serving_ms,
            lease.id
        ));
    }
    let result = serde_json::json!({
        "topology_version": current,
        "routers": listed,
        "gone": gone_json,
    });
    Ok(Report::new(out, result))
}

/// `routers forget <id>`: deletes the lease of a router gone from ZooKeeper that the
/// operator knows is stopped; refused for a registered (live) router.
pub async fn forget_router(target: &ZkTarget, id: &str) -> Result<String, CtlError> {
    let store = store(target).await?;
    if store
        .routers()
        .await
        .map_err(fail)?
        .iter()
        .any(|r| r.id == id)
    {
        return Err(format!(
            "router {id} is registered: it is alive; stop it first (its registration then goes away)"
        ).into());
    }
    store.delete_lease(id).await.map_err(fail)?;
    Ok(format!(
        "router {id} forgotten: moves no longer wait for it\n"
    ))
}

/// `shard remove NAME`: drops a shard from the topology — refused while anything could
/// still need it: weight above 0, the global shard, an override or a hold naming it, a
/// move in progress from or to it, or rows of users on its master (unless another shard
/// shares that server). Shards after it move up one place (their ids change): sessions
/// reconnect, and a transaction open on one of them is reported lost (retryable 1053).
pub async fn shard_remove(
    target: &ZkTarget,
    config: &Config,
    name: &str,
) -> Result<String, CtlError> {
    let store = store(target).await?;
    let (mut doc, expected) = store.read_topology().await.map_err(fail)?;
    let shard = doc
        .shards
        .iter()
        .find(|s| s.name == name)
        .cloned()
        .ok_or_else(|| format!("no shard is named {name}"))?;
    let mut why = Vec::new();
    if doc.global_shard == name {
        why.push("it is the global shard".to_string());
    }
    if shard.weight > 0 {
        why.push(format!(
            "its weight is {} (dbrouter ctl shard drain {name} sets it to 0 and moves its users)",
            shard.weight
        ));
    }
    let snapshot = store.read_all().await.map_err(fail)?;
    let overrides = snapshot
        .buckets
        .iter()
        .flat_map(|b| b.users.values())
        .filter(|s| *s == name)
        .count();
    if overrides > 0 {
        why.push(format!(
            "{overrides} override(s) place users on it (drain it)"
        ));
    }
    if doc.holds.values().any(|s| s == name) {
        why.push("a move holds a user of it".to_string());
    }
    let moving = store
        .moves()
        .await
        .map_err(fail)?
        .into_iter()
        .filter(|m| !matches!(m.state, MoveState::Done | MoveState::RolledBack))
        .filter(|m| m.source == name || m.target == name)
        .count();
    if moving > 0 {
        why.push(format!("{moving} move(s) from or to it are in progress"));
    }
    let shared = doc
        .shards
        .iter()
        .any(|s| s.name != name && s.master == shard.master);
    if !shared {
        let (users, _) = crate::moves::data::users_on(config, &shard.master).await?;
        if !users.is_empty() {
            why.push(format!(
                "{} user(s) have rows on its master {} (drain it)",
                users.len(),
                shard.master
            ));
        }
    }
    if !why.is_empty() {
        return Err(format!("refusing to remove shard {name}: {}", why.join("; ")).into());
    }
    doc.shards.retain(|s| s.name != name);
    let version = store.write_topology(&doc, expected).await.map_err(fail)?;
    Ok(format!(
        "removed shard {name} (master {}); topology version {version}\n",
        shard.master
    ))
}
