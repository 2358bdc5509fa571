//! Wake-ups of hibernated users: a session that routes a statement to a hibernation
//! shard asks for its user to be moved back ([`WakeupQueue::request`], never blocking the
//! statement, which is served where the user is); a task of the router writes the request
//! to ZooKeeper (`<root>/wakeups/<user>`), where the coordinator (`moves::coordinator`)
//! picks it up. Each user is queued once until the request is written.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tracing::warn;

use super::zk::{ZkStore, ZkTarget};

/// Requests not yet written, at most.
const QUEUE: usize = 4096;

/// The router's queue of wake-up requests.
#[derive(Debug)]
pub struct WakeupQueue {
    sender: Option<mpsc::Sender<Vec<u8>>>,
    pending: Mutex<HashSet<Vec<u8>>>,
}

impl WakeupQueue {
    /// A queue that drops every request (a config-file topology: no ZooKeeper to write to).
    pub fn disabled() -> Arc<Self> {
        Arc::new(WakeupQueue {
            sender: None,
            pending: Mutex::new(HashSet::new()),
        })
    }

    /// A queue written to the ZooKeeper at `target` by a task spawned here.
    pub fn start(
        target: ZkTarget,
        session_timeout: Duration,
        connect_timeout: Duration,
    ) -> Arc<Self> {
        let (sender, receiver) = mpsc::channel(QUEUE);
        let queue = Arc::new(WakeupQueue {
            sender: Some(sender),
            pending: Mutex::new(HashSet::new()),
        });
        tokio::spawn(write_requests(
            Arc::clone(&queue),
            receiver,
            target,
            (session_timeout, connect_timeout),
        ));
        queue
    }

    /// Asks for `user` (canonical key) to be woken up; returns at once.
    pub fn request(&self, user: Vec<u8>) {
        let Some(sender) = &self.sender else { return };
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if pending.contains(&user) {
            return;
        }
        if sender.try_send(user.clone()).is_ok() {
            pending.insert(user);
        }
    }

    fn written(&self, user: &[u8]) {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(user);
    }
}

async fn write_requests(
    queue: Arc<WakeupQueue>,
    mut receiver: mpsc::Receiver<Vec<u8>>,
    target: ZkTarget,
    (session_timeout, connect_timeout): (Duration, Duration),
) {
    let mut store: Option<ZkStore> = None;
    while let Some(user) = receiver.recv().await {
        let text = String::from_utf8_lossy(&user).into_owned();
        loop {
            let current = match store.take() {
                Some(s) if !s.client().state().is_terminated() => s,
                _ => match ZkStore::connect(&target, session_timeout, connect_timeout).await {
                    Ok(s) => s,
                    Err(e) => {
                        warn!(error = %e, "wake-up queue: cannot reach ZooKeeper; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                },
            };
            match current.request_wakeup(&text).await {
                Ok(()) => {
                    store = Some(current);
                    break;
                }
                Err(e) => {
                    warn!(user = %text, error = %e, "wake-up request not written; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
        queue.written(&user);
    }
}
