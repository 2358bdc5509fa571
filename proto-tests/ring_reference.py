#!/usr/bin/env python3
"""An independent reimplementation of dbrouter's consistent-hash ring (docs/sharding.md),
checked against the golden vectors in testdata/ring_v1.tsv. If this passes, another
program can reproduce dbrouter's placement from the documentation alone.

Needs Debian's python3-xxhash (installed by scripts/dev-cluster).
"""
import bisect
import os
import struct
import sys

import xxhash

SEED = struct.unpack("<Q", b"dbrouter")[0]
SHARDS = [("alpha", 100), ("beta", 200), ("gamma", 300), ("empty", 0)]


def h(data: bytes) -> int:
    return xxhash.xxh3_64_intdigest(data, seed=SEED)


def build(shards):
    nodes = []
    for name, weight in shards:
        for i in range(weight):
            nodes.append((h(f"{name}#{i}".encode()), name))
    nodes.sort()  # by position, then shard name
    return [n[0] for n in nodes], [n[1] for n in nodes]


def lookup(ring, key: bytes) -> str:
    points, owners = ring
    i = bisect.bisect_left(points, h(key))
    return owners[i % len(points)]


def main() -> int:
    ring = build(SHARDS)
    path = os.path.join(os.path.dirname(__file__), "..", "testdata", "ring_v1.tsv")
    passed = failed = 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("#"):
                continue
            key, shard = line.rstrip("\n").split("\t")
            got = lookup(ring, key.encode())
            if got == shard:
                passed += 1
            else:
                failed += 1
                print(f"MISMATCH key={key!r}: reference says {got}, golden file says {shard}")
    if passed < 400:
        print(f"only {passed} vectors read from {path}")
        failed += 1
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
