//! A master's wait queue in the pool: the checkouts waiting for a connection, in arrival
//! order, and which of them a connection given back goes to ([`pick_waiter`]): the first
//! one of its key, or a waiter on the returning serving thread that queued at most
//! [`SAME_THREAD_SLACK`] after it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

/// A checkout in a master's queue: a connection (`T`) of its key (`K`, the pool's key)
/// given back is sent to it.
pub(super) struct Waiter<K, T> {
    /// The pool key the checkout needs.
    pub key: K,
    /// Where the connection goes; closed when the checkout gave up.
    pub handoff: oneshot::Sender<T>,
    /// The serving thread the checkout runs on.
    home: std::thread::ThreadId,
    /// When it (last) queued.
    since: Instant,
}

impl<K, T> Waiter<K, T> {
    /// A checkout queued now by the calling thread.
    pub fn new(key: K, handoff: oneshot::Sender<T>) -> Self {
        Waiter {
            key,
            handoff,
            home: std::thread::current().id(),
            since: Instant::now(),
        }
    }
}

/// How much later than the first waiter of its key a waiter on the returning thread may
/// have queued and still be handed the connection first. A hand-off across serving
/// threads moves the socket to the other thread's epoll (two `epoll_ctl`) and wakes that
/// thread (an eventfd write): at 256 clients on 32 connections half of all hand-offs did,
/// ~1.4 extra syscalls per statement. Preferring the same thread lets a waiter be passed
/// over only by waiters that queued less than this after it.
const SAME_THREAD_SLACK: Duration = Duration::from_millis(2);

/// How far past the first waiter of its key [`pick_waiter`] looks for one on the
/// returning thread (the queue may hold thousands).
const SAME_THREAD_SCAN: usize = 64;

/// The waiter a connection of `key` given back on this thread goes to: the first one of
/// that key, or a later one on this thread that queued at most [`SAME_THREAD_SLACK`]
/// after it. Waiters whose checkout gave up are removed on the way.
pub(super) fn pick_waiter<K: PartialEq, T>(
    queue: &mut VecDeque<Waiter<K, T>>,
    key: &K,
) -> Option<usize> {
    let here = std::thread::current().id();
    let mut first: Option<(usize, Instant)> = None;
    let mut at = 0;
    while at < queue.len() {
        let waiter = &queue[at];
        if waiter.handoff.is_closed() {
            queue.remove(at);
            continue;
        }
        if waiter.key == *key {
            if waiter.home == here {
                return match first {
                    Some((_, since)) if waiter.since > since + SAME_THREAD_SLACK => {
                        first.map(|f| f.0)
                    }
                    _ => Some(at),
                };
            }
            match first {
                None => first = Some((at, waiter.since)),
                Some((oldest, _)) if at - oldest >= SAME_THREAD_SCAN => break,
                Some(_) => {}
            }
        }
        at += 1;
    }
    first.map(|(at, _)| at)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A waiter of `key` on thread `home`, queued `after_ms` after `t0`; its receiver is
    /// kept open by the returned list.
    fn waiter(
        key: &'static str,
        home: std::thread::ThreadId,
        t0: Instant,
        after_ms: u64,
        open: &mut Vec<oneshot::Receiver<()>>,
    ) -> Waiter<&'static str, ()> {
        let (handoff, rx) = oneshot::channel();
        open.push(rx);
        Waiter {
            key,
            handoff,
            home,
            since: t0 + Duration::from_millis(after_ms),
        }
    }

    /// This thread's id and another thread's.
    fn threads() -> (std::thread::ThreadId, std::thread::ThreadId) {
        let other = std::thread::spawn(|| std::thread::current().id());
        (std::thread::current().id(), other.join().unwrap())
    }

    #[test]
    fn a_returned_connection_prefers_a_waiter_on_its_own_thread_within_the_slack() {
        let (here, other) = threads();
        let (k, j) = ("app", "other");
        let t0 = Instant::now();
        let mut open = Vec::new();

        // The first waiter of the key is on another thread; one here queued 1 ms later.
        let mut q = VecDeque::from([
            waiter(j, here, t0, 0, &mut open),
            waiter(k, other, t0, 0, &mut open),
            waiter(k, here, t0, 1, &mut open),
        ]);
        assert_eq!(pick_waiter(&mut q, &k), Some(2));
        // Queued too long after the first one: the first one gets it.
        let mut q = VecDeque::from([
            waiter(k, other, t0, 0, &mut open),
            waiter(k, here, t0, 5, &mut open),
        ]);
        assert_eq!(pick_waiter(&mut q, &k), Some(0));
        // Nobody of the key here: the first one of the key, wherever it is.
        let mut q = VecDeque::from([
            waiter(j, other, t0, 0, &mut open),
            waiter(k, other, t0, 3, &mut open),
        ]);
        assert_eq!(pick_waiter(&mut q, &k), Some(1));
        assert_eq!(pick_waiter(&mut q, &"nobody"), None);

        // A waiter whose checkout gave up (receiver dropped) is removed on the way.
        let (gone, rx) = oneshot::channel();
        drop(rx);
        let mut q = VecDeque::from([
            Waiter {
                key: k,
                handoff: gone,
                home: here,
                since: t0,
            },
            waiter(k, other, t0, 0, &mut open),
        ]);
        assert_eq!(pick_waiter(&mut q, &k), Some(0));
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn the_look_for_a_same_thread_waiter_is_bounded() {
        let (here, other) = threads();
        let k = "app";
        let t0 = Instant::now();
        let mut open = Vec::new();
        let mut q: VecDeque<Waiter<&str, ()>> = (0..SAME_THREAD_SCAN + 1)
            .map(|_| waiter(k, other, t0, 0, &mut open))
            .collect();
        q.push_back(waiter(k, here, t0, 0, &mut open));
        assert_eq!(pick_waiter(&mut q, &k), Some(0));
    }
}
