//! The router process: readiness before listening, connection limits, timeouts, the
//! graceful drain on SIGTERM, and serving threads pinned to cores.

use std::time::{Duration, Instant};

use mysql_async::prelude::*;
use mysql_async::{Conn, Opts};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn does_not_listen_before_the_backend_is_ready() {
    let backend_port = free_port();
    let router = TestRouter::spawn(RouterSettings {
        master: format!("127.0.0.1:{backend_port}"),
        timeouts: "startup_ms = 20000".into(),
        ..Default::default()
    });
    // Backend absent: the router must not accept clients.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        TcpStream::connect(&router.addr).await.is_err(),
        "router listens although its backend is unreachable"
    );
    // The backend appears: the router becomes ready and serves.
    let _proxy = CutProxy::start_at(backend_port, master_addr()).await;
    router.wait_listening(Duration::from_secs(15));
    let mut c = router.app_conn(None).await;
    let v: Option<i64> = c.query_first("SELECT 3").await.unwrap();
    assert_eq!(v, Some(3));
}

#[tokio::test]
async fn gives_up_when_the_backend_never_comes() {
    let mut router = TestRouter::spawn(RouterSettings {
        master: format!("127.0.0.1:{}", free_port()),
        timeouts: "startup_ms = 1500".into(),
        ..Default::default()
    });
    let code = router
        .wait_exit(Duration::from_secs(15))
        .expect("router must exit");
    assert_ne!(code, 0);
    assert!(
        router.log_text().contains("backend not ready"),
        "{}",
        router.log_text()
    );
}

#[tokio::test]
async fn connection_limit_answers_too_many_connections() {
    let router = TestRouter::start(RouterSettings {
        server_extra: "max_connections = 2".into(),
        ..Default::default()
    });
    let a = router.app_conn(None).await;
    let _b = router.app_conn(None).await;
    let err = Conn::new(Opts::from(router.app_opts(None)))
        .await
        .err()
        .unwrap();
    assert_eq!(server_error(err).0, 1040);
    // The refusal comes instead of a greeting, with its SQLSTATE (as MySQL sends it).
    let mut s = TcpStream::connect(&router.addr).await.unwrap();
    let mut bytes = Vec::new();
    s.read_to_end(&mut bytes).await.unwrap();
    let err = dbrouter::protocol::packets::parse_err(&bytes[4..]).expect("an ERR packet");
    assert_eq!((err.code, err.sql_state.as_str()), (1040, "08004"));
    assert!(err.message.contains("max_connections"), "{}", err.message);
    a.disconnect().await.unwrap();
    // The slot is released.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match Conn::new(Opts::from(router.app_opts(None))).await {
            Ok(_) => break,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => panic!("slot not released: {e}"),
        }
    }
}

#[tokio::test]
async fn idle_and_handshake_timeouts_close_connections() {
    let router = TestRouter::start(RouterSettings {
        timeouts: "idle_ms = 700\nhandshake_ms = 700".into(),
        ..Default::default()
    });
    let mut c = router.app_conn(None).await;
    c.query_drop("SELECT 1").await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        c.query_drop("SELECT 1").await.is_err(),
        "idle connection was not closed"
    );

    // A client that never answers the greeting is dropped after handshake_ms.
    let started = Instant::now();
    let mut s = TcpStream::connect(&router.addr).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .expect("handshake timeout must close the socket")
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(600));
    assert_eq!(buf[4], 10, "the greeting came first");
}

#[tokio::test]
async fn sigterm_drains_open_transactions_then_exits() {
    fresh_database("t_drain").await;
    let mut d = direct(Some("t_drain")).await;
    d.query_drop("CREATE TABLE t (id INT PRIMARY KEY)")
        .await
        .unwrap();
    let mut router = TestRouter::start(RouterSettings {
        timeouts: "drain_ms = 20000".into(),
        ..Default::default()
    });
    let mut idle = router.app_conn(Some("t_drain")).await;
    idle.query_drop("SELECT 1").await.unwrap();
    let mut busy = router.app_conn(Some("t_drain")).await;
    busy.query_drop("BEGIN").await.unwrap();
    busy.query_drop("INSERT INTO t VALUES (1)").await.unwrap();

    router.terminate();
    tokio::time::sleep(Duration::from_millis(500)).await;
    // No new clients while draining.
    assert!(
        TcpStream::connect(&router.addr).await.is_err(),
        "still accepting while draining"
    );
    // The idle client was let go.
    assert!(
        idle.query_drop("SELECT 1").await.is_err(),
        "idle connection survived the drain"
    );
    // The open transaction may finish.
    busy.query_drop("INSERT INTO t VALUES (2)").await.unwrap();
    busy.query_drop("COMMIT").await.unwrap();
    let code = router
        .wait_exit(Duration::from_secs(10))
        .expect("router exits once drained");
    assert_eq!(code, 0, "{}", router.log_text());
    let rows: Vec<i32> = d.query("SELECT id FROM t ORDER BY id").await.unwrap();
    assert_eq!(rows, vec![1, 2]);
}

/// CPUs a thread may run on (`Cpus_allowed_list` of /proc, e.g. "0-1,4"), expanded.
fn allowed_cpus(status_path: &std::path::Path) -> Vec<u32> {
    let status = std::fs::read_to_string(status_path).unwrap();
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .expect("Cpus_allowed_list in /proc status")
        .trim()
        .to_string();
    let mut cpus = Vec::new();
    for part in list.split(',') {
        match part.split_once('-') {
            Some((a, b)) => cpus.extend(a.parse::<u32>().unwrap()..=b.parse::<u32>().unwrap()),
            None => cpus.push(part.parse().unwrap()),
        }
    }
    cpus
}

/// The CPUs each serving thread (`dbrouter-w<i>`) of a router may run on, by thread index.
fn serving_thread_cpus(pid: u32) -> Vec<(usize, Vec<u32>)> {
    let mut threads = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let dir = entry.unwrap().path();
        let name = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if let Some(index) = name.trim().strip_prefix("dbrouter-w") {
            threads.push((index.parse().unwrap(), allowed_cpus(&dir.join("status"))));
        }
    }
    threads.sort();
    threads
}

#[tokio::test]
async fn serving_threads_are_pinned_one_per_core_unless_told_not_to() {
    let process_cpus = allowed_cpus(std::path::Path::new("/proc/self/status"));
    // One more thread than cores: the last one wraps around to the first core.
    let count = process_cpus.len() + 1;
    let pinned = TestRouter::start(RouterSettings {
        server_extra: format!("worker_threads = {count}"),
        ..Default::default()
    });
    let threads = serving_thread_cpus(pinned.pid());
    assert_eq!(threads.len(), count, "{threads:?}");
    for (index, cpus) in &threads {
        assert_eq!(
            cpus,
            &vec![process_cpus[index % process_cpus.len()]],
            "serving thread {index}"
        );
    }
    // It still serves.
    let mut conn = pinned.app_conn(None).await;
    let one: Option<i64> = conn.query_first("SELECT 1").await.unwrap();
    assert_eq!(one, Some(1));

    let free = TestRouter::start(RouterSettings {
        server_extra: "worker_threads = 2\npin_threads = false".into(),
        ..Default::default()
    });
    for (index, cpus) in serving_thread_cpus(free.pid()) {
        assert_eq!(
            cpus, process_cpus,
            "serving thread {index} should not be pinned"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_pooled_connections_the_server_killed_are_never_lent_out() {
    const DB: &str = "pool_kill_probe";
    let mut admin = Conn::new(Opts::from(direct_opts(None))).await.unwrap();
    admin
        .query_drop(format!("CREATE DATABASE IF NOT EXISTS {DB}"))
        .await
        .unwrap();
    grant_app(&mut admin, DB).await;
    let router = TestRouter::start(RouterSettings::default());
    // Fill the pool: several sessions at once, then they leave (their connections go
    // back to the pool, reset, idle — and logged in to this test's database).
    let mut sessions = Vec::new();
    for _ in 0..8 {
        let mut c = router.app_conn(Some(DB)).await;
        c.query_drop("SELECT 1").await.unwrap();
        sessions.push(c);
    }
    for c in sessions {
        c.disconnect().await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The server kills them while they idle (a DBA's KILL, wait_timeout, a restart).
    let ids: Vec<u64> = admin
        .query(format!(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = 'app' AND DB = '{DB}'"
        ))
        .await
        .unwrap();
    assert!(!ids.is_empty(), "no idle pooled connection to kill");
    for id in &ids {
        let _ = admin.query_drop(format!("KILL {id}")).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // New clients never get a dead connection: every first statement succeeds.
    for i in 0..20i64 {
        let mut c = router.app_conn(Some(DB)).await;
        let n: Option<i64> = c.query_first(format!("SELECT {i}")).await.unwrap();
        assert_eq!(n, Some(i));
        c.disconnect().await.unwrap();
    }
    admin.disconnect().await.unwrap();
}

/// Kills every backend connection of the app account on `db` (the session's, and any
/// idle in the pool: the test's database is private to it).
async fn kill_backend_threads(admin: &mut Conn, db: &str) {
    let ids: Vec<u64> = admin
        .query(format!(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = 'app' AND DB = '{db}'"
        ))
        .await
        .unwrap();
    assert!(!ids.is_empty(), "{db}: no backend connection");
    for id in ids {
        let _ = admin.query_drop(format!("KILL {id}")).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_connection_the_server_closed_while_the_client_idled_is_never_an_unknown_outcome()
{
    fresh_database("t_idle_closed").await;
    fresh_database("t_idle_closed_state").await;
    let router = TestRouter::start(RouterSettings::default());
    let mut admin = direct(None).await;

    // Only replayable state on it (a SET): replaced unnoticed, the state replayed.
    // (mysql_async asks nothing at connect when these two are given.)
    let opts = router
        .app_opts(Some("t_idle_closed"))
        .max_allowed_packet(Some(16 << 20))
        .wait_timeout(Some(28800));
    let mut c = Conn::new(Opts::from(opts)).await.unwrap();
    c.query_drop("SET @kept = 41").await.unwrap();
    kill_backend_threads(&mut admin, "t_idle_closed").await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let v: Option<i64> = c.query_first("SELECT @kept + 1").await.unwrap();
    assert_eq!(v, Some(42));

    // A connection that ran statements (whose state MariaDB dropped with it): the client
    // connection closes, as a direct one would — never ERR 1158 (outcome unknown).
    let mut c = router.app_conn(Some("t_idle_closed_state")).await;
    c.query_drop("CREATE TEMPORARY TABLE tmp (id INT)")
        .await
        .unwrap();
    kill_backend_threads(&mut admin, "t_idle_closed_state").await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    match c.query_drop("SELECT COUNT(*) FROM tmp").await {
        Err(mysql_async::Error::Server(e)) => {
            panic!("a server error, not a lost connection: {e:?}")
        }
        Err(_) => {}
        Ok(()) => panic!("the temporary table outlived its connection"),
    }
    assert!(router
        .log_text()
        .contains("closed the session's backend connection while the client was idle"));
    // The next connection works.
    let mut again = router.app_conn(Some("t_idle_closed_state")).await;
    let v: Option<i64> = again.query_first("SELECT 5").await.unwrap();
    assert_eq!(v, Some(5));
}
