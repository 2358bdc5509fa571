//! Placement commands never separate a user from their rows, on the real cluster and a
//! real ZooKeeper: a ring weight change pins the existing users whose ring shard changes
//! to the shard holding their rows (every user reads all their rows through the router
//! before and after), `--dry-run` writes nothing, `shard add` defaults to weight 0, and
//! `user pin` / `unpin` of a user with rows elsewhere is refused unless `--no-data-check`.

use mysql_async::prelude::*;
use mysql_async::Conn;

use crate::harness::*;
use crate::moves::empty_table_on_masters;
use crate::topology::{
    init_and_start, store, unique_root, wait_route, zk_settings_sharding, RouteRow,
};

const TABLE: &str = "placement_rows";

fn settings(hosts: &str, root: &str) -> RouterSettings {
    zk_settings_sharding(hosts, root, &[TABLE])
}

/// The test's table, empty, on both masters.
async fn fresh_table() {
    let columns = "userid BIGINT NOT NULL, n INT NOT NULL, PRIMARY KEY (userid, n)";
    empty_table_on_masters(TABLE, columns).await;
}

async fn route(c: &mut Conn, user: u64) -> RouteRow {
    c.query_first(format!("SHOW DBROUTER ROUTE FOR {user}"))
        .await
        .unwrap()
        .unwrap()
}

async fn rows_of(c: &mut Conn, user: u64) -> i64 {
    c.query_first(format!(
        "SELECT COUNT(*) FROM {TABLE} WHERE userid = {user}"
    ))
    .await
    .unwrap()
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placement_commands_never_separate_a_user_from_their_rows() {
    let hosts = env("DBR_ZK");
    let root = unique_root("placement");
    let url = format!("zk://{hosts}{root}");
    fresh_table().await;
    let router = init_and_start(settings(&hosts, &root), &url);
    let config = router.config_path.to_str().unwrap().to_string();
    let ctl_ = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--zk", &url, "-c", &config]);
        ctl(&all)
    };
    let mut c = router.app_conn(Some("app")).await;

    // 200 users with two rows each, on their ring shards.
    let users: Vec<u64> = (0..200).map(|i| 7_000_000_000 + i * 7919).collect();
    for u in &users {
        c.query_drop(format!(
            "INSERT INTO {TABLE} (userid, n) VALUES ({u}, 1), ({u}, 2)"
        ))
        .await
        .unwrap();
    }
    let mut before = Vec::new();
    for u in &users {
        before.push(route(&mut c, *u).await.1);
    }
    let s = store(&url).await;
    let version = || async { s.read_version().await.unwrap().unwrap().0 };

    // A dry run says what would happen and writes nothing.
    let v0 = version().await;
    let (ok, out) = ctl_(&["shard", "set-weight", "shard2", "1024", "--dry-run"]);
    assert!(ok, "{out}");
    assert!(out.contains("200 user(s) with rows"), "{out}");
    assert!(out.contains("dry run: nothing written"), "{out}");
    assert_eq!(version().await, v0, "a dry run wrote: {out}");

    // The real change: users whose ring shard changes are pinned first.
    let (ok, out) = ctl_(&["shard", "set-weight", "shard2", "1024"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("shard2: weight") && out.contains("-> 1024"),
        "{out}"
    );
    let pinned: usize = out
        .split("pinned ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no pin count in {out}"));
    assert!(
        pinned > 0,
        "quadrupling shard2's weight moves some of 200 users: {out}"
    );
    // A user without rows whose ring shard changed shows the new ring is applied.
    let config_doc = dbrouter::config::Config::load(&router.config_path).unwrap();
    let table = s
        .read_all()
        .await
        .unwrap()
        .routing_table(&config_doc.sharding)
        .unwrap();
    let old_ring = router.routing();
    let fresh = (1..)
        .map(|i: u64| 6_000_000_000 + i)
        .find(|u| {
            let k = u.to_string();
            old_ring.shard_for_key(k.as_bytes()).0 != table.shard_for_key(k.as_bytes()).0
        })
        .unwrap();
    let fresh_shard = table.shard_name(table.shard_for_key(fresh.to_string().as_bytes()).0);
    wait_route(&mut c, &fresh.to_string(), fresh_shard).await;
    let mut overridden = 0;
    for (u, was) in users.iter().zip(&before) {
        let now = route(&mut c, *u).await;
        assert_eq!(
            &now.1, was,
            "user {u} was routed away from its rows: {now:?}"
        );
        assert_eq!(
            rows_of(&mut c, *u).await,
            2,
            "user {u} lost sight of its rows"
        );
        overridden += usize::from(now.3 == "override");
    }
    assert_eq!(overridden, pinned, "{out}");

    // `shard add` without a weight takes no users and scans nothing.
    let shard2_master = env("DBR_S2_MASTER");
    let (ok, out) = ctl_(&["shard", "add", "shard3", "--master", &shard2_master]);
    assert!(ok && out.contains("weight 0"), "{out}");
    assert!(!out.contains("scanned"), "{out}");

    // A pin that would separate a user from their rows is refused.
    let (u, home) = users
        .iter()
        .zip(&before)
        .find(|(u, _)| {
            let k = u.to_string();
            !matches!(
                table.shard_for_key(k.as_bytes()).1,
                dbrouter::router::Why::Override
            )
        })
        .map(|(u, s)| (u.to_string(), s.clone()))
        .unwrap();
    let other = if home == "shard1" { "shard2" } else { "shard1" };
    let (ok, out) = ctl_(&["user", "pin", &u, other]);
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!("has rows on {home}")) && out.contains("ctl user move"),
        "{out}"
    );
    // Pinning where the rows are is fine; so is unpinning back to the same ring shard.
    let (ok, out) = ctl_(&["user", "pin", &u, &home]);
    assert!(ok, "{out}");
    let (ok, out) = ctl_(&["user", "unpin", &u]);
    assert!(ok, "{out}");
    // An operator who knows forces it; then rows exist on both, and unpinning is refused.
    let (ok, out) = ctl_(&["user", "pin", &u, other, "--no-data-check"]);
    assert!(ok, "{out}");
    wait_route(&mut c, &u, other).await;
    c.query_drop(format!("INSERT INTO {TABLE} (userid, n) VALUES ({u}, 3)"))
        .await
        .unwrap();
    let (ok, out) = ctl_(&["user", "unpin", &u]);
    assert!(
        !ok && out.contains(&format!("has rows on {other}")),
        "{out}"
    );
    let (ok, out) = ctl_(&["user", "unpin", &u, "--no-data-check"]);
    assert!(ok, "{out}");
    c.disconnect().await.unwrap();
}
