//! Probing one server: what the health checker and the operations see of it ([`Health`]).

use std::time::{Duration, Instant};

use mysql_async::prelude::*;
use mysql_async::{Conn, Row};

use super::{opts, within};

/// What a probe of one server found.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Health {
    /// `host:port`.
    pub addr: String,
    /// Reachable with the admin (or service) account.
    pub reachable: bool,
    /// Round trip of a `SELECT 1`, microseconds.
    pub rtt_us: u64,
    /// `@@read_only`.
    pub read_only: bool,
    /// `@@gtid_binlog_pos`.
    pub gtid_binlog_pos: String,
    /// `@@gtid_slave_pos`.
    pub gtid_slave_pos: String,
    /// `@@gtid_current_pos`.
    pub gtid_current_pos: String,
    /// `Rpl_semi_sync_master_status` is ON.
    pub semi_sync_master: bool,
    /// `Rpl_semi_sync_slave_status` is ON.
    pub semi_sync_slave: bool,
    /// `host:port` it replicates from, if it is a replica.
    pub replicates_from: Option<String>,
    /// Slave IO thread running.
    pub io_running: bool,
    /// Slave SQL thread running.
    pub sql_running: bool,
    /// `Seconds_Behind_Master`.
    pub lag_seconds: Option<u64>,
    /// `Gtid_IO_Pos`: what it has received.
    pub gtid_io_pos: String,
    /// The last error (connection, IO or SQL thread).
    pub last_error: Option<String>,
}

/// MariaDB's refusals of a login for lack of connections: 1040 (max_connections), 1203
/// and 1226 (the account's max_user_connections).
const FULL: [u16; 3] = [1040, 1203, 1226];

/// Probes one server: reachability, round trip, read_only, GTID positions, semi-sync,
/// replication threads and lag. Never fails: an unreachable server is a result.
pub async fn probe(
    addr: &str,
    user: &str,
    password: &str,
    timeout: Duration,
    tls: Option<&crate::config::BackendTlsSection>,
) -> Health {
    let mut h = Health {
        addr: addr.to_string(),
        ..Health::default()
    };
    let result: Result<(), String> = async {
        let o = opts(addr, user, password, tls)?;
        let t0 = Instant::now();
        let mut c = match tokio::time::timeout(timeout, Conn::new(o)).await {
            Ok(Ok(c)) => c,
            // It answered, so it runs: out of connections (a pool above its
            // max_connections, a connection storm) is no lost master, and must never be
            // failed over.
            Ok(Err(mysql_async::Error::Server(e))) if FULL.contains(&e.code) => {
                h.reachable = true;
                h.rtt_us = t0.elapsed().as_micros() as u64;
                return Err(format!("connect: the server is up but refused the probe: {e}"));
            }
            Ok(Err(e)) => return Err(format!("connect: {e}")),
            Err(_) => return Err(format!("connect: no answer within {timeout:?}")),
        };
        let t0 = Instant::now();
        within(timeout, "ping", c.query_drop("SELECT 1")).await?;
        h.rtt_us = t0.elapsed().as_micros() as u64;
        h.reachable = true;
        let row: Option<(i64, String, String, String)> = within(
            timeout,
            "variables",
            c.query_first("SELECT @@read_only, @@gtid_binlog_pos, @@gtid_slave_pos, @@gtid_current_pos"),
        )
        .await?;
        if let Some((ro, binlog, slave, current)) = row {
            h.read_only = ro != 0;
            h.gtid_binlog_pos = binlog;
            h.gtid_slave_pos = slave;
            h.gtid_current_pos = current;
        }
        let status: Vec<(String, String)> = within(
            timeout,
            "semi-sync status",
            c.query("SHOW GLOBAL STATUS WHERE Variable_name IN ('Rpl_semi_sync_master_status', 'Rpl_semi_sync_slave_status')"),
        )
        .await?;
        for (name, value) in status {
            let on = value.eq_ignore_ascii_case("ON");
            match name.as_str() {
                "Rpl_semi_sync_master_status" => h.semi_sync_master = on,
                "Rpl_semi_sync_slave_status" => h.semi_sync_slave = on,
                _ => {}
            }
        }
        let slave: Option<Row> = within(timeout, "slave status", c.query_first("SHOW SLAVE STATUS")).await?;
        if let Some(row) = slave {
            let text = |name: &str| row.get_opt::<Option<String>, _>(name).and_then(Result::ok).flatten();
            if let (Some(host), Some(port)) = (text("Master_Host"), text("Master_Port")) {
                h.replicates_from = Some(format!("{host}:{port}"));
            }
            h.io_running = text("Slave_IO_Running").as_deref() == Some("Yes");
            h.sql_running = text("Slave_SQL_Running").as_deref() == Some("Yes");
            h.lag_seconds = text("Seconds_Behind_Master").and_then(|s| s.parse().ok());
            h.gtid_io_pos = text("Gtid_IO_Pos").unwrap_or_default();
            let io_err = text("Last_IO_Error").filter(|e| !e.is_empty());
            let sql_err = text("Last_SQL_Error").filter(|e| !e.is_empty());
            h.last_error = io_err.or(sql_err);
        }
        let _ = c.disconnect().await;
        Ok(())
    }
    .await;
    if let Err(e) = result {
        h.last_error = Some(e);
    }
    h
}
