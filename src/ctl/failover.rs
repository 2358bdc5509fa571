//! `dbrouter ctl promote | failover | rejoin | status`: master changes and the per-shard
//! health table, printed step by step.

use std::path::Path;
use std::time::Duration;

use crate::config::Config;
use crate::failover::{self, Health, Ops};
use crate::topology::zk::ZkTarget;
use crate::topology::{MoveState, ShardState};

/// The operation settings from a config file (`[admin]`, `[failover]`, `[backend]`).
pub fn ops(config_path: &Path) -> Result<Ops, String> {
    let config = Config::load(config_path).map_err(|e| e.to_string())?;
    let admin = config.admin.as_ref().ok_or_else(|| {
        format!(
            "{} has no [admin] account: the operations need one",
            config_path.display()
        )
    })?;
    Ok(Ops {
        admin_user: admin.user.clone(),
        admin_password: admin.password()?,
        repl_user: config.failover.repl_user.clone(),
        repl_password: config.failover.repl_password.clone(),
        service_user: config.backend.user.clone(),
        drain: Duration::from_millis(config.failover.drain_ms),
        catchup: Duration::from_millis(config.failover.catchup_timeout_ms),
        timeout: config.timeouts.connect().max(Duration::from_secs(3)),
        tls: config.backend.tls.clone(),
    })
}

use super::store;

/// Prints each line of an operation's progress (and logs it).
pub(super) fn printer() -> impl FnMut(String) {
    |line: String| {
        println!("{line}");
        tracing::info!("{line}");
    }
}

/// `promote <shard> [--to <standby>]`.
pub async fn promote(
    target: &ZkTarget,
    config: &Path,
    shard: &str,
    to: Option<&str>,
) -> Result<String, String> {
    let ops = ops(config)?;
    let store = store(target).await?;
    failover::promote(&store, &ops, shard, to, &mut printer())
        .await
        .map_err(|e| e.to_string())?;
    Ok(format!("switchover of {shard} done\n"))
}

/// `failover <shard> [--force]`.
pub async fn failover(
    target: &ZkTarget,
    config: &Path,
    shard: &str,
    force: bool,
) -> Result<String, String> {
    let ops = ops(config)?;
    let store = store(target).await?;
    failover::failover(&store, &ops, shard, force, &mut printer())
        .await
        .map_err(|e| e.to_string())?;
    Ok(format!("failover of {shard} done\n"))
}

/// `rejoin <shard> <server>`.
pub async fn rejoin(
    target: &ZkTarget,
    config: &Path,
    shard: &str,
    server: &str,
) -> Result<String, String> {
    let ops = ops(config)?;
    let store = store(target).await?;
    failover::rejoin(&store, &ops, shard, server, &mut printer())
        .await
        .map_err(|e| e.to_string())?;
    Ok(format!("{server} rejoined {shard}\n"))
}

fn health_line(role: &str, h: &Health) -> String {
    let state = if !h.reachable {
        "DOWN".to_string()
    } else if role == "master" && h.read_only {
        "FENCED (read_only)".to_string()
    } else if role == "master" {
        "ok".to_string()
    } else if role == "needs-rejoin" {
        if h.read_only {
            "fenced, needs rejoin".to_string()
        } else {
            "WRITABLE, needs rejoin".to_string()
        }
    } else if h.io_running && h.sql_running {
        "replicating".to_string()
    } else {
        format!(
            "NOT REPLICATING (IO={}, SQL={})",
            h.io_running, h.sql_running
        )
    };
    let semi = if role == "master" {
        h.semi_sync_master
    } else {
        h.semi_sync_slave
    };
    format!(
        "  {:<13} {:<22} {:<26} lag {:<6} semi-sync {:<3} rtt {:>6}µs gtid {}{}\n",
        role,
        h.addr,
        state,
        h.lag_seconds.map_or("-".into(), |l| format!("{l}s")),
        if semi { "on" } else { "off" },
        h.rtt_us,
        h.gtid_current_pos,
        h.last_error
            .as_ref()
            .map_or(String::new(), |e| format!("  error: {e}"))
    )
}

/// `status`: per shard, the master, standbys and former masters with their health, the
/// epoch and state, and the routers' view.
pub async fn status(target: &ZkTarget, config: &Path) -> Result<String, String> {
    let ops = ops(config)?;
    let store = store(target).await?;
    let snapshot = store.read_all().await.map_err(|e| e.to_string())?;
    let mut out = format!("topology {target} version {}\n", snapshot.version);
    for s in &snapshot.topology.shards {
        let state = match s.state {
            ShardState::Serving => "serving",
            ShardState::Switching => "SWITCHING",
        };
        out.push_str(&format!(
            "shard {} (epoch {}, weight {}, {state})\n",
            s.name, s.epoch, s.weight
        ));
        let roles = std::iter::once(("master", &s.master))
            .chain(s.standbys.iter().map(|x| ("standby", x)))
            .chain(s.rejoin.iter().map(|x| ("needs-rejoin", x)));
        for (role, addr) in roles {
            let h = ops.probe(addr).await;
            out.push_str(&health_line(role, &h));
        }
    }
    let routers = store.routers().await.map_err(|e| e.to_string())?;
    out.push_str(&format!("routers ({}):\n", routers.len()));
    for r in routers {
        let lag = if r.applied_version == snapshot.version {
            "current".to_string()
        } else {
            format!(
                "behind by {}",
                snapshot.version.saturating_sub(r.applied_version)
            )
        };
        out.push_str(&format!(
            "  {:<40} {:<22} version {} ({lag})\n",
            r.id, r.address, r.applied_version
        ));
    }
    let moves = store.moves().await.map_err(|e| e.to_string())?;
    let active: Vec<_> = moves
        .into_iter()
        .filter(|m| !matches!(m.state, MoveState::Done | MoveState::RolledBack))
        .collect();
    if !snapshot.topology.holds.is_empty() || !active.is_empty() {
        out.push_str(&format!(
            "moves in progress: {}; users held: {}\n",
            active.len(),
            snapshot.topology.holds.len()
        ));
        out.push_str(&crate::moves::describe(&active));
    }
    let jobs = store.jobs().await.map_err(|e| e.to_string())?;
    if !jobs.is_empty() {
        out.push_str(&format!("jobs ({}):\n", jobs.len()));
        out.push_str(&crate::topology::jobs::describe_jobs(&jobs));
    }
    Ok(out)
}
