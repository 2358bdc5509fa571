//! The transactions open through this router, by shard and by the topology version they
//! began under: what a move's hold must wait for before the router acknowledges it.
//!
//! A move holds a user's statements, except those of a transaction that was already open
//! on the user's source shard when the router applied the hold (it finishes there: holding
//! it could deadlock with the rows it locked). Such a transaction may still write the
//! user's rows on the source, so the router acknowledges the hold (`holds_acked_version`
//! in its registration) only once every one of them has ended. The mover needs nothing
//! from the database server to know it, and a transaction of another shard, or one begun
//! after the hold, never delays it (docs/moves.md, "The hold").
//!
//! Process-wide (one router per process): a count per (shard, version). A session
//! registers its transaction when it opens on a shard and the registration ends with it
//! (drop): one uncontended mutex operation each, once per transaction, never per
//! statement.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::ring::ShardId;

/// Open transactions per (shard, topology version they began under).
static OPEN: Mutex<BTreeMap<(ShardId, u64), usize>> = Mutex::new(BTreeMap::new());

fn open() -> std::sync::MutexGuard<'static, BTreeMap<(ShardId, u64), usize>> {
    OPEN.lock().unwrap_or_else(|e| e.into_inner())
}

/// One open transaction; dropping it ends its registration.
#[derive(Debug, PartialEq, Eq)]
pub struct OpenTransaction {
    shard: ShardId,
    version: u64,
}

impl OpenTransaction {
    /// Registers a transaction that opened on `shard` with a statement routed under
    /// topology `version`.
    pub fn register(shard: ShardId, version: u64) -> Self {
        *open().entry((shard, version)).or_insert(0) += 1;
        OpenTransaction { shard, version }
    }

    /// The shard it is open on.
    pub fn shard(&self) -> ShardId {
        self.shard
    }

    /// The topology version it began under.
    pub fn version(&self) -> u64 {
        self.version
    }
}

impl Clone for OpenTransaction {
    /// A copy is one more registration (a cloned session state counts as its own).
    fn clone(&self) -> Self {
        Self::register(self.shard, self.version)
    }
}

impl Drop for OpenTransaction {
    fn drop(&mut self) {
        let mut open = open();
        if let Some(n) = open.get_mut(&(self.shard, self.version)) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&(self.shard, self.version));
            }
        }
    }
}

/// Whether a transaction that began under a version older than `version` is still open on
/// `shard`.
pub fn any_open_before(shard: ShardId, version: u64) -> bool {
    open().range((shard, 0)..(shard, version)).next().is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transaction_counts_until_it_ends_and_only_on_its_shard_and_versions() {
        // Shard numbers no other test uses (the registry is process-wide).
        let a = OpenTransaction::register(900, 7);
        let b = a.clone();
        assert!(any_open_before(900, 8));
        assert!(!any_open_before(900, 7), "began under 7: not older than 7");
        assert!(!any_open_before(901, 8), "another shard");
        drop(a);
        assert!(any_open_before(900, 8), "the clone still counts");
        drop(b);
        assert!(!any_open_before(900, 8));
    }
}
