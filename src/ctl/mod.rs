//! `dbrouter ctl`: operator commands: checking a config file, hashing a password for the
//! `[[users]]` table, and showing where a user is routed; topology and failover
//! commands join here.

pub mod failover;
pub mod moves;
pub mod output;
pub mod placement;
pub mod reload;
pub mod topology;

use std::path::Path;

use crate::config::Config;
use crate::protocol::auth::{native_hash_string, sha2_hash_string};
use crate::router::{canonical_key_text, RoutingTable, Why};
use crate::topology::zk::{ZkStore, ZkTarget};
pub use output::{CtlError, Exit, Report};

/// Loads and validates a config file, returning a one-paragraph summary.
pub fn check_config(path: &Path) -> Result<Report, CtlError> {
    let config = Config::load(path)?;
    let global = config.global_shard().map_or("none".to_string(), |g| {
        format!("{} at {}", g.name, g.master)
    });
    let text = format!(
        "{}: OK — listen {}, topology {}, {} shard(s) (global shard {global}), {} override(s), {} account(s)\n",
        path.display(),
        config.server.listen,
        config.topology.source,
        config.shards.len(),
        config.overrides.len(),
        config.users.len()
    );
    let result = serde_json::json!({
        "file": path.display().to_string(),
        "listen": config.server.listen,
        "topology": config.topology.source,
        "shards": config.shards.iter().map(|s| serde_json::json!({
            "name": s.name, "master": s.master, "standbys": s.standbys,
        })).collect::<Vec<_>>(),
        "global_shard": config.global_shard().map(|g| g.name.clone()),
        "overrides": config.overrides.len(),
        "accounts": config.users.len(),
    });
    Ok(Report::new(text, result))
}

/// The `[[users]]` lines for an account with this password.
pub fn hash_password(user: &str, password: &str) -> String {
    format!(
        "[[users]]\nname = {user:?}\nmysql_native_password = \"{}\"\ncaching_sha2_password = \"{}\"\n",
        native_hash_string(password),
        sha2_hash_string(password)
    )
}

/// Where a user's statements go and why, from the same routing code the proxy uses
/// (the topology of the config file; `user show` asks ZooKeeper).
pub fn route(path: &Path, user: &str) -> Result<Report, CtlError> {
    let config = Config::load(path)?;
    let table = crate::topology::file::routing_table(&config).map_err(CtlError::from)?;
    Ok(describe_route(&table, user.as_bytes()))
}

/// The placement of a user in a routing table: text for humans and its JSON (`user`,
/// `shard`, `master`, `why`: `override` or `ring` with the hashes).
pub fn describe_route(table: &RoutingTable, user: &[u8]) -> Report {
    let canonical = canonical_key_text(user);
    let (shard, why) = table.shard_for_key(&canonical);
    let (name, master) = table
        .shard(shard)
        .map_or(("?", "?"), |s| (s.name.as_str(), s.master.as_str()));
    let user = String::from_utf8_lossy(&canonical);
    let (reason, why_json) = match why {
        Why::Override => (
            "per-user override".to_string(),
            serde_json::json!({ "kind": "override" }),
        ),
        Why::Ring { key_hash, vnode_hash } => (
            format!(
                "consistent-hash ring: xxh3(\"{user}\") = {key_hash:016x}, owned by the virtual node at {vnode_hash:016x}"
            ),
            serde_json::json!({
                "kind": "ring",
                "key_hash": format!("{key_hash:016x}"),
                "vnode_hash": format!("{vnode_hash:016x}"),
            }),
        ),
    };
    Report::new(
        format!("user {user}\nshard   {name}\nmaster  {master}\nwhy     {reason}\n"),
        serde_json::json!({ "user": user, "shard": name, "master": master, "why": why_json }),
    )
}

/// A ZooKeeper session for one ctl command (10 s session timeout: a mover that dies
/// loses its locks that long after).
pub(crate) async fn store(target: &ZkTarget) -> Result<ZkStore, CtlError> {
    ZkStore::connect(
        target,
        std::time::Duration::from_secs(10),
        std::time::Duration::from_secs(5),
    )
    .await
    .map_err(|e| CtlError::retry(format!("cannot reach ZooKeeper at {target}: {e}")))
}
