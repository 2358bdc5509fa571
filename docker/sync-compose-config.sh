#!/usr/bin/env bash
# docker/sync-compose-config.sh — writes config/dbrouter.compose.toml from config/dbrouter.toml.
#
# The compose copy differs only where the container network demands it:
#   [server] listen 127.0.0.1:6033  -> 0.0.0.0:6033 (reachable from the published port)
#   [server] admin_listen 127.0.0.1:6034 -> 0.0.0.0:6034 (published on the host's loopback only)
#   127.0.0.1:3311/3312/3321/3322   -> shard1-master:3306, shard1-standby:3306, shard2-master:3306,
#                                      shard2-standby:3306 (docker-compose.yml service names)
#   127.0.0.1:2181                  -> zoo1:2181,zoo2:2181,zoo3:2181 (the three-node ensemble)
# and its header says where it comes from. Run it after every change of config/dbrouter.toml.
#
# Usage: docker/sync-compose-config.sh [--check]
#   --check   write nothing; exit 1 (with a diff) when the compose copy is out of date.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SRC=$REPO/config/dbrouter.toml
DST=$REPO/config/dbrouter.compose.toml

render() {
    cat <<'EOF'
# dbrouter configuration for docker-compose.yml (mounted as /etc/dbrouter/dbrouter.toml and
# baked into the image built by the Dockerfile).
#
# GENERATED from config/dbrouter.toml by docker/sync-compose-config.sh: keep the two in step
# (edit config/dbrouter.toml, then run the script). Only the addresses differ: inside the
# compose network the servers are reached by service name on port 3306 (the host-side ports
# are the dev-cluster ones) and dbrouter listens on every interface of its container.
# The reference for every field is docs/configuration.md.
EOF
    # Drop the source's leading comment block (it describes the dev-cluster copy), keep the rest.
    awk 'started || !/^#/ { started = 1; print }' "$SRC" | perl -pe '
        s/"127\.0\.0\.1:6033"/"0.0.0.0:6033"/g;
        s/"127\.0\.0\.1:6034"/"0.0.0.0:6034"/g;
        s/127\.0\.0\.1:3311\b/shard1-master:3306/g;
        s/127\.0\.0\.1:3312\b/shard1-standby:3306/g;
        s/127\.0\.0\.1:3321\b/shard2-master:3306/g;
        s/127\.0\.0\.1:3322\b/shard2-standby:3306/g;
        s/127\.0\.0\.1:2181\b/zoo1:2181,zoo2:2181,zoo3:2181/g;
        s/\(created by scripts\/dev-cluster\)/(created by docker\/init\/accounts.sql)/g;
    '
}

out=$(render)
if grep -n '127\.0\.0\.1' <<<"$out" >&2; then
    echo "sync-compose-config: the lines above still name 127.0.0.1: teach this script the new address" >&2
    exit 1
fi
if [[ ${1:-} == --check ]]; then
    if ! diff -u "$DST" - <<<"$out"; then
        echo "sync-compose-config: $DST is out of date; run docker/sync-compose-config.sh" >&2
        exit 1
    fi
    exit 0
fi
printf '%s\n' "$out" > "$DST.tmp"
mv -f "$DST.tmp" "$DST"
echo "sync-compose-config: wrote $DST"
