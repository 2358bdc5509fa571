//! `dbrouter ctl`: operator commands. Today: checking a config file and hashing a
//! password for the `[[users]]` table; topology, routing and failover commands join here.

use std::path::Path;

use crate::config::Config;
use crate::protocol::auth::{native_hash_string, sha2_hash_string};

/// Loads and validates a config file, returning a one-paragraph summary.
pub fn check_config(path: &Path) -> Result<String, crate::config::ConfigError> {
    let config = Config::load(path)?;
    Ok(format!(
        "{}: OK — listen {}, {} shard(s) (primary {} at {}), {} account(s)",
        path.display(),
        config.server.listen,
        config.shards.len(),
        config.primary_shard().name,
        config.primary_shard().master,
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
