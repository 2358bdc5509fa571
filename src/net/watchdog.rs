//! One reusable timer per connection for the time limits of the command loop and the
//! relay (idle client, silent backend, stuck client write).
//!
//! Why not `tokio::time::timeout` around every read and write: each one builds a timer
//! entry and, when the I/O is pending, registers it in the runtime's timer wheel and
//! removes it again, several times per statement; profiles of point selects under load
//! showed ~3 % of the router's CPU there (docs/benchmarks.md, "Analysis"). A watchdog
//! keeps one timer armed and moves it lazily: when a new limit ends *later* than the
//! armed instant (the usual case: every statement pushes the limit forward) nothing is
//! re-registered; when the timer fires early, the watchdog checks the real limit and
//! re-arms it. So a busy connection touches the timer wheel about once per limit period
//! instead of several times per statement, and a limit never fires early.

use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::task::Poll;
use std::time::Duration;

use tokio::time::{sleep_until, Instant, Sleep};

/// A time limit passed before the guarded operation completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

/// A connection's reusable timer: runs futures under time limits.
#[derive(Debug)]
pub struct Watchdog {
    timer: Pin<Box<Sleep>>,
    /// The instant the timer is registered for (it may already have fired).
    armed: Instant,
}

impl Watchdog {
    /// A watchdog whose timer is not due for `initial` (any limit shorter than that
    /// re-arms it once).
    pub fn new(initial: Duration) -> Self {
        let armed = Instant::now() + initial;
        Self {
            timer: Box::pin(sleep_until(armed)),
            armed,
        }
    }

    /// Runs `work` until it completes or `limit` has passed since this call.
    pub async fn limit<F: Future>(
        &mut self,
        limit: Duration,
        work: F,
    ) -> Result<F::Output, Elapsed> {
        let deadline = Instant::now() + limit;
        if self.armed > deadline {
            self.rearm(deadline);
        }
        let mut work = pin!(work);
        poll_fn(|cx| {
            if let Poll::Ready(out) = work.as_mut().poll(cx) {
                return Poll::Ready(Ok(out));
            }
            while self.timer.as_mut().poll(cx).is_ready() {
                // The timer was armed for an earlier limit: the real one may be later.
                if Instant::now() >= deadline {
                    return Poll::Ready(Err(Elapsed));
                }
                self.rearm(deadline);
            }
            Poll::Pending
        })
        .await
    }

    fn rearm(&mut self, at: Instant) {
        self.timer.as_mut().reset(at);
        self.armed = at;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn completes_before_the_limit() {
        let mut dog = Watchdog::new(Duration::from_secs(3600));
        let out = dog.limit(Duration::from_secs(5), async { 7 }).await;
        assert_eq!(out, Ok(7));
        let slow = dog
            .limit(
                Duration::from_secs(5),
                tokio::time::sleep(Duration::from_secs(4)),
            )
            .await;
        assert_eq!(slow, Ok(()));
    }

    #[tokio::test(start_paused = true)]
    async fn fires_at_the_limit_not_before() {
        let mut dog = Watchdog::new(Duration::from_secs(3600));
        let started = Instant::now();
        let out = dog
            .limit(Duration::from_secs(5), std::future::pending::<()>())
            .await;
        assert_eq!(out, Err(Elapsed));
        assert_eq!(started.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn an_earlier_armed_timer_does_not_cut_a_longer_limit() {
        let mut dog = Watchdog::new(Duration::from_secs(3600));
        // Arms the timer for t = 2 s.
        assert_eq!(dog.limit(Duration::from_secs(2), async {}).await, Ok(()));
        let started = Instant::now();
        let out = dog
            .limit(Duration::from_secs(10), std::future::pending::<()>())
            .await;
        assert_eq!(out, Err(Elapsed));
        assert_eq!(started.elapsed(), Duration::from_secs(10));
        // And a shorter limit after a longer one re-arms earlier.
        let started = Instant::now();
        let out = dog
            .limit(Duration::from_secs(1), std::future::pending::<()>())
            .await;
        assert_eq!(out, Err(Elapsed));
        assert_eq!(started.elapsed(), Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_limit_counts_from_its_own_start() {
        let mut dog = Watchdog::new(Duration::from_secs(3600));
        for _ in 0..5 {
            let out = dog
                .limit(
                    Duration::from_secs(3),
                    tokio::time::sleep(Duration::from_secs(2)),
                )
                .await;
            assert_eq!(out, Ok(()));
        }
    }
}
