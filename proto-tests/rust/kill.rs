//! Session ids end to end: the greeting's id, `CONNECTION_ID()`, `SHOW PROCESSLIST`,
//! `information_schema.PROCESSLIST` and `KILL [CONNECTION | QUERY]` all speak the
//! router's session ids; a client sees and kills only its own account's sessions.

use std::time::{Duration, Instant};

use mysql_async::prelude::*;
use mysql_async::{Conn, Opts};

use crate::harness::*;

async fn id_of(c: &mut Conn) -> u64 {
    c.query_first("SELECT CONNECTION_ID()")
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn the_greeting_connection_id_and_the_process_list_agree() {
    let router = TestRouter::start(RouterSettings::default());
    let mut c = router.app_conn(Some("app")).await;
    let greeting = u64::from(c.id());
    assert_eq!(id_of(&mut c).await, greeting);
    // The column keeps MariaDB's name.
    let row: mysql_async::Row = c
        .query_first("SELECT CONNECTION_ID()")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.columns_ref()[0].name_str(), "CONNECTION_ID()");
    let other = router.app_conn(None).await;
    let other_id = u64::from(other.id());
    assert_ne!(other_id, greeting);
    // SHOW PROCESSLIST: both sessions, by router id, with what they run.
    let rows: Vec<(u64, String, Option<String>, String)> = c
        .query("SHOW FULL PROCESSLIST")
        .await
        .unwrap()
        .into_iter()
        .map(|r: mysql_async::Row| {
            let (id, user, _host, db, command): (u64, String, String, Option<String>, String) = (
                r.get(0).unwrap(),
                r.get(1).unwrap(),
                r.get(2).unwrap(),
                r.get(3).unwrap(),
                r.get(4).unwrap(),
            );
            (id, user, db, command)
        })
        .collect();
    let ids: Vec<u64> = rows.iter().map(|r| r.0).collect();
    assert!(
        ids.contains(&greeting) && ids.contains(&other_id),
        "{rows:?}"
    );
    assert!(rows.iter().all(|r| r.1 == "app"));
    let me = rows.iter().find(|r| r.0 == greeting).unwrap();
    assert_eq!((me.2.as_deref(), me.3.as_str()), (Some("app"), "Query"));
    // information_schema.PROCESSLIST: the same sessions, any query over it.
    let mine: Option<(u64, String)> = c
        .query_first(
            "SELECT ID, USER FROM information_schema.PROCESSLIST WHERE ID = CONNECTION_ID()",
        )
        .await
        .unwrap();
    assert_eq!(mine, Some((greeting, "app".to_string())));
    let n: Option<i64> = c
        .query_first("SELECT COUNT(*) FROM information_schema.processlist p WHERE p.USER = 'app'")
        .await
        .unwrap();
    assert!(n.unwrap() >= 2);
    // Another account's session is not listed, and not its to kill.
    let mut foreign = Conn::new(Opts::from(
        router
            .app_opts(None)
            .user(Some("native_only"))
            .pass(Some("native-secret")),
    ))
    .await
    .unwrap();
    let foreign_id = u64::from(foreign.id());
    let listed: Vec<u64> = c
        .query("SELECT ID FROM information_schema.PROCESSLIST")
        .await
        .unwrap();
    assert!(!listed.contains(&foreign_id));
    let err = c
        .query_drop(format!("KILL {foreign_id}"))
        .await
        .unwrap_err();
    let (code, _, msg) = server_error(err);
    assert_eq!(
        (code, msg),
        (1094, format!("Unknown thread id: {foreign_id}"))
    );
    let v: Option<i64> = foreign.query_first("SELECT 1").await.unwrap();
    assert_eq!(v, Some(1), "untouched");
    let err = c.query_drop("KILL 99999999").await.unwrap_err();
    assert_eq!(server_error(err).0, 1094);
    // A KILL form the router does not carry out.
    let err = c.query_drop("KILL USER app").await.unwrap_err();
    assert_eq!(server_error(err).0, 1235);
    drop(other);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_query_interrupts_the_statement_and_kill_connection_ends_the_session() {
    let router = TestRouter::start(RouterSettings::default());
    let mut killer = router.app_conn(Some("app")).await;

    // KILL QUERY: the running statement gets MariaDB's 1317; the session goes on.
    let mut busy = router.app_conn(Some("app")).await;
    let busy_id = u64::from(busy.id());
    let running = tokio::spawn(async move {
        let started = Instant::now();
        let result = busy.query_drop("SELECT SLEEP(30)").await;
        (busy, result, started.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    killer
        .query_drop(format!("KILL QUERY {busy_id}"))
        .await
        .unwrap();
    let (mut busy, result, took) = running.await.unwrap();
    assert!(
        took < Duration::from_secs(20),
        "interrupted, not waited out: {took:?}"
    );
    match result {
        // SLEEP() interrupted returns 1 with no error on MariaDB; other statements get 1317.
        Ok(()) => {}
        Err(e) => assert_eq!(server_error(e).0, 1317),
    }
    let v: Option<i64> = busy.query_first("SELECT 2").await.unwrap();
    assert_eq!(v, Some(2), "the session goes on after KILL QUERY");
    // A statement that cannot return early: 1317.
    let busy_id = u64::from(busy.id());
    let running = tokio::spawn(async move {
        let r = busy
            .query_drop("SELECT COUNT(*) FROM seq_1_to_1000000000 WHERE seq % 7 = 3")
            .await;
        (busy, r)
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    killer
        .query_drop(format!("KILL QUERY {busy_id}"))
        .await
        .unwrap();
    let (_busy, result) = running.await.unwrap();
    assert_eq!(server_error(result.unwrap_err()).0, 1317);

    // KILL CONNECTION of a running session: its statement fails, the connection closes.
    let mut victim = router.app_conn(Some("app")).await;
    let victim_id = u64::from(victim.id());
    let running = tokio::spawn(async move {
        let r = victim
            .query_drop("SELECT COUNT(*) FROM seq_1_to_1000000000 WHERE seq % 7 = 3")
            .await;
        (victim, r)
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    killer
        .query_drop(format!("KILL {victim_id}"))
        .await
        .unwrap();
    let (mut victim, result) = running.await.unwrap();
    assert!(result.is_err());
    assert!(victim.query_drop("SELECT 1").await.is_err(), "closed");

    // COM_PROCESS_KILL (mysql_kill(), the binary KILL CONNECTION) of an idle session.
    let mut binary = router.app_conn(Some("app")).await;
    let mut raw = crate::raw::RawClient::connect(&router.addr, "app", APP_PASSWORD, None).await;
    let mut cmd = vec![0x0c];
    cmd.extend_from_slice(&binary.id().to_le_bytes());
    let ok = raw
        .command(&cmd, dbrouter::protocol::response::ResponseKind::Single)
        .await;
    assert_eq!(ok[0][0], 0x00, "{ok:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(binary.query_drop("SELECT 1").await.is_err());

    // KILL CONNECTION of an idle session: its next statement finds the connection closed.
    let mut idle = router.app_conn(Some("app")).await;
    let idle_id = u64::from(idle.id());
    killer
        .query_drop(format!("KILL CONNECTION {idle_id}"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(idle.query_drop("SELECT 1").await.is_err());
    let listed: Vec<u64> = killer
        .query("SELECT ID FROM information_schema.PROCESSLIST")
        .await
        .unwrap();
    assert!(
        !listed.contains(&idle_id) && !listed.contains(&victim_id),
        "{listed:?}"
    );

    // Killing itself: MariaDB's 1927, then the connection is gone.
    let err = killer.query_drop("KILL CONNECTION_ID()").await.unwrap_err();
    assert_eq!(server_error(err).0, 1927);
    assert!(killer.query_drop("SELECT 1").await.is_err());
}
