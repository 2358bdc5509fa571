//! Statements the router answers itself: `SHOW DBROUTER ROUTE FOR <user>` and
//! `SHOW DBROUTER STATUS`.

use super::*;

impl<S: ClientStream> Session<S> {
    /// `SHOW DBROUTER ROUTE FOR <user>`: where a user's statements go, and why.
    pub(in crate::frontend) async fn show_route(
        &mut self,
        table: &RoutingTable,
        user: &[u8],
        seq: u8,
    ) -> Result<(), End> {
        let canonical = match key_from_text(user, table.key_type()) {
            Ok(key) => key,
            Err(why) => {
                let key = String::from_utf8_lossy(user).into_owned();
                return self
                    .reply_error(seq, RouteError::BadKey { key, why }.into())
                    .await;
            }
        };
        let (shard, why) = table.shard_for_key(&canonical);
        let info = table.shard(shard);
        let (reason, key_hash, vnode) = match why {
            Why::Override => ("override".to_string(), None, None),
            Why::Ring {
                key_hash,
                vnode_hash,
            } => (
                "ring".to_string(),
                Some(format!("{key_hash:016x}")),
                Some(format!("{vnode_hash:016x}")),
            ),
        };
        let row = vec![
            Some(String::from_utf8_lossy(&canonical).into_owned()),
            info.map(|s| s.name.clone()),
            info.map(|s| s.master.clone()),
            Some(reason),
            key_hash,
            vnode,
        ];
        let packets = text_result_set(
            &[
                "userid",
                "shard",
                "master",
                "reason",
                "key_hash",
                "vnode_hash",
            ],
            &[row],
            self.status & !crate::protocol::response::SERVER_MORE_RESULTS_EXISTS,
            self.backends.result_format(),
        );
        self.send_packets(seq, &packets).await
    }

    /// `SHOW DBROUTER STATUS`: the topology this router serves and its source's health.
    pub(in crate::frontend) async fn show_status(
        &mut self,
        table: &RoutingTable,
        seq: u8,
    ) -> Result<(), End> {
        let topo = &self.ctx.topology;
        let condition = topo.condition();
        let mut rows: Vec<Vec<Option<String>>> = vec![
            vec![Some("topology_source".into()), Some(topo.source.clone())],
            vec![
                Some("topology_version".into()),
                Some(table.version.to_string()),
            ],
            vec![
                Some("zookeeper_state".into()),
                Some(condition.state.to_string()),
            ],
            vec![
                Some("topology_last_error".into()),
                condition.last_error.clone(),
            ],
            vec![
                Some("overridden_users".into()),
                Some(table.override_count().to_string()),
            ],
            vec![
                Some("held_users".into()),
                Some(table.held_count().to_string()),
            ],
            vec![
                Some("stale".into()),
                Some(if topo.is_stale() { "yes" } else { "no" }.into()),
            ],
        ];
        for h in self.ctx.health.snapshot() {
            let x = &h.health;
            rows.push(vec![
                Some(format!("server.{}", x.addr)),
                Some(format!(
                    "shard={} role={} reachable={} read_only={} lag={} io={} sql={} semi_sync_master={} semi_sync_slave={} rtt_us={} gtid={} failures={} error={}",
                    h.shard,
                    h.role,
                    x.reachable,
                    x.read_only,
                    x.lag_seconds.map_or("-".into(), |l| l.to_string()),
                    x.io_running,
                    x.sql_running,
                    x.semi_sync_master,
                    x.semi_sync_slave,
                    x.rtt_us,
                    x.gtid_current_pos,
                    h.consecutive_failures,
                    x.last_error.as_deref().unwrap_or("-")
                )),
            ]);
        }
        for s in &table.shards {
            rows.push(vec![
                Some(format!("shard.{}", s.name)),
                Some(format!(
                    "master={} epoch={} weight={} standbys={}",
                    s.master,
                    s.epoch,
                    s.weight,
                    s.standbys.join(",")
                )),
            ]);
        }
        let packets = text_result_set(
            &["name", "value"],
            &rows,
            self.status & !crate::protocol::response::SERVER_MORE_RESULTS_EXISTS,
            self.backends.result_format(),
        );
        self.send_packets(seq, &packets).await
    }
}

impl<S: ClientStream> Session<S> {
    /// `SHOW [FULL] PROCESSLIST`: this router's sessions of the client's account, with
    /// the router's session ids (MariaDB shows an account without PROCESS only its own
    /// threads). Without FULL, statements are cut at 100 characters, as MariaDB does.
    pub(in crate::frontend) async fn show_processlist(
        &mut self,
        full: bool,
        seq: u8,
    ) -> Result<(), End> {
        let rows: Vec<Vec<Option<String>>> = self
            .ctx
            .sessions
            .process_list(&self.me.account())
            .into_iter()
            .map(|r| {
                let info = r.info.map(|i| {
                    let text = String::from_utf8_lossy(&i).into_owned();
                    if full {
                        text
                    } else {
                        text.chars().take(100).collect()
                    }
                });
                let state = if info.is_some() { "executing" } else { "" };
                vec![
                    Some(r.id.to_string()),
                    Some(r.user),
                    Some(r.host),
                    r.db,
                    Some(r.command.to_string()),
                    Some(r.time.to_string()),
                    Some(state.to_string()),
                    info,
                    Some("0.000".to_string()),
                ]
            })
            .collect();
        let packets = text_result_set(
            &[
                "Id", "User", "Host", "db", "Command", "Time", "State", "Info", "Progress",
            ],
            &rows,
            self.client_status() & !crate::protocol::response::SERVER_MORE_RESULTS_EXISTS,
            self.backends.result_format(),
        );
        self.send_packets(seq, &packets).await
    }

    /// `KILL [CONNECTION | QUERY] <id>` of a router session id. Only the client's own
    /// account's sessions may be named (else ERR 1094, as MariaDB answers for a thread one
    /// may not kill). The target's running statement is killed on its backend thread —
    /// from this session's own connection to that shard, as the same account, which
    /// MariaDB allows — so its client gets MariaDB's own answer (1317 for KILL QUERY, 1927
    /// for KILL CONNECTION); KILL CONNECTION also ends the target session.
    pub(in crate::frontend) async fn kill_session(
        &mut self,
        kill: crate::frontend::process::Kill,
        seq: u8,
    ) -> Result<(), End> {
        let unknown = || err_packet(1094, b"HY000", &format!("Unknown thread id: {}", kill.id));
        if kill.id == u64::from(self.me.id) {
            // Its own statement: MariaDB interrupts the KILL itself.
            if kill.query_only {
                let err = err_packet(1317, b"70100", "Query execution was interrupted");
                return self.send_packets(seq, &[err]).await;
            }
            let err = err_packet(1927, b"70100", "Connection was killed");
            self.send_packets(seq, &[err]).await?;
            return Err(End::Closed(KILLED));
        }
        let account = self.me.account();
        let local = crate::frontend::sessions::router_of(kill.id)
            == Some(self.ctx.sessions.router_number());
        let outcome = match (&self.ctx.remote_kills, local) {
            (_, true) | (None, false) => {
                self.ctx
                    .killer
                    .kill(kill.id, kill.query_only, &account)
                    .await
            }
            (Some(remote), false) => match remote.request(kill.id, kill.query_only, &account).await
            {
                Ok(outcome) => outcome,
                Err(why) => {
                    let err = err_packet(1105, b"HY000", &format!("KILL {}: {why}", kill.id));
                    return self.send_packets(seq, &[err]).await;
                }
            },
        };
        if outcome == crate::topology::kills::KillOutcome::Unknown {
            return self.send_packets(seq, &[unknown()]).await;
        }
        self.answer_ok(seq).await
    }
}
