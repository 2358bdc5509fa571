//! Emergency failover (`failover`): the master is unreachable; the standby that received
//! the most is promoted and the old master is left fenced until it rejoins.

use super::gtid::GtidPos;
use super::{publish, repoint_standbys, shard_of, under_lock, Admin, OpError, Ops};
use crate::topology::zk::ZkStore;
use crate::topology::ShardState;

/// How long an automatic failover's own probe of the lost master may take.
const QUICK_PROBE: std::time::Duration = std::time::Duration::from_secs(1);

/// Who asked for a failover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// An operator (`dbrouter ctl failover`); `force` fails over a reachable master too.
    Operator {
        /// Fail over even though the master answers.
        force: bool,
    },
    /// The coordinator's automatic failover, decided about the master named here (if the
    /// topology names another by now, nothing is done). Recorded in the shard's
    /// `auto_failover.last_ms`.
    Automatic {
        /// The master the routers lost.
        master: String,
    },
}

/// Emergency failover of `shard` whose master is unreachable.
pub async fn failover(
    store: &ZkStore,
    ops: &Ops,
    shard: &str,
    trigger: Trigger,
    say: &mut (dyn FnMut(String) + Send),
) -> Result<(), OpError> {
    under_lock(
        store,
        shard,
        "failover",
        failover_locked(store, ops, shard, trigger, say),
    )
    .await
}

async fn failover_locked(
    store: &ZkStore,
    ops: &Ops,
    shard: &str,
    trigger: Trigger,
    say: &mut (dyn FnMut(String) + Send),
) -> Result<(), OpError> {
    let (_, _, current) = shard_of(store, shard).await?;
    let old = current.master.clone();
    let force = match &trigger {
        Trigger::Operator { force } => *force,
        Trigger::Automatic { master } if *master != old => {
            return Err(OpError::Refused(format!(
                "the master of {shard} is {old} now, not {master}: nothing to do"
            )))
        }
        Trigger::Automatic { .. } => {
            if current.auto_failover.disarmed.is_some() {
                return Err(OpError::Refused(format!(
                    "automatic failover of {shard} is disarmed"
                )));
            }
            false
        }
    };
    let old_health = if matches!(trigger, Trigger::Automatic { .. }) {
        // A majority of the routers lost it already: a master cut off by the network
        // is not waited for as long as an operator's command would.
        let quick = Ops {
            timeout: ops.timeout.min(QUICK_PROBE),
            ..ops.clone()
        };
        quick.probe(&old).await
    } else {
        ops.probe(&old).await
    };
    if old_health.reachable && !force {
        return Err(OpError::Refused(format!(
            "the master {old} of {shard} is reachable: use `dbrouter ctl promote {shard}` for a planned switchover (or --force)"
        )));
    }
    say(format!(
        "master {old} is {}",
        if old_health.reachable {
            "reachable (forced)"
        } else {
            "unreachable"
        }
    ));
    // The most advanced standby by what it has received.
    let mut best: Option<(u64, String, GtidPos)> = None;
    for s in &current.standbys {
        let h = ops.probe(s).await;
        say(format!(
            "standby {s}: reachable={} received={} applied={} error={:?}",
            h.reachable, h.gtid_io_pos, h.gtid_slave_pos, h.last_error
        ));
        if !h.reachable || h.replicates_from.is_none() {
            continue;
        }
        let received = GtidPos::parse(if h.gtid_io_pos.is_empty() {
            &h.gtid_slave_pos
        } else {
            &h.gtid_io_pos
        })
        .unwrap_or_default();
        if best
            .as_ref()
            .is_none_or(|(p, _, _)| received.progress() > *p)
        {
            best = Some((received.progress(), s.clone(), received));
        }
    }
    let Some((_, target, received)) = best else {
        return Err(OpError::Refused(format!(
            "no standby of {shard} is reachable and replicating: none is safe to promote; restore the master or rebuild a standby"
        )));
    };
    let mut new = Admin::connect(ops, &target)
        .await
        .map_err(OpError::Refused)?;
    say(format!(
        "promoting {target}: waiting for it to apply everything it received ({received})"
    ));
    new.wait_for(&received, ops.catchup)
        .await
        .map_err(OpError::Failed)?;
    let (doc, version, mut s) = shard_of(store, shard).await?;
    let others: Vec<String> = s
        .standbys
        .iter()
        .filter(|x| **x != target)
        .cloned()
        .collect();
    new.become_master(!others.is_empty())
        .await
        .map_err(OpError::Failed)?;
    say(format!(
        "{target} promoted: replication reset, read_only = OFF"
    ));
    repoint_standbys(ops, others.iter(), &target, say).await;
    s.master = target.clone();
    s.standbys = others;
    if !s.rejoin.contains(&old) {
        s.rejoin.push(old.clone());
    }
    s.epoch += 1;
    s.state = ShardState::Serving;
    if matches!(trigger, Trigger::Automatic { .. }) {
        s.auto_failover.last_ms = crate::topology::now_ms();
    }
    let epoch = s.epoch;
    let v = publish(store, doc, version, s).await?;
    say(format!(
        "published: shard {shard} master {target}, epoch {epoch} (topology version {v}); {old} stays fenced until `dbrouter ctl rejoin {shard} {old}`"
    ));
    Ok(())
}
