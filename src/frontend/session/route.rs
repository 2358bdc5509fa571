//! Phase 1 and 2 of a COM_QUERY: what the statement is (local answer, session state,
//! transaction control, one routed statement, a batch, dynamic SQL) and where it runs
//! (docs/sharding.md). Pure decisions on the session's pin and dialect, then the hand-off
//! to the phase that carries them out.

use super::*;

impl<S: ClientStream> Session<S> {
    pub(in crate::frontend) async fn query(
        &mut self,
        table: &RoutingTable,
        payload: &[u8],
        seq: u8,
    ) -> Result<(), End> {
        let sql = payload.get(1..).unwrap_or_default();
        if let Some(user) = local::route_query(sql, self.dialect) {
            return self.show_route(table, &user, seq).await;
        }
        if local::is_status_query(sql, self.dialect) {
            return self.show_status(table, seq).await;
        }
        if let Some(full) = crate::frontend::process::processlist(sql, self.dialect) {
            return self.show_processlist(full, seq).await;
        }
        match crate::frontend::process::kill(sql, self.dialect) {
            Some(Ok(kill)) => return self.kill_session(kill, seq).await,
            Some(Err(())) => {
                let err = RouteError::Statement(KILL_FORM);
                return self.reply_error(seq, err.into()).await;
            }
            None => {}
        }
        if local::first_word_is(sql, self.dialect, b"set")
            && local::mentions_pin(sql)
            && key::shape(sql, self.dialect) == Shape::Plain
        {
            if let Some(pin) = local::session_pin(sql, self.dialect) {
                self.pin = match pin.map(|p| (key_from_text(&p, table.key_type()), p)) {
                    None => None,
                    Some((Ok(key), _)) => Some(key),
                    Some((Err(why), p)) => {
                        let key = String::from_utf8_lossy(&p).into_owned();
                        return self
                            .reply_error(seq, RouteError::BadKey { key, why }.into())
                            .await;
                    }
                };
            }
        }
        if let Some(valid) = one_shot_characteristics(sql, self.dialect) {
            return self.set_next_transaction(table, payload, seq, valid).await;
        }
        let mut route = self.route_query(table, sql, self.dialect);
        let released;
        let table = if matches!(route, Err(RouteError::UserHeld)) {
            // A move is copying this user's last rows: wait for its flip (bounded), then
            // route with the snapshot that has the user's new shard.
            let dialect = self.dialect;
            let held = |t: &RoutingTable| {
                matches!(self.route_query(t, sql, dialect), Err(RouteError::UserHeld))
            };
            match self.hold_while_moving(held).await {
                Ok(fresh) => released = fresh,
                Err(e) => return self.reply_error(seq, e).await,
            }
            route = self.route_query(&released, sql, self.dialect);
            &*released
        } else {
            table
        };
        let route = match route {
            Ok(route) => route,
            Err(RouteError::UserHeld) => {
                let why = "another move of the user began".to_string();
                return self.reply_error(seq, ClientError::UserMoving { why }).await;
            }
            Err(e) => return self.reply_error(seq, e.into()).await,
        };
        match route {
            Route::Shard(shard) if local::first_word_is(sql, self.dialect, b"lock") => {
                // LOCK TABLES: the session stays on this shard until UNLOCK TABLES.
                let status = self
                    .run_on(table, shard, payload, seq, ResponseKind::Query, true)
                    .await?;
                if status.is_some() {
                    self.tx.locked_on(shard);
                }
                return Ok(());
            }
            Route::Session if local::first_word_is(sql, self.dialect, b"unlock") => {
                let shard = self.tx.locked().unwrap_or_else(|| self.session_shard());
                let status = self
                    .run_on(table, shard, payload, seq, ResponseKind::Query, false)
                    .await?;
                if status.is_some() {
                    self.tx.unlocked();
                }
                return Ok(());
            }
            Route::Session if local::mentions_named_lock(sql) => {
                // Named locks are one namespace for all routers' clients: on the global
                // shard, whatever shard the session is on.
                let shard = table.global_shard();
                return self
                    .run_on(table, shard, payload, seq, ResponseKind::Query, false)
                    .await
                    .map(drop);
            }
            Route::Session if local::mentions_last_insert_id(sql) => {
                // Asked on the connection whose statement generated the value.
                let shard = self
                    .tx
                    .last_insert()
                    .unwrap_or_else(|| self.session_shard());
                return self
                    .run_on(table, shard, payload, seq, ResponseKind::Query, false)
                    .await
                    .map(drop);
            }
            _ => {}
        }
        match route {
            Route::Shard(shard) => self
                .run_on(table, shard, payload, seq, ResponseKind::Query, true)
                .await
                .map(drop),
            Route::Session => {
                let shard = self.session_shard();
                self.run_on(table, shard, payload, seq, ResponseKind::Query, false)
                    .await
                    .map(drop)
            }
            Route::Broadcast if !self.backends.can_record(payload) => {
                let err = RouteError::Statement(TOO_MUCH_STATE);
                self.reply_error(seq, err.into()).await
            }
            Route::Broadcast => {
                self.broadcast(table, payload, seq, ResponseKind::Query)
                    .await
            }
            Route::Transaction(_) => self.transaction(table, payload, seq).await,
        }
    }

    /// A one-shot `SET TRANSACTION …`: kept for the next transaction (sent before it, on
    /// its shard), or passed to the open transaction's shard, whose server refuses it.
    pub(in crate::frontend) async fn set_next_transaction(
        &mut self,
        table: &RoutingTable,
        payload: &[u8],
        seq: u8,
        valid: bool,
    ) -> Result<(), End> {
        if !valid {
            let err = RouteError::Statement(SET_TRANSACTION_FORM);
            return self.reply_error(seq, err.into()).await;
        }
        if let Some(open) = self.tx.open_shard() {
            return self
                .run_on(table, open, payload, seq, ResponseKind::Query, true)
                .await
                .map(drop);
        }
        if self.tx.is_pending() {
            // What MariaDB answers after BEGIN.
            let err = err_packet(
                1568,
                b"25001",
                "Transaction characteristics can't be changed while a transaction is in progress",
            );
            return self.send_packets(seq, &[err]).await;
        }
        let sql = payload.get(1..).unwrap_or_default();
        let read_only = crate::frontend::transaction::sets_read_only(sql, self.dialect);
        self.tx.set_next_characteristics(payload, read_only);
        self.answer_ok(seq).await
    }

    /// Where a COM_QUERY text runs when MariaDB reads it under `dialect`
    /// (docs/sharding.md): a batch only when every statement alone would run and all on
    /// one shard (or all are session state); `SET STATEMENT … FOR` and `EXECUTE IMMEDIATE
    /// '…'` by the statement they run; SQL-level PREPARE / EXECUTE and compound
    /// statements are refused.
    pub(in crate::frontend) fn route_query(
        &self,
        table: &RoutingTable,
        sql: &[u8],
        dialect: Dialect,
    ) -> Result<Route, RouteError> {
        let scan = crate::router::scan_in(sql, dialect, table.key_columns());
        let shape = if key::may_have_shape(&scan) {
            key::shape(sql, dialect)
        } else {
            Shape::Plain
        };
        match shape {
            Shape::Plain => self.route_scanned(table, sql, &scan, dialect, true),
            Shape::Batch(parts) => {
                let mut shard: Option<(ShardId, usize)> = None;
                let (mut state, mut work) = (0usize, 0usize);
                for (i, part) in parts.iter().enumerate() {
                    if key::shape(part, dialect) != Shape::Plain {
                        return Err(RouteError::Statement(BATCH_DYNAMIC));
                    }
                    match self.route_statement(table, part, dialect, false)? {
                        Route::Broadcast => state += 1,
                        Route::Transaction(_) => return Err(RouteError::Statement(BATCH_TX)),
                        Route::Session => work += 1,
                        Route::Shard(s) => {
                            work += 1;
                            match shard {
                                Some((first, _)) if first != s => {
                                    return Err(RouteError::Statement(BATCH_SHARDS))
                                }
                                _ => shard = Some((s, i)),
                            }
                        }
                    }
                }
                match (state, work) {
                    (_, 0) => Ok(Route::Broadcast),
                    (0, _) => Ok(shard.map_or(Route::Session, |(s, _)| Route::Shard(s))),
                    _ => Err(RouteError::Statement(BATCH_STATE)),
                }
            }
            Shape::SetStatement {
                changes_dialect: true,
                ..
            } => Err(RouteError::Statement(SET_STATEMENT_DIALECT)),
            Shape::SetStatement { inner, .. } => self.route_inner(table, inner, dialect),
            Shape::ExecuteImmediate(Some(inner)) => self.route_inner(table, inner, dialect),
            Shape::ExecuteImmediate(None) | Shape::SqlPrepared => {
                Err(RouteError::Statement(DYNAMIC_SQL))
            }
            Shape::Compound => Err(RouteError::Statement(COMPOUND)),
            Shape::Unreadable => Err(RouteError::Undecidable(KeyProblem::Unreadable.message())),
        }
    }

    /// The statement run by `SET STATEMENT … FOR` or `EXECUTE IMMEDIATE`: one ordinary
    /// statement that runs on a shard (never session state or a transaction statement).
    pub(in crate::frontend) fn route_inner(
        &self,
        table: &RoutingTable,
        inner: &[u8],
        dialect: Dialect,
    ) -> Result<Route, RouteError> {
        if key::shape(inner, dialect) != Shape::Plain {
            return Err(RouteError::Statement(DYNAMIC_SQL));
        }
        match self.route_statement(table, inner, dialect, false)? {
            route @ (Route::Shard(_) | Route::Session) => Ok(route),
            Route::Broadcast | Route::Transaction(_) => Err(RouteError::Statement(INNER_STATE)),
        }
    }

    /// One statement alone: its scan under `dialect`, routed with the session pin;
    /// `standalone` is false inside a batch or around dynamic SQL.
    pub(in crate::frontend) fn route_statement(
        &self,
        table: &RoutingTable,
        sql: &[u8],
        dialect: Dialect,
        standalone: bool,
    ) -> Result<Route, RouteError> {
        let scan = crate::router::scan_in(sql, dialect, table.key_columns());
        self.route_scanned(table, sql, &scan, dialect, standalone)
    }

    /// [`Session::route_statement`] of a statement already scanned.
    pub(in crate::frontend) fn route_scanned(
        &self,
        table: &RoutingTable,
        sql: &[u8],
        scan: &key::Scan<'_>,
        dialect: Dialect,
        standalone: bool,
    ) -> Result<Route, RouteError> {
        if scan.kind == StatementKind::Set
            && local::mentions_pin(sql)
            && (!standalone || local::session_pin(sql, dialect).is_none())
        {
            return Err(RouteError::Statement(PIN_ALONE));
        }
        if scan.kind == StatementKind::Other && local::first_word_is(sql, dialect, b"xa") {
            return Err(RouteError::Statement(XA_REFUSED));
        }
        if dialect.foreign_grammar && !scan.kind.is_session_control() {
            return Err(RouteError::Undecidable(FOREIGN_GRAMMAR));
        }
        if scan.kind == StatementKind::Call && !scan.from_hint && self.pin.is_none() {
            return Err(RouteError::Statement(KEYLESS_CALL));
        }
        let route = table
            .route_pinned(scan, self.pin.as_deref())?
            // `?` in a text statement: the server will answer with its syntax error.
            .unwrap_or(Route::Session);
        // A move holds the user: held, unless this session's transaction was open on the
        // user's shard before the hold (it finishes there; the router acknowledges the
        // hold only once it has ended: router::open_transactions).
        if let Route::Shard(shard) = route {
            if let Some(since) = table.names_held_user(scan, self.pin.as_deref()) {
                if self.tx.open_since(shard).is_none_or(|began| began >= since) {
                    return Err(RouteError::UserHeld);
                }
            }
            // A hibernated user is served where they are, and moved back soon after.
            if table.is_hibernation(shard) {
                if let Some(user) = table.named_user(scan, self.pin.as_deref()) {
                    self.ctx.wakeups.request(user);
                }
            }
        }
        Ok(route)
    }
}
