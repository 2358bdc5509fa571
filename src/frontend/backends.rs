//! The backend side of one client session: at most one pooled connection per shard
//! master, taken when a statement first needs that shard, and the session state that
//! must be true on every one of them — current database, `SET` statements (session and
//! user variables, character set), COM_SET_OPTION — replayed on each connection the
//! session takes later, unless it carries that state already. In session pooling the
//! connections go back to the pool (and are reset there) when the session ends; in
//! transaction pooling the session gives them back whenever nothing ties it to them
//! ([`SessionBackends::give_back`]), with its `LAST_INSERT_ID()` read first when a
//! statement changed it, so that the next connection can be given the same value.

use std::collections::HashMap;
use std::sync::Arc;

use mysql_common::constants::{CapabilityFlags, MariadbCapabilities};

use crate::backend::carried::StateFingerprint;
use crate::backend::pipeline::{Expect, Pipeline};
use crate::backend::{LoginOptions, PoolKey, PooledConn, Pools};
use crate::config::{Config, PoolMode};
use crate::error::ClientError;
use crate::net::{BackendIo, PacketConn};
use crate::protocol::auth::PasswordSha1;
use crate::protocol::command::{COM_INIT_DB, COM_SET_OPTION};
use crate::protocol::response::{ResponseKind, ResultFormat};

pub use crate::backend::exchange::{exchange, read_response};
use crate::router::dialect::{may_change_dialect, Dialect};
use crate::router::ring::ShardId;
use crate::router::RoutingTable;

use super::failure::Failure;

/// How the client logged in: what every backend connection of the session starts from.
#[derive(Debug, Clone)]
pub struct LoginState {
    /// Capabilities negotiated with the client.
    pub capabilities: CapabilityFlags,
    /// MariaDB extended capabilities negotiated with the client.
    pub mariadb_capabilities: MariadbCapabilities,
    /// Collation from the handshake (or COM_CHANGE_USER).
    pub collation: u16,
    /// Database from the handshake (or COM_CHANGE_USER).
    pub database: Option<String>,
    /// Connection attributes, passed on to new backend logins.
    pub attributes: Option<HashMap<String, String>>,
    /// The MariaDB account the session's connections log in as.
    pub identity: BackendIdentity,
}

impl LoginState {
    /// The pool key and login of this session's backend connections to `addr`.
    pub fn pool_login(&self, addr: &str) -> (PoolKey, LoginOptions) {
        let identity = &self.identity;
        let login = LoginOptions {
            user: identity.user.clone(),
            password: identity.password.clone(),
            password_sha1: identity.password_sha1.clone(),
            database: self.database.clone(),
            collation: Some(self.collation),
            capabilities: self.capabilities,
            mariadb_capabilities: self.mariadb_capabilities,
            attributes: self.attributes.clone(),
        };
        let key = PoolKey {
            addr: addr.to_string(),
            user: identity.user.clone(),
            capabilities: self.capabilities.bits(),
            mariadb_capabilities: self.mariadb_capabilities.bits(),
            collation: self.collation,
            database: self.database.clone(),
        };
        (key, login)
    }
}

/// The MariaDB account a session's backend connections log in as.
#[derive(Clone)]
pub struct BackendIdentity {
    /// Account name.
    pub user: String,
    /// Its password (empty for the client's own account: `password_sha1` proves it).
    pub password: String,
    /// `SHA1(password)` recovered from the client's own `mysql_native_password` login.
    pub password_sha1: Option<PasswordSha1>,
    /// Whether this is the client's own account: then MariaDB's refusals of the login
    /// (access denied, account limits) are about the client and reach it unchanged.
    pub own: bool,
}

impl std::fmt::Debug for BackendIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackendIdentity")
            .field("user", &self.user)
            .field("own", &self.own)
            .finish_non_exhaustive()
    }
}

impl BackendIdentity {
    /// The service account (`[backend]`), for internal work and tests.
    pub fn service(config: &Config) -> Self {
        BackendIdentity {
            user: config.backend.user.clone(),
            password: config.backend.password().to_string(),
            password_sha1: None,
            own: false,
        }
    }
}

/// A session's backend connections and replayable state.
pub struct SessionBackends {
    pools: Arc<Pools>,
    /// `pool.mode` when the session began.
    mode: PoolMode,
    /// Fingerprint of the replayable state below (0: none).
    fingerprint: u64,
    /// `LAST_INSERT_ID()` of the session on each shard it ran statements on, where it is
    /// not 0 (transaction pooling: given to each connection the session takes there).
    last_insert_ids: Vec<(ShardId, u64)>,
    /// Shards whose connection ran a statement that may have changed `LAST_INSERT_ID()`
    /// since it was read last.
    insert_changed: Vec<ShardId>,
    /// Connections given back after the last statement, as (shard, serial, uses): taken
    /// back for a statement that reads what the last one left (warnings, `ROW_COUNT()`).
    given_back: Vec<(ShardId, u64, u64)>,
    /// The pool key and login of each master the session used, built once per login
    /// (a transaction-pooling session takes a connection per statement).
    logins: Vec<(PoolKey, LoginOptions)>,
    /// `timeouts.backend_read_ms` as the session's config snapshot has it.
    backend_read: std::time::Duration,
    login: LoginState,
    /// Open connections, each with the generation it was opened under.
    conns: Vec<(ShardId, PooledConn, u64)>,
    /// Shards whose connection ran more than the replayable state (a statement, a
    /// prepare): what it holds would be lost with it.
    used: Vec<ShardId>,
    /// Database chosen by USE / COM_INIT_DB since login.
    current_db: Option<String>,
    /// `SET …` statements (COM_QUERY payloads) in the order the client ran them.
    replay: Vec<Vec<u8>>,
    /// Their total size (at most [`MAX_REPLAY_BYTES`]).
    replay_bytes: usize,
    /// The last COM_SET_OPTION payload, if any.
    set_option: Option<Vec<u8>>,
    /// The client connection's log span (current when the session was set up).
    span: tracing::Span,
}

impl SessionBackends {
    /// No connections yet.
    pub fn new(
        pools: Arc<Pools>,
        mode: PoolMode,
        backend_read: std::time::Duration,
        login: LoginState,
    ) -> Self {
        SessionBackends {
            pools,
            mode,
            fingerprint: 0,
            last_insert_ids: Vec::new(),
            insert_changed: Vec::new(),
            given_back: Vec::new(),
            logins: Vec::new(),
            backend_read,
            login,
            conns: Vec::new(),
            used: Vec::new(),
            current_db: None,
            replay: Vec::new(),
            replay_bytes: 0,
            set_option: None,
            span: tracing::Span::current(),
        }
    }

    /// The login state.
    pub fn login(&self) -> &LoginState {
        &self.login
    }

    /// How result sets are framed for this client and on all its backend connections
    /// (they are opened with the client's capabilities).
    pub fn result_format(&self) -> ResultFormat {
        ResultFormat::negotiated(self.login.capabilities, self.login.mariadb_capabilities)
    }

    /// Whether the client negotiated MariaDB's bulk operations (COM_STMT_BULK_EXECUTE).
    pub fn bulk_negotiated(&self) -> bool {
        self.login
            .mariadb_capabilities
            .contains(MariadbCapabilities::MARIADB_CLIENT_STMT_BULK_OPERATIONS)
    }

    /// Shards with an open connection.
    pub fn open_shards(&self) -> impl Iterator<Item = ShardId> + '_ {
        self.conns.iter().map(|(s, _, _)| *s)
    }

    /// The open connection to a shard, if any.
    pub fn get(&mut self, shard: ShardId) -> Option<&mut PacketConn<BackendIo>> {
        self.conns
            .iter_mut()
            .find(|(s, _, _)| *s == shard)
            .map(|(_, c, _)| &mut c.conn.io)
    }

    /// The server's thread id of the open connection to a shard.
    pub fn thread_id(&self, shard: ShardId) -> Option<u32> {
        self.conns
            .iter()
            .find(|(s, _, _)| *s == shard)
            .map(|(_, c, _)| c.conn.connection_id)
    }

    /// The generation of the open connection to a shard: its serial number, which
    /// changes when the session uses another connection.
    pub fn generation(&self, shard: ShardId) -> Option<u64> {
        self.conns
            .iter()
            .find(|(s, _, _)| *s == shard)
            .map(|(_, c, _)| c.conn.serial)
    }

    /// The pool mode the session runs in.
    pub fn mode(&self) -> PoolMode {
        self.mode
    }

    /// Fingerprint of the session's replayable state (what prepared statements are
    /// cached under on a connection).
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// The open connection to a shard with its carried state (statement cache).
    pub fn pooled(&mut self, shard: ShardId) -> Option<&mut PooledConn> {
        self.conns
            .iter_mut()
            .find(|(s, _, _)| *s == shard)
            .map(|(_, c, _)| c)
    }

    /// Whether the session's connection to a shard goes to a server that is no longer
    /// that shard's master in `table`.
    pub fn is_stale(&self, table: &RoutingTable, shard: ShardId) -> bool {
        let master = table.shard(shard).map(|s| s.master.as_str());
        self.conns
            .iter()
            .any(|(s, c, _)| *s == shard && Some(c.conn.addr.as_str()) != master)
    }

    /// The connection to a shard, opened (from the pool) and brought to the session's
    /// state if needed. A connection to a server that is no longer the shard's master
    /// (the topology changed) is closed and replaced.
    pub async fn connection(
        &mut self,
        table: &RoutingTable,
        shard: ShardId,
    ) -> Result<&mut PacketConn<BackendIo>, Failure> {
        if !self.used.contains(&shard) {
            self.used.push(shard);
        }
        self.state_connection(table, shard).await
    }

    /// [`SessionBackends::connection`] for the session's replayable state alone (`SET`,
    /// `USE`): a connection that only ever ran that can be replaced without the client
    /// noticing.
    pub async fn state_connection(
        &mut self,
        table: &RoutingTable,
        shard: ShardId,
    ) -> Result<&mut PacketConn<BackendIo>, Failure> {
        if self.is_stale(table, shard) {
            self.discard(shard);
        }
        if !self.conns.iter().any(|(s, _, _)| *s == shard) {
            let master = table
                .shard(shard)
                .map(|s| s.master.as_str())
                .unwrap_or_default();
            let login = self.login_for(master);
            let conn = self.open(table, shard, login).await?;
            self.conns.push((shard, conn, 0));
        }
        self.get(shard)
            .ok_or_else(|| ClientError::Internal("backend connection vanished".into()).into())
    }

    /// A connection to `shard` (pool key and login: `self.logins[login]`), brought to the
    /// session's state.
    async fn open(
        &self,
        table: &RoutingTable,
        shard: ShardId,
        login: usize,
    ) -> Result<PooledConn, Failure> {
        let info = table
            .shard(shard)
            .ok_or_else(|| ClientError::Internal(format!("unknown shard id {shard}")))?;
        let identity = &self.login.identity;
        let (key, login) = self
            .logins
            .get(login)
            .ok_or_else(|| ClientError::Internal("no login for the shard".into()))?;
        // The connection the last statement left its state on, if nobody took it since.
        let back = self
            .given_back
            .iter()
            .find(|(s, _, _)| *s == shard)
            .and_then(|&(_, serial, uses)| self.pools.take_back(key, serial, uses));
        let mut conn = match back {
            Some(conn) => Ok(conn),
            None => {
                self.pools
                    .checkout(key.clone(), login, self.fingerprint)
                    .await
            }
        };
        // One that would need a reset it cannot have (another session's USE on a login
        // without a database) is closed, and another one taken.
        for _ in 0..MAX_UNRESETTABLE {
            match &conn {
                Ok(c)
                    if c.conn.carried.state != self.fingerprint
                        && c.conn.carried.database_changed
                        && key.database.is_none() =>
                {
                    conn = self
                        .pools
                        .checkout(key.clone(), login, self.fingerprint)
                        .await;
                }
                _ => break,
            }
        }
        let mut conn = conn.map_err(|source| {
            let failure = Failure::Checkout {
                shard: info.name.clone(),
                addr: info.master.clone(),
                own_account: identity.own,
                source,
            };
            if failure.master_unreachable() {
                tracing::warn!(parent: &self.span, error = %failure, "backend unavailable");
            }
            failure
        })?;
        // Bring the connection to the session's state, in one round trip, unless it
        // carries that state already (transaction pooling); one that carries another
        // session's state is reset first. A replayed SET may change how statements are
        // read, so the dialect is read back after it.
        let mut pipeline = Pipeline::new();
        let carried = conn.conn.carried.state;
        if carried == self.fingerprint {
            return Ok(conn);
        }
        if carried != 0 {
            crate::backend::pool::push_reset(&mut pipeline, conn.key());
        }
        if let Some(db) = &self.current_db {
            let mut cmd = vec![COM_INIT_DB];
            cmd.extend_from_slice(db.as_bytes());
            pipeline.push(cmd, ResponseKind::Single, Expect::NotErr);
        }
        if let Some(opt) = &self.set_option {
            pipeline.push(opt.clone(), ResponseKind::Single, Expect::NotErr);
        }
        for stmt in &self.replay {
            pipeline.push(stmt.clone(), ResponseKind::Query, Expect::NotErr);
        }
        if self.replay.iter().any(|s| may_change_dialect(s)) {
            pipeline.read_dialect();
        }
        let timeout = self.backend_read;
        pipeline
            .run(&mut conn.conn, timeout)
            .await
            .map_err(|source| Failure::Replay {
                shard: info.name.clone(),
                source,
            })?;
        if carried != 0 {
            conn.conn.carried = crate::backend::carried::Carried::fresh();
        }
        conn.conn.carried.state = self.fingerprint;
        conn.conn.carried.database_changed = self.current_db.is_some();
        Ok(conn)
    }

    /// Gives `LAST_INSERT_ID()` on the session's connection to `shard` the session's value
    /// there (transaction pooling: the connection may have served others since), before
    /// a statement that reads it.
    pub async fn align_last_insert_id(&mut self, shard: ShardId) -> Result<(), ExchangeFailed> {
        if self.insert_changed.contains(&shard) {
            // Changed by the session itself on the connection it still holds.
            return Ok(());
        }
        let want = self.last_insert_id(shard);
        let timeout = self.backend_read;
        let Some((_, conn, _)) = self.conns.iter_mut().find(|(s, _, _)| *s == shard) else {
            return Ok(());
        };
        if conn.conn.carried.last_insert_id == Some(want) {
            return Ok(());
        }
        tracing::debug!(want, had = ?conn.conn.carried.last_insert_id, "aligning LAST_INSERT_ID()");
        let mut pipeline = Pipeline::new();
        let set = format!("\x03DO LAST_INSERT_ID({want})").into_bytes();
        pipeline.push(set, ResponseKind::Query, Expect::Ok);
        pipeline.run(&mut conn.conn, timeout).await?;
        conn.conn.carried.last_insert_id = Some(want);
        Ok(())
    }

    /// The session's `LAST_INSERT_ID()` on `shard`, as last read.
    fn last_insert_id(&self, shard: ShardId) -> u64 {
        self.last_insert_ids
            .iter()
            .find(|(s, _)| *s == shard)
            .map_or(0, |(_, v)| *v)
    }

    /// A statement on `shard` may have changed `LAST_INSERT_ID()` (its OK carried an
    /// insert id, or it named the function): read it before the connection is given back.
    pub fn note_insert_id_changed(&mut self, shard: ShardId) {
        if !self.insert_changed.contains(&shard) {
            self.insert_changed.push(shard);
        }
        if let Some((_, conn, _)) = self.conns.iter_mut().find(|(s, _, _)| *s == shard) {
            conn.conn.carried.last_insert_id = None;
        }
    }

    /// Transaction pooling: gives every connection back to the pool with the session
    /// state it carries, after reading `LAST_INSERT_ID()` where a statement changed it.
    /// Each is remembered, so that the session's next statement there takes the same one
    /// back if nobody used it since (what the last statement left is still on it, and
    /// the state needs no replay). `Err` names a connection that failed (closed).
    ///
    /// `capture` names a statement to run on the connection to a shard first (what the
    /// last statement left there, e.g. `SHOW WARNINGS`): its whole answer is returned.
    pub async fn give_back(
        &mut self,
        capture: Option<(ShardId, &[u8])>,
    ) -> Result<Option<Vec<bytes::BytesMut>>, (ShardId, ExchangeFailed)> {
        if self.mode != PoolMode::Transaction || self.conns.is_empty() {
            return Ok(None);
        }
        let mut captured = None;
        if let Some((shard, sql)) = capture {
            let timeout = self.backend_read;
            let format = self.result_format();
            if let Some((_, conn, _)) = self.conns.iter_mut().find(|(s, _, _)| *s == shard) {
                match exchange(&mut conn.conn.io, sql, ResponseKind::Query, format, timeout).await {
                    Ok(packets) => captured = Some(packets),
                    Err(e) => {
                        self.discard(shard);
                        return Err((shard, e.into()));
                    }
                }
            }
        }
        for shard in std::mem::take(&mut self.insert_changed) {
            let timeout = self.backend_read;
            let Some((_, conn, _)) = self.conns.iter_mut().find(|(s, _, _)| *s == shard) else {
                continue;
            };
            let value = match read_last_insert_id(&mut conn.conn, timeout).await {
                Ok(v) => v,
                Err(e) => {
                    self.discard(shard);
                    return Err((shard, e));
                }
            };
            tracing::debug!(value, "read LAST_INSERT_ID()");
            conn.conn.carried.last_insert_id = Some(value);
            self.last_insert_ids.retain(|(s, _)| *s != shard);
            if value != 0 {
                self.last_insert_ids.push((shard, value));
            }
        }
        self.return_all();
        Ok(captured)
    }

    /// Session pooling: gives the connections back (carrying the session's state) while
    /// the session has run nothing but session state on them (`SET`, `USE`): a client
    /// that logs in and sets its driver's defaults holds no backend connection until its
    /// first statement, which takes one carrying that state (the same one, if nobody used
    /// it since).
    pub fn give_back_unused(&mut self) {
        if self.mode == PoolMode::Session && self.used.is_empty() && !self.conns.is_empty() {
            self.return_all();
        }
    }

    /// Whether a statement beyond session state ran on a connection the session holds.
    pub fn has_used(&self) -> bool {
        !self.used.is_empty()
    }

    /// Every connection back to the pool as it is, each remembered for a take-back.
    fn return_all(&mut self) {
        self.given_back.clear();
        self.used.clear();
        for (shard, conn, _) in self.conns.drain(..) {
            self.given_back
                .push((shard, conn.conn.serial, conn.conn.uses));
            self.pools.give_back(conn);
        }
    }

    /// Takes back the connection to `shard` the session gave back last, if nobody used it
    /// since (and `table` still names its server as the shard's master); holds none for
    /// `shard` otherwise.
    pub fn take_back(&mut self, table: &RoutingTable, shard: ShardId) {
        let Some(&(_, serial, uses)) = self.given_back.iter().find(|(s, _, _)| *s == shard) else {
            return;
        };
        let Some(info) = table.shard(shard) else {
            return;
        };
        let at = self.login_for(&info.master);
        if let Some(conn) = self.pools.take_back(&self.logins[at].0, serial, uses) {
            self.conns.push((shard, conn, 0));
        }
    }

    /// The index in `logins` of the pool key and login for `master`, built on first use.
    fn login_for(&mut self, master: &str) -> usize {
        match self.logins.iter().position(|(k, _)| k.addr == master) {
            Some(at) => at,
            None => {
                self.logins.push(self.login.pool_login(master));
                self.logins.len() - 1
            }
        }
    }

    /// Whether the session holds a connection to `shard` now.
    pub fn holds(&self, shard: ShardId) -> bool {
        self.conns.iter().any(|(s, _, _)| *s == shard)
    }

    /// Whether the session would take back the connection its last statement ran on
    /// (given back with state the next statement may read).
    pub fn can_take_back(&self, shard: ShardId) -> bool {
        self.given_back.iter().any(|(s, _, _)| *s == shard)
    }

    /// A reloaded `timeouts.backend_read_ms`, for the session's next statements.
    pub fn set_backend_read(&mut self, timeout: std::time::Duration) {
        self.backend_read = timeout;
    }

    /// How MariaDB reads statements on the session's connection to `shard`, if open.
    pub fn dialect(&self, shard: ShardId) -> Option<Dialect> {
        self.conns
            .iter()
            .find(|(s, _, _)| *s == shard)
            .map(|(_, c, _)| c.conn.dialect)
    }

    /// Reads the dialect of every open connection back from its server (after a statement
    /// that may have changed sql_mode or the character set); returns the first one's.
    pub async fn refresh_dialects(
        &mut self,
        table: &RoutingTable,
    ) -> Result<Option<Dialect>, (ShardId, Failure)> {
        let timeout = self.backend_read;
        let mut pipeline = Pipeline::new();
        pipeline.read_dialect();
        let mut first = None;
        for (shard, conn, _) in &mut self.conns {
            if let Err(source) = pipeline.run(&mut conn.conn, timeout).await {
                let shard_name = table.shard_name(*shard).to_string();
                let failure = Failure::Replay {
                    shard: shard_name,
                    source,
                };
                return Err((*shard, failure));
            }
            first.get_or_insert(conn.conn.dialect);
        }
        Ok(first)
    }

    /// Records a successful `USE` / COM_INIT_DB.
    pub fn record_database(&mut self, db: String) {
        self.current_db = Some(db);
        self.state_changed();
    }

    /// The replayable state changed: its fingerprint is computed again, and the open
    /// connections, which ran the change, carry the new state.
    fn state_changed(&mut self) {
        let mut f = StateFingerprint::default();
        let nothing =
            self.current_db.is_none() && self.set_option.is_none() && self.replay.is_empty();
        self.fingerprint = if nothing {
            0
        } else {
            f.add(self.current_db.as_deref().map_or(&b"\0"[..], str::as_bytes));
            f.add(self.set_option.as_deref().unwrap_or_default());
            for stmt in &self.replay {
                f.add(stmt);
            }
            f.finish()
        };
        for (_, conn, _) in &mut self.conns {
            conn.conn.carried.state = self.fingerprint;
            conn.conn.carried.database_changed = self.current_db.is_some();
        }
    }

    /// Records a successful `SET …` statement (its COM_QUERY payload); a repeated one
    /// moves to the end instead of being kept twice.
    pub fn record_set(&mut self, payload: &[u8]) {
        if let Some(at) = self.replay.iter().position(|p| p.as_slice() == payload) {
            if at + 1 != self.replay.len() {
                let again = self.replay.remove(at);
                self.replay.push(again);
                self.state_changed();
            }
            return;
        }
        self.replay_bytes += payload.len();
        self.replay.push(payload.to_vec());
        self.state_changed();
    }

    /// Whether one more `SET …` statement can be recorded for replay (at most
    /// [`MAX_REPLAY`] distinct ones of [`MAX_REPLAY_BYTES`] in all, so that opening a
    /// connection stays one round trip and a session's memory stays bounded).
    pub fn can_record(&self, payload: &[u8]) -> bool {
        self.replay.iter().any(|p| p.as_slice() == payload)
            || (self.replay.len() < MAX_REPLAY
                && self.replay_bytes + payload.len() <= MAX_REPLAY_BYTES)
    }

    /// Records a successful COM_SET_OPTION.
    pub fn record_set_option(&mut self, payload: &[u8]) {
        debug_assert_eq!(payload.first(), Some(&COM_SET_OPTION));
        self.set_option = Some(payload.to_vec());
        self.state_changed();
    }

    /// Forgets replayable state (after COM_RESET_CONNECTION).
    pub fn clear_state(&mut self) {
        self.current_db = None;
        self.replay.clear();
        self.replay_bytes = 0;
        self.set_option = None;
        self.last_insert_ids.clear();
        self.insert_changed.clear();
        self.given_back.clear();
        self.state_changed();
        // COM_RESET_CONNECTION ran on the open connections: they carry nothing now.
        for (_, conn, _) in &mut self.conns {
            conn.conn.carried = crate::backend::carried::Carried::fresh();
        }
    }

    /// Closes a connection whose stream may be out of step (not returned to the pool).
    pub fn discard(&mut self, shard: ShardId) {
        self.conns.retain(|(s, _, _)| *s != shard);
        self.insert_changed.retain(|s| *s != shard);
        self.used.retain(|s| *s != shard);
    }

    /// After the client was idle: finds connections their server closed meanwhile
    /// (wait_timeout, KILL, a restart) without a round trip. One that held only the
    /// replayable state is dropped (the next statement opens a fresh one and replays it:
    /// the client notices nothing); `Err` names a shard whose closed connection held
    /// more, which is gone with it.
    pub fn drop_closed(&mut self) -> Result<(), ShardId> {
        let closed: Vec<(ShardId, String)> = self
            .conns
            .iter()
            .filter(|(_, c, _)| c.conn.io.looks_closed())
            .map(|(s, c, _)| (*s, c.conn.addr.clone()))
            .collect();
        for (shard, addr) in closed {
            if self.used.contains(&shard) {
                return Err(shard);
            }
            crate::metrics::pool_discarded(&addr);
            self.discard(shard);
        }
        Ok(())
    }

    /// Returns every connection to the pool (reset there), or closes them if `clean` is false.
    pub fn release_all(&mut self, clean: bool) {
        self.used.clear();
        self.given_back.clear();
        for (_, conn, _) in self.conns.drain(..) {
            self.pools.checkin(conn, clean);
        }
    }

    /// Replaces the login state (COM_CHANGE_USER): connections go back to the pool.
    pub fn relogin(&mut self, login: LoginState) {
        self.release_all(true);
        self.clear_state();
        self.logins.clear();
        self.login = login;
    }
}

/// A command dbrouter sent on its own failed.
pub type ExchangeFailed = crate::backend::pipeline::PipelineError;

/// Reads `LAST_INSERT_ID()` on a connection (one round trip).
async fn read_last_insert_id(
    conn: &mut crate::backend::BackendConn,
    timeout: std::time::Duration,
) -> Result<u64, ExchangeFailed> {
    let format = conn.result_format();
    let packets = exchange(
        &mut conn.io,
        b"\x03SELECT LAST_INSERT_ID()",
        ResponseKind::Query,
        format,
        timeout,
    )
    .await?;
    crate::protocol::resultset::single_value(&packets)
        .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok())
        .ok_or_else(|| {
            crate::backend::pipeline::PipelineError::Unexpected(
                "SELECT LAST_INSERT_ID() did not answer with one number".into(),
            )
        })
}

/// Connections closed in a row because they could not be reset, before the next one is
/// taken as it is (its reset then fails with a clear error).
const MAX_UNRESETTABLE: usize = 8;

/// Most distinct session-state statements a session may record for replay.
pub const MAX_REPLAY: usize = 256;

/// Most bytes of session-state statements a session may record for replay.
pub const MAX_REPLAY_BYTES: usize = 1 << 20;

impl Drop for SessionBackends {
    fn drop(&mut self) {
        // A session that ends without release_all (a panic or an abort) must not hand
        // connections in an unknown state to others: close them.
        self.conns.clear();
    }
}
