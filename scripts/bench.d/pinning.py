#!/usr/bin/env python3
"""Data for scripts/bench-pinning: N users with one row each in a sharded table, each
written directly on the master of the shard the ring places it on (the ring as
docs/sharding.md describes it, the same code as proto-tests/ring_reference.py), so that
every user is where dbrouter routes it before the ring changes.

Usage: pinning.py load --table T --users N --base B --shard NAME=HOST:PORT:WEIGHT ... \
                       --user U --password P --db D
"""
import argparse
import bisect
import struct
import sys

import pymysql
import xxhash

SEED = struct.unpack("<Q", b"dbrouter")[0]


def h(data: bytes) -> int:
    return xxhash.xxh3_64_intdigest(data, seed=SEED)


def build(shards):
    nodes = sorted((h(f"{name}#{i}".encode()), name) for name, weight in shards for i in range(weight))
    return [n[0] for n in nodes], [n[1] for n in nodes]


def lookup(ring, key: bytes) -> str:
    points, owners = ring
    return owners[bisect.bisect_left(points, h(key)) % len(points)]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("command", choices=["load"])
    ap.add_argument("--table", required=True)
    ap.add_argument("--users", type=int, required=True)
    ap.add_argument("--base", type=int, required=True)
    ap.add_argument("--shard", action="append", required=True, help="NAME=HOST:PORT:WEIGHT")
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--db", required=True)
    args = ap.parse_args()
    shards, addr = [], {}
    for s in args.shard:
        name, rest = s.split("=", 1)
        host, port, weight = rest.rsplit(":", 2)
        shards.append((name, int(weight)))
        addr[name] = (host, int(port))
    ring = build(shards)
    placed = {name: [] for name, _ in shards}
    for u in range(args.base, args.base + args.users):
        placed[lookup(ring, str(u).encode())].append(u)
    for name, users in placed.items():
        if not users:
            continue
        host, port = addr[name]
        conn = pymysql.connect(host=host, port=port, user=args.user, password=args.password,
                               database=args.db, autocommit=True)
        with conn.cursor() as cur:
            for i in range(0, len(users), 5000):
                chunk = users[i:i + 5000]
                cur.execute(f"INSERT INTO `{args.table}` (userid, seq) VALUES "
                            + ", ".join(f"({u}, 0)" for u in chunk))
        conn.close()
        print(f"{name}: {len(users)} user(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
