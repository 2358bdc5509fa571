//! Unit tests of the transaction state machine.

use super::*;
use crate::protocol::response::SERVER_STATUS_IN_TRANS as IN;

fn parse(s: &str) -> TxStatement {
    TxStatement::parse(s.as_bytes(), Dialect::default())
}

#[test]
fn statements_parse_as_mariadb_reads_them() {
    let begin = |snap, ro| TxStatement::Begin {
        consistent_snapshot: snap,
        read_only: ro,
    };
    let end = |commit, chain, release| TxStatement::End {
        commit,
        chain,
        release,
    };
    assert_eq!(parse("BEGIN"), begin(false, false));
    assert_eq!(parse("begin work;"), begin(false, false));
    assert_eq!(parse("START TRANSACTION"), begin(false, false));
    assert_eq!(parse("START TRANSACTION READ ONLY"), begin(false, true));
    assert_eq!(
        parse("start transaction with consistent snapshot, read write"),
        begin(true, false)
    );
    assert_eq!(
        parse("START TRANSACTION READ SOMETIMES"),
        TxStatement::Unknown
    );
    assert_eq!(parse("COMMIT"), end(true, false, false));
    assert_eq!(parse("commit work and chain"), end(true, true, false));
    assert_eq!(
        parse("ROLLBACK AND NO CHAIN NO RELEASE"),
        end(false, false, false)
    );
    assert_eq!(parse("COMMIT RELEASE"), end(true, false, true));
    assert_eq!(parse("rollback work;"), end(false, false, false));
    assert_eq!(parse("COMMIT FOREVER"), TxStatement::Unknown);
    assert_eq!(parse("SAVEPOINT a"), TxStatement::Savepoint(b"a".to_vec()));
    assert_eq!(
        parse("SAVEPOINT `b c`"),
        TxStatement::Savepoint(b"b c".to_vec())
    );
    assert_eq!(
        parse("ROLLBACK WORK TO SAVEPOINT a"),
        TxStatement::RollbackTo(b"a".to_vec())
    );
    assert_eq!(
        parse("rollback to a"),
        TxStatement::RollbackTo(b"a".to_vec())
    );
    assert_eq!(
        parse("RELEASE SAVEPOINT a"),
        TxStatement::ReleaseSavepoint(b"a".to_vec())
    );
    assert_eq!(parse("SAVEPOINT"), TxStatement::Unknown);
}

#[test]
fn one_shot_set_transaction() {
    let f = |s: &str| one_shot_characteristics(s.as_bytes(), Dialect::default());
    assert_eq!(f("SET TRANSACTION READ ONLY"), Some(true));
    assert_eq!(
        f("set transaction isolation level read committed, read write"),
        Some(true)
    );
    assert_eq!(
        f("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE"),
        Some(true)
    );
    assert_eq!(f("SET TRANSACTION ISOLATION LEVEL SOMETIMES"), Some(false));
    assert_eq!(f("SET SESSION TRANSACTION READ ONLY"), None);
    assert_eq!(f("SET @a = 1"), None);
}

#[test]
fn a_pending_begin_goes_first_to_the_first_bound_shard() {
    let mut t = Transaction::new();
    assert_eq!(t.begin(b"\x03BEGIN", false), None);
    assert!(t.client_in_trans() && t.is_pending());
    t.savepoint_pending(&parse("SAVEPOINT a"), b"\x03SAVEPOINT a");
    assert_eq!(
        t.bind(1, 1),
        Ok(vec![b"\x03BEGIN".to_vec(), b"\x03SAVEPOINT a".to_vec()])
    );
    assert_eq!(t.open_shard(), Some(1));
    assert_eq!(t.observe(1, IN, 1), Observation::Fine);
    // Another shard is refused while it is open; the same one needs nothing.
    assert_eq!(t.bind(0, 1), Err(1));
    assert_eq!(t.bind(1, 1), Ok(vec![]));
    // COMMIT's answer clears it.
    assert_eq!(t.observe(1, 0, 1), Observation::Fine);
    assert_eq!(t.open_shard(), None);
    assert!(!t.client_in_trans());
    assert_eq!(t.bind(0, 1), Ok(vec![]));
}

#[test]
fn implicit_transactions_are_followed_from_the_status_flags() {
    let mut t = Transaction::new();
    // autocommit = 0: an INSERT leaves a transaction open.
    assert_eq!(t.observe(0, IN, 1), Observation::Fine);
    assert_eq!(t.open_shard(), Some(0));
    assert_eq!(t.bind(1, 1), Err(0));
    // A broadcast SET whose answer shows a second open transaction: a violation.
    assert_eq!(t.observe(1, IN, 1), Observation::Violation(vec![0, 1]));
    t.abort();
    assert!(t.is_idle());
    // So is a transaction the server opened by itself while BEGIN is pending.
    t.begin(b"B", false);
    assert_eq!(t.observe(2, IN, 1), Observation::Violation(vec![2]));
    t.abort();
    // DDL commits implicitly: the flag goes away.
    t.observe(0, IN, 1);
    t.observe(0, 0, 1);
    assert!(t.is_idle());
}

#[test]
fn savepoints_and_chains_while_pending_are_answered_locally() {
    let mut t = Transaction::new();
    t.begin(b"B", false);
    let sp = |t: &mut Transaction, s: &str| t.savepoint_pending(&parse(s), s.as_bytes());
    assert_eq!(sp(&mut t, "SAVEPOINT a"), Some(PendingAnswer::Ok));
    assert_eq!(sp(&mut t, "SAVEPOINT b"), Some(PendingAnswer::Ok));
    assert_eq!(sp(&mut t, "ROLLBACK TO a"), Some(PendingAnswer::Ok));
    assert_eq!(
        sp(&mut t, "RELEASE SAVEPOINT b"),
        Some(PendingAnswer::NoSuchSavepoint(b"b".to_vec()))
    );
    assert_eq!(
        t.bind(2, 1),
        Ok(vec![b"B".to_vec(), b"SAVEPOINT a".to_vec()])
    );
    let mut t = Transaction::new();
    t.begin(b"B", false);
    sp(&mut t, "SAVEPOINT a");
    assert_eq!(t.end_pending(true, false), Some(PendingAnswer::Ok));
    assert!(t.is_pending());
    assert_eq!(t.bind(0, 1), Ok(vec![b"B".to_vec()]));
    let mut t = Transaction::new();
    t.begin(b"B", false);
    assert_eq!(t.end_pending(false, true), Some(PendingAnswer::OkThenClose));
    assert!(!t.client_in_trans());
    assert_eq!(sp(&mut t, "SAVEPOINT a"), None);
}

#[test]
fn a_begin_inside_a_transaction_commits_it_first() {
    let mut t = Transaction::new();
    t.observe(3, IN, 1);
    assert_eq!(t.begin(b"B", false), Some(3));
}

#[test]
fn one_shot_characteristics_go_with_the_next_transaction_only() {
    let mut t = Transaction::new();
    t.set_next_characteristics(b"SET TRANSACTION READ ONLY", true);
    t.begin(b"B", false);
    assert_eq!(
        t.bind(1, 1),
        Ok(vec![b"SET TRANSACTION READ ONLY".to_vec(), b"B".to_vec()])
    );
    t.observe(1, 0, 1);
    assert_eq!(t.bind(0, 1), Ok(vec![]));
    // Without BEGIN it applies to the next statement's own transaction.
    t.set_next_characteristics(b"S", false);
    assert_eq!(t.bind(0, 1), Ok(vec![b"S".to_vec()]));
    assert_eq!(t.open_shard(), None);
}

#[test]
fn locks_keep_the_session_on_their_shard() {
    let mut t = Transaction::new();
    t.locked_on(1);
    assert_eq!(t.bind(0, 1), Err(1));
    assert_eq!(t.check_unbound(0), Err(1));
    assert_eq!(t.bind(1, 1), Ok(vec![]));
    assert_eq!(t.locked(), Some(1));
    t.unlocked();
    assert_eq!(t.check_unbound(0), Ok(()));
}

/// Random operations never break the invariants the type promises.
#[test]
fn random_sequences_keep_the_invariants() {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    for _ in 0..2000 {
        let mut t = Transaction::new();
        for _ in 0..30 {
            let shard = next(3) as ShardId;
            match next(7) {
                0 => {
                    // The session commits the open transaction first.
                    if let Some(open) = t.begin(b"B", false) {
                        t.observe(open, 0, 1);
                    }
                }
                1 => {
                    let _ = t.bind(shard, 1);
                }
                2 => {
                    if let Observation::Violation(_) = t.observe(shard, IN, 1) {
                        t.abort();
                    }
                }
                3 => {
                    t.observe(shard, 0, 1);
                }
                4 => {
                    t.end_pending(next(2) == 0, false);
                }
                5 => t.ended(shard),
                _ => {
                    t.savepoint_pending(&parse("SAVEPOINT s"), b"S");
                }
            }
            // At most one shard holds a transaction, and it is the one bound.
            assert!(t.in_trans.len() <= 1, "{t:?}");
            if let Some(&s) = t.in_trans.first() {
                assert_eq!(t.open_shard(), Some(s), "{t:?}");
            }
        }
    }
}

#[test]
fn an_open_transaction_is_registered_with_the_version_it_began_under_until_it_ends() {
    use crate::router::open_transactions::any_open_before;
    // Shard numbers no other test uses (the registry is process-wide).
    let mut t = Transaction::new();
    t.begin(b"\x03BEGIN", false);
    assert!(!any_open_before(700, u64::MAX), "pending: nothing runs yet");
    assert_eq!(t.bind(700, 5), Ok(vec![b"\x03BEGIN".to_vec()]));
    assert_eq!(t.open_since(700), Some(5));
    // Later statements under newer versions keep the version it began under.
    assert_eq!(t.bind(700, 9), Ok(vec![]));
    assert_eq!(t.observe(700, IN, 9), Observation::Fine);
    assert_eq!(t.open_since(700), Some(5));
    assert_eq!(t.open_since(701), None);
    assert!(any_open_before(700, 6) && !any_open_before(700, 5));
    // COMMIT's answer ends it.
    t.observe(700, 0, 9);
    assert_eq!(t.open_since(700), None);
    assert!(!any_open_before(700, u64::MAX));
    // A transaction the server opened by itself (autocommit off) counts from its
    // statement's version; a lost connection ends it.
    t.observe(701, IN, 12);
    assert_eq!(t.open_since(701), Some(12));
    assert!(any_open_before(701, 13));
    t.ended(701);
    assert!(!any_open_before(701, 13));
}

#[test]
fn a_pending_read_only_transaction_is_reported_read_only() {
    let mut t = Transaction::new();
    t.begin(b"\x03START TRANSACTION READ ONLY", true);
    assert!(t.pending_read_only() && t.client_in_trans());
    assert!(matches!(
        t.end_pending(true, false),
        Some(PendingAnswer::Ok)
    ));
    assert!(t.pending_read_only(), "AND CHAIN keeps the characteristics");
    t.end_pending(false, false);
    assert!(!t.pending_read_only() && !t.client_in_trans());
    // One-shot characteristics make the next transaction read only, once.
    t.set_next_characteristics(b"\x03SET TRANSACTION READ ONLY", true);
    t.begin(b"\x03BEGIN", false);
    assert!(t.pending_read_only());
    t.begin(b"\x03BEGIN", false);
    assert!(
        t.pending_read_only(),
        "not consumed until the transaction is sent"
    );
    let d = crate::router::dialect::Dialect::default();
    assert!(sets_read_only(
        b"SET TRANSACTION ISOLATION LEVEL READ COMMITTED, READ ONLY",
        d
    ));
    assert!(!sets_read_only(b"SET TRANSACTION READ WRITE", d));
}
