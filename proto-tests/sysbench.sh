#!/usr/bin/env bash
# proto-tests/sysbench.sh — a short sysbench oltp_read_write through dbrouter, once with
# server-side prepared statements (--db-ps-mode=auto) and once with plain text queries
# (--db-ps-mode=disable): prepare, run, cleanup. Fails when sysbench exits non-zero (any error
# outside its ignore list is fatal to it), reports a reconnect, an ignored error other than a
# deadlock, too many deadlocks, or completes no transaction.
#
# Why deadlocks are tolerated: 4 threads on 2 x 1000 rows of oltp_read_write deadlock now and then
# against bare MariaDB too (about 0.3% of transactions here); sysbench retries them (error 1213 is
# in its default --mysql-ignore-errors). Each ignored error is logged (--verbosity=5) and checked:
# only 1213 is accepted, and at most 1 per 20 transactions.
#
# Needs DBR_ROUTER (host:port) from `eval "$(scripts/dev-cluster env)"`; user DBR_APP_USER /
# DBR_APP_PASSWORD (default app / app-secret), database DBR_APP_DB (default app).
# DBR_SYSBENCH_TIME (default 10) sets the seconds of each run.
set -euo pipefail

: "${DBR_ROUTER:?DBR_ROUTER is not set: run through scripts/test or eval \"\$(scripts/dev-cluster env)\"}"
HOST=${DBR_ROUTER%:*} PORT=${DBR_ROUTER##*:}
SECONDS_PER_RUN=${DBR_SYSBENCH_TIME:-10}

command -v sysbench >/dev/null || { echo "FAIL - sysbench is not installed (scripts/dev-cluster up installs it)" >&2; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/dbr-sysbench.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

fail() {
    printf 'FAIL - %s\n' "$1" >&2
    if [[ -n ${2:-} && -s $2 ]]; then
        printf -- '--- last lines of sysbench output:\n' >&2
        tail -n 40 "$2" >&2
    fi
    exit 1
}

# sb MODE COMMAND: one sysbench step, output in $WORK/MODE-COMMAND.log; bounded in time.
sb() {
    local mode=$1 command=$2
    timeout $((SECONDS_PER_RUN + 120)) sysbench oltp_read_write \
        --db-driver=mysql --mysql-host="$HOST" --mysql-port="$PORT" \
        --mysql-user="${DBR_APP_USER:-app}" --mysql-password="${DBR_APP_PASSWORD:-app-secret}" \
        --mysql-db="${DBR_APP_DB:-app}" \
        --tables=2 --table-size=1000 --threads=4 --time="$SECONDS_PER_RUN" --events=0 \
        --db-ps-mode="$mode" --rand-seed=1 --verbosity=5 \
        "$command" >"$WORK/$mode-$command.log" 2>&1
}

# stat LOG LABEL: the count on sysbench's "LABEL:  N  (x per sec.)" line.
stat() {
    awk -v label="$2:" '{ line = $0; sub(/^[ \t]+/, "", line) }
        index(line, label) == 1 { n = substr(line, length(label) + 1); sub(/^[ \t]+/, "", n); sub(/[ \t].*/, "", n); print n; exit }' "$1"
}

echo "# sysbench.sh: oltp_read_write through $DBR_ROUTER, 2 tables x 1000 rows, 4 threads, ${SECONDS_PER_RUN}s per mode"
for mode in auto disable; do
    # Leftovers of an interrupted earlier run would make `prepare` fail.
    sb "$mode" cleanup || true
    sb "$mode" prepare || fail "[$mode] sysbench prepare failed (exit $?)" "$WORK/$mode-prepare.log"
    sb "$mode" run || fail "[$mode] sysbench run failed (exit $?)" "$WORK/$mode-run.log"
    log=$WORK/$mode-run.log
    tx=$(stat "$log" transactions)
    queries=$(stat "$log" queries)
    errors=$(stat "$log" "ignored errors")
    reconnects=$(stat "$log" reconnects)
    [[ $tx =~ ^[0-9]+$ && $errors =~ ^[0-9]+$ && $reconnects =~ ^[0-9]+$ ]] \
        || fail "[$mode] cannot read transactions/ignored errors/reconnects from sysbench's report" "$log"
    # sysbench folds repeats into "(last message repeated N times)": count through those.
    read -r deadlocks others < <(awk '
        /^DEBUG: Ignoring error / { last = ($4 == "1213") ? "d" : "o"; n[last]++; next }
        /^\(last message repeated [0-9]+ times\)$/ { if (last != "") n[last] += $4; next }
        { last = "" }
        END { print n["d"] + 0, n["o"] + 0 }' "$log")
    (( tx > 0 )) || fail "[$mode] zero transactions" "$log"
    (( reconnects == 0 )) || fail "[$mode] sysbench reported $reconnects reconnects" "$log"
    if (( others > 0 )); then
        fail "[$mode] sysbench ignored $others errors other than deadlocks: $(grep '^DEBUG: Ignoring error ' "$log" | grep -v ' 1213 ' | sort | uniq -c | head -n 5)" "$log"
    fi
    (( errors == deadlocks )) || fail "[$mode] sysbench counted $errors ignored errors but logged $deadlocks deadlocks" "$log"
    (( deadlocks * 20 <= tx )) || fail "[$mode] $deadlocks deadlocks in $tx transactions (more than 1 in 20)" "$log"
    sb "$mode" cleanup || fail "[$mode] sysbench cleanup failed (exit $?)" "$WORK/$mode-cleanup.log"
    printf 'ok   - db-ps-mode=%s: %s transactions (%s/s), %s queries, %s deadlocks (retried by sysbench), no other errors, 0 reconnects\n' \
        "$mode" "$tx" "$(awk '/transactions:/ { gsub(/[()]/, "", $3); print $3; exit }' "$log")" "$queries" "$deadlocks"
done
echo "# sysbench.sh: passed"
