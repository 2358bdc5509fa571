#!/usr/bin/env python3
"""Helpers of scripts/bench-moves (online user moves and shard drains on the dev cluster).

Subcommands:
  config SRC DST --listen A --admin-listen B --table T --key K
      Writes the bench's private config: a copy of SRC with its own [server] listen and
      admin_listen (for the bench router) and, unless the [sharding] rules already make T
      sharded, a [[sharding.tables]] entry for it. Prints what it did.
  shards TOPOLOGY_JSON
      `dbrouter ctl topology show --json` -> one "name master weight" line per shard.
  load --host H --port P ... --stats OUT.json
      Background write load through a router: --clients threads, each inserting rows of its
      own user (autocommit, one row per INSERT, --rate statements/s each; 0 = unthrottled)
      until SIGTERM/SIGINT, then writes counts, errors and latencies to OUT.json. Needs PyMySQL.
  report --dir OUT [--doc docs/benchmarks.md]
      Reads what bench-moves left in OUT (moves.tsv, the ctl logs, drain.log, load-*.json,
      meta.env) and prints the Markdown section "## Moves" (also written to OUT/moves.md;
      with --doc, into that file, the rest of it untouched).
"""

import argparse
import json
import math
import os
import re
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


# --- config ------------------------------------------------------------------------------------

def cmd_config(args):
    import tomllib

    with open(args.src, "rb") as f:
        conf = tomllib.load(f)
    with open(args.src) as f:
        lines = f.read().split("\n")
    section = None
    seen = set()
    out = []
    for line in lines:
        m = re.match(r"\s*\[\[?\s*([A-Za-z0-9_.]+)\s*\]\]?\s*(#.*)?$", line)
        if m:
            section = m.group(1)
        key = re.match(r"\s*([A-Za-z0-9_]+)\s*=", line)
        if key and section == "server" and key.group(1) in ("listen", "admin_listen"):
            name = key.group(1)
            value = args.listen if name == "listen" else args.admin_listen
            line = f'{name} = "{value}"'
            seen.add(name)
        elif key and section == "topology" and key.group(1) == "router_id":
            line = 'router_id = "bench-moves"'
        out.append(line)
    if "listen" not in seen:
        sys.exit(f"{args.src}: no [server] listen to replace")
    sharding = conf.get("sharding", {})
    tables = sharding.get("tables", [])
    key_column = sharding.get("key_column", "userid")
    listed = next((t for t in tables if t.get("name", "").lower() == args.table.lower()), None)
    if listed is not None:
        if (listed.get("key") or key_column).lower() != args.key.lower():
            sys.exit(f"{args.src}: {args.table} is sharded by {listed.get('key') or key_column}, not {args.key}")
        what = f"{args.table} is listed in [sharding] already"
    elif args.table.lower() in (g.lower() for g in sharding.get("global_tables", [])):
        sys.exit(f"{args.src}: {args.table} is a global table there; pick another BENCH_TABLE")
    elif sharding.get("unlisted_tables") == "sharded" and key_column.lower() == args.key.lower():
        what = f"unlisted tables are sharded by {key_column}: nothing to add for {args.table}"
    else:
        while out and out[-1] == "":
            out.pop()
        out += ["", "# Added by scripts/bench-moves.", "[[sharding.tables]]",
                f'name = "{args.table}"', f'key = "{args.key}"']
        what = f"added [[sharding.tables]] name = \"{args.table}\", key = \"{args.key}\""
    with open(args.dst, "w") as f:
        f.write("\n".join(out).rstrip("\n") + "\n")
    print(what)


def cmd_shards(args):
    with open(args.json) as f:
        doc = json.load(f)
    for s in doc["topology"]["shards"]:
        print(s["name"], s["master"], s.get("weight", 0))


# --- load --------------------------------------------------------------------------------------

def cmd_load(args):
    import pymysql

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    lock = threading.Lock()
    lat = []            # seconds, every acknowledged statement
    slow = []           # [epoch ms at the start, ms] of statements slower than 100 ms
    errors = {}         # "code message" -> count
    connects = [0]
    started = time.monotonic()

    def client(i):
        user = int(args.users.split(",")[i]) if args.users else args.user_base + i
        seq = 0
        conn = None
        interval = 1.0 / args.rate if args.rate > 0 else 0.0
        next_at = time.monotonic()
        while not stop.is_set():
            if conn is None:
                try:
                    conn = pymysql.connect(host=args.host, port=args.port, user=args.user,
                                           password=args.password, database=args.db,
                                           autocommit=True, connect_timeout=10,
                                           read_timeout=60, write_timeout=60)
                    with lock:
                        connects[0] += 1
                except pymysql.MySQLError as e:
                    with lock:
                        k = f"connect: {e.args[0] if e.args else ''} {e.args[1] if len(e.args) > 1 else e}"
                        errors[k] = errors.get(k, 0) + 1
                    stop.wait(0.2)
                    continue
            seq += 1
            wall0 = time.time()
            t0 = time.monotonic()
            try:
                with conn.cursor() as cur:
                    cur.execute(f"INSERT INTO `{args.table}` (userid, seq, body) VALUES (%s, %s, %s)",
                                (user, seq, f"load {i} {seq}"))
                dt = time.monotonic() - t0
                with lock:
                    lat.append(dt)
                    if dt > 0.1 and len(slow) < 100000:
                        slow.append([int(wall0 * 1000), round(dt * 1000, 1)])
            except pymysql.MySQLError as e:
                code = e.args[0] if e.args else "?"
                msg = str(e.args[1] if len(e.args) > 1 else e)[:120]
                with lock:
                    errors[f"{code} {msg}"] = errors.get(f"{code} {msg}", 0) + 1
                try:
                    conn.close()
                except Exception:
                    pass
                conn = None
            if interval:
                next_at += interval
                delay = next_at - time.monotonic()
                if delay > 0:
                    stop.wait(delay)
                else:
                    next_at = time.monotonic()
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(args.clients)]
    for t in threads:
        t.start()
    while not stop.is_set():
        stop.wait(0.5)
    for t in threads:
        t.join(timeout=70)
    elapsed = time.monotonic() - started
    lat.sort()
    res = {
        "clients": args.clients,
        "rate_per_client": args.rate,
        "seconds": round(elapsed, 2),
        "statements": len(lat),
        "per_second": round(len(lat) / elapsed, 1) if elapsed > 0 else 0,
        "errors": errors,
        "connects": connects[0],
        "p50_ms": round(pct(lat, 50) * 1000, 2) if lat else None,
        "p99_ms": round(pct(lat, 99) * 1000, 2) if lat else None,
        "max_ms": round(lat[-1] * 1000, 2) if lat else None,
        "over_100ms": sum(1 for x in lat if x > 0.1),
        "slow": sorted(slow),
    }
    with open(args.stats, "w") as f:
        json.dump(res, f, indent=1)
    print(json.dumps({k: v for k, v in res.items() if k != "slow"}))


# --- report ------------------------------------------------------------------------------------

def pct(sorted_values, p):
    """Nearest-rank percentile of an ascending list (with n < 100, p99 is the maximum)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


STEP = re.compile(r"^(?P<name>.*) \((?P<ms>\d+) ms\)$")


def parse_move_log(path):
    """Step times and results of one `ctl user move` output (plus the `user moves` line that
    bench-moves appends)."""
    r = {"steps": {}, "error": None}
    with open(path, errors="replace") as f:
        text = f.read()
    for line in text.splitlines():
        line = line.strip()
        m = re.match(r"^user \S+ moved (\S+) -> (\S+): (\d+) row\(s\), statements held (\d+) ms$", line)
        if m:
            r["rows"] = int(m.group(3))
            r["hold_ms"] = int(m.group(4))
            continue
        m = re.match(r"^#moves: user\s+\S+\s+\S+\s+->\s+\S+\s+(\S+)\s+rows\s+(\d+)(?:\s+bytes\s+\d+)?\s+hold\s+(\S+)(?: ms)?\s+total\s+(\d+) ms", line)
        if m:
            r["state"] = m.group(1)
            r["total_ms"] = int(m.group(4))
            continue
        m = re.match(r"^#wall_ms: (\d+)$", line)
        if m:
            r["wall_ms"] = int(m.group(1))
            continue
        if line.startswith("error:"):
            r["error"] = line[len("error:"):].strip()
            continue
        m = STEP.match(line)
        if not m:
            continue
        name, ms = m.group("name"), int(m.group("ms"))
        if name == "check":
            r["steps"]["check"] = ms
        elif name.startswith("copy of"):
            r["steps"]["copy"] = ms
        elif name.startswith("hold (topology version"):
            r["steps"]["hold"] = ms
        elif name.startswith("acknowledged by every router"):
            r["steps"]["ack"] = ms
        elif name.startswith("catchup:"):
            r["steps"]["catchup"] = ms
            cm = re.match(r"catchup: (\d+) table", name)
            r["recopied"] = int(cm.group(1)) if cm else None
        elif name.startswith("cleanup:"):
            r["steps"]["cleanup"] = ms
    return r


def rest_of_hold(m):
    """Hold time not spent in the acknowledgement or catch-up steps."""
    if m.get("hold_ms") is None or "ack" not in m["steps"] or "catchup" not in m["steps"]:
        return None
    return m["hold_ms"] - m["steps"]["ack"] - m["steps"]["catchup"]


def windows(m):
    """(label, start ms, end ms) of the parts of one move, in epoch ms, from the ctl
    process's start and end and the step times it printed: the clean-up ends at the exit,
    the hold ends where the clean-up begins; copy and the hold's write come before it."""
    try:
        start, end = int(m["start_ms"]), int(m["end_ms"])
    except (KeyError, ValueError):
        return []
    st = m["steps"]
    size = f"{fmt(int(m['size']))}-row move"
    out = []
    cleanup_start = end - st.get("cleanup", 0)
    hold = m.get("hold_ms")
    if hold is not None:
        hold_start = cleanup_start - hold
        out.append((f"{size}, clean-up", cleanup_start, end))
        out.append((f"{size}, hold", hold_start, cleanup_start))
        copy_start = hold_start - st.get("hold", 0) - st.get("copy", 0)
        out.append((f"{size}, copy", copy_start, hold_start - st.get("hold", 0)))
    out.append((f"{size}, rest (start-up, checks, ZooKeeper)", start, end))
    return out


def attribute(slow, moves):
    """Counts slow statements per move part (first matching window) or 'between moves'."""
    wins = [w for m in moves for w in windows(m)]
    counts = {}
    for at, ms in slow:
        label = next((lab for lab, a, b in wins if a - 10 <= at <= b + 10), "between moves")
        n, mx = counts.get(label, (0, 0))
        counts[label] = (n + 1, max(mx, ms))
    return sorted(counts.items(), key=lambda kv: -kv[1][0])


def busy(meta):
    """A warning when the host's load average was above its core count at the start."""
    try:
        load1 = float(meta.get("LOADAVG", "").split()[0])
        cores = int(meta.get("MACHINE", "").split()[0])
    except (ValueError, IndexError):
        return ""
    if load1 <= cores:
        return ""
    return (" — above the core count: other work shared the host (the cluster, the mover and "
            "the load all run on it too), so compare medians, and runs made side by side")


def read_env(path):
    meta = {}
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                if "=" in line:
                    k, v = line.rstrip("\n").split("=", 1)
                    meta[k] = v
    return meta


def fmt(v, digits=0):
    if v is None:
        return "–"
    if isinstance(v, float) and digits:
        return f"{v:,.{digits}f}".replace(",", " ")
    return f"{int(round(v)):,}".replace(",", " ")


def stats(values):
    v = sorted(x for x in values if x is not None)
    if not v:
        return None, None, 0
    return pct(v, 50), pct(v, 99), len(v)


def cmd_report(args):
    d = args.dir
    meta = read_env(os.path.join(d, "meta.env"))
    moves = []
    tsv = os.path.join(d, "moves.tsv")
    if os.path.exists(tsv):
        with open(tsv) as f:
            header = f.readline().rstrip("\n").split("\t")
            for line in f:
                row = dict(zip(header, line.rstrip("\n").split("\t")))
                row.update(parse_move_log(os.path.join(d, row["log"])))
                moves.append(row)
    loads = {}
    for mode in ("idle", "load", "drain"):
        p = os.path.join(d, f"load-{mode}.json")
        if os.path.exists(p):
            with open(p) as f:
                loads[mode] = json.load(f)

    md = ["## Moves", ""]
    md += [
        "`scripts/bench-moves` measures online user moves on the dev cluster "
        "([moves.md](moves.md)): one user per size is moved back and forth between the two "
        "shards with `dbrouter ctl user move` (its rows created directly on the master that "
        "serves it, in a table `bench_moves (userid, seq, body VARCHAR(200), PRIMARY KEY(userid, seq))` "
        "made sharded by the bench's private copy of the cluster's config), idle and then "
        "under a background write load on *other* users; then a shard with many small users "
        "is drained with `dbrouter ctl shard drain`. Helpers: `scripts/bench.d/moves.py`.",
        "",
        "```sh",
        meta.get("COMMAND", "scripts/bench-moves"),
        "```",
        "",
        f"Measured {meta.get('DATE', '?')} on {meta.get('MACHINE', '?')}; load average "
        f"{meta.get('LOADAVG', '?')} at the start{busy(meta)}. dbrouter: "
        f"{meta.get('DBROUTER_BUILD', '?')}; {meta.get('MARIADB', '')}.",
        "",
        f"Set-up: {meta.get('SETUP', '')}",
        "",
    ]

    if moves:
        md += [
            "### Single-user moves",
            "",
            "*hold* = what the mover reports as statements held (from its write of the hold to "
            "the topology until the flip is written: routers' acknowledgement, the wait for "
            "transactions open on the source, catch-up and verification); *total* = the sum of "
            "the move's recorded step times (`ctl user moves`); *wall* = the `ctl user move` "
            "process from start to exit (plus start-up, ZooKeeper session, lock and the "
            "definition checks). Step columns are medians: *copy* (consistent read + insert on "
            "the target), *ack* (every router acknowledged the hold: it applied that topology "
            "version, its statements routed with an older one finished, and its transactions "
            "open on the source since before the hold ended), *catch-up* (both sides' checksums at once; a table that differs is "
            "copied again and checked again), *rest of hold* (hold − ack − catch-up: the mover's ZooKeeper writes of its "
            "step records and its reads of the topology, routers and leases before the flip), "
            "*clean-up* (the source's rows deleted, after the flip). With fewer than 100 moves per row the p99 column is the maximum "
            "(nearest rank).",
            "",
            "| load | rows per user | moves ok | hold p50 ms | hold p99/max ms | total p50 ms | "
            "total p99/max ms | wall p50 ms | wall p99/max ms | copy ms | ack ms | catch-up ms | "
            "rest of hold ms | clean-up ms | failed |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        keys = []
        for m in moves:
            k = (m["mode"], int(m["size"]))
            if k not in keys:
                keys.append(k)
        for mode, size in keys:
            group = [m for m in moves if m["mode"] == mode and int(m["size"]) == size]
            ok = [m for m in group if m.get("rc") == "0" and m.get("hold_ms") is not None]
            failed = [m for m in group if m not in ok]
            h50, h99, _ = stats(m.get("hold_ms") for m in ok)
            t50, t99, _ = stats(m.get("total_ms") for m in ok)
            w50, w99, _ = stats(m.get("wall_ms") for m in ok)
            step = {s: stats(m["steps"].get(s) for m in ok)[0]
                    for s in ("copy", "ack", "catchup", "cleanup")}
            step["other"] = stats(rest_of_hold(m) for m in ok)[0]
            fail_text = "none" if not failed else "; ".join(
                (m.get("error") or f"exit {m.get('rc')}")[:160] for m in failed)
            label = "idle" if mode == "idle" else "under load"
            md.append(
                f"| {label} | {fmt(size)} | {len(ok)} of {len(group)} | {fmt(h50)} | {fmt(h99)} | "
                f"{fmt(t50)} | {fmt(t99)} | {fmt(w50)} | {fmt(w99)} | {fmt(step['copy'])} | "
                f"{fmt(step['ack'])} | {fmt(step['catchup'])} | {fmt(step['other'])} | {fmt(step['cleanup'])} | {fail_text} |")
        md.append("")
        md += ["Every move, in order (ms; hold = ack + catch-up + rest, then / total):", ""]
        for mode, size in keys:
            group = [m for m in moves if m["mode"] == mode and int(m["size"]) == size]
            parts = []
            for m in group:
                if m.get("hold_ms") is None:
                    parts.append("failed")
                else:
                    parts.append(f"{m['hold_ms']} = {m['steps'].get('ack', '?')} + "
                                 f"{m['steps'].get('catchup', '?')} + {rest_of_hold(m)} / "
                                 f"{m.get('total_ms', '?')}")
            label = "idle" if mode == "idle" else "under load"
            md.append(f"- {label}, {fmt(size)} rows: " + ", ".join(parts))
        md.append("")

    if loads:
        md += [
            "### Background load",
            "",
            "Through the bench's router (`scripts/bench.d/moves.py load`): each client inserts rows of "
            "its own user (never a moved one) into `bench_moves`, one autocommit INSERT per "
            "statement, at a fixed rate; latency per acknowledged INSERT over the whole phase. "
            "The idle phase ran without it.",
            "",
            "| phase | clients | rate per client | seconds | INSERTs | per s | p50 ms | p99 ms | max ms | > 100 ms | errors |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for mode, r in loads.items():
            errs = "none" if not r["errors"] else "; ".join(f"{n} × {k}" for k, n in r["errors"].items())
            rate = "unthrottled" if not r["rate_per_client"] else f"{r['rate_per_client']}/s"
            phase = {"idle": "moves idle", "load": "moves under load", "drain": "drain"}[mode]
            md.append(
                f"| {phase} | {r['clients']} | {rate} | "
                f"{r['seconds']} | {fmt(r['statements'])} | {r['per_second']} | {r['p50_ms']} | "
                f"{r['p99_ms']} | {r['max_ms']} | {r['over_100ms']} | {errs} |")
        md.append("")
        for mode, r in loads.items():
            if mode == "drain":
                slow = r.get("slow", [])
                if slow:
                    md.append(f"INSERTs slower than 100 ms during the drain: {len(slow)} (max "
                              f"{max(ms for _, ms in slow):.0f} ms).")
                    md.append("")
                continue
            where = attribute(r.get("slow", []), [m for m in moves if m["mode"] == mode])
            if where:
                md.append("INSERTs slower than 100 ms, by what the mover was doing when they started "
                          "(step windows reconstructed from the ctl process's start and end and its "
                          "step times, ±10 ms): " + "; ".join(
                              f"{what}: {n} (max {mx:.0f} ms)" for what, (n, mx) in where) + ".")
                md.append("")

    drain_log = os.path.join(d, "drain.log")
    if os.path.exists(drain_log):
        with open(drain_log, errors="replace") as f:
            text = f.read()
        held = [int(x) for x in re.findall(r"^\[\d+/\d+\] user \S+ -> \S+: \d+ row\(s\), held (\d+) ms", text, re.M)]
        reasons = re.findall(r"^\[\d+/\d+\] user \S+ -> \S+: FAILED: (.*)$", text, re.M)
        failed = len(reasons)
        by_reason = {}
        for why in reasons:
            why = re.sub(r"user \d+", "user U", why)
            by_reason[why] = by_reason.get(why, 0) + 1
        m = re.search(r"drained (\S+): (\d+) of (\d+) user\(s\) moved in ([\d.]+) s", text)
        wall = re.search(r"^#wall_ms: (\d+)$", text, re.M)
        pin = re.search(r"^pinned (\d+) user", text, re.M)
        h50, h99, _ = stats(held)
        md += [
            "### Drain",
            "",
            f"{meta.get('DRAIN_USERS', '?')} users with {meta.get('DRAIN_ROWS', '?')} rows each, all on "
            f"{meta.get('DRAIN_SHARD', '?')}, drained with `dbrouter ctl shard drain "
            f"{meta.get('DRAIN_SHARD', '?')} --parallel {meta.get('DRAIN_PARALLEL', '?')}` "
            + ("(under the background load above, on users of the other shard: its *drain* row "
               "is the drain's effect on other users). " if meta.get("DRAIN_LOAD") else
               "(no background load). ")
            + "*drain s* is the drain's own figure (from the first move to the "
            "last); *wall s* is the whole command, including setting the weight to 0 (which "
            "first pins the shard's users where their rows are) and the scan for its users.",
            "",
            "| shard | users × rows | parallel | moved | drain s | users/s | wall s | hold p50 ms | hold p99 ms | hold max ms | holds ≥ 1 s | failed |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        if m:
            moved, total, secs = int(m.group(2)), int(m.group(3)), float(m.group(4))
            rate = moved / secs if secs > 0 else 0
            md.append(
                f"| {m.group(1)} | {meta.get('DRAIN_USERS', '?')} × {meta.get('DRAIN_ROWS', '?')} | "
                f"{meta.get('DRAIN_PARALLEL', '?')} | {moved} of {total} | {secs:.1f} | **{rate:.1f}** | "
                f"{int(wall.group(1)) / 1000 if wall else 0:.1f} | {fmt(h50)} | {fmt(h99)} | "
                f"{fmt(max(held) if held else None)} | {sum(1 for h in held if h >= 1000)} | {failed} |")
        else:
            last = [l for l in text.splitlines() if l.strip()][-3:]
            md.append(f"| {meta.get('DRAIN_SHARD', '?')} | – | – | – | – | – | – | – | – | – | – | "
                      f"no summary: {' / '.join(last)[:300]} |")
        if pin:
            md += ["", f"The weight step pinned {pin.group(1)} user(s) to {meta.get('DRAIN_SHARD', '?')} first."]
        if by_reason:
            md += ["", "Failed moves (rolled back; a second drain would retry them): " + "; ".join(
                f"{n} × {why}" for why, n in by_reason.items()) + "."]
        md.append("")

    if moves:
        md += ["### Reading these numbers", ""]
        ok = [m for m in moves if m.get("hold_ms") is not None]
        for mode in ("idle", "load"):
            grp = [m for m in ok if m["mode"] == mode]
            if not grp:
                continue
            hold = sum(m["hold_ms"] for m in grp)
            ack = sum(m["steps"].get("ack", 0) for m in grp)
            catchup = sum(m["steps"].get("catchup", 0) for m in grp)
            recopied = sum(1 for m in grp if m.get("recopied"))
            label = "idle" if mode == "idle" else "under load"
            md.append(
                f"- {label.capitalize()}: of all hold time, {100 * ack / hold:.0f} % was the acknowledgement "
                f"step (routers applying the hold, their older transactions ending) and {100 * catchup / hold:.0f} % "
                f"the catch-up and verification; {recopied} of {len(grp)} moves found a table "
                f"that differed (mended row by row, or copied again).")
        md.append("- Only the moved user is held: the background load's latency (table above) is that "
                  "of other users' writes during the same moves.")
        md.append("")
    text = "\n".join(md).rstrip("\n") + "\n"
    with open(os.path.join(d, "moves.md"), "w") as f:
        f.write(text)
    print(text)
    if args.doc:
        from report import replace_section
        replace_section(args.doc, "Moves", text)
        print(f"moves: updated section '## Moves' of {args.doc}", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("config")
    c.add_argument("src")
    c.add_argument("dst")
    c.add_argument("--listen", required=True)
    c.add_argument("--admin-listen", required=True)
    c.add_argument("--table", default="bench_moves")
    c.add_argument("--key", default="userid")
    s = sub.add_parser("shards")
    s.add_argument("json")
    lo = sub.add_parser("load")
    lo.add_argument("--host", required=True)
    lo.add_argument("--port", type=int, required=True)
    lo.add_argument("--user", required=True)
    lo.add_argument("--password", required=True)
    lo.add_argument("--db", required=True)
    lo.add_argument("--table", default="bench_moves")
    lo.add_argument("--clients", type=int, default=4)
    lo.add_argument("--rate", type=float, default=100, help="statements/s per client (0 = unthrottled)")
    lo.add_argument("--user-base", type=int, required=True)
    lo.add_argument("--users", help="comma-separated user ids, one per client (instead of --user-base)")
    lo.add_argument("--stats", required=True)
    r = sub.add_parser("report")
    r.add_argument("--dir", required=True)
    r.add_argument("--doc")
    args = ap.parse_args()
    return {"config": cmd_config, "shards": cmd_shards, "load": cmd_load, "report": cmd_report}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main() or 0)
