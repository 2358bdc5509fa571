//! The shared topology: which shards exist with which ring weights, which server is each
//! shard's master (and its epoch) and which are standbys, and which users are placed by
//! override. It lives in one of two stores, chosen by the config's `topology` field:
//! the config file itself (the default; dbrouter runs without ZooKeeper) or ZooKeeper
//! ([`zk`], shared by every router). Either way the router serves from an immutable
//! [`RoutingTable`] snapshot that is built off the hot path and swapped in whole.
//!
//! Every value read from ZooKeeper carries a schema version and is validated before use;
//! a malformed or unknown-version value is refused and the last good snapshot kept.
//! docs/topology.md documents the znode layout.

pub mod acl;
pub mod file;
pub mod jobs;
pub mod kills;
pub mod opinions;
pub mod wakeups;
pub mod watcher;
pub mod zk;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::{Config, ShardingConfig};
use crate::router::ring::{key_hash, RingError};
use crate::router::table::ShardInfo;
use crate::router::RoutingTable;

/// The schema version of every document dbrouter writes.
pub const SCHEMA: u32 = 1;

/// Number of override buckets (znodes); a user's bucket is the top byte of its key hash.
pub const BUCKETS: usize = 256;

/// Why the topology could not be read, validated or written.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    /// A document is malformed or has an unknown schema version.
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// Which document.
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// Someone else changed the topology between our read and our write.
    #[error("the topology changed under you (a concurrent change won); re-read it and retry")]
    Conflict,
    /// The topology is not initialised in this ZooKeeper root.
    #[error("no topology at {0}: run `dbrouter ctl topology init --from <file>` first")]
    NotInitialized(String),
    /// ZooKeeper failed or is unreachable.
    #[error("zookeeper: {0}")]
    Zk(String),
    /// The ring could not be built.
    #[error(transparent)]
    Ring(#[from] RingError),
}

/// A shard's role state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ShardState {
    /// Normal operation.
    #[default]
    Serving,
    /// A switchover is in progress: routers hold new statements for the shard.
    Switching,
}

/// One shard in the topology document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardDoc {
    /// Unique name.
    pub name: String,
    /// `host:port` of the master.
    pub master: String,
    /// `host:port` of the hot standbys.
    #[serde(default)]
    pub standbys: Vec<String>,
    /// Ring weight (virtual nodes).
    pub weight: u32,
    /// Master epoch, bumped by every master change.
    pub epoch: u64,
    /// Role state.
    #[serde(default)]
    pub state: ShardState,
    /// Former masters replaced by an emergency failover: fenced, never routed to, waiting
    /// for `dbrouter ctl rejoin`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rejoin: Vec<String>,
    /// A hibernation shard: weight 0, holds users moved there for being idle; a statement
    /// for one of them is served there and moves the user back (docs/moves.md).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hibernation: bool,
    /// What automatic failover did to the shard and whether it may act again.
    #[serde(default, skip_serializing_if = "AutoFailoverDoc::is_clear")]
    pub auto_failover: AutoFailoverDoc,
}

/// The automatic failover record of a shard (docs/operations.md, "Automatic failover").
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoFailoverDoc {
    /// When the last automatic failover of the shard published its new master
    /// (milliseconds since the Unix epoch; 0 = none).
    #[serde(default)]
    pub last_ms: u64,
    /// Why automatic failover is off for the shard until `dbrouter ctl failover arm`
    /// (anti-flap, or an operator's `disarm`); `None` = armed.
    #[serde(default)]
    pub disarmed: Option<String>,
}

impl AutoFailoverDoc {
    /// Nothing recorded: the shard is armed and never failed over automatically.
    pub fn is_clear(&self) -> bool {
        *self == AutoFailoverDoc::default()
    }
}

/// The topology document (`<root>/topology`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopologyDoc {
    /// Schema version.
    pub schema: u32,
    /// Shards in ring order (their position is their id; new shards are appended).
    pub shards: Vec<ShardDoc>,
    /// Shard of global tables and first connections.
    pub global_shard: String,
    /// Users whose statements every router holds while a move copies the last of their
    /// rows (canonical user id → the shard the rows are moving from): see docs/moves.md.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub holds: BTreeMap<String, String>,
}

/// The version counter (`<root>/version`): bumped by every write, in the same transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionDoc {
    /// Schema version.
    pub schema: u32,
    /// Topology version.
    pub version: u64,
}

/// An override bucket (`<root>/overrides/<xx>`): canonical user id → shard name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct BucketDoc {
    /// Schema version.
    pub schema: u32,
    /// Users and their shards.
    pub users: BTreeMap<String, String>,
}

/// A router's registration (`<root>/routers/<id>`, ephemeral).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouterDoc {
    /// Schema version.
    pub schema: u32,
    /// Router id (unique per process).
    pub id: String,
    /// Client address it listens on.
    pub address: String,
    /// dbrouter version.
    pub build: String,
    /// Topology version it serves.
    pub applied_version: u64,
    /// When it applied that version (milliseconds since the Unix epoch).
    pub applied_at_ms: u64,
    /// The newest version whose moves' holds it acknowledges: it holds those users, and
    /// every transaction open through it that may still write a held user's rows on the
    /// source has ended (docs/moves.md). Absent (0) from routers that predate it.
    #[serde(default)]
    pub holds_acked_version: u64,
}

/// A router's lease (`<root>/leases/<id>`, persistent): rewritten by the router every
/// `heartbeat_ms` while it has a ZooKeeper session, so that after its ephemeral
/// registration is gone the lease's modification time still says until when it may serve
/// from its last topology (that plus `heartbeat_ms` plus `stale_serving_ms`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouterLease {
    /// Schema version.
    pub schema: u32,
    /// Router id.
    pub id: String,
    /// How often the router rewrites the lease.
    pub heartbeat_ms: u64,
    /// How long it serves without ZooKeeper (`topology.stale_serving_ms`; 0 = forever).
    pub stale_serving_ms: u64,
}

/// Where a move of one user is (`<root>/moves/<user>`): see docs/moves.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MoveState {
    /// Checked, copying the user's rows to the target while they keep being served.
    Copying,
    /// Routers hold the user's statements; the last changes are being copied.
    Holding,
    /// The user's override names the target (the commit point); the source's rows are
    /// being deleted.
    Flipped,
    /// Finished.
    Done,
    /// Given up before the flip: the hold is lifted and the target's copy deleted.
    RolledBack,
}

/// One step of a move as it happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoveStep {
    /// What was done.
    pub step: String,
    /// When it ended (milliseconds since the Unix epoch).
    pub at_ms: u64,
    /// How long it took.
    pub took_ms: u64,
}

/// A user's move (`<root>/moves/<canonical user id>`), kept after it ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoveDoc {
    /// Schema version.
    pub schema: u32,
    /// Canonical user id.
    pub user: String,
    /// Shard the rows come from.
    pub source: String,
    /// Shard the rows go to.
    pub target: String,
    /// Where the move is.
    pub state: MoveState,
    /// When it began (milliseconds since the Unix epoch).
    pub started_ms: u64,
    /// The steps done, with their timings.
    #[serde(default)]
    pub steps: Vec<MoveStep>,
    /// Rows copied.
    #[serde(default)]
    pub rows: u64,
    /// Bytes of column values copied (the first copy; a catch-up's copies are extra).
    #[serde(default)]
    pub bytes: u64,
    /// How long the user's statements were held (ms), once flipped.
    #[serde(default)]
    pub hold_ms: Option<u64>,
    /// Why it was rolled back.
    #[serde(default)]
    pub error: Option<String>,
}

/// Where a topology is read from: the config file ([`file::FileStore`]) or ZooKeeper
/// ([`zk::ZkStore`], which also writes and is followed by [`watcher`]).
#[allow(async_fn_in_trait)]
pub trait TopologyStore {
    /// A consistent, validated read of the whole topology.
    async fn read_all(&self) -> Result<Snapshot, TopologyError>;
}

/// A consistent read of the whole topology.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The version counter read before the documents (so never newer than them).
    pub version: u64,
    /// The topology document.
    pub topology: TopologyDoc,
    /// Every override bucket.
    pub buckets: Vec<BucketDoc>,
}

/// The bucket of a canonical user id.
pub fn bucket_of(canonical: &[u8]) -> usize {
    (key_hash(canonical) >> 56) as usize
}

/// Decodes a JSON document and checks its schema version.
pub fn decode<T: for<'de> Deserialize<'de> + HasSchema>(
    what: &str,
    bytes: &[u8],
) -> Result<T, TopologyError> {
    let doc: T = serde_json::from_slice(bytes).map_err(|e| TopologyError::Invalid {
        what: what.to_string(),
        reason: e.to_string(),
    })?;
    if doc.schema() != SCHEMA {
        return Err(TopologyError::Invalid {
            what: what.to_string(),
            reason: format!(
                "schema version {} is not supported (this dbrouter reads {SCHEMA})",
                doc.schema()
            ),
        });
    }
    Ok(doc)
}

/// Milliseconds since the Unix epoch (the clock of the records in ZooKeeper).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Encodes a document as JSON.
pub fn encode<T: Serialize>(doc: &T) -> Vec<u8> {
    // Serialising these plain structs cannot fail.
    serde_json::to_vec_pretty(doc).unwrap_or_default()
}

/// Documents that carry a schema version.
pub trait HasSchema {
    /// The document's schema version.
    fn schema(&self) -> u32;
}

macro_rules! has_schema {
    ($($t:ty),*) => { $(impl HasSchema for $t { fn schema(&self) -> u32 { self.schema } })* };
}
has_schema!(
    TopologyDoc,
    VersionDoc,
    BucketDoc,
    RouterDoc,
    MoveDoc,
    RouterLease
);

impl TopologyDoc {
    /// The topology of a config file's `[[shards]]` and `[sharding] global_shard`.
    pub fn from_config(config: &Config) -> Self {
        TopologyDoc {
            schema: SCHEMA,
            shards: config
                .shards
                .iter()
                .map(|s| ShardDoc {
                    name: s.name.clone(),
                    master: s.master.clone(),
                    standbys: s.standbys.clone(),
                    weight: s.weight,
                    epoch: 1,
                    state: ShardState::Serving,
                    rejoin: Vec::new(),
                    hibernation: false,
                    auto_failover: Default::default(),
                })
                .collect(),
            global_shard: config
                .global_shard()
                .map(|s| s.name.clone())
                .unwrap_or_default(),
            holds: BTreeMap::new(),
        }
    }

    /// Checks the document's invariants.
    pub fn validate(&self) -> Result<(), TopologyError> {
        let invalid = |reason: String| TopologyError::Invalid {
            what: "topology".into(),
            reason,
        };
        if let Some((user, shard)) = self
            .holds
            .iter()
            .find(|(_, shard)| !self.shards.iter().any(|s| &s.name == *shard))
        {
            return Err(invalid(format!(
                "user {user} is held for a move from unknown shard {shard:?}"
            )));
        }
        if self.shards.is_empty() {
            return Err(invalid("no shards".into()));
        }
        for (i, s) in self.shards.iter().enumerate() {
            if s.name.is_empty() || self.shards[..i].iter().any(|o| o.name == s.name) {
                return Err(invalid(format!(
                    "shard name {:?} is empty or used twice",
                    s.name
                )));
            }
            // Strictly host:port: these are connected to, and written into the SQL of
            // operations run with the admin account (a quote in one is an injection).
            for addr in std::iter::once(&s.master)
                .chain(&s.standbys)
                .chain(&s.rejoin)
            {
                crate::config::check_host_port(addr)
                    .map_err(|m| invalid(format!("shard {}: {m}", s.name)))?;
            }
            if s.hibernation && s.weight > 0 {
                return Err(invalid(format!(
                    "shard {}: a hibernation shard has weight 0 (it is never a ring target)",
                    s.name
                )));
            }
            if s.standbys.contains(&s.master) {
                return Err(invalid(format!(
                    "shard {}: the master is also listed as a standby",
                    s.name
                )));
            }
        }
        if self.shards.iter().all(|s| s.weight == 0) {
            return Err(invalid("every shard has weight 0".into()));
        }
        if !self.shards.iter().any(|s| s.name == self.global_shard) {
            return Err(invalid(format!(
                "global shard {:?} is not a shard",
                self.global_shard
            )));
        }
        Ok(())
    }

    /// The shard with this name.
    pub fn shard_mut(&mut self, name: &str) -> Option<&mut ShardDoc> {
        self.shards.iter_mut().find(|s| s.name == name)
    }
}

impl Snapshot {
    /// Checks the snapshot: a valid topology, and overrides that name existing shards.
    pub fn validate(&self) -> Result<(), TopologyError> {
        self.topology.validate()?;
        for (i, bucket) in self.buckets.iter().enumerate() {
            for (user, shard) in &bucket.users {
                if !self.topology.shards.iter().any(|s| &s.name == shard) {
                    return Err(TopologyError::Invalid {
                        what: format!("override bucket {i:02x}"),
                        reason: format!("user {user} is placed on unknown shard {shard:?}"),
                    });
                }
            }
        }
        Ok(())
    }

    /// Builds the routing snapshot with the config's table rules.
    pub fn routing_table(&self, sharding: &ShardingConfig) -> Result<RoutingTable, TopologyError> {
        let shards = self
            .topology
            .shards
            .iter()
            .map(|s| ShardInfo {
                name: s.name.clone(),
                master: s.master.clone(),
                standbys: s.standbys.clone(),
                weight: s.weight,
                epoch: s.epoch,
                switching: s.state == ShardState::Switching,
                rejoin: s.rejoin.clone(),
                hibernation: s.hibernation,
                auto_failover_armed: s.auto_failover.disarmed.is_none(),
            })
            .collect();
        let overrides = self
            .buckets
            .iter()
            .flat_map(|b| b.users.iter().map(|(u, s)| (u.as_bytes(), s.as_str())));
        Ok(RoutingTable::build(
            self.version,
            shards,
            &self.topology.global_shard,
            overrides,
            sharding,
        )?
        .with_held(self.topology.holds.keys().map(|u| u.as_bytes())))
    }
}

/// The canonical key bytes of a config override's user id (decimal for integers).
pub fn override_key(user: &toml::Value) -> Option<Vec<u8>> {
    match user {
        toml::Value::Integer(i) if *i >= 0 => Some(i.to_string().into_bytes()),
        toml::Value::String(s) => Some(crate::router::canonical_key_text(s.as_bytes())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> TopologyDoc {
        TopologyDoc {
            schema: SCHEMA,
            shards: vec![
                ShardDoc {
                    name: "a".into(),
                    master: "h:1".into(),
                    standbys: vec!["h:2".into()],
                    weight: 10,
                    epoch: 1,
                    state: ShardState::Serving,
                    rejoin: vec![],
                    hibernation: false,
                    auto_failover: Default::default(),
                },
                ShardDoc {
                    name: "b".into(),
                    master: "h:3".into(),
                    standbys: vec![],
                    weight: 10,
                    epoch: 4,
                    state: ShardState::Serving,
                    rejoin: vec![],
                    hibernation: false,
                    auto_failover: Default::default(),
                },
            ],
            global_shard: "a".into(),
            holds: BTreeMap::new(),
        }
    }

    #[test]
    fn roundtrip_and_validation() {
        let d = doc();
        let back: TopologyDoc = decode("topology", &encode(&d)).unwrap();
        assert_eq!(back, d);
        d.validate().unwrap();
        let mut bad = d.clone();
        bad.global_shard = "zz".into();
        assert!(bad.validate().is_err());
        let mut bad = d.clone();
        bad.shards[1].name = "a".into();
        assert!(bad.validate().is_err());
        let mut bad = d;
        bad.shards[0].master = "nowhere".into();
        assert!(bad.validate().is_err());
    }

    #[test]
    fn malformed_and_unknown_schema_are_refused() {
        assert!(decode::<TopologyDoc>("topology", b"{not json").is_err());
        let mut d = doc();
        d.schema = 2;
        let err = decode::<TopologyDoc>("topology", &encode(&d))
            .unwrap_err()
            .to_string();
        assert!(err.contains("schema version 2"), "{err}");
        assert!(decode::<TopologyDoc>(
            "topology",
            br#"{"schema":1,"shards":[],"global_shard":"a","extra":1}"#
        )
        .is_err());
    }

    #[test]
    fn snapshot_builds_a_routing_table_with_overrides() {
        let mut buckets = vec![
            BucketDoc {
                schema: SCHEMA,
                users: BTreeMap::new()
            };
            BUCKETS
        ];
        buckets[bucket_of(b"42")]
            .users
            .insert("42".into(), "b".into());
        let snap = Snapshot {
            version: 7,
            topology: doc(),
            buckets,
        };
        snap.validate().unwrap();
        let table = snap.routing_table(&ShardingConfig::default()).unwrap();
        assert_eq!(table.version, 7);
        assert_eq!(table.shard_for_key(b"42").0, 1);
        let mut bad = snap.clone();
        bad.buckets[0].users.insert("1".into(), "nope".into());
        assert!(bad.validate().is_err());
    }
}
