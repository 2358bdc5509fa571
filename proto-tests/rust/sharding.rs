//! Per-user sharding through a router over both shards of the cluster: placement by the
//! golden ring (checked on each master directly), keyless and cross-shard refusals,
//! transactions pinned to one shard, session state on every shard, pooled-connection
//! isolation, prepared statements routed by their key parameter, hints, the session
//! pin, overrides, the in-band route query and the pool limit.

use std::time::Duration;

use mysql_async::prelude::*;
use mysql_async::{Conn, Opts};

use crate::harness::*;

/// The `[sharding]` table of these tests: `posts`-like tables are sharded by `userid`,
/// `countries` is global (on shard1); unlisted tables are sharded (the default).
const SHARDING: &str = r#"
[sharding]
key_column = "userid"
key_type = "bigint unsigned"
global_shard = "shard1"
global_tables = ["countries"]
"#;

/// Creates `db.table (id, userid, body)` directly on both masters.
pub async fn create_on_both(db: &str, table: &str) {
    for addr in [master_addr(), env("DBR_S2_MASTER")] {
        let mut c = direct_to(&addr, None).await;
        c.query_drop(format!(
            "CREATE DATABASE IF NOT EXISTS `{db}` CHARACTER SET utf8mb4"
        ))
        .await
        .unwrap();
        grant_app(&mut c, db).await;
        c.query_drop(format!("DROP TABLE IF EXISTS `{db}`.`{table}`"))
            .await
            .unwrap();
        c.query_drop(format!(
            "CREATE TABLE `{db}`.`{table}` (id INT AUTO_INCREMENT PRIMARY KEY, userid BIGINT UNSIGNED NOT NULL, body VARCHAR(100), KEY (userid))"
        ))
        .await
        .unwrap();
        c.disconnect().await.unwrap();
    }
}

/// A direct connection as the admin account to any server.
pub async fn direct_to(addr: &str, db: Option<&str>) -> Conn {
    let (host, port) = addr.rsplit_once(':').unwrap();
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname(host)
        .tcp_port(port.parse().unwrap())
        .user(Some("dbrouter_admin"))
        .pass(Some("admin-secret"))
        .db_name(db)
        .prefer_socket(false);
    Conn::new(Opts::from(opts)).await.unwrap()
}

fn masters() -> [String; 2] {
    [master_addr(), env("DBR_S2_MASTER")]
}

/// Two user ids that the router places on different shards, and one more on the first's.
pub fn users_on_both(router: &TestRouter) -> (u64, u64, u64) {
    let table = router.routing();
    let shard = |u: u64| table.shard_for_key(u.to_string().as_bytes()).0;
    let a = 1000;
    let b = (1001..).find(|u| shard(*u) != shard(a)).unwrap();
    let c = (b + 1..).find(|u| shard(*u) == shard(a)).unwrap();
    (a, b, c)
}

#[tokio::test]
async fn rows_land_on_the_shard_the_ring_says() {
    create_on_both("shard_golden", "posts").await;
    let router = TestRouter::start(two_shards(SHARDING));
    let table = router.routing();
    let mut c = router.app_conn(Some("shard_golden")).await;
    let users: Vec<u64> = (1..=120)
        .chain([4_294_967_296, 18_446_744_073_709_551_615])
        .collect();
    for (i, u) in users.iter().enumerate() {
        if i % 2 == 0 {
            c.query_drop(format!(
                "INSERT INTO posts (userid, body) VALUES ({u}, 'text {u}')"
            ))
            .await
            .unwrap();
        } else {
            c.exec_drop(
                "INSERT INTO posts (body, userid) VALUES (?, ?)",
                (format!("prep {u}"), *u),
            )
            .await
            .unwrap();
        }
    }
    // Each master holds exactly the users the routing table places on it.
    let mut seen = 0;
    for (shard_id, addr) in masters().iter().enumerate() {
        let mut d = direct_to(addr, Some("shard_golden")).await;
        let mut on_master: Vec<u64> = d
            .query("SELECT userid FROM posts ORDER BY userid")
            .await
            .unwrap();
        on_master.dedup();
        let mut expected: Vec<u64> = users
            .iter()
            .copied()
            .filter(|u| usize::from(table.shard_for_key(u.to_string().as_bytes()).0) == shard_id)
            .collect();
        expected.sort_unstable();
        assert_eq!(on_master, expected, "users on shard{}", shard_id + 1);
        seen += on_master.len();
    }
    assert_eq!(seen, users.len());
    assert!(
        users
            .iter()
            .any(|u| table.shard_for_key(u.to_string().as_bytes()).0 == 1),
        "all users on one shard"
    );
    // Read back through the router, text and binary protocol, quoted and not.
    for u in &users {
        let n: Option<i64> = c
            .query_first(format!("SELECT COUNT(*) FROM posts WHERE userid = '{u}'"))
            .await
            .unwrap();
        assert_eq!(n, Some(1), "user {u}");
        let body: Option<String> = c
            .exec_first("SELECT body FROM posts WHERE userid = ?", (*u,))
            .await
            .unwrap();
        assert!(body.unwrap().ends_with(&u.to_string()));
    }
}

#[tokio::test]
async fn keyless_and_cross_shard_statements_are_refused_clearly() {
    create_on_both("shard_refuse", "posts").await;
    let router = TestRouter::start(two_shards(SHARDING));
    let (a, b, c_same) = users_on_both(&router);
    let mut c = router.app_conn(Some("shard_refuse")).await;

    let (code, state, msg) = server_error(c.query_drop("SELECT * FROM posts").await.unwrap_err());
    assert_eq!((code, state.as_str()), (1235, "42000"));
    assert_eq!(
        msg,
        "dbrouter: statement on sharded table `posts` has no shard key: add `userid = <user id>` to its WHERE clause \
         (or the `userid` column to the INSERT), or prefix the statement with /* userid=<user id> */"
    );
    let (code, _, msg) = server_error(
        c.query_drop(format!(
            "INSERT INTO posts (userid, body) VALUES ({a}, 'x'), ({b}, 'y')"
        ))
        .await
        .unwrap_err(),
    );
    assert_eq!(code, 1235);
    assert!(
        msg.contains("needs several shards")
            && msg.contains(&a.to_string())
            && msg.contains(&b.to_string()),
        "{msg}"
    );
    let (code, _, _) = server_error(
        c.query_drop(format!("SELECT * FROM posts WHERE userid IN ({a}, {b})"))
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 1235);
    let (code, _, msg) = server_error(
        c.query_drop("UPDATE posts SET body = 'z' WHERE userid > 5")
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 1235, "{msg}");
    let (code, _, msg) = server_error(
        c.query_drop("ALTER TABLE posts ADD COLUMN x INT")
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 1235);
    assert!(msg.contains("DDL"), "{msg}");
    // Users on the same shard may share a statement; harmless keyless statements run.
    c.query_drop(format!(
        "INSERT INTO posts (userid, body) VALUES ({a}, 'x'), ({c_same}, 'y')"
    ))
    .await
    .unwrap();
    let one: Option<i64> = c.query_first("SELECT 1").await.unwrap();
    assert_eq!(one, Some(1));
    let _: Vec<(String, String)> = c.query("SHOW VARIABLES LIKE 'version%'").await.unwrap();
    c.query_drop("SET NAMES utf8mb4").await.unwrap();
    // Global tables go to the global shard without a key.
    let mut d1 = direct_to(&master_addr(), Some("shard_refuse")).await;
    d1.query_drop("CREATE TABLE IF NOT EXISTS countries (code CHAR(2) PRIMARY KEY)")
        .await
        .unwrap();
    c.query_drop("INSERT IGNORE INTO countries VALUES ('fi')")
        .await
        .unwrap();
    let n: Option<i64> = d1
        .query_first("SELECT COUNT(*) FROM countries WHERE code = 'fi'")
        .await
        .unwrap();
    assert_eq!(n, Some(1));
    // Still usable after all the refusals.
    let n: Option<i64> = c
        .query_first(format!("SELECT COUNT(*) FROM posts WHERE userid = {a}"))
        .await
        .unwrap();
    assert_eq!(n, Some(1));
}

#[tokio::test]
async fn transactions_stay_on_one_shard() {
    create_on_both("shard_tx", "posts").await;
    let router = TestRouter::start(two_shards(SHARDING));
    let (a, b, _) = users_on_both(&router);
    let table = router.routing();
    let addr_of =
        |u: u64| masters()[usize::from(table.shard_for_key(u.to_string().as_bytes()).0)].clone();
    let mut c = router.app_conn(Some("shard_tx")).await;

    // Commit on the shard of the first keyed statement.
    c.query_drop("BEGIN").await.unwrap();
    c.query_drop(format!(
        "INSERT INTO posts (userid, body) VALUES ({a}, 'committed')"
    ))
    .await
    .unwrap();
    let last: Option<i64> = c.query_first("SELECT LAST_INSERT_ID()").await.unwrap();
    assert!(
        last.unwrap() > 0,
        "LAST_INSERT_ID() must come from the transaction's shard"
    );
    c.query_drop("COMMIT").await.unwrap();

    // A statement for another shard rolls the transaction back and fails.
    c.query_drop("START TRANSACTION").await.unwrap();
    c.query_drop(format!(
        "INSERT INTO posts (userid, body) VALUES ({a}, 'rolled back')"
    ))
    .await
    .unwrap();
    let (code, _, msg) = server_error(
        c.query_drop(format!(
            "INSERT INTO posts (userid, body) VALUES ({b}, 'other shard')"
        ))
        .await
        .unwrap_err(),
    );
    assert_eq!(code, 1235);
    assert!(msg.contains("rolled back"), "{msg}");
    // autocommit=0: the implicit transaction binds the same way.
    c.query_drop("SET autocommit = 0").await.unwrap();
    c.query_drop(format!(
        "INSERT INTO posts (userid, body) VALUES ({b}, 'implicit')"
    ))
    .await
    .unwrap();
    let err = c
        .query_drop(format!("UPDATE posts SET body = 'x' WHERE userid = {a}"))
        .await
        .unwrap_err();
    assert_eq!(server_error(err).0, 1235);
    c.query_drop(format!(
        "INSERT INTO posts (userid, body) VALUES ({b}, 'kept')"
    ))
    .await
    .unwrap();
    c.query_drop("COMMIT").await.unwrap();
    c.query_drop("SET autocommit = 1").await.unwrap();
    // ROLLBACK goes where the transaction is.
    c.query_drop("BEGIN").await.unwrap();
    c.query_drop(format!("DELETE FROM posts WHERE userid = {a}"))
        .await
        .unwrap();
    c.query_drop("ROLLBACK").await.unwrap();

    let mut da = direct_to(&addr_of(a), Some("shard_tx")).await;
    let bodies: Vec<String> = da
        .exec("SELECT body FROM posts WHERE userid = ? ORDER BY id", (a,))
        .await
        .unwrap();
    assert_eq!(bodies, vec!["committed".to_string()]);
    let mut db = direct_to(&addr_of(b), Some("shard_tx")).await;
    let bodies: Vec<String> = db
        .exec("SELECT body FROM posts WHERE userid = ? ORDER BY id", (b,))
        .await
        .unwrap();
    assert_eq!(bodies, vec!["kept".to_string()]);
}

#[tokio::test]
async fn session_state_follows_the_session_to_every_shard() {
    create_on_both("shard_state", "posts").await;
    let router = TestRouter::start(two_shards(SHARDING));
    let (a, b, _) = users_on_both(&router);
    let mut c = router.app_conn(Some("shard_state")).await;
    c.query_drop("SET @marker = 'm1', SESSION sql_mode = 'ANSI_QUOTES', time_zone = '+03:00'")
        .await
        .unwrap();
    c.query_drop("SET NAMES latin1").await.unwrap();
    c.query_drop("SET NAMES utf8mb4").await.unwrap();
    for u in [a, b, a] {
        let row: Option<(String, String, String, String)> = c
            .query_first(format!(
                "/* userid={u} */ SELECT @marker, @@session.sql_mode, @@session.time_zone, DATABASE()"
            ))
            .await
            .unwrap();
        assert_eq!(
            row.unwrap(),
            (
                "m1".into(),
                "ANSI_QUOTES".into(),
                "+03:00".into(),
                "shard_state".into()
            ),
            "state on the shard of user {u}"
        );
    }
}

#[tokio::test]
async fn pooled_connections_never_leak_state_between_clients() {
    // The temporary table is listed as global so that keyless statements reach it.
    let sharding = SHARDING.replace(r#"["countries"]"#, r#"["countries", "tmp_leak"]"#);
    let router = TestRouter::start(two_shards(&format!(
        "{sharding}\n[pool]\nmax_per_shard = 2\n"
    )));
    for round in 0..6 {
        let mut first = router.app_conn(Some("app")).await;
        let mut second = router.app_conn(Some("app")).await;
        // Interleaved: each sees only its own state.
        first
            .query_drop(format!(
                "SET @who = 'first{round}', SESSION sql_mode = 'ANSI_QUOTES'"
            ))
            .await
            .unwrap();
        second
            .query_drop(format!("SET @who = 'second{round}'"))
            .await
            .unwrap();
        first
            .query_drop("CREATE TEMPORARY TABLE tmp_leak (a INT)")
            .await
            .unwrap();
        first
            .query_drop("SELECT GET_LOCK('leak_lock', 0)")
            .await
            .unwrap();
        let who: Option<String> = first.query_first("SELECT @who").await.unwrap();
        assert_eq!(who.unwrap(), format!("first{round}"));
        let who: Option<String> = second.query_first("SELECT @who").await.unwrap();
        assert_eq!(who.unwrap(), format!("second{round}"));
        first.disconnect().await.unwrap();
        second.disconnect().await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        // A new client gets a pooled connection: nothing of the previous clients remains.
        let mut third = router.app_conn(Some("app")).await;
        let (who, mode, lock): (Option<String>, String, Option<i64>) = third
            .query_first("SELECT @who, @@session.sql_mode, IS_USED_LOCK('leak_lock')")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(who, None);
        assert_ne!(mode, "ANSI_QUOTES");
        assert_eq!(lock, None, "named lock survived the hand-over");
        let err = third
            .query_drop("SELECT * FROM tmp_leak")
            .await
            .unwrap_err();
        assert_eq!(
            server_error(err).0,
            1146,
            "temporary table survived the hand-over"
        );
        third.disconnect().await.unwrap();
        // The current database does not survive a hand-over either.
        let mut no_db = router.app_conn(None).await;
        no_db.query_drop("USE app").await.unwrap();
        no_db.disconnect().await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut next = router.app_conn(None).await;
        let db: Option<Option<String>> = next.query_first("SELECT DATABASE()").await.unwrap();
        assert_eq!(db, Some(None), "the previous client's USE leaked");
        next.disconnect().await.unwrap();
    }
}

#[tokio::test]
async fn prepared_statements_follow_their_key_parameter() {
    create_on_both("shard_prep", "posts").await;
    let router = TestRouter::start(two_shards(SHARDING));
    let (a, b, _) = users_on_both(&router);
    let mut c = router.app_conn(Some("shard_prep")).await;
    let insert = c
        .prep("INSERT INTO posts (userid, body) VALUES (?, ?)")
        .await
        .unwrap();
    let count = c
        .prep("SELECT COUNT(*), MAX(body) FROM posts WHERE userid = ?")
        .await
        .unwrap();
    for i in 0..5 {
        for u in [a, b] {
            c.exec_drop(&insert, (u, format!("p{i}"))).await.unwrap();
        }
    }
    for u in [a, b] {
        let row: Option<(i64, String)> = c.exec_first(&count, (u,)).await.unwrap();
        assert_eq!(row.unwrap(), (5, "p4".into()));
        // The key as a string parameter (mysql_async sends it as long data).
        let row: Option<(i64, String)> = c.exec_first(&count, (u.to_string(),)).await.unwrap();
        assert_eq!(row.unwrap().0, 5);
    }
    // IN with one parameter per user, same shard only.
    let err = c
        .exec_drop("SELECT * FROM posts WHERE userid IN (?, ?)", (a, b))
        .await
        .unwrap_err();
    assert_eq!(server_error(err).0, 1235);
    let err = c
        .exec_drop(&count, (Option::<u64>::None,))
        .await
        .unwrap_err();
    assert_eq!(server_error(err).0, 1235);
    // Directly: each shard got only its user's rows.
    let table = router.routing();
    for u in [a, b] {
        let addr = &masters()[usize::from(table.shard_for_key(u.to_string().as_bytes()).0)];
        let mut d = direct_to(addr, Some("shard_prep")).await;
        let users: Vec<u64> = d.query("SELECT DISTINCT userid FROM posts").await.unwrap();
        assert_eq!(users, vec![u]);
    }
}

#[tokio::test]
async fn hints_pins_overrides_and_the_route_query() {
    create_on_both("shard_hint", "posts").await;
    // User 77 is moved to shard2 by an override, whatever the ring says.
    let router = TestRouter::start(two_shards(&format!(
        "{SHARDING}\n[[overrides]]\nuser = 77\nshard = \"shard2\"\n"
    )));
    let (a, b, _) = users_on_both(&router);
    let table = router.routing();
    let mut c = router.app_conn(Some("shard_hint")).await;
    c.query_drop("INSERT INTO posts (userid, body) VALUES (77, 'moved')")
        .await
        .unwrap();
    let mut d2 = direct_to(&env("DBR_S2_MASTER"), Some("shard_hint")).await;
    let n: Option<i64> = d2
        .query_first("SELECT COUNT(*) FROM posts WHERE userid = 77")
        .await
        .unwrap();
    assert_eq!(n, Some(1), "override ignored");

    // A hint routes a statement whose filter the scanner cannot key…
    c.query_drop(format!(
        "INSERT INTO posts (userid, body) VALUES ({b}, 'to hint')"
    ))
    .await
    .unwrap();
    c.query_drop(format!(
        "/* userid={b} */ UPDATE posts SET body = 'hinted' WHERE body = 'to hint' OR id < 0"
    ))
    .await
    .unwrap();
    let n: Option<i64> = c
        .query_first(format!(
            "SELECT COUNT(*) FROM posts WHERE userid = {b} AND body = 'hinted'"
        ))
        .await
        .unwrap();
    assert_eq!(n, Some(1));
    // … but never a key the statement writes, nor one that contradicts it.
    for sql in [
        format!("/* userid={b} */ INSERT INTO posts (userid, body) SELECT {b}, 'hinted'"),
        format!("/* userid={b} */ INSERT INTO posts (userid, body) VALUES ({a}, 'x')"),
        format!("/* userid={b} */ SELECT * FROM posts WHERE userid = {a}"),
    ] {
        let err = server_error(c.query_drop(&sql).await.unwrap_err());
        assert_eq!(err.0, 1235, "{sql}: {err:?}");
    }

    // The session pin serves keyless statements for one user.
    c.query_drop(format!("SET @dbrouter_userid = {a}"))
        .await
        .unwrap();
    c.query_drop(format!(
        "INSERT INTO posts (userid, body) VALUES ({a}, 'pinned')"
    ))
    .await
    .unwrap();
    let n: Option<i64> = c
        .query_first("SELECT COUNT(*) FROM posts WHERE body = 'pinned'")
        .await
        .unwrap();
    assert_eq!(
        n,
        Some(1),
        "pinned keyless statement must run on user {a}'s shard"
    );
    // The pin never overrides a key the statement names.
    let err = server_error(
        c.query_drop(format!("SELECT * FROM posts WHERE userid = {b}"))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.0, 1235, "{err:?}");
    assert!(err.2.contains(&format!("names user {a}")), "{err:?}");
    c.query_drop("SET @dbrouter_userid = NULL").await.unwrap();
    assert_eq!(
        server_error(
            c.query_drop("SELECT COUNT(*) FROM posts")
                .await
                .unwrap_err()
        )
        .0,
        1235
    );

    // In-band route query: same answer as the library (and so as `dbrouter ctl route`).
    for u in [a, b, 77] {
        type RouteRow = (
            String,
            String,
            String,
            String,
            Option<String>,
            Option<String>,
        );
        let row: Option<RouteRow> = c
            .query_first(format!("SHOW DBROUTER ROUTE FOR {u}"))
            .await
            .unwrap();
        let (user, shard, master, reason, key_hash, _) = row.unwrap();
        assert_eq!(key_hash.is_some(), reason == "ring");
        let (id, why) = table.shard_for_key(u.to_string().as_bytes());
        assert_eq!(user, u.to_string());
        assert_eq!(shard, table.shard_name(id));
        assert_eq!(master, table.shard(id).unwrap().master);
        assert_eq!(
            reason,
            if matches!(why, dbrouter::router::Why::Override) {
                "override"
            } else {
                "ring"
            }
        );
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dbrouter"))
        .args(["ctl", "route", "77", "--config"])
        .arg(&router.config_path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("shard2") && text.contains("override"),
        "{text}"
    );
}

#[tokio::test]
async fn exhausted_pool_gives_a_retryable_error() {
    let router = TestRouter::start(two_shards(&format!(
        "{SHARDING}\n[pool]\nmode = \"session\"\nmax_per_shard = 1\nwait_ms = 300\n"
    )));
    // A session holds a backend connection from its first statement on (session pooling;
    // multiplex.rs tests the wait in transaction pooling).
    let mut holder = router.app_conn(Some("app")).await;
    holder.query_drop("SELECT 1").await.unwrap();
    let started = std::time::Instant::now();
    let err = Conn::new(Opts::from(router.app_opts(Some("app"))))
        .await
        .unwrap_err();
    let (code, state, msg) = server_error(err);
    assert_eq!((code, state.as_str()), (1040, "08004"));
    assert!(msg.contains("retryable") && msg.contains("in use"), "{msg}");
    assert!(started.elapsed() >= Duration::from_millis(250));
    drop(holder);
}

#[tokio::test]
async fn pooled_connections_move_between_serving_threads() {
    let user = "svc_threads";
    fresh_service_user(user).await;
    // One backend connection for everybody; two serving threads, which take new clients
    // in turn when equally loaded: consecutive clients run on different threads and
    // share the one pooled connection.
    let mut settings = two_shards(&format!(
        "{SHARDING}\n[pool]\nmax_per_shard = 1\nwait_ms = 3000\n"
    ));
    settings.service_user = user.into();
    settings.service_password = "svc-secret".into();
    settings.server_extra = "worker_threads = 2".into();
    let router = TestRouter::start(settings);
    let mut backend_ids = Vec::new();
    for round in 0..6i64 {
        let mut c = router.app_conn(Some("app")).await;
        // The backend thread (CONNECTION_ID() is the router's session id).
        let id: Option<u64> = c.query_first("SELECT @@pseudo_thread_id").await.unwrap();
        backend_ids.push(id);
        for i in 0..20i64 {
            let v: Option<i64> = c
                .query_first(format!("SELECT {round} * 100 + {i}"))
                .await
                .unwrap();
            assert_eq!(v, Some(round * 100 + i));
        }
        c.disconnect().await.unwrap();
    }
    backend_ids.dedup();
    assert_eq!(
        backend_ids.len(),
        1,
        "one pooled connection served all: {backend_ids:?}"
    );
    assert!(
        router.log_text().contains("threads=2"),
        "{}",
        router.log_text()
    );
}

#[tokio::test]
async fn idle_logged_in_clients_hold_no_backend_connection() {
    let user = "svc_idle_login";
    fresh_service_user(user).await;
    let mut settings = two_shards(&format!(
        "{SHARDING}\n[pool]\nmode = \"session\"\nmax_per_shard = 2\nmax_idle_per_shard = 0\n"
    ));
    settings.service_user = user.into();
    settings.service_password = "svc-secret".into();
    let router = TestRouter::start(settings);
    // (Session pooling: a returned connection is closed, none kept idle; transaction
    // pooling keeps its working set: multiplex.rs.) Far more logged-in clients than the pool has connections: logins check the database
    // with a pooled connection and give it back. (Raw clients: mysql_async runs a
    // statement right after connecting.)
    let mut clients = Vec::new();
    for _ in 0..20 {
        clients.push(
            crate::raw::RawClient::connect(&router.addr, "app", APP_PASSWORD, Some("app")).await,
        );
    }
    wait_backend_connections(user, 0).await;
    // Statements still run (each takes a connection for the life of its session).
    let resp = clients[0]
        .command(
            b"\x03SELECT 7",
            dbrouter::protocol::response::ResponseKind::Query,
        )
        .await;
    assert_eq!(clients[0].first_row(&resp), b"\x017");
    wait_backend_connections(user, 1).await;
}

/// Idle pooled connections to a server that is no longer a master (and those idle too
/// long) are closed with COM_QUIT by the pool sweeper, the others kept.
#[tokio::test]
async fn the_pool_sweeper_closes_idle_connections_to_demoted_masters() {
    use dbrouter::backend::pool::{sweep, PoolLimits, Pools};
    use dbrouter::backend::{LoginOptions, PoolKey};
    let user = "sweep_svc";
    fresh_service_user(user).await;
    let master = master_addr();
    let pools = Pools::new(PoolLimits {
        max_per_master: 10,
        max_idle_per_master: 10,
        wait: Duration::from_secs(2),
        max_waiting: 100,
        idle_timeout: Duration::from_secs(300),
        connect_timeout: Duration::from_secs(5),
    });
    let login = LoginOptions {
        user: user.into(),
        password: "svc-secret".into(),
        collation: Some(45),
        capabilities: dbrouter::protocol::handshake::offered_capabilities(),
        ..Default::default()
    };
    let key = PoolKey {
        addr: master.clone(),
        user: user.into(),
        capabilities: login.capabilities.bits(),
        mariadb_capabilities: 0,
        collation: 45,
        database: None,
    };
    let a = pools.checkout(key.clone(), &login, 0).await.unwrap();
    let b = pools.checkout(key.clone(), &login, 0).await.unwrap();
    pools.checkin(a, true);
    pools.checkin(b, true);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while pools.idle_count(&master) < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "connections not back in the pool"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_backend_connections(user, 2).await;

    // Still the master: kept.
    assert_eq!(sweep(&pools, &|addr| addr == master).await, 0);
    assert_eq!(pools.idle_count(&master), 2);
    // Demoted: both closed (with COM_QUIT), and the server sees them go.
    assert_eq!(sweep(&pools, &|_| false).await, 2);
    assert_eq!(pools.idle_count(&master), 0);
    wait_backend_connections(user, 0).await;
}

/// A COM_STMT_BULK_EXECUTE of a statement with (BIGINT UNSIGNED userid, VARCHAR body)
/// parameters (a NULL userid for `None`), with the types when `types`.
fn bulk_execute(id: u32, rows: &[(Option<u64>, &str)], types: bool) -> Vec<u8> {
    let mut p = vec![0xfa];
    p.extend_from_slice(&id.to_le_bytes());
    let flags: u16 = if types { 128 } else { 0 };
    p.extend_from_slice(&flags.to_le_bytes());
    if types {
        p.extend_from_slice(&[0x08, 0x80, 0xfd, 0x00]);
    }
    for (user, body) in rows {
        match user {
            Some(u) => {
                p.push(0);
                p.extend_from_slice(&u.to_le_bytes());
            }
            None => p.push(1),
        }
        p.push(0);
        p.push(body.len() as u8);
        p.extend_from_slice(body.as_bytes());
    }
    p
}

/// MariaDB's bulk execute (array binding of Connector/J, /Node.js, /C): routed by the key
/// parameter of every row — all on one shard, else refused before anything runs.
#[tokio::test]
async fn bulk_execute_routes_by_the_key_of_every_row() {
    use crate::raw::{prepare, stmt_id, RawClient};
    use dbrouter::protocol::packets::parse_err;
    use dbrouter::protocol::response::ResponseKind;
    use mysql_common::constants::MariadbCapabilities;
    create_on_both("shard_bulk", "posts").await;
    let router = TestRouter::start(two_shards(SHARDING));
    let (a, b, c) = users_on_both(&router);
    let bulk = MariadbCapabilities::MARIADB_CLIENT_STMT_BULK_OPERATIONS;
    let mut r =
        RawClient::connect_with(&router.addr, "app", APP_PASSWORD, Some("shard_bulk"), bulk).await;
    let p = r
        .command(
            &prepare("INSERT INTO posts (userid, body) VALUES (?, ?)"),
            ResponseKind::Prepare,
        )
        .await;
    let id = stmt_id(&p[0]);
    let count = |addr: String, user: u64| async move {
        let mut d = direct_to(&addr, Some("shard_bulk")).await;
        let n: Option<i64> = d
            .query_first(format!("SELECT COUNT(*) FROM posts WHERE userid = {user}"))
            .await
            .unwrap();
        n.unwrap_or(0)
    };
    let table = router.routing();
    let addr_of =
        |u: u64| masters()[usize::from(table.shard_for_key(u.to_string().as_bytes()).0)].clone();

    // Rows of two users of one shard: one OK, every row on that shard.
    let rows = [(Some(a), "x"), (Some(c), "y"), (Some(a), "z")];
    let ok = r
        .command(&bulk_execute(id, &rows, true), ResponseKind::Execute)
        .await;
    assert_eq!(ok.len(), 1);
    assert_eq!(&ok[0][..2], &[0x00, 3], "OK, 3 rows: {:?}", ok[0]);
    assert_eq!(count(addr_of(a), a).await, 2);
    assert_eq!(count(addr_of(c), c).await, 1);
    assert_eq!(count(addr_of(b), a).await, 0, "none on the other shard");

    // Rows of two shards: refused, nothing written anywhere.
    let rows = [(Some(a), "1"), (Some(b), "2")];
    let err = r
        .command(&bulk_execute(id, &rows, false), ResponseKind::Execute)
        .await;
    let e = parse_err(&err[0]).expect("ERR");
    assert_eq!(e.code, 1235, "{}", e.message);
    assert!(e.message.contains(&a.to_string()) && e.message.contains(&b.to_string()));
    assert_eq!(count(addr_of(a), a).await, 2);
    assert_eq!(count(addr_of(b), b).await, 0);

    // Types sent once are remembered; the other shard's copy (which never saw them) gets
    // them put back in.
    let rows = [(Some(b), "only b")];
    let ok = r
        .command(&bulk_execute(id, &rows, false), ResponseKind::Execute)
        .await;
    assert_eq!(&ok[0][..2], &[0x00, 1], "{:?}", ok[0]);
    assert_eq!(count(addr_of(b), b).await, 1);

    // A row without a key: refused.
    let rows = [(Some(a), "k"), (None, "no key")];
    let err = r
        .command(&bulk_execute(id, &rows, false), ResponseKind::Execute)
        .await;
    let e = parse_err(&err[0]).expect("ERR");
    assert_eq!(e.code, 1235, "{}", e.message);
    assert!(e.message.contains("NULL"), "{}", e.message);

    // A client that did not negotiate bulk operations gets a clear refusal.
    let mut plain = RawClient::connect(&router.addr, "app", APP_PASSWORD, Some("shard_bulk")).await;
    let err = plain
        .command(
            &bulk_execute(1, &[(Some(a), "x")], true),
            ResponseKind::Single,
        )
        .await;
    let e = parse_err(&err[0]).expect("ERR");
    assert!(
        e.message.contains("MARIADB_CLIENT_STMT_BULK_OPERATIONS"),
        "{}",
        e.message
    );
}
