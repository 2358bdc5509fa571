//! What a backend connection carries from one session to the next in transaction pooling
//! (`pool.mode = "transaction"`, docs/sharding.md "Pool modes"): the fingerprint of the
//! session state last brought onto it, its `LAST_INSERT_ID()` as last known, and the
//! statements prepared on it, shared by every session that prepares the same text under
//! the same state. A reset (COM_RESET_CONNECTION) brings all of it back to a fresh
//! login's.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};

/// Statements one connection keeps prepared for the sessions that use it; the oldest is
/// closed beyond this many (MariaDB's `max_prepared_stmt_count` is 16 382 per server).
pub const MAX_CACHED_STATEMENTS: usize = 256;

/// The session state a connection carries.
#[derive(Debug, Default)]
pub struct Carried {
    /// Fingerprint of the session state replayed on it ([`StateFingerprint`]); 0 is a
    /// fresh login's (database and collation of its pool key, nothing set).
    pub state: u64,
    /// A session changed its current database (`USE`): COM_RESET_CONNECTION keeps it, so
    /// a connection whose pool key has no database cannot be brought back to a fresh
    /// login's state and is closed instead of reset.
    pub database_changed: bool,
    /// `LAST_INSERT_ID()` on the connection, when known (0 after a login or a reset).
    pub last_insert_id: Option<u64>,
    /// Statements prepared on it.
    pub statements: StatementCache,
}

impl Carried {
    /// The state of a fresh login (or of a connection just reset).
    pub fn fresh() -> Self {
        Carried {
            state: 0,
            database_changed: false,
            last_insert_id: Some(0),
            statements: StatementCache::default(),
        }
    }
}

/// Statements prepared on one connection, by the fingerprint of the state they were
/// prepared under and their COM_STMT_PREPARE payload.
#[derive(Debug, Default)]
pub struct StatementCache {
    /// By state fingerprint, then payload (looked up by `&[u8]`, no key built per execute).
    ids: HashMap<u64, HashMap<Vec<u8>, u32>>,
    /// Insertion order, oldest first, for eviction.
    order: VecDeque<(u64, Vec<u8>)>,
}

impl StatementCache {
    /// The server's id of `prepare` prepared under `state`, if it is cached.
    pub fn get(&self, state: u64, prepare: &[u8]) -> Option<u32> {
        self.ids.get(&state)?.get(prepare).copied()
    }

    /// Records a statement prepared on the connection; returns the ids that no longer
    /// fit (or that it replaces), for the caller to close on the server (COM_STMT_CLOSE).
    pub fn insert(&mut self, state: u64, prepare: &[u8], id: u32) -> Vec<u32> {
        let by_text = self.ids.entry(state).or_default();
        let mut evicted = Vec::new();
        match by_text.insert(prepare.to_vec(), id) {
            None => self.order.push_back((state, prepare.to_vec())),
            Some(old) if old != id => evicted.push(old),
            Some(_) => {}
        }
        while self.order.len() > MAX_CACHED_STATEMENTS {
            let Some((s, p)) = self.order.pop_front() else {
                break;
            };
            if let Some(by_text) = self.ids.get_mut(&s) {
                evicted.extend(by_text.remove(&p));
                if by_text.is_empty() {
                    self.ids.remove(&s);
                }
            }
        }
        evicted
    }

    /// Forgets a statement closed on the server.
    pub fn remove_id(&mut self, id: u32) {
        for by_text in self.ids.values_mut() {
            by_text.retain(|_, v| *v != id);
        }
        self.ids.retain(|_, by_text| !by_text.is_empty());
        let ids = &self.ids;
        self.order
            .retain(|(s, p)| ids.get(s).is_some_and(|t| t.contains_key(p)));
    }

    /// Statements cached.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether none is cached.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

/// A fresh serial number for a new backend connection (unique in this process): what
/// a session's prepared statements and its "previous statement's connection" name.
pub fn next_serial() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Computes the fingerprint of a session's replayable state: its database, its
/// COM_SET_OPTION and its `SET` statements in order. 0 only for none at all.
#[derive(Default)]
pub struct StateFingerprint(std::collections::hash_map::DefaultHasher);

impl StateFingerprint {
    /// Adds one part of the state.
    pub fn add(&mut self, part: &[u8]) {
        use std::hash::Hasher;
        self.0.write_usize(part.len());
        self.0.write(part);
    }

    /// The fingerprint (never 0: that is a fresh login's).
    pub fn finish(&self) -> u64 {
        use std::hash::Hasher;
        self.0.finish().max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_keeps_the_newest_statements_and_hands_back_the_evicted_ids() {
        let mut cache = StatementCache::default();
        for i in 0..MAX_CACHED_STATEMENTS as u32 {
            assert!(cache
                .insert(7, format!("SELECT {i}").as_bytes(), i)
                .is_empty());
        }
        assert_eq!(cache.insert(7, b"SELECT new", 999), vec![0]);
        assert_eq!(cache.get(7, b"SELECT 0"), None);
        assert_eq!(cache.get(7, b"SELECT 1"), Some(1));
        assert_eq!(
            cache.get(8, b"SELECT 1"),
            None,
            "another state: another statement"
        );
        cache.remove_id(1);
        assert_eq!(cache.get(7, b"SELECT 1"), None);
        assert_eq!(cache.len(), MAX_CACHED_STATEMENTS - 1);
    }

    #[test]
    fn fingerprints_differ_by_content_and_order() {
        let fp = |parts: &[&[u8]]| {
            let mut f = StateFingerprint::default();
            parts.iter().for_each(|p| f.add(p));
            f.finish()
        };
        assert_eq!(fp(&[b"a", b"b"]), fp(&[b"a", b"b"]));
        assert_ne!(fp(&[b"a", b"b"]), fp(&[b"b", b"a"]));
        assert_ne!(fp(&[b"ab"]), fp(&[b"a", b"b"]));
        assert_ne!(fp(&[]), 0);
    }
}
