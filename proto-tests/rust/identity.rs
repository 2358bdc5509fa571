//! Each client acts as itself at the database (`[auth] identity = "client"`, the
//! default): grants, the process list and KILL rights are MariaDB's own, per account;
//! accounts made with `CREATE USER` log in through the router (`[auth] source =
//! "backend"`), host patterns and password changes included; a mapped account acts as its
//! `backend_user`. Against the real MariaDB of the test cluster.

use std::time::{Duration, Instant};

use mysql_async::prelude::*;
use mysql_async::{ChangeUserOpts, Conn, Opts};

use crate::harness::*;

fn as_user(router: &TestRouter, user: &str, password: &str, db: Option<&str>) -> Opts {
    Opts::from(router.app_opts(db).user(Some(user)).pass(Some(password)))
}

async fn current_user(c: &mut Conn) -> String {
    let who: Option<String> = c.query_first("SELECT CURRENT_USER()").await.unwrap();
    who.unwrap()
}

/// Logs in, retrying while the router answers 1045 (an account created or changed a
/// moment ago), for up to `within`.
async fn login_within(opts: Opts, within: Duration) -> Conn {
    let deadline = Instant::now() + within;
    loop {
        match Conn::new(opts.clone()).await {
            Ok(c) => return c,
            Err(e) => {
                let (code, _, msg) = server_error(e);
                assert_eq!(code, 1045, "{msg}");
                assert!(Instant::now() < deadline, "still refused: {msg}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn drop_users(admin: &mut Conn, users: &[&str]) {
    for user in users {
        admin
            .query_drop(format!("DROP USER IF EXISTS {user}"))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn sessions_act_as_the_clients_own_account() {
    fresh_database("t_identity").await;
    let router = TestRouter::start(RouterSettings::default());
    let mut c = router.app_conn(Some("t_identity")).await;
    assert_eq!(current_user(&mut c).await, "app@%");

    // The application account cannot read the accounts' password hashes.
    let err = c
        .query_drop("SELECT user, authentication_string FROM mysql.user")
        .await
        .unwrap_err();
    assert_eq!(server_error(err).0, 1142, "SELECT denied on mysql.user");

    // Another account's session is invisible to it, and not its to KILL.
    let mut admin = direct(None).await;
    let admin_id: u64 = admin
        .query_first("SELECT CONNECTION_ID()")
        .await
        .unwrap()
        .unwrap();
    let users: Vec<String> = c
        .query("SELECT DISTINCT USER FROM information_schema.PROCESSLIST")
        .await
        .unwrap();
    assert_eq!(users, vec!["app".to_string()], "only its own sessions");
    let listed: Vec<u64> = c
        .query("SELECT ID FROM information_schema.PROCESSLIST")
        .await
        .unwrap();
    assert!(!listed.contains(&admin_id));
    // (KILL speaks router session ids: a backend thread id is no session of its.)
    let err = c.query_drop(format!("KILL {admin_id}")).await.unwrap_err();
    assert_eq!(server_error(err).0, 1094, "unknown to the app account");
    let alive: Option<i64> = admin.query_first("SELECT 1").await.unwrap();
    assert_eq!(alive, Some(1));

    // A mapped account (backend_user = "app") acts as app, whatever its own name.
    for (user, password) in [
        ("native_only", "native-secret"),
        ("sha2_only", "sha2-secret"),
    ] {
        let mut m = Conn::new(as_user(&router, user, password, None))
            .await
            .unwrap();
        assert_eq!(current_user(&mut m).await, "app@%", "{user}");
    }
}

#[tokio::test]
async fn a_caching_sha2_client_is_switched_to_native_to_act_as_itself() {
    let router = TestRouter::start(RouterSettings {
        server_extra: "default_auth_plugin = \"caching_sha2_password\"".into(),
        ..Default::default()
    });
    let mut c = router.app_conn(None).await;
    assert_eq!(current_user(&mut c).await, "app@%");
}

#[tokio::test]
async fn the_databases_refusal_of_the_clients_own_account_reaches_the_client() {
    let mut admin = direct(None).await;
    drop_users(&mut admin, &["'ident_c'@'%'"]).await;
    admin
        .query_drop("CREATE USER 'ident_c'@'%' IDENTIFIED BY 'c-at-the-database'")
        .await
        .unwrap();
    // The router's entry for ident_c has another password than MariaDB's.
    let router = TestRouter::start(RouterSettings {
        users: format!(
            "[[users]]\nname = \"ident_c\"\nmysql_native_password = \"{}\"\n",
            dbrouter::protocol::auth::native_hash_string("c-at-the-router")
        ),
        ..Default::default()
    });
    let err = Conn::new(as_user(&router, "ident_c", "c-at-the-router", None))
        .await
        .unwrap_err();
    let (code, state, msg) = server_error(err);
    assert_eq!((code, state.as_str()), (1045, "28000"), "{msg}");
    assert!(msg.contains("ident_c"), "MariaDB's own message: {msg}");
    drop_users(&mut admin, &["'ident_c'@'%'"]).await;
}

#[tokio::test]
async fn accounts_created_on_the_backend_log_in_through_the_router() {
    fresh_database("t_ident_backend").await;
    let mut admin = direct(None).await;
    let accounts = [
        "'ident_b'@'%'",
        "'ident_h'@'10.9.9.9'",
        "'ident_h'@'127.0.0.%'",
    ];
    drop_users(&mut admin, &accounts).await;
    let router = TestRouter::start(RouterSettings {
        auth: "source = \"backend\"\nrefresh_ms = 300".into(),
        ..Default::default()
    });
    let db = Some("t_ident_backend");

    // Made after the router started: an unknown name is looked up at once.
    admin
        .query_drop("CREATE USER 'ident_b'@'%' IDENTIFIED BY 'b-secret'")
        .await
        .unwrap();
    admin
        .query_drop("GRANT SELECT ON `t_ident_backend`.* TO 'ident_b'@'%'")
        .await
        .unwrap();
    let within = Duration::from_secs(5);
    let mut b = login_within(as_user(&router, "ident_b", "b-secret", db), within).await;
    assert_eq!(current_user(&mut b).await, "ident_b@%");
    // Its grants are MariaDB's: it may read, not write.
    let err = b
        .query_drop("CREATE TABLE t (id INT PRIMARY KEY)")
        .await
        .unwrap_err();
    assert_eq!(server_error(err).0, 1142);
    let wrong = Conn::new(as_user(&router, "ident_b", "not-it", db)).await;
    assert_eq!(server_error(wrong.unwrap_err()).0, 1045);

    // Host patterns: a row for another network admits nobody from here; a row for
    // loopback admits its own password only.
    admin
        .query_drop("CREATE USER 'ident_h'@'10.9.9.9' IDENTIFIED BY 'far'")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let far = Conn::new(as_user(&router, "ident_h", "far", None)).await;
    assert_eq!(server_error(far.unwrap_err()).0, 1045);
    admin
        .query_drop("CREATE USER 'ident_h'@'127.0.0.%' IDENTIFIED BY 'near'")
        .await
        .unwrap();
    let mut h = login_within(as_user(&router, "ident_h", "near", None), within).await;
    assert_eq!(current_user(&mut h).await, "ident_h@127.0.0.%");
    let far = Conn::new(as_user(&router, "ident_h", "far", None)).await;
    assert_eq!(server_error(far.unwrap_err()).0, 1045);

    // A password change reaches the router within refresh_ms.
    admin
        .query_drop("ALTER USER 'ident_b'@'%' IDENTIFIED BY 'b-changed'")
        .await
        .unwrap();
    let mut b2 = login_within(as_user(&router, "ident_b", "b-changed", db), within).await;
    assert_eq!(current_user(&mut b2).await, "ident_b@%");
    let old = Conn::new(as_user(&router, "ident_b", "b-secret", db)).await;
    assert_eq!(server_error(old.unwrap_err()).0, 1045);

    // COM_CHANGE_USER from a config account to a backend account and back.
    let mut c = router.app_conn(None).await;
    c.change_user(
        ChangeUserOpts::default()
            .with_user(Some("ident_b".into()))
            .with_pass(Some("b-changed".into()))
            .with_db_name(Some("t_ident_backend".into())),
    )
    .await
    .unwrap();
    assert_eq!(current_user(&mut c).await, "ident_b@%");
    c.change_user(
        ChangeUserOpts::default()
            .with_user(Some("app".into()))
            .with_pass(Some(APP_PASSWORD.into())),
    )
    .await
    .unwrap();
    assert_eq!(current_user(&mut c).await, "app@%");

    // Pools are per account: connections ident_b used are never lent to app.
    drop((b, b2, h));
    for _ in 0..3 {
        let mut a = router.app_conn(None).await;
        assert_eq!(current_user(&mut a).await, "app@%");
    }
    drop_users(&mut admin, &accounts).await;
}

#[tokio::test]
async fn a_router_acting_as_the_service_account_still_serves() {
    // identity = "service": every session acts as [backend] (the behaviour before
    // identities; for deployments whose accounts exist only in the router's config).
    fresh_service_user("svc_identity").await;
    let router = TestRouter::start(RouterSettings {
        service_user: "svc_identity".into(),
        service_password: "svc-secret".into(),
        ..Default::default()
    });
    let mut c = router.app_conn(None).await;
    assert_eq!(current_user(&mut c).await, "svc_identity@%");
}

#[tokio::test]
async fn logins_naming_unknown_accounts_read_mysql_user_at_most_once_a_second() {
    // No login delays: the 20 failed logins below run at once.
    let defaults = RouterSettings::default();
    let router = TestRouter::start(RouterSettings {
        auth: "source = \"backend\"\nrefresh_ms = 600000".into(),
        sharding: format!(
            "{}\n[limits]\nfailures_per_address = 1000\nfailures_per_account = 1000\n",
            defaults.sharding
        ),
        ..defaults
    });
    let reads = || router.log_text().matches("backend accounts read").count();
    // The start-up read, then quiet.
    let deadline = Instant::now() + Duration::from_secs(5);
    while reads() == 0 {
        assert!(Instant::now() < deadline, "no start-up read");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let before = reads();
    let started = Instant::now();
    let logins: Vec<_> = (0..20)
        .map(|i| {
            let opts = as_user(&router, &format!("nobody_{i}"), "x", None);
            tokio::spawn(async move { Conn::new(opts).await.map(drop) })
        })
        .collect();
    for login in logins {
        let err = login.await.unwrap().unwrap_err();
        assert_eq!(server_error(err).0, 1045);
    }
    let during = reads() - before;
    // Once for the burst, and at most once more per second it lasted (a loaded machine
    // may spread it out).
    let allowed = 1 + started.elapsed().as_secs() as usize;
    assert!(
        (1..=allowed).contains(&during),
        "20 logins naming unknown accounts read mysql.user {during} times in {:?}",
        started.elapsed()
    );
}
