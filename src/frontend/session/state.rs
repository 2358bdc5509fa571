//! Session state: SET / USE / COM_INIT_DB / COM_SET_OPTION / COM_RESET_CONNECTION applied
//! to every open backend connection and remembered for the ones opened later, and
//! COM_CHANGE_USER.

use super::*;

impl<S: ClientStream> Session<S> {
    /// Session state (`SET`, `USE`, COM_INIT_DB, COM_SET_OPTION, COM_RESET_CONNECTION):
    /// sent to every open backend connection, answered with the first error or the last
    /// OK, and remembered for connections opened later.
    pub(in crate::frontend) async fn broadcast(
        &mut self,
        table: &RoutingTable,
        payload: &[u8],
        seq: u8,
        kind: ResponseKind,
    ) -> Result<(), End> {
        let timeout = self.config.timeouts.backend_read();
        let format = self.backends.result_format();
        if self.backends.open_shards().next().is_none() {
            // Session state needs a connection to live on: the session's current shard.
            let shard = self.session_shard();
            if let Err(failure) = self.backends.state_connection(table, shard).await {
                return self.reply_failure(seq, failure).await;
            }
        }
        let shards: Vec<ShardId> = self.backends.open_shards().collect();
        let was_autocommit = self.status & SERVER_STATUS_AUTOCOMMIT != 0;
        let mut answer: Option<Vec<BytesMut>> = None;
        let mut failed = false;
        for shard in shards {
            let Some(io) = self.backends.get(shard) else {
                continue;
            };
            let result = exchange(io, payload, kind, format, timeout).await;
            let packets = match result {
                Ok(p) => p,
                Err(detail) => return Err(self.backend_lost(table, shard, seq, detail).await),
            };
            let is_err = packets.first().and_then(|p| p.first()) == Some(&ERR_HEADER);
            if !is_err {
                if let Some(status) = final_status(&packets) {
                    self.note_status(table, shard, status);
                }
            }
            if !failed {
                failed = is_err;
                answer = Some(packets);
            }
        }
        if !failed {
            self.record_state(payload);
        }
        if !was_autocommit && self.status & SERVER_STATUS_AUTOCOMMIT != 0 {
            // Switching autocommit on commits the transaction, also one still pending.
            self.tx.end_pending(false, false);
        }
        if self.roll_back_stray().await {
            // A SET (a stored function in it) opened transactions where the session must
            // not have them: undone, and said so instead of the SET's answer.
            let err = ClientError::RolledBack(STRAY_TX);
            return self.reply_error(seq, err).await;
        }
        let sql = payload.get(1..).unwrap_or_default();
        let reread = match payload.first().copied() {
            Some(COM_RESET_CONNECTION) => true,
            Some(COM_QUERY) => may_change_dialect(sql),
            _ => false,
        };
        if reread {
            // sql_mode or the character set may have changed (even by a statement that
            // failed on one shard): read back how each connection now reads statements.
            match self.backends.refresh_dialects(table).await {
                Ok(Some(dialect)) => self.dialect = dialect,
                Ok(None) => {}
                Err((shard, failure)) => {
                    return Err(self.backend_failed(shard, seq, failure).await)
                }
            }
        }
        match answer {
            Some(mut packets) => {
                if self.tx.is_pending() {
                    // The servers know nothing of the pending BEGIN yet; the client must.
                    if let Some(ok) = packets.first_mut() {
                        add_ok_status(ok, SERVER_STATUS_IN_TRANS);
                    }
                }
                self.send_packets(seq, &packets).await
            }
            None => {
                self.reply_error(
                    seq,
                    ClientError::Internal("no backend connection to apply session state on".into()),
                )
                .await
            }
        }
    }

    pub(in crate::frontend) fn record_state(&mut self, payload: &[u8]) {
        match payload.first().copied() {
            Some(COM_INIT_DB) => {
                let db = String::from_utf8_lossy(&payload[1..]).into_owned();
                self.me.set_db(Some(&db));
                self.backends.record_database(db)
            }
            Some(COM_SET_OPTION) => self.backends.record_set_option(payload),
            Some(COM_RESET_CONNECTION) => {
                self.backends.clear_state();
                self.statements.clear();
                self.tx.reset();
                self.pin = None;
                self.multiplex.unpin();
            }
            Some(COM_QUERY) => {
                let sql = &payload[1..];
                match local::use_database(sql, self.dialect) {
                    Some(db) => {
                        self.me.set_db(Some(&db));
                        self.backends.record_database(db)
                    }
                    None => self.backends.record_set(payload),
                }
            }
            _ => {}
        }
    }

    /// COM_CHANGE_USER: re-authenticates against dbrouter's accounts, then starts over
    /// with fresh backend state (connections go back to the pool and are reset there),
    /// exactly as a MySQL server resets the session.
    pub(in crate::frontend) async fn change_user(
        &mut self,
        table: &RoutingTable,
        payload: &[u8],
        seq: u8,
    ) -> Result<(), End> {
        let reply_seq = seq.wrapping_add(1);
        let login_now = self.backends.login().clone();
        let mut login = match parse_change_user(
            payload,
            login_now.capabilities,
            login_now.mariadb_capabilities,
            login_now.collation,
        ) {
            Ok(login) => login,
            Err(e) => {
                return Err(send_error(
                    &mut self.client,
                    reply_seq,
                    ClientError::BadHandshake(e.to_string()),
                )
                .await)
            }
        };
        if login.attributes.is_none() {
            login.attributes = login_now.attributes.clone();
        }
        let ctx = Arc::clone(&self.ctx);
        let (next, account, identity) = authenticate(
            &mut self.client,
            &ctx,
            &login,
            &self.scramble,
            reply_seq,
            self.peer,
        )
        .await?;
        // The old account's session is counted out first (it may be the same account).
        self.account = None;
        self.account = Some(admit(&mut self.client, &ctx, &account, next).await?);
        self.me.set_account(&account.name);
        self.me.set_db(login.database.as_deref());
        self.backends.relogin(login_state(&login, identity));
        self.me.set_login(self.backends.login().clone());
        self.statements.clear();
        self.tx.reset();
        self.pin = None;
        self.multiplex.unpin();
        self.status = SERVER_STATUS_AUTOCOMMIT;
        let global = table.global_shard();
        self.current = global;
        if let Err(failure) = self.backends.connection(table, global).await {
            return Err(send_failure(&mut self.client, next, failure).await);
        }
        self.dialect = self.backends.dialect(global).unwrap_or_default();
        let timeout = self.config.timeouts.backend_read();
        let ok = super::login_ok(&mut self.backends, global, timeout).await;
        self.backends.release_all(true);
        self.client.queue(next, &ok);
        self.client.flush().await.map_err(End::ClientGone)?;
        debug!(parent: &self.span, user = ?login.user, "user changed");
        Ok(())
    }
}
