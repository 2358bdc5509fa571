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
