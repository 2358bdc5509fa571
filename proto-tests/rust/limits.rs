//! Login abuse limits against a real router: failed logins delay the next attempts from
//! that address (the right password included) but not logins from another address;
//! connections of one address still logging in are capped; an account's sessions are
//! capped (MySQL's 1226); a user name with a newline cannot forge a log line.

use std::time::{Duration, Instant};

use dbrouter::backend::connection::login;
use dbrouter::backend::LoginOptions;
use dbrouter::net::PacketConn;
use dbrouter::protocol::handshake::offered_capabilities;
use mysql_common::constants::MariadbCapabilities;

use mysql_async::prelude::*;
use mysql_async::{Conn, Opts};
use tokio::io::AsyncReadExt;
use tokio::net::TcpSocket;

use crate::harness::*;

/// A router with `[limits]` set as given (appended after the sharding table).
fn limited(limits: &str, users: &str) -> TestRouter {
    let mut s = RouterSettings::default();
    s.sharding
        .push_str(&format!("\n[limits]\n{limits}\n{users}"));
    TestRouter::start(s)
}

/// One login with dbrouter's own client handshake from `bind` (a loopback address):
/// whether it succeeded, the error if not, and how long it took.
async fn login_from(
    router: &TestRouter,
    bind: &str,
    user: &str,
    password: &str,
) -> (bool, String, Duration) {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{bind}:0").parse().unwrap()).unwrap();
    let started = Instant::now();
    let stream = socket.connect(router.addr.parse().unwrap()).await.unwrap();
    let mut io = PacketConn::new(stream);
    let opts = LoginOptions {
        user: user.into(),
        password: password.into(),
        password_sha1: None,
        database: None,
        collation: None,
        capabilities: offered_capabilities(),
        mariadb_capabilities: MariadbCapabilities::empty(),
        attributes: None,
    };
    let result = tokio::time::timeout(Duration::from_secs(30), login(&mut io, &router.addr, &opts))
        .await
        .expect("login answered within 30 s");
    let took = started.elapsed();
    match result {
        Ok(_) => (true, String::new(), took),
        Err(e) => (false, e.to_string(), took),
    }
}

#[tokio::test]
async fn failed_logins_delay_that_address_and_not_another() {
    let step = Duration::from_millis(2000);
    let router = limited(
        "failures_per_address = 2\ndelay_step_ms = 2000\ndelay_max_ms = 4000\n",
        "",
    );
    for _ in 0..2 {
        let (ok, out, _) = login_from(&router, "127.0.0.1", "app", "wrong").await;
        assert!(!ok && out.contains("1045"), "{out}");
    }
    // The third attempt from that address waits, even with the right password.
    let (ok, out, took) = login_from(&router, "127.0.0.1", "app", APP_PASSWORD).await;
    assert!(ok, "{out}");
    assert!(took >= step, "not delayed: {took:?}");
    // Another address logs in at once (the account is far below its own threshold).
    for _ in 0..2 {
        let (ok, out, _) = login_from(&router, "127.0.0.1", "app", "wrong").await;
        assert!(!ok, "{out}");
    }
    let (ok, out, took) = login_from(&router, "127.0.0.2", "app", APP_PASSWORD).await;
    assert!(ok, "{out}");
    assert!(took < step, "another address was delayed: {took:?}");
    // A success clears the address: the next attempt is not delayed.
    let (ok, _, took) = login_from(&router, "127.0.0.1", "app", APP_PASSWORD).await;
    assert!(ok && took >= step, "{took:?}");
    let (ok, _, took) = login_from(&router, "127.0.0.1", "app", APP_PASSWORD).await;
    assert!(ok && took < step, "still delayed after a success: {took:?}");
}

/// A TCP connection from `bind` that reads the router's first packet and stays open.
async fn first_packet(router: &TestRouter, bind: &str) -> (tokio::net::TcpStream, Vec<u8>) {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{bind}:0").parse().unwrap()).unwrap();
    let mut stream = socket.connect(router.addr.parse().unwrap()).await.unwrap();
    let mut header = [0u8; 4];
    stream.read_exact(&mut header).await.unwrap();
    let len = usize::from(header[0]) | usize::from(header[1]) << 8 | usize::from(header[2]) << 16;
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload).await.unwrap();
    (stream, payload)
}

#[tokio::test]
async fn connections_still_logging_in_are_capped_per_address() {
    let router = limited("max_logins_per_address = 2\n", "");
    // Two connections in their connection phase. (The probes that waited for the router
    // to listen were connections from this address too: on a loaded machine their
    // sessions may still hold a place for a moment, so try again until both are greeted.)
    let deadline = Instant::now() + Duration::from_secs(5);
    let (a, _b) = loop {
        let (a, greeting_a) = first_packet(&router, "127.0.0.1").await;
        let (b, greeting_b) = first_packet(&router, "127.0.0.1").await;
        if greeting_a[0] == 10 && greeting_b[0] == 10 {
            break (a, b);
        }
        assert!(Instant::now() < deadline, "never two greetings");
        drop((a, b));
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // The third from that address gets ERR 1040 instead of a greeting.
    let (_c, refused) = first_packet(&router, "127.0.0.1").await;
    assert_eq!(refused[0], 0xff, "{refused:?}");
    assert_eq!(u16::from_le_bytes([refused[1], refused[2]]), 1040);
    assert!(String::from_utf8_lossy(&refused).contains("max_logins_per_address"));
    // Another address is not affected; and a closed connection frees its place.
    let (_d, other) = first_packet(&router, "127.0.0.2").await;
    assert_eq!(other[0], 10);
    drop(a);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_e, again) = first_packet(&router, "127.0.0.1").await;
        if again[0] == 10 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the closed connection's place was not freed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn an_account_has_at_most_its_max_connections() {
    let router = limited(
        "",
        "[[users]]\nname = \"capped\"\npassword = \"capped-secret\"\nmax_connections = 2\nbackend_user = \"app\"\nbackend_password = \"app-secret\"\n",
    );
    let opts = || {
        Opts::from(
            router
                .app_opts(None)
                .user(Some("capped"))
                .pass(Some("capped-secret")),
        )
    };
    let one = Conn::new(opts()).await.unwrap();
    let two = Conn::new(opts()).await.unwrap();
    let err = Conn::new(opts()).await.unwrap_err();
    let (code, state, message) = server_error(err);
    assert_eq!((code, state.as_str()), (1226, "42000"), "{message}");
    assert!(
        message.contains("max_user_connections") && message.contains("capped"),
        "{message}"
    );
    // Other accounts are not counted against it.
    router.app_conn(None).await.disconnect().await.unwrap();
    one.disconnect().await.unwrap();
    let mut three = Conn::new(opts()).await.unwrap();
    let n: Option<i64> = three.query_first("SELECT 3").await.unwrap();
    assert_eq!(n, Some(3));
    two.disconnect().await.unwrap();
    three.disconnect().await.unwrap();
}

#[tokio::test]
async fn a_user_name_with_a_newline_cannot_forge_a_log_line() {
    let router = limited("", "");
    let (ok, _, _) = login_from(
        &router,
        "127.0.0.1",
        "evil\nINFO forged: admin logged in",
        "x",
    )
    .await;
    assert!(!ok);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = std::fs::read_to_string(&router.log).unwrap();
    assert!(
        !log.lines().any(|l| l.starts_with("INFO forged")),
        "a forged line: {log}"
    );
    assert!(log.contains("evil\\nINFO forged"), "{log}");
}

#[tokio::test]
async fn a_session_holds_a_bounded_number_and_size_of_prepared_statements() {
    let router = limited(
        "max_prepared_per_session = 3\nmax_session_bytes = 4096\n",
        "",
    );
    let mut c = router.app_conn(None).await;
    let mut held = Vec::new();
    for i in 1..=3 {
        held.push(c.prep(format!("SELECT {i} + ?")).await.unwrap());
    }
    let (code, state, message) = server_error(c.prep("SELECT 4 + ?").await.unwrap_err());
    assert_eq!((code, state.as_str()), (1461, "42000"), "{message}");
    assert!(message.contains("max_prepared_stmt_count"), "{message}");
    // The session goes on, and a closed statement frees its place.
    let n: Option<i64> = c.query_first("SELECT 5").await.unwrap();
    assert_eq!(n, Some(5));
    c.close(held.remove(0)).await.unwrap();
    let s = c.prep("SELECT 6 + ?").await.unwrap();
    let n: Option<i64> = c.exec_first(&s, (1,)).await.unwrap();
    assert_eq!(n, Some(7));
    for s in held.drain(..).chain([s]) {
        c.close(s).await.unwrap();
    }
    // A statement text that would take the session over its byte budget is refused.
    let big = format!("SELECT '{}' AS big, ? AS p", "x".repeat(5000));
    let (code, _, message) = server_error(c.prep(big).await.unwrap_err());
    assert_eq!(code, 1041, "{message}");
    assert!(message.contains("max_session_bytes"), "{message}");
    let n: Option<i64> = c.query_first("SELECT 8").await.unwrap();
    assert_eq!(n, Some(8));
    c.disconnect().await.unwrap();
}
