//! Rejoin (`rejoin`): a fenced former master becomes a standby again, unless it has
//! errant transactions.

use super::gtid;
use super::{publish, shard_of, under_lock, Admin, OpError, Ops};
use crate::topology::zk::ZkStore;

/// How long a rejoin waits for the master's semi-sync to become active with the standby.
const SEMI_SYNC_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Makes a fenced former master a standby again, unless it has errant transactions.
pub async fn rejoin(
    store: &ZkStore,
    ops: &Ops,
    shard: &str,
    server: &str,
    say: &mut (dyn FnMut(String) + Send),
) -> Result<(), OpError> {
    under_lock(
        store,
        shard,
        "rejoin",
        rejoin_locked(store, ops, shard, server, say),
    )
    .await
}

async fn rejoin_locked(
    store: &ZkStore,
    ops: &Ops,
    shard: &str,
    server: &str,
    say: &mut (dyn FnMut(String) + Send),
) -> Result<(), OpError> {
    let (_, _, current) = shard_of(store, shard).await?;
    if current.master == server {
        return Err(OpError::Refused(format!(
            "{server} is the master of {shard}"
        )));
    }
    let mut node = Admin::connect(ops, server)
        .await
        .map_err(OpError::Refused)?;
    let mut master = Admin::connect(ops, &current.master)
        .await
        .map_err(OpError::Refused)?;
    // Fence first: whatever happens next, it must not take writes.
    node.exec("SET GLOBAL read_only = ON")
        .await
        .map_err(OpError::Failed)?;
    // Errant transactions: GTIDs the node wrote itself that the new master never got.
    let node_id: u32 = node
        .value("SELECT @@server_id")
        .await
        .map_err(OpError::Failed)?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let node_pos = node
        .gtid("gtid_binlog_pos")
        .await
        .map_err(OpError::Failed)?;
    // The new master's gtid_slave_pos is the last GTID it applied from its old master.
    let master_got = master
        .gtid("gtid_slave_pos")
        .await
        .map_err(OpError::Failed)?;
    if let Some(g) = gtid::errant(node_id, &node_pos, &master_got) {
        return Err(OpError::Refused(format!(
            "{server} has errant transactions: its binlog ends at {}-{}-{} but the master applied only up to {master_got} from it; \
             it stays fenced (read_only). Rebuild it from a snapshot of the master",
            g.domain, g.server, g.seq
        )));
    }
    // Semi-sync on the master before the standby connects, so that the standby's
    // replication connection is a semi-sync one from the start.
    master
        .exec("SET GLOBAL rpl_semi_sync_master_wait_point = AFTER_SYNC, rpl_semi_sync_master_enabled = ON")
        .await
        .map_err(OpError::Failed)?;
    node.become_standby(ops, &current.master, "current_pos")
        .await
        .map_err(OpError::Failed)?;
    let target = master
        .gtid("gtid_binlog_pos")
        .await
        .map_err(OpError::Failed)?;
    node.wait_for(&target, ops.catchup).await.map_err(|e| {
        OpError::Failed(format!(
            "{e}; it is replicating but not caught up: check `dbrouter ctl status`"
        ))
    })?;
    say(format!(
        "{server} replicates from {} and has caught up to {target}",
        current.master
    ));
    if !master.semi_sync_active(SEMI_SYNC_WAIT).await {
        // Reconnect the standby's replication once: it registers as semi-sync then.
        node.exec("STOP SLAVE IO_THREAD")
            .await
            .map_err(OpError::Failed)?;
        node.exec("START SLAVE IO_THREAD")
            .await
            .map_err(OpError::Failed)?;
        if !master.semi_sync_active(SEMI_SYNC_WAIT).await {
            say(format!(
                "WARNING: semi-sync is not active on {} yet (no semi-sync standby acknowledges): \
                 until it is, acknowledged writes are not guaranteed on a standby; check `dbrouter ctl status`",
                current.master
            ));
        }
    }
    say(format!("semi-sync is active on {}", current.master));
    let (doc, version, mut s) = shard_of(store, shard).await?;
    s.rejoin.retain(|x| x != server);
    if !s.standbys.iter().any(|x| x == server) {
        s.standbys.push(server.to_string());
    }
    let v = publish(store, doc, version, s).await?;
    say(format!(
        "{server} is a standby of {shard} again (topology version {v})"
    ));
    Ok(())
}
