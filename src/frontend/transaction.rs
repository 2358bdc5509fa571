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

use crate::router::open_transactions::OpenTransaction;
use crate::router::ring::ShardId;

use crate::router::dialect::Dialect;
use crate::router::{words, Word};

/// A transaction-control statement, as MariaDB reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxStatement {
    /// `BEGIN [WORK]` or `START TRANSACTION [READ ONLY | READ WRITE | WITH CONSISTENT
    /// SNAPSHOT], …`.
    Begin {
        /// `WITH CONSISTENT SNAPSHOT`: the snapshot is taken by this very statement.
        consistent_snapshot: bool,
        /// `READ ONLY` (MariaDB then reports SERVER_STATUS_IN_TRANS_READONLY).
        read_only: bool,
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
    /// Reads a statement the scanner classified as BEGIN, COMMIT, ROLLBACK or SAVEPOINT,
    /// as MariaDB reads it under `dialect`.
    pub fn parse(sql: &[u8], dialect: Dialect) -> TxStatement {
        let w = lowered_words(sql, dialect, false);
        let w: Vec<&[u8]> = w.iter().map(Vec::as_slice).collect();
        let name = |i: usize| {
            w.get(i..)
                .filter(|rest| rest.len() == 1)
                .map(|rest| rest[0].to_vec())
        };
        match w.as_slice() {
            [b"begin"] | [b"begin", b"work"] => TxStatement::Begin {
                consistent_snapshot: false,
                read_only: false,
            },
            [b"start", b"transaction", modifiers @ ..] => {
                let mut snapshot = false;
                let mut read_only = false;
                let mut rest = modifiers;
                loop {
                    match rest {
                        [] => break,
                        [b"read", mode @ (b"only" | b"write"), tail @ ..] => {
                            read_only = *mode == b"only";
                            rest = tail;
                        }
                        [b"with", b"consistent", b"snapshot", tail @ ..] => {
                            snapshot = true;
                            rest = tail;
                        }
                        _ => return TxStatement::Unknown,
                    }
                }
                TxStatement::Begin {
                    consistent_snapshot: snapshot,
                    read_only,
                }
            }
            [b"savepoint", _] => name(1).map_or(TxStatement::Unknown, TxStatement::Savepoint),
            [b"release", b"savepoint", _] => {
                name(2).map_or(TxStatement::Unknown, TxStatement::ReleaseSavepoint)
            }
            [b"rollback", rest @ ..] if rest.contains(&&b"to"[..]) => {
                let rest = rest.strip_prefix(&[&b"work"[..]]).unwrap_or(rest);
                match rest {
                    [b"to", b"savepoint", n] | [b"to", n] => TxStatement::RollbackTo(n.to_vec()),
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

/// Whether a `SET TRANSACTION …` sets the READ ONLY access mode.
pub fn sets_read_only(sql: &[u8], dialect: Dialect) -> bool {
    let w = lowered_words(sql, dialect, true);
    w.windows(2)
        .any(|p| p[0].as_slice() == b"read" && p[1].as_slice() == b"only")
}

/// A one-shot `SET TRANSACTION …` (no SESSION or GLOBAL: it applies to the next
/// transaction only): None for any other statement, Some(false) for a form the router
/// does not read.
pub fn one_shot_characteristics(sql: &[u8], dialect: Dialect) -> Option<bool> {
    // Runs on every statement: nothing is allocated unless it starts `SET TRANSACTION`.
    let mut first = words(sql, dialect);
    let set_transaction = first.next().is_some_and(|w| w.is(b"set"))
        && first.next().is_some_and(|w| w.is(b"transaction"));
    if !set_transaction {
        return None;
    }
    let w = lowered_words(sql, dialect, true);
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

/// The words of a statement of a fixed shape, keywords and names lowercased, `;` (and
/// unless `commas`, `,`) left out. A string, number, variable or unreadable text becomes a
/// word no shape has (savepoint names are identifiers; the forms have no literals).
fn lowered_words(sql: &[u8], dialect: Dialect, commas: bool) -> Vec<Vec<u8>> {
    words(sql, dialect)
        .filter(|w| !w.is_punct(b";") && (commas || !w.is_punct(b",")))
        .map(|w| match w {
            Word::Ident(text) => text.to_ascii_lowercase(),
            Word::Punct(p) => p.to_vec(),
            _ => b"\0".to_vec(),
        })
        .collect()
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
        /// Read only (the BEGIN's or the one-shot characteristics' access mode).
        read_only: bool,
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
    /// Whether those make the next transaction read only.
    next_read_only: bool,
    /// LOCK TABLES holds tables on this shard until UNLOCK TABLES.
    locked: Option<ShardId>,
    /// The last statement that generated an AUTO_INCREMENT value ran here.
    last_insert: Option<ShardId>,
    /// The open transaction's registration (shard and the topology version it began
    /// under): a move's hold waits for it (`router::open_transactions`).
    registered: Option<OpenTransaction>,
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
            next_read_only: false,
            locked: None,
            last_insert: None,
            registered: None,
        }
    }

    /// Keeps the registration in step with the state: a transaction that opened on a
    /// shard under topology `version` is registered, one that ended is not.
    fn settle(&mut self, version: u64) {
        match self.state {
            State::Open(shard) => {
                if self.registered.as_ref().map(|r| r.shard()) != Some(shard) {
                    self.registered = Some(OpenTransaction::register(shard, version));
                }
            }
            _ => self.registered = None,
        }
    }

    /// The topology version under which the transaction open on `shard` began (a move's
    /// hold lets a transaction older than the hold finish on the source).
    pub fn open_since(&self, shard: ShardId) -> Option<u64> {
        self.registered
            .as_ref()
            .filter(|r| r.shard() == shard && self.open_shard() == Some(shard))
            .map(|r| r.version())
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

    /// Whether BEGIN was answered locally for a read-only transaction not sent yet (the
    /// client must see SERVER_STATUS_IN_TRANS_READONLY, as MariaDB reports it).
    pub fn pending_read_only(&self) -> bool {
        matches!(
            self.state,
            State::Pending {
                read_only: true,
                ..
            }
        )
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
    pub fn begin(&mut self, payload: &[u8], read_only: bool) -> Option<ShardId> {
        let commit_first = self.open_shard();
        self.state = State::Pending {
            begin: payload.to_vec(),
            savepoints: Vec::new(),
            read_only: read_only || (self.next_characteristics.is_some() && self.next_read_only),
        };
        self.registered = None;
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
    pub fn set_next_characteristics(&mut self, payload: &[u8], read_only: bool) {
        self.next_characteristics = Some(payload.to_vec());
        self.next_read_only = read_only;
    }

    /// A statement that belongs to the transaction is about to run on `shard`: what must
    /// be sent there first (one-shot characteristics, the pending BEGIN, its savepoints),
    /// or the shard of the open transaction it would escape (Err).
    /// `version` is the topology version the statement was routed under.
    pub fn bind(&mut self, shard: ShardId, version: u64) -> Result<Vec<Vec<u8>>, ShardId> {
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
        if let State::Pending {
            begin, savepoints, ..
        } = std::mem::replace(&mut self.state, State::Open(shard))
        {
            prelude.push(begin);
            prelude.extend(savepoints.into_iter().map(|(_, p)| p));
        } else {
            self.state = State::None;
        }
        self.settle(version);
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

    /// The status flags of `shard`'s last answer, to a statement routed under topology
    /// `version`.
    pub fn observe(&mut self, shard: ShardId, status: u16, version: u64) -> Observation {
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
        self.settle(version);
        Observation::Fine
    }

    /// After a [`Observation::Violation`], once the session rolled every listed shard
    /// back: nothing is open or pending any more.
    pub fn abort(&mut self) {
        self.state = State::None;
        self.registered = None;
        self.in_trans.clear();
    }

    /// The transaction on `shard` is gone (rolled back by the router, or its connection
    /// was lost).
    pub fn ended(&mut self, shard: ShardId) {
        self.in_trans.retain(|s| *s != shard);
        if self.open_shard() == Some(shard) {
            self.state = State::None;
            self.registered = None;
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
mod tests;
