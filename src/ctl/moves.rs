//! `dbrouter ctl user move` and `user moves`: online moves of one user's rows to another
//! shard (the state machine is [`crate::moves`]), each step printed as it ends.

use std::time::Duration;

use crate::config::Config;
use crate::moves::{describe, move_user, MoveSettings};
use crate::topology::zk::ZkTarget;

use super::failover::printer;
use super::topology::store;

/// `user move USER SHARD [--force] [--max-hold-ms N]`. The environment variable
/// `DBROUTER_MOVE_CRASH_AFTER` (`copy`, `hold`, `catchup`, `flip`) makes the mover exit
/// after that step: the fault-injection switch of the crash-and-resume tests.
pub async fn user_move(
    target: &ZkTarget,
    config: &Config,
    user: &str,
    shard: &str,
    force: bool,
    max_hold_ms: u64,
) -> Result<String, String> {
    let store = store(target).await?;
    let settings = MoveSettings {
        force,
        max_hold: Duration::from_millis(max_hold_ms),
        crash_after: std::env::var("DBROUTER_MOVE_CRASH_AFTER").ok(),
    };
    let doc = move_user(&store, config, user, shard, &settings, &mut printer()).await?;
    Ok(format!(
        "user {} moved {} -> {}: {} row(s), statements held {} ms\n",
        doc.user,
        doc.source,
        doc.target,
        doc.rows,
        doc.hold_ms.unwrap_or(0)
    ))
}

/// `user moves`: current and recent moves with their state and timings.
pub async fn user_moves(target: &ZkTarget) -> Result<String, String> {
    let store = store(target).await?;
    let moves = store.moves().await.map_err(|e| e.to_string())?;
    Ok(describe(&moves))
}
