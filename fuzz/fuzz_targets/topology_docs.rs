//! Fuzz target `topology_docs`: the ZooKeeper documents (`topology::decode` and the
//! document types of `topology` and `topology::jobs`).
//!
//! Checks, on arbitrary bytes decoded as every document type a router or `dbrouter ctl`
//! reads from ZooKeeper — the topology, the version counter, an override bucket, a
//! router registration, a router lease, a move record, a job record, a router's opinion
//! of a master, an automatic failover alert:
//! - `decode` never panics (malformed JSON and unknown schema versions are errors);
//! - a document that decodes is re-encoded (`encode`) and decodes back to itself, so
//!   what a read-modify-write cycle writes is what it read;
//! - a topology that decodes is validated; one that validates builds a routing table
//!   (`Snapshot::routing_table`, with and without an override bucket and held users),
//!   and the table answers lookups; a bucket that decodes is validated and routed with a
//!   fixed valid topology; `describe_jobs` formats a job record.
//!   None of this may panic.
//!
//! Input: one JSON document (seeds are one of each type).

#![no_main]

use std::collections::BTreeMap;
use std::fmt::Debug;

use dbrouter::config::ShardingConfig;
use dbrouter::topology::jobs::{describe_jobs, JobDoc};
use dbrouter::topology::opinions::{AlertDoc, OpinionDoc};
use dbrouter::topology::{
    bucket_of, decode, encode, BucketDoc, HasSchema, MoveDoc, RouterDoc, RouterLease, ShardDoc,
    ShardState, Snapshot, TopologyDoc, VersionDoc, BUCKETS, SCHEMA,
};
use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use serde::Serialize;

fuzz_target!(|data: &[u8]| {
    if let Some(doc) = roundtrip::<TopologyDoc>("topology", data) {
        topology(doc);
    }
    let _ = roundtrip::<VersionDoc>("version", data);
    if let Some(bucket) = roundtrip::<BucketDoc>("override bucket 00", data) {
        bucket_with_fixed_topology(bucket);
    }
    let _ = roundtrip::<RouterDoc>("router r1", data);
    let _ = roundtrip::<RouterLease>("lease r1", data);
    let _ = roundtrip::<MoveDoc>("moves/42", data);
    let _ = roundtrip::<OpinionDoc>("health/shard1/r1", data);
    let _ = roundtrip::<AlertDoc>("failover-alerts/shard1", data);
    // Job records carry an f64 (a rate): compared after one more round trip, not bit for
    // bit with the input's decimal text.
    if let Ok(job) = decode::<JobDoc>("jobs/drain-a", data) {
        let again: JobDoc = decode("jobs/drain-a", &encode(&job))
            .unwrap_or_else(|e| panic!("a job record we wrote does not decode: {e}"));
        let _ = describe_jobs(&[(again, 0)]);
    }
});

/// Decodes `data` as a `T`; when it decodes, our own encoding must decode to the same.
fn roundtrip<T>(what: &str, data: &[u8]) -> Option<T>
where
    T: DeserializeOwned + HasSchema + Serialize + PartialEq + Debug,
{
    let doc: T = decode(what, data).ok()?;
    assert_eq!(doc.schema(), SCHEMA);
    match decode::<T>(what, &encode(&doc)) {
        Ok(back) => assert_eq!(back, doc, "{what} changed through encode/decode"),
        Err(e) => panic!("a {what} we wrote does not decode: {e}"),
    }
    Some(doc)
}

/// The snapshot of one topology with its holds as overrides too (held users are also
/// placed, on the shard the hold names).
fn topology(doc: TopologyDoc) {
    let mut buckets = vec![
        BucketDoc {
            schema: SCHEMA,
            users: BTreeMap::new(),
        };
        BUCKETS
    ];
    let bare = Snapshot {
        version: 3,
        topology: doc.clone(),
        buckets: buckets.clone(),
    };
    if bare.validate().is_err() {
        return;
    }
    for (user, shard) in &doc.holds {
        buckets[bucket_of(user.as_bytes())]
            .users
            .insert(user.clone(), shard.clone());
    }
    let placed = Snapshot {
        version: 4,
        topology: doc,
        buckets,
    };
    if let Err(e) = placed.validate() {
        panic!("overrides naming the topology's own shards refused: {e}");
    }
    for snapshot in [bare, placed] {
        route(&snapshot);
    }
}

fn bucket_with_fixed_topology(bucket: BucketDoc) {
    let shard = |name: &str, port: u16, weight| ShardDoc {
        name: name.into(),
        master: format!("db-{name}:{port}"),
        standbys: vec![format!("db-{name}-standby:{port}")],
        weight,
        epoch: 1,
        state: ShardState::Serving,
        rejoin: Vec::new(),
        hibernation: weight == 0,
        auto_failover: Default::default(),
    };
    let mut buckets = vec![BucketDoc::default(); BUCKETS];
    buckets[0] = bucket;
    let snapshot = Snapshot {
        version: 5,
        topology: TopologyDoc {
            schema: SCHEMA,
            shards: vec![
                shard("a", 3306, 8),
                shard("b", 3307, 8),
                shard("z", 3308, 0),
            ],
            global_shard: "a".into(),
            holds: BTreeMap::new(),
        },
        buckets,
    };
    if snapshot.validate().is_ok() {
        route(&snapshot);
    }
}

/// Builds the routing table of a validated snapshot and asks it things.
fn route(snapshot: &Snapshot) {
    let table = match snapshot.routing_table(&ShardingConfig::default()) {
        Ok(t) => t,
        // The ring may refuse what validation let through (e.g. too many virtual nodes).
        Err(_) => return,
    };
    for bucket in &snapshot.buckets {
        for (user, shard) in &bucket.users {
            let (id, _) = table.shard_for_key(user.as_bytes());
            assert_eq!(
                table.shard_name(id),
                shard,
                "override of {user:?} not applied"
            );
        }
    }
    for user in snapshot.topology.holds.keys() {
        assert!(
            table.is_held(user.as_bytes()),
            "hold of {user:?} not applied"
        );
    }
    for key in [&b"1"[..], b"42", b"alice", b""] {
        let (id, _) = table.shard_for_key(key);
        assert!(table.shard(id).is_some(), "key routed to an unknown shard");
    }
    let _ = table.held_sources();
    let _ = table.shard(table.global_shard());
}
