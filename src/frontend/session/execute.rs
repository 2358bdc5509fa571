//! Phases 3 to 5 of a statement on one shard: acquire (switchover hold, transaction
//! binding, checkout with state replay, dialect check), execute (send and relay the
//! answer) and settle (status flags, last insert, metrics).

use super::failover_hold::{awaits_failover, hold_for_failover};
use super::*;

impl<S: ClientStream> Session<S> {
    /// Runs a statement silently (answer consumed). Returns false when it failed: its ERR
    /// was relayed as the answer to the client's command, which must go no further.
    pub(in crate::frontend) async fn run_internal(
        &mut self,
        table: &RoutingTable,
        shard: ShardId,
        payload: &[u8],
        seq: u8,
    ) -> Result<bool, End> {
        let timeout = self.config.timeouts.backend_read();
        let format = self.backends.result_format();
        let io = match self.backends.connection(table, shard).await {
            Ok(io) => io,
            Err(f) => {
                self.reply_failure(seq, f).await?;
                return Ok(false);
            }
        };
        let result = exchange(io, payload, ResponseKind::Query, format, timeout).await;
        match result {
            Ok(packets) if packets.first().and_then(|p| p.first()) == Some(&ERR_HEADER) => {
                self.tx.ended(shard);
                self.send_packets(seq, &packets).await?;
                Ok(false)
            }
            Ok(packets) => {
                if let Some(status) = final_status(&packets) {
                    self.note_status(table, shard, status);
                }
                Ok(true)
            }
            Err(detail) => Err(self.backend_lost(table, shard, seq, detail).await),
        }
    }

    /// Forwards a command to one shard and relays its answer (see `run_on_inner`), and
    /// records its outcome and latency (docs/metrics.md).
    pub(in crate::frontend) async fn run_on(
        &mut self,
        table: &RoutingTable,
        shard: ShardId,
        payload: &[u8],
        seq: u8,
        kind: ResponseKind,
        binds: bool,
    ) -> Result<Option<u16>, End> {
        let started = crate::metrics::start_timer();
        self.refused = None;
        let result = self
            .run_on_inner(table, shard, payload, seq, kind, binds)
            .await;
        if let Some(started) = started {
            let outcome = match &result {
                Ok(Some(_)) => "ok",
                // Its answer is a plain string, not an OK packet.
                Ok(None) if payload.first() == Some(&COM_STATISTICS) => "ok",
                Ok(None) => self.refused.unwrap_or("error"),
                Err(End::Error(e)) => e.kind(),
                Err(End::ClientGone(_)) => "client_gone",
                Err(_) => "closed",
            };
            let name = table.shard_name(shard);
            crate::metrics::statement(shard, name, outcome, started);
        }
        result
    }

    /// Forwards a command to one shard and relays its answer. With `binds`, the
    /// statement belongs to the session's transaction: a pending BEGIN is sent first, and
    /// a statement for another shard than the open transaction's rolls it back and fails.
    pub(in crate::frontend) async fn run_on_inner(
        &mut self,
        table: &RoutingTable,
        shard: ShardId,
        payload: &[u8],
        seq: u8,
        kind: ResponseKind,
        binds: bool,
    ) -> Result<Option<u16>, End> {
        // A shard switching masters: hold the statement (bounded) until the new master is
        // published, then route with the new topology. Statements of a transaction already
        // open there go on: the switchover lets them finish before it fences the old master.
        let reloaded;
        let table = if table.shard(shard).is_some_and(|s| s.switching)
            && self.tx.open_shard() != Some(shard)
        {
            match self.hold_while_switching(shard).await {
                Ok(fresh) => {
                    reloaded = fresh;
                    &*reloaded
                }
                Err(err) => return self.reply_error(seq, err).await.map(|_| None),
            }
        } else {
            table
        };
        // A statement that opens no transaction's shard takes its connection first: while
        // the master is lost and a failover is expected, it is held for the new master
        // (`acquire`) before anything of the session's transaction state changes.
        let acquired = self.tx.open_shard().is_none();
        let early;
        let table = if acquired {
            match self.acquire(table, shard).await {
                Ok(None) => table,
                Ok(Some(fresh)) => {
                    early = fresh;
                    &*early
                }
                Err(failure) => return self.reply_failure(seq, failure).await.map(|_| None),
            }
        } else {
            table
        };
        if binds {
            match self.tx.bind(shard, table.version) {
                Err(other) => {
                    return self
                        .cross_shard_transaction(table, other, shard, seq)
                        .await
                        .map(|_| None)
                }
                Ok(prelude) => {
                    // The pending BEGIN (and what came with it) opens the transaction here.
                    for stmt in prelude {
                        if !self.run_internal(table, shard, &stmt, seq).await? {
                            return Ok(None);
                        }
                    }
                    if self.roll_back_stray().await {
                        let err = ClientError::RolledBack(STRAY_TX);
                        return self.reply_error(seq, err).await.map(|_| None);
                    }
                }
            }
        } else if let Err(locked) = self.tx.check_unbound(shard) {
            return self
                .cross_shard_transaction(table, locked, shard, seq)
                .await
                .map(|_| None);
        }
        if self.tx.open_shard() == Some(shard) && self.backends.is_stale(table, shard) {
            // The shard's master changed under an open transaction: it is gone with the
            // old master's connection.
            self.backends.discard(shard);
            self.tx.ended(shard);
            self.status &= !SERVER_STATUS_IN_TRANS;
            let err = ClientError::MasterChanged {
                shard: table.shard_name(shard).to_string(),
            };
            return self.reply_error(seq, err).await.map(|_| None);
        }
        let timeouts = self.relay_timeouts();
        let format = self.backends.result_format();
        let retried;
        let table = if acquired {
            table
        } else {
            match self.acquire(table, shard).await {
                Ok(None) => table,
                Ok(Some(fresh)) => {
                    retried = fresh;
                    &*retried
                }
                Err(failure) => return self.reply_failure(seq, failure).await.map(|_| None),
            }
        };
        // The statement was read with the session's dialect; a connection that reads
        // differently (another global sql_mode or version on this shard) runs it only if
        // it routes the same under the connection's own dialect.
        if let Some(conn_dialect) = self.backends.dialect(shard).filter(|d| *d != self.dialect) {
            if payload.first() == Some(&COM_QUERY) {
                let sql = payload.get(1..).unwrap_or_default();
                match self.route_query(table, sql, conn_dialect) {
                    Ok(Route::Shard(s)) if s != shard => {
                        let err = RouteError::Statement(DIALECT_DIFFERS);
                        return self.reply_error(seq, err.into()).await.map(|_| None);
                    }
                    Err(e) => return self.reply_error(seq, e.into()).await.map(|_| None),
                    Ok(_) => {}
                }
            }
        }
        if self.multiplex.reads_insert_id {
            // Transaction pooling: this connection may have served others since.
            if let Err(source) = self.backends.align_last_insert_id(shard).await {
                let shard_name = table.shard_name(shard).to_string();
                let failure = Failure::Replay {
                    shard: shard_name,
                    source,
                };
                return Err(self.backend_failed(shard, seq, failure).await);
            }
        }
        // KILL QUERY / KILL CONNECTION of this session go to this backend thread.
        let thread = self.backends.thread_id(shard);
        self.me.set_running(thread.map(|t| (shard, u64::from(t))));
        let Some(io) = self.backends.get(shard) else {
            let err = ClientError::Internal("backend connection vanished".into());
            return self.reply_error(seq, err).await.map(|_| None);
        };
        // Re-framing from sequence 0 reproduces the client's packet split exactly.
        io.queue(0, payload);
        if let Err(e) = io.flush().await {
            return Err(self.backend_lost(table, shard, seq, e.into()).await);
        }
        self.current = shard;
        // Asked only when the server has been silent for a while.
        let routing = &self.ctx.routing;
        let replaced = || {
            let now = routing.load();
            matches!((now.shard(shard), table.shard(shard)), (Some(a), Some(b)) if a.master != b.master)
        };
        match relay_response(
            &mut self.client,
            io,
            (kind, format),
            seq,
            timeouts,
            &mut self.watchdog,
            replaced,
        )
        .await
        {
            Ok(relayed) => {
                let Relayed {
                    status, inserted, ..
                } = relayed;
                if inserted {
                    self.tx.inserted_on(shard);
                }
                self.after_relay(shard, &relayed, payload.get(1..).unwrap_or_default());
                if let Some(status) = status {
                    self.note_status(table, shard, status);
                }
                if self.roll_back_stray().await {
                    self.rolled_back = Some(STRAY_TX);
                }
                Ok(status)
            }
            Err((RelayError::Client(e), _)) => {
                self.backends.discard(shard);
                Err(End::ClientGone(e))
            }
            Err((RelayError::ReadOnly(refusal), _)) => {
                // Not the master any more (or an operator's read_only): that connection
                // is of no use, and the statement did not run.
                self.backends.discard(shard);
                if self.tx.open_shard() == Some(shard) {
                    self.tx.ended(shard);
                    self.status &= !SERVER_STATUS_IN_TRANS;
                    let err = ClientError::MasterChanged {
                        shard: table.shard_name(shard).to_string(),
                    };
                    return self.reply_error(seq, err).await.map(|_| None);
                }
                match self.wait_for_another_master(table, shard).await {
                    // A text statement is sent again as it is.
                    Some(fresh) if payload.first() == Some(&COM_QUERY) => {
                        let again = self.run_on_inner(&fresh, shard, payload, seq, kind, binds);
                        Box::pin(again).await
                    }
                    // A prepared statement needs its copy on the new master's connection:
                    // `prepared::execute` prepares it there and executes again.
                    Some(fresh) if payload.first() == Some(&COM_STMT_EXECUTE) => {
                        self.reroute = Some((fresh, refusal));
                        Ok(None)
                    }
                    _ => self.send_packets(seq, &[refusal]).await.map(|()| None),
                }
            }
            Err((source, position)) => {
                let failure = Failure::Relay {
                    shard: table.shard_name(shard).to_string(),
                    source,
                };
                let command = command::name(payload.first().copied().unwrap_or(0));
                warn!(parent: &self.span, command, error = %failure, "relay failed");
                if position.mid_packet {
                    // Part of a packet reached the client: an ERR would be garbage now.
                    self.backends.discard(shard);
                    return Err(match failure.reply() {
                        Reply::Error(err) => End::Error(err),
                        Reply::Relay(_) => End::Closed("relay failed mid-packet"),
                    });
                }
                Err(self.backend_failed(shard, position.last_seq, failure).await)
            }
        }
    }

    /// Takes the session's connection to `shard` (from the pool, with the session's state
    /// replayed, if it has none yet); refused while the router is cut off from ZooKeeper
    /// for longer than `topology.stale_serving_ms`. When the master could not be reached but the
    /// topology has moved on ([`Session::retry_on_newer_master`]), once more with the
    /// newer snapshot, which is returned to continue with.
    pub(in crate::frontend) async fn acquire(
        &mut self,
        table: &RoutingTable,
        shard: ShardId,
    ) -> Result<Option<Arc<RoutingTable>>, Failure> {
        if self.ctx.topology.is_stale() {
            return Err(ClientError::CutOff.into());
        }
        let Err(failure) = self.backends.connection(table, shard).await else {
            return Ok(None);
        };
        if failure.master_unreachable() {
            // Probe now: the routers' opinions decide a failover.
            self.ctx.health.suspect();
        }
        match self.retry_on_newer_master(table, shard, &failure).await {
            None if self.tx.open_shard() != Some(shard)
                && awaits_failover(&self.ctx, table, shard, &failure) =>
            {
                let held = hold_for_failover(&self.ctx, &mut self.backends, table, shard, failure);
                let fresh = held.await?;
                if fresh.shard(shard).is_some_and(|s| s.switching) {
                    // Published as switching meanwhile: held like any statement.
                    let fresh = self.hold_while_switching(shard).await?;
                    self.backends.connection(&fresh, shard).await?;
                    return Ok(Some(fresh));
                }
                Ok(Some(fresh))
            }
            None => Err(failure),
            Some(Err(held_too_long)) => Err(held_too_long.into()),
            Some(Ok(fresh)) => {
                self.backends.connection(&fresh, shard).await?;
                Ok(Some(fresh))
            }
        }
    }

    /// After a failed checkout: whether the statement may be tried again on a newer
    /// topology, and with which snapshot. Only when nothing ran ([`Failure::retryable`]),
    /// the master could not be reached, no transaction of the session is open there, and
    /// the topology has moved on since the statement was routed: the shard is switching
    /// now (the statement is held, as any other) or names another master.
    async fn retry_on_newer_master(
        &self,
        table: &RoutingTable,
        shard: ShardId,
        failure: &Failure,
    ) -> Option<Result<Arc<RoutingTable>, ClientError>> {
        // `master_unreachable` implies `retryable` (nothing ran).
        if !failure.master_unreachable() || self.tx.open_shard() == Some(shard) {
            return None;
        }
        let now = self.ctx.routing.load_full();
        let (was, is) = (table.shard(shard)?, now.shard(shard)?);
        if is.switching {
            return Some(self.hold_while_switching(shard).await);
        }
        if is.master == was.master {
            return None;
        }
        debug!(parent: &self.span, shard = %is.name, master = %is.master, error = %failure, "master changed since the statement was routed; trying the new one");
        Some(Ok(now))
    }

    /// After the shard's master refused a statement as read-only (ERR 1290): the topology
    /// is read again and the statement held (bounded like a switchover's hold) until it
    /// names another master — the router missed a switchover — or says nothing changed
    /// (an operator's `read_only`: the refusal is the answer, `None`).
    async fn wait_for_another_master(
        &self,
        table: &RoutingTable,
        shard: ShardId,
    ) -> Option<Arc<RoutingTable>> {
        use std::sync::atomic::Ordering;
        use std::time::Duration;
        /// Without a follower (a config-file topology) nothing re-reads it: a publish by
        /// hand is waited for this long at most.
        const UNFOLLOWED_WAIT: Duration = Duration::from_secs(2);
        /// A read that finished after the request is trusted once this much passed.
        const SETTLE: Duration = Duration::from_millis(100);
        let lost = table.shard(shard)?.master.clone();
        let topology = &self.ctx.topology;
        let before = topology.request_read();
        let limits = &self.config.failover;
        if self.ctx.held.fetch_add(1, Ordering::AcqRel) >= limits.buffer_max_statements {
            self.ctx.held.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        let started = tokio::time::Instant::now();
        let mut limit = Duration::from_millis(limits.buffer_max_ms);
        if !topology.is_followed() {
            limit = limit.min(UNFOLLOWED_WAIT);
        }
        let outcome = loop {
            let now = self.ctx.routing.load_full();
            match now.shard(shard) {
                None => break None,
                Some(s) if s.switching || s.master != lost => break Some(now),
                Some(_) => {}
            }
            let read_since = topology.is_followed() && topology.reads() > before;
            if (read_since && started.elapsed() >= SETTLE) || started.elapsed() >= limit {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        self.ctx.held.fetch_sub(1, Ordering::AcqRel);
        let fresh = outcome?;
        if fresh.shard(shard).is_some_and(|s| s.switching) {
            return self.hold_while_switching(shard).await.ok();
        }
        debug!(parent: &self.span, shard = %fresh.shard_name(shard), lost = %lost, "the master answered read-only and was replaced; sending the statement to the new one");
        Some(fresh)
    }

    /// Holds the statement if `shard` is switching (and the session has no transaction
    /// open there); returns the snapshot to continue with when it waited.
    pub(in crate::frontend) async fn hold_if_switching(
        &self,
        table: &RoutingTable,
        shard: ShardId,
    ) -> Result<Option<Arc<RoutingTable>>, ClientError> {
        if table.shard(shard).is_some_and(|s| s.switching) && self.tx.open_shard() != Some(shard) {
            return self.hold_while_switching(shard).await.map(Some);
        }
        Ok(None)
    }

    /// Waits until `shard` is no longer switching, within `failover.buffer_max_ms` and
    /// `failover.buffer_max_statements`; returns the routing snapshot to continue with.
    pub(in crate::frontend) async fn hold_while_switching(
        &self,
        shard: ShardId,
    ) -> Result<Arc<RoutingTable>, ClientError> {
        let name = self.ctx.routing.load().shard_name(shard).to_string();
        self.hold_until(
            |table| !table.shard(shard).is_some_and(|s| s.switching),
            |why| ClientError::ShardSwitching {
                shard: name.clone(),
                why,
            },
        )
        .await
    }

    /// Waits until a move no longer holds the statement's user (`held` says whether a
    /// snapshot still holds it), within the same bounds as a switchover's hold; returns
    /// the routing snapshot to continue with (the user's new shard, after the flip).
    pub(in crate::frontend) async fn hold_while_moving(
        &self,
        held: impl Fn(&RoutingTable) -> bool,
    ) -> Result<Arc<RoutingTable>, ClientError> {
        self.hold_until(|table| !held(table), |why| ClientError::UserMoving { why })
            .await
    }

    /// Holds a statement until `released` is true of the current routing snapshot, within
    /// `failover.buffer_max_ms`, and only if fewer than `failover.buffer_max_statements`
    /// are held already; `refused` says why not, as the client's retryable error.
    async fn hold_until(
        &self,
        released: impl Fn(&RoutingTable) -> bool,
        refused: impl Fn(String) -> ClientError,
    ) -> Result<Arc<RoutingTable>, ClientError> {
        use std::sync::atomic::Ordering;
        let limits = &self.config.failover;
        if self.ctx.held.fetch_add(1, Ordering::AcqRel) >= limits.buffer_max_statements {
            self.ctx.held.fetch_sub(1, Ordering::AcqRel);
            return Err(refused(format!(
                "{} statements are held already (failover.buffer_max_statements)",
                limits.buffer_max_statements
            )));
        }
        let deadline =
            tokio::time::Instant::now() + std::time::Duration::from_millis(limits.buffer_max_ms);
        let result = loop {
            let table = self.ctx.routing.load_full();
            if released(&table) {
                break Ok(table);
            }
            if tokio::time::Instant::now() >= deadline {
                break Err(refused(format!(
                    "held for {} ms (failover.buffer_max_ms)",
                    limits.buffer_max_ms
                )));
            }
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        };
        self.ctx.held.fetch_sub(1, Ordering::AcqRel);
        result
    }

    /// A command dbrouter sent on `shard`'s connection on its own failed: the connection
    /// is closed, the failure reported (answering the command that ended with `seq`) and
    /// the session ends ([`Session::backend_failed`]).
    pub(in crate::frontend) async fn backend_lost(
        &mut self,
        table: &RoutingTable,
        shard: ShardId,
        seq: u8,
        source: ExchangeError,
    ) -> End {
        let shard_name = table.shard_name(shard).to_string();
        let failure = Failure::Exchange {
            shard: shard_name,
            source,
        };
        self.backend_failed(shard, seq, failure).await
    }

    pub(in crate::frontend) fn relay_timeouts(&self) -> RelayTimeouts {
        let t = &self.config.timeouts;
        RelayTimeouts {
            backend_read: t.backend_read(),
            client_write: t.client_write(),
            client_read: t.net_read(),
        }
    }
}
