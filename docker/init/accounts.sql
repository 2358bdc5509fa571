-- docker/init/accounts.sql — accounts and the app database, run by docker/init/init-cluster.sh
-- on each shard's current master with its binlog on, so that the standby (starting from an
-- empty GTID state) replicates them. Keep in step with ensure_accounts() in scripts/dev-cluster.

CREATE USER IF NOT EXISTS 'repl'@'%' IDENTIFIED BY 'repl-secret';
GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'repl'@'%';

-- The service account dbrouter uses on every backend ([backend] in config/dbrouter.compose.toml).
CREATE USER IF NOT EXISTS 'dbrouter'@'%'
    IDENTIFIED VIA mysql_native_password USING PASSWORD('dbrouter-secret');
GRANT ALL PRIVILEGES ON *.* TO 'dbrouter'@'%' WITH GRANT OPTION;

CREATE DATABASE IF NOT EXISTS `app`;
