//! The routing table: one immutable snapshot of shards, ring, overrides and table rules,
//! and the routing decision for a scanned statement. Sessions hold an `Arc` of it; a
//! topology change builds a new one and swaps it in whole.

use std::collections::{HashMap, HashSet};

use super::key::{KeyColumns, KeyProblem, KeyRef, KeyValue, Scan, StatementKind};
use super::ring::{key_hash, Overrides, Ring, RingError, ShardId};
use crate::config::{KeyColumnType, ShardingConfig, UnlistedTables};

/// One shard as the router sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardInfo {
    /// Shard name.
    pub name: String,
    /// `host:port` of the master: the only server that gets application statements.
    pub master: String,
    /// `host:port` of the hot standbys.
    pub standbys: Vec<String>,
    /// Ring weight.
    pub weight: u32,
    /// Master epoch: bumped by every master change (failover).
    pub epoch: u64,
    /// A switchover is in progress: new statements wait (bounded) for the new master.
    pub switching: bool,
    /// Former masters fenced after a failover, waiting for a rejoin (never routed to).
    pub rejoin: Vec<String>,
    /// A hibernation shard: a statement routed there wakes its user (moves them back).
    pub hibernation: bool,
    /// Automatic failover may act on the shard (not disarmed): while its master is
    /// unreachable, statements are held for the new master (with `[failover] auto`).
    pub auto_failover_armed: bool,
}

/// Why a user id maps to its shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// An explicit per-user override.
    Override,
    /// Its position on the ring.
    Ring {
        /// xxh3 of the canonical key bytes.
        key_hash: u64,
        /// Position of the owning virtual node.
        vnode_hash: u64,
    },
}

/// Where a statement goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// The master of this shard (the statement names its user, or touches global tables).
    Shard(ShardId),
    /// A keyless statement that is harmless anywhere (`SELECT 1`, `SHOW …`,
    /// `SELECT LAST_INSERT_ID()`): the session's current shard.
    Session,
    /// Session state (`SET`, `USE`): every backend connection of the session, and
    /// remembered for the ones it opens later.
    Broadcast,
    /// BEGIN / START TRANSACTION, COMMIT, ROLLBACK, SAVEPOINT: the session's
    /// transaction logic decides.
    Transaction(StatementKind),
}

/// Why a statement cannot be routed; each becomes an ERR packet that says how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// The statement names a user whose statements a move holds: the session holds it
    /// until the move flips or gives up (never sent to a client as such).
    #[error("a move holds this user's statements; retry in a moment")]
    UserHeld,
    /// A sharded table without its key.
    #[error("statement on sharded table `{table}` has no shard key: add `{column} = <user id>` to its WHERE clause (or the `{column}` column to the INSERT), or prefix the statement with /* {column}=<user id> */")]
    NoKey {
        /// The table.
        table: String,
        /// Its key column.
        column: String,
    },
    /// Keys of users on different shards in one statement.
    #[error("statement needs several shards (user {first} is on {first_shard}, user {second} on {second_shard}); dbrouter runs each statement on one shard: split it per user")]
    CrossShard {
        /// First key value.
        first: String,
        /// Its shard.
        first_shard: String,
        /// A key on another shard.
        second: String,
        /// That shard.
        second_shard: String,
    },
    /// The key is mentioned in a way the scanner cannot decide.
    #[error("cannot route this statement by its shard key: {0}")]
    Undecidable(&'static str),
    /// DDL on a sharded table.
    #[error("DDL on sharded table `{0}` is refused through the router: schema changes must reach every shard, so apply them to each shard's master directly (see docs/sharding.md)")]
    DdlRefused(String),
    /// A statement shape the router does not run (a mixed batch, dynamic SQL, a compound
    /// statement…); the message says what to send instead.
    #[error("cannot route this statement: {0}")]
    Statement(&'static str),
    /// A key value MariaDB would convert to another user id than the router reads.
    #[error("cannot route by the user id {key}: it {why}")]
    BadKey {
        /// The key as written.
        key: String,
        /// Why it is refused.
        why: &'static str,
    },
    /// A `/* key=… */` hint or the session pin names another user than the statement.
    #[error("the {by} names user {asserted} but the statement names user {named}: dbrouter refuses a statement whose users disagree; remove the {by} or make them agree")]
    Conflict {
        /// `/* userid=… */ hint` or `session pin (@dbrouter_userid)`.
        by: &'static str,
        /// The user the hint or pin names.
        asserted: String,
        /// The user the statement names.
        named: String,
    },
}

/// Who a statement is attributed to besides the keys it names.
const HINT: &str = "/* key=… */ hint";
const PIN: &str = "session pin (@dbrouter_userid)";
const LOAD_DATA_KEY: &str = "LOAD DATA into a sharded table takes each row's user id from the file, which dbrouter does not read (a hint or the session pin cannot vouch for it): load each shard's rows on its master directly";

/// The immutable routing snapshot.
#[derive(Debug, Clone)]
pub struct RoutingTable {
    /// Topology version this snapshot was built from (0 for a config-file topology).
    pub version: u64,
    /// Shards in `ShardId` order.
    pub shards: Vec<ShardInfo>,
    ring: Ring,
    overrides: Overrides,
    global_shard: ShardId,
    key_columns: KeyColumns,
    key_type: KeyColumnType,
    default_key_column: String,
    table_keys: Vec<(String, String)>,
    global_tables: HashSet<Vec<u8>>,
    unlisted_global: bool,
    /// Users (canonical keys) whose statements are held while a move copies their last
    /// rows, each with the topology version from which this router holds it: empty but
    /// during a move's hold.
    held: HashMap<Vec<u8>, u64>,
    /// Whether any shard is a hibernation shard (one check on the hot path).
    any_hibernation: bool,
}

impl RoutingTable {
    /// Builds a snapshot from its parts: shards in `ShardId` order, the global shard's
    /// name, overrides as (canonical key, shard name), and the table rules. Overrides
    /// naming an unknown shard are skipped (the topology store validates them).
    pub fn build<'a>(
        version: u64,
        shards: Vec<ShardInfo>,
        global_shard: &str,
        overrides: impl IntoIterator<Item = (&'a [u8], &'a str)>,
        sharding: &ShardingConfig,
    ) -> Result<Self, RingError> {
        let weights: Vec<(&str, u32)> =
            shards.iter().map(|s| (s.name.as_str(), s.weight)).collect();
        let ring = Ring::build(&weights)?;
        let any_hibernation = shards.iter().any(|s| s.hibernation);
        let id_of = |name: &str| {
            shards
                .iter()
                .position(|s| s.name == name)
                .map(|i| i as ShardId)
        };
        let mut map = Overrides::default();
        for (key, shard) in overrides {
            if let Some(id) = id_of(shard) {
                map.insert(key, id);
            }
        }
        let global_shard = id_of(global_shard).unwrap_or(0);
        let key_of = |t: &crate::config::ShardedTableConfig| {
            t.key.clone().unwrap_or_else(|| sharding.key_column.clone())
        };
        let key_columns = KeyColumns::new(
            std::iter::once(sharding.key_column.clone()).chain(sharding.tables.iter().map(key_of)),
        );
        Ok(RoutingTable {
            version,
            shards,
            ring,
            overrides: map,
            global_shard,
            key_columns,
            key_type: sharding.key_type,
            default_key_column: sharding.key_column.clone(),
            table_keys: sharding
                .tables
                .iter()
                .map(|t| (t.name.to_ascii_lowercase(), key_of(t)))
                .collect(),
            global_tables: sharding
                .global_tables
                .iter()
                .map(|t| t.to_ascii_lowercase().into_bytes())
                .collect(),
            unlisted_global: sharding.unlisted_tables == UnlistedTables::Global,
            held: HashMap::new(),
            any_hibernation,
        })
    }

    /// The same snapshot with these users' statements held (a move's hold), from this
    /// version on.
    pub fn with_held<'a>(mut self, users: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let version = self.version;
        self.held = users.into_iter().map(|u| (u.to_vec(), version)).collect();
        self
    }

    /// Users held in `previous` too are held since then (a hold is as old as the first
    /// snapshot this router applied with it).
    pub fn carry_hold_since(&mut self, previous: &RoutingTable) {
        for (user, since) in self.held.iter_mut() {
            if let Some(before) = previous.held.get(user) {
                *since = (*since).min(*before);
            }
        }
    }

    /// Whether a move holds any user's statements (one check on the hot path).
    #[inline]
    pub fn holds_users(&self) -> bool {
        !self.held.is_empty()
    }

    /// Whether a statement names a held user — a key literal (hint included) or the pin —
    /// and if so since which version the earliest of them is held. `?` keys are checked
    /// when their values arrive ([`RoutingTable::hold_since`]).
    pub fn names_held_user(&self, scan: &Scan<'_>, pin: Option<&[u8]>) -> Option<u64> {
        if self.held.is_empty() {
            return None;
        }
        let mut buf = [0u8; 20];
        let mut since = pin.and_then(|p| self.held.get(p).copied());
        for k in scan.keys() {
            if let KeyRef::Literal(v) = k {
                if let Some(s) = self.held.get(v.canonical(&mut buf)) {
                    since = Some(since.map_or(*s, |e| e.min(*s)));
                }
            }
        }
        since
    }

    /// Each held user's source shard (where the user is routed until the flip) and the
    /// version from which it is held: what this router's acknowledgement of the holds
    /// waits for (`router::open_transactions`).
    pub fn held_sources(&self) -> Vec<(ShardId, u64)> {
        self.held
            .iter()
            .map(|(user, since)| (self.shard_for_key(user).0, *since))
            .collect()
    }

    /// Whether `shard` is a hibernation shard (a statement routed there wakes its user).
    #[inline]
    pub fn is_hibernation(&self, shard: ShardId) -> bool {
        self.any_hibernation && self.shard(shard).is_some_and(|s| s.hibernation)
    }

    /// The user a statement names: its first literal key (a hint included), else the pin.
    pub fn named_user(&self, scan: &Scan<'_>, pin: Option<&[u8]>) -> Option<Vec<u8>> {
        let mut buf = [0u8; 20];
        scan.keys()
            .iter()
            .find_map(|k| match k {
                KeyRef::Literal(v) => Some(v.canonical(&mut buf).to_vec()),
                KeyRef::Param(_) => None,
            })
            .or_else(|| pin.map(<[u8]>::to_vec))
    }

    /// The users moves hold now (canonical keys).
    pub fn held_users(&self) -> impl Iterator<Item = &[u8]> {
        self.held.keys().map(Vec::as_slice)
    }

    /// How many users moves hold now.
    pub fn held_count(&self) -> usize {
        self.held.len()
    }

    /// Whether a user (canonical key) is held by a move.
    pub fn is_held(&self, canonical: &[u8]) -> bool {
        self.held.contains_key(canonical)
    }

    /// Since which version a user (canonical key) is held, if a move holds it.
    pub fn hold_since(&self, canonical: &[u8]) -> Option<u64> {
        self.held.get(canonical).copied()
    }

    /// The shard id of a shard name.
    pub fn shard_id(&self, name: &str) -> Option<ShardId> {
        self.shards
            .iter()
            .position(|s| s.name == name)
            .map(|i| i as ShardId)
    }

    /// Number of overridden users.
    pub fn override_count(&self) -> usize {
        self.overrides.len()
    }

    /// The key columns the scanner looks for.
    pub fn key_columns(&self) -> &KeyColumns {
        &self.key_columns
    }

    /// The key columns' SQL type (how key values convert).
    pub fn key_type(&self) -> KeyColumnType {
        self.key_type
    }

    /// The shard of global tables and first connections.
    pub fn global_shard(&self) -> ShardId {
        self.global_shard
    }

    /// The shard info of an id.
    pub fn shard(&self, id: ShardId) -> Option<&ShardInfo> {
        self.shards.get(usize::from(id))
    }

    /// The name of a shard, for messages.
    pub fn shard_name(&self, id: ShardId) -> &str {
        self.shard(id).map_or("?", |s| s.name.as_str())
    }

    /// The shard of a user id given as canonical key bytes, and why.
    #[inline]
    pub fn shard_for_key(&self, canonical: &[u8]) -> (ShardId, Why) {
        if let Some(shard) = self.overrides.get(canonical) {
            return (shard, Why::Override);
        }
        let p = self.ring.lookup(key_hash(canonical));
        (
            p.shard,
            Why::Ring {
                key_hash: p.key_hash,
                vnode_hash: p.vnode_hash,
            },
        )
    }

    /// The shard of a key value.
    #[inline]
    pub fn shard_for_value(&self, value: &KeyValue<'_>) -> ShardId {
        let mut buf = [0u8; 20];
        self.shard_for_key(value.canonical(&mut buf)).0
    }

    /// Whether a table (as the scanner returned it) is global.
    fn is_global(&self, table: &[u8]) -> bool {
        // Table names are short: lower-case into a stack buffer, never allocate.
        let mut buf = [0u8; 64];
        if table.len() > buf.len() {
            return self.unlisted_global;
        }
        let lower = &mut buf[..table.len()];
        lower.copy_from_slice(table);
        lower.make_ascii_lowercase();
        if self.global_tables.contains(&lower[..]) {
            return true;
        }
        self.unlisted_global
            && !self
                .table_keys
                .iter()
                .any(|(name, _)| name.as_bytes() == &lower[..])
    }

    fn key_column_of(&self, table: &[u8]) -> &str {
        self.table_keys
            .iter()
            .find(|(name, _)| name.as_bytes().eq_ignore_ascii_case(table))
            .map_or(self.default_key_column.as_str(), |(_, key)| key.as_str())
    }

    /// The routing decision for a scanned statement. `Param` keys (prepared statements)
    /// are the caller's to resolve once their values are known; here they make the
    /// statement keyed but do not pick a shard (`Ok(None)` is returned for them).
    pub fn route(&self, scan: &Scan<'_>) -> Result<Option<Route>, RouteError> {
        self.route_pinned(scan, None)
    }

    /// [`RoutingTable::route`] for a session pinned to a user (`SET @dbrouter_userid`,
    /// canonical key). One precedence for hints and the pin (docs/sharding.md, "Hints and
    /// the session pin"): a leading hint, else the pin, names the statement's user; every
    /// key the statement names must be that same user, else [`RouteError::Conflict`]; the
    /// user routes statements that name no key, and lifts exactly the problems a hint
    /// lifts (an undecidable filter, never a key the statement writes).
    pub fn route_pinned(
        &self,
        scan: &Scan<'_>,
        pin: Option<&[u8]>,
    ) -> Result<Option<Route>, RouteError> {
        // Borrowed, never copied: this runs for every hinted or pinned statement.
        let mut buf = [0u8; 20];
        let asserted: Option<(&'static str, &[u8])> = if scan.from_hint {
            match scan.keys().first() {
                Some(KeyRef::Literal(v)) => Some((HINT, v.canonical(&mut buf))),
                _ => None,
            }
        } else {
            pin.map(|p| (PIN, p))
        };
        if let Some((by, user)) = asserted {
            for key in scan.keys().iter().skip(usize::from(scan.from_hint)) {
                let named = match *key {
                    KeyRef::Literal(v) => {
                        let mut b = [0u8; 20];
                        let c = v.canonical(&mut b);
                        if c == user {
                            continue;
                        }
                        display_key(&v)
                    }
                    // A `?` key is checked against the pin when its value arrives; a hint
                    // over one is refused (it could only be checked per execution).
                    KeyRef::Param(_) if by == PIN => continue,
                    KeyRef::Param(i) => format!("in parameter {}", i + 1),
                };
                return Err(RouteError::Conflict {
                    by,
                    asserted: String::from_utf8_lossy(user).into_owned(),
                    named,
                });
            }
        }
        // LOAD DATA writes the keys the uploaded file holds, which the router never reads:
        // a hint or the pin cannot vouch for them.
        if scan.kind == StatementKind::Load
            && scan.keys().len() <= usize::from(scan.from_hint)
            && !self.all_tables_global(scan)
        {
            return Err(RouteError::Statement(LOAD_DATA_KEY));
        }
        let lifted = scan
            .problem
            .filter(|p| !(asserted.is_some() && !scan.from_hint && p.lifted_by_hint(scan.kind)));
        let routed = self.route_scan(scan, lifted);
        let Some((_, user)) = asserted.filter(|_| !scan.from_hint) else {
            return routed;
        };
        let pinned = Route::Shard(self.shard_for_key(user).0);
        match routed {
            Ok(Some(Route::Session)) | Err(RouteError::NoKey { .. }) => Ok(Some(pinned)),
            other => other,
        }
    }

    fn route_scan(
        &self,
        scan: &Scan<'_>,
        problem: Option<KeyProblem>,
    ) -> Result<Option<Route>, RouteError> {
        let mut keyed: Option<(ShardId, KeyValue<'_>)> = None;
        let mut has_param = false;
        for key in scan.keys() {
            match *key {
                KeyRef::Param(_) => has_param = true,
                KeyRef::Literal(value) => {
                    if let Err(why) = super::admit_key(&value, self.key_type) {
                        return Err(RouteError::BadKey {
                            key: display_key(&value),
                            why,
                        });
                    }
                    let shard = self.shard_for_value(&value);
                    match keyed {
                        None => keyed = Some((shard, value)),
                        Some((first_shard, first)) if first_shard != shard => {
                            return Err(RouteError::CrossShard {
                                first: display_key(&first),
                                first_shard: self.shard_name(first_shard).to_string(),
                                second: display_key(&value),
                                second_shard: self.shard_name(shard).to_string(),
                            })
                        }
                        Some(_) => {}
                    }
                }
            }
        }
        if let Some(problem) = problem {
            // A statement MariaDB may read differently names tables the scanner may
            // have misread: refused even on global tables.
            let misread = matches!(problem, KeyProblem::Unreadable | KeyProblem::Unterminated);
            if !misread && self.all_tables_global(scan) {
                return Ok(Some(Route::Shard(self.global_shard)));
            }
            return Err(RouteError::Undecidable(problem_message(problem)));
        }
        if let Some((shard, _)) = keyed {
            return Ok(Some(Route::Shard(shard)));
        }
        if has_param {
            return Ok(None);
        }
        if scan.kind == StatementKind::Ddl && scan.temporary {
            // Temporary tables belong to the session: they live where it runs.
            return Ok(Some(Route::Session));
        }
        Ok(Some(self.route_keyless(scan)?))
    }

    fn all_tables_global(&self, scan: &Scan<'_>) -> bool {
        let mut any = false;
        for t in scan.tables() {
            if !self.is_global(t) {
                return false;
            }
            any = true;
        }
        any && !scan.tables_truncated
    }

    fn first_sharded_table<'a>(&self, scan: &Scan<'a>) -> Option<&'a [u8]> {
        scan.tables().iter().copied().find(|t| !self.is_global(t))
    }

    fn route_keyless(&self, scan: &Scan<'_>) -> Result<Route, RouteError> {
        use StatementKind::*;
        match scan.kind {
            Begin | Commit | Rollback | Savepoint => return Ok(Route::Transaction(scan.kind)),
            // Session state, unless it reads a table (`SET @n = (SELECT … FROM t)`): then
            // its value depends on the shard, so it runs where a query would, once.
            Set | Use if scan.tables().is_empty() && !scan.tables_truncated => {
                return Ok(Route::Broadcast)
            }
            Show | Explain => return Ok(Route::Session),
            _ => {}
        }
        if self.all_tables_global(scan) {
            return Ok(Route::Shard(self.global_shard));
        }
        match self.first_sharded_table(scan) {
            None => Ok(Route::Session),
            Some(table) if scan.kind == Ddl => Err(RouteError::DdlRefused(
                String::from_utf8_lossy(table).into_owned(),
            )),
            Some(table) => Err(RouteError::NoKey {
                table: String::from_utf8_lossy(table).into_owned(),
                column: self.key_column_of(table).to_string(),
            }),
        }
    }
}

/// A key value as the user wrote it, for messages.
pub fn display_key(value: &KeyValue<'_>) -> String {
    match value {
        KeyValue::Int(n) => n.to_string(),
        KeyValue::Str(s) => format!("'{}'", String::from_utf8_lossy(s)),
    }
}

fn problem_message(problem: KeyProblem) -> &'static str {
    problem.message()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ShardedTableConfig;
    use crate::router::scan;

    fn table(key_type: KeyColumnType) -> RoutingTable {
        let shard = |name: &str| ShardInfo {
            name: name.into(),
            master: format!("{name}:3306"),
            standbys: Vec::new(),
            weight: 256,
            epoch: 0,
            switching: false,
            rejoin: Vec::new(),
            hibernation: false,
            auto_failover_armed: true,
        };
        let sharding = ShardingConfig {
            global_tables: vec!["countries".into()],
            tables: vec![ShardedTableConfig {
                name: "posts".into(),
                key: None,
            }],
            key_type,
            ..ShardingConfig::default()
        };
        RoutingTable::build(1, vec![shard("s1"), shard("s2")], "s1", [], &sharding)
            .expect("a valid table")
    }

    /// Two users on different shards.
    fn users(t: &RoutingTable) -> (u64, u64) {
        let shard = |u: u64| t.shard_for_key(u.to_string().as_bytes()).0;
        let b = (2..).find(|u| shard(*u) != shard(1)).unwrap_or(2);
        (1, b)
    }

    fn route(t: &RoutingTable, sql: &str, pin: Option<u64>) -> Result<Option<Route>, RouteError> {
        let pin = pin.map(|p| p.to_string().into_bytes());
        t.route_pinned(&scan(sql.as_bytes(), t.key_columns()), pin.as_deref())
    }

    #[test]
    fn hints_and_the_pin_never_contradict_a_visible_key() {
        let t = table(KeyColumnType::Bigint);
        let (a, b) = users(&t);
        let home = |u: u64| {
            Ok(Some(Route::Shard(
                t.shard_for_key(u.to_string().as_bytes()).0,
            )))
        };
        let conflict =
            |r: Result<Option<Route>, RouteError>| matches!(r, Err(RouteError::Conflict { .. }));
        // The hint's user routes; the statement's own key must agree.
        assert_eq!(
            route(&t, &format!("/* userid={a} */ SELECT * FROM posts"), None),
            home(a)
        );
        assert_eq!(
            route(
                &t,
                &format!("/* userid={a} */ SELECT * FROM posts WHERE userid = {a}"),
                None
            ),
            home(a)
        );
        assert!(conflict(route(
            &t,
            &format!("/* userid={a} */ INSERT INTO posts (userid, body) VALUES ({b}, 'x')"),
            None
        )));
        assert!(conflict(route(
            &t,
            &format!("/* userid={a} */ SELECT * FROM posts WHERE userid = ?"),
            None
        )));
        // The pin: the same precedence, and a `?` is checked at EXECUTE.
        assert_eq!(route(&t, "SELECT * FROM posts", Some(a)), home(a));
        assert_eq!(route(&t, "SELECT LAST_INSERT_ID()", Some(a)), home(a));
        assert!(conflict(route(
            &t,
            &format!("SELECT * FROM posts WHERE userid = {b}"),
            Some(a)
        )));
        assert_eq!(
            route(&t, "SELECT * FROM posts WHERE userid = ?", Some(a)),
            Ok(None)
        );
        // A hint wins over the pin, and is then what the statement must agree with.
        assert_eq!(
            route(
                &t,
                &format!("/* userid={b} */ SELECT * FROM posts"),
                Some(a)
            ),
            home(b)
        );
        // Global tables and session state are not the user's.
        assert_eq!(
            route(&t, "SELECT * FROM countries", Some(b)),
            Ok(Some(Route::Shard(0)))
        );
        assert_eq!(route(&t, "SET @x = 1", Some(b)), Ok(Some(Route::Broadcast)));
    }

    #[test]
    fn a_hint_or_pin_lifts_undecidable_filters_never_written_keys() {
        let t = table(KeyColumnType::Bigint);
        let (a, _) = users(&t);
        let home = Ok(Some(Route::Shard(
            t.shard_for_key(a.to_string().as_bytes()).0,
        )));
        for sql in [
            "UPDATE posts SET body = 'x' WHERE userid > 5",
            "DELETE FROM posts WHERE userid = 5 OR id = 3",
            "SELECT * FROM posts WHERE userid = 1 UNION SELECT * FROM posts",
        ] {
            assert_eq!(
                route(&t, &format!("/* userid={a} */ {sql}"), None),
                home,
                "{sql}"
            );
            assert_eq!(route(&t, sql, Some(a)), home, "{sql}");
            assert!(route(&t, sql, None).is_err(), "{sql}");
        }
        for sql in [
            "INSERT INTO posts (userid, body) SELECT userid, body FROM posts",
            "UPDATE posts SET userid = 7 WHERE id = 1",
            "INSERT INTO posts VALUES (1, 'x')",
            "LOAD DATA LOCAL INFILE 'f' INTO TABLE posts (userid, body)",
        ] {
            assert!(
                route(&t, &format!("/* userid={a} */ {sql}"), None).is_err(),
                "{sql}"
            );
            assert!(route(&t, sql, Some(a)).is_err(), "{sql}");
        }
    }

    #[test]
    fn key_values_are_read_as_the_column_type_converts_them() {
        let bigint = table(KeyColumnType::Bigint);
        let unsigned = table(KeyColumnType::BigintUnsigned);
        let text = table(KeyColumnType::Text);
        let ok = |t: &RoutingTable, v: &str| {
            let sql = format!("SELECT * FROM posts WHERE userid = {v}");
            matches!(route(t, &sql, None), Ok(Some(Route::Shard(_))))
        };
        for v in ["5", "+5", "0005", "'5'", "'0005'", "9223372036854775807"] {
            assert!(ok(&bigint, v), "{v}");
        }
        for v in [
            "9223372036854775808",
            "' 5'",
            "'5 '",
            "'+5'",
            "'5.0'",
            "'5e0'",
            "'5abc'",
            "''",
            "'alice'",
            "5.0",
            "-5",
            "NULL",
        ] {
            assert!(!ok(&bigint, v), "{v}");
        }
        assert!(ok(&unsigned, "18446744073709551615"));
        assert!(!ok(&unsigned, "18446744073709551616"));
        assert!(ok(&text, "'alice'"));
        for v in ["'Alice'", "' alice'", "'alice '", "'5.0'"] {
            assert!(!ok(&text, v), "{v}");
        }
    }
}
