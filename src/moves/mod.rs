//! Online user moves: one user's rows go from the shard that serves them to another, with
//! a brief pause of that user's statements only. A resumable state machine recorded in
//! ZooKeeper (`<root>/moves/<user>`, a [`MoveDoc`]), each step idempotent, one mover per
//! user at a time (an ephemeral lock, `<root>/locks/move-<user>`):
//!
//! 1. **check** — both shards serving, identical definitions of every sharded table,
//!    no rows of the user on the target (unless `force`, which deletes them);
//! 2. **copy** (`copying`) — the user's rows, table by table, each read in one consistent
//!    snapshot, while the user keeps being served from the source;
//! 3. **hold** (`holding`) — the topology holds the user: every router holds new
//!    statements naming the user (literal keys, hints, the pin, prepared parameters);
//!    the mover waits until every registered router acknowledges it: it serves that
//!    version, the statements routed before it have finished (`router::in_flight`) and
//!    every transaction open through it on the source since before the hold has ended
//!    (`router::open_transactions`);
//! 4. **catch up and verify** — per table, a checksum of the user's rows on both sides;
//!    a table that differs is copied again; then every table must match;
//! 5. **flip** (`flipped`) — one ZooKeeper transaction sets the user's override to the
//!    target, lifts the hold and records the flip: the commit point. Routers release the
//!    held statements to the target;
//! 6. **clean up** (`done`) — the source's rows of the user are deleted.
//!
//! Before the flip the source is authoritative and a failure rolls back (hold lifted,
//! the target's copy deleted); after it the target is, and an interrupted move is finished
//! by the next `user move` of that user. So there is exactly one authoritative copy.

pub mod coordinator;
pub mod data;
pub mod drain;

use std::time::{Duration, Instant};

use mysql_async::Conn;

use crate::config::Config;
use crate::failover::ShardLock;
use crate::router::key_from_text;
use crate::topology::zk::ZkStore;
use crate::topology::{MoveDoc, MoveState, MoveStep, ShardState, TopologyError, SCHEMA};

use data::{
    checksum, columns, connect, copy_rows, definition, delete_rows, sharded_tables, ShardedTable,
};

/// How a move runs.
#[derive(Debug, Clone)]
pub struct MoveSettings {
    /// Delete rows of the user already on the target instead of refusing.
    pub force: bool,
    /// How long routers may take to acknowledge the hold, and open transactions on the
    /// source to end, before the move gives up (the user's statements wait meanwhile, up
    /// to each router's `failover.buffer_max_ms`).
    pub max_hold: Duration,
    /// Test switch: exit the process right after this step (`copy`, `hold`, `catchup`,
    /// `flip`), to check that the next run resumes or rolls back correctly.
    pub crash_after: Option<String>,
    /// Test switch: wait this long after the copy, before the hold (writes made meanwhile
    /// are the catch-up's to find).
    pub pause_after_copy: Option<Duration>,
}

impl Default for MoveSettings {
    fn default() -> Self {
        MoveSettings {
            force: false,
            max_hold: Duration::from_secs(5),
            crash_after: None,
            pause_after_copy: None,
        }
    }
}

/// How long a move waits for another mover's lock (longer than a ctl's ZooKeeper session
/// timeout, so a dead mover's lock has expired by then).
const LOCK_WAIT: Duration = Duration::from_secs(12);

pub use crate::topology::now_ms;

fn zk(e: TopologyError) -> String {
    e.to_string()
}

/// A move in progress: its record, the record's znode version, and what it prints.
struct Mover<'a> {
    store: &'a ZkStore,
    config: &'a Config,
    doc: MoveDoc,
    version: i32,
    say: &'a mut (dyn FnMut(String) + Send + Sync),
    step_started: Instant,
    settings: &'a MoveSettings,
}

impl Mover<'_> {
    /// Records a step (and a new state, if given) in ZooKeeper and prints it.
    async fn record(&mut self, step: &str, state: Option<MoveState>) -> Result<(), String> {
        let took_ms = self.step_started.elapsed().as_millis() as u64;
        self.doc.steps.push(MoveStep {
            step: step.to_string(),
            at_ms: now_ms(),
            took_ms,
        });
        if let Some(state) = state {
            self.doc.state = state;
        }
        self.version = self
            .store
            .write_move(&self.doc, Some(self.version))
            .await
            .map_err(zk)?;
        (self.say)(format!("{step} ({took_ms} ms)"));
        self.step_started = Instant::now();
        if self.settings.crash_after.as_deref() == Some(step_name(step)) {
            (self.say)(format!("crash_after={}: exiting as asked", step_name(step)));
            std::process::exit(70);
        }
        Ok(())
    }

    /// Source and target masters, from the topology as it is now.
    async fn masters(&self) -> Result<(String, String), String> {
        let (topology, _) = self.store.read_topology().await.map_err(zk)?;
        let master = |name: &str| {
            topology
                .shards
                .iter()
                .find(|s| s.name == name)
                .map(|s| s.master.clone())
                .ok_or_else(|| format!("shard {name} is gone from the topology"))
        };
        Ok((master(&self.doc.source)?, master(&self.doc.target)?))
    }

    /// Rolls back a move that did not flip: the hold lifted, the target's copy deleted,
    /// the record marked `rolled_back` with the reason.
    async fn roll_back(&mut self, reason: String) -> Result<(), String> {
        // A flip whose answer was lost (a ZooKeeper connection that broke after the
        // commit) made the target authoritative: never delete its copy then.
        if let Some((recorded, version)) = self.store.read_move(&self.doc.user).await.map_err(zk)? {
            if matches!(recorded.state, MoveState::Flipped | MoveState::Done) {
                self.doc = recorded;
                self.version = version;
                return Err(format!(
                    "{reason}; but the flip had happened: the target is authoritative — run the move again to finish the clean-up"
                ));
            }
        }
        (self.say)(format!("rolling back: {reason}"));
        lift_hold(self.store, &self.doc.user).await?;
        let (_, target) = self.masters().await?;
        let mut conn = connect(self.config, &target).await?;
        let user = self.doc.user.as_bytes().to_vec();
        for t in sharded_tables(&mut conn, &target, self.config).await? {
            delete_rows(&mut conn, &target, &t, &user).await?;
        }
        let _ = conn.disconnect().await;
        self.doc.error = Some(reason);
        self.record("rolled back", Some(MoveState::RolledBack))
            .await
    }
}

/// The short name of a step for `crash_after`.
fn step_name(step: &str) -> &str {
    step.split(|c: char| !c.is_ascii_alphanumeric())
        .next()
        .unwrap_or(step)
}

/// The ids of the routers registered in ZooKeeper now.
async fn router_ids(store: &ZkStore) -> Result<Vec<String>, String> {
    Ok(store
        .routers()
        .await
        .map_err(zk)?
        .into_iter()
        .map(|r| r.id)
        .collect())
}

/// Routers gone from ZooKeeper (a lease, no registration) that may still serve from
/// their last topology — until their last lease renewal plus `heartbeat_ms` plus
/// `stale_serving_ms` (plus a margin for clock differences) — with how long that is.
/// Routers in `acked` applied the hold: cut off or not, they hold the user. Leases of
/// routers long gone are deleted on the way.
async fn routers_still_serving_blind(
    store: &ZkStore,
    acked: &[String],
) -> Result<Vec<(String, Duration)>, String> {
    const MARGIN_MS: i64 = 2_000;
    let registered = router_ids(store).await?;
    let now = now_ms() as i64;
    let mut out = Vec::new();
    for (lease, renewed) in store.leases().await.map_err(zk)? {
        if registered.contains(&lease.id) || acked.contains(&lease.id) {
            continue;
        }
        if lease.stale_serving_ms == 0 {
            return Err(format!(
                "router {} is gone from ZooKeeper and serves its last topology forever (topology.stale_serving_ms = 0): \
                 once it is stopped, `dbrouter ctl routers forget {}`",
                lease.id, lease.id
            ));
        }
        let until = renewed
            + i64::try_from(lease.heartbeat_ms + lease.stale_serving_ms).unwrap_or(i64::MAX / 2)
            + MARGIN_MS;
        if now < until {
            out.push((lease.id, Duration::from_millis((until - now) as u64)));
        } else if now > until + 3_600_000 {
            let _ = store.delete_lease(&lease.id).await;
        }
    }
    Ok(out)
}

/// Removes the user from the topology's holds (one compare-and-set; nothing if absent).
async fn lift_hold(store: &ZkStore, user: &str) -> Result<(), String> {
    for _ in 0..10 {
        let (mut topology, expected) = store.read_topology().await.map_err(zk)?;
        if topology.holds.remove(user).is_none() {
            return Ok(());
        }
        match store.write_topology(&topology, expected).await {
            Ok(_) => return Ok(()),
            Err(TopologyError::Conflict) => continue,
            Err(e) => return Err(zk(e)),
        }
    }
    Err("could not lift the hold: the topology keeps changing; run the move again".into())
}

/// `dbrouter ctl user move <user> <target>`: moves the user's rows to `target` (or
/// finishes / rolls back an interrupted move of that user first). Prints each step
/// through `say`; returns the final record.
pub async fn move_user(
    store: &ZkStore,
    config: &Config,
    user: &str,
    target: &str,
    settings: &MoveSettings,
    say: &mut (dyn FnMut(String) + Send + Sync),
) -> Result<MoveDoc, String> {
    let key = key_from_text(user.as_bytes(), config.sharding.key_type)
        .map_err(|why| format!("user id {user:?} {why}"))?;
    let user = String::from_utf8_lossy(&key).into_owned();
    // A mover that died keeps its lock until its ZooKeeper session expires (the ctl's
    // session timeout, 10 s): wait that long for it before saying another mover is busy.
    let deadline = Instant::now() + LOCK_WAIT;
    let lock = loop {
        match ShardLock::acquire(store, &format!("move-{user}"), "user move").await {
            Ok(lock) => break lock,
            Err(e) if Instant::now() >= deadline => {
                return Err(format!("user {user} is being moved by another mover: {e}"))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    };
    let result = locked_move(store, config, &user, target, settings, say).await;
    lock.release().await;
    match &result {
        Ok(doc) => crate::metrics::move_finished("done", doc.rows, doc.bytes),
        Err(_) => crate::metrics::move_finished("failed", 0, 0),
    }
    result
}

async fn locked_move(
    store: &ZkStore,
    config: &Config,
    user: &str,
    target: &str,
    settings: &MoveSettings,
    say: &mut (dyn FnMut(String) + Send + Sync),
) -> Result<MoveDoc, String> {
    // An interrupted move of this user first.
    let previous = store.read_move(user).await.map_err(zk)?;
    if let Some((doc, version)) = previous.clone() {
        if matches!(
            doc.state,
            MoveState::Copying | MoveState::Holding | MoveState::Flipped
        ) {
            say(format!(
                "an interrupted move of user {user} ({} -> {}, {:?}) comes first",
                doc.source, doc.target, doc.state
            ));
            let mut mover = Mover {
                store,
                config,
                doc,
                version,
                say,
                step_started: Instant::now(),
                settings,
            };
            if mover.doc.state == MoveState::Flipped {
                clean_up(&mut mover).await?;
                if mover.doc.target == target {
                    return Ok(mover.doc);
                }
            } else {
                mover
                    .roll_back("interrupted before the flip".into())
                    .await?;
            }
            return Box::pin(locked_move(
                store, config, user, target, settings, mover.say,
            ))
            .await;
        }
    }
    let snapshot = store.read_all().await.map_err(zk)?;
    let table = snapshot.routing_table(&config.sharding).map_err(zk)?;
    let source = table
        .shard_name(table.shard_for_key(user.as_bytes()).0)
        .to_string();
    let shard = |name: &str| {
        snapshot
            .topology
            .shards
            .iter()
            .find(|s| s.name == name)
            .cloned()
            .ok_or_else(|| format!("no shard is named {name}"))
    };
    let (from, to) = (shard(&source)?, shard(target)?);
    if source == target {
        return Err(format!(
            "user {user} is on {target} already; nothing to move"
        ));
    }
    if from.state == ShardState::Switching || to.state == ShardState::Switching {
        return Err("a shard of the move is switching masters; move after the switchover".into());
    }
    if snapshot.topology.holds.contains_key(user) {
        return Err(format!(
            "user {user} is held by another move; run `dbrouter ctl user moves`"
        ));
    }
    let doc = MoveDoc {
        schema: SCHEMA,
        user: user.to_string(),
        source: source.clone(),
        target: target.to_string(),
        state: MoveState::Copying,
        started_ms: now_ms(),
        steps: Vec::new(),
        rows: 0,
        bytes: 0,
        hold_ms: None,
        error: None,
    };
    let key = user.as_bytes().to_vec();
    // 1. Check.
    let mut src = connect(config, &from.master).await?;
    let mut dst = connect(config, &to.master).await?;
    let tables = sharded_tables(&mut src, &from.master, config).await?;
    let mut plan: Vec<(ShardedTable, Vec<String>)> = Vec::new();
    for t in tables {
        let here = definition(&mut src, &from.master, &t).await?;
        let there = definition(&mut dst, &to.master, &t).await?;
        if here != there {
            return Err(format!(
                "{} differs between {source} and {target} (SHOW CREATE TABLE): make the definitions identical first",
                t.qualified()
            ));
        }
        let cols = columns(&mut src, &from.master, &t).await?;
        let (rows, _, _) = checksum(&mut dst, &to.master, &t, &cols, &key).await?;
        if rows > 0 {
            if !settings.force {
                return Err(format!(
                    "{target} has {rows} row(s) of user {user} in {} already: refusing to mix them (--force deletes them first)",
                    t.qualified()
                ));
            }
            delete_rows(&mut dst, &to.master, &t, &key).await?;
        }
        plan.push((t, cols));
    }
    let version = match previous {
        Some((_, v)) => store.write_move(&doc, Some(v)).await,
        None => store.write_move(&doc, None).await,
    }
    .map_err(|e| match e {
        TopologyError::Conflict => format!("another mover of user {user} got there first"),
        other => other.to_string(),
    })?;
    let mut mover = Mover {
        store,
        config,
        doc,
        version,
        say,
        step_started: Instant::now(),
        settings,
    };
    (mover.say)(format!(
        "moving user {user}: {source} ({}) -> {target} ({}), {} table(s)",
        from.master,
        to.master,
        plan.len()
    ));
    mover.record("check", None).await?;
    match transfer(
        &mut mover,
        (&mut src, &from.master),
        (&mut dst, &to.master),
        &plan,
    )
    .await
    {
        Ok(()) => {}
        Err(reason) => {
            mover.roll_back(reason.clone()).await?;
            return Err(format!("move of user {user} rolled back: {reason}"));
        }
    }
    let _ = src.disconnect().await;
    let _ = dst.disconnect().await;
    clean_up(&mut mover).await?;
    Ok(mover.doc)
}

/// Steps 2 to 5: copy, hold, catch up and verify, flip. An error before the flip is the
/// caller's to roll back.
async fn transfer(
    mover: &mut Mover<'_>,
    (src, src_addr): (&mut Conn, &str),
    (dst, dst_addr): (&mut Conn, &str),
    plan: &[(ShardedTable, Vec<String>)],
) -> Result<(), String> {
    let user = mover.doc.user.as_bytes().to_vec();
    // 2. Copy while the user is served.
    let mut copied = data::Copied::default();
    for (t, cols) in plan {
        copied += copy_rows((src, src_addr), (dst, dst_addr), t, cols, &user).await?;
    }
    let rows = copied.rows;
    mover.doc.rows = rows;
    mover.doc.bytes = copied.bytes;
    mover
        .record(&format!("copy of {rows} row(s)"), None)
        .await?;
    if let Some(pause) = mover.settings.pause_after_copy {
        tokio::time::sleep(pause).await;
    }
    // 3. Hold — once no router that vanished from ZooKeeper may still serve the user
    // from its last topology (it would never see the hold nor the flip).
    let store = mover.store;
    loop {
        let blind = routers_still_serving_blind(store, &[]).await?;
        let Some(longest) = blind.iter().map(|(_, d)| *d).max() else {
            break;
        };
        let ids: Vec<&str> = blind.iter().map(|(id, _)| id.as_str()).collect();
        (mover.say)(format!(
            "waiting {:.0} s for router(s) {} — gone from ZooKeeper — to stop serving their last topology (topology.stale_serving_ms; `dbrouter ctl routers forget <id>` once one is known stopped)",
            longest.as_secs_f64(),
            ids.join(", ")
        ));
        tokio::time::sleep(longest.min(Duration::from_secs(5))).await;
    }
    let version = loop {
        let (mut topology, expected) = store.read_topology().await.map_err(zk)?;
        topology
            .holds
            .insert(mover.doc.user.clone(), mover.doc.source.clone());
        match store.write_topology(&topology, expected).await {
            Ok(v) => break v,
            Err(TopologyError::Conflict) => continue,
            Err(e) => return Err(zk(e)),
        }
    };
    let hold_started = Instant::now();
    mover
        .record(
            &format!("hold (topology version {version})"),
            Some(MoveState::Holding),
        )
        .await?;
    let deadline = hold_started + mover.settings.max_hold;
    // Every router registered now must acknowledge the hold — it holds the user's new
    // statements and every transaction open through it that may still write the user's
    // rows on the source has ended (`router::open_transactions`) — or be gone from
    // ZooKeeper and past the time it could serve from its last topology (a frozen or
    // cut-off router).
    let at_hold = router_ids(store).await?;
    let acked: Vec<String> = loop {
        let routers = store.routers().await.map_err(zk)?;
        let mut behind: Vec<String> = routers
            .iter()
            .filter(|r| r.holds_acked_version < version)
            .map(|r| {
                if r.applied_version >= version {
                    format!("{} (transactions older than the hold still open)", r.id)
                } else {
                    r.id.clone()
                }
            })
            .collect();
        let applied: Vec<String> = routers
            .iter()
            .filter(|r| r.holds_acked_version >= version)
            .map(|r| r.id.clone())
            .collect();
        let blind = routers_still_serving_blind(store, &applied).await?;
        behind.extend(
            blind
                .into_iter()
                .map(|(id, left)| format!("{id} (gone; may serve {} ms more)", left.as_millis())),
        );
        if behind.is_empty() {
            let vanished = at_hold.iter().filter(|id| !applied.contains(id)).count();
            if vanished > 0 {
                (mover.say)(format!(
                    "{vanished} router(s) left ZooKeeper during the hold and are past topology.stale_serving_ms"
                ));
            }
            break applied;
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "router(s) {} did not acknowledge the hold within {:?}",
                behind.join(", "),
                mover.settings.max_hold
            ));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    mover
        .record(
            "acknowledged by every router; no older transaction open",
            None,
        )
        .await?;
    // 4. Catch up and verify: both sides' checksums at once (separate servers); a table
    // that differs is copied again and then checked again — a table that matched needs
    // no second look (nothing can write the user's rows under the hold).
    let (mut differed, mut recopied, mut mended) = (0, 0, data::Mended::default());
    for (t, cols) in plan {
        let (a, b) = tokio::try_join!(
            checksum(src, src_addr, t, cols, &user),
            checksum(dst, dst_addr, t, cols, &user)
        )?;
        if a == b {
            continue;
        }
        differed += 1;
        // Row by row where the table has a primary key and few rows changed; else the
        // table again, whole.
        match data::mend_rows((src, src_addr), (dst, dst_addr), t, cols, &user).await? {
            Some(m) => {
                mended.copied += m.copied;
                mended.deleted += m.deleted;
            }
            None => {
                delete_rows(dst, dst_addr, t, &user).await?;
                copy_rows((src, src_addr), (dst, dst_addr), t, cols, &user).await?;
                recopied += 1;
            }
        }
        let (a, b) = tokio::try_join!(
            checksum(src, src_addr, t, cols, &user),
            checksum(dst, dst_addr, t, cols, &user)
        )?;
        if a != b {
            return Err(format!(
                "{} does not match after the catch-up ({} row(s) on the source, {} on the target)",
                t.qualified(),
                a.0,
                b.0
            ));
        }
    }
    mover
        .record(
            &format!(
                "catchup: {differed} table(s) differed: {} row(s) copied again and {} deleted, {recopied} table(s) copied again whole; all verified",
                mended.copied, mended.deleted
            ),
            None,
        )
        .await?;
    // Masters unchanged since the check (a failover meanwhile: give up, nothing flipped).
    let (now_src, now_dst) = mover.masters().await?;
    if now_src != src_addr || now_dst != dst_addr {
        return Err("a shard's master changed during the move".into());
    }
    // A router that vanished without applying the hold may still serve the user.
    let blind = routers_still_serving_blind(store, &acked).await?;
    if !blind.is_empty() {
        let ids: Vec<&str> = blind.iter().map(|(id, _)| id.as_str()).collect();
        return Err(format!(
            "router(s) {} left ZooKeeper during the hold without applying it",
            ids.join(", ")
        ));
    }
    // 5. Flip: the commit point.
    let hold_ms = hold_started.elapsed().as_millis() as u64;
    let mut flipped = mover.doc.clone();
    flipped.state = MoveState::Flipped;
    flipped.hold_ms = Some(hold_ms);
    flipped.steps.push(MoveStep {
        step: "flip".into(),
        at_ms: now_ms(),
        took_ms: mover.step_started.elapsed().as_millis() as u64,
    });
    // Another writer (a move of another user, a pin) may change the topology or the
    // bucket between the flip's reads and its write: read again and retry.
    let mut attempts = 0;
    let version = loop {
        match store.flip_move(&flipped, mover.version).await {
            Ok(v) => break v,
            Err(TopologyError::Conflict) if attempts < 20 => attempts += 1,
            Err(TopologyError::Conflict) => {
                return Err("the topology kept changing during the flip; nothing flipped".into())
            }
            Err(e) => return Err(zk(e)),
        }
    };
    mover.doc = flipped;
    // The flip's set of the record bumped its znode version by one.
    mover.version += 1;
    (mover.say)(format!(
        "flip (topology version {version}): user served by {} after a {hold_ms} ms hold",
        mover.doc.target
    ));
    if mover.settings.crash_after.as_deref() == Some("flip") {
        (mover.say)("crash_after=flip: exiting as asked".into());
        std::process::exit(70);
    }
    mover.step_started = Instant::now();
    Ok(())
}

/// Step 6: deletes the source's rows of a flipped move's user; the move is done.
async fn clean_up(mover: &mut Mover<'_>) -> Result<(), String> {
    let (source, _) = mover.masters().await?;
    let mut conn = connect(mover.config, &source).await?;
    let user = mover.doc.user.as_bytes().to_vec();
    let mut deleted = 0;
    for t in sharded_tables(&mut conn, &source, mover.config).await? {
        deleted += delete_rows(&mut conn, &source, &t, &user).await?;
    }
    let _ = conn.disconnect().await;
    mover
        .record(
            &format!("cleanup: {deleted} row(s) deleted on the source"),
            Some(MoveState::Done),
        )
        .await
}

/// `dbrouter ctl user moves`: current and recent moves.
pub fn describe(moves: &[MoveDoc]) -> String {
    let mut out = format!("{} move(s)\n", moves.len());
    for m in moves {
        let total: u64 = m.steps.iter().map(|s| s.took_ms).sum();
        out.push_str(&format!(
            "user {:<20} {:<8} -> {:<8} {:<12} rows {:<8} bytes {:<10} hold {:<10} total {} ms{}\n",
            m.user,
            m.source,
            m.target,
            format!("{:?}", m.state).to_lowercase(),
            m.rows,
            m.bytes,
            m.hold_ms.map_or("-".to_string(), |h| format!("{h} ms")),
            total,
            m.error
                .as_deref()
                .map_or(String::new(), |e| format!("  ({e})"))
        ));
    }
    out
}
