//! Online user moves on the real cluster, a real ZooKeeper and two routers: a user moved
//! while clients write to them and to other users loses no acknowledged write and ends
//! with exactly one copy of their rows, on the target; a mover killed after each step is
//! finished or rolled back by the next run, leaving one authoritative copy; a move onto
//! rows of the user already on the target is refused.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mysql_async::prelude::*;
use mysql_async::{Conn, Opts};

use crate::harness::*;
use crate::topology::{
    init_and_start, start_follower, unique_root, wait_route, zk_settings_sharding,
};

const TABLE: &str = "move_rows";
/// A second sharded table, keyed by an id of its own (as AUTO_INCREMENT ids are).
const IDS: &str = "move_ids";

fn settings(hosts: &str, root: &str) -> RouterSettings {
    zk_settings_sharding(hosts, root, &[TABLE, IDS])
}

fn masters() -> [(String, String); 2] {
    [
        ("shard1".to_string(), master_addr()),
        ("shard2".to_string(), env("DBR_S2_MASTER")),
    ]
}

async fn admin(addr: &str) -> Conn {
    Conn::new(Opts::from(admin_opts_at(addr, Some("app"))))
        .await
        .unwrap()
}

/// A table of its own for one test, created empty on both masters (directly: a keyless
/// DDL on a sharded table is refused by the router).
pub(crate) async fn empty_table_on_masters(name: &str, columns: &str) {
    for (_, addr) in masters() {
        let mut c = admin(&addr).await;
        c.query_drop(format!("CREATE TABLE IF NOT EXISTS {name} ({columns})"))
            .await
            .unwrap();
        c.query_drop(format!("TRUNCATE TABLE {name}"))
            .await
            .unwrap();
        c.disconnect().await.unwrap();
    }
}

/// The test's table on both masters; the users' old rows deleted.
async fn fresh_table(users: &[u64]) {
    for (_, addr) in masters() {
        let mut c = admin(&addr).await;
        c.query_drop(format!(
            "CREATE TABLE IF NOT EXISTS {TABLE} (userid BIGINT NOT NULL, seq BIGINT NOT NULL, body VARCHAR(64) NOT NULL, PRIMARY KEY (userid, seq))"
        ))
        .await
        .unwrap();
        c.query_drop(format!(
            "CREATE TABLE IF NOT EXISTS {IDS} (id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, userid BIGINT NOT NULL, KEY (userid))"
        ))
        .await
        .unwrap();
        for u in users {
            for table in [TABLE, IDS] {
                c.query_drop(format!("DELETE FROM {table} WHERE userid = {u}"))
                    .await
                    .unwrap();
            }
        }
        c.disconnect().await.unwrap();
    }
}

/// The seqs of a user's rows on each master (shard name → seqs), read directly.
async fn rows_on_masters(user: u64) -> Vec<(String, BTreeSet<i64>)> {
    let mut out = Vec::new();
    for (name, addr) in masters() {
        let mut c = admin(&addr).await;
        let seqs: Vec<i64> = c
            .query(format!("SELECT seq FROM {TABLE} WHERE userid = {user}"))
            .await
            .unwrap();
        c.disconnect().await.unwrap();
        out.push((name, seqs.into_iter().collect()));
    }
    out
}

/// The user's shard per a router, and the other one.
async fn shards_of(c: &mut Conn, user: u64) -> (String, String) {
    let row: (
        String,
        String,
        String,
        String,
        Option<String>,
        Option<String>,
    ) = c
        .query_first(format!("SHOW DBROUTER ROUTE FOR {user}"))
        .await
        .unwrap()
        .unwrap();
    let other = if row.1 == "shard1" {
        "shard2"
    } else {
        "shard1"
    };
    (row.1, other.to_string())
}

/// Inserts `seqs` rows for a user through a router, 100 per statement.
async fn insert(c: &mut Conn, user: u64, seqs: std::ops::Range<i64>) {
    let values: Vec<String> = seqs.map(|s| format!("({user}, {s}, 'row {s}')")).collect();
    for chunk in values.chunks(100) {
        c.query_drop(format!(
            "INSERT INTO {TABLE} (userid, seq, body) VALUES {}",
            chunk.join(", ")
        ))
        .await
        .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_moved_under_write_load_loses_nothing_and_leaves_one_copy() {
    let hosts = env("DBR_ZK");
    let root = unique_root("moves-load");
    let url = format!("zk://{hosts}{root}");
    let mover: u64 = 5_100_000_001;
    let others: Vec<u64> = (2..6).map(|i| 5_100_000_000 + i).collect();
    let mut everyone = others.clone();
    everyone.push(mover);
    fresh_table(&everyone).await;
    let a = init_and_start(settings(&hosts, &root), &url);
    let b = start_follower(settings(&hosts, &root));
    let config = a.config_path.to_str().unwrap().to_string();
    let mut c = a.app_conn(Some("app")).await;
    insert(&mut c, mover, 0..1000).await;
    let (source, target) = shards_of(&mut c, mover).await;

    // Writers through both routers, to the moving user and to others; each records the
    // writes it got an OK for.
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<Vec<(u64, i64)>>> = Arc::default();
    let retryable = Arc::new(Mutex::new(0usize));
    let mut writers = Vec::new();
    for (w, user) in everyone.iter().copied().enumerate() {
        let router = if w % 2 == 0 { &a } else { &b };
        let opts = router.app_opts(Some("app"));
        let (stop, acked, retryable) = (stop.clone(), acked.clone(), retryable.clone());
        writers.push(tokio::spawn(async move {
            let mut c = Conn::new(Opts::from(opts)).await.unwrap();
            let mut seq = 1_000_000 + (w as i64) * 1_000_000;
            while !stop.load(Ordering::SeqCst) {
                seq += 1;
                let sql = format!(
                    "INSERT INTO {TABLE} (userid, seq, body) VALUES ({user}, {seq}, 'load')"
                );
                match c.query_drop(sql).await {
                    Ok(()) => acked.lock().unwrap().push((user, seq)),
                    // Held too long: retryable, nothing executed.
                    Err(mysql_async::Error::Server(e)) if e.code == 1053 => {
                        *retryable.lock().unwrap() += 1
                    }
                    Err(e) => panic!("write for {user} failed: {e}"),
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (ok, out) = ctl(&[
        "user",
        "move",
        &mover.to_string(),
        &target,
        "--max-hold-ms",
        "30000",
        "--zk",
        &url,
        "-c",
        &config,
    ]);
    if !ok {
        let log = std::fs::read_to_string(&a.log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        panic!("{out}\nrouter a log:\n{}", tail.join("\n"));
    }
    assert!(out.contains("flip") && out.contains("cleanup"), "{out}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.await.unwrap();
    }
    wait_route(&mut c, &mover.to_string(), &target).await;

    let acked = acked.lock().unwrap().clone();
    for user in &everyone {
        let on_masters = rows_on_masters(*user).await;
        let written: BTreeSet<i64> = acked
            .iter()
            .filter(|(u, _)| u == user)
            .map(|(_, s)| *s)
            .collect();
        assert!(!written.is_empty(), "no write of {user} was acknowledged");
        let holders: Vec<&String> = on_masters
            .iter()
            .filter(|(_, seqs)| !seqs.is_empty())
            .map(|(name, _)| name)
            .collect();
        assert_eq!(holders.len(), 1, "user {user} has rows on {holders:?}");
        let (shard, seqs) = on_masters.iter().find(|(_, s)| !s.is_empty()).unwrap();
        let lost: Vec<&i64> = written.difference(seqs).collect();
        assert!(
            lost.is_empty(),
            "user {user} lost {} acknowledged writes",
            lost.len()
        );
        if *user == mover {
            assert_eq!(shard, &target);
            assert!(
                (0..1000).all(|s| seqs.contains(&s)),
                "preloaded rows missing"
            );
        } else {
            // Others were never moved (nor paused beyond noise).
            assert_ne!(shard.as_str(), "", "{source}");
        }
    }
    let (ok, out) = ctl(&["user", "moves", "--zk", &url, "-c", &config]);
    assert!(ok && out.contains("done"), "{out}");
    c.disconnect().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mover_killed_after_any_step_is_finished_or_rolled_back_by_the_next_run() {
    let hosts = env("DBR_ZK");
    let root = unique_root("moves-crash");
    let url = format!("zk://{hosts}{root}");
    let steps = ["copy", "hold", "catchup", "flip"];
    let users: Vec<u64> = (0..steps.len() as u64).map(|i| 5_200_000_000 + i).collect();
    fresh_table(&users).await;
    let router = init_and_start(settings(&hosts, &root), &url);
    let config = router.config_path.to_str().unwrap().to_string();
    let mut c = router.app_conn(Some("app")).await;
    let mut crashed = Vec::new();
    for (step, user) in steps.iter().zip(&users) {
        insert(&mut c, *user, 0..50).await;
        let (_, target) = shards_of(&mut c, *user).await;
        let user_s = user.to_string();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_dbrouter"))
            .args([
                "ctl",
                "user",
                "move",
                &user_s,
                &target,
                "--max-hold-ms",
                "30000",
                "--zk",
                &url,
                "-c",
                &config,
            ])
            .env("DBROUTER_MOVE_CRASH_AFTER", step)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(out.status.code(), Some(70), "crash after {step}: {text}");
        crashed.push((*step, *user, target));
    }
    // Whatever state each was left in, the next run ends with one copy on the target. The
    // runs wait for the dead movers' locks to expire with their ZooKeeper sessions: all
    // at once.
    let resumed: Vec<_> = crashed
        .iter()
        .map(|(step, user, target)| {
            let args: Vec<String> = [
                "user",
                "move",
                &user.to_string(),
                target,
                "--max-hold-ms",
                "30000",
                "--zk",
                &url,
                "-c",
                &config,
            ]
            .iter()
            .map(|a| a.to_string())
            .collect();
            let step = step.to_string();
            std::thread::spawn(move || {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                (step, ctl(&args))
            })
        })
        .collect();
    for r in resumed {
        let (step, (ok, out)) = r.join().unwrap();
        assert!(ok, "resume after {step}: {out}");
        assert!(out.contains("interrupted move"), "{out}");
    }
    for (step, user, target) in &crashed {
        wait_route(&mut c, &user.to_string(), target).await;
        for (shard, seqs) in rows_on_masters(*user).await {
            if shard == *target {
                assert_eq!(seqs.len(), 50, "after a crash at {step}: {seqs:?}");
            } else {
                assert!(
                    seqs.is_empty(),
                    "after a crash at {step}, {shard} kept {seqs:?}"
                );
            }
        }
        // And the user is served normally (no hold left behind).
        let n: Option<i64> = c
            .query_first(format!(
                "SELECT COUNT(*) FROM {TABLE} WHERE userid = {user}"
            ))
            .await
            .unwrap();
        assert_eq!(n, Some(50));
    }
    c.disconnect().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_onto_rows_already_on_the_target_is_refused() {
    let hosts = env("DBR_ZK");
    let root = unique_root("moves-refused");
    let url = format!("zk://{hosts}{root}");
    let user: u64 = 5_300_000_001;
    fresh_table(&[user]).await;
    let router = init_and_start(settings(&hosts, &root), &url);
    let config = router.config_path.to_str().unwrap().to_string();
    let mut c = router.app_conn(Some("app")).await;
    insert(&mut c, user, 0..10).await;
    let (source, target) = shards_of(&mut c, user).await;
    let target_addr = masters().into_iter().find(|(n, _)| *n == target).unwrap().1;
    let mut t = admin(&target_addr).await;
    t.query_drop(format!(
        "INSERT INTO {TABLE} (userid, seq, body) VALUES ({user}, 99, 'stray')"
    ))
    .await
    .unwrap();
    t.disconnect().await.unwrap();
    let user_s = user.to_string();
    let (ok, out) = ctl(&[
        "user", "move", &user_s, &target, "--zk", &url, "-c", &config,
    ]);
    assert!(
        !ok && out.contains("already") && out.contains("--force"),
        "{out}"
    );
    // A row whose key another user's row has on the target: refused, rolled back.
    let source_addr = masters().into_iter().find(|(n, _)| *n == source).unwrap().1;
    let id = 9_000_000_000_000 + user;
    let mut on_source = admin(&source_addr).await;
    let mut on_target = admin(&target_addr).await;
    for (conn, owner) in [(&mut on_source, user), (&mut on_target, user + 1)] {
        conn.query_drop(format!("DELETE FROM {IDS} WHERE id = {id}"))
            .await
            .unwrap();
        conn.query_drop(format!(
            "INSERT INTO {IDS} (id, userid) VALUES ({id}, {owner})"
        ))
        .await
        .unwrap();
    }
    let (ok, out) = ctl(&[
        "user",
        "move",
        &user_s,
        &target,
        "--force",
        "--max-hold-ms",
        "30000",
        "--zk",
        &url,
        "-c",
        &config,
    ]);
    assert!(
        !ok && out.contains("key collision") && out.contains(IDS),
        "{out}"
    );
    assert!(out.contains("rolled back"), "{out}");
    on_target
        .query_drop(format!("DELETE FROM {IDS} WHERE id = {id}"))
        .await
        .unwrap();
    on_target.disconnect().await.unwrap();
    on_source.disconnect().await.unwrap();
    // Nothing changed: the user is still served from the source with its rows.
    let (now, _) = shards_of(&mut c, user).await;
    assert_eq!(now, source);
    // Moving onto the shard the user is on is refused too.
    let (ok, out) = ctl(&[
        "user", "move", &user_s, &source, "--zk", &url, "-c", &config,
    ]);
    assert!(!ok && out.contains("nothing to move"), "{out}");
    // --force replaces the stray row with the user's rows.
    let (ok, out) = ctl(&[
        "user",
        "move",
        &user_s,
        &target,
        "--force",
        "--max-hold-ms",
        "30000",
        "--zk",
        &url,
        "-c",
        &config,
    ]);
    assert!(ok, "{out}");
    for (shard, seqs) in rows_on_masters(user).await {
        let expected: BTreeSet<i64> = if shard == target {
            (0..10).collect()
        } else {
            BTreeSet::new()
        };
        assert_eq!(seqs, expected, "{shard}");
    }
    c.disconnect().await.unwrap();
}

/// How many users a router holds now (`SHOW DBROUTER STATUS`).
async fn held_users(c: &mut Conn) -> u64 {
    let rows = crate::topology::status(c).await;
    crate::topology::value(&rows, "held_users")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_open_before_the_hold_finishes_on_the_source_and_one_begun_after_is_held() {
    let hosts = env("DBR_ZK");
    let root = unique_root("moves-tx");
    let url = format!("zk://{hosts}{root}");
    let user: u64 = 5_350_000_001;
    fresh_table(&[user]).await;
    let router = init_and_start(settings(&hosts, &root), &url);
    let config = router.config_path.to_str().unwrap().to_string();
    let mut c = router.app_conn(Some("app")).await;
    insert(&mut c, user, 0..10).await;
    let (source, target) = shards_of(&mut c, user).await;
    // Another user on the same shard.
    let mut neighbour = user + 1;
    while shards_of(&mut c, neighbour).await.0 != source {
        neighbour += 1;
    }
    fresh_table(&[neighbour]).await;
    // A transaction begun before the hold that writes the user's rows.
    let mut before = router.app_conn(Some("app")).await;
    before.query_drop("BEGIN").await.unwrap();
    insert(&mut before, user, 100..101).await;
    // A transaction open on the source server that does not go through dbrouter (an
    // ops session, another application): the move does not wait for it.
    let source_addr = masters().into_iter().find(|(n, _)| *n == source).unwrap().1;
    let mut direct = admin(&source_addr).await;
    direct.query_drop("BEGIN").await.unwrap();
    direct
        .query_drop(format!(
            "INSERT INTO {IDS} (userid) VALUES ({})",
            neighbour + 1_000_000
        ))
        .await
        .unwrap();

    let args: Vec<String> = [
        "user",
        "move",
        &user.to_string(),
        &target,
        "--max-hold-ms",
        "30000",
        "--zk",
        &url,
        "-c",
        &config,
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    let mover = std::thread::spawn(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ctl(&args)
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while held_users(&mut c).await == 0 {
        assert!(std::time::Instant::now() < deadline, "the hold never began");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The older transaction goes on on the source, under the hold.
    insert(&mut before, user, 101..102).await;
    // A transaction begun after the hold on the same shard (by the neighbour's
    // statement) may not write the user's rows there: its statement is held.
    let mut after = router.app_conn(Some("app")).await;
    after.query_drop("BEGIN").await.unwrap();
    after
        .query_drop(format!(
            "INSERT INTO {TABLE} (userid, seq, body) VALUES ({neighbour}, 1, 'n')"
        ))
        .await
        .unwrap();
    let late = tokio::spawn(async move {
        let r = after
            .query_drop(format!(
                "INSERT INTO {TABLE} (userid, seq, body) VALUES ({user}, 200, 'late')"
            ))
            .await;
        let _ = after.query_drop("ROLLBACK").await;
        r
    });
    // The move waits for the older transaction: no flip while it is open.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        !mover.is_finished(),
        "the move did not wait for the open transaction"
    );
    assert!(
        !late.is_finished(),
        "the later transaction's statement was not held"
    );
    assert_eq!(shards_of(&mut c, user).await.0, source);
    before.query_drop("COMMIT").await.unwrap();
    let (ok, out) = mover.join().unwrap();
    assert!(ok, "{out}");
    // Released after the flip, to the target: not the shard of its transaction.
    let (code, _, message) = server_error(late.await.unwrap().unwrap_err());
    assert_eq!(code, 1235, "{message}");
    assert!(message.contains("transaction"), "{message}");
    direct.query_drop("ROLLBACK").await.unwrap();
    direct.disconnect().await.unwrap();
    // One copy, on the target, with both writes of the older transaction.
    for (shard, seqs) in rows_on_masters(user).await {
        let expected: BTreeSet<i64> = if shard == target {
            (0..10).chain(100..102).collect()
        } else {
            BTreeSet::new()
        };
        assert_eq!(seqs, expected, "{shard}");
    }
    c.disconnect().await.unwrap();
    before.disconnect().await.unwrap();
}

/// Router settings with a short `topology.stale_serving_ms`.
fn short_stale(hosts: &str, root: &str) -> RouterSettings {
    let mut s = settings(hosts, root);
    s.sharding.push_str("stale_serving_ms = 3000\n");
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_frozen_during_a_move_never_writes_on_the_source_after_the_flip() {
    let hosts = env("DBR_ZK");
    let root = unique_root("moves-frozen");
    let url = format!("zk://{hosts}{root}");
    let user: u64 = 5_400_000_001;
    fresh_table(&[user]).await;
    let a = init_and_start(short_stale(&hosts, &root), &url);
    let b = start_follower(short_stale(&hosts, &root));
    let config = a.config_path.to_str().unwrap().to_string();
    let mut ca = a.app_conn(Some("app")).await;
    insert(&mut ca, user, 0..20).await;
    let (source, target) = shards_of(&mut ca, user).await;
    // A client of router b, connected before b freezes.
    let mut cb = b.app_conn(Some("app")).await;
    let ok: Option<i64> = cb
        .query_first(format!(
            "SELECT COUNT(*) FROM {TABLE} WHERE userid = {user}"
        ))
        .await
        .unwrap();
    assert_eq!(ok, Some(20));

    let freeze = std::process::Command::new("kill")
        .args(["-STOP", &b.pid().to_string()])
        .status()
        .unwrap();
    assert!(freeze.success());
    // The move waits for b: it cannot apply the hold, so the flip comes only once b is
    // gone from ZooKeeper and past its stale_serving_ms.
    let (ok, out) = ctl(&[
        "user",
        "move",
        &user.to_string(),
        &target,
        "--max-hold-ms",
        "30000",
        "--zk",
        &url,
        "-c",
        &config,
    ]);
    assert!(ok, "{out}");
    assert!(out.contains("left ZooKeeper during the hold"), "{out}");
    let thaw = std::process::Command::new("kill")
        .args(["-CONT", &b.pid().to_string()])
        .status()
        .unwrap();
    assert!(thaw.success());
    // Woken, b refuses until it has read the topology again; then it writes on the target.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut refused = 0;
    loop {
        let sql = format!(
            "INSERT INTO {TABLE} (userid, seq, body) VALUES ({user}, {}, 'after')",
            1000 + refused
        );
        match cb.query_drop(sql).await {
            Ok(()) => break,
            Err(mysql_async::Error::Server(e)) if e.code == 1053 => refused += 1,
            Err(e) => panic!("{e}"),
        }
        assert!(std::time::Instant::now() < deadline, "b never served again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        refused > 0,
        "a woken router served before reading the topology"
    );
    for (shard, seqs) in rows_on_masters(user).await {
        if shard == source {
            assert!(
                seqs.is_empty(),
                "{shard} was written after the flip: {seqs:?}"
            );
        } else {
            assert_eq!(seqs.len(), 21, "{shard}: {seqs:?}");
        }
    }
    ca.disconnect().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_of_a_thousand_users_moves_every_user_of_a_shard_away_under_load() {
    const DRAIN: &str = "drain_rows";
    let hosts = env("DBR_ZK");
    let root = unique_root("moves-drain");
    let url = format!("zk://{hosts}{root}");
    let s = zk_settings_sharding(&hosts, &root, &[DRAIN]);
    empty_table_on_masters(
        DRAIN,
        "userid BIGINT NOT NULL, seq BIGINT NOT NULL, PRIMARY KEY (userid, seq)",
    )
    .await;
    let router = init_and_start(s, &url);
    let config = router.config_path.to_str().unwrap().to_string();
    let mut c = router.app_conn(Some("app")).await;
    let users: Vec<u64> = (0..1000).map(|i| 5_500_000_000 + i).collect();
    for u in &users {
        c.query_drop(format!(
            "INSERT INTO {DRAIN} (userid, seq) VALUES ({u}, 0), ({u}, 1), ({u}, 2)"
        ))
        .await
        .unwrap();
    }
    // Writers keep adding rows for a few users while the drain runs.
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<Vec<(u64, i64)>>> = Arc::default();
    let mut writers = Vec::new();
    for user in users.iter().take(6).copied() {
        let opts = router.app_opts(Some("app"));
        let (stop, acked) = (stop.clone(), acked.clone());
        writers.push(tokio::spawn(async move {
            let mut c = Conn::new(Opts::from(opts)).await.unwrap();
            let mut seq = 100;
            while !stop.load(Ordering::SeqCst) {
                seq += 1;
                let sql = format!("INSERT INTO {DRAIN} (userid, seq) VALUES ({user}, {seq})");
                match c.query_drop(sql).await {
                    Ok(()) => acked.lock().unwrap().push((user, seq)),
                    Err(mysql_async::Error::Server(e)) if e.code == 1053 => {}
                    Err(e) => panic!("write for {user} failed: {e}"),
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }
    let (ok, out) = ctl(&[
        "shard",
        "drain",
        "shard2",
        "--parallel",
        "8",
        "--max-hold-ms",
        "30000",
        "--zk",
        &url,
        "-c",
        &config,
    ]);
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.await.unwrap();
    }
    assert!(ok, "{out}");
    assert!(
        out.contains("weight") && out.contains("drained shard2"),
        "{out}"
    );
    let acked = acked.lock().unwrap().clone();
    let mut s1 = admin(&master_addr()).await;
    let mut s2 = admin(&env("DBR_S2_MASTER")).await;
    let left: Option<i64> = s2
        .query_first(format!("SELECT COUNT(*) FROM {DRAIN}"))
        .await
        .unwrap();
    assert_eq!(left, Some(0), "rows left on the drained shard");
    for u in &users {
        let seqs: Vec<i64> = s1
            .query(format!("SELECT seq FROM {DRAIN} WHERE userid = {u}"))
            .await
            .unwrap();
        let seqs: BTreeSet<i64> = seqs.into_iter().collect();
        assert!((0..3).all(|s| seqs.contains(&s)), "user {u}: {seqs:?}");
        for (_, seq) in acked.iter().filter(|(x, _)| x == u) {
            assert!(seqs.contains(seq), "user {u} lost acknowledged row {seq}");
        }
        let n: Option<i64> = c
            .query_first(format!("SELECT COUNT(*) FROM {DRAIN} WHERE userid = {u}"))
            .await
            .unwrap();
        assert_eq!(n, Some(seqs.len() as i64), "user {u} through the router");
    }
    s1.disconnect().await.unwrap();
    s2.disconnect().await.unwrap();
    c.disconnect().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hibernated_user_is_served_there_and_woken_up_on_access() {
    let hosts = env("DBR_ZK");
    let root = unique_root("moves-hibernate");
    let url = format!("zk://{hosts}{root}");
    let mut s = settings(&hosts, &root);
    let admin = format!("127.0.0.1:{}", free_port());
    s.server_extra = format!("{}\nadmin_listen = \"{admin}\"\n", s.server_extra);
    let router = init_and_start(s, &url);
    let config = router.config_path.to_str().unwrap().to_string();
    let mut c = router.app_conn(Some("app")).await;
    // A user whose ring shard is shard1; the hibernation shard lives on shard2's server.
    let table = router.routing();
    let user = (5_600_000_000u64..)
        .find(|u| table.shard_for_key(u.to_string().as_bytes()).0 == 0)
        .unwrap();
    fresh_table(&[user]).await;
    insert(&mut c, user, 0..30).await;
    let s2 = env("DBR_S2_MASTER");
    let (ok, out) = ctl(&[
        "shard",
        "add",
        "hib",
        "--master",
        &s2,
        "--hibernation",
        "--zk",
        &url,
        "-c",
        &config,
    ]);
    assert!(ok && out.contains("weight 0"), "{out}");
    let user_s = user.to_string();
    let (ok, out) = ctl(&[
        "user",
        "hibernate",
        &user_s,
        "--max-hold-ms",
        "30000",
        "--zk",
        &url,
        "-c",
        &config,
    ]);
    assert!(ok && out.contains("hibernated on hib"), "{out}");
    wait_route(&mut c, &user_s, "hib").await;
    let on_masters = rows_on_masters(user).await;
    assert!(
        on_masters
            .iter()
            .any(|(s, seqs)| s == "shard2" && seqs.len() == 30),
        "{on_masters:?}"
    );

    // Served where it is; the access queues a wake-up that moves the user home.
    let n: Option<i64> = c
        .query_first(format!(
            "SELECT COUNT(*) FROM {TABLE} WHERE userid = {user}"
        ))
        .await
        .unwrap();
    assert_eq!(n, Some(30));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (shard, _) = shards_of(&mut c, user).await;
        if shard == "shard1" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the hibernated user was not woken up (still on {shard})"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The flip came first; the clean-up of the hibernation shard follows.
    loop {
        let rows: Vec<(String, usize)> = rows_on_masters(user)
            .await
            .into_iter()
            .map(|(s, seqs)| (s, seqs.len()))
            .collect();
        if rows == [("shard1".to_string(), 30), ("shard2".to_string(), 0)] {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "after the wake-up: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let n: Option<i64> = c
        .query_first(format!(
            "SELECT COUNT(*) FROM {TABLE} WHERE userid = {user}"
        ))
        .await
        .unwrap();
    assert_eq!(n, Some(30));
    // The router timed both holds (the hibernation, run by ctl, and the wake-up, run by
    // this router as the coordinator), and counted the move it ran.
    use crate::admin::{get, sample};
    let flipped = [("outcome", "flipped")];
    let metrics = loop {
        let (_, _, m) = get(&admin, "/metrics").await;
        if sample(&m, "dbrouter_moves_total", &[("outcome", "done")]) == Some(1.0) {
            break m;
        }
        assert!(std::time::Instant::now() < deadline, "{m}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        sample(&metrics, "dbrouter_move_holds_total", &flipped),
        Some(2.0),
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, "dbrouter_move_hold_seconds_count", &[]),
        Some(2.0),
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, "dbrouter_move_rows_copied_total", &[]),
        Some(30.0),
        "{metrics}"
    );
    let bytes = sample(&metrics, "dbrouter_move_bytes_copied_total", &[]).unwrap_or(0.0);
    // 30 rows of (BIGINT, BIGINT, 'row N'): 8 + 8 + 5..6 bytes each.
    assert!((30.0 * 21.0..=30.0 * 22.0).contains(&bytes), "{bytes}");
    let (ok, out) = ctl(&["user", "moves", "--zk", &url, "-c", &config]);
    assert!(ok && out.contains("bytes"), "{out}");
    c.disconnect().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weight_change_with_rebalance_moves_the_affected_users_and_unpins_them() {
    const REBALANCE: &str = "rebalance_rows";
    let hosts = env("DBR_ZK");
    let root = unique_root("moves-rebalance");
    let url = format!("zk://{hosts}{root}");
    let s = zk_settings_sharding(&hosts, &root, &[REBALANCE]);
    empty_table_on_masters(
        REBALANCE,
        "userid BIGINT NOT NULL, seq BIGINT NOT NULL, PRIMARY KEY (userid, seq)",
    )
    .await;
    let router = init_and_start(s, &url);
    let config = router.config_path.to_str().unwrap().to_string();
    let mut c = router.app_conn(Some("app")).await;
    let users: Vec<u64> = (0..80).map(|i| 5_700_000_000 + i * 13).collect();
    for u in &users {
        c.query_drop(format!(
            "INSERT INTO {REBALANCE} (userid, seq) VALUES ({u}, 0), ({u}, 1)"
        ))
        .await
        .unwrap();
    }
    let (ok, out) = ctl(&[
        "shard",
        "set-weight",
        "shard2",
        "1024",
        "--rebalance",
        "--max-hold-ms",
        "30000",
        "--zk",
        &url,
        "-c",
        &config,
    ]);
    assert!(ok, "{out}");
    assert!(out.contains("rebalanced:"), "{out}");
    let (ok, out) = ctl(&["topology", "show", "--zk", &url, "-c", &config]);
    assert!(ok && out.contains("overridden users: 0"), "{out}");
    // Every user's rows are on its ring shard of the new ring, and read through the router.
    let mut direct = Vec::new();
    for (name, addr) in masters() {
        direct.push((name, admin(&addr).await));
    }
    for u in &users {
        let (shard, _) = shards_of(&mut c, *u).await;
        for (name, conn) in &mut direct {
            let n: Option<i64> = conn
                .query_first(format!(
                    "SELECT COUNT(*) FROM {REBALANCE} WHERE userid = {u}"
                ))
                .await
                .unwrap();
            let expected = if *name == shard { 2 } else { 0 };
            assert_eq!(n, Some(expected), "user {u} on {name} (routed to {shard})");
        }
    }
    for (_, conn) in direct {
        conn.disconnect().await.unwrap();
    }
    // A shard that still has users cannot be removed; an empty one can.
    let (ok, out) = ctl(&["shard", "remove", "shard2", "--zk", &url, "-c", &config]);
    assert!(
        !ok && out.contains("refusing to remove shard shard2") && out.contains("weight"),
        "{out}"
    );
    let s2 = env("DBR_S2_MASTER");
    let (ok, out) = ctl(&[
        "shard", "add", "spare", "--master", &s2, "--zk", &url, "-c", &config,
    ]);
    assert!(ok, "{out}");
    let (ok, out) = ctl(&["shard", "remove", "spare", "--zk", &url, "-c", &config]);
    assert!(ok && out.contains("removed shard spare"), "{out}");
    c.disconnect().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_coordinator_dies_another_router_wakes_hibernated_users() {
    let hosts = env("DBR_ZK");
    let root = unique_root("moves-coordinator");
    let url = format!("zk://{hosts}{root}");
    // A short stale_serving_ms: the wake-up waits for the killed router to be past it.
    let a = init_and_start(short_stale(&hosts, &root), &url);
    let b = start_follower(short_stale(&hosts, &root));
    let config = a.config_path.to_str().unwrap().to_string();
    let table = a.routing();
    let user = (5_800_000_000u64..)
        .find(|u| table.shard_for_key(u.to_string().as_bytes()).0 == 0)
        .unwrap();
    fresh_table(&[user]).await;
    let mut ca = a.app_conn(Some("app")).await;
    insert(&mut ca, user, 0..10).await;
    ca.disconnect().await.unwrap();
    let s2 = env("DBR_S2_MASTER");
    let (ok, out) = ctl(&[
        "shard",
        "add",
        "hib",
        "--master",
        &s2,
        "--hibernation",
        "--zk",
        &url,
        "-c",
        &config,
    ]);
    assert!(ok, "{out}");
    let user_s = user.to_string();
    let (ok, out) = ctl(&[
        "user",
        "hibernate",
        &user_s,
        "--max-hold-ms",
        "30000",
        "--zk",
        &url,
        "-c",
        &config,
    ]);
    assert!(ok, "{out}");
    // Which router coordinates: the holder named in its lock.
    let zk = crate::topology::store(&url).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let holder = loop {
        if let Ok((data, _)) = zk.client().get_data(&zk.path("locks/coordinator")).await {
            break String::from_utf8_lossy(&data).into_owned();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no coordinator elected"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let a_coordinates = holder.contains(&format!("pid {} ", a.pid()));
    assert!(
        a_coordinates || holder.contains(&format!("pid {} ", b.pid())),
        "{holder}"
    );
    let (dead, survivor) = if a_coordinates { (&a, &b) } else { (&b, &a) };
    // Killed outright: its ZooKeeper session (and lock) lingers until it expires.
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &dead.pid().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    // An access through the survivor queues the wake-up; the survivor takes over the
    // coordinator's lock once the dead one's session has expired, and moves the user.
    let mut c = survivor.app_conn(Some("app")).await;
    let n: Option<i64> = c
        .query_first(format!(
            "SELECT COUNT(*) FROM {TABLE} WHERE userid = {user}"
        ))
        .await
        .unwrap();
    assert_eq!(n, Some(10));
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    loop {
        let (shard, _) = shards_of(&mut c, user).await;
        if shard == "shard1" {
            break;
        }
        if std::time::Instant::now() >= deadline {
            let log = std::fs::read_to_string(&survivor.log).unwrap_or_default();
            let tail: Vec<&str> = log
                .lines()
                .filter(|l| !l.contains("zookeeper_client"))
                .collect();
            let tail = tail[tail.len().saturating_sub(30)..].join("\n");
            panic!(
                "not woken after the coordinator died (still on {shard}); survivor log:\n{tail}"
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    c.disconnect().await.unwrap();
}

/// `ctl jobs` for one job: (state, moved, total, runner).
fn job_line(url: &str, config: &str, id: &str) -> (String, u64, u64, String) {
    let (ok, out) = ctl(&["jobs", "--zk", url, "-c", config]);
    assert!(ok, "{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with(&format!("job {id} ")))
        .unwrap_or_else(|| panic!("no job {id} in {out}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    // job ID drain SHARD STATE MOVED/TOTAL moved, N failed[, runner R] [(message)]
    let (moved, total) = words[5].split_once('/').unwrap();
    let runner = line
        .split_once("runner ")
        .map(|(_, r)| r.split_whitespace().next().unwrap_or("").to_string())
        .unwrap_or_default();
    (
        words[4].to_string(),
        moved.parse().unwrap(),
        total.parse().unwrap(),
        runner,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_background_drain_is_run_by_the_coordinator_resumed_after_it_dies_and_cancellable() {
    const BG: &str = "bgdrain_rows";
    let hosts = env("DBR_ZK");
    let root = unique_root("moves-bgdrain");
    let url = format!("zk://{hosts}{root}");
    let sharding = |stale: bool| {
        let mut s = zk_settings_sharding(&hosts, &root, &[BG]);
        if stale {
            s.sharding.push_str("stale_serving_ms = 3000\n");
        }
        s
    };
    empty_table_on_masters(
        BG,
        "userid BIGINT NOT NULL, seq BIGINT NOT NULL, PRIMARY KEY (userid, seq)",
    )
    .await;
    let a = init_and_start(sharding(true), &url);
    let b = start_follower(sharding(true));
    let config = a.config_path.to_str().unwrap().to_string();
    let mut c = a.app_conn(Some("app")).await;
    let users: Vec<u64> = (0..160).map(|i| 5_900_000_000 + i).collect();
    for u in &users {
        c.query_drop(format!(
            "INSERT INTO {BG} (userid, seq) VALUES ({u}, 0), ({u}, 1)"
        ))
        .await
        .unwrap();
    }
    c.disconnect().await.unwrap();
    let on_shard2 = |rows: &[(u64,)]| rows.len();
    let count_on = |addr: String| async move {
        let mut m = admin(&addr).await;
        let rows: Vec<(u64,)> = m
            .query(format!("SELECT DISTINCT userid FROM {BG}"))
            .await
            .unwrap();
        m.disconnect().await.unwrap();
        rows
    };
    let before = count_on(env("DBR_S2_MASTER")).await;
    assert!(on_shard2(&before) > 40, "{}", before.len());

    // Queued: the command returns at once, the coordinator runs it.
    let (ok, out) = ctl(&[
        "shard",
        "drain",
        "shard2",
        "--background",
        "--parallel",
        "2",
        "--rate",
        "20",
        "--max-hold-ms",
        "30000",
        "--zk",
        &url,
        "-c",
        &config,
    ]);
    assert!(ok && out.contains("queued as job drain-shard2"), "{out}");
    let (ok, again) = ctl(&[
        "shard",
        "drain",
        "shard2",
        "--background",
        "--zk",
        &url,
        "-c",
        &config,
    ]);
    assert!(!ok && again.contains("already"), "{again}");
    // Once some users moved, the coordinator is killed; the other router resumes the job.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let first_runner = loop {
        let (state, moved, _, runner) = job_line(&url, &config, "drain-shard2");
        if moved >= 10 {
            break runner;
        }
        assert!(std::time::Instant::now() < deadline, "{state} {moved}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let port = |r: &TestRouter| r.addr.replace(':', "_");
    let (dead, survivor) = if first_runner.contains(&port(&a)) {
        (&a, &b)
    } else {
        (&b, &a)
    };
    assert!(first_runner.contains(&port(dead)), "{first_runner}");
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &dead.pid().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let runner = loop {
        let (state, moved, total, runner) = job_line(&url, &config, "drain-shard2");
        if state == "done" {
            assert_eq!(moved, total);
            break runner;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{state} {moved}/{total} {runner}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(runner.contains(&port(survivor)), "{runner}");
    // Every user is on shard1 with both rows; shard2 has none.
    assert!(count_on(env("DBR_S2_MASTER")).await.is_empty());
    let mut m = admin(&master_addr()).await;
    let rows: Vec<(u64, u64)> = m
        .query(format!("SELECT userid, COUNT(*) FROM {BG} GROUP BY userid"))
        .await
        .unwrap();
    m.disconnect().await.unwrap();
    assert_eq!(rows.len(), users.len());
    assert!(rows.iter().all(|(_, n)| *n == 2), "{rows:?}");

    // A slow drain back is cancelled: it stops starting moves; each user keeps one copy.
    let (ok, out) = ctl(&[
        "shard",
        "set-weight",
        "shard2",
        "256",
        "--zk",
        &url,
        "-c",
        &config,
    ]);
    assert!(ok, "{out}");
    let (ok, out) = ctl(&[
        "shard",
        "drain",
        "shard1",
        "--to",
        "shard2",
        "--background",
        "--parallel",
        "1",
        "--rate",
        "4",
        "--max-hold-ms",
        "30000",
        "--zk",
        &url,
        "-c",
        &config,
    ]);
    assert!(ok, "{out}");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while job_line(&url, &config, "drain-shard1").1 < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the second drain never started"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (ok, out) = ctl(&[
        "jobs",
        "cancel",
        "drain-shard1",
        "--zk",
        &url,
        "-c",
        &config,
    ]);
    assert!(ok && out.contains("cancelled"), "{out}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (state, moved, total, _) = job_line(&url, &config, "drain-shard1");
    assert_eq!(state, "cancelled");
    assert!(moved < total, "{moved}/{total}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        job_line(&url, &config, "drain-shard1").1,
        moved,
        "moves went on"
    );
    let (ok, out) = ctl(&[
        "jobs",
        "cancel",
        "drain-shard1",
        "--zk",
        &url,
        "-c",
        &config,
    ]);
    assert!(!ok && out.contains("cancelled already"), "{out}");
    let on1 = count_on(master_addr()).await;
    let on2 = count_on(env("DBR_S2_MASTER")).await;
    assert_eq!(
        on1.len() + on2.len(),
        users.len(),
        "a user has two copies or none"
    );
    assert_eq!(on2.len() as u64, moved);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_changed_after_the_copy_are_mended_row_by_row_under_the_hold() {
    let hosts = env("DBR_ZK");
    let root = unique_root("moves-mend");
    let url = format!("zk://{hosts}{root}");
    let user: u64 = 5_950_000_001;
    fresh_table(&[user]).await;
    let router = init_and_start(settings(&hosts, &root), &url);
    let config = router.config_path.to_str().unwrap().to_string();
    let mut c = router.app_conn(Some("app")).await;
    insert(&mut c, user, 0..200).await;
    let (source, target) = shards_of(&mut c, user).await;
    let source_addr = masters().into_iter().find(|(n, _)| *n == source).unwrap().1;
    // The mover pauses between its copy and the hold; the source changes meanwhile.
    let args: Vec<String> = [
        "user",
        "move",
        &user.to_string(),
        &target,
        "--max-hold-ms",
        "30000",
        "--zk",
        &url,
        "-c",
        &config,
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    let mover = std::thread::spawn(move || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_dbrouter"))
            .arg("ctl")
            .args(&args)
            .env("DBROUTER_MOVE_PAUSE_AFTER_COPY_MS", "3000")
            .output()
            .unwrap();
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text)
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, out) = ctl(&["user", "moves", "--zk", &url, "-c", &config]);
        if out.contains("rows 200 ") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the copy never ended: {out}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut s = admin(&source_addr).await;
    s.query_drop(format!(
        "UPDATE {TABLE} SET body = 'changed' WHERE userid = {user} AND seq IN (1, 2, 3)"
    ))
    .await
    .unwrap();
    s.query_drop(format!(
        "DELETE FROM {TABLE} WHERE userid = {user} AND seq IN (10, 11)"
    ))
    .await
    .unwrap();
    s.query_drop(format!(
        "INSERT INTO {TABLE} (userid, seq, body) VALUES ({user}, 500, 'new'), ({user}, 501, 'new')"
    ))
    .await
    .unwrap();
    let want: Vec<(i64, String)> = s
        .query(format!(
            "SELECT seq, body FROM {TABLE} WHERE userid = {user} ORDER BY seq"
        ))
        .await
        .unwrap();
    s.disconnect().await.unwrap();
    let (ok, out) = mover.join().unwrap();
    assert!(ok, "{out}");
    // 3 changed + 2 new copied; 3 stale versions + 2 gone deleted; nothing copied whole.
    assert!(
        out.contains("1 table(s) differed: 5 row(s) copied again and 5 deleted, 0 table(s) copied again whole"),
        "{out}"
    );
    let target_addr = masters().into_iter().find(|(n, _)| *n == target).unwrap().1;
    let mut t = admin(&target_addr).await;
    let got: Vec<(i64, String)> = t
        .query(format!(
            "SELECT seq, body FROM {TABLE} WHERE userid = {user} ORDER BY seq"
        ))
        .await
        .unwrap();
    t.disconnect().await.unwrap();
    assert_eq!(got, want);
    for (shard, seqs) in rows_on_masters(user).await {
        if shard != target {
            assert!(seqs.is_empty(), "{shard} kept {seqs:?}");
        }
    }
    c.disconnect().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_is_refused_for_a_schema_mismatch_a_second_mover_and_a_switching_shard() {
    const SCHEMA_T: &str = "move_schema";
    let hosts = env("DBR_ZK");
    let root = unique_root("moves-refusals");
    let url = format!("zk://{hosts}{root}");
    let user: u64 = 5_960_000_001;
    empty_table_on_masters(
        SCHEMA_T,
        "userid BIGINT NOT NULL, seq BIGINT NOT NULL, PRIMARY KEY (userid, seq)",
    )
    .await;
    let router = init_and_start(zk_settings_sharding(&hosts, &root, &[SCHEMA_T]), &url);
    let config = router.config_path.to_str().unwrap().to_string();
    let mut c = router.app_conn(Some("app")).await;
    c.query_drop(format!(
        "INSERT INTO {SCHEMA_T} (userid, seq) VALUES ({user}, 1), ({user}, 2)"
    ))
    .await
    .unwrap();
    let (source, target) = shards_of(&mut c, user).await;
    let target_addr = masters().into_iter().find(|(n, _)| *n == target).unwrap().1;
    let user_s = user.to_string();
    let move_args = [
        "user",
        "move",
        &user_s,
        &target,
        "--max-hold-ms",
        "30000",
        "--zk",
        &url,
        "-c",
        &config,
    ];
    // 1. Different definitions on the two shards.
    let mut t = admin(&target_addr).await;
    t.query_drop(format!("ALTER TABLE {SCHEMA_T} ADD COLUMN extra INT"))
        .await
        .unwrap();
    let (ok, out) = ctl(&move_args);
    assert!(
        !ok && out.contains("differs between") && out.contains("SHOW CREATE TABLE"),
        "{out}"
    );
    t.query_drop(format!("ALTER TABLE {SCHEMA_T} DROP COLUMN extra"))
        .await
        .unwrap();
    t.disconnect().await.unwrap();
    // 2. A shard switching masters.
    let zk = crate::topology::store(&url).await;
    let set_state = |state: dbrouter::topology::ShardState| {
        let zk = &zk;
        let source = source.clone();
        async move {
            let (mut doc, version) = zk.read_topology().await.unwrap();
            for s in &mut doc.shards {
                if s.name == source {
                    s.state = state;
                }
            }
            zk.write_topology(&doc, version).await.unwrap();
        }
    };
    set_state(dbrouter::topology::ShardState::Switching).await;
    let (ok, out) = ctl(&move_args);
    assert!(!ok && out.contains("switching masters"), "{out}");
    set_state(dbrouter::topology::ShardState::Serving).await;
    // 3. A second mover of the same user while the first runs (paused after its copy,
    // longer than a mover waits for the lock).
    let args: Vec<String> = move_args.iter().map(|a| a.to_string()).collect();
    let first = std::thread::spawn(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_dbrouter"))
            .arg("ctl")
            .args(&args)
            .env("DBROUTER_MOVE_PAUSE_AFTER_COPY_MS", "16000")
            .output()
            .unwrap()
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, out) = ctl(&["user", "moves", "--zk", &url, "-c", &config]);
        if out.contains(&format!("user {user_s}")) && out.contains("rows 2 ") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{out}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (ok, out) = ctl(&move_args);
    assert!(
        !ok && out.contains("is being moved by another mover"),
        "{out}"
    );
    let first = first.join().unwrap();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    wait_route(&mut c, &user_s, &target).await;
    c.disconnect().await.unwrap();
}
