//! The client listener: accepts connections until SIGTERM or SIGINT and hands each to a
//! serving thread (`workers.rs`), answering those beyond `server.max_connections` with ERR
//! 1040 instead of a greeting; then drains: stops accepting and lets sessions finish their
//! statement or open transaction for up to `timeouts.drain_ms`. What it serves with is
//! built by the composition root, [`crate::server`].

use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::error::ClientError;
use crate::net::PacketConn;

use super::session::SessionContext;
use super::workers::Workers;

/// Accepts clients on `listener` until SIGTERM or SIGINT, then stops accepting, calls
/// `draining`, and drains the sessions of `workers`. Fails only if the signal handlers
/// cannot be installed.
pub async fn accept_until_signal(
    listener: TcpListener,
    ctx: &Arc<SessionContext>,
    mut workers: Workers,
    draining: impl FnOnce(),
) -> Result<(), std::io::Error> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    // Connections refused for the connection limit (answered here, on the listener's thread).
    let mut refusals = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Usually EMFILE: back off instead of spinning.
                        warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let id = ctx.sessions.next_id();
                // server.max_connections, as the last reload left it.
                match ctx.connections.try_acquire() {
                    Some(permit) => workers.hand_over(stream, peer, id, permit),
                    None => {
                        crate::metrics::connection_refused();
                        let err = ClientError::TooManyConnections(ctx.connections.max());
                        refusals.spawn(refuse(stream, err));
                    }
                }
            }
            Some(_) = refusals.join_next(), if !refusals.is_empty() => {}
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        }
    }

    drop(listener);
    draining();
    ctx.drain.start();
    let drain = ctx.config.load().timeouts.drain();
    info!(open = workers.open_sessions(), drain = ?drain, "draining");
    refusals.abort_all();
    if !workers.drain(drain).await {
        warn!("drain timeout reached; closed the remaining connections");
    }
    info!("stopped");
    Ok(())
}

/// Answers a connection that cannot be served with an ERR instead of a greeting, as
/// MySQL does when it is out of connections.
async fn refuse(stream: TcpStream, err: ClientError) {
    crate::metrics::error_sent(err.kind());
    let mut conn = PacketConn::new(stream);
    conn.queue(0, &err.to_packet());
    conn.shutdown().await;
}
