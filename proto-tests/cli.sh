#!/usr/bin/env bash
# proto-tests/cli.sh — the mariadb command-line client and mariadb-admin through dbrouter,
# compared with the same commands run directly against shard1's master.
#
# Needs the variables of `eval "$(scripts/dev-cluster env)"` (scripts/test exports them):
#   DBR_ROUTER      host:port of the router       (user DBR_APP_USER / DBR_APP_PASSWORD, default app / app-secret)
#   DBR_S1_MASTER   host:port of shard1's master  (user DBR_BACKEND_USER / DBR_BACKEND_PASSWORD, default dbrouter / dbrouter-secret)
#   DBR_APP_DB      database (default app)
# To check the script itself against bare MariaDB, point DBR_ROUTER at DBR_S1_MASTER and set
# DBR_APP_USER/DBR_APP_PASSWORD to the backend account (scripts/test does this with DBR_TEST_DIRECT=1).
#
# Stops with a message and a non-zero exit status at the first failed check.
set -euo pipefail

: "${DBR_ROUTER:?DBR_ROUTER is not set: run through scripts/test or eval \"\$(scripts/dev-cluster env)\"}"
: "${DBR_S1_MASTER:?DBR_S1_MASTER is not set: run through scripts/test or eval \"\$(scripts/dev-cluster env)\"}"
APP_USER=${DBR_APP_USER:-app}
APP_PASSWORD=${DBR_APP_PASSWORD:-app-secret}
DB=${DBR_APP_DB:-app}
BACKEND_USER=${DBR_BACKEND_USER:-dbrouter}
BACKEND_PASSWORD=${DBR_BACKEND_PASSWORD:-dbrouter-secret}
R_HOST=${DBR_ROUTER%:*} R_PORT=${DBR_ROUTER##*:}
D_HOST=${DBR_S1_MASTER%:*} D_PORT=${DBR_S1_MASTER##*:}
CALL_TIMEOUT=${DBR_CLI_TIMEOUT:-60}   # no single client call may hang the suite

WORK=$(mktemp -d "${TMPDIR:-/tmp}/dbr-cli.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

CHECKS=0
ok() { CHECKS=$((CHECKS + 1)); printf 'ok   %2d - %s\n' "$CHECKS" "$*"; }
fail() {
    printf 'FAIL    - %s\n' "$1" >&2
    shift
    if (( $# > 0 )); then printf '%s\n' "$@" >&2; fi
    exit 1
}
# show FILE: a file's contents (at most 40 lines) for a failure message.
show() { printf -- '--- %s:\n%s\n---' "$(basename "$1")" "$(head -n 40 "$1")"; }

# mdb HOST PORT USER PASSWORD [mariadb args...]
mdb() {
    local host=$1 port=$2 user=$3 password=$4
    shift 4
    timeout "$CALL_TIMEOUT" mariadb --no-defaults --protocol=TCP -h"$host" -P"$port" \
        -u"$user" -p"$password" --default-character-set=utf8mb4 --connect-timeout=10 "$@"
}
router() { mdb "$R_HOST" "$R_PORT" "$APP_USER" "$APP_PASSWORD" "$@"; }
direct() { mdb "$D_HOST" "$D_PORT" "$BACKEND_USER" "$BACKEND_PASSWORD" "$@"; }
# The app account directly on the master: what the router's sessions act as at the database.
direct_app() { mdb "$D_HOST" "$D_PORT" "$APP_USER" "$APP_PASSWORD" "$@"; }

# same NAME [mariadb args...]: run the same client command through the router and directly;
# stdout and stderr must be byte-identical. Leaves them in $WORK/NAME.{router,direct}{,.err}.
# With SAME_STDIN=FILE, both read their statements from FILE.
same() {
    local name=$1 rc_r=0 rc_d=0 input=${SAME_STDIN:-/dev/null}
    shift
    router "$@" <"$input" >"$WORK/$name.router" 2>"$WORK/$name.router.err" || rc_r=$?
    direct_app "$@" <"$input" >"$WORK/$name.direct" 2>"$WORK/$name.direct.err" || rc_d=$?
    if [[ $rc_r != "$rc_d" ]]; then
        fail "$name: exit status through the router $rc_r, direct $rc_d" \
            "$(show "$WORK/$name.router.err")" "$(show "$WORK/$name.direct.err")"
    fi
    if ! cmp -s "$WORK/$name.router" "$WORK/$name.direct"; then
        fail "$name: output differs (router vs direct)" \
            "$(diff "$WORK/$name.router" "$WORK/$name.direct" | head -n 40 | cut -c1-300)"
    fi
    if ! cmp -s "$WORK/$name.router.err" "$WORK/$name.direct.err"; then
        fail "$name: stderr differs (router vs direct)" \
            "$(diff "$WORK/$name.router.err" "$WORK/$name.direct.err" | head -n 40)"
    fi
}

# expect_in NAME FILE STRING: FILE contains STRING (guards comparisons of two empty outputs).
expect_in() {
    grep -qF -- "$3" "$2" || fail "$1: expected '$3' in the output" "$(show "$2")"
}

echo "# cli.sh: router $DBR_ROUTER (user $APP_USER) vs direct $DBR_S1_MASTER (user $APP_USER; fixtures as $BACKEND_USER), db $DB"

# --- fixtures, created directly on the master ------------------------------------------------
direct -D "$DB" --delimiter='$$' -e "
DROP PROCEDURE IF EXISTS cli_two_results\$\$
CREATE PROCEDURE cli_two_results(IN n INT)
BEGIN
    SELECT n AS first, 'one' AS label;
    SELECT n * 2 AS second, NULL AS nothing, 'zwei — 二' AS label;
END\$\$
DROP TABLE IF EXISTS cli_load, cli_blob\$\$
CREATE TABLE cli_load (id INT PRIMARY KEY, v VARCHAR(64) NOT NULL) DEFAULT CHARSET=utf8mb4\$\$
CREATE TABLE cli_blob (id INT PRIMARY KEY, b LONGBLOB NULL)\$\$
INSERT INTO cli_blob VALUES (1, x'000102ff7f80'), (2, NULL), (3, ''), (4, REPEAT(x'ab00', 40000))\$\$
" || fail "creating fixtures directly on $DBR_S1_MASTER failed"

# --- connect ---------------------------------------------------------------------------------
out=$(router -D "$DB" -N -B -e 'SELECT 1') || fail "connect + SELECT 1 through the router failed"
[[ $out == 1 ]] || fail "SELECT 1 returned '$out'"
ok "connect and SELECT 1"

# --- wrong password --------------------------------------------------------------------------
if mdb "$R_HOST" "$R_PORT" "$APP_USER" "not-$APP_PASSWORD" -D "$DB" -e 'SELECT 1' >"$WORK/badpw.out" 2>"$WORK/badpw.err"; then
    fail "wrong password: login succeeded"
fi
expect_in "wrong password" "$WORK/badpw.err" "ERROR 1045 (28000)"
expect_in "wrong password" "$WORK/badpw.err" "Access denied for user '$APP_USER'"
ok "wrong password -> ERROR 1045 (28000)"

# --- unknown database ------------------------------------------------------------------------
if router -D nosuchdb -e 'SELECT 1' >"$WORK/nodb.out" 2>"$WORK/nodb.err"; then
    fail "unknown database: connect succeeded"
fi
# The session acts as the app account, which may not learn whether a database it has no
# grant on exists: MariaDB's own answer to it (1044), the same as directly.
direct_app -D nosuchdb -e 'SELECT 1' >"$WORK/nodb.direct.out" 2>"$WORK/nodb.direct.err" || true
# (1049 for an account with global privileges, as with DBR_TEST_DIRECT=1).
grep -qE "ERROR 104[49] \(42000\)" "$WORK/nodb.err" || fail "unknown database: no 1044/1049" "$(show "$WORK/nodb.err")"
cmp -s "$WORK/nodb.err" "$WORK/nodb.direct.err" \
    || fail "unknown database: differs from the app account's direct answer" "$(diff "$WORK/nodb.err" "$WORK/nodb.direct.err")"
ok "-D nosuchdb -> the app account's own answer (1044 (42000) for app), as directly"

# --- several statements ----------------------------------------------------------------------
out=$(router -D "$DB" -N -B -e 'SELECT 1; SELECT 2;') || fail "batch 'SELECT 1; SELECT 2;' failed"
[[ $out == $'1\n2' ]] || fail "batch 'SELECT 1; SELECT 2;' returned: $out"
ok "two statements in one -e (client splits them)"

# With another delimiter the client sends "SELECT 1; SELECT 2" as ONE COM_QUERY (multi-statements):
# two result sets chained by SERVER_MORE_RESULTS_EXISTS, then the session must still be in sync.
out=$(router -D "$DB" -N -B --delimiter='$$' -e 'SELECT 1; SELECT 2$$ SELECT 3$$') \
    || fail "multi-statement COM_QUERY failed"
[[ $out == $'1\n2\n3' ]] || fail "multi-statement COM_QUERY 'SELECT 1; SELECT 2' then 'SELECT 3' returned: $out"
same multi -D "$DB" -B --delimiter='$$' -e "SELECT 'a' AS x, NULL AS y; SELECT 2 AS z; DO 1\$\$ SELECT 'after' AS w\$\$"
expect_in multi "$WORK/multi.direct" after
ok "multi-statement COM_QUERY (two result sets in one packet exchange) and the next query"

# --- errors pass through unchanged -----------------------------------------------------------
same error -D "$DB" -e 'SELECT * FROM nosuchtable'
expect_in "error passthrough" "$WORK/error.direct.err" "ERROR 1146 (42S02) at line 1: Table '$DB.nosuchtable' doesn't exist"
same error_syntax -D "$DB" -e 'SELEKT 1'
expect_in "error passthrough" "$WORK/error_syntax.direct.err" "ERROR 1064 (42000)"
# ... and the connection stays usable after an error (--force keeps going; it does not with -e).
printf 'SELECT * FROM nosuchtable;\nSELECT 42;\n' > "$WORK/error_then_ok.sql"
SAME_STDIN=$WORK/error_then_ok.sql same error_then_ok -D "$DB" -N -B --force
expect_in "error then ok" "$WORK/error_then_ok.direct" 42
ok "server errors (1146, 1064) pass through byte for byte; the session continues after an error"

# --- warnings --------------------------------------------------------------------------------
same warnings -D "$DB" -B -e "SELECT CAST('x' AS SIGNED) AS v; SHOW WARNINGS; SHOW COUNT(*) WARNINGS"
expect_in warnings "$WORK/warnings.direct" $'Warning\t1292\tTruncated incorrect INTEGER value: \'x\''
# --show-warnings only asks when the EOF/OK packet's warning count is non-zero.
same warnings_flag -D "$DB" -B --show-warnings -e "SELECT CAST('y' AS SIGNED) AS v"
expect_in warnings "$WORK/warnings_flag.direct" "Warning (Code 1292): Truncated incorrect INTEGER value: 'y'"
ok "warnings: SHOW WARNINGS after CAST('x' AS SIGNED), warning count in the EOF/OK packet"

# --- stored procedure with two result sets -----------------------------------------------------
# A procedure's statements are invisible to the router: CALL needs the session pin (or a hint,
# which the mariadb client strips unless --comments).
same proc -D "$DB" -B -e 'SET @dbrouter_userid = 1; CALL cli_two_results(21); CALL cli_two_results(5); SELECT 99 AS after_calls'
expect_in proc "$WORK/proc.direct" $'42\tNULL\tzwei — 二'
expect_in proc "$WORK/proc.direct" 99
ok "CALL of a procedure returning two result sets (twice), then a plain query"

# --- LOAD DATA LOCAL INFILE ------------------------------------------------------------------
awk 'BEGIN { for (i = 1; i <= 1000; i++) printf "%d\trow %d ünïcødé\n", i, i }' > "$WORK/load.tsv"
router -D "$DB" --local-infile=1 -e "LOAD DATA LOCAL INFILE '$WORK/load.tsv' INTO TABLE cli_load CHARACTER SET utf8mb4" \
    2>"$WORK/load.err" || fail "LOAD DATA LOCAL INFILE through the router failed" "$(show "$WORK/load.err")"
q="SELECT COUNT(*), SUM(id), MD5(GROUP_CONCAT(v ORDER BY id SEPARATOR '|')) FROM cli_load"
via_router=$(router -D "$DB" -N -B -e "$q") || fail "counting cli_load through the router failed"
via_direct=$(direct -D "$DB" -N -B -e "$q") || fail "counting cli_load directly failed"
[[ ${via_direct%%$'\t'*} == 1000 ]] || fail "LOAD DATA LOCAL INFILE: direct COUNT(*) of cli_load is not 1000: $via_direct"
[[ $via_router == "$via_direct" ]] || fail "LOAD DATA: router says '$via_router', direct says '$via_direct'"
ok "LOAD DATA LOCAL INFILE of 1000 lines: COUNT(*), SUM(id) and content hash match"

# --- current database: COM_INIT_DB and reconnect ---------------------------------------------
out=$(router -N -B -e "USE $DB; SELECT DATABASE()") || fail "USE $DB (COM_INIT_DB) failed"
[[ $out == "$DB" ]] || fail "after USE $DB, SELECT DATABASE() returned '$out'"
out=$(router -N -B -e "SELECT DATABASE(); \\r $DB
SELECT DATABASE()") || fail "\\r $DB (reconnect with a database) failed"
[[ $out == "NULL"$'\n'"$DB" ]] || fail "\\r $DB: expected NULL then $DB, got: $out"
if router -N -B -e 'USE nosuchdb' >"$WORK/use.out" 2>"$WORK/use.err"; then
    fail "USE nosuchdb succeeded"
fi
grep -qE "ERROR 104[49] \(42000\)" "$WORK/use.err" || fail "USE nosuchdb: no 1044/1049" "$(show "$WORK/use.err")"
ok "USE $DB (COM_INIT_DB), \\r $DB (reconnect), USE nosuchdb -> 1044 (the app account's answer)"

# --- mariadb-admin ---------------------------------------------------------------------------
admin() {
    timeout "$CALL_TIMEOUT" mariadb-admin --no-defaults --protocol=TCP -h"$R_HOST" -P"$R_PORT" \
        -u"$APP_USER" -p"$APP_PASSWORD" --connect-timeout=10 "$@"
}
out=$(admin ping 2>&1) || fail "mariadb-admin ping through the router failed: $out"
[[ $out == "mysqld is alive" ]] || fail "mariadb-admin ping said: $out"
out=$(admin status 2>&1) || fail "mariadb-admin status (COM_STATISTICS) through the router failed: $out"
[[ $out =~ ^Uptime:\ [0-9]+\ +Threads:\ [0-9]+\ +Questions:\ [0-9]+ ]] \
    || fail "mariadb-admin status: unexpected answer: $out"
ok "mariadb-admin ping and status (COM_PING, COM_STATISTICS)"

# --- result sets byte for byte ---------------------------------------------------------------
same nulls -D "$DB" -B -e "SELECT 1 AS a, NULL AS b, '' AS c UNION ALL SELECT NULL, 'x', NULL UNION ALL SELECT 3, 'NULL', ' '"
expect_in nulls "$WORK/nulls.direct" $'1\tNULL\t'
same unicode -D "$DB" -B -e "SELECT 'héllo wörld — 日本語 — 🦀' AS u, CHAR_LENGTH('🦀') AS n, _utf8mb4'Ω' = 'Ω' AS eq"
expect_in unicode "$WORK/unicode.direct" '日本語 — 🦀'
same binary -D "$DB" -B -e "SELECT HEX(x'00ff7f80') AS h, HEX(CAST(UNHEX('DEADBEEF00') AS BINARY)) AS b; SELECT id, HEX(b) AS hb, LENGTH(b) AS n FROM cli_blob ORDER BY id"
expect_in binary "$WORK/binary.direct" $'1\t000102FF7F80\t6'
expect_in binary "$WORK/binary.direct" $'\t80000'
# Column definitions (-t: --column-type-info prints nothing in batch mode).
same coltypes -D "$DB" -t --column-type-info -e "SELECT 1 AS i, 1.5 AS d, 'a' AS s, CAST('2020-01-02 03:04:05.25' AS DATETIME(2)) AS dt, 1e10 AS f, x'00' AS bin, NULL AS n; SELECT id AS ident, b FROM cli_blob AS t WHERE id = 1"
expect_in coltypes "$WORK/coltypes.direct" "Type:       DATETIME"
expect_in coltypes "$WORK/coltypes.direct" "Org_table:  \`cli_blob\`"
same many_rows -D "$DB" -B -e 'SELECT seq, seq * seq, CONCAT("r", seq) FROM seq_1_to_20000'
[[ $(wc -l < "$WORK/many_rows.direct") == 20001 ]] || fail "many_rows: expected 20001 lines" "$(show "$WORK/many_rows.direct")"
ok "--batch and --column-type-info output identical: NULLs, unicode, binary/blobs via HEX, 20000 rows"

# A single 17 MiB value crosses the 16 MiB packet boundary (continuation packets).
same big -D "$DB" -N -B --max-allowed-packet=64M -e "SELECT REPEAT('abcdefgh', 17 * 131072) AS big, 'tail' AS t"
[[ $(wc -c < "$WORK/big.direct") -gt $((17 * 1024 * 1024)) ]] || fail "big: direct result is too short"
ok "17 MiB value (packet larger than 16 MiB) identical"

# The compressed protocol (--compress): the same answers, a 17 MiB one included.
same zbatch -D "$DB" --compress -B -e 'SELECT seq, REPEAT(CONCAT("r", seq), 20) FROM seq_1_to_5000; SELECT id, HEX(b) FROM cli_blob ORDER BY id'
[[ $(wc -l < "$WORK/zbatch.direct") -gt 5000 ]] || fail "zbatch: direct result is too short"
same zbig -D "$DB" --compress -N -B --max-allowed-packet=64M -e "SELECT REPEAT('abcdefgh', 17 * 131072) AS big, 'tail' AS t"
[[ $(wc -c < "$WORK/zbig.direct") -gt $((17 * 1024 * 1024)) ]] || fail "zbig: direct result is too short"
ok "--compress: 5000 rows and a 17 MiB value identical"

# --- TLS (the dev cluster's router serves the test CA's certificate) ----------------------------
if [[ -n ${DBR_TLS_CA:-} && ${DBR_TEST_DIRECT:-0} != 1 ]]; then
    router --ssl --ssl-ca="$DBR_TLS_CA" --ssl-verify-server-cert -D "$DB" -e status \
        > "$WORK/tls.out" 2> "$WORK/tls.err" || fail "TLS: the verified connection failed" "$(show "$WORK/tls.err")"
    grep -Eq "SSL:[[:space:]]+Cipher in use is" "$WORK/tls.out" || fail "TLS: the client reports no cipher" "$(show "$WORK/tls.out")"
    out=$(router --ssl --ssl-ca="$DBR_TLS_CA" --ssl-verify-server-cert -D "$DB" -N -B \
        -e "SELECT REPEAT('t', 100000) AS big, 42" | wc -c)
    [[ $out -gt 100000 ]] || fail "TLS: a 100 kB answer came back short ($out bytes)"
    ok "TLS: mariadb --ssl --ssl-verify-server-cert against the test CA, status shows the cipher, 100 kB answer"
    # A CA that did not sign the router's certificate: the client refuses the server.
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj "/CN=other CA" \
        -keyout "$WORK/other.key" -out "$WORK/other.pem" 2>/dev/null
    if router --ssl --ssl-ca="$WORK/other.pem" --ssl-verify-server-cert -e "SELECT 1" > /dev/null 2> "$WORK/tls-bad.err"; then
        fail "TLS: a certificate of another CA was accepted"
    fi
    grep -qiE "certificate|SSL|TLS" "$WORK/tls-bad.err" || fail "TLS: no certificate error" "$(show "$WORK/tls-bad.err")"
    ok "TLS: a client trusting another CA refuses the router's certificate"
fi

echo "# cli.sh: all $CHECKS checks passed"
