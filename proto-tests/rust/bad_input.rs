//! Bad input from clients and backends: garbage, truncation, wrong sequence ids, packets
//! over the limit, clients that vanish mid-result and backends that die mid-result. Each
//! gets a clear error where one can be sent, the router survives, other connections are
//! unaffected, and no backend connection is left behind.

use std::time::Duration;

use mysql_async::prelude::*;
use mysql_async::{Conn, Opts};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::*;
use crate::raw::RawClient;
use dbrouter::protocol::packets::parse_err;
use dbrouter::protocol::response::ResponseKind;

/// Reads until EOF (or 10 s) and returns every packet payload received.
async fn read_all_packets(stream: &mut TcpStream) -> Vec<Vec<u8>> {
    let mut bytes = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut bytes)).await;
    let mut packets = Vec::new();
    let mut pos = 0;
    while let Some((len, _)) = dbrouter::net::parse_header(&bytes[pos..]) {
        let end = (pos + 4 + len).min(bytes.len());
        packets.push(bytes[pos + 4..end].to_vec());
        pos = end;
    }
    packets
}

/// A router whose backend connections are the only ones of a private service account,
/// and which keeps no idle connections: every backend connection it has is in use.
async fn router_with_private_user(tag: &str, extra: &str) -> (TestRouter, String) {
    let user = format!("svc_{tag}");
    fresh_service_user(&user).await;
    let defaults = RouterSettings::default();
    let router = TestRouter::start(RouterSettings {
        service_user: user.clone(),
        service_password: "svc-secret".into(),
        server_extra: extra.into(),
        sharding: format!(
            // Session pooling: a connection closed at once when its session ends (no idle
            // kept) shows that nothing leaked.
            "{}\n[pool]\nmode = \"session\"\nmax_idle_per_shard = 0\n",
            defaults.sharding
        ),
        ..defaults
    });
    (router, user)
}

async fn still_serves(router: &TestRouter) {
    let mut c = router.app_conn(None).await;
    let v: Option<i64> = c.query_first("SELECT 11").await.unwrap();
    assert_eq!(v, Some(11));
    c.disconnect().await.unwrap();
}

#[tokio::test]
async fn garbage_before_the_handshake() {
    let (mut router, user) = router_with_private_user("garbage", "").await;
    for garbage in [
        &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        &[0xff; 64][..],
        &[5, 0, 0, 1, 1, 2, 3, 4, 5][..],
        &[0, 0, 0, 1][..],
    ] {
        let mut s = TcpStream::connect(&router.addr).await.unwrap();
        s.write_all(garbage).await.unwrap();
        let packets = read_all_packets(&mut s).await;
        assert!(
            packets.len() >= 2,
            "expected greeting and an error, got {packets:?}"
        );
        assert_eq!(packets[0][0], 10, "greeting first");
        let err = parse_err(packets.last().unwrap()).expect("an ERR packet last");
        assert!(
            matches!(err.code, 1043 | 1153 | 1156),
            "unexpected error for {garbage:?}: {err:?}"
        );
    }
    router.assert_alive();
    still_serves(&router).await;
    wait_backend_connections(&user, 0).await;
}

#[tokio::test]
async fn truncated_packet_then_disconnect() {
    let (mut router, user) = router_with_private_user("trunc", "").await;
    let mut raw = RawClient::connect(&router.addr, "app", APP_PASSWORD, None).await;
    // A session holds a backend connection from its first statement on.
    raw.command(&[0x0e], ResponseKind::Single).await;
    wait_backend_connections(&user, 1).await;
    // Announce 100 bytes, send 10, vanish.
    let mut bytes = vec![100, 0, 0, 0, 0x03];
    bytes.extend_from_slice(b"SELECT 1 ");
    raw.io.write_raw(&bytes).await.unwrap();
    drop(raw);
    wait_backend_connections(&user, 0).await;
    router.assert_alive();
    still_serves(&router).await;
}

#[tokio::test]
async fn a_client_stuck_mid_packet_is_closed_after_net_read_ms() {
    let user = "svc_stall";
    fresh_service_user(user).await;
    let defaults = RouterSettings::default();
    let router = TestRouter::start(RouterSettings {
        service_user: user.into(),
        service_password: "svc-secret".into(),
        timeouts: "net_read_ms = 500".into(),
        sharding: format!(
            // Session pooling: a connection closed at once when its session ends (no idle
            // kept) shows that nothing leaked.
            "{}\n[pool]\nmode = \"session\"\nmax_idle_per_shard = 0\n",
            defaults.sharding
        ),
        ..defaults
    });
    let mut raw = RawClient::connect(&router.addr, "app", APP_PASSWORD, None).await;
    raw.command(&[0x0e], ResponseKind::Single).await;
    wait_backend_connections(user, 1).await;
    // Announce 100 bytes, send 10, then stall with the socket open.
    let mut bytes = vec![100, 0, 0, 0, 0x03];
    bytes.extend_from_slice(b"SELECT 1 ");
    raw.io.write_raw(&bytes).await.unwrap();
    let started = std::time::Instant::now();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(10), raw.io.stream_mut().read(&mut buf))
        .await
        .expect("the router closes a connection stuck mid-packet")
        .unwrap_or(0);
    assert_eq!(n, 0, "closed, nothing sent");
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "not before net_read_ms"
    );
    wait_backend_connections(user, 0).await;
    assert!(router.log_text().contains("timeouts.net_read_ms"));
    // A client idle between statements is not: that is timeouts.idle_ms.
    let mut idle = router.app_conn(None).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let v: Option<i64> = idle.query_first("SELECT 3").await.unwrap();
    assert_eq!(v, Some(3));
}

#[tokio::test]
async fn wrong_sequence_id_is_refused() {
    let (mut router, user) = router_with_private_user("seq", "").await;
    let mut raw = RawClient::connect(&router.addr, "app", APP_PASSWORD, None).await;
    raw.io.queue(5, &[0x0e]);
    raw.io.flush().await.unwrap();
    let resp = raw.read_response(ResponseKind::Single).await;
    let err = parse_err(&resp[0]).expect("ERR");
    assert_eq!((err.code, err.sql_state.as_str()), (1156, "08S01"));
    wait_backend_connections(&user, 0).await;
    router.assert_alive();
    still_serves(&router).await;
}

#[tokio::test]
async fn packet_over_the_limit_is_refused_without_buffering_it() {
    let (mut router, user) = router_with_private_user("big", "max_packet_size = 1048576").await;
    let mut c = router.app_conn(None).await;
    let sql = format!("SELECT '{}'", "x".repeat(2 * 1024 * 1024));
    let (code, state, msg) = server_error(c.query_drop(sql).await.unwrap_err());
    assert_eq!((code, state.as_str()), (1153, "08S01"));
    assert!(msg.contains("max_packet_size"), "{msg}");
    // A header announcing 15 MiB is refused at once, before its body arrives.
    let mut raw = RawClient::connect(&router.addr, "app", APP_PASSWORD, None).await;
    raw.io
        .write_raw(&[0xff, 0xff, 0xef, 0, 0x03])
        .await
        .unwrap();
    let resp = raw.read_response(ResponseKind::Single).await;
    assert_eq!(parse_err(&resp[0]).unwrap().code, 1153);
    wait_backend_connections(&user, 0).await;
    router.assert_alive();
    still_serves(&router).await;
}

#[tokio::test]
async fn client_vanishing_mid_result_releases_the_backend() {
    let (mut router, user) = router_with_private_user("vanish", "").await;
    let mut raw = RawClient::connect(&router.addr, "app", APP_PASSWORD, Some("app")).await;
    raw.send(b"\x03SELECT seq, REPEAT('x', 200) FROM seq_1_to_50000000")
        .await;
    // Take a little of the result (a result set, not an error), then disappear.
    let mut some = vec![0u8; 64 * 1024];
    let n = raw.io.stream_mut().read(&mut some).await.unwrap();
    assert!(
        n > 5 && some[4] == 2,
        "expected a two-column result set, got {:?}",
        &some[..n.min(64)]
    );
    drop(raw);
    wait_backend_connections(&user, 0).await;
    router.assert_alive();
    still_serves(&router).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_dying_mid_result_gives_a_clear_error() {
    let user = "svc_backend_dies";
    fresh_service_user(user).await;
    let proxy = CutProxy::start(master_addr()).await;
    let mut router = TestRouter::start(RouterSettings {
        service_user: user.into(),
        service_password: "svc-secret".into(),
        master: proxy.addr.clone(),
        ..Default::default()
    });
    let mut bystander = router.app_conn(None).await;

    // Mid-result: the backend link breaks while rows stream.
    let mut c = router.app_conn(Some("app")).await;
    let mut result = c
        .query_iter("SELECT seq, REPEAT('y', 100) FROM seq_1_to_20000000")
        .await
        .unwrap();
    let first: Option<mysql_async::Row> = result.next().await.unwrap();
    assert!(first.is_some());
    proxy.cut();
    let outcome = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match result.next().await {
                Ok(Some(_)) => continue,
                Ok(None) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    })
    .await
    .expect("the client must not hang when the backend dies");
    let err = outcome.expect_err("a result cut short must end in an error");
    if let mysql_async::Error::Server(e) = &err {
        assert_eq!(e.code, 1158, "{e:?}");
        assert!(e.message.contains("lost the connection"), "{}", e.message);
    }
    drop(result);
    drop(c);

    // The bystander's backend link was cut too: it gets a clear error on next use, not a
    // hang — 1158 for the connection it held (session pooling), or 1053 for the one it
    // cannot get (transaction pooling gave its connection back after its statement).
    let err = tokio::time::timeout(Duration::from_secs(20), bystander.query_drop("SELECT 1"))
        .await
        .expect("no hang")
        .unwrap_err();
    if let mysql_async::Error::Server(e) = &err {
        assert!([1158, 1053].contains(&e.code), "{e:?}");
    }
    router.assert_alive();
    // With the backend unreachable, a new login gets the retryable unavailability error.
    let login = tokio::time::timeout(
        Duration::from_secs(20),
        Conn::new(Opts::from(router.app_opts(None))),
    )
    .await
    .expect("no hang");
    let (code, state, msg) = server_error(login.expect_err("login must fail"));
    assert_eq!((code, state.as_str()), (1053, "08S01"));
    assert!(msg.contains("retryable"), "{msg}");
    router.assert_alive();
}
