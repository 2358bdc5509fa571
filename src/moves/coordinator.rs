//! The coordinator: one router of a cluster, elected through ZooKeeper (whoever holds the
//! ephemeral `<root>/locks/coordinator`; when it dies the lock vanishes with its session
//! and another router takes it within seconds), runs the queued background work — today
//! the wake-ups of hibernated users: each is moved back to its ring shard
//! ([`super::move_user`]) and its request removed. A failed wake-up stays queued and is
//! tried again; a request for a user no longer on a hibernation shard is dropped.

use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use super::{move_user, MoveSettings};
use crate::config::Config;
use crate::failover::ShardLock;
use crate::topology::zk::{ZkStore, ZkTarget};

/// How often the coordinator looks for work, and a candidate for the lock.
const POLL: Duration = Duration::from_millis(500);

/// Runs for the router's life: competes for the coordinator lock and, while it holds it,
/// wakes hibernated users.
pub async fn run(target: ZkTarget, config: Arc<Config>) {
    let session = Duration::from_millis(config.topology.session_timeout_ms);
    let connect = config.timeouts.connect();
    loop {
        let store = match ZkStore::connect(&target, session, connect).await {
            Ok(s) => s,
            Err(_) => {
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
        };
        let lock = loop {
            if store.client().state().is_terminated() {
                break None;
            }
            match ShardLock::acquire(&store, "coordinator", "coordinator").await {
                Ok(lock) => break Some(lock),
                Err(_) => tokio::time::sleep(POLL * 4).await,
            }
        };
        let Some(lock) = lock else { continue };
        info!("this router is the coordinator (wake-ups of hibernated users)");
        while !store.client().state().is_terminated() {
            if let Err(e) = wake_up(&store, &config).await {
                warn!(error = %e, "coordinator: wake-ups failed; retrying");
            }
            tokio::time::sleep(POLL).await;
        }
        lock.release().await;
        warn!("coordinator: ZooKeeper session ended; competing again");
    }
}

/// One round: every queued wake-up.
async fn wake_up(store: &ZkStore, config: &Config) -> Result<(), String> {
    let users = store.wakeups().await.map_err(|e| e.to_string())?;
    if users.is_empty() {
        return Ok(());
    }
    let snapshot = store.read_all().await.map_err(|e| e.to_string())?;
    let table = snapshot
        .routing_table(&config.sharding)
        .map_err(|e| e.to_string())?;
    for user in users {
        let here = table.shard_for_key(user.as_bytes()).0;
        if !table.is_hibernation(here) {
            let _ = store.delete_wakeup(&user).await;
            continue;
        }
        // Its ring shard: where it goes without its override.
        let mut plain = snapshot.clone();
        for b in &mut plain.buckets {
            b.users.remove(&user);
        }
        let ring = plain
            .routing_table(&config.sharding)
            .map_err(|e| e.to_string())?;
        let home = ring
            .shard_name(ring.shard_for_key(user.as_bytes()).0)
            .to_string();
        let mut log = |line: String| info!(user = %user, "wake-up: {line}");
        match move_user(
            store,
            config,
            &user,
            &home,
            &MoveSettings::default(),
            &mut log,
        )
        .await
        {
            Ok(doc) => {
                info!(user = %user, to = %home, rows = doc.rows, hold_ms = doc.hold_ms.unwrap_or(0), "hibernated user woken up");
                let _ = store.delete_wakeup(&user).await;
            }
            Err(e) => warn!(user = %user, error = %e, "wake-up failed; it stays queued"),
        }
    }
    Ok(())
}
