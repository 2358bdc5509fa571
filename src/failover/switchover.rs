//! Planned switchover (`promote`): hold the shard's statements, fence and drain the old
//! master, let the target catch up, promote it, repoint the rest, publish; or roll back.

use std::time::{Duration, Instant};

use mysql_async::prelude::*;

use super::gtid::GtidPos;
use super::{publish, repoint_standbys, shard_of, under_lock, within, Admin, OpError, Ops};
use crate::topology::zk::ZkStore;
use crate::topology::ShardState;

/// Planned switchover of `shard` to `to` (or the most advanced healthy standby). `say`
/// receives a line per step.
pub async fn promote(
    store: &ZkStore,
    ops: &Ops,
    shard: &str,
    to: Option<&str>,
    say: &mut (dyn FnMut(String) + Send),
) -> Result<(), OpError> {
    under_lock(
        store,
        shard,
        "promote",
        promote_locked(store, ops, shard, to, say),
    )
    .await
}

async fn promote_locked(
    store: &ZkStore,
    ops: &Ops,
    shard: &str,
    to: Option<&str>,
    say: &mut (dyn FnMut(String) + Send),
) -> Result<(), OpError> {
    let (_, _, current) = shard_of(store, shard).await?;
    let old = current.master.clone();
    say(format!(
        "lock taken for shard {shard}; master {old}, epoch {}",
        current.epoch
    ));
    // Pick and check the target.
    let target = match to {
        Some(t) if t == old => {
            return Err(OpError::Refused(format!(
                "{t} is already the master of {shard}"
            )))
        }
        Some(t) if !current.standbys.iter().any(|s| s == t) => {
            return Err(OpError::Refused(format!(
                "{t} is not a standby of {shard} (standbys: {})",
                current.standbys.join(", ")
            )))
        }
        Some(t) => t.to_string(),
        None => {
            let mut best: Option<(u64, String)> = None;
            for s in &current.standbys {
                let h = ops.probe(s).await;
                if h.reachable && h.io_running && h.sql_running {
                    let p = GtidPos::parse(&h.gtid_slave_pos).map_or(0, |g| g.progress());
                    if best.as_ref().is_none_or(|(bp, _)| p > *bp) {
                        best = Some((p, s.clone()));
                    }
                }
            }
            best.map(|(_, s)| s).ok_or_else(|| {
                OpError::Refused(format!(
                    "shard {shard} has no healthy replicating standby to promote"
                ))
            })?
        }
    };
    let mut master = Admin::connect(ops, &old).await.map_err(|e| {
        OpError::Refused(format!(
            "the master is not reachable ({e}); use `dbrouter ctl failover {shard}`"
        ))
    })?;
    let mut new = Admin::connect(ops, &target)
        .await
        .map_err(OpError::Refused)?;
    let target_health = ops.probe(&target).await;
    let resumed = !target_health.read_only && target_health.replicates_from.is_none();
    let replicating = target_health.io_running && target_health.sql_running;
    if !resumed && !replicating {
        return Err(OpError::Refused(format!(
            "{target} is not replicating (IO={}, SQL={}, error {:?}); fix it or choose another standby",
            target_health.io_running, target_health.sql_running, target_health.last_error
        )));
    }
    say(format!(
        "target {target}{}",
        if resumed {
            " (already promoted by an interrupted run: resuming)"
        } else {
            ""
        }
    ));

    // 1. Routers hold new statements for the shard.
    let (doc, version, mut s) = shard_of(store, shard).await?;
    if s.state != ShardState::Switching {
        s.state = ShardState::Switching;
        let v = publish(store, doc, version, s).await?;
        say(format!("shard {shard} marked switching (topology version {v}): routers hold its new statements"));
        // Wait (within the drain time) until every registered router serves that version, so
        // none sends a new statement to the old master after the fence. One that does not
        // answer in time is fenced off by read_only anyway.
        let deadline = Instant::now() + ops.drain;
        loop {
            let routers = store.routers().await.unwrap_or_default();
            let behind: Vec<String> = routers
                .iter()
                .filter(|r| r.applied_version < v)
                .map(|r| r.id.clone())
                .collect();
            if behind.is_empty() {
                say(format!(
                    "all {} registered router(s) hold statements for {shard}",
                    routers.len()
                ));
                break;
            }
            if Instant::now() >= deadline {
                say(format!("WARNING: router(s) {} did not confirm in time; the fence protects the old master", behind.join(", ")));
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    if !resumed {
        // 2. Let open transactions finish, then fence the old master.
        let deadline = Instant::now() + ops.drain;
        loop {
            let open = master
                .value("SELECT COUNT(*) FROM information_schema.INNODB_TRX WHERE trx_mysql_thread_id <> CONNECTION_ID()")
                .await
                .unwrap_or(None)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
            if open == 0 || Instant::now() >= deadline {
                say(format!(
                    "{open} transaction(s) still open on {old} after the drain"
                ));
                break;
            }
            // InnoDB refreshes INNODB_TRX only when it went unread for 100 ms: polled
            // faster, it would show the first answer until the drain time runs out.
            tokio::time::sleep(Duration::from_millis(110)).await;
        }
        if let Err(e) = master.exec("SET GLOBAL read_only = ON").await {
            return Err(rollback(
                store,
                shard,
                &mut master,
                format!("fencing {old} failed: {e}"),
            )
            .await);
        }
        let ids: Vec<u64> = within(
            ops.timeout,
            "list connections",
            master.conn.exec(
                "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = ? AND ID <> CONNECTION_ID()",
                (ops.service_user.as_str(),),
            ),
        )
        .await
        .unwrap_or_default();
        for id in &ids {
            let _ = master.exec(&format!("KILL CONNECTION {id}")).await;
        }
        say(format!(
            "old master {old} fenced: read_only = ON, {} router connection(s) killed",
            ids.len()
        ));
        // 3. The target applies everything the old master has.
        let pos = match master.gtid("gtid_binlog_pos").await {
            Ok(p) => p,
            Err(e) => return Err(rollback(store, shard, &mut master, e).await),
        };
        say(format!("waiting for {target} to apply {pos}"));
        if let Err(e) = new.wait_for(&pos, ops.catchup).await {
            return Err(rollback(store, shard, &mut master, e).await);
        }
        // 4. Promote.
        if let Err(e) = new.become_master(true).await {
            let _ = new.exec("SET GLOBAL read_only = ON").await;
            let _ = new.exec("START SLAVE").await;
            return Err(rollback(
                store,
                shard,
                &mut master,
                format!("promoting {target} failed: {e}"),
            )
            .await);
        }
        say(format!(
            "{target} promoted: replication reset, read_only = OFF, semi-sync master on"
        ));
    }
    // 5. The old master and the other standbys follow the new one.
    master
        .become_standby(ops, &target, "current_pos")
        .await
        .map_err(|e| {
            OpError::Failed(format!(
                "{e}; {target} is the master: run promote again to finish"
            ))
        })?;
    say(format!("{old} is now a semi-sync standby of {target}"));
    let (doc, version, mut s) = shard_of(store, shard).await?;
    repoint_standbys(
        ops,
        s.standbys.iter().filter(|x| **x != target),
        &target,
        say,
    )
    .await;
    // 6. Publish: routers release their held statements to the new master.
    s.standbys.retain(|x| *x != target);
    if !s.standbys.contains(&old) {
        s.standbys.push(old.clone());
    }
    s.master = target.clone();
    s.epoch += 1;
    s.state = ShardState::Serving;
    let epoch = s.epoch;
    let v = publish(store, doc, version, s).await?;
    say(format!(
        "published: shard {shard} master {target}, epoch {epoch} (topology version {v})"
    ));
    Ok(())
}

/// Undoes a switchover that failed before the promotion: the old master writable again,
/// the shard serving again.
async fn rollback(store: &ZkStore, shard: &str, master: &mut Admin, reason: String) -> OpError {
    let _ = master.exec("SET GLOBAL read_only = OFF").await;
    if let Ok((doc, version, mut s)) = shard_of(store, shard).await {
        s.state = ShardState::Serving;
        let _ = publish(store, doc, version, s).await;
    }
    OpError::Failed(format!(
        "{reason}; rolled back: {} is master again and serving",
        master.addr
    ))
}
