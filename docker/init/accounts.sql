-- docker/init/accounts.sql — accounts and the app database, run by docker/init/init-cluster.sh
-- on each shard's current master with its binlog on, so that the standby (starting from an
-- empty GTID state) replicates them. Keep in step with ensure_accounts() in scripts/dev-cluster.

CREATE USER IF NOT EXISTS 'repl'@'%' IDENTIFIED BY 'repl-secret';
GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'repl'@'%';

-- The service account dbrouter uses on every backend ([backend] in config/dbrouter.compose.toml).
CREATE USER IF NOT EXISTS 'dbrouter'@'%'
    IDENTIFIED VIA mysql_native_password USING PASSWORD('dbrouter-secret');
-- What applications need and no more (no SUPER / READ_ONLY ADMIN): read_only fences it.
REVOKE ALL PRIVILEGES, GRANT OPTION FROM 'dbrouter'@'%';
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, INDEX, ALTER, REFERENCES, CREATE TEMPORARY TABLES,
    LOCK TABLES, EXECUTE, CREATE VIEW, SHOW VIEW, CREATE ROUTINE, ALTER ROUTINE, EVENT, TRIGGER,
    SHOW DATABASES, PROCESS, BINLOG MONITOR, SLAVE MONITOR ON *.* TO 'dbrouter'@'%';
-- Operations (dbrouter ctl promote / failover / rejoin).
CREATE USER IF NOT EXISTS 'dbrouter_admin'@'%'
    IDENTIFIED VIA mysql_native_password USING PASSWORD('admin-secret');
GRANT ALL PRIVILEGES ON *.* TO 'dbrouter_admin'@'%' WITH GRANT OPTION;

CREATE DATABASE IF NOT EXISTS `app`;

-- The application account: dbrouter logs in to MariaDB as it for the clients that log in as
-- `app` ([auth] identity = "client"), so it has its own database and nothing else — no
-- mysql.*, no PROCESS, no other schema. Its password matches the [[users]] entry's hash.
CREATE USER IF NOT EXISTS 'app'@'%'
    IDENTIFIED VIA mysql_native_password USING PASSWORD('app-secret');
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, INDEX, ALTER, REFERENCES, CREATE TEMPORARY TABLES,
    LOCK TABLES, EXECUTE, CREATE VIEW, SHOW VIEW, CREATE ROUTINE, ALTER ROUTINE, EVENT, TRIGGER
    ON `app`.* TO 'app'@'%';
