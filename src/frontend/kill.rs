//! Carrying out `KILL [CONNECTION | QUERY] <session id>` — for a session of this router,
//! whether the KILL arrived here or at another router (`topology::kills` passes those on).
//!
//! The target's running statement is killed on its backend thread by a connection of the
//! target's own account (from the pool, keyed by account), which MariaDB allows without
//! any extra privilege — so its client gets MariaDB's own answer (1317 for KILL QUERY,
//! 1927 for KILL CONNECTION). KILL CONNECTION also tells the session to end. Only the
//! killer's own account's sessions are found (MariaDB's rule for accounts without
//! CONNECTION ADMIN); any other id is "unknown" (ERR 1094).

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use crate::backend::exchange::exchange;
use crate::backend::Pools;
use crate::protocol::response::ResponseKind;
use crate::router::RoutingTable;
use crate::topology::kills::{KillOutcome, KillRequest};
use crate::topology::zk::{ZkStore, ZkTarget};

use super::sessions::{router_of, SessionRegistry, MAX_ROUTER_NUMBER};

/// What carrying out a KILL needs.
#[derive(Clone)]
pub struct Killer {
    /// This router's sessions.
    pub sessions: Arc<SessionRegistry>,
    /// Where each shard's master is.
    pub routing: Arc<ArcSwap<RoutingTable>>,
    /// Backend connections, keyed by account.
    pub pools: Arc<Pools>,
    /// Bound on the backend KILL statement.
    pub timeout: Duration,
}

impl Killer {
    /// Kills session `id` of `account` (its statement only when `query_only`).
    pub async fn kill(&self, id: u64, query_only: bool, account: &str) -> KillOutcome {
        let Some(target) = self.sessions.get(id).filter(|t| t.account() == account) else {
            return KillOutcome::Unknown;
        };
        if !query_only {
            target.kill();
        }
        let running = target.running();
        let table = self.routing.load_full();
        let master = running.and_then(|(shard, _)| table.shard(shard).map(|s| s.master.clone()));
        if let (Some((_, thread)), Some(addr), Some(login)) = (running, master, target.login()) {
            let (key, opts) = login.pool_login(&addr);
            match self.pools.checkout(key, &opts, 0).await {
                Ok(mut conn) => {
                    let verb = if query_only { "QUERY" } else { "CONNECTION" };
                    let statement = format!("\x03KILL {verb} {thread}");
                    let format = conn.conn.result_format();
                    // 1094 when the statement (and its thread's command) ended meanwhile.
                    let done = exchange(
                        &mut conn.conn.io,
                        statement.as_bytes(),
                        ResponseKind::Query,
                        format,
                        self.timeout,
                    )
                    .await;
                    self.pools.checkin(conn, done.is_ok());
                }
                Err(e) => {
                    warn!(error = %e, session = id, "cannot reach the backend to kill the session's statement")
                }
            }
        }
        KillOutcome::Done
    }
}

/// A KILL for another router's session, on its way to that router.
struct Outgoing {
    router: u32,
    request: KillRequest,
    reply: oneshot::Sender<Result<KillOutcome, String>>,
}

/// KILLs between routers: this router's number, and the task that passes KILLs on and
/// carries out those others pass here.
pub struct RemoteKills {
    sender: mpsc::Sender<Outgoing>,
}

/// How long a KILL waits for the owning router's answer.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);

/// How often the requests for this router are looked for.
const POLL: Duration = Duration::from_millis(100);

impl RemoteKills {
    /// Claims this router's number in ZooKeeper (before any session gets an id), sets it
    /// in the registry, and starts the task.
    pub async fn start(
        target: ZkTarget,
        timeouts: (Duration, Duration),
        router_id: String,
        killer: Killer,
    ) -> Result<Arc<Self>, crate::topology::TopologyError> {
        let store = ZkStore::connect(&target, timeouts.0, timeouts.1).await?;
        let number = store
            .claim_router_number(&router_id, None, MAX_ROUTER_NUMBER)
            .await?;
        killer.sessions.set_router_number(number);
        info!(
            number,
            "router number claimed (the top bits of its session ids)"
        );
        let (sender, receiver) = mpsc::channel(256);
        tokio::spawn(serve(
            store, target, timeouts, router_id, number, killer, receiver,
        ));
        Ok(Arc::new(RemoteKills { sender }))
    }

    /// Passes a KILL of session `id` (another router's) to its router and waits for its
    /// answer.
    pub async fn request(
        &self,
        id: u64,
        query_only: bool,
        account: &str,
    ) -> Result<KillOutcome, String> {
        let Some(router) = router_of(id) else {
            return Ok(KillOutcome::Unknown);
        };
        let (reply, answer) = oneshot::channel();
        let out = Outgoing {
            router,
            request: KillRequest {
                id,
                query_only,
                account: account.to_string(),
                outcome: None,
            },
            reply,
        };
        self.sender
            .send(out)
            .await
            .map_err(|_| "the router's KILL service stopped".to_string())?;
        answer
            .await
            .map_err(|_| "the router's KILL service stopped".to_string())?
    }
}

/// The task: sends KILLs to other routers (each waits in its own task) and carries out
/// the ones sent here; reconnects and re-claims the same number when the session ends.
async fn serve(
    mut store: ZkStore,
    target: ZkTarget,
    timeouts: (Duration, Duration),
    router_id: String,
    number: u32,
    killer: Killer,
    mut outgoing: mpsc::Receiver<Outgoing>,
) {
    let mut poll = tokio::time::interval(POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            out = outgoing.recv() => {
                let Some(out) = out else { return };
                let store = store.clone();
                tokio::spawn(async move {
                    let result = send(&store, out.router, &out.request).await;
                    let _ = out.reply.send(result);
                });
            }
            _ = poll.tick() => {
                match store.pending_kills(number).await {
                    Ok(requests) => {
                        for (path, mut request) in requests {
                            let outcome = killer.kill(request.id, request.query_only, &request.account).await;
                            debug!(id = request.id, ?outcome, "KILL from another router");
                            request.outcome = Some(outcome);
                            if let Err(e) = store.answer_kill(&path, &request).await {
                                warn!(error = %e, "cannot answer a KILL from another router");
                            }
                        }
                    }
                    Err(e) => {
                        warn!(error = %e, "cannot read KILLs for this router; reconnecting");
                        match reconnect(&target, timeouts, &router_id, number).await {
                            Some(fresh) => store = fresh,
                            None => tokio::time::sleep(Duration::from_secs(1)).await,
                        }
                    }
                }
            }
        }
    }
}

/// A new session that holds this router's number again.
async fn reconnect(
    target: &ZkTarget,
    timeouts: (Duration, Duration),
    router_id: &str,
    number: u32,
) -> Option<ZkStore> {
    let store = ZkStore::connect(target, timeouts.0, timeouts.1)
        .await
        .ok()?;
    if store.router_number_held(number).await.ok()? {
        // Still ours (the old session lives on) or taken by another router meanwhile.
        return Some(store);
    }
    match store.claim_router_number(router_id, Some(number), 0).await {
        Ok(n) if n == number => Some(store),
        _ => {
            warn!(number, "this router's number was taken while its ZooKeeper session was gone: KILLs from other routers may miss its sessions");
            Some(store)
        }
    }
}

/// Sends one KILL and waits for the owner's answer.
async fn send(store: &ZkStore, router: u32, request: &KillRequest) -> Result<KillOutcome, String> {
    if !store
        .router_number_held(router)
        .await
        .map_err(|e| e.to_string())?
    {
        // No router has that number: no such session.
        return Ok(KillOutcome::Unknown);
    }
    let path = store
        .send_kill(router, request)
        .await
        .map_err(|e| e.to_string())?;
    let deadline = tokio::time::Instant::now() + ANSWER_WITHIN;
    let outcome = loop {
        match store.kill_outcome(&path).await {
            Ok(Some(outcome)) => break Ok(outcome),
            Ok(None) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            Ok(None) => {
                break Err(format!(
                    "router {router}, which holds that session, did not answer within {ANSWER_WITHIN:?}"
                ))
            }
            Err(e) => break Err(e.to_string()),
        }
    };
    let _ = store.delete_kill(&path).await;
    outcome
}
