//! The client session in-process over an in-memory stream (`tokio::io::duplex`) instead
//! of a socket, with the real cluster behind it: the session is generic over its client
//! stream, which is what TLS will wrap. The client side is the library's own login
//! (`backend::connection::login`), over the same pipe.

use std::sync::Arc;
use std::time::Duration;

use mysql_common::constants::MariadbCapabilities;

use dbrouter::backend::connection::{login, LoginOptions};
use dbrouter::backend::exchange::exchange;
use dbrouter::backend::pool::{PoolLimits, Pools};
use dbrouter::frontend::session::{run_on_stream, SessionContext};
use dbrouter::net::PacketConn;
use dbrouter::protocol::handshake::offered_capabilities;
use dbrouter::protocol::packets::parse_err;
use dbrouter::protocol::response::{ResponseKind, ResultFormat};

use crate::harness::*;

const SHARDING: &str = r#"
[sharding]
key_column = "userid"
key_type = "bigint unsigned"
global_shard = "shard1"

[[sharding.tables]]
name = "posts"
"#;

/// A session context over both shards of the cluster, built in-process from the config a
/// test router would run with.
fn context(router: &TestRouter) -> Arc<SessionContext> {
    let config = Arc::new(dbrouter::config::Config::load(&router.config_path).unwrap());
    let pools = Pools::new(PoolLimits {
        max_per_master: 10,
        max_idle_per_master: 10,
        wait: Duration::from_secs(2),
        max_waiting: 100,
        idle_timeout: Duration::from_secs(300),
        connect_timeout: Duration::from_secs(5),
    });
    in_process_context(config, pools, "10.11.0-in-process")
}

/// Starts a session on one end of a pipe and logs in on the other.
async fn session(
    ctx: &Arc<SessionContext>,
    password: &str,
) -> Result<(PacketConn<tokio::io::DuplexStream>, ResultFormat), String> {
    let (client_side, server_side) = tokio::io::duplex(1 << 16);
    let peer = "127.0.0.1:1".parse().unwrap();
    tokio::spawn(run_on_stream(
        server_side,
        peer,
        1,
        Arc::clone(ctx),
        tracing::Span::none(),
    ));
    let mut io = PacketConn::new(client_side);
    let opts = LoginOptions {
        user: "app".into(),
        password: password.into(),
        password_sha1: None,
        database: Some("app".into()),
        collation: None,
        capabilities: offered_capabilities(),
        mariadb_capabilities: MariadbCapabilities::empty(),
        attributes: None,
    };
    let facts = login(&mut io, "in-process session", &opts)
        .await
        .map_err(|e| e.to_string())?;
    let format = ResultFormat::negotiated(facts.capabilities, facts.mariadb_capabilities);
    Ok((io, format))
}

#[tokio::test]
async fn a_session_runs_over_an_in_memory_stream() {
    let router = TestRouter::start(two_shards(SHARDING));
    let ctx = context(&router);
    let timeout = Duration::from_secs(10);

    let (mut io, format) = session(&ctx, APP_PASSWORD).await.unwrap();
    let answer = exchange(
        &mut io,
        b"\x03SELECT 7",
        ResponseKind::Query,
        format,
        timeout,
    )
    .await
    .unwrap();
    let row = answer.get(format.text_rows_start(1)).unwrap();
    assert_eq!(&row[..], b"\x017");

    // A refusal is an ERR packet on this connection, which goes on.
    let answer = exchange(
        &mut io,
        b"\x03DELETE FROM posts",
        ResponseKind::Query,
        format,
        timeout,
    )
    .await
    .unwrap();
    let err = parse_err(answer.first().unwrap()).unwrap();
    assert_eq!((err.code, err.sql_state.as_str()), (1235, "42000"));
    let answer = exchange(
        &mut io,
        b"\x03SELECT 8",
        ResponseKind::Query,
        format,
        timeout,
    )
    .await
    .unwrap();
    assert_eq!(&answer[format.text_rows_start(1)][..], b"\x018");

    // The handshake's own errors too.
    let refused = session(&ctx, "wrong").await.unwrap_err();
    assert!(refused.contains("1045"), "{refused}");
}
