//! Router numbers and `KILL`s between routers, in ZooKeeper.
//!
//! Session ids carry the number of the router that owns the session
//! (`frontend::sessions`), so that a `KILL` reaching another router (clients behind a
//! load balancer land on any) can be passed on. A router claims its number as the
//! ephemeral node `<root>/router-numbers/<n>` (the lowest free one from 1; its data is the
//! router's id) for as long as its ZooKeeper session lives. A `KILL` for another router's
//! session is a persistent sequential node under `<root>/kills/<n>/` holding a
//! [`KillRequest`]; the owner reads its requests, carries them out and writes the outcome
//! into the node; the requester reads it and deletes the node.

use serde::{Deserialize, Serialize};
use zookeeper_client as zk;

use super::zk::{zk_err, ZkStore};
use super::TopologyError;

/// A `KILL` passed to the router that owns the session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KillRequest {
    /// The session id.
    pub id: u64,
    /// `KILL QUERY` (else `KILL CONNECTION`).
    pub query_only: bool,
    /// The requesting client's account: only its own sessions may be killed.
    pub account: String,
    /// The owner's answer, once given.
    #[serde(default)]
    pub outcome: Option<KillOutcome>,
}

/// What the owning router did with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KillOutcome {
    /// Killed (statement or session).
    Done,
    /// No session of that account with that id.
    Unknown,
}

impl ZkStore {
    pub(super) async fn ensure(&self, rel: &str) -> Result<(), TopologyError> {
        let persistent = zk::CreateMode::Persistent.with_acls(self.acls());
        let mut path = String::new();
        for part in rel.split('/') {
            if !path.is_empty() {
                path.push('/');
            }
            path.push_str(part);
            match self
                .client()
                .create(&self.path(&path), b"", &persistent)
                .await
            {
                Ok(_) | Err(zk::Error::NodeExists) => {}
                Err(e) => return Err(zk_err(e)),
            }
        }
        Ok(())
    }

    /// Claims a router number for this session: `preferred` if it is free (a router
    /// re-claiming its number after its session expired), else the lowest free one from
    /// 1 up to `max`.
    pub async fn claim_router_number(
        &self,
        router_id: &str,
        preferred: Option<u32>,
        max: u32,
    ) -> Result<u32, TopologyError> {
        self.ensure("router-numbers").await?;
        let ephemeral = zk::CreateMode::Ephemeral.with_acls(self.acls());
        for n in preferred.into_iter().chain(1..=max) {
            let path = self.path(&format!("router-numbers/{n}"));
            match self
                .client()
                .create(&path, router_id.as_bytes(), &ephemeral)
                .await
            {
                Ok(_) => return Ok(n),
                Err(zk::Error::NodeExists) => continue,
                Err(e) => return Err(zk_err(e)),
            }
        }
        Err(TopologyError::Zk(format!(
            "all {max} router numbers are taken (router-numbers/)"
        )))
    }

    /// Whether a router holds number `n`.
    pub async fn router_number_held(&self, n: u32) -> Result<bool, TopologyError> {
        match self
            .client()
            .check_stat(&self.path(&format!("router-numbers/{n}")))
            .await
        {
            Ok(stat) => Ok(stat.is_some()),
            Err(e) => Err(zk_err(e)),
        }
    }

    /// Queues a kill request for router `n`; returns its node's path.
    pub async fn send_kill(&self, n: u32, request: &KillRequest) -> Result<String, TopologyError> {
        self.ensure(&format!("kills/{n}")).await?;
        let data = serde_json::to_vec(request).map_err(zk_err)?;
        let sequential = zk::CreateMode::PersistentSequential.with_acls(self.acls());
        let (_, sequence) = self
            .client()
            .create(&self.path(&format!("kills/{n}/kill-")), &data, &sequential)
            .await
            .map_err(zk_err)?;
        Ok(self.path(&format!("kills/{n}/kill-{sequence}")))
    }

    /// The owner's answer to a request, once written (None meanwhile, or if it is gone).
    pub async fn kill_outcome(&self, path: &str) -> Result<Option<KillOutcome>, TopologyError> {
        match self.client().get_data(path).await {
            Ok((data, _)) => Ok(serde_json::from_slice::<KillRequest>(&data)
                .ok()
                .and_then(|r| r.outcome)),
            Err(zk::Error::NoNode) => Ok(None),
            Err(e) => Err(zk_err(e)),
        }
    }

    /// Removes a request node (answered, or given up on).
    pub async fn delete_kill(&self, path: &str) -> Result<(), TopologyError> {
        match self.client().delete(path, None).await {
            Ok(()) | Err(zk::Error::NoNode) => Ok(()),
            Err(e) => Err(zk_err(e)),
        }
    }

    /// Router `n`'s unanswered requests, oldest first (unreadable ones are answered
    /// `Unknown` so that their senders stop waiting).
    pub async fn pending_kills(&self, n: u32) -> Result<Vec<(String, KillRequest)>, TopologyError> {
        let dir = self.path(&format!("kills/{n}"));
        let mut names = match self.client().list_children(&dir).await {
            Ok(names) => names,
            Err(zk::Error::NoNode) => return Ok(Vec::new()),
            Err(e) => return Err(zk_err(e)),
        };
        names.sort();
        let mut out = Vec::new();
        for name in names {
            let path = format!("{dir}/{name}");
            let data = match self.client().get_data(&path).await {
                Ok((data, _)) => data,
                Err(zk::Error::NoNode) => continue,
                Err(e) => return Err(zk_err(e)),
            };
            match serde_json::from_slice::<KillRequest>(&data) {
                Ok(r) if r.outcome.is_none() => out.push((path, r)),
                Ok(_) => {}
                Err(_) => {
                    let unknown = KillRequest {
                        id: 0,
                        query_only: true,
                        account: String::new(),
                        outcome: Some(KillOutcome::Unknown),
                    };
                    self.answer_kill(&path, &unknown).await?;
                }
            }
        }
        Ok(out)
    }

    /// Writes the outcome into a request node.
    pub async fn answer_kill(
        &self,
        path: &str,
        answered: &KillRequest,
    ) -> Result<(), TopologyError> {
        let data = serde_json::to_vec(answered).map_err(zk_err)?;
        match self.client().set_data(path, &data, None).await {
            Ok(_) | Err(zk::Error::NoNode) => Ok(()),
            Err(e) => Err(zk_err(e)),
        }
    }
}
