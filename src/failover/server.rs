//! [`Admin`]: a connection to one server with the admin account, and the server commands
//! the operations are made of (fence, wait for a GTID position, become master or standby).

use std::time::{Duration, Instant};

use mysql_async::prelude::*;
use mysql_async::Conn;

use super::gtid::GtidPos;
use super::{opts, within, Ops};

/// A connection to one server with the admin account.
pub(super) struct Admin {
    pub(super) conn: Conn,
    pub(super) addr: String,
    timeout: Duration,
}

impl Admin {
    pub(super) async fn connect(ops: &Ops, addr: &str) -> Result<Self, String> {
        let o = opts(addr, &ops.admin_user, &ops.admin_password, ops.tls.as_ref())?;
        let conn = within(ops.timeout, &format!("connect to {addr}"), Conn::new(o)).await?;
        Ok(Admin {
            conn,
            addr: addr.to_string(),
            timeout: ops.timeout,
        })
    }

    pub(super) async fn exec(&mut self, sql: &str) -> Result<(), String> {
        self.exec_shown_as(sql, sql).await
    }

    /// Runs `sql`, naming it `shown` in errors (a statement that carries a secret).
    async fn exec_shown_as(&mut self, sql: &str, shown: &str) -> Result<(), String> {
        let what = format!("{}: {shown}", self.addr);
        within(self.timeout, &what, self.conn.query_drop(sql)).await
    }

    pub(super) async fn value(&mut self, sql: &str) -> Result<Option<String>, String> {
        let what = format!("{}: {sql}", self.addr);
        let v: Option<Option<String>> =
            within(self.timeout, &what, self.conn.query_first(sql)).await?;
        Ok(v.flatten())
    }

    pub(super) async fn gtid(&mut self, var: &str) -> Result<GtidPos, String> {
        let text = self
            .value(&format!("SELECT @@{var}"))
            .await?
            .unwrap_or_default();
        GtidPos::parse(&text).ok_or_else(|| format!("{}: cannot parse {var} {text:?}", self.addr))
    }

    /// Waits until this server has applied `pos`. Polls `@@gtid_binlog_pos` (every server
    /// logs replicated transactions, `log_slave_updates`): MASTER_GTID_WAIT follows
    /// `@@gtid_slave_pos` only, which misses a former master's own transactions.
    pub(super) async fn wait_for(
        &mut self,
        pos: &GtidPos,
        timeout: Duration,
    ) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            // A server restored from a snapshot has an empty binlog but a replication
            // position: what it applied is in either.
            let binlog = self.gtid("gtid_binlog_pos").await?;
            let now = binlog.union(&self.gtid("gtid_slave_pos").await?);
            if now.covers(pos) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{} did not reach GTID position {pos} within {timeout:?} (it is at {now})",
                    self.addr
                ));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Makes this server the master: replication stopped and forgotten, writable, semi-sync
    /// master side on when it will have standbys.
    pub(super) async fn become_master(&mut self, with_standbys: bool) -> Result<(), String> {
        self.exec("STOP SLAVE").await?;
        self.exec("RESET SLAVE ALL").await?;
        self.exec("SET GLOBAL rpl_semi_sync_slave_enabled = OFF")
            .await?;
        if with_standbys {
            self.exec("SET GLOBAL rpl_semi_sync_master_wait_point = AFTER_SYNC, rpl_semi_sync_master_enabled = ON")
                .await?;
        }
        self.exec("SET GLOBAL read_only = OFF").await
    }

    /// Waits up to `limit` until semi-sync is active on this master with at least one
    /// semi-sync standby connected (`Rpl_semi_sync_master_status` ON,
    /// `Rpl_semi_sync_master_clients` ≥ 1).
    pub(super) async fn semi_sync_active(&mut self, limit: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + limit;
        loop {
            let status = self
                .value("SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'RPL_SEMI_SYNC_MASTER_STATUS'")
                .await;
            let clients = self
                .value("SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'RPL_SEMI_SYNC_MASTER_CLIENTS'")
                .await;
            let on = matches!(&status, Ok(Some(v)) if v.eq_ignore_ascii_case("ON"));
            let connected =
                matches!(&clients, Ok(Some(v)) if v.parse::<u32>().is_ok_and(|n| n >= 1));
            if on && connected {
                return true;
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// Makes this server a read-only semi-sync standby of `master`.
    pub(super) async fn become_standby(
        &mut self,
        ops: &Ops,
        master: &str,
        use_gtid: &str,
    ) -> Result<(), String> {
        let (host, port) = master
            .rsplit_once(':')
            .ok_or_else(|| format!("{master:?} is not host:port"))?;
        self.exec("SET GLOBAL read_only = ON").await?;
        self.exec("STOP SLAVE").await?;
        self.exec(
            "SET GLOBAL rpl_semi_sync_master_enabled = OFF, rpl_semi_sync_slave_enabled = ON",
        )
        .await?;
        // `master` passed config::check_host_port when its document was read, and the
        // replication account's name and password were checked to hold no quote,
        // backslash or control character: nothing here needs escaping. Errors show the
        // statement without the password.
        crate::config::check_host_port(master)?;
        let change = |password: &str| {
            format!(
                "CHANGE MASTER TO MASTER_HOST = '{host}', MASTER_PORT = {port}, MASTER_USER = '{}', MASTER_PASSWORD = {password}, MASTER_USE_GTID = {use_gtid}, MASTER_CONNECT_RETRY = 1",
                ops.repl_user
            )
        };
        let sql = change(&format!("'{}'", ops.repl_password));
        self.exec_shown_as(&sql, &change("<hidden>")).await?;
        self.exec("START SLAVE").await
    }
}
