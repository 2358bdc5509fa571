#!/usr/bin/env bash
# docker/init/init-cluster.sh — the `init` service of docker-compose.yml: creates the accounts
# and sets up semi-synchronous GTID replication on both shards, then exits 0.
#
# The compose counterpart of setup_shard() in scripts/dev-cluster; keep the two in step.
# Idempotent: `docker compose up` runs it again every time, and it then only re-applies the
# runtime settings of each node's current role (read_only, semi-sync master/slave) and
# restarts replication (the servers run with skip-slave-start). Roles are read from the
# servers, so a shard whose standby was promoted keeps its new roles.
#
# Runs in the mariadb:10.11 image (for the `mariadb` client) and talks to the servers as root
# over the compose network. Environment:
#   MARIADB_ROOT_PASSWORD   root password of the four servers (required)
#   INIT_TIMEOUT            seconds to wait for each server / for replication (default 120)
#   INIT_SHARDS, INIT_PORT  override the layout below (to try the script outside compose):
#                           "shard master standby;shard master standby", and the port of all
set -euo pipefail

: "${MARIADB_ROOT_PASSWORD:?MARIADB_ROOT_PASSWORD is not set}"
export MYSQL_PWD=$MARIADB_ROOT_PASSWORD   # read by the mariadb client; keeps it off argv
TIMEOUT=${INIT_TIMEOUT:-120}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ACCOUNTS_SQL=$HERE/accounts.sql

# shard name, initial master, initial standby (compose service names; every server on 3306)
SHARDS=("shard1 shard1-master shard1-standby" "shard2 shard2-master shard2-standby")
PORT=${INIT_PORT:-3306}
if [[ -n ${INIT_SHARDS:-} ]]; then
    IFS=';' read -r -a SHARDS <<<"$INIT_SHARDS"
fi
REPL_USER=repl REPL_PASSWORD=repl-secret

say() { printf 'init-cluster: %s\n' "$*"; }
die() { printf 'init-cluster: ERROR: %s\n' "$*" >&2; exit 1; }

# sql HOST QUERY: run QUERY as root; tab-separated, no headers.
sql() {
    mariadb --no-defaults --host="$1" --port="$PORT" --user=root --batch --skip-column-names \
        --connect-timeout=5 -e "$2"
}

global_status() {
    { sql "$1" "SHOW GLOBAL STATUS LIKE '$2'" 2>/dev/null || true; } | awk -F'\t' '{print $2}'
}

# slave_field HOST FIELD: one field of SHOW SLAVE STATUS (empty when replication is not configured).
slave_field() {
    { mariadb --no-defaults --host="$1" --port="$PORT" --user=root --connect-timeout=5 \
        -e 'SHOW SLAVE STATUS\G' 2>/dev/null || true; } | awk -v f="$2" '$1 == f":" {sub(/^[^:]*: ?/, ""); print; exit}'
}

wait_alive() {
    local host=$1 i
    for ((i = 0; i < TIMEOUT; i++)); do
        if sql "$host" 'SELECT 1' >/dev/null 2>&1; then
            return 0
        fi
        sleep 1
    done
    sql "$host" 'SELECT 1' || die "$host: no answer to SELECT 1 within ${TIMEOUT}s"
}

# shard_roles A B: prints "MASTER STANDBY". Neither replicates yet: the static layout (A is
# the master). Otherwise the master is the node the other one replicates from.
shard_roles() {
    local a=$1 b=$2 ma mb
    ma=$(slave_field "$a" Master_Host)
    mb=$(slave_field "$b" Master_Host)
    if [[ -z $ma && -z $mb ]]; then
        echo "$a $b"
    elif [[ -z $ma && $mb == "$a" ]]; then
        echo "$a $b"
    elif [[ -z $mb && $ma == "$b" ]]; then
        echo "$b $a"
    else
        die "cannot tell master from standby ($a replicates from '${ma:-nothing}', $b from '${mb:-nothing}'); fix replication by hand or remove the volumes (docker compose down -v)"
    fi
}

ensure_accounts() {
    local host=$1 have
    have=$(sql "$host" "SELECT
            (SELECT COUNT(*) FROM mysql.global_priv WHERE Host='%' AND User IN ('repl','dbrouter'))
          + (SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME='app')") \
        || die "$host: cannot query accounts"
    if [[ $have == 3 ]]; then
        return 0
    fi
    mariadb --no-defaults --host="$host" --port="$PORT" --user=root --connect-timeout=5 \
        < "$ACCOUNTS_SQL" || die "$host: running $ACCOUNTS_SQL failed"
    say "$host  created users repl, dbrouter and database app"
}

make_master() {
    sql "$1" "SET GLOBAL rpl_semi_sync_master_timeout=5000,
                     rpl_semi_sync_master_wait_point=AFTER_SYNC,
                     rpl_semi_sync_master_enabled=ON,
                     read_only=OFF" || die "$1: enabling semi-sync master failed"
}

make_standby() {
    local host=$1 master=$2
    sql "$host" "SET GLOBAL rpl_semi_sync_master_enabled=OFF,
                        rpl_semi_sync_slave_enabled=ON,
                        read_only=ON" || die "$host: setting standby variables failed"
    if [[ -z $(slave_field "$host" Master_Host) ]]; then
        sql "$host" "CHANGE MASTER TO MASTER_HOST='$master', MASTER_PORT=$PORT,
                        MASTER_USER='$REPL_USER', MASTER_PASSWORD='$REPL_PASSWORD',
                        MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1" \
            || die "$host: CHANGE MASTER failed"
        say "$host  replicating from $master:$PORT"
    fi
    if [[ $(slave_field "$host" Slave_IO_Running) != Yes || $(slave_field "$host" Slave_SQL_Running) != Yes ]]; then
        sql "$host" "START SLAVE" || die "$host: START SLAVE failed"
    fi
}

# wait_replication MASTER STANDBY: both threads run, semi-sync is active on both ends, and the
# standby has applied everything the master has.
wait_replication() {
    local master=$1 standby=$2 i io sqlt clients status slave_status kicked=0 pos
    for ((i = 0; i < TIMEOUT * 2; i++)); do
        io=$(slave_field "$standby" Slave_IO_Running)
        sqlt=$(slave_field "$standby" Slave_SQL_Running)
        clients=$(global_status "$master" Rpl_semi_sync_master_clients)
        status=$(global_status "$master" Rpl_semi_sync_master_status)
        slave_status=$(global_status "$standby" Rpl_semi_sync_slave_status)
        if [[ $io == Yes && $sqlt == Yes && $status == ON && ${clients:-0} -ge 1 && $slave_status == ON ]]; then
            pos=$(sql "$master" 'SELECT @@gtid_binlog_pos')
            if [[ $(sql "$standby" "SELECT MASTER_GTID_WAIT('$pos', $TIMEOUT)") != 0 ]]; then
                die "$standby did not apply $master's GTID position $pos within ${TIMEOUT}s"
            fi
            say "$master  master, semi-sync ON ($clients client); $standby standby: IO/SQL running, at GTID ${pos:-<empty>}"
            return 0
        fi
        # An IO thread that connected before semi-sync was on keeps an async stream:
        # reconnecting it once renegotiates.
        if (( i == 20 && kicked == 0 )) && [[ $io == Yes && $slave_status != ON ]]; then
            sql "$standby" 'STOP SLAVE IO_THREAD; START SLAVE IO_THREAD' || true
            kicked=1
        fi
        sleep 0.5
    done
    {
        echo "master $master: Rpl_semi_sync_master_status=$status clients=$clients"
        echo "standby $standby: Slave_IO_Running=$io Slave_SQL_Running=$sqlt Rpl_semi_sync_slave_status=$slave_status"
        echo "  Last_IO_Error: $(slave_field "$standby" Last_IO_Error)"
        echo "  Last_SQL_Error: $(slave_field "$standby" Last_SQL_Error)"
    } >&2
    die "replication $master -> $standby not healthy within ${TIMEOUT}s"
}

for entry in "${SHARDS[@]}"; do
    read -r shard a b <<<"$entry"
    wait_alive "$a"
    wait_alive "$b"
    read -r master standby <<<"$(shard_roles "$a" "$b")"
    say "$shard: master $master, standby $standby"
    ensure_accounts "$master"
    make_master "$master"
    make_standby "$standby" "$master"
    wait_replication "$master" "$standby"
done
say "both shards replicate semi-synchronously; done"
