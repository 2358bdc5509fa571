//! The drain signal: tells every open session that the router is shutting down, so that
//! idle ones close at once and busy ones close after their transaction.
//!
//! Each session holds a oneshot receiver that it polls next to its client read. A watch
//! channel would do the same job, but every poll of its `changed()` future locks a
//! waiter list shared by all sessions; a oneshot is polled with atomics on memory only
//! that session touches (docs/benchmarks.md, "Analysis").

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::oneshot;

/// The router's drain state and one sender per session in its command phase.
#[derive(Debug)]
pub struct DrainSignal {
    /// `None` once draining started: later subscribers are told at once.
    waiting: Mutex<Option<HashMap<u32, oneshot::Sender<()>>>>,
}

impl Default for DrainSignal {
    fn default() -> Self {
        Self::new()
    }
}

impl DrainSignal {
    /// A signal that has not fired.
    pub fn new() -> Self {
        DrainSignal {
            waiting: Mutex::new(Some(HashMap::new())),
        }
    }

    /// Registers session `id`; its receiver completes when draining starts (at once if it
    /// already has).
    pub fn subscribe(&self, id: u32) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        match waiting.as_mut() {
            Some(map) => {
                map.insert(id, tx);
            }
            None => {
                let _ = tx.send(());
            }
        }
        rx
    }

    /// Unregisters session `id` (it ended).
    pub fn forget(&self, id: u32) {
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(map) = waiting.as_mut() {
            map.remove(&id);
        }
    }

    /// Starts draining: every registered session is told, and every later one too.
    pub fn start(&self) {
        let taken = self
            .waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        for (_, tx) in taken.into_iter().flatten() {
            let _ = tx.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tells_registered_and_later_sessions() {
        let signal = DrainSignal::new();
        let early = signal.subscribe(1);
        let gone = signal.subscribe(2);
        signal.forget(2);
        drop(gone);
        let mut early = early;
        assert!(early.try_recv().is_err(), "told before the drain started");
        signal.start();
        assert_eq!(early.await, Ok(()));
        assert_eq!(signal.subscribe(3).await, Ok(()));
    }

    #[tokio::test]
    async fn a_quiet_signal_keeps_receivers_pending() {
        let signal = DrainSignal::new();
        let mut rx = signal.subscribe(1);
        assert!(rx.try_recv().is_err());
        signal.forget(1);
        // Forgotten: the sender is dropped, which a session reads as "stop" too; sessions
        // forget only after their command loop has ended.
        assert!(rx.await.is_err());
    }
}
