//! The consistent-hash ring that places a user on a shard, and the per-user overrides
//! consulted before it. The algorithm is specified in docs/sharding.md precisely enough
//! to reimplement (proto-tests/ring_reference.py does, in Python) and pinned by golden
//! vectors in testdata/ring_v1.tsv: any change of placement fails the tests.
//!
//! Hashing is xxh3-64 with a fixed seed over explicit bytes, never `std::hash::Hash`
//! (whose output is not stable across Rust versions or platforms). That is also why the
//! `consistent_hash` crate is not used: it feeds keys through `std::hash::Hash`, includes
//! a `usize` in vnode keys and allocates on every lookup (see PRODUCT.md §3).

use std::collections::HashMap;

use xxhash_rust::xxh3::xxh3_64_with_seed;

/// Seed of every hash on the ring: the ASCII bytes "dbrouter" read as a little-endian u64.
pub const HASH_SEED: u64 = u64::from_le_bytes(*b"dbrouter");

/// Index of a shard in the topology's shard list.
pub type ShardId = u16;

/// The hash of a key's canonical bytes (decimal ASCII for integer user ids).
#[inline]
pub fn key_hash(canonical: &[u8]) -> u64 {
    xxh3_64_with_seed(canonical, HASH_SEED)
}

/// The position of virtual node `index` of shard `name`: the hash of `"<name>#<index>"`.
pub fn vnode_hash(name: &str, index: u32) -> u64 {
    let mut buf = Vec::with_capacity(name.len() + 11);
    buf.extend_from_slice(name.as_bytes());
    buf.push(b'#');
    buf.extend_from_slice(itoa::Buffer::new().format(index).as_bytes());
    xxh3_64_with_seed(&buf, HASH_SEED)
}

/// Why a ring could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RingError {
    /// More shards than a `ShardId` can count.
    #[error("too many shards: {0} (at most 65535)")]
    TooManyShards(usize),
    /// Every shard has weight 0: no user could be placed.
    #[error("every shard has weight 0: at least one shard must take new users")]
    NoWeight,
}

/// The ring: sorted virtual-node positions and the shard owning each.
#[derive(Debug, Clone)]
pub struct Ring {
    points: Vec<u64>,
    owners: Vec<ShardId>,
}

/// Why a key landed where it did (for `dbrouter ctl route`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// The shard.
    pub shard: ShardId,
    /// The key's hash.
    pub key_hash: u64,
    /// Position of the virtual node that owns it.
    pub vnode_hash: u64,
}

impl Ring {
    /// Builds the ring for shards given as `(name, weight)` in topology order; a shard
    /// gets `weight` virtual nodes (weight 0: it keeps overridden users but takes no new
    /// ones). Equal positions are ordered by shard name, so the result never depends on
    /// the order of the input.
    pub fn build(shards: &[(&str, u32)]) -> Result<Ring, RingError> {
        if shards.len() > usize::from(ShardId::MAX) {
            return Err(RingError::TooManyShards(shards.len()));
        }
        let mut nodes: Vec<(u64, &str, ShardId)> = Vec::new();
        for (id, (name, weight)) in shards.iter().enumerate() {
            // id < ShardId::MAX by the check above.
            let id = id as ShardId;
            nodes.extend((0..*weight).map(|i| (vnode_hash(name, i), *name, id)));
        }
        if nodes.is_empty() {
            return Err(RingError::NoWeight);
        }
        nodes.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(b.1)));
        Ok(Ring {
            points: nodes.iter().map(|n| n.0).collect(),
            owners: nodes.iter().map(|n| n.2).collect(),
        })
    }

    /// The shard owning a key hash: the first virtual node at or after it, wrapping.
    #[inline]
    pub fn lookup(&self, key_hash: u64) -> Placement {
        let mut i = self.points.partition_point(|p| *p < key_hash);
        if i == self.points.len() {
            i = 0;
        }
        Placement {
            shard: self.owners[i],
            key_hash,
            vnode_hash: self.points[i],
        }
    }

    /// Number of virtual nodes.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// Whether the ring has no virtual node (never true for a built ring).
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }
}

/// Users placed explicitly (moved by ops), consulted before the ring. Keys are canonical
/// key bytes; lookups borrow and never allocate.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    map: HashMap<Box<[u8]>, ShardId>,
}

impl Overrides {
    /// Places `canonical` on `shard`, replacing an earlier override.
    pub fn insert(&mut self, canonical: &[u8], shard: ShardId) {
        self.map.insert(canonical.into(), shard);
    }

    /// The override for a key, if any.
    #[inline]
    pub fn get(&self, canonical: &[u8]) -> Option<ShardId> {
        self.map.get(canonical).copied()
    }

    /// Number of overridden users.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no user is overridden.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt::Write as _;

    /// The topology of the golden vectors (also used by proto-tests/ring_reference.py).
    const GOLDEN_SHARDS: &[(&str, u32)] =
        &[("alpha", 100), ("beta", 200), ("gamma", 300), ("empty", 0)];

    /// The user ids of the golden vectors.
    fn golden_keys() -> Vec<String> {
        let mut keys: Vec<String> = (0..300u64).map(|i| i.to_string()).collect();
        keys.extend((0..100u64).map(|i| (i * 7_919 + 1_000_003).to_string()));
        keys.push(u64::MAX.to_string());
        keys.extend(["alice", "bob", "user-42", ""].map(String::from));
        keys
    }

    fn golden_table() -> String {
        let ring = Ring::build(GOLDEN_SHARDS).unwrap();
        let mut out = String::from(
            "# ring v1 golden vectors: key<TAB>shard for shards alpha:100 beta:200 gamma:300 empty:0\n\
             # regenerate only for an intended placement change: DBROUTER_BLESS=1 cargo test golden\n",
        );
        for key in golden_keys() {
            let p = ring.lookup(key_hash(key.as_bytes()));
            writeln!(out, "{key}\t{}", GOLDEN_SHARDS[usize::from(p.shard)].0).unwrap();
        }
        out
    }

    #[test]
    fn golden_vectors_are_stable() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/ring_v1.tsv");
        let actual = golden_table();
        if std::env::var_os("DBROUTER_BLESS").is_some() {
            std::fs::write(&path, &actual).unwrap();
        }
        let expected = std::fs::read_to_string(&path).unwrap();
        assert!(
            expected == actual,
            "placement changed: compare {} with the current ring",
            path.display()
        );
    }

    #[test]
    fn known_hashes() {
        // Pins the hash function and seed independently of the golden file.
        assert_eq!(HASH_SEED, 0x7265_7475_6f72_6264);
        assert_eq!(key_hash(b"1"), xxh3_64_with_seed(b"1", HASH_SEED));
        assert_eq!(
            vnode_hash("alpha", 7),
            xxh3_64_with_seed(b"alpha#7", HASH_SEED)
        );
    }

    #[test]
    fn weights_shape_the_distribution_and_zero_takes_nothing() {
        let ring = Ring::build(GOLDEN_SHARDS).unwrap();
        assert_eq!(ring.len(), 600);
        let mut counts = [0usize; 4];
        for i in 0..60_000u64 {
            counts[usize::from(ring.lookup(key_hash(i.to_string().as_bytes())).shard)] += 1;
        }
        assert_eq!(counts[3], 0, "weight-0 shard received users");
        // Roughly 1:2:3 (vnode sampling noise allowed).
        let ratio = |a: usize, b: usize| a as f64 / b as f64;
        assert!(
            (1.4..2.6).contains(&ratio(counts[1], counts[0])),
            "{counts:?}"
        );
        assert!(
            (2.2..3.8).contains(&ratio(counts[2], counts[0])),
            "{counts:?}"
        );
    }

    #[test]
    fn input_order_does_not_change_positions() {
        let a = Ring::build(&[("x", 50), ("y", 50)]).unwrap();
        let b = Ring::build(&[("y", 50), ("x", 50)]).unwrap();
        for i in 0..1000u64 {
            let h = key_hash(i.to_string().as_bytes());
            let (pa, pb) = (a.lookup(h), b.lookup(h));
            assert_eq!(
                ["x", "y"][usize::from(pa.shard)],
                ["y", "x"][usize::from(pb.shard)]
            );
        }
    }

    #[test]
    fn adding_a_shard_moves_only_its_share() {
        let before = Ring::build(&[("a", 100), ("b", 100)]).unwrap();
        let after = Ring::build(&[("a", 100), ("b", 100), ("c", 100)]).unwrap();
        let mut moved = 0;
        for i in 0..30_000u64 {
            let h = key_hash(i.to_string().as_bytes());
            let (x, y) = (before.lookup(h).shard, after.lookup(h).shard);
            if x != y {
                assert_eq!(y, 2, "a user moved between old shards");
                moved += 1;
            }
        }
        assert!((6_000..14_000).contains(&moved), "moved {moved}");
    }

    #[test]
    fn errors_and_overrides() {
        assert_eq!(Ring::build(&[("a", 0)]).unwrap_err(), RingError::NoWeight);
        let mut o = Overrides::default();
        o.insert(b"42", 3);
        assert_eq!(o.get(b"42"), Some(3));
        assert_eq!(o.get(b"43"), None);
    }
}
