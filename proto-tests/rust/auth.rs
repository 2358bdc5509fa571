//! Authentication: both plugins, plugin switching, wrong passwords, unknown accounts,
//! unknown databases, COM_CHANGE_USER and COM_RESET_CONNECTION, with mysql_async.

use mysql_async::prelude::*;
use mysql_async::{ChangeUserOpts, Conn, Opts};

use crate::harness::*;

fn opts_for(addr: &str, user: &str, pass: &str) -> Opts {
    Opts::from(app_opts(addr, None).user(Some(user)).pass(Some(pass)))
}

async fn login(addr: &str, user: &str, pass: &str) -> Result<Conn, mysql_async::Error> {
    Conn::new(opts_for(addr, user, pass)).await
}

async fn assert_works(addr: &str, user: &str, pass: &str) {
    let mut c = login(addr, user, pass)
        .await
        .unwrap_or_else(|e| panic!("{user} could not log in to {addr}: {e}"));
    let v: Option<i64> = c.query_first("SELECT 1").await.unwrap();
    assert_eq!(v, Some(1));
    c.disconnect().await.unwrap();
}

fn assert_denied(result: Result<Conn, mysql_async::Error>, user: &str) {
    let err = result.expect_err("login must fail");
    let (code, state, msg) = server_error(err);
    assert_eq!(code, 1045);
    assert_eq!(state, "28000");
    assert_eq!(
        msg,
        format!("Access denied for user '{user}'@'127.0.0.1' (using password: YES)")
    );
}

#[tokio::test]
async fn native_password_login_and_denials() {
    let addr = cluster_router_addr();
    assert_works(&addr, "app", APP_PASSWORD).await;
    assert_denied(login(&addr, "app", "wrong").await, "app");
    assert_denied(login(&addr, "nobody", "whatever").await, "nobody");
}

#[tokio::test]
async fn every_plugin_combination_logs_in() {
    // Greeting with mysql_native_password (default) and with caching_sha2_password:
    // accounts with only the other hash are switched (AuthSwitchRequest) to their plugin.
    for plugin in ["mysql_native_password", "caching_sha2_password"] {
        let router = TestRouter::start(RouterSettings {
            server_extra: format!("default_auth_plugin = \"{plugin}\""),
            ..Default::default()
        });
        assert_works(&router.addr, "app", APP_PASSWORD).await;
        assert_works(&router.addr, "native_only", "native-secret").await;
        assert_works(&router.addr, "sha2_only", "sha2-secret").await;
        assert_works(&router.addr, "nopass", "").await;
        assert_denied(login(&router.addr, "sha2_only", "wrong").await, "sha2_only");
        assert_denied(
            login(&router.addr, "native_only", "sha2-secret").await,
            "native_only",
        );
        assert_denied(login(&router.addr, "nopass", "something").await, "nopass");
    }
}

#[tokio::test]
async fn unknown_database_is_the_backends_own_error() {
    let via_router = Conn::new(Opts::from(app_opts(
        &cluster_router_addr(),
        Some("no_such_db"),
    )))
    .await
    .err()
    .unwrap();
    // The session acts as the app account at the database: the router's answer is the
    // one MariaDB gives the app account itself (which may not even learn whether the
    // database exists: 1044), and the admin account, which may, gets 1049 directly.
    let direct = Conn::new(Opts::from(app_direct_opts(Some("no_such_db"))))
        .await
        .err()
        .unwrap();
    let (r, d) = (server_error(via_router), server_error(direct));
    assert_eq!(r, d);
    assert_eq!(r.0, 1044, "{r:?}");
    let admin = Conn::new(Opts::from(direct_opts(Some("no_such_db"))))
        .await
        .err()
        .unwrap();
    assert_eq!(server_error(admin).0, 1049);
}

#[tokio::test]
async fn connect_with_db_and_attributes() {
    fresh_database("t_connect_db").await;
    let opts = app_opts(&cluster_router_addr(), Some("t_connect_db")).connect_attributes(
        [("program_name", "proto-test"), ("team", "dbrouter")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    let mut c = Conn::new(Opts::from(opts)).await.unwrap();
    let db: Option<String> = c.query_first("SELECT DATABASE()").await.unwrap();
    assert_eq!(db.as_deref(), Some("t_connect_db"));
}

#[tokio::test]
async fn change_user_resets_the_session_and_checks_the_password() {
    fresh_database("t_change_user").await;
    let addr = cluster_router_addr();
    let mut c = login(&addr, "app", APP_PASSWORD).await.unwrap();
    c.query_drop("SET @marker = 'before'").await.unwrap();
    c.change_user(
        ChangeUserOpts::default()
            .with_user(Some("app".into()))
            .with_pass(Some(APP_PASSWORD.into()))
            .with_db_name(Some("t_change_user".into())),
    )
    .await
    .unwrap();
    let (marker, db): (Option<String>, Option<String>) = c
        .query_first("SELECT @marker, DATABASE()")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(marker, None, "session state survived COM_CHANGE_USER");
    assert_eq!(db.as_deref(), Some("t_change_user"));

    let err = c
        .change_user(ChangeUserOpts::default().with_pass(Some("wrong".into())))
        .await
        .unwrap_err();
    assert_eq!(server_error(err).0, 1045);
}

#[tokio::test]
async fn reset_connection_clears_state() {
    let mut c = login(&cluster_router_addr(), "app", APP_PASSWORD)
        .await
        .unwrap();
    c.query_drop("SET @x = 1").await.unwrap();
    c.query_drop("CREATE TEMPORARY TABLE app.tmp_reset (a INT)")
        .await
        .unwrap();
    assert!(c.reset().await.unwrap(), "COM_RESET_CONNECTION not used");
    let x: Option<Option<i64>> = c.query_first("SELECT @x").await.unwrap();
    assert_eq!(x, Some(None));
    let err = c
        .query_drop("SELECT * FROM app.tmp_reset")
        .await
        .unwrap_err();
    assert_eq!(server_error(err).0, 1146);
}
