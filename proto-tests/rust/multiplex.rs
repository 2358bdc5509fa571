//! Transaction pooling (`pool.mode = "transaction"`, docs/sharding.md "Pool modes"):
//! sessions share a handful of backend connections, and every pinning rule answers as a
//! direct MariaDB session does. Each case runs the same statements through a router whose
//! pool has one or two connections (so that other sessions' statements run on the very
//! connection between two of ours) and directly on the master, and compares.

use std::time::Duration;

use mysql_async::prelude::*;
use mysql_async::{Conn, Row, Value};

use crate::harness::*;

/// A router in transaction pooling with `max` backend connections, as the private
/// service account `svc` (so that its backend connections can be counted; no health
/// checker, whose probes would count too).
async fn router(svc: &str, max: usize, wait_ms: u64) -> TestRouter {
    fresh_service_user(svc).await;
    let settings = RouterSettings {
        service_user: svc.into(),
        service_password: "svc-secret".into(),
        sharding: format!(
            "[sharding]\nunlisted_tables = \"global\"\n\n[pool]\nmode = \"transaction\"\nmax_per_shard = {max}\nwait_ms = {wait_ms}\n\n[health]\ninterval_ms = 0\n"
        ),
        ..Default::default()
    };
    TestRouter::start(settings)
}

/// Another session's statements, run between two of ours: on a pool of one connection
/// they run on the very connection ours ran on, leaving their own state there.
async fn meddle(other: &mut Conn, db: &str) {
    other
        .query_drop("SET @meddler = 'other', NAMES latin1")
        .await
        .unwrap();
    other
        .query_drop(format!(
            "INSERT INTO `{db}`.noise (note) VALUES ('x'), ('y')"
        ))
        .await
        .unwrap();
    other.query_drop("SELECT 1").await.unwrap();
}

async fn setup(db: &str) {
    fresh_database(db).await;
    let mut c = direct(Some(db)).await;
    c.query_drop("CREATE TABLE items (id INT AUTO_INCREMENT PRIMARY KEY, note VARCHAR(20))")
        .await
        .unwrap();
    c.query_drop("CREATE TABLE noise (id INT AUTO_INCREMENT PRIMARY KEY, note VARCHAR(20)) AUTO_INCREMENT = 1000")
        .await
        .unwrap();
    c.query_drop("INSERT INTO items (note) VALUES ('a'), ('b'), ('c'), ('d'), ('e')")
        .await
        .unwrap();
}

fn text(row: &Row, i: usize) -> String {
    match row.as_ref(i) {
        Some(Value::Bytes(b)) => String::from_utf8_lossy(b).into_owned(),
        Some(Value::NULL) | None => "NULL".into(),
        Some(v) => format!("{v:?}"),
    }
}

async fn rows(c: &mut Conn, sql: &str) -> Vec<Vec<String>> {
    let rows: Vec<Row> = c.query(sql).await.unwrap();
    rows.iter()
        .map(|r| (0..r.len()).map(|i| text(r, i)).collect())
        .collect()
}

#[tokio::test]
async fn session_state_and_last_insert_id_follow_the_session_across_connections() {
    let db = "mx_state";
    setup(db).await;
    let router = router("mx_state_svc", 1, 3000).await;
    let mut mine = router.app_conn(Some(db)).await;
    let mut other = router.app_conn(Some(db)).await;
    let mut reference = direct(Some(db)).await;
    for c in [&mut mine, &mut reference] {
        c.query_drop("SET NAMES utf8mb4, @mine = 42, sql_mode = 'ANSI_QUOTES'")
            .await
            .unwrap();
        c.query_drop("INSERT INTO items (note) VALUES ('f')")
            .await
            .unwrap();
    }
    let inserted = mine.last_insert_id();
    meddle(&mut other, db).await;
    let sql = "SELECT @mine, @meddler, @@character_set_client, @@sql_mode";
    let through = rows(&mut mine, sql).await;
    assert_eq!(through, rows(&mut reference, sql).await);
    // Its own LAST_INSERT_ID(), though the other session inserted on that very connection.
    let last = rows(&mut mine, "SELECT LAST_INSERT_ID()").await;
    assert_eq!(last[0][0], inserted.unwrap().to_string());
    let again = rows(
        &mut mine,
        "SELECT note FROM items WHERE id = LAST_INSERT_ID()",
    )
    .await;
    assert_eq!(again, vec![vec!["f".to_string()]]);
    // The other session's state is its own too.
    let theirs = rows(&mut other, "SELECT @mine, @meddler, @@character_set_client").await;
    assert_eq!(
        theirs,
        vec![vec!["NULL".to_string(), "other".into(), "latin1".into()]]
    );
    // Both shared one backend connection.
    assert_eq!(backend_connections("mx_state_svc").await, 1);
}

#[tokio::test]
async fn state_on_the_connection_pins_the_session_to_it() {
    let db = "mx_pins";
    setup(db).await;
    let router = router("mx_pins_svc", 2, 3000).await;
    let mut other = router.app_conn(Some(db)).await;
    // Each case: statements that leave state on the connection, then the other session
    // runs, then a statement that reads the state: the same answer as a direct session.
    let cases: [(&[&str], &str); 5] = [
        (
            &[
                "CREATE TEMPORARY TABLE tmp (a INT)",
                "INSERT INTO tmp VALUES (7)",
            ],
            "SELECT a FROM tmp",
        ),
        (
            &["SELECT GET_LOCK('mx_lock', 0)"],
            "SELECT IS_USED_LOCK('mx_lock') = CONNECTION_ID()",
        ),
        (&["SELECT @assigned := 5"], "SELECT @assigned"),
        (
            &["SELECT note INTO @into FROM items WHERE id = 2"],
            "SELECT @into",
        ),
        (
            &["SET @when = (SELECT COUNT(*) FROM items)"],
            "SELECT @when",
        ),
    ];
    for (setup_sql, read) in cases {
        let mut mine = router.app_conn(Some(db)).await;
        let mut reference = direct(Some(db)).await;
        for sql in setup_sql {
            mine.query_drop(*sql).await.unwrap();
            reference.query_drop(*sql).await.unwrap();
        }
        meddle(&mut other, db).await;
        meddle(&mut other, db).await;
        // CONNECTION_ID() is the router's session id through it: compare the lock's owner
        // by its effect instead.
        let expected = if read.contains("IS_USED_LOCK") {
            vec![vec!["1".to_string()]]
        } else {
            rows(&mut reference, read).await
        };
        if read.contains("IS_USED_LOCK") {
            let held = rows(&mut mine, "SELECT IS_USED_LOCK('mx_lock') IS NOT NULL").await;
            assert_eq!(held, expected, "{read}");
            let released = rows(&mut mine, "SELECT RELEASE_LOCK('mx_lock')").await;
            assert_eq!(
                released,
                vec![vec!["1".to_string()]],
                "the lock is still ours"
            );
        } else {
            assert_eq!(rows(&mut mine, read).await, expected, "{read}");
        }
        mine.disconnect().await.unwrap();
        reference.disconnect().await.unwrap();
    }
}

#[tokio::test]
async fn what_a_statement_leaves_for_the_next_one_is_read_where_it_is() {
    let db = "mx_next";
    setup(db).await;
    let router = router("mx_next_svc", 1, 3000).await;
    let mut mine = router.app_conn(Some(db)).await;
    let mut other = router.app_conn(Some(db)).await;
    let mut reference = direct(Some(db)).await;
    // FOUND_ROWS() after SQL_CALC_FOUND_ROWS, SHOW WARNINGS after a warning: read
    // where they are, even after another session used the connection.
    for (first, then, meddled) in [
        (
            "SELECT SQL_CALC_FOUND_ROWS id FROM items ORDER BY id LIMIT 2",
            "SELECT FOUND_ROWS()",
            false,
        ),
        (
            "SELECT SQL_CALC_FOUND_ROWS id FROM items ORDER BY id LIMIT 2",
            "select Found_Rows() ;",
            true,
        ),
        ("SELECT CAST('12abc' AS INT)", "SHOW WARNINGS", false),
        ("SELECT CAST('12abc' AS INT)", "show warnings", true),
    ] {
        for c in [&mut mine, &mut reference] {
            c.query_drop(first).await.unwrap();
        }
        if meddled {
            other.query_drop("SELECT 1").await.unwrap();
        }
        let ours: Vec<Row> = mine.query(then).await.unwrap();
        let direct: Vec<Row> = reference.query(then).await.unwrap();
        let names = |r: &[Row]| {
            r.first().map(|r| {
                r.columns_ref()
                    .iter()
                    .map(|c| c.name_str().into_owned())
                    .collect::<Vec<_>>()
            })
        };
        assert_eq!(names(&ours), names(&direct), "{then}");
        let values = |r: &[Row]| {
            r.iter()
                .map(|r| (0..r.len()).map(|i| text(r, i)).collect::<Vec<_>>())
                .collect::<Vec<_>>()
        };
        assert_eq!(values(&ours), values(&direct), "{then}");
    }
    // ROW_COUNT() right after an UPDATE: the connection is taken back.
    mine.query_drop("UPDATE items SET note = CONCAT(note, '1') WHERE id < 40")
        .await
        .unwrap();
    let changed = mine.affected_rows();
    assert_eq!(changed, 3);
    let sql = "SELECT ROW_COUNT()";
    assert_eq!(rows(&mut mine, sql).await, vec![vec![changed.to_string()]]);
    // Another session ran on that connection in between: refused, never answered from a
    // connection that holds someone else's count.
    mine.query_drop("UPDATE items SET note = 'y' WHERE id <= 2")
        .await
        .unwrap();
    other.query_drop("SELECT 1").await.unwrap();
    let err = mine.query_drop(sql).await.unwrap_err();
    let (code, state, message) = server_error(err);
    assert_eq!((code, state.as_str()), (1235, "42000"), "{message}");
    assert!(message.contains("transaction pooling"), "{message}");
    // Inside a transaction the connection is the session's: exact.
    mine.query_drop("BEGIN").await.unwrap();
    mine.query_drop("UPDATE items SET note = CONCAT(note, '2')")
        .await
        .unwrap();
    // The transaction holds the only connection: the other session waits, then gets the
    // retryable 1040.
    let busy = other.query_drop("SELECT 1").await.unwrap_err();
    assert_eq!(server_error(busy).0, 1040);
    assert_eq!(rows(&mut mine, sql).await, vec![vec!["5".to_string()]]);
    mine.query_drop("COMMIT").await.unwrap();
}

/// When reading what a statement left for the next one fails — here its warnings, on a
/// connection that dies just as the router sends `SHOW WARNINGS` — the statement's own
/// answer is out already, so no second one: the session ends (its next command fails on a
/// closed connection, never answered from elsewhere), and only that session ends; the
/// others are served on connections that work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_lost_while_reading_what_a_statement_left_ends_only_that_session() {
    let proxy = CutProxy::start_cutting_on(master_addr(), b"SHOW WARNINGS").await;
    let router = TestRouter::start(RouterSettings {
        master: proxy.addr.clone(),
        sharding: "[sharding]\nunlisted_tables = \"global\"\n\n[pool]\nmode = \"transaction\"\nmax_per_shard = 2\nwait_ms = 3000\n\n[health]\ninterval_ms = 0\n".into(),
        ..Default::default()
    });
    let mut mine = router.app_conn(None).await;
    let mut other = router.app_conn(None).await;
    assert_eq!(rows(&mut other, "SELECT 'before'").await, [["before"]]);
    // Division by zero: a NULL and a warning, so the router reads SHOW WARNINGS there
    // before the connection goes back.
    assert_eq!(rows(&mut mine, "SELECT 1/0").await, [["NULL"]]);
    let err = mine
        .query_drop("SELECT 1")
        .await
        .expect_err("the session whose connection died after its statement must have ended");
    assert!(
        !matches!(err, mysql_async::Error::Server(_)),
        "the next statement was answered instead of failing: {err:?}"
    );
    // The other session, and new ones, are served; the dead connection is never lent.
    for i in 0..4 {
        assert_eq!(
            rows(&mut other, &format!("SELECT {i}")).await,
            [[i.to_string()]]
        );
        let mut fresh = router.app_conn(None).await;
        assert_eq!(rows(&mut fresh, "SELECT 'fresh'").await, [["fresh"]]);
    }
    let log = router.log_text();
    assert!(
        log.contains("a backend connection failed after the statement"),
        "{log}"
    );
}

#[tokio::test]
async fn prepared_statements_follow_the_session_across_connections() {
    let db = "mx_prep";
    setup(db).await;
    let router = router("mx_prep_svc", 1, 3000).await;
    let mut mine = router.app_conn(Some(db)).await;
    let mut other = router.app_conn(Some(db)).await;
    let sql = "SELECT note FROM items WHERE note = ?";
    let stmt = mine.prep(sql).await.unwrap();
    let theirs = other.prep(sql).await.unwrap();
    for round in 0..5u32 {
        let wanted = ["a", "b", "c", "d", "e"][round as usize];
        let note: Option<String> = mine.exec_first(&stmt, (wanted,)).await.unwrap();
        assert_eq!(note.as_deref(), Some(wanted));
        // The other session changes its state (the connection is reset for it, its
        // statements prepared again) and uses the same statement text too.
        other
            .query_drop(format!("SET @round = {round}"))
            .await
            .unwrap();
        let n: Option<String> = other.exec_first(&theirs, ("b",)).await.unwrap();
        assert_eq!(n.as_deref(), Some("b"));
        mine.query_drop(format!("SET @mine = {round}"))
            .await
            .unwrap();
    }
    mine.close(stmt).await.unwrap();
    // An insert and a read of its LAST_INSERT_ID(), both prepared, after switches.
    let long = "q".repeat(20);
    mine.exec_drop("INSERT INTO items (note) VALUES (?)", (long.clone(),))
        .await
        .unwrap();
    let back: Option<String> = mine
        .exec_first("SELECT note FROM items WHERE id = LAST_INSERT_ID()", ())
        .await
        .unwrap();
    assert_eq!(back.as_deref(), Some(long.as_str()));
    assert_eq!(backend_connections("mx_prep_svc").await, 1);
}

#[tokio::test]
async fn two_hundred_clients_share_eight_backend_connections() {
    let db = "mx_many";
    setup(db).await;
    let router = router("mx_many_svc", 8, 10_000).await;
    let mut tasks = tokio::task::JoinSet::new();
    for client in 0..200u32 {
        let opts = router.app_opts(Some(db));
        tasks.spawn(async move {
            let mut c = Conn::new(mysql_async::Opts::from(opts)).await.unwrap();
            c.query_drop("SET NAMES utf8mb4, autocommit = 1")
                .await
                .unwrap();
            for i in 0..10u32 {
                let n: Option<i64> = c.query_first("SELECT COUNT(*) FROM items").await.unwrap();
                assert!(n.unwrap() >= 5);
                c.query_drop("BEGIN").await.unwrap();
                c.exec_drop(
                    "INSERT INTO noise (note) VALUES (?)",
                    (format!("{client}-{i}"),),
                )
                .await
                .unwrap();
                let id = c.last_insert_id().unwrap();
                let mine: Option<String> = c
                    .query_first("SELECT note FROM noise WHERE id = LAST_INSERT_ID()")
                    .await
                    .unwrap();
                assert_eq!(mine, Some(format!("{client}-{i}")), "row {id}");
                c.query_drop("COMMIT").await.unwrap();
            }
            c.disconnect().await.unwrap();
        });
    }
    let mut peak = 0;
    while !tasks.is_empty() {
        tokio::select! {
            done = tasks.join_next() => {
                if let Some(r) = done {
                    r.unwrap();
                }
            }
            _ = tokio::time::sleep(Duration::from_millis(200)) => {
                peak = peak.max(backend_connections("mx_many_svc").await);
            }
        }
    }
    assert!(peak <= 8, "{peak} backend connections for 200 clients");
    let mut c = direct(Some(db)).await;
    let n: Option<i64> = c.query_first("SELECT COUNT(*) FROM noise").await.unwrap();
    assert_eq!(n, Some(2000));
}

#[tokio::test]
async fn an_open_cursor_keeps_the_connection_until_the_statement_is_closed() {
    use crate::raw::{execute, fetch, prepare, stmt_id, RawClient};
    use dbrouter::protocol::response::ResponseKind;
    let db = "mx_cursor";
    setup(db).await;
    let router = router("mx_cursor_svc", 1, 10_000).await;
    let mut r = RawClient::connect(&router.addr, "app", APP_PASSWORD, Some(db)).await;
    let mut d = RawClient::connect(&master_addr(), "dbrouter", "dbrouter-secret", Some(db)).await;
    let sql = "SELECT note FROM items ORDER BY id";
    let (rp, dp) = (
        r.command(&prepare(sql), ResponseKind::Prepare).await,
        d.command(&prepare(sql), ResponseKind::Prepare).await,
    );
    let (rid, did) = (stmt_id(&rp[0]), stmt_id(&dp[0]));
    let opened = r.command(&execute(rid, true), ResponseKind::Execute).await;
    assert_eq!(
        opened,
        d.command(&execute(did, true), ResponseKind::Execute).await
    );
    // Another session wants the only connection: it waits while the cursor is open.
    let opts = router.app_opts(Some(db));
    let other = tokio::spawn(async move {
        let started = std::time::Instant::now();
        let mut c = Conn::new(mysql_async::Opts::from(opts)).await.unwrap();
        c.query_drop("SELECT 1").await.unwrap();
        started.elapsed()
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..3 {
        let rows = r.command(&fetch(rid, 2), ResponseKind::Fetch).await;
        assert_eq!(rows, d.command(&fetch(did, 2), ResponseKind::Fetch).await);
    }
    assert!(
        !other.is_finished(),
        "the cursor's connection went to another session"
    );
    // Closing the statement (no answer) frees the session; its next command gives the
    // connection back.
    let mut close = vec![0x19];
    close.extend_from_slice(&rid.to_le_bytes());
    r.send(&close).await;
    let pong = r.command(&[0x0e], ResponseKind::Single).await;
    assert_eq!(pong[0][0], 0x00);
    let waited = tokio::time::timeout(Duration::from_secs(5), other)
        .await
        .expect("the other session got the connection")
        .unwrap();
    assert!(waited >= Duration::from_millis(250), "{waited:?}");
}

#[tokio::test]
async fn in_session_pooling_clients_that_only_set_their_defaults_hold_no_connection() {
    let svc = "mx_defaults_svc";
    fresh_service_user(svc).await;
    let router = TestRouter::start(RouterSettings {
        service_user: svc.into(),
        service_password: "svc-secret".into(),
        sharding: "[sharding]\nunlisted_tables = \"global\"\n\n[pool]\nmode = \"session\"\nmax_per_shard = 2\nwait_ms = 2000\n\n[health]\ninterval_ms = 0\n".into(),
        ..Default::default()
    });
    // Fifty clients set their driver's defaults, as Python's drivers do after login: a
    // pool of two serves them all, and none keeps a connection afterwards. (Raw clients:
    // mysql_async runs a query of its own after login.)
    use crate::raw::RawClient;
    use dbrouter::protocol::response::ResponseKind;
    let mut clients = Vec::new();
    for i in 0..50 {
        let mut c = RawClient::connect(&router.addr, "app", APP_PASSWORD, Some("app")).await;
        let names = if i % 2 == 0 { "utf8mb4" } else { "latin1" };
        for sql in [
            format!("SET NAMES {names}"),
            "SET autocommit = 0".to_string(),
        ] {
            let mut q = vec![0x03];
            q.extend_from_slice(sql.as_bytes());
            let ok = c.command(&q, ResponseKind::Query).await;
            assert_eq!(ok[0][0], 0x00, "{sql}: {ok:?}");
        }
        clients.push(c);
    }
    assert!(backend_connections(svc).await <= 2);
    // A SET MariaDB refuses is refused at once, as directly.
    let err = clients[2]
        .command(b"\x03SET no_such_variable = 1", ResponseKind::Query)
        .await;
    let err = dbrouter::protocol::packets::parse_err(&err[0]).expect("an ERR");
    assert_eq!(err.code, 1193);
    // Their state is there on first real use, as MariaDB answered it.
    for (i, c) in clients.iter_mut().enumerate().take(2) {
        let q = b"\x03SELECT CONCAT(@@character_set_client, ' ', @@autocommit)";
        let rows = c.command(q, ResponseKind::Query).await;
        let names = if i % 2 == 0 { "utf8mb4" } else { "latin1" };
        let row = c.first_row(&rows);
        assert!(row.ends_with(format!("{names} OFF").as_bytes()), "{row:?}");
    }
}

#[tokio::test]
async fn a_statement_shared_by_sessions_answers_each_with_its_own_types() {
    let router = router("mx_types_svc", 2, 10_000).await;
    // Metadata caching would let the server leave out definitions it sent another
    // session: transaction pooling does not offer it (mysql_async asks for it).
    // Sessions that prepared the same text share its server statement on each connection;
    // one that executes it after another must still get the definitions of its answer
    // (with metadata caching the server would leave them out, and the client would read
    // the row with the DOUBLE its own prepare announced).
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..16i64 {
        let opts = router.app_opts(Some("app"));
        tasks.spawn(async move {
            let mut c = Conn::new(mysql_async::Opts::from(opts)).await.unwrap();
            for j in 0..40i64 {
                let v: Option<i64> = c.exec_first("SELECT ? + ?", (i, j)).await.unwrap();
                assert_eq!(v, Some(i + j));
            }
            c.disconnect().await.unwrap();
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
}
