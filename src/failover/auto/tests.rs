//! The automatic failover decision, rule by rule.

use super::*;
use crate::topology::opinions::OpinionDoc;
use crate::topology::AutoFailoverDoc;

const NOW: u64 = 1_000_000_000;

fn settings() -> AutoSettings {
    AutoSettings {
        after_ms: 1_500,
        min_interval_ms: 600_000,
        rebuild: false,
        stale_ms: 3_000,
    }
}

fn shard() -> ShardDoc {
    ShardDoc {
        name: "s1".into(),
        master: "m:1".into(),
        standbys: vec!["b:1".into()],
        weight: 1,
        epoch: 1,
        state: ShardState::Serving,
        rejoin: vec![],
        hibernation: false,
        auto_failover: AutoFailoverDoc::default(),
    }
}

fn routers(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("r{i}")).collect()
}

/// Router `r` thinks the master is down for `down_ms` (0 = reachable), written at `mtime`.
fn opinion(r: usize, down_ms: u64, mtime: i64) -> Opinion {
    let mut doc = OpinionDoc::new("m:1".into(), down_ms == 0, down_ms);
    doc.semi_sync = Some(true);
    Opinion {
        router: format!("r{r}"),
        doc,
        mtime,
    }
}

fn verdict(shard: &ShardDoc, live: usize, opinions: &[Opinion]) -> Verdict {
    decide(shard, &routers(live), opinions, NOW, &settings())
}

fn kind(v: Verdict) -> &'static str {
    match v {
        Verdict::Blocked(b) => b.kind,
        Verdict::FailOver => "failover",
        Verdict::Healthy => "healthy",
        Verdict::Suspected { .. } => "suspected",
    }
}

#[test]
fn every_router_reaching_the_master_is_healthy() {
    let ops = [opinion(1, 0, 10), opinion(2, 0, 10), opinion(3, 0, 10)];
    assert_eq!(verdict(&shard(), 3, &ops), Verdict::Healthy);
    assert_eq!(verdict(&shard(), 3, &[]), Verdict::Healthy);
}

#[test]
fn a_majority_down_for_long_enough_fails_over() {
    let ops = [
        opinion(1, 2_000, 10),
        opinion(2, 1_600, 10),
        opinion(3, 0, 10),
    ];
    assert_eq!(verdict(&shard(), 3, &ops), Verdict::FailOver);
    // One router of one: it is the majority.
    assert_eq!(
        verdict(&shard(), 1, &[opinion(1, 1_500, 10)]),
        Verdict::FailOver
    );
}

#[test]
fn one_router_of_two_losing_the_master_is_not_a_majority() {
    let ops = [opinion(1, 60_000, 10), opinion(2, 0, 10)];
    assert_eq!(
        verdict(&shard(), 2, &ops),
        Verdict::Suspected { down: 1, needed: 2 }
    );
    // A router without an opinion yet counts as not having lost it.
    assert_eq!(
        verdict(&shard(), 2, &[opinion(1, 60_000, 10)]),
        Verdict::Suspected { down: 1, needed: 2 }
    );
}

#[test]
fn down_for_less_than_auto_after_does_not_count() {
    // A slow (stopped) master: every router lost it, none for long enough yet.
    let ops = [opinion(1, 1_499, 10), opinion(2, 1_000, 10)];
    assert_eq!(kind(verdict(&shard(), 2, &ops)), "suspected");
}

#[test]
fn opinions_of_dead_routers_and_of_another_master_do_not_count() {
    // r3 is no longer registered; its opinion lingers.
    let ops = [opinion(1, 2_000, 10), opinion(3, 2_000, 10)];
    assert_eq!(kind(verdict(&shard(), 2, &ops)), "suspected");
    let mut old = opinion(2, 2_000, 10);
    old.doc.master = "old:1".into();
    let ops = [opinion(1, 2_000, 10), old];
    assert_eq!(kind(verdict(&shard(), 2, &ops)), "suspected");
}

#[test]
fn a_stale_down_opinion_does_not_count() {
    // r2 stopped rewriting its opinion 5 s before r1's newest write.
    let ops = [opinion(1, 9_000, 10_000), opinion(2, 2_000, 5_000)];
    assert_eq!(kind(verdict(&shard(), 2, &ops)), "suspected");
    let ops = [opinion(1, 9_000, 10_000), opinion(2, 2_000, 7_500)];
    assert_eq!(kind(verdict(&shard(), 2, &ops)), "failover");
}

#[test]
fn no_standby_no_failover() {
    let mut s = shard();
    s.standbys.clear();
    assert_eq!(kind(verdict(&s, 1, &[opinion(1, 2_000, 10)])), "no_standby");
}

#[test]
fn a_disarmed_shard_is_not_failed_over() {
    let mut s = shard();
    s.auto_failover.disarmed = Some("maintenance".into());
    let v = verdict(&s, 1, &[opinion(1, 2_000, 10)]);
    assert_eq!(kind(v.clone()), "disarmed");
    assert!(format!("{v:?}").contains("maintenance"));
}

#[test]
fn a_second_failover_within_the_interval_is_flapping() {
    let mut s = shard();
    s.auto_failover.last_ms = NOW - 60_000;
    assert_eq!(kind(verdict(&s, 1, &[opinion(1, 2_000, 10)])), "flapping");
    s.auto_failover.last_ms = NOW - 600_000;
    assert_eq!(kind(verdict(&s, 1, &[opinion(1, 2_000, 10)])), "failover");
}

#[test]
fn a_master_in_asynchronous_mode_is_not_failed_over() {
    let mut o = opinion(2, 2_000, 10);
    o.doc.semi_sync = Some(false);
    let ops = [opinion(1, 2_000, 10), o];
    assert_eq!(kind(verdict(&shard(), 2, &ops)), "async");
}

#[test]
fn a_master_nobody_ever_reached_is_not_failed_over() {
    let mut o = opinion(1, 2_000, 10);
    o.doc.semi_sync = None;
    assert_eq!(kind(verdict(&shard(), 1, &[o])), "never_reached");
}

#[test]
fn a_switching_shard_is_left_to_its_operation() {
    let mut s = shard();
    s.state = ShardState::Switching;
    assert_eq!(verdict(&s, 1, &[opinion(1, 9_000, 10)]), Verdict::Healthy);
}

#[test]
fn majorities_by_router_count() {
    for (live, needed) in [(1, 1), (2, 2), (3, 2), (4, 3), (5, 3)] {
        let ops: Vec<Opinion> = (1..=needed).map(|r| opinion(r, 2_000, 10)).collect();
        assert_eq!(kind(verdict(&shard(), live, &ops)), "failover", "{live}");
        let fewer = &ops[..needed - 1];
        assert_ne!(kind(verdict(&shard(), live, fewer)), "failover", "{live}");
    }
}
