//! Transaction control: BEGIN / COMMIT / ROLLBACK / savepoints carried out as
//! [`super::super::transaction::Transaction`] decides, the status flags of every answer
//! fed back into it, and the rollbacks its invariants call for.

use super::*;

impl<S: ClientStream> Session<S> {
    /// Transaction control (docs/sharding.md, "Transactions"): BEGIN is answered locally
    /// and sent with the transaction's first statement; COMMIT / ROLLBACK / savepoints go
    /// where the transaction is, or are answered locally while BEGIN is still pending.
    pub(in crate::frontend) async fn transaction(
        &mut self,
        table: &RoutingTable,
        payload: &[u8],
        seq: u8,
    ) -> Result<(), End> {
        let sql = payload.get(1..).unwrap_or_default();
        let stmt = TxStatement::parse(sql, self.dialect);
        match stmt {
            TxStatement::Unknown => {
                let err = RouteError::Statement(TX_FORM);
                self.reply_error(seq, err.into()).await
            }
            TxStatement::Begin {
                consistent_snapshot,
                read_only,
            } => {
                if let Some(open) = self.tx.open_shard() {
                    // BEGIN inside a transaction commits it first, as MariaDB does.
                    if !self.run_internal(table, open, b"\x03COMMIT", seq).await? {
                        return Ok(());
                    }
                }
                if consistent_snapshot {
                    // The snapshot is taken by this statement: it must run now, where the
                    // transaction will be.
                    let Some(shard) = self.pin.as_ref().map(|p| table.shard_for_key(p).0) else {
                        let err = RouteError::Statement(SNAPSHOT_NEEDS_SHARD);
                        return self.reply_error(seq, err.into()).await;
                    };
                    return self
                        .run_on(table, shard, payload, seq, ResponseKind::Query, true)
                        .await
                        .map(drop);
                }
                self.tx.begin(payload, read_only);
                self.answer_ok(seq).await
            }
            TxStatement::End { chain, release, .. } => {
                match self.tx.end_pending(chain, release) {
                    Some(PendingAnswer::OkThenClose) => {
                        self.answer_ok(seq).await?;
                        return Err(End::Closed("COMMIT / ROLLBACK RELEASE"));
                    }
                    Some(_) => return self.answer_ok(seq).await,
                    None => {}
                }
                let shard = self.session_shard();
                let status = self
                    .run_on(table, shard, payload, seq, ResponseKind::Query, true)
                    .await?;
                if release && status.is_some() {
                    // The server closes its side: so does the session.
                    self.backends.discard(shard);
                    self.tx.ended(shard);
                    return Err(End::Closed("COMMIT / ROLLBACK RELEASE"));
                }
                Ok(())
            }
            TxStatement::Savepoint(_)
            | TxStatement::RollbackTo(_)
            | TxStatement::ReleaseSavepoint(_) => match self.tx.savepoint_pending(&stmt, payload) {
                Some(PendingAnswer::NoSuchSavepoint(name)) => {
                    let message = format!(
                        "SAVEPOINT {} does not exist",
                        String::from_utf8_lossy(&name)
                    );
                    let err = err_packet(1305, b"42000", &message);
                    self.send_packets(seq, &[err]).await
                }
                Some(_) => self.answer_ok(seq).await,
                None => {
                    let shard = self.session_shard();
                    self.run_on(table, shard, payload, seq, ResponseKind::Query, true)
                        .await
                        .map(drop)
                }
            },
        }
    }

    /// An OK answered by the router itself, with the status the client must see.
    pub(in crate::frontend) async fn answer_ok(&mut self, seq: u8) -> Result<(), End> {
        let status = self.client_status();
        self.send_packets(seq, &[ok_packet(0, 0, status, 0)]).await
    }

    /// The last backend status, with IN_TRANS (and IN_TRANS_READONLY) as the session's
    /// transaction says.
    pub(in crate::frontend) fn client_status(&self) -> u16 {
        use crate::protocol::response::{
            SERVER_MORE_RESULTS_EXISTS, SERVER_STATUS_IN_TRANS_READONLY,
        };
        let status = self.status & !SERVER_MORE_RESULTS_EXISTS;
        if self.tx.pending_read_only() {
            status | SERVER_STATUS_IN_TRANS | SERVER_STATUS_IN_TRANS_READONLY
        } else if self.tx.client_in_trans() {
            status | SERVER_STATUS_IN_TRANS
        } else {
            status & !(SERVER_STATUS_IN_TRANS | SERVER_STATUS_IN_TRANS_READONLY)
        }
    }

    /// Updates the transaction state from a backend's final status flags. A second open
    /// transaction is remembered for [`Session::roll_back_stray`].
    pub(in crate::frontend) fn note_status(
        &mut self,
        table: &RoutingTable,
        shard: ShardId,
        status: u16,
    ) {
        self.status = status;
        if let Observation::Violation(shards) = self.tx.observe(shard, status, table.version) {
            for s in shards {
                if !self.stray.contains(&s) {
                    self.stray.push(s);
                }
            }
        }
    }

    /// Rolls back every transaction of a violation [`Session::note_status`] found (a
    /// session never holds transactions on two shards); true if there was one.
    pub(in crate::frontend) async fn roll_back_stray(&mut self) -> bool {
        if self.stray.is_empty() {
            return false;
        }
        for shard in std::mem::take(&mut self.stray) {
            self.roll_back_quietly(shard).await;
        }
        self.tx.abort();
        self.status &= !SERVER_STATUS_IN_TRANS;
        true
    }

    /// ROLLBACK on `shard`'s connection, answer consumed; a connection that cannot roll
    /// back is closed (the server rolls back a closed connection's transaction).
    pub(in crate::frontend) async fn roll_back_quietly(&mut self, shard: ShardId) {
        let format = self.backends.result_format();
        let timeout = self.config.timeouts.backend_read();
        let rolled_back = match self.backends.get(shard) {
            Some(io) => exchange(io, b"\x03ROLLBACK", ResponseKind::Query, format, timeout)
                .await
                .is_ok_and(|p| p.first().and_then(|p| p.first()) != Some(&ERR_HEADER)),
            None => true,
        };
        if !rolled_back {
            self.backends.discard(shard);
        }
        self.tx.ended(shard);
    }

    pub(in crate::frontend) async fn cross_shard_transaction(
        &mut self,
        table: &RoutingTable,
        tx_shard: ShardId,
        shard: ShardId,
        seq: u8,
    ) -> Result<(), End> {
        if self.tx.open_shard() != Some(tx_shard) {
            // Not a transaction: LOCK TABLES holds the session on that shard.
            let err = ClientError::TablesLocked {
                shard: table.shard_name(tx_shard).to_string(),
            };
            return self.reply_error(seq, err).await;
        }
        self.roll_back_quietly(tx_shard).await;
        self.status &= !SERVER_STATUS_IN_TRANS;
        let err = ClientError::CrossShardTransaction {
            tx_shard: table.shard_name(tx_shard).to_string(),
            shard: table.shard_name(shard).to_string(),
        };
        self.reply_error(seq, err).await
    }
}
