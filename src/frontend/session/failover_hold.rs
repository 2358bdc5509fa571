//! Holding statements (and logins) while a shard's master is lost and an automatic
//! failover is expected (`[failover] auto`): instead of an error, the statement waits for
//! the topology to name a new master — or for the old one to answer again — within
//! `failover.buffer_max_ms` and `failover.buffer_max_statements`, and then runs there.
//! Statements of a transaction that was open on the lost master are not held (the
//! transaction is gone with it): they get the retryable error at once.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::{sleep, Instant};
use tracing::debug;

use super::SessionContext;
use crate::frontend::backends::SessionBackends;
use crate::frontend::failure::Failure;
use crate::router::ring::ShardId;
use crate::router::RoutingTable;

/// How often the lost master is tried again meanwhile.
const RETRY_CONNECT: Duration = Duration::from_millis(250);

/// How often the routing snapshot is looked at.
const POLL: Duration = Duration::from_millis(2);

/// Whether a checkout that failed with `failure` is held for an automatic failover: the
/// master could not be reached, `[failover] auto` is on, and the shard has a standby and
/// is armed. (The caller checks that no transaction of the session is open there.)
pub(super) fn awaits_failover(
    ctx: &SessionContext,
    table: &RoutingTable,
    shard: ShardId,
    failure: &Failure,
) -> bool {
    ctx.config.load().failover.auto
        && failure.master_unreachable()
        && table
            .shard(shard)
            .is_some_and(|s| s.auto_failover_armed && !s.standbys.is_empty())
}

/// Holds until the topology names another master for `shard` (or marks it switching), or
/// the lost one answers again; then takes the connection (unless switching) and returns
/// the snapshot to go on with. Past the bounds, `failure` (retryable) is the answer.
pub(super) async fn hold_for_failover(
    ctx: &SessionContext,
    backends: &mut SessionBackends,
    table: &RoutingTable,
    shard: ShardId,
    failure: Failure,
) -> Result<Arc<RoutingTable>, Failure> {
    let Some(lost) = table.shard(shard).map(|s| s.master.clone()) else {
        return Err(failure);
    };
    let config = ctx.config.load_full();
    let limits = &config.failover;
    if ctx.held.fetch_add(1, Ordering::AcqRel) >= limits.buffer_max_statements {
        ctx.held.fetch_sub(1, Ordering::AcqRel);
        return Err(failure);
    }
    let deadline = Instant::now() + Duration::from_millis(limits.buffer_max_ms);
    let mut next_try = Instant::now() + RETRY_CONNECT;
    let outcome = loop {
        let now = ctx.routing.load_full();
        match now.shard(shard) {
            None => break Err(failure),
            Some(s) if s.switching => break Ok(now),
            Some(s) if s.master != lost => {
                debug!(shard = %s.name, lost = %lost, master = %s.master, "the lost master was replaced; going on with the new one");
                break backends.connection(&now, shard).await.map(|_| now);
            }
            Some(_) => {}
        }
        if Instant::now() >= deadline {
            break Err(failure);
        }
        if Instant::now() >= next_try {
            // The old master may be back (a restart faster than a failover). A connect to
            // a master cut off by the network can take the connect timeout: it is given
            // up as soon as the topology names another master.
            let replaced = async {
                loop {
                    let t = ctx.routing.load();
                    if t.shard(shard)
                        .is_none_or(|s| s.switching || s.master != lost)
                    {
                        return;
                    }
                    sleep(POLL).await;
                }
            };
            tokio::select! {
                connected = backends.connection(&now, shard) => {
                    if connected.is_ok() {
                        break Ok(now);
                    }
                }
                () = replaced => continue,
                () = tokio::time::sleep_until(deadline) => break Err(failure),
            }
            ctx.health.suspect();
            next_try = Instant::now() + RETRY_CONNECT;
        }
        sleep(POLL).await;
    };
    ctx.held.fetch_sub(1, Ordering::AcqRel);
    outcome
}

/// The connection phase's first backend connection: on the global shard; when its master
/// cannot be reached, on the first other shard whose master can (any master checks the
/// login and the database as well), else held like a statement while a failover of the
/// global shard is expected. Returns the snapshot and the shard it was taken on.
pub(super) async fn login_connection(
    ctx: &SessionContext,
    backends: &mut SessionBackends,
    table: Arc<RoutingTable>,
    global: ShardId,
) -> Result<(Arc<RoutingTable>, ShardId), Failure> {
    let Err(failure) = backends.connection(&table, global).await else {
        return Ok((table, global));
    };
    if !failure.master_unreachable() {
        return Err(failure);
    }
    ctx.health.suspect();
    for (i, _) in table.shards.iter().enumerate() {
        let Ok(other) = ShardId::try_from(i) else {
            break;
        };
        if other != global && backends.connection(&table, other).await.is_ok() {
            debug!(global = %table.shard_name(global), used = %table.shard_name(other), "the global shard's master is unreachable; the login used another shard");
            return Ok((table, other));
        }
    }
    if !awaits_failover(ctx, &table, global, &failure) {
        return Err(failure);
    }
    let fresh = hold_for_failover(ctx, backends, &table, global, failure).await?;
    backends.connection(&fresh, global).await?;
    Ok((fresh, global))
}
