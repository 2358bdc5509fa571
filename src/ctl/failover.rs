//! `dbrouter ctl promote | failover | rejoin | status`: master changes and the per-shard
//! health table, printed step by step.

use super::{CtlError, Report};
use std::path::Path;

use crate::config::Config;
use crate::failover::{self, Health, Ops};
use crate::topology::zk::ZkTarget;
use crate::topology::{MoveState, ShardState};

/// The operation settings from a config file (`[admin]`, `[failover]`, `[backend]`).
pub fn ops(config_path: &Path) -> Result<Ops, String> {
    let config = Config::load(config_path).map_err(CtlError::from)?;
    Ops::from_config(&config).map_err(|e| format!("{}: {e}", config_path.display()))
}

use super::store;

/// Prints each line of an operation's progress (and logs it).
pub(super) fn printer() -> impl FnMut(String) {
    |line: String| {
        if super::output::json() {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
        tracing::info!("{line}");
    }
}

/// `promote <shard> [--to <standby>]`.
pub async fn promote(
    target: &ZkTarget,
    config: &Path,
    shard: &str,
    to: Option<&str>,
) -> Result<String, CtlError> {
    let ops = ops(config)?;
    let store = store(target).await?;
    failover::promote(&store, &ops, shard, to, &mut printer())
        .await
        .map_err(CtlError::from)?;
    Ok(format!("switchover of {shard} done\n"))
}

/// `failover <shard> [--force]`.
pub async fn failover(
    target: &ZkTarget,
    config: &Path,
    shard: &str,
    force: bool,
) -> Result<String, CtlError> {
    let ops = ops(config)?;
    let store = store(target).await?;
    failover::failover(
        &store,
        &ops,
        shard,
        failover::Trigger::Operator { force },
        &mut printer(),
    )
    .await
    .map_err(CtlError::from)?;
    Ok(format!("failover of {shard} done\n"))
}

/// `failover arm <shard>` (`why` = `None`) and `failover disarm <shard> --why …`.
pub async fn arm(target: &ZkTarget, shard: &str, why: Option<String>) -> Result<String, CtlError> {
    let store = store(target).await?;
    let disarm = why.is_some();
    let version = failover::auto::set_armed(&store, shard, why)
        .await
        .map_err(CtlError::from)?;
    Ok(if disarm {
        format!("automatic failover of {shard} disarmed (topology version {version})\n")
    } else {
        format!("automatic failover of {shard} armed (topology version {version})\n")
    })
}

/// The automatic failover lines of a shard in `status`: armed or not, its last
/// automatic failover, the routers that have lost its master, and its alerts.
async fn auto_failover_lines(
    store: &crate::topology::zk::ZkStore,
    s: &crate::topology::ShardDoc,
) -> (String, serde_json::Value) {
    let mut out = String::new();
    let mut lost_json = Vec::new();
    let mut alerts = Vec::new();
    let auto = &s.auto_failover;
    let armed = match &auto.disarmed {
        None => "armed".to_string(),
        Some(why) => format!("DISARMED ({why}; `dbrouter ctl failover arm {}`)", s.name),
    };
    let last = match auto.last_ms {
        0 => String::new(),
        ms => format!(
            ", last automatic failover {} s ago",
            crate::topology::now_ms().saturating_sub(ms) / 1000
        ),
    };
    out.push_str(&format!("  automatic failover: {armed}{last}\n"));
    if let Ok(opinions) = store.opinions(&s.name).await {
        let lost: Vec<String> = opinions
            .iter()
            .filter(|o| o.doc.master == s.master && !o.doc.reachable)
            .map(|o| {
                lost_json.push(serde_json::json!({
                    "router": o.router, "down_for_ms": o.doc.down_for_ms,
                }));
                format!("{} ({} ms)", o.router, o.doc.down_for_ms)
            })
            .collect();
        if !lost.is_empty() {
            out.push_str(&format!(
                "  routers that lost the master: {}\n",
                lost.join(", ")
            ));
        }
    }
    for key in std::iter::once(s.name.clone())
        .chain(s.rejoin.iter().map(|r| format!("{}-rejoin-{r}", s.name)))
    {
        if let Ok(Some(alert)) = store.failover_alert(&key).await {
            out.push_str(&format!("  ALERT ({}): {}\n", alert.kind, alert.reason));
            alerts.push(serde_json::json!({
                "key": key, "kind": alert.kind, "reason": alert.reason,
            }));
        }
    }
    let json = serde_json::json!({
        "armed": auto.disarmed.is_none(),
        "disarmed_why": auto.disarmed,
        "last_ms": auto.last_ms,
        "routers_that_lost_the_master": lost_json,
        "alerts": alerts,
    });
    (out, json)
}

/// `standby add <shard> <server> [--from S [--method M] | --from-snapshot FILE] [--wipe]`.
pub async fn standby_add(
    target: &ZkTarget,
    config: &Path,
    shard: &str,
    server: &str,
    source: failover::standby::CloneSource,
    wipe: bool,
) -> Result<String, CtlError> {
    let ops = ops(config)?;
    let store = store(target).await?;
    failover::standby::add(&store, &ops, shard, server, source, wipe, &mut printer())
        .await
        .map_err(CtlError::from)?;
    Ok(format!("{server} added as a standby of {shard}\n"))
}

/// `standby rebuild <shard> <server> [--method logical|physical]`.
pub async fn standby_rebuild(
    target: &ZkTarget,
    config: &Path,
    shard: &str,
    server: &str,
    method: Option<crate::config::CloneMethod>,
) -> Result<String, CtlError> {
    let ops = ops(config)?;
    let store = store(target).await?;
    failover::standby::rebuild(&store, &ops, shard, server, method, &mut printer())
        .await
        .map_err(CtlError::from)?;
    Ok(format!("{server} rebuilt as a standby of {shard}\n"))
}

/// `standby remove <shard> <server> [--force]`.
pub async fn standby_remove(
    target: &ZkTarget,
    shard: &str,
    server: &str,
    force: bool,
) -> Result<String, CtlError> {
    let store = store(target).await?;
    failover::standby::remove(&store, shard, server, force, &mut printer())
        .await
        .map_err(CtlError::from)?;
    Ok(String::new())
}

/// `snapshot <shard> --to DIR`.
pub async fn snapshot(
    target: &ZkTarget,
    config: &Path,
    shard: &str,
    dir: &Path,
) -> Result<String, CtlError> {
    let ops = ops(config)?;
    let store = store(target).await?;
    let path = failover::standby::snapshot(&store, &ops, shard, dir, &mut printer())
        .await
        .map_err(CtlError::from)?;
    Ok(format!("{}\n", path.display()))
}

/// `rejoin <shard> <server>`.
pub async fn rejoin(
    target: &ZkTarget,
    config: &Path,
    shard: &str,
    server: &str,
) -> Result<String, CtlError> {
    let ops = ops(config)?;
    let store = store(target).await?;
    failover::rejoin(&store, &ops, shard, server, &mut printer())
        .await
        .map_err(CtlError::from)?;
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
/// epoch and state, and the routers' view (JSON: docs/operations.md).
pub async fn status(target: &ZkTarget, config: &Path) -> Result<Report, CtlError> {
    let ops = ops(config)?;
    let store = store(target).await?;
    let snapshot = store.read_all().await.map_err(CtlError::from)?;
    let mut out = format!("topology {target} version {}\n", snapshot.version);
    let mut shards = Vec::new();
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
        let mut servers = Vec::new();
        for (role, addr) in roles {
            let h = ops.probe(addr).await;
            out.push_str(&health_line(role, &h));
            servers.push(serde_json::json!({ "role": role, "health": h }));
        }
        let (lines, auto) = auto_failover_lines(&store, s).await;
        out.push_str(&lines);
        shards.push(serde_json::json!({
            "name": s.name,
            "epoch": s.epoch,
            "weight": s.weight,
            "state": state.to_ascii_lowercase(),
            "servers": servers,
            "automatic_failover": auto,
        }));
    }
    let routers = store.routers().await.map_err(CtlError::from)?;
    out.push_str(&format!("routers ({}):\n", routers.len()));
    let routers_json = serde_json::to_value(&routers).unwrap_or_default();
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
    let moves = store.moves().await.map_err(CtlError::from)?;
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
    let jobs = store.jobs().await.map_err(CtlError::from)?;
    if !jobs.is_empty() {
        out.push_str(&format!("jobs ({}):\n", jobs.len()));
        out.push_str(&crate::topology::jobs::describe_jobs(&jobs));
    }
    let result = serde_json::json!({
        "topology": target.to_string(),
        "topology_version": snapshot.version,
        "shards": shards,
        "routers": routers_json,
        "moves_in_progress": active,
        "users_held": snapshot.topology.holds.len(),
        "jobs": jobs,
    });
    Ok(Report::new(out, result))
}
