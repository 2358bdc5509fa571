//! Abuse limits on logins, like MySQL's connection_control and max_user_connections:
//! connections from one address still in their connection phase are capped; after a few
//! failed logins from an address — or many of one account, from anywhere — every further
//! login attempt there waits a delay that grows with the failures, *before* its password
//! is checked (so a guesser cannot tell a right password by the answer coming sooner and
//! give up waiting on the wrong ones); sessions per account are capped. A successful login
//! clears the counts of its address and account; counts are forgotten a while after their
//! last failure.
//!
//! Memory is bounded: at most [`MAX_TRACKED`] addresses and accounts are tracked each; a
//! full table first drops what is forgotten, then the entry that failed longest ago.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::LimitsConfig;

/// Addresses (and accounts) whose failures are remembered, at most.
pub const MAX_TRACKED: usize = 100_000;

/// Failed logins of one address or account.
#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

#[derive(Debug, Default)]
struct Counts {
    by_address: HashMap<IpAddr, Failures>,
    by_account: HashMap<String, Failures>,
    logging_in: HashMap<IpAddr, usize>,
    sessions: HashMap<String, usize>,
}

/// The router's login limits and what they count.
#[derive(Debug)]
pub struct LoginLimits {
    /// Replaced whole by [`LoginLimits::set`] (a config reload); the counts stay.
    limits: arc_swap::ArcSwap<LimitsConfig>,
    counts: Mutex<Counts>,
}

impl LoginLimits {
    /// Limits as configured.
    pub fn new(limits: LimitsConfig) -> Arc<Self> {
        Arc::new(LoginLimits {
            limits: arc_swap::ArcSwap::from_pointee(limits),
            counts: Mutex::new(Counts::default()),
        })
    }

    /// New limits (a config reload) for the next logins; what was counted is kept.
    pub fn set(&self, limits: LimitsConfig) {
        self.limits.store(Arc::new(limits));
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A connection from `address` begins its connection phase; None when that address
    /// has `max_logins_per_address` in theirs already.
    pub fn begin(self: &Arc<Self>, address: IpAddr) -> Option<LoggingIn> {
        let mut counts = self.counts();
        let n = counts.logging_in.entry(address).or_insert(0);
        if *n >= self.limits.load().max_logins_per_address {
            return None;
        }
        *n += 1;
        Some(LoggingIn {
            limits: Arc::clone(self),
            address,
        })
    }

    /// How long a login attempt of `account` from `address` waits before its password is
    /// checked (zero below both thresholds).
    pub fn delay(&self, address: IpAddr, account: &str) -> Duration {
        let forget = Duration::from_millis(self.limits.load().forget_after_ms);
        let counts = self.counts();
        let recent = |f: Option<&Failures>| {
            f.filter(|f| f.last.elapsed() < forget)
                .map_or(0, |f| f.count)
        };
        let over = |count: u32, threshold: u32| count.saturating_sub(threshold.saturating_sub(1));
        let steps = over(
            recent(counts.by_address.get(&address)),
            self.limits.load().failures_per_address,
        )
        .max(over(
            recent(counts.by_account.get(account)),
            self.limits.load().failures_per_account,
        ));
        let step = Duration::from_millis(self.limits.load().delay_step_ms);
        let max = Duration::from_millis(self.limits.load().delay_max_ms);
        step.saturating_mul(steps).min(max)
    }

    /// A login failed (wrong password, unknown account).
    pub fn failed(&self, address: IpAddr, account: &str) {
        let forget = Duration::from_millis(self.limits.load().forget_after_ms);
        let mut counts = self.counts();
        let now = Instant::now();
        let bump = |f: &mut Failures| {
            if f.last.elapsed() >= forget {
                f.count = 0;
            }
            f.count = f.count.saturating_add(1);
            f.last = now;
        };
        make_room(&mut counts.by_address, forget);
        bump(counts.by_address.entry(address).or_insert(Failures {
            count: 0,
            last: now,
        }));
        make_room(&mut counts.by_account, forget);
        // Bounded like the rest of what a client sends: MariaDB account names are short.
        let account: String = account.chars().take(128).collect();
        bump(counts.by_account.entry(account).or_insert(Failures {
            count: 0,
            last: now,
        }));
    }

    /// A login succeeded: its address and account start afresh.
    pub fn succeeded(&self, address: IpAddr, account: &str) {
        let mut counts = self.counts();
        counts.by_address.remove(&address);
        counts.by_account.remove(account);
    }

    /// A session of `account` begins; None when the account has `max` sessions already
    /// (`max` 0: no limit).
    pub fn session(self: &Arc<Self>, account: &str, max: usize) -> Option<AccountSession> {
        let mut counts = self.counts();
        let n = counts.sessions.entry(account.to_string()).or_insert(0);
        if max > 0 && *n >= max {
            return None;
        }
        *n += 1;
        Some(AccountSession {
            limits: Arc::clone(self),
            account: account.to_string(),
        })
    }
}

/// Frees room in a full table: what is forgotten, else the oldest failure.
fn make_room<K: Clone + Eq + std::hash::Hash>(map: &mut HashMap<K, Failures>, forget: Duration) {
    if map.len() < MAX_TRACKED {
        return;
    }
    map.retain(|_, f| f.last.elapsed() < forget);
    if map.len() >= MAX_TRACKED {
        if let Some(oldest) = map
            .iter()
            .min_by_key(|(_, f)| f.last)
            .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
    }
}

/// A connection in its connection phase; counted out on drop.
#[derive(Debug)]
pub struct LoggingIn {
    limits: Arc<LoginLimits>,
    address: IpAddr,
}

impl Drop for LoggingIn {
    fn drop(&mut self) {
        let mut counts = self.limits.counts();
        if let Some(n) = counts.logging_in.get_mut(&self.address) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.logging_in.remove(&self.address);
            }
        }
    }
}

/// A logged-in session of an account; counted out on drop.
#[derive(Debug)]
pub struct AccountSession {
    limits: Arc<LoginLimits>,
    account: String,
}

impl Drop for AccountSession {
    fn drop(&mut self) {
        let mut counts = self.limits.counts();
        if let Some(n) = counts.sessions.get_mut(&self.account) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.sessions.remove(&self.account);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Arc<LoginLimits> {
        LoginLimits::new(LimitsConfig {
            max_logins_per_address: 2,
            failures_per_address: 3,
            failures_per_account: 5,
            delay_step_ms: 100,
            delay_max_ms: 250,
            forget_after_ms: 60_000,
            ..LimitsConfig::default()
        })
    }

    #[test]
    fn delays_grow_past_the_threshold_per_address_and_per_account() {
        let l = limits();
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        l.failed(a, "x");
        l.failed(a, "x");
        assert_eq!(l.delay(a, "x"), Duration::ZERO, "two failures: below 3");
        l.failed(a, "x");
        assert_eq!(
            l.delay(a, "x"),
            Duration::from_millis(100),
            "the 4th attempt waits"
        );
        assert_eq!(
            l.delay(a, "other"),
            Duration::from_millis(100),
            "per address"
        );
        assert_eq!(
            l.delay(b, "x"),
            Duration::ZERO,
            "another address, account below 5"
        );
        l.failed(a, "x");
        assert_eq!(l.delay(a, "x"), Duration::from_millis(200));
        l.failed(b, "x");
        assert_eq!(l.delay(b, "y"), Duration::ZERO);
        // Five failures of x in all: x is delayed from everywhere.
        assert_eq!(l.delay(b, "x"), Duration::from_millis(100));
        l.failed(a, "x");
        l.failed(a, "x");
        assert_eq!(l.delay(a, "x"), Duration::from_millis(250), "capped");
        l.succeeded(a, "x");
        assert_eq!(l.delay(a, "x"), Duration::ZERO);
    }

    #[test]
    fn logins_in_progress_and_sessions_are_capped_and_counted_out() {
        let l = limits();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let one = l.begin(a).unwrap();
        let _two = l.begin(a).unwrap();
        assert!(l.begin(a).is_none());
        assert!(l.begin("10.0.0.9".parse().unwrap()).is_some());
        drop(one);
        assert!(l.begin(a).is_some());
        let s1 = l.session("app", 1).unwrap();
        assert!(l.session("app", 1).is_none());
        assert!(l.session("app", 0).is_some(), "0: no limit");
        drop(s1);
        assert!(l.session("app", 1).is_some());
    }
}
