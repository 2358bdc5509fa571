//! `dbrouter ctl`: operator commands: checking a config file, hashing a password for the
//! `[[users]]` table, and showing where a user is routed; topology and failover
//! commands join here.

use std::path::Path;

use crate::config::Config;
use crate::protocol::auth::{native_hash_string, sha2_hash_string};
use crate::router::{canonical_key_text, RoutingTable, Why};

/// Loads and validates a config file, returning a one-paragraph summary.
pub fn check_config(path: &Path) -> Result<String, crate::config::ConfigError> {
    let config = Config::load(path)?;
    Ok(format!(
        "{}: OK — listen {}, {} shard(s) (global shard {} at {}), {} override(s), {} account(s)",
        path.display(),
        config.server.listen,
        config.shards.len(),
        config.global_shard().name,
        config.global_shard().master,
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

/// Where a user's statements go and why, from the same routing code the proxy uses.
pub fn route(path: &Path, user: &str) -> Result<String, String> {
    let config = Config::load(path).map_err(|e| e.to_string())?;
    let table = RoutingTable::from_config(&config).map_err(|e| e.to_string())?;
    let canonical = canonical_key_text(user.as_bytes());
    let (shard, why) = table.shard_for_key(&canonical);
    let info = table
        .shard(shard)
        .ok_or_else(|| format!("shard id {shard} is not in the config"))?;
    let reason = match why {
        Why::Override => "per-user override".to_string(),
        Why::Ring { key_hash, vnode_hash } => format!(
            "consistent-hash ring: xxh3(\"{}\") = {key_hash:016x}, owned by the virtual node at {vnode_hash:016x}",
            String::from_utf8_lossy(&canonical)
        ),
    };
    Ok(format!(
        "user {}\nshard   {}\nmaster  {}\nwhy     {}\n",
        String::from_utf8_lossy(&canonical),
        info.name,
        info.master,
        reason
    ))
}
