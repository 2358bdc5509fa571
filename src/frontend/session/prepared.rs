//! Prepared statements across shards. The client sees one statement id per PREPARE;
//! behind it the statement is prepared lazily on each shard an EXECUTE needs (with that
//! shard's own id, rewritten in every packet). The shard of an EXECUTE comes from a
//! literal key in the SQL, else from the shard-key parameter's value (read from the
//! execute packet, or from buffered COM_STMT_SEND_LONG_DATA), else from the session.
//! Long data is buffered until the EXECUTE says which shard gets it.

use std::collections::HashMap;

use bytes::BytesMut;

use crate::error::ClientError;
use crate::protocol::command::{stmt_close, COM_STMT_RESET};
use crate::protocol::execute::{
    bulk_param_values, param_value, parse_bulk_head, parse_head, set_stmt_id, stmt_id,
    with_bulk_types, BulkHead, ExecuteError, ExecuteHead, ParamValue,
};

/// The parameter part of an execute: COM_STMT_EXECUTE's or a bulk execute's.
enum Head<'a> {
    Execute(ExecuteHead<'a>),
    Bulk(BulkHead<'a>),
}
use crate::config::PoolMode;
use crate::protocol::packets::{ok_packet, ERR_HEADER};
use crate::protocol::response::{ResponseKind, SERVER_STATUS_CURSOR_EXISTS};
use crate::router::key::{self, KeyRef, StatementKind};
use crate::router::ring::ShardId;
use crate::router::{key_from_int, key_from_text, Route, RouteError, RoutingTable};

use super::super::backends::exchange;
use super::super::local;
use super::{End, Session};
use crate::net::ClientStream;

/// One shard's copy of a statement.
#[derive(Debug, Clone, Copy)]
struct BackendStmt {
    shard: ShardId,
    /// Generation of the shard connection it was prepared on (a replaced connection, e.g.
    /// to a new master, no longer has it).
    generation: u64,
    id: u32,
    /// Parameter types were sent to this copy (a later EXECUTE may omit them).
    types_sent: bool,
}

/// A statement as the client prepared it.
#[derive(Debug)]
struct Prepared {
    /// The COM_STMT_PREPARE payload, to prepare it on further shards.
    prepare: Vec<u8>,
    params: u16,
    /// Placeholders that bind the shard key.
    key_params: Vec<u16>,
    /// A shard fixed by the SQL itself (literal key, global tables).
    shard: Option<ShardId>,
    /// The user (canonical key) whose shard that is, if a user decided it: its shard is
    /// looked up again at each execution (the user may have been moved since).
    user: Option<Vec<u8>>,
    backends: Vec<BackendStmt>,
    /// Parameter types of the last EXECUTE that sent them.
    types: Option<Vec<u8>>,
    /// COM_STMT_SEND_LONG_DATA payloads since the last EXECUTE.
    long_data: Vec<BytesMut>,
    long_data_size: usize,
    /// Where the last EXECUTE opened a cursor.
    cursor_shard: Option<ShardId>,
}

impl Prepared {
    fn backend(&self, shard: ShardId, generation: Option<u64>) -> Option<BackendStmt> {
        self.backends
            .iter()
            .copied()
            .find(|b| b.shard == shard && Some(b.generation) == generation)
    }

    /// Records a copy, replacing any older copy on the same shard.
    fn add_backend(&mut self, b: BackendStmt) {
        self.backends.retain(|x| x.shard != b.shard);
        self.backends.push(b);
    }

    /// The long data sent for parameter `index`, joined.
    fn long_data_of(&self, index: u16) -> Option<Vec<u8>> {
        let mut out: Option<Vec<u8>> = None;
        for chunk in &self.long_data {
            if chunk.get(5..7) == Some(&index.to_le_bytes()[..]) {
                out.get_or_insert_with(Vec::new)
                    .extend_from_slice(&chunk[7..]);
            }
        }
        out
    }

    fn has_long_data(&self, index: u16) -> bool {
        self.long_data
            .iter()
            .any(|c| c.get(5..7) == Some(&index.to_le_bytes()[..]))
    }
}

/// Statement id 0xFFFFFFFF: the statement prepared last on the connection (MariaDB 10.2+).
pub const LAST_STATEMENT: u32 = u32::MAX;

/// The session's prepared statements.
#[derive(Debug)]
pub struct Statements {
    next_id: u32,
    max_long_data: usize,
    /// `limits.max_prepared_per_session`.
    max_statements: usize,
    /// `limits.max_session_bytes`: statement texts and long data held at once.
    max_bytes: usize,
    map: HashMap<u32, Prepared>,
    /// The statement prepared last (None after a PREPARE that failed): what statement id
    /// 0xFFFFFFFF names, MariaDB's way to pipeline an EXECUTE right after its PREPARE.
    last: Option<u32>,
    /// The user a move held, set by the planning of an EXECUTE that had to wait.
    held_user: Option<Vec<u8>>,
}

impl Statements {
    /// No statements; long data per statement is capped at `max_long_data` bytes, the
    /// statements at `max_statements`, and their texts and long data together at
    /// `max_bytes`.
    pub fn new(max_long_data: usize, max_statements: usize, max_bytes: usize) -> Self {
        Statements {
            next_id: 1,
            max_long_data,
            max_statements,
            max_bytes,
            map: HashMap::new(),
            last: None,
            held_user: None,
        }
    }

    /// Whether an EXECUTE left a cursor open (the session is tied to its connection
    /// until the statement is reset, closed or executed again without one).
    pub fn has_cursor(&self) -> bool {
        self.map.values().any(|s| s.cursor_shard.is_some())
    }

    /// Forgets every statement (COM_RESET_CONNECTION, COM_CHANGE_USER): the backend
    /// copies die with the reset of their connections.
    pub fn clear(&mut self) {
        self.map.clear();
        self.last = None;
    }

    /// The statement a command's id names: [`LAST_STATEMENT`] is the one prepared last.
    pub fn resolve(&self, id: u32) -> u32 {
        match (id, self.last) {
            (LAST_STATEMENT, Some(last)) => last,
            _ => id,
        }
    }

    /// Bytes held for the statements: their texts and buffered long data.
    fn held_bytes(&self) -> usize {
        self.map
            .values()
            .map(|s| s.prepare.len() + s.long_data_size.min(self.max_long_data))
            .sum()
    }

    /// Why a new statement of `text_len` bytes may not be prepared, if it may not.
    fn refuse_new(&self, text_len: usize) -> Option<ClientError> {
        if self.map.len() >= self.max_statements {
            return Some(ClientError::TooManyStatements {
                max: self.max_statements,
            });
        }
        (self.held_bytes().saturating_add(text_len) > self.max_bytes).then_some(
            ClientError::SessionMemory {
                limit: self.max_bytes,
            },
        )
    }

    /// Buffers a COM_STMT_SEND_LONG_DATA payload (it has no response). Data for an
    /// unknown statement is dropped, as the server does; data over the statement's cap or
    /// the session's (`limits.max_session_bytes`) is dropped and the next EXECUTE fails.
    pub fn add_long_data(&mut self, payload: BytesMut) {
        let Some(id) = stmt_id(&payload) else { return };
        let max = self.max_long_data;
        let over_session = self.held_bytes().saturating_add(payload.len()) > self.max_bytes;
        if let Some(stmt) = self.map.get_mut(&id) {
            stmt.long_data_size = if over_session {
                usize::MAX
            } else {
                stmt.long_data_size.saturating_add(payload.len())
            };
            if stmt.long_data_size <= max {
                stmt.long_data.push(payload);
            } else {
                // Nothing of it is kept: the EXECUTE that follows fails.
                stmt.long_data.clear();
            }
        }
    }
}

/// Where one EXECUTE goes and what must happen first.
struct ExecPlan {
    shard: ShardId,
    backend: Option<BackendStmt>,
    prepare: Vec<u8>,
    long_data: Vec<BytesMut>,
    types: Option<Vec<u8>>,
    sent_types: bool,
}

impl<S: ClientStream> Session<S> {
    /// COM_STMT_PREPARE: routed like the statement would be; prepared on that shard
    /// (or the session's, when a parameter holds the key) for its metadata.
    pub(super) async fn prepare(
        &mut self,
        table: &RoutingTable,
        payload: &[u8],
        seq: u8,
    ) -> Result<(), End> {
        let sql = payload.get(1..).unwrap_or_default();
        // Until it succeeds, statement id 0xFFFFFFFF names no statement.
        self.statements.last = None;
        if let Some(err) = self.statements.refuse_new(payload.len()) {
            return self.reply_error(seq, err).await;
        }
        // A prepared statement is one statement, read as the session's connection reads it
        // (the same shape check as for a COM_QUERY: only where the scan says it may matter).
        let scan = crate::router::scan_in(sql, self.dialect, table.key_columns());
        let plain =
            !key::may_have_shape(&scan) || key::shape(sql, self.dialect) == key::Shape::Plain;
        if !plain || local::mentions_pin(sql) {
            let err = RouteError::Statement(PREPARE_PLAIN);
            return self.reply_error(seq, err.into()).await;
        }
        if self.dialect.foreign_grammar && !scan.kind.is_session_control() {
            let err = RouteError::Statement(PREPARE_PLAIN);
            return self.reply_error(seq, err.into()).await;
        }
        let key_params: Vec<u16> = scan
            .keys()
            .iter()
            .filter_map(|k| match *k {
                KeyRef::Param(i) => Some(i),
                KeyRef::Literal(_) => None,
            })
            .collect();
        if scan.kind == StatementKind::Call && !scan.from_hint && self.pin_key().is_none() {
            let err = RouteError::Statement(super::KEYLESS_CALL);
            return self.reply_error(seq, err.into()).await;
        }
        let shard = match table.route_pinned(&scan, self.pin_key()) {
            Ok(Some(Route::Shard(s))) => Some(s),
            Ok(_) => None,
            Err(e) => return self.reply_error(seq, e.into()).await,
        };
        // The user that decided the shard (a literal key or hint, else the pin): looked up
        // again at every execution, so a user moved since the PREPARE goes to the new shard.
        let mut buf = [0u8; 20];
        let user = shard.and_then(|_| {
            let literal = scan.keys().iter().find_map(|k| match k {
                KeyRef::Literal(v) => Some(v.canonical(&mut buf).to_vec()),
                KeyRef::Param(_) => None,
            });
            literal.or_else(|| self.pin_key().map(<[u8]>::to_vec))
        });
        let target = shard.unwrap_or_else(|| self.session_shard());
        let Some((backend_id, mut packets)) = self.prepare_on(table, target, payload, seq).await?
        else {
            return Ok(());
        };
        let params = packets
            .first()
            .and_then(|p| p.get(7..9))
            .map_or(0, |b| u16::from_le_bytes([b[0], b[1]]));
        if !key_params.is_empty() && scan.placeholders != params {
            self.close_on(table, target, backend_id).await;
            let err = ClientError::KeyParameter {
                index: key_params[0] + 1,
                problem: "could not be located reliably (the server counts a different number of placeholders); name the key with a literal or a /* userid=… */ hint",
            };
            return self.reply_error(seq, err).await;
        }
        self.cache_statement(target, payload, backend_id).await;
        let id = self.statements.next_id;
        // Never 0, never LAST_STATEMENT.
        self.statements.next_id = match self.statements.next_id.wrapping_add(1) {
            0 | LAST_STATEMENT => 1,
            next => next,
        };
        self.statements.last = Some(id);
        if let Some(first) = packets.first_mut() {
            set_stmt_id(first, id);
        }
        self.statements.map.insert(
            id,
            Prepared {
                prepare: payload.to_vec(),
                params,
                key_params,
                shard,
                user,
                backends: vec![BackendStmt {
                    shard: target,
                    generation: self.backends.generation(target).unwrap_or(0),
                    id: backend_id,
                    types_sent: false,
                }],
                types: None,
                long_data: Vec::new(),
                long_data_size: 0,
                cursor_shard: None,
            },
        );
        self.send_packets(seq, &packets).await
    }

    /// Prepares on one shard; `None` when the backend refused (its ERR was relayed).
    async fn prepare_on(
        &mut self,
        table: &RoutingTable,
        shard: ShardId,
        payload: &[u8],
        seq: u8,
    ) -> Result<Option<(u32, Vec<BytesMut>)>, End> {
        let timeout = self.config.timeouts.backend_read();
        let format = self.backends.result_format();
        let io = match self.backends.connection(table, shard).await {
            Ok(io) => io,
            Err(f) => {
                self.reply_failure(seq, f).await?;
                return Ok(None);
            }
        };
        let result = exchange(io, payload, ResponseKind::Prepare, format, timeout).await;
        let packets = match result {
            Ok(p) => p,
            Err(detail) => return Err(self.backend_lost(table, shard, seq, detail).await),
        };
        if packets.first().and_then(|p| p.first()) == Some(&ERR_HEADER) {
            self.send_packets(seq, &packets).await?;
            return Ok(None);
        }
        let id = packets.first().and_then(|p| stmt_id(p)).unwrap_or(0);
        Ok(Some((id, packets)))
    }

    async fn close_on(&mut self, table: &RoutingTable, shard: ShardId, backend_id: u32) {
        if let Ok(io) = self.backends.connection(table, shard).await {
            io.queue(0, &stmt_close(backend_id));
            let _ = io.flush().await;
        }
    }

    /// Decides where an EXECUTE goes (pure: no I/O).
    fn plan_execute(
        &mut self,
        table: &RoutingTable,
        payload: &[u8],
        client_id: u32,
        bulk: bool,
    ) -> Result<ExecPlan, ClientError> {
        let session_shard = self.session_shard();
        let pinned = self.pin_key().map(<[u8]>::to_vec);
        let pin = pinned.as_deref();
        let max = self.statements.max_long_data;
        let stmt =
            self.statements
                .map
                .get_mut(&client_id)
                .ok_or(ClientError::UnknownStatement {
                    id: client_id,
                    command: if bulk {
                        "mysqld_stmt_bulk_execute"
                    } else {
                        "mysqld_stmt_execute"
                    },
                })?;
        if stmt.long_data_size > max {
            stmt.long_data.clear();
            stmt.long_data_size = 0;
            return Err(ClientError::PacketTooLarge { limit: max });
        }
        let malformed = |e: ExecuteError| ClientError::MalformedPacket(e.to_string());
        let head = if bulk {
            Head::Bulk(parse_bulk_head(payload, stmt.params).map_err(malformed)?)
        } else {
            Head::Execute(parse_head(payload, stmt.params).map_err(malformed)?)
        };
        let new_types = match &head {
            Head::Execute(h) => h.new_types,
            Head::Bulk(h) => h.new_types,
        };
        if let Some(types) = new_types {
            stmt.types = Some(types.to_vec());
        }
        let tx = &self.tx;
        // A held user waits for the move's flip, unless this session's transaction was
        // open on the user's shard before the hold (it finishes there; the router
        // acknowledges the hold only once it has ended).
        let held = |canonical: &[u8], shard: ShardId| {
            table
                .hold_since(canonical)
                .is_some_and(|since| tx.open_since(shard).is_none_or(|began| began >= since))
        };
        let shard = match (stmt.shard, &stmt.user) {
            (Some(_), Some(user)) => {
                let shard = table.shard_for_key(user).0;
                if held(user, shard) {
                    self.statements.held_user = Some(user.clone());
                    return Err(ClientError::Route(RouteError::UserHeld));
                }
                if table.is_hibernation(shard) {
                    self.ctx.wakeups.request(user.clone());
                }
                shard
            }
            (Some(s), None) => s,
            (None, _) if stmt.key_params.is_empty() => session_shard,
            (None, _) => {
                let types = stmt.types.clone().ok_or(ClientError::KeyParameter {
                    index: stmt.key_params[0] + 1,
                    problem: "arrived without parameter types",
                })?;
                let mut chosen: Option<(ShardId, Vec<u8>)> = None;
                for &index in &stmt.key_params {
                    let problem = |problem| ClientError::KeyParameter {
                        index: index + 1,
                        problem,
                    };
                    // One value per execution; one per row of a bulk execute, which all
                    // must go to one shard.
                    let values = match &head {
                        Head::Execute(h) => {
                            vec![
                                param_value(payload, h, &types, index, |i| stmt.has_long_data(i))
                                    .map_err(malformed)?,
                            ]
                        }
                        Head::Bulk(h) => bulk_param_values(payload, h, &types, stmt.params, index)
                            .map_err(malformed)?,
                    };
                    for value in values {
                        // Converted as MariaDB converts it to the key column's type, or refused
                        // (a string ' 5' or a DECIMAL 5.00 is the integer 5 to the server).
                        let key_type = table.key_type();
                        let canonical =
                            match value {
                                ParamValue::Int(v) => key_from_int(v, key_type),
                                ParamValue::Bytes(b) => key_from_text(b, key_type),
                                ParamValue::LongData => key_from_text(
                                    &stmt.long_data_of(index).unwrap_or_default(),
                                    key_type,
                                ),
                                ParamValue::Null => return Err(problem("is NULL")),
                                ParamValue::Absent => {
                                    return Err(problem(
                                        "has no value (a bulk row's DEFAULT or IGNORE)",
                                    ))
                                }
                                ParamValue::Other => return Err(problem(
                                    "must be an integer or a string (not a float, double or date)",
                                )),
                            }
                            .map_err(problem)?;
                        if let Some(pin) = pin.filter(|p| *p != canonical.as_slice()) {
                            return Err(ClientError::Route(RouteError::Conflict {
                                by: "session pin (@dbrouter_userid)",
                                asserted: String::from_utf8_lossy(pin).into_owned(),
                                named: String::from_utf8_lossy(&canonical).into_owned(),
                            }));
                        }
                        let shard = table.shard_for_key(&canonical).0;
                        if held(&canonical, shard) {
                            self.statements.held_user = Some(canonical);
                            return Err(ClientError::Route(RouteError::UserHeld));
                        }
                        if table.is_hibernation(shard) {
                            self.ctx.wakeups.request(canonical.clone());
                        }
                        match &chosen {
                            None => chosen = Some((shard, canonical)),
                            Some((first_shard, first)) if *first_shard != shard => {
                                return Err(ClientError::Route(RouteError::CrossShard {
                                    first: String::from_utf8_lossy(first).into_owned(),
                                    first_shard: table.shard_name(*first_shard).to_string(),
                                    second: String::from_utf8_lossy(&canonical).into_owned(),
                                    second_shard: table.shard_name(shard).to_string(),
                                }))
                            }
                            Some(_) => {}
                        }
                    }
                }
                chosen.map_or(session_shard, |(s, _)| s)
            }
        };
        // Long data belongs to the next COM_STMT_EXECUTE (a bulk execute takes none).
        let long_data = if bulk {
            Vec::new()
        } else {
            stmt.long_data_size = 0;
            std::mem::take(&mut stmt.long_data)
        };
        Ok(ExecPlan {
            shard,
            backend: None,
            prepare: stmt.prepare.clone(),
            long_data,
            types: stmt.types.clone(),
            sent_types: new_types.is_some(),
        })
    }

    /// COM_STMT_EXECUTE, or MariaDB's COM_STMT_BULK_EXECUTE (`bulk`: every row's key
    /// must name one shard).
    pub(super) async fn execute(
        &mut self,
        table: &RoutingTable,
        payload: &mut BytesMut,
        seq: u8,
        bulk: bool,
    ) -> Result<(), End> {
        let client_id = stmt_id(payload).unwrap_or(0);
        let mut plan = self.plan_execute(table, payload, client_id, bulk);
        let released;
        let table = if matches!(plan, Err(ClientError::Route(RouteError::UserHeld))) {
            let user = self.statements.held_user.take().unwrap_or_default();
            match self.hold_while_moving(|t| t.is_held(&user)).await {
                Ok(fresh) => released = fresh,
                Err(e) => return self.reply_error(seq, e).await,
            }
            plan = self.plan_execute(&released, payload, client_id, bulk);
            &*released
        } else {
            table
        };
        let mut plan = match plan {
            Ok(p) => p,
            Err(ClientError::Route(RouteError::UserHeld)) => {
                let why = "another move of the user began".to_string();
                return self.reply_error(seq, ClientError::UserMoving { why }).await;
            }
            Err(e) => return self.reply_error(seq, e).await,
        };
        let shard = plan.shard;
        if self.backends.mode() == PoolMode::Transaction {
            let text = plan.prepare.get(1..).unwrap_or_default();
            self.multiplex.reads_insert_id = local::mentions_last_insert_id(text);
        }
        // Hold for a switching shard first, and settle the connection (a new master means
        // a new connection), so the statement copy looked up next is one that exists.
        let (reloaded, retried);
        let table = match self.hold_if_switching(table, shard).await {
            Ok(Some(fresh)) => {
                reloaded = fresh;
                &*reloaded
            }
            Ok(None) => table,
            Err(e) => return self.reply_error(seq, e).await,
        };
        let table = match self.acquire(table, shard).await {
            Ok(None) => table,
            Ok(Some(fresh)) => {
                retried = fresh;
                &*retried
            }
            Err(failure) => return self.reply_failure(seq, failure).await,
        };
        let generation = self.backends.generation(shard);
        plan.backend = self
            .statements
            .map
            .get(&client_id)
            .and_then(|s| s.backend(shard, generation));
        if self.backends.mode() == PoolMode::Transaction {
            // The connection's own cache says which statements live on it (another
            // session may have had one closed since this session's last execute here),
            // and a copy there may be another session's: its parameter types unknown.
            plan.backend = self
                .cached_statement(shard, &plan.prepare)
                .map(|id| BackendStmt {
                    shard,
                    generation: generation.unwrap_or(0),
                    id,
                    types_sent: false,
                });
        }
        let backend = match plan.backend {
            Some(b) => b,
            None => {
                let Some((id, _)) = self.prepare_on(table, shard, &plan.prepare, seq).await? else {
                    return Ok(());
                };
                self.cache_statement(shard, &plan.prepare, id).await;
                let b = BackendStmt {
                    shard,
                    generation: self.backends.generation(shard).unwrap_or(0),
                    id,
                    types_sent: false,
                };
                if let Some(stmt) = self.statements.map.get_mut(&client_id) {
                    stmt.add_backend(b);
                }
                b
            }
        };
        // Long data first, then the execute, both with the shard's statement id.
        let had_long_data = !plan.long_data.is_empty();
        if had_long_data {
            match self.backends.connection(table, shard).await {
                Ok(io) => {
                    for mut chunk in plan.long_data {
                        set_stmt_id(&mut chunk, backend.id);
                        io.queue(0, &chunk);
                    }
                }
                Err(f) => return self.reply_failure(seq, f).await,
            }
        }
        set_stmt_id(payload, backend.id);
        let rebuilt;
        let mut body: &[u8] = payload;
        if !plan.sent_types && !backend.types_sent {
            // This shard's copy never saw the types the client sent to another copy.
            if let (Some(types), Some(stmt)) = (&plan.types, self.statements.map.get(&client_id)) {
                rebuilt = if bulk {
                    with_bulk_types(payload, types)
                } else {
                    with_types(payload, stmt.params, types)
                };
                body = &rebuilt;
            }
        }
        let status = self
            .run_on(table, shard, body, seq, ResponseKind::Execute, true)
            .await?;
        if let Some((fresh, refusal)) = self.reroute.take() {
            // Refused as read-only by a master replaced since: executed again (prepared on
            // the new master's connection first) unless its long data is gone with the old
            // connection.
            if had_long_data {
                return self.send_packets(seq, &[refusal]).await;
            }
            set_stmt_id(payload, client_id);
            return Box::pin(self.execute(&fresh, payload, seq, bulk)).await;
        }
        if let Some(stmt) = self.statements.map.get_mut(&client_id) {
            if let Some(b) = stmt.backends.iter_mut().find(|b| b.shard == shard) {
                b.types_sent |= plan.types.is_some();
            }

            if let Some(status) = status {
                stmt.cursor_shard = (status & SERVER_STATUS_CURSOR_EXISTS != 0).then_some(shard);
            }
        }
        Ok(())
    }

    /// COM_STMT_FETCH: to the shard holding the statement's cursor.
    pub(super) async fn fetch(
        &mut self,
        table: &RoutingTable,
        payload: &mut BytesMut,
        seq: u8,
    ) -> Result<(), End> {
        let client_id = stmt_id(payload).unwrap_or(0);
        let target = self.statements.map.get(&client_id).and_then(|s| {
            let shard = s
                .cursor_shard
                .or_else(|| s.backends.first().map(|b| b.shard))?;
            Some((shard, s.backend(shard, self.backends.generation(shard))?.id))
        });
        let Some((shard, backend_id)) = target else {
            let err = ClientError::UnknownStatement {
                id: client_id,
                command: "mysqld_stmt_fetch",
            };
            return self.reply_error(seq, err).await;
        };
        set_stmt_id(payload, backend_id);
        self.run_on(table, shard, payload, seq, ResponseKind::Fetch, false)
            .await
            .map(drop)
    }

    /// COM_STMT_RESET: on every shard copy; answered with the first error or an OK.
    pub(super) async fn reset_statement(
        &mut self,
        table: &RoutingTable,
        payload: &[u8],
        seq: u8,
    ) -> Result<(), End> {
        let client_id = stmt_id(payload).unwrap_or(0);
        let Some(stmt) = self.statements.map.get_mut(&client_id) else {
            let err = ClientError::UnknownStatement {
                id: client_id,
                command: "mysqld_stmt_reset",
            };
            return self.reply_error(seq, err).await;
        };
        stmt.long_data.clear();
        stmt.long_data_size = 0;
        stmt.cursor_shard = None;
        let copies = stmt.backends.clone();
        let timeout = self.config.timeouts.backend_read();
        let format = self.backends.result_format();
        for b in copies {
            if self.backends.generation(b.shard) != Some(b.generation) {
                continue; // its connection was replaced: the copy is gone already
            }
            let mut cmd = vec![COM_STMT_RESET];
            cmd.extend_from_slice(&b.id.to_le_bytes());
            let Some(io) = self.backends.get(b.shard) else {
                continue;
            };
            let result = exchange(io, &cmd, ResponseKind::Single, format, timeout).await;
            match result {
                Ok(packets) if packets.first().and_then(|p| p.first()) == Some(&ERR_HEADER) => {
                    return self.send_packets(seq, &packets).await;
                }
                Ok(_) => {}
                Err(detail) => return Err(self.backend_lost(table, b.shard, seq, detail).await),
            }
        }
        self.send_packets(seq, &[ok_packet(0, 0, self.status, 0)])
            .await
    }

    /// COM_STMT_CLOSE: on every shard copy (no response, as on MySQL). In transaction
    /// pooling the copies belong to their connections' caches, shared with other
    /// sessions: they stay.
    pub(super) async fn close_statement(&mut self, payload: &[u8]) -> Result<(), End> {
        let client_id = stmt_id(payload).unwrap_or(0);
        let Some(stmt) = self.statements.map.remove(&client_id) else {
            return Ok(());
        };
        if self.backends.mode() == PoolMode::Transaction {
            return Ok(());
        }
        for b in stmt.backends {
            if self.backends.generation(b.shard) != Some(b.generation) {
                continue;
            }
            if let Some(io) = self.backends.get(b.shard) {
                io.queue(0, &stmt_close(b.id));
                // A failure here shows on the next command to that shard.
                let _ = io.flush().await;
            }
        }
        Ok(())
    }
}

/// An execute payload with `types` inserted and the new-params-bound flag set.
fn with_types(payload: &[u8], params: u16, types: &[u8]) -> Vec<u8> {
    let flag_at = 10 + usize::from(params).div_ceil(8);
    let mut out = Vec::with_capacity(payload.len() + types.len());
    match payload.get(..flag_at) {
        Some(head) if payload.len() > flag_at => {
            out.extend_from_slice(head);
            out.push(1);
            out.extend_from_slice(types);
            out.extend_from_slice(&payload[flag_at + 1..]);
            out
        }
        _ => payload.to_vec(),
    }
}

/// Why a COM_STMT_PREPARE is refused before it reaches a shard.
const PREPARE_PLAIN: &str = "a prepared statement must be one ordinary statement (no batch, dynamic SQL, compound statement or @dbrouter_userid), read with the default sql_mode grammar";
