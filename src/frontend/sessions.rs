//! The router's client sessions as MariaDB's process list sees threads: their ids (the
//! greeting's, `CONNECTION_ID()`'s, the process list's and `KILL`'s), who they are, what
//! they are doing, and how to stop them.
//!
//! Ids are unique across the routers of a cluster: the router's number (claimed in
//! ZooKeeper, `topology::zk::ZkStore::claim_router_number`; 0 without ZooKeeper) in the
//! top [`ROUTER_BITS`] bits, a counter in the others (skipping ids still in use when it
//! wraps). So a `KILL` that reaches another router than the session's can be passed on to
//! the owner ([`router_of`]).
//!
//! Each session publishes its activity (command, since when, statement text, the backend
//! thread running it) in a small mutex of its own, touched twice per command; `SHOW
//! PROCESSLIST` reads them. `KILL QUERY` kills the statement on its backend thread (as the
//! killer's own account, which is the target's: MariaDB's ownership rule); `KILL
//! CONNECTION` kills that thread's connection and tells the session to end.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::Notify;

use crate::router::ring::ShardId;

use super::backends::LoginState;

/// Bits of a session id that hold the router's number.
pub const ROUTER_BITS: u32 = 10;

/// Largest router number (numbers are 0 ..= this).
pub const MAX_ROUTER_NUMBER: u32 = (1 << ROUTER_BITS) - 1;

const COUNTER_BITS: u32 = 32 - ROUTER_BITS;
const COUNTER_MASK: u32 = (1 << COUNTER_BITS) - 1;

/// Longest statement text kept for the process list (MariaDB's `SHOW FULL PROCESSLIST`
/// shows it whole; longer ones are cut here).
const MAX_INFO: usize = 64 * 1024;

/// The router whose session an id names.
pub fn router_of(id: u64) -> Option<u32> {
    u32::try_from(id).ok().map(|id| id >> COUNTER_BITS)
}

/// What a session is doing (MariaDB's `Command` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Waiting for the client.
    Sleep,
    /// COM_QUERY.
    Query,
    /// COM_STMT_PREPARE.
    Prepare,
    /// COM_STMT_EXECUTE, COM_STMT_BULK_EXECUTE, COM_STMT_FETCH.
    Execute,
    /// Any other command.
    Other,
}

impl Command {
    /// MariaDB's name for it.
    pub fn name(self) -> &'static str {
        match self {
            Command::Sleep => "Sleep",
            Command::Query => "Query",
            Command::Prepare => "Prepare",
            Command::Execute => "Execute",
            Command::Other => "Query",
        }
    }
}

#[derive(Debug)]
struct Activity {
    command: Command,
    since: Instant,
    info: Vec<u8>,
    db: Option<String>,
    /// The backend thread running the session's statement: (shard, thread id).
    running: Option<(ShardId, u64)>,
}

/// One session, as the process list and KILL see it.
#[derive(Debug)]
pub struct SessionInfo {
    /// Its id.
    pub id: u32,
    /// The client's address.
    pub peer: SocketAddr,
    account: Mutex<String>,
    /// How the session logs in to its backends (to kill its statement as its own account).
    login: Mutex<Option<LoginState>>,
    activity: Mutex<Activity>,
    killed: AtomicBool,
    kill: Notify,
}

/// One row of the process list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessRow {
    /// Session id.
    pub id: u32,
    /// Account.
    pub user: String,
    /// Client address.
    pub host: String,
    /// Current database.
    pub db: Option<String>,
    /// Command name.
    pub command: &'static str,
    /// Seconds in the current command (or idle).
    pub time: u64,
    /// Statement text (None when idle).
    pub info: Option<Vec<u8>>,
}

impl SessionInfo {
    fn lock(&self) -> std::sync::MutexGuard<'_, Activity> {
        self.activity.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The account (changes with COM_CHANGE_USER).
    pub fn account(&self) -> String {
        self.account
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// After COM_CHANGE_USER.
    pub fn set_account(&self, account: &str) {
        *self.account.lock().unwrap_or_else(|e| e.into_inner()) = account.to_string();
    }

    /// How the session logs in to its backends (at login, and after COM_CHANGE_USER).
    pub fn set_login(&self, login: LoginState) {
        *self.login.lock().unwrap_or_else(|e| e.into_inner()) = Some(login);
    }

    /// How the session logs in to its backends.
    pub fn login(&self) -> Option<LoginState> {
        self.login.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// A command begins at `at`; `text` is its statement (COM_QUERY, COM_STMT_PREPARE).
    pub fn begin(&self, command: Command, text: &[u8], at: Instant) {
        let mut a = self.lock();
        a.command = command;
        a.since = at;
        a.info.clear();
        a.info
            .extend_from_slice(text.get(..MAX_INFO).unwrap_or(text));
    }

    /// The command ended: the session waits for its client (its idle time counts from
    /// the command's start: no clock read on the hot path).
    pub fn end(&self) {
        let mut a = self.lock();
        a.command = Command::Sleep;
        a.info.clear();
        a.running = None;
    }

    /// The current database.
    pub fn set_db(&self, db: Option<&str>) {
        self.lock().db = db.map(str::to_string);
    }

    /// The statement now runs on this backend thread (None: no longer).
    pub fn set_running(&self, running: Option<(ShardId, u64)>) {
        self.lock().running = running;
    }

    /// The backend thread running the session's statement, if any.
    pub fn running(&self) -> Option<(ShardId, u64)> {
        self.lock().running
    }

    /// Marks the session killed (`KILL CONNECTION`) and wakes it.
    pub fn kill(&self) {
        self.killed.store(true, Ordering::Release);
        self.kill.notify_one();
    }

    /// Whether `KILL CONNECTION` named it.
    pub fn is_killed(&self) -> bool {
        self.killed.load(Ordering::Acquire)
    }

    /// Completes when the session is killed (at once if it was).
    pub async fn killed(&self) {
        if self.is_killed() {
            return;
        }
        self.kill.notified().await;
    }

    fn row(&self) -> ProcessRow {
        let a = self.lock();
        ProcessRow {
            id: self.id,
            user: self.account(),
            host: self.peer.to_string(),
            db: a.db.clone(),
            command: a.command.name(),
            time: a.since.elapsed().as_secs(),
            info: (a.command != Command::Sleep).then(|| a.info.clone()),
        }
    }
}

/// Every open session of this router.
#[derive(Debug)]
pub struct SessionRegistry {
    router: AtomicU32,
    next: AtomicU32,
    sessions: Mutex<HashMap<u32, Arc<SessionInfo>>>,
}

impl SessionRegistry {
    /// An empty registry for router number 0 (set the real one with
    /// [`SessionRegistry::set_router_number`] before serving).
    pub fn new() -> Arc<Self> {
        Arc::new(SessionRegistry {
            router: AtomicU32::new(0),
            next: AtomicU32::new(1),
            sessions: Mutex::new(HashMap::new()),
        })
    }

    /// The router's number (its ids' top bits).
    pub fn router_number(&self) -> u32 {
        self.router.load(Ordering::Relaxed)
    }

    /// Sets the router's number (at most [`MAX_ROUTER_NUMBER`]).
    pub fn set_router_number(&self, number: u32) {
        self.router
            .store(number.min(MAX_ROUTER_NUMBER), Ordering::Relaxed);
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<u32, Arc<SessionInfo>>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A fresh id: this router's number and the next counter value not in use (never 0).
    pub fn next_id(&self) -> u32 {
        let high = self.router_number() << COUNTER_BITS;
        loop {
            let n = self.next.fetch_add(1, Ordering::Relaxed) & COUNTER_MASK;
            if n == 0 {
                continue;
            }
            let id = high | n;
            if !self.map().contains_key(&id) {
                return id;
            }
        }
    }

    /// Registers a logged-in session.
    pub fn register(&self, id: u32, peer: SocketAddr, account: &str) -> Arc<SessionInfo> {
        let info = Arc::new(SessionInfo {
            id,
            peer,
            account: Mutex::new(account.to_string()),
            login: Mutex::new(None),
            activity: Mutex::new(Activity {
                command: Command::Sleep,
                since: Instant::now(),
                info: Vec::new(),
                db: None,
                running: None,
            }),
            killed: AtomicBool::new(false),
            kill: Notify::new(),
        });
        self.map().insert(id, Arc::clone(&info));
        info
    }

    /// Forgets a session (it ended).
    pub fn forget(&self, id: u32) {
        self.map().remove(&id);
    }

    /// The session with this id, if it is open here.
    pub fn get(&self, id: u64) -> Option<Arc<SessionInfo>> {
        let id = u32::try_from(id).ok()?;
        self.map().get(&id).cloned()
    }

    /// The process list of `account`'s sessions, by id.
    pub fn process_list(&self, account: &str) -> Vec<ProcessRow> {
        let sessions: Vec<Arc<SessionInfo>> = self.map().values().cloned().collect();
        let mut rows: Vec<ProcessRow> = sessions
            .iter()
            .filter(|s| s.account() == account)
            .map(|s| s.row())
            .collect();
        rows.sort_by_key(|r| r.id);
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> SocketAddr {
        "10.0.0.1:5000".parse().unwrap()
    }

    #[test]
    fn ids_carry_the_router_number_and_skip_ids_in_use() {
        let r = SessionRegistry::new();
        r.set_router_number(5);
        let a = r.next_id();
        assert_eq!(router_of(u64::from(a)), Some(5));
        assert_ne!(a & COUNTER_MASK, 0);
        r.register(a, peer(), "app");
        // Wrap the counter onto a: the id in use is skipped.
        r.next.store(a & COUNTER_MASK, Ordering::Relaxed);
        let b = r.next_id();
        assert_ne!(a, b);
        assert_eq!(router_of(u64::from(b)), Some(5));
        // The counter never yields 0.
        r.next.store(COUNTER_MASK + 1, Ordering::Relaxed);
        assert_ne!(r.next_id() & COUNTER_MASK, 0);
        assert_eq!(router_of(u64::from(u32::MAX) + 1), None);
    }

    #[tokio::test]
    async fn the_process_list_shows_an_accounts_sessions_and_what_they_do() {
        let r = SessionRegistry::new();
        let a = r.register(r.next_id(), peer(), "app");
        let other = r.register(r.next_id(), peer(), "other");
        a.begin(Command::Query, b"SELECT SLEEP(10)", Instant::now());
        a.set_db(Some("app"));
        a.set_running(Some((1, 77)));
        let rows = r.process_list("app");
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].command, "Query");
        assert_eq!(rows[0].info.as_deref(), Some(&b"SELECT SLEEP(10)"[..]));
        assert_eq!(rows[0].db.as_deref(), Some("app"));
        assert_eq!(a.running(), Some((1, 77)));
        a.end();
        assert_eq!(r.process_list("app")[0].info, None);
        assert_eq!(a.running(), None);
        // Killing wakes the session.
        other.kill();
        other.killed().await;
        assert!(other.is_killed());
        r.forget(other.id);
        assert!(r.get(u64::from(other.id)).is_none());
    }
}
