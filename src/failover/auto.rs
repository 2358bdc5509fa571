//! Automatic failover and rejoin, run by the coordinator (`moves::coordinator`, one router
//! of the cluster elected through ZooKeeper) when `[failover] auto` is on.
//!
//! **The guarantee.** A shard is failed over automatically only when
//! 1. a majority of the live routers (registered in ZooKeeper now) publish that they have
//!    not reached its master for `failover.auto_after_ms` without a break, each opinion
//!    current (rewritten within [`AutoSettings::stale_ms`] of the newest one);
//! 2. the master's last successful probe found semi-sync replication on (a master that
//!    had fallen back to asynchronous replication may have acknowledged writes no standby
//!    received: an alert is raised instead), and the coordinator cannot reach it either;
//! 3. a standby replicates (the most advanced by what it received is promoted: with
//!    semi-sync on, it has every acknowledged transaction);
//! 4. no automatic failover of the shard published within `failover.auto_min_interval_ms`
//!    (anti-flap: the shard is disarmed until `dbrouter ctl failover arm`), and nobody
//!    disarmed it;
//! 5. ZooKeeper has a quorum: the decision is read from it and published by
//!    compare-and-set under the shard's lock, so a coordinator cut off from the quorum
//!    cannot act.
//!
//! A router alone that loses a master never causes a failover (it is not a majority);
//! a slow master (stopped for less than `auto_after_ms`) neither. The promotion itself is
//! the operator's emergency failover ([`super::failover`]), so the old master is left
//! fenced (never routed to) and listed for a rejoin, which this module also attempts:
//! a former master that is reachable again is made read-only and rejoined as a standby
//! unless it has errant transactions, in which case it stays fenced and an alert says so
//! — or, with `failover.auto_rebuild`, it is rebuilt (`failover::standby::rebuild`: wiped,
//! cloned from a standby, published as a standby) by a task of its own.
//!
//! Alerts are persistent nodes in ZooKeeper (`topology::opinions`), shown by
//! `dbrouter ctl status` and counted in `dbrouter_failover_auto_blocked_total`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::emergency::Trigger;
use super::{failover, publish, rejoin, shard_of, OpError, Ops};
use crate::topology::opinions::{AlertDoc, Opinion};
use crate::topology::zk::ZkStore;
use crate::topology::{now_ms, ShardDoc, ShardState, SCHEMA};

/// How long a failed automatic failover waits before it is tried again.
const RETRY_FAILOVER: Duration = Duration::from_secs(5);

/// How often an unreachable former master is looked at for a rejoin.
const RETRY_REJOIN: Duration = Duration::from_secs(5);

/// How long a former master that cannot rejoin (errant transactions) waits before the
/// next try (an operator may have mended it meanwhile).
const RETRY_REFUSED_REJOIN: Duration = Duration::from_secs(60);

/// The decision's settings (`[failover]`, `[health]`).
#[derive(Debug, Clone)]
pub struct AutoSettings {
    /// `failover.auto_after_ms`.
    pub after_ms: u64,
    /// `failover.auto_min_interval_ms`.
    pub min_interval_ms: u64,
    /// `failover.auto_rebuild`.
    pub rebuild: bool,
    /// An opinion written longer than this before the newest opinion of the shard is
    /// not current (its router stopped probing) and does not count.
    pub stale_ms: u64,
}

impl AutoSettings {
    /// From a config.
    pub fn of(config: &crate::config::Config) -> Self {
        AutoSettings {
            after_ms: config.failover.auto_after_ms,
            min_interval_ms: config.failover.auto_min_interval_ms,
            rebuild: config.failover.auto_rebuild,
            // A down master's probe takes up to the connect timeout, then the interval.
            stale_ms: 3 * (config.health.interval_ms + config.timeouts.connect_ms).max(1_000),
        }
    }
}

/// Why automatic failover does not act on a shard whose master is lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// Short machine name (the metric label, the alert's kind).
    pub kind: &'static str,
    /// What is wrong and what to do.
    pub reason: String,
}

/// What the coordinator should do about one shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The master is reached by enough routers (or an operation is under way).
    Healthy,
    /// Some routers lost the master, not (yet) a majority for `auto_after_ms`.
    Suspected {
        /// Current opinions that the master is down for long enough.
        down: usize,
        /// How many make a majority of the live routers.
        needed: usize,
    },
    /// Fail the shard over now.
    FailOver,
    /// A majority lost the master, but failing over is not safe or not allowed.
    Blocked(Block),
}

/// Decides about one shard from the live routers' ids and their opinions (pure: the
/// rules of the module header, tested below).
pub fn decide(
    shard: &ShardDoc,
    live: &[String],
    opinions: &[Opinion],
    now_ms: u64,
    settings: &AutoSettings,
) -> Verdict {
    if shard.state == ShardState::Switching || live.is_empty() {
        return Verdict::Healthy;
    }
    let relevant: Vec<&Opinion> = opinions
        .iter()
        .filter(|o| o.doc.master == shard.master && live.contains(&o.router))
        .collect();
    let newest = relevant.iter().map(|o| o.mtime).max().unwrap_or(0);
    let stale_ms = i64::try_from(settings.stale_ms).unwrap_or(i64::MAX);
    let down = relevant
        .iter()
        .filter(|o| {
            !o.doc.reachable
                && o.doc.down_for_ms >= settings.after_ms
                && o.mtime >= newest.saturating_sub(stale_ms)
        })
        .count();
    let needed = live.len() / 2 + 1;
    if down < needed {
        if relevant.iter().any(|o| !o.doc.reachable) {
            return Verdict::Suspected { down, needed };
        }
        return Verdict::Healthy;
    }
    let block = |kind, reason: String| Verdict::Blocked(Block { kind, reason });
    let name = &shard.name;
    if shard.standbys.is_empty() {
        return block(
            "no_standby",
            format!("the master of {name} is lost and the shard has no standby: restore the master or add a standby"),
        );
    }
    if let Some(why) = &shard.auto_failover.disarmed {
        return block(
            "disarmed",
            format!("the master of {name} is lost but automatic failover of the shard is disarmed ({why}): fail over with `dbrouter ctl failover {name}`, or re-arm with `dbrouter ctl failover arm {name}`"),
        );
    }
    let last = shard.auto_failover.last_ms;
    if last != 0 && now_ms.saturating_sub(last) < settings.min_interval_ms {
        return block(
            "flapping",
            format!("the master of {name} is lost again {} s after the last automatic failover (failover.auto_min_interval_ms): automatic failover is disarmed; investigate, fail over with `dbrouter ctl failover {name}`, then `dbrouter ctl failover arm {name}`", now_ms.saturating_sub(last) / 1000),
        );
    }
    let seen: Vec<bool> = relevant.iter().filter_map(|o| o.doc.semi_sync).collect();
    if seen.is_empty() {
        return block(
            "never_reached",
            format!("the master of {name} is lost and no router reached it since it started, so nobody knows whether it had fallen back to asynchronous replication: check the standbys and fail over with `dbrouter ctl failover {name}`"),
        );
    }
    if seen.contains(&false) {
        return block(
            "async",
            format!("the master of {name} is lost and had fallen back to asynchronous replication at its last probe: a failover may lose acknowledged writes. Restore the master, or accept the loss with `dbrouter ctl failover {name}`"),
        );
    }
    Verdict::FailOver
}

/// The coordinator's memory between rounds: what was alerted and when to try again.
#[derive(Debug, Default)]
pub struct AutoFailover {
    /// Alert kinds written, by alert key.
    alerts: HashMap<String, Option<&'static str>>,
    /// No failover of the shard before this.
    failover_after: HashMap<String, Instant>,
    /// No rejoin of the server before this.
    rejoin_after: HashMap<String, Instant>,
    /// Former masters being rebuilt now (each by a task of its own: a copy takes long).
    rebuilding: std::sync::Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
}

impl AutoFailover {
    /// One round over every shard: fail over where [`decide`] says so, raise or clear
    /// alerts, and rejoin reachable former masters.
    pub async fn round(
        &mut self,
        store: &ZkStore,
        ops: &Ops,
        settings: &AutoSettings,
    ) -> Result<(), OpError> {
        let (doc, _) = store.read_topology().await?;
        let live: Vec<String> = store.routers().await?.into_iter().map(|r| r.id).collect();
        for shard in &doc.shards {
            let opinions = store.opinions(&shard.name).await?;
            let verdict = decide(shard, &live, &opinions, now_ms(), settings);
            match verdict {
                Verdict::Healthy | Verdict::Suspected { .. } => {
                    self.alert(store, &shard.name, &shard.name, None).await?;
                }
                Verdict::Blocked(block) => {
                    if block.kind == "flapping" {
                        set_armed(
                            store,
                            &shard.name,
                            Some(
                                "it failed over twice within failover.auto_min_interval_ms".into(),
                            ),
                        )
                        .await?;
                    }
                    self.alert(store, &shard.name, &shard.name, Some(block))
                        .await?;
                }
                Verdict::FailOver => self.fail_over(store, ops, shard).await?,
            }
            for server in &shard.rejoin {
                self.try_rejoin(store, ops, settings, &shard.name, server)
                    .await?;
            }
        }
        Ok(())
    }

    async fn fail_over(
        &mut self,
        store: &ZkStore,
        ops: &Ops,
        shard: &ShardDoc,
    ) -> Result<(), OpError> {
        let name = &shard.name;
        if self
            .failover_after
            .get(name)
            .is_some_and(|t| Instant::now() < *t)
        {
            return Ok(());
        }
        warn!(shard = %name, master = %shard.master, "automatic failover: a majority of the routers lost the master");
        let mut say = |line: String| info!(shard = %name, "automatic failover: {line}");
        let trigger = Trigger::Automatic {
            master: shard.master.clone(),
        };
        match failover(store, ops, name, trigger, &mut say).await {
            Ok(()) => {
                crate::metrics::failover_auto(name, "done");
                self.failover_after.remove(name);
                self.alert(store, name, name, None).await
            }
            Err(OpError::Topology(e)) => Err(OpError::Topology(e)),
            Err(e) => {
                crate::metrics::failover_auto(name, "failed");
                warn!(shard = %name, error = %e, "automatic failover failed; trying again in {RETRY_FAILOVER:?}");
                self.failover_after
                    .insert(name.clone(), Instant::now() + RETRY_FAILOVER);
                let block = Block {
                    kind: "failed",
                    reason: format!("automatic failover of {name} failed: {e}"),
                };
                self.alert(store, name, name, Some(block)).await
            }
        }
    }

    /// Rejoins a former master of `shard` if it is reachable again (it is made read-only
    /// first); one with errant transactions stays fenced, with an alert.
    async fn try_rejoin(
        &mut self,
        store: &ZkStore,
        ops: &Ops,
        settings: &AutoSettings,
        shard: &str,
        server: &str,
    ) -> Result<(), OpError> {
        let rebuilding = self
            .rebuilding
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(server);
        if rebuilding
            || self
                .rejoin_after
                .get(server)
                .is_some_and(|t| Instant::now() < *t)
        {
            return Ok(());
        }
        let key = format!("{shard}-rejoin-{server}");
        if !ops.probe(server).await.reachable {
            self.rejoin_after
                .insert(server.to_string(), Instant::now() + RETRY_REJOIN);
            return Ok(());
        }
        let mut say = |line: String| info!(shard, server, "automatic rejoin: {line}");
        match rejoin(store, ops, shard, server, &mut say).await {
            Ok(()) => {
                self.rejoin_after.remove(server);
                self.alert(store, shard, &key, None).await
            }
            Err(OpError::Topology(e)) => Err(OpError::Topology(e)),
            Err(OpError::Refused(why)) if settings.rebuild && why.contains("errant") => {
                self.rejoin_after
                    .insert(server.to_string(), Instant::now() + RETRY_REFUSED_REJOIN);
                self.rebuild(store, ops, shard, server);
                let block = Block {
                    kind: "rebuilding",
                    reason: format!("{server} (former master of {shard}) cannot rejoin ({why}); the coordinator rebuilds it (failover.auto_rebuild)"),
                };
                self.alert(store, shard, &key, Some(block)).await
            }
            Err(e) => {
                let refused = matches!(e, OpError::Refused(_));
                warn!(shard, server, error = %e, "automatic rejoin failed");
                let wait = if refused {
                    RETRY_REFUSED_REJOIN
                } else {
                    RETRY_REJOIN
                };
                self.rejoin_after
                    .insert(server.to_string(), Instant::now() + wait);
                let block = Block {
                    kind: if refused {
                        "rejoin_refused"
                    } else {
                        "rejoin_failed"
                    },
                    reason: format!("{server} (former master of {shard}) cannot rejoin: {e}"),
                };
                self.alert(store, shard, &key, Some(block)).await
            }
        }
    }

    /// Rebuilds `server` in a task of its own ([`super::standby::rebuild`]); the next
    /// rejoin attempts wait for it. When it ends, the rejoin alert is cleared (done) or
    /// says why not.
    fn rebuild(&mut self, store: &ZkStore, ops: &Ops, shard: &str, server: &str) {
        let mut claimed = self.rebuilding.lock().unwrap_or_else(|e| e.into_inner());
        if !claimed.insert(server.to_string()) {
            return;
        }
        drop(claimed);
        let (store, ops) = (store.clone(), ops.clone());
        let (shard, server) = (shard.to_string(), server.to_string());
        let rebuilding = std::sync::Arc::clone(&self.rebuilding);
        warn!(
            shard,
            server, "automatic rebuild of a former master that cannot rejoin"
        );
        tokio::spawn(async move {
            let mut say =
                |line: String| info!(shard = %shard, server = %server, "automatic rebuild: {line}");
            let key = format!("{shard}-rejoin-{server}");
            let outcome =
                super::standby::rebuild(&store, &ops, &shard, &server, None, &mut say).await;
            let alert = match outcome {
                Ok(()) => None,
                Err(e) => {
                    warn!(shard, server, error = %e, "automatic rebuild failed");
                    crate::metrics::failover_blocked(&shard, "rebuild_failed");
                    Some(AlertDoc {
                        schema: SCHEMA,
                        reason: format!("automatic rebuild of {server} (former master of {shard}) failed: {e}; rebuild it with `dbrouter ctl standby rebuild {shard} {server}`"),
                        kind: "rebuild_failed".into(),
                        since_ms: now_ms(),
                    })
                }
            };
            if let Err(e) = store.set_failover_alert(&key, alert.as_ref()).await {
                warn!(error = %e, "automatic rebuild: alert not written");
            }
            rebuilding
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&server);
        });
    }

    /// Writes (or clears) an alert when it changes.
    async fn alert(
        &mut self,
        store: &ZkStore,
        shard: &str,
        key: &str,
        block: Option<Block>,
    ) -> Result<(), OpError> {
        let kind = block.as_ref().map(|b| b.kind);
        if self.alerts.get(key) == Some(&kind) {
            return Ok(());
        }
        let doc = block.map(|b| {
            warn!(shard, alert = b.kind, "{}", b.reason);
            crate::metrics::failover_blocked(shard, b.kind);
            AlertDoc {
                schema: SCHEMA,
                reason: b.reason,
                kind: b.kind.to_string(),
                since_ms: now_ms(),
            }
        });
        store.set_failover_alert(key, doc.as_ref()).await?;
        self.alerts.insert(key.to_string(), kind);
        Ok(())
    }
}

/// Arms (`None`) or disarms (`Some(why)`) automatic failover of `shard`; arming also
/// forgets the last automatic failover, so the anti-flap interval starts afresh.
pub async fn set_armed(
    store: &ZkStore,
    shard: &str,
    disarm: Option<String>,
) -> Result<u64, OpError> {
    let (doc, version, mut s) = shard_of(store, shard).await?;
    match disarm {
        Some(why) => s.auto_failover.disarmed = Some(why),
        None => s.auto_failover = Default::default(),
    }
    publish(store, doc, version, s).await
}

#[cfg(test)]
mod tests;
