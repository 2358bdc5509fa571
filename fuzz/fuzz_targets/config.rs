//! Fuzz target `config`: the config file (`config::Config::parse`).
//!
//! Checks, on arbitrary UTF-8 text:
//! - `Config::parse` never panics (TOML errors and invalid values are errors);
//! - a config that parses answers what the router asks it at startup without panicking:
//!   accounts, the default plugin, the global shard, timeouts, the admin password; and
//!   its own topology (the `[[shards]]` and `[[overrides]]` a router without ZooKeeper
//!   serves, `topology::file`) is validated and builds a routing table, whose overrides
//!   route to the shards they name.
//!
//! Input: the text of a config file (the seed is config/dbrouter.toml).

#![no_main]

use std::path::Path;

use dbrouter::config::Config;
use dbrouter::topology::file::{routing_table, FileStore};
use dbrouter::topology::override_key;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let Ok(config) = Config::parse(text, Path::new("fuzz.toml")) else {
        return;
    };
    let _ = config.default_auth_method();
    let global = config.global_shard();
    assert!(global.is_some(), "a valid config without a global shard");
    for user in &config.users {
        assert!(
            config.account(&user.name).is_some(),
            "account {:?} lost",
            user.name
        );
    }
    let t = &config.timeouts;
    let _ = (
        t.connect(),
        t.handshake(),
        t.idle(),
        t.backend_read(),
        t.client_write(),
    );
    let _ = (t.drain(), t.startup(), config.backend.password());
    if let Some(admin) = &config.admin {
        let _ = admin.password();
    }

    let _ = FileStore::new(&config).snapshot_now().validate();
    let Ok(table) = routing_table(&config) else {
        return;
    };
    for o in &config.overrides {
        if let Some(key) = override_key(&o.user) {
            let (id, _) = table.shard_for_key(&key);
            // Two overrides of one user: the last one wins.
            let last = config
                .overrides
                .iter()
                .rev()
                .find(|p| override_key(&p.user).as_deref() == Some(&key[..]))
                .map(|p| p.shard.as_str());
            assert_eq!(Some(table.shard_name(id)), last, "override of {:?}", o.user);
        }
    }
});
