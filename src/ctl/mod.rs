//! `dbrouter ctl`: operator commands: checking a config file, hashing a password for the
//! `[[users]]` table, and showing where a user is routed; topology and failover
//! commands join here.

pub mod failover;
pub mod moves;
pub mod placement;
pub mod reload;
pub mod topology;

use std::path::Path;

use crate::config::Config;
use crate::protocol::auth::{native_hash_string, sha2_hash_string};
use crate::router::{canonical_key_text, RoutingTable, Why};
use crate::topology::zk::{ZkStore, ZkTarget};

/// Loads and validates a config file, returning a one-paragraph summary.
pub fn check_config(path: &Path) -> Result<String, crate::config::ConfigError> {
    let config = Config::load(path)?;
    let global = config.global_shard().map_or("none".to_string(), |g| {
        format!("{} at {}", g.name, g.master)
    });
    Ok(format!(
        "{}: OK — listen {}, topology {}, {} shard(s) (global shard {global}), {} override(s), {} account(s)",
        path.display(),
        config.server.listen,
        config.topology.source,
        config.shards.len(),
        config.overrides.len(),
        config.users.len()
    ))
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
pub fn route(path: &Path, user: &str) -> Result<String, String> {
    let config = Config::load(path).map_err(|e| e.to_string())?;
    let table = crate::topology::file::routing_table(&config).map_err(|e| e.to_string())?;
    Ok(describe_route(&table, user.as_bytes()))
}

/// The placement of a user in a routing table, for humans.
pub fn describe_route(table: &RoutingTable, user: &[u8]) -> String {
    let canonical = canonical_key_text(user);
    let (shard, why) = table.shard_for_key(&canonical);
    let (name, master) = table
        .shard(shard)
        .map_or(("?", "?"), |s| (s.name.as_str(), s.master.as_str()));
    let reason = match why {
        Why::Override => "per-user override".to_string(),
        Why::Ring { key_hash, vnode_hash } => format!(
            "consistent-hash ring: xxh3(\"{}\") = {key_hash:016x}, owned by the virtual node at {vnode_hash:016x}",
            String::from_utf8_lossy(&canonical)
        ),
    };
    format!(
        "user {}\nshard   {name}\nmaster  {master}\nwhy     {reason}\n",
        String::from_utf8_lossy(&canonical)
    )
}

/// A ZooKeeper session for one ctl command (10 s session timeout: a mover that dies
/// loses its locks that long after).
pub(crate) async fn store(target: &ZkTarget) -> Result<ZkStore, String> {
    ZkStore::connect(
        target,
        std::time::Duration::from_secs(10),
        std::time::Duration::from_secs(5),
    )
    .await
    .map_err(|e| e.to_string())
}
