//! Statements in flight, by routing-table epoch: lets the topology watcher confirm a new
//! topology version only once no statement routed with an older table is still on its
//! way to a backend. Without it, a statement that loaded the table just before a shard
//! was marked `switching` could reach the old master after the switchover fenced it
//! (and fail with "read-only") although the router had already confirmed it holds.
//!
//! Process-wide (one router per process): an epoch counter and two counters of
//! statements that entered in an even or odd epoch. The watcher stores the new table
//! first, then advances the epoch and waits for the previous epoch's counter to drain; a
//! session enters (counts itself) before it loads the table. With sequentially
//! consistent atomics, a statement the watcher does not wait for loads the new table.
//! Cost on the hot path: two uncontended-in-practice atomic adds per statement.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};

static EPOCH: AtomicU64 = AtomicU64::new(0);
static COUNTS: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];

/// A statement in flight; leaving (drop) counts it out.
#[derive(Debug)]
pub struct InFlight(usize);

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(c) = COUNTS.get(self.0) {
            c.fetch_sub(1, SeqCst);
        }
    }
}

/// Counts a statement in, before it loads the routing table.
pub fn enter() -> InFlight {
    let slot = (EPOCH.load(SeqCst) & 1) as usize;
    if let Some(c) = COUNTS.get(slot) {
        c.fetch_add(1, SeqCst);
    }
    InFlight(slot)
}

/// After a new routing table was stored: starts a new epoch and waits (up to `timeout`)
/// until every statement that entered in the previous one has finished. Returns whether
/// they all did.
pub async fn advance_and_drain(timeout: Duration) -> bool {
    let previous = (EPOCH.fetch_add(1, SeqCst) & 1) as usize;
    let deadline = Instant::now() + timeout;
    loop {
        if COUNTS.get(previous).is_none_or(|c| c.load(SeqCst) == 0) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Whether every statement that entered before the last [`advance_and_drain`] has
/// finished (asked again after that wait ran out).
pub fn previous_drained() -> bool {
    let previous = (EPOCH.load(SeqCst).wrapping_sub(1) & 1) as usize;
    COUNTS.get(previous).is_none_or(|c| c.load(SeqCst) == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_watcher_waits_for_statements_of_the_previous_epoch() {
        let old = enter();
        // A statement of the old epoch is still in flight: the wait runs out.
        assert!(!advance_and_drain(Duration::from_millis(20)).await);
        let new = enter();
        drop(old);
        // Advancing again waits for `new` only (the epoch `old` belonged to is drained
        // only once `old` left, which it has).
        drop(new);
        assert!(advance_and_drain(Duration::from_millis(20)).await);
    }
}
