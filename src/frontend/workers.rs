//! The serving threads: each runs its own single-threaded tokio runtime, and the
//! listener hands every accepted client connection to the thread with the fewest open
//! sessions. A session (and the backend connections it uses, see
//! `BackendConn::bring_home`) then lives on that one thread until it ends.
//!
//! Why not one multi-threaded runtime: under load its work stealing wakes parked worker
//! threads for nearly every readiness event. Profiles of point selects showed dbrouter
//! with twice HAProxy's context switches per query and ~13 % of its CPU in the
//! scheduler; a runtime per thread only sleeps in `epoll_wait`, like HAProxy's threads
//! (docs/benchmarks.md, "Analysis").

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit};
use tokio::task::JoinSet;
use tracing::{debug, error, info_span, warn};

use super::session::{self, SessionContext};

/// An accepted client connection on its way to a serving thread.
struct Accepted {
    stream: std::net::TcpStream,
    peer: SocketAddr,
    id: u32,
    permit: OwnedSemaphorePermit,
}

/// One serving thread, seen from the listener.
struct Worker {
    inbox: mpsc::UnboundedSender<Accepted>,
    /// Sessions open on the thread (its load).
    open: Arc<AtomicUsize>,
    /// Completes when the thread's sessions have all ended after the inbox closed.
    finished: oneshot::Receiver<()>,
    /// Sent (or dropped) to abort the sessions still open after the drain timeout.
    abort: oneshot::Sender<()>,
}

/// The serving threads.
pub struct Workers {
    workers: Vec<Worker>,
    next: usize,
}

impl Workers {
    /// Starts `count` serving threads (at least one) for sessions sharing `ctx`, each
    /// pinned to one core when `server.pin_threads` is on.
    pub fn start(count: usize, ctx: &Arc<SessionContext>) -> std::io::Result<Self> {
        let mut workers = Vec::with_capacity(count.max(1));
        // The cores this process may run on (its affinity mask: taskset, cgroup cpusets).
        let cores = if ctx.config.load().server.pin_threads {
            core_affinity::get_core_ids().unwrap_or_default()
        } else {
            Vec::new()
        };
        for index in 0..count.max(1) {
            let core = cores.get(index % cores.len().max(1)).copied();
            let (inbox, rx) = mpsc::unbounded_channel();
            let (finished_tx, finished) = oneshot::channel();
            let (abort, abort_rx) = oneshot::channel();
            let open = Arc::new(AtomicUsize::new(0));
            let thread_open = Arc::clone(&open);
            let ctx = Arc::clone(ctx);
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            std::thread::Builder::new()
                .name(format!("dbrouter-w{index}"))
                .spawn(move || {
                    if let Some(core) = core {
                        // Why pin: on the 2-core bench host a serving thread left to the
                        // scheduler often shares a core with the other one and sleeps and
                        // wakes more per query; pinned, dbrouter did 4-11 % more point
                        // selects per second at 5-10 % less CPU per query (docs/benchmarks.md).
                        if core_affinity::set_for_current(core) {
                            debug!(thread = index, core = core.id, "serving thread pinned");
                        } else {
                            warn!(
                                thread = index,
                                core = core.id,
                                "cannot pin the serving thread to its core; it runs unpinned"
                            );
                        }
                    }
                    runtime.block_on(serve_sessions(rx, abort_rx, ctx, thread_open));
                    let _ = finished_tx.send(());
                })?;
            workers.push(Worker {
                inbox,
                open,
                finished,
                abort,
            });
        }
        Ok(Workers { workers, next: 0 })
    }

    /// Number of serving threads.
    pub fn len(&self) -> usize {
        self.workers.len()
    }

    /// Whether there are no serving threads (never, once started).
    pub fn is_empty(&self) -> bool {
        self.workers.is_empty()
    }

    /// Hands a client connection to the least busy thread. The stream leaves this
    /// runtime and is registered with the thread's own.
    pub fn hand_over(
        &mut self,
        stream: TcpStream,
        peer: SocketAddr,
        id: u32,
        permit: OwnedSemaphorePermit,
    ) {
        let stream = match stream.into_std() {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, %peer, "cannot hand the connection to a serving thread; closing it");
                return;
            }
        };
        let count = self.workers.len();
        // The least loaded, starting after the last choice (round robin among equals).
        let Some((pick, worker)) = (1..=count)
            .map(|i| (self.next + i) % count)
            .filter_map(|i| self.workers.get(i).map(|w| (i, w)))
            .min_by_key(|(_, w)| w.open.load(Ordering::Relaxed))
        else {
            return;
        };
        self.next = pick;
        worker.open.fetch_add(1, Ordering::Relaxed);
        if worker
            .inbox
            .send(Accepted {
                stream,
                peer,
                id,
                permit,
            })
            .is_err()
        {
            // The thread is gone (its runtime failed); the connection is dropped (closed).
            worker.open.fetch_sub(1, Ordering::Relaxed);
            error!(thread = pick, "serving thread is gone; connection closed");
        }
    }

    /// Open sessions over all threads.
    pub fn open_sessions(&self) -> usize {
        self.workers
            .iter()
            .map(|w| w.open.load(Ordering::Relaxed))
            .sum()
    }

    /// Stops taking connections and waits up to `timeout` for the open sessions to end
    /// (they were told to drain); then aborts the rest. Returns whether all ended in time.
    pub async fn drain(self, timeout: Duration) -> bool {
        let mut finished = Vec::with_capacity(self.workers.len());
        let mut aborts = Vec::with_capacity(self.workers.len());
        for w in self.workers {
            drop(w.inbox);
            finished.push(w.finished);
            aborts.push(w.abort);
        }
        let deadline = tokio::time::Instant::now() + timeout;
        let mut in_time = true;
        for done in &mut finished {
            if tokio::time::timeout_at(deadline, done).await.is_err() {
                in_time = false;
                break;
            }
        }
        if !in_time {
            for abort in aborts {
                let _ = abort.send(());
            }
            for done in finished {
                let _ = tokio::time::timeout(Duration::from_secs(5), done).await;
            }
        }
        in_time
    }
}

/// One session counted in its thread's load while it lives.
struct OpenSession(Arc<AtomicUsize>);

impl Drop for OpenSession {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A serving thread's loop: spawns the sessions handed to it until the inbox closes,
/// then waits for them (or aborts them when told).
async fn serve_sessions(
    mut inbox: mpsc::UnboundedReceiver<Accepted>,
    mut abort: oneshot::Receiver<()>,
    ctx: Arc<SessionContext>,
    open: Arc<AtomicUsize>,
) {
    let mut sessions = JoinSet::new();
    let mut accepting = true;
    loop {
        tokio::select! {
            accepted = inbox.recv(), if accepting => match accepted {
                Some(a) => {
                    let ctx = Arc::clone(&ctx);
                    // Moved into the task: released when it ends or is aborted.
                    let load = OpenSession(Arc::clone(&open));
                    sessions.spawn(async move {
                        let Accepted { stream, peer, id, permit } = a;
                        let span = info_span!("conn", id, %peer);
                        let _open = crate::metrics::ConnectionGuard::new();
                        match TcpStream::from_std(stream) {
                            Ok(stream) => session::run(stream, peer, id, ctx, span).await,
                            Err(e) => warn!(parent: &span, error = %e, "cannot register the connection; closing it"),
                        }
                        drop((permit, load));
                    });
                }
                None => accepting = false,
            },
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
            // Told to abort, or the listener is gone without a word: stop everything.
            _ = &mut abort => {
                sessions.abort_all();
                while sessions.join_next().await.is_some() {}
                return;
            }
        }
        if !accepting && sessions.is_empty() {
            return;
        }
    }
}
