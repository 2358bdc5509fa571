//! The session's transaction as routing sees it: a pure state machine (no I/O), so that
//! every rule is unit-tested here and the session only carries out what it decides.
//!
//! A session runs a transaction on one shard only. BEGIN is answered at once and sent
//! (with the savepoints and one-shot `SET TRANSACTION` given since) to the shard of the
//! first statement that needs it; from then on the transaction is bound to that shard.
//! The truth about which backend connection has a transaction open is the
//! SERVER_STATUS_IN_TRANS flag of its last answer ([`Transaction::observe`]): implicit
//! transactions (`autocommit = 0`) and implicit commits (DDL) are followed from it, never
//! guessed. Invariants (docs/sharding.md, "Transactions"):
//!
//! 1. at most one shard has an open transaction for the session; an answer that shows a
//!    second one is a [`Observation::Violation`] and the session rolls back both;
//! 2. a statement that belongs to the transaction never runs outside it
//!    ([`Transaction::bind`] hands out the pending BEGIN first, or refuses another shard);
//! 3. the client's IN_TRANS flag is set from the moment BEGIN is answered
//!    ([`Transaction::client_in_trans`]).

use crate::router::ring::ShardId;

use super::local::{unquote, words};

/// A transaction-control statement, as MariaDB reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxStatement {
    /// `BEGIN [WORK]` or `START TRANSACTION [READ ONLY | READ WRITE | WITH CONSISTENT
    /// SNAPSHOT], …`.
    Begin {
        /// `WITH CONSISTENT SNAPSHOT`: the snapshot is taken by this very statement.
        consistent_snapshot: bool,
    },
    /// `COMMIT` / `ROLLBACK [WORK] [AND [NO] CHAIN] [[NO] RELEASE]`.
    End {
        /// COMMIT (else ROLLBACK).
        commit: bool,
        /// `AND CHAIN`: a new transaction with the same characteristics starts at once.
        chain: bool,
        /// `RELEASE`: the server closes the connection afterwards.
        release: bool,
    },
    /// `SAVEPOINT name`.
    Savepoint(Vec<u8>),
    /// `ROLLBACK [WORK] TO [SAVEPOINT] name`.
    RollbackTo(Vec<u8>),
    /// `RELEASE SAVEPOINT name`.
    ReleaseSavepoint(Vec<u8>),
    /// A form the router does not follow (refused).
    Unknown,
}

impl TxStatement {
    /// Reads a statement the scanner classified as BEGIN, COMMIT, ROLLBACK or SAVEPOINT.
    pub fn parse(sql: &[u8]) -> TxStatement {
        let w: Vec<Vec<u8>> = words(sql)
            .filter(|w| *w != b",")
            .map(|w| w.to_ascii_lowercase())
            .collect();
        let w: Vec<&[u8]> = w.iter().map(Vec::as_slice).collect();
        let name = |i: usize| {
            w.get(i..)
                .filter(|rest| rest.len() == 1)
                .map(|rest| unquote(rest[0]).to_vec())
        };
        match w.as_slice() {
            [b"begin"] | [b"begin", b"work"] => TxStatement::Begin {
                consistent_snapshot: false,
            },
            [b"start", b"transaction", modifiers @ ..] => {
                let mut snapshot = false;
                let mut rest = modifiers;
                loop {
                    match rest {
                        [] => break,
                        [b"read", b"only" | b"write", tail @ ..] => rest = tail,
                        [b"with", b"consistent", b"snapshot", tail @ ..] => {
                            snapshot = true;
                            rest = tail;
                        }
                        _ => return TxStatement::Unknown,
                    }
                }
                TxStatement::Begin {
                    consistent_snapshot: snapshot,
                }
            }
            [b"savepoint", _] => name(1).map_or(TxStatement::Unknown, TxStatement::Savepoint),
            [b"release", b"savepoint", _] => {
                name(2).map_or(TxStatement::Unknown, TxStatement::ReleaseSavepoint)
            }
            [b"rollback", rest @ ..] if rest.contains(&&b"to"[..]) => {
                let rest = rest.strip_prefix(&[&b"work"[..]]).unwrap_or(rest);
                match rest {
                    [b"to", b"savepoint", n] | [b"to", n] => {
                        TxStatement::RollbackTo(unquote(n).to_vec())
                    }
                    _ => TxStatement::Unknown,
                }
            }
            [verb @ (b"commit" | b"rollback"), rest @ ..] => {
                let commit = *verb == b"commit";
                let rest = rest.strip_prefix(&[&b"work"[..]]).unwrap_or(rest);
                let (chain, rest) = match rest {
                    [b"and", b"chain", tail @ ..] => (true, tail),
                    [b"and", b"no", b"chain", tail @ ..] => (false, tail),
                    _ => (false, rest),
                };
                let release = match rest {
                    [] | [b"no", b"release"] => false,
                    [b"release"] => true,
                    _ => return TxStatement::Unknown,
                };
                TxStatement::End {
                    commit,
                    chain,
                    release,
                }
            }
            _ => TxStatement::Unknown,
        }
    }
}

/// A one-shot `SET TRANSACTION …` (no SESSION or GLOBAL: it applies to the next
/// transaction only): None for any other statement, Some(false) for a form the router
/// does not read.
pub fn one_shot_characteristics(sql: &[u8]) -> Option<bool> {
    let w: Vec<Vec<u8>> = words(sql).map(|w| w.to_ascii_lowercase()).collect();
    let w: Vec<&[u8]> = w.iter().map(Vec::as_slice).collect();
    let [b"set", b"transaction", rest @ ..] = w.as_slice() else {
        return None;
    };
    let mut rest = rest;
    loop {
        rest = match rest {
            [b"isolation", b"level", b"read", b"uncommitted" | b"committed", tail @ ..]
            | [b"isolation", b"level", b"repeatable", b"read", tail @ ..]
            | [b"isolation", b"level", b"serializable", tail @ ..]
            | [b"read", b"only" | b"write", tail @ ..] => tail,
            _ => return Some(false),
        };
        match rest {
            [] => return Some(true),
            [b",", tail @ ..] => rest = tail,
            _ => return Some(false),
        }
    }
}

/// Where the transaction is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    None,
    /// BEGIN answered locally; it, then the savepoints set since, go first to the shard of
    /// the first statement that needs the transaction.
    Pending {
        begin: Vec<u8>,
        savepoints: Vec<(Vec<u8>, Vec<u8>)>,
    },
    /// Open on this shard (its connection said SERVER_STATUS_IN_TRANS, or BEGIN was just
    /// sent there).
    Open(ShardId),
}

/// What an answer's status flags showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    /// Consistent with the invariants.
    Fine,
    /// Transactions are now open on several shards: the session must roll them all back
    /// and say so.
    Violation(Vec<ShardId>),
}

/// How a local answer to a transaction statement while BEGIN is still pending goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PendingAnswer {
    /// Answer OK.
    Ok,
    /// Answer OK, then close the client connection (`… RELEASE`).
    OkThenClose,
    /// `ROLLBACK TO` / `RELEASE` a savepoint that does not exist (MariaDB's ERR 1305).
    NoSuchSavepoint(Vec<u8>),
}

/// The session's transaction state. See the module header.
#[derive(Debug, Clone)]
pub struct Transaction {
    state: State,
    /// Shards whose connection's last answer said SERVER_STATUS_IN_TRANS.
    in_trans: Vec<ShardId>,
    /// `SET TRANSACTION …` without SESSION: sent before the next transaction only.
    next_characteristics: Option<Vec<u8>>,
    /// LOCK TABLES holds tables on this shard until UNLOCK TABLES.
    locked: Option<ShardId>,
    /// The last statement that generated an AUTO_INCREMENT value ran here.
    last_insert: Option<ShardId>,
}

impl Default for Transaction {
    fn default() -> Self {
        Self::new()
    }
}

impl Transaction {
    /// No transaction, no lock.
    pub fn new() -> Self {
        Transaction {
            state: State::None,
            in_trans: Vec::new(),
            next_characteristics: None,
            locked: None,
            last_insert: None,
        }
    }

    /// The shard holding the open transaction, if one is open.
    pub fn open_shard(&self) -> Option<ShardId> {
        match self.state {
            State::Open(shard) => Some(shard),
            _ => None,
        }
    }

    /// BEGIN was answered and is not sent yet.
    pub fn is_pending(&self) -> bool {
        matches!(self.state, State::Pending { .. })
    }

    /// Whether the client must see SERVER_STATUS_IN_TRANS: a transaction is open, or
    /// BEGIN was answered and will open one.
    pub fn client_in_trans(&self) -> bool {
        !matches!(self.state, State::None)
    }

    /// Nothing is open or pending (the session may be drained or multiplexed).
    pub fn is_idle(&self) -> bool {
        self.state == State::None && self.in_trans.is_empty() && self.locked.is_none()
    }

    /// BEGIN / START TRANSACTION answered locally. Returns the shard whose open
    /// transaction MariaDB would commit first (a BEGIN inside a transaction commits it).
    pub fn begin(&mut self, payload: &[u8]) -> Option<ShardId> {
        let commit_first = self.open_shard();
        self.state = State::Pending {
            begin: payload.to_vec(),
            savepoints: Vec::new(),
        };
        commit_first
    }

    /// A COMMIT / ROLLBACK (with its modifiers) while BEGIN is pending: nothing ran, so it
    /// is answered locally. `AND CHAIN` keeps a new transaction pending. None when
    /// nothing is pending.
    pub fn end_pending(&mut self, chain: bool, release: bool) -> Option<PendingAnswer> {
        if !self.is_pending() {
            return None;
        }
        if chain {
            if let State::Pending { savepoints, .. } = &mut self.state {
                savepoints.clear();
            }
        } else {
            self.state = State::None;
        }
        if release {
            self.state = State::None;
            Some(PendingAnswer::OkThenClose)
        } else {
            Some(PendingAnswer::Ok)
        }
    }

    /// SAVEPOINT / ROLLBACK TO / RELEASE SAVEPOINT while BEGIN is pending: recorded (or
    /// applied to the record) and answered locally. None when nothing is pending.
    pub fn savepoint_pending(
        &mut self,
        stmt: &TxStatement,
        payload: &[u8],
    ) -> Option<PendingAnswer> {
        let State::Pending { savepoints, .. } = &mut self.state else {
            return None;
        };
        let find = |savepoints: &[(Vec<u8>, Vec<u8>)], name: &[u8]| {
            savepoints
                .iter()
                .rposition(|(n, _)| n.eq_ignore_ascii_case(name))
        };
        Some(match stmt {
            TxStatement::Savepoint(name) => {
                // A savepoint of the same name replaces the older one.
                if let Some(i) = find(savepoints, name) {
                    savepoints.remove(i);
                }
                savepoints.push((name.clone(), payload.to_vec()));
                PendingAnswer::Ok
            }
            TxStatement::RollbackTo(name) => match find(savepoints, name) {
                // Statements after the savepoint are undone; the savepoint stays.
                Some(i) => {
                    savepoints.truncate(i + 1);
                    PendingAnswer::Ok
                }
                None => PendingAnswer::NoSuchSavepoint(name.clone()),
            },
            TxStatement::ReleaseSavepoint(name) => match find(savepoints, name) {
                Some(i) => {
                    savepoints.truncate(i);
                    PendingAnswer::Ok
                }
                None => PendingAnswer::NoSuchSavepoint(name.clone()),
            },
            _ => return None,
        })
    }

    /// Keeps a one-shot `SET TRANSACTION …` for the next transaction.
    pub fn set_next_characteristics(&mut self, payload: &[u8]) {
        self.next_characteristics = Some(payload.to_vec());
    }

    /// A statement that belongs to the transaction is about to run on `shard`: what must
    /// be sent there first (one-shot characteristics, the pending BEGIN, its savepoints),
    /// or the shard of the open transaction it would escape (Err).
    pub fn bind(&mut self, shard: ShardId) -> Result<Vec<Vec<u8>>, ShardId> {
        match &mut self.state {
            State::Open(open) if *open != shard => return Err(*open),
            State::Open(_) => return Ok(Vec::new()),
            State::None => {}
            State::Pending { .. } => {}
        }
        if let Some(locked) = self.locked.filter(|l| *l != shard) {
            return Err(locked);
        }
        let mut prelude: Vec<Vec<u8>> = self.next_characteristics.take().into_iter().collect();
        if let State::Pending { begin, savepoints } =
            std::mem::replace(&mut self.state, State::Open(shard))
        {
            prelude.push(begin);
            prelude.extend(savepoints.into_iter().map(|(_, p)| p));
        } else {
            self.state = State::None;
        }
        Ok(prelude)
    }

    /// A statement that does not belong to a transaction (it touches no data) runs on
    /// `shard`; the shard of a lock it would escape is an Err.
    pub fn check_unbound(&self, shard: ShardId) -> Result<(), ShardId> {
        match self.locked {
            Some(locked) if locked != shard => Err(locked),
            _ => Ok(()),
        }
    }

    /// The status flags of `shard`'s last answer.
    pub fn observe(&mut self, shard: ShardId, status: u16) -> Observation {
        let open = status & crate::protocol::response::SERVER_STATUS_IN_TRANS != 0;
        self.in_trans.retain(|s| *s != shard);
        if open {
            self.in_trans.push(shard);
        }
        // A transaction on a shard that is not the bound one, or one the server opened by
        // itself while BEGIN is still pending (which the pending BEGIN would then escape).
        let stray = open
            && match self.state {
                State::Open(s) => s != shard,
                State::Pending { .. } => true,
                State::None => false,
            };
        if stray || self.in_trans.len() > 1 {
            let mut shards = self.in_trans.clone();
            if let Some(s) = self.open_shard().filter(|s| !shards.contains(s)) {
                shards.push(s);
            }
            return Observation::Violation(shards);
        }
        match (&self.state, open) {
            (State::Open(s), false) if *s == shard => self.state = State::None,
            (State::None, true) => self.state = State::Open(shard),
            _ => {}
        }
        Observation::Fine
    }

    /// After a [`Observation::Violation`], once the session rolled every listed shard
    /// back: nothing is open or pending any more.
    pub fn abort(&mut self) {
        self.state = State::None;
        self.in_trans.clear();
    }

    /// The transaction on `shard` is gone (rolled back by the router, or its connection
    /// was lost).
    pub fn ended(&mut self, shard: ShardId) {
        self.in_trans.retain(|s| *s != shard);
        if self.open_shard() == Some(shard) {
            self.state = State::None;
        }
        if self.locked == Some(shard) {
            self.locked = None;
        }
    }

    /// LOCK TABLES succeeded on `shard`.
    pub fn locked_on(&mut self, shard: ShardId) {
        self.locked = Some(shard);
    }

    /// UNLOCK TABLES goes here (the shard holding the locks).
    pub fn locked(&self) -> Option<ShardId> {
        self.locked
    }

    /// UNLOCK TABLES succeeded.
    pub fn unlocked(&mut self) {
        self.locked = None;
    }

    /// A statement on `shard` generated an AUTO_INCREMENT value.
    pub fn inserted_on(&mut self, shard: ShardId) {
        self.last_insert = Some(shard);
    }

    /// Where `LAST_INSERT_ID()` must be asked.
    pub fn last_insert(&self) -> Option<ShardId> {
        self.last_insert
    }

    /// COM_RESET_CONNECTION / COM_CHANGE_USER: everything ends.
    pub fn reset(&mut self) {
        *self = Transaction::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::response::SERVER_STATUS_IN_TRANS as IN;

    fn parse(s: &str) -> TxStatement {
        TxStatement::parse(s.as_bytes())
    }

    #[test]
    fn statements_parse_as_mariadb_reads_them() {
        let begin = |snap| TxStatement::Begin {
            consistent_snapshot: snap,
        };
        let end = |commit, chain, release| TxStatement::End {
            commit,
            chain,
            release,
        };
        assert_eq!(parse("BEGIN"), begin(false));
        assert_eq!(parse("begin work;"), begin(false));
        assert_eq!(parse("START TRANSACTION"), begin(false));
        assert_eq!(parse("START TRANSACTION READ ONLY"), begin(false));
        assert_eq!(
            parse("start transaction with consistent snapshot, read write"),
            begin(true)
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
        let f = |s: &str| one_shot_characteristics(s.as_bytes());
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
        assert_eq!(t.begin(b"\x03BEGIN"), None);
        assert!(t.client_in_trans() && t.is_pending());
        t.savepoint_pending(&parse("SAVEPOINT a"), b"\x03SAVEPOINT a");
        assert_eq!(
            t.bind(1),
            Ok(vec![b"\x03BEGIN".to_vec(), b"\x03SAVEPOINT a".to_vec()])
        );
        assert_eq!(t.open_shard(), Some(1));
        assert_eq!(t.observe(1, IN), Observation::Fine);
        // Another shard is refused while it is open; the same one needs nothing.
        assert_eq!(t.bind(0), Err(1));
        assert_eq!(t.bind(1), Ok(vec![]));
        // COMMIT's answer clears it.
        assert_eq!(t.observe(1, 0), Observation::Fine);
        assert_eq!(t.open_shard(), None);
        assert!(!t.client_in_trans());
        assert_eq!(t.bind(0), Ok(vec![]));
    }

    #[test]
    fn implicit_transactions_are_followed_from_the_status_flags() {
        let mut t = Transaction::new();
        // autocommit = 0: an INSERT leaves a transaction open.
        assert_eq!(t.observe(0, IN), Observation::Fine);
        assert_eq!(t.open_shard(), Some(0));
        assert_eq!(t.bind(1), Err(0));
        // A broadcast SET whose answer shows a second open transaction: a violation.
        assert_eq!(t.observe(1, IN), Observation::Violation(vec![0, 1]));
        t.abort();
        assert!(t.is_idle());
        // So is a transaction the server opened by itself while BEGIN is pending.
        t.begin(b"B");
        assert_eq!(t.observe(2, IN), Observation::Violation(vec![2]));
        t.abort();
        // DDL commits implicitly: the flag goes away.
        t.observe(0, IN);
        t.observe(0, 0);
        assert!(t.is_idle());
    }

    #[test]
    fn savepoints_and_chains_while_pending_are_answered_locally() {
        let mut t = Transaction::new();
        t.begin(b"B");
        let sp = |t: &mut Transaction, s: &str| t.savepoint_pending(&parse(s), s.as_bytes());
        assert_eq!(sp(&mut t, "SAVEPOINT a"), Some(PendingAnswer::Ok));
        assert_eq!(sp(&mut t, "SAVEPOINT b"), Some(PendingAnswer::Ok));
        assert_eq!(sp(&mut t, "ROLLBACK TO a"), Some(PendingAnswer::Ok));
        assert_eq!(
            sp(&mut t, "RELEASE SAVEPOINT b"),
            Some(PendingAnswer::NoSuchSavepoint(b"b".to_vec()))
        );
        assert_eq!(t.bind(2), Ok(vec![b"B".to_vec(), b"SAVEPOINT a".to_vec()]));
        let mut t = Transaction::new();
        t.begin(b"B");
        sp(&mut t, "SAVEPOINT a");
        assert_eq!(t.end_pending(true, false), Some(PendingAnswer::Ok));
        assert!(t.is_pending());
        assert_eq!(t.bind(0), Ok(vec![b"B".to_vec()]));
        let mut t = Transaction::new();
        t.begin(b"B");
        assert_eq!(t.end_pending(false, true), Some(PendingAnswer::OkThenClose));
        assert!(!t.client_in_trans());
        assert_eq!(sp(&mut t, "SAVEPOINT a"), None);
    }

    #[test]
    fn a_begin_inside_a_transaction_commits_it_first() {
        let mut t = Transaction::new();
        t.observe(3, IN);
        assert_eq!(t.begin(b"B"), Some(3));
    }

    #[test]
    fn one_shot_characteristics_go_with_the_next_transaction_only() {
        let mut t = Transaction::new();
        t.set_next_characteristics(b"SET TRANSACTION READ ONLY");
        t.begin(b"B");
        assert_eq!(
            t.bind(1),
            Ok(vec![b"SET TRANSACTION READ ONLY".to_vec(), b"B".to_vec()])
        );
        t.observe(1, 0);
        assert_eq!(t.bind(0), Ok(vec![]));
        // Without BEGIN it applies to the next statement's own transaction.
        t.set_next_characteristics(b"S");
        assert_eq!(t.bind(0), Ok(vec![b"S".to_vec()]));
        assert_eq!(t.open_shard(), None);
    }

    #[test]
    fn locks_keep_the_session_on_their_shard() {
        let mut t = Transaction::new();
        t.locked_on(1);
        assert_eq!(t.bind(0), Err(1));
        assert_eq!(t.check_unbound(0), Err(1));
        assert_eq!(t.bind(1), Ok(vec![]));
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
                        if let Some(open) = t.begin(b"B") {
                            t.observe(open, 0);
                        }
                    }
                    1 => {
                        let _ = t.bind(shard);
                    }
                    2 => {
                        if let Observation::Violation(_) = t.observe(shard, IN) {
                            t.abort();
                        }
                    }
                    3 => {
                        t.observe(shard, 0);
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
}
