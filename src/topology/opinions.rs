//! What each router thinks of each shard's master, and the automatic failover's alerts,
//! in ZooKeeper.
//!
//! Every router's health checker publishes its opinion of a shard's master as the
//! ephemeral node `<root>/health/<shard>/<router-id>` ([`OpinionDoc`]): gone with the
//! router's ZooKeeper session, rewritten while the master is down (so that its
//! modification time, ZooKeeper's clock, says the opinion is current) and when it changes.
//! The coordinator (`failover::auto`) reads them all to decide whether a majority of the
//! live routers has lost the master. When automatic failover will not act on a shard it
//! says why in the persistent node `<root>/failover-alerts/<shard>` ([`AlertDoc`]),
//! removed once the reason is gone; `dbrouter ctl status` shows it.

use serde::{Deserialize, Serialize};
use zookeeper_client as zk;

use super::zk::{zk_err, ZkStore};
use super::{decode, encode, TopologyError, SCHEMA};

/// One router's opinion of one shard's master.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpinionDoc {
    /// Schema version.
    pub schema: u32,
    /// The master the opinion is about (`host:port`; an opinion of a former master does
    /// not count).
    pub master: String,
    /// Its last probe reached it.
    pub reachable: bool,
    /// For how long it has been unreachable without a break, on the router's clock
    /// (0 while reachable).
    pub down_for_ms: u64,
    /// Whether its last successful probe found semi-sync replication on
    /// (`Rpl_semi_sync_master_status`); `None` when this router never reached it.
    pub semi_sync: Option<bool>,
    /// Its `gtid_binlog_pos` at its last successful probe (what it had written then).
    #[serde(default)]
    pub binlog_pos: String,
    /// The last probe's error, for operators.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Why automatic failover does not act on a shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertDoc {
    /// Schema version.
    pub schema: u32,
    /// What is wrong and what to do, in one sentence.
    pub reason: String,
    /// A short machine name of the reason (the metric's `reason` label).
    pub kind: String,
    /// Since when (milliseconds since the Unix epoch).
    pub since_ms: u64,
}

impl super::HasSchema for OpinionDoc {
    fn schema(&self) -> u32 {
        self.schema
    }
}

impl super::HasSchema for AlertDoc {
    fn schema(&self) -> u32 {
        self.schema
    }
}

impl OpinionDoc {
    /// An opinion at the current schema.
    pub fn new(master: String, reachable: bool, down_for_ms: u64) -> Self {
        OpinionDoc {
            schema: SCHEMA,
            master,
            reachable,
            down_for_ms,
            semi_sync: None,
            binlog_pos: String::new(),
            error: None,
        }
    }
}

/// An opinion as read back, with who wrote it and when (ZooKeeper's modification time,
/// ms since the Unix epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opinion {
    /// The router's id.
    pub router: String,
    /// What it thinks.
    pub doc: OpinionDoc,
    /// When it last wrote it.
    pub mtime: i64,
}

impl ZkStore {
    /// Writes this router's opinion of `shard`'s master (ephemeral; replaces a node an
    /// earlier session of ours left behind).
    pub async fn write_opinion(
        &self,
        shard: &str,
        router: &str,
        doc: &OpinionDoc,
    ) -> Result<(), TopologyError> {
        let path = self.path(&format!("health/{shard}/{router}"));
        let data = encode(doc);
        match self.client().set_data(&path, &data, None).await {
            Ok(stat) if stat.ephemeral_owner == self.client().session_id().0 => return Ok(()),
            Ok(_) => {
                // Left by an earlier session of ours: it would vanish when that expires.
                let _ = self.client().delete(&path, None).await;
            }
            Err(zk::Error::NoNode) => self.ensure(&format!("health/{shard}")).await?,
            Err(e) => return Err(zk_err(e)),
        }
        let ephemeral = zk::CreateMode::Ephemeral.with_acls(self.acls());
        match self.client().create(&path, &data, &ephemeral).await {
            Ok(_) => Ok(()),
            Err(zk::Error::NodeExists) => self
                .client()
                .set_data(&path, &data, None)
                .await
                .map(drop)
                .map_err(zk_err),
            Err(e) => Err(zk_err(e)),
        }
    }

    /// Every router's opinion of `shard`'s master.
    pub async fn opinions(&self, shard: &str) -> Result<Vec<Opinion>, TopologyError> {
        let dir = format!("health/{shard}");
        let names = match self.client().list_children(&self.path(&dir)).await {
            Ok(names) => names,
            Err(zk::Error::NoNode) => return Ok(Vec::new()),
            Err(e) => return Err(zk_err(e)),
        };
        let mut out = Vec::with_capacity(names.len());
        for router in names {
            match self
                .client()
                .get_data(&self.path(&format!("{dir}/{router}")))
                .await
            {
                Ok((data, stat)) => {
                    let what = format!("opinion of {router} on {shard}");
                    out.push(Opinion {
                        doc: decode(&what, &data)?,
                        router,
                        mtime: stat.mtime,
                    })
                }
                Err(zk::Error::NoNode) => {}
                Err(e) => return Err(zk_err(e)),
            }
        }
        Ok(out)
    }

    /// Sets (`Some`) or clears (`None`) the automatic failover alert of `shard`. An alert
    /// of the same kind keeps its `since_ms`.
    pub async fn set_failover_alert(
        &self,
        shard: &str,
        alert: Option<&AlertDoc>,
    ) -> Result<(), TopologyError> {
        let path = self.path(&format!("failover-alerts/{shard}"));
        let Some(alert) = alert else {
            return match self.client().delete(&path, None).await {
                Ok(()) | Err(zk::Error::NoNode) => Ok(()),
                Err(e) => Err(zk_err(e)),
            };
        };
        match self.failover_alert(shard).await? {
            Some(old) if old.kind == alert.kind && old.reason == alert.reason => Ok(()),
            Some(old) => {
                let mut alert = alert.clone();
                if old.kind == alert.kind {
                    alert.since_ms = old.since_ms;
                }
                self.client()
                    .set_data(&path, &encode(&alert), None)
                    .await
                    .map(drop)
                    .map_err(zk_err)
            }
            None => {
                self.ensure("failover-alerts").await?;
                let persistent = zk::CreateMode::Persistent.with_acls(self.acls());
                match self
                    .client()
                    .create(&path, &encode(alert), &persistent)
                    .await
                {
                    Ok(_) | Err(zk::Error::NodeExists) => Ok(()),
                    Err(e) => Err(zk_err(e)),
                }
            }
        }
    }

    /// The automatic failover alert of `shard`, if any.
    pub async fn failover_alert(&self, shard: &str) -> Result<Option<AlertDoc>, TopologyError> {
        let path = self.path(&format!("failover-alerts/{shard}"));
        match self.client().get_data(&path).await {
            Ok((data, _)) => Ok(Some(decode(&format!("failover alert of {shard}"), &data)?)),
            Err(zk::Error::NoNode) => Ok(None),
            Err(e) => Err(zk_err(e)),
        }
    }
}
