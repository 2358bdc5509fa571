//! The file topology store: the `[[shards]]` and `[[overrides]]` of the router's own
//! config file, read once. The embedded default: dbrouter runs without ZooKeeper.

use super::{
    bucket_of, override_key, BucketDoc, Snapshot, TopologyDoc, TopologyError, TopologyStore,
    BUCKETS, SCHEMA,
};
use crate::config::Config;
use crate::router::RoutingTable;

/// The topology of one config file.
#[derive(Debug, Clone)]
pub struct FileStore {
    snapshot: Snapshot,
}

/// The routing snapshot of a validated config's own topology (its `[[shards]]` and
/// `[[overrides]]`): what a router without ZooKeeper serves, and what `ctl route` reads.
pub fn routing_table(config: &Config) -> Result<RoutingTable, TopologyError> {
    FileStore::new(config)
        .snapshot_now()
        .routing_table(&config.sharding)
}

impl FileStore {
    /// Reads the topology out of a loaded config (version 0: it never changes).
    pub fn new(config: &Config) -> Self {
        let mut buckets = vec![
            BucketDoc {
                schema: SCHEMA,
                users: Default::default()
            };
            BUCKETS
        ];
        for o in &config.overrides {
            if let Some(key) = override_key(&o.user) {
                buckets[bucket_of(&key)]
                    .users
                    .insert(String::from_utf8_lossy(&key).into_owned(), o.shard.clone());
            }
        }
        FileStore {
            snapshot: Snapshot {
                version: 0,
                topology: TopologyDoc::from_config(config),
                buckets,
            },
        }
    }
}

impl FileStore {
    /// The snapshot (not validated: the config's own validation covers it).
    pub fn snapshot_now(&self) -> Snapshot {
        self.snapshot.clone()
    }
}

impl TopologyStore for FileStore {
    async fn read_all(&self) -> Result<Snapshot, TopologyError> {
        self.snapshot.validate()?;
        Ok(self.snapshot.clone())
    }
}
