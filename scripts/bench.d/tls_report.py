#!/usr/bin/env python3
"""Report of scripts/bench-tls: medians over repeats per (target, threads), TLS/plain ratios
per setup (direct, haproxy, dbrouter), how TLS was checked on each path, the HAProxy probe,
and the section "## TLS cost" of docs/benchmarks.md (placed after "## Connection scale").

    tls_report.py --tsv RESULTS.tsv --meta META.env [--checks CHECKS.tsv] --out-dir DIR [--doc docs/benchmarks.md]

RESULTS.tsv has one row per run (scripts/bench.d/run_one.py's columns); META.env holds
KEY=VALUE lines written by scripts/bench-tls; CHECKS.tsv one row per target (target,
client_cipher, server_cipher, server_ssl_accepts). The hand-written subsections
"### Reading these numbers" and "### Analysis" of an existing section are kept.
"""
import argparse
import csv
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import f0, f2, fratio, load, med, num, ratio, read_meta, replace_section, spread  # noqa: E402

TITLE = "TLS cost"
AFTER = "Connection scale"  # the section goes right after this one
KEEP = ("Reading these numbers", "Analysis")
SETUPS = ["direct", "haproxy", "dbrouter"]
TARGETS = ["direct", "direct-tls", "haproxy", "haproxy-tls", "dbrouter", "dbrouter-tls"]
PATH = {
    "direct": ("sysbench → MariaDB", "–"),
    "direct-tls": ("sysbench → MariaDB", "MariaDB"),
    "haproxy": ("sysbench → HAProxy (`mode tcp`) → MariaDB", "–"),
    "haproxy-tls": ("sysbench → HAProxy (`mode tcp`, TLS passed through) → MariaDB", "MariaDB"),
    "dbrouter": ("sysbench → dbrouter → MariaDB", "–"),
    "dbrouter-tls": ("sysbench → dbrouter → MariaDB (clear text)", "dbrouter"),
}


def f1(v):
    return "–" if v is None else f"{v:.1f}"


def fdelta(v):
    return "–" if v is None else f"{v:+.1f}"


def sub(a, b):
    return None if a is None or b is None else a - b


def rank(t):
    return TARGETS.index(t) if t in TARGETS else 99


def aggregate(rows):
    """{(target, threads): medians} over the ok runs."""
    groups = {}
    for r in rows:
        groups.setdefault((r["target"], int(r["threads"])), []).append(r)
    agg = {}
    for key, rs in groups.items():
        ok = [r for r in rs if r["status"] == "ok"]
        both = [num(r["proxy_cpu_us_per_query"] or 0) + num(r["server_cpu_us_per_query"])
                for r in ok if num(r["server_cpu_us_per_query"]) is not None]
        agg[key] = {
            "runs": len(rs),
            "ok": len(ok),
            "qps": med(num(r["qps"]) for r in ok),
            "qps_by_repeat": {int(r["repeat"]): num(r["qps"]) for r in ok},
            "cpu_by_repeat": {int(r["repeat"]): num(r["proxy_cpu_us_per_query"]) for r in ok},
            "srv_by_repeat": {int(r["repeat"]): num(r["server_cpu_us_per_query"]) for r in ok},
            "qps_spread": spread([num(r["qps"]) for r in ok]),
            "p50": med(num(r["p50_us"]) for r in ok),
            "p99": med(num(r["p99_us"]) for r in ok),
            "cpu": med(num(r["proxy_cpu_us_per_query"]) for r in ok),
            "server_cpu": med(num(r["server_cpu_us_per_query"]) for r in ok),
            "both_cpu": med(both),
            "client_cpu": med(num(r["sysbench_cpu_s"]) / num(r["queries"]) * 1e6 for r in ok
                              if num(r["sysbench_cpu_s"]) is not None and num(r["queries"])),
            "host_cpu": med(num(r["host_busy_s"]) / num(r["queries"]) * 1e6 for r in ok
                            if num(r["host_busy_s"]) is not None and num(r["queries"])),
            "ssl_accepts": med(num(r.get("server_ssl_accepts")) for r in ok),
            "errors": sum(int(num(r["ignored_errors"]) or 0) for r in ok),
        }
    return agg


def paired(a, b):
    """Ratios a/b per repeat present in both."""
    return [a[k] / b[k] for k in sorted(a) if k in b and a[k] is not None and b[k]]


def build(rows, meta, checks):
    agg = aggregate(rows)
    threads = sorted({k[1] for k in agg})
    targets = sorted({k[0] for k in agg}, key=rank)
    repeats = meta.get("BENCH_REPEAT", "?")
    ok_rows = [r for r in rows if r["status"] == "ok"]
    failed = [r for r in rows if r["status"] != "ok"]

    md = [f"## {TITLE}", ""]
    md.append("What TLS on the client side costs, measured by `scripts/bench-tls` in **one run**: "
              "sysbench `oltp_point_select` with and without TLS, straight to MariaDB, through an HAProxy "
              "TCP relay and through dbrouter. For each thread count and repeat the six targets run one "
              "after the other (their order rotated from repeat to repeat), so machine noise hits them "
              "alike; the tables show the median over the repeats. CPU per query is the process's user + "
              "system time (`/proc/<pid>/stat`) over the whole sysbench run (TLS handshakes and login "
              "included, a few per run) divided by the queries; MariaDB is shard1's master, the only "
              "server these queries reach.")
    md.append("")
    md.append(f"* Command: `{meta.get('COMMAND', 'scripts/bench-tls')}`, {meta.get('DATE', '?')}, "
              f"{meta.get('ELAPSED', '?')}")
    md.append(f"* Machine: {meta.get('MACHINE', '?')}; load average (1/5/15 min) {meta.get('LOADAVG_START', '?')} "
              f"at the start, {meta.get('LOADAVG_END', '?')} at the end")
    md.append(f"* {meta.get('VERSIONS', '?')}; dbrouter {meta.get('DBROUTER_BUILD', '?')}")
    md.append(f"* Each run: {meta.get('BENCH_TIME', '?')} s, {meta.get('BENCH_TABLES', '?')} tables × "
              f"{meta.get('BENCH_TABLE_SIZE', '?')} rows, threads {meta.get('BENCH_THREADS', '?')}, "
              f"{repeats} repeat{'s' if repeats != '1' else ''}")
    md.append(f"* TLS: TLS 1.2/1.3 offered by both servers (MariaDB {meta.get('MARIADB_TLS', '?')}; dbrouter "
              f"`[server.tls]` {meta.get('ROUTER_TLS', '?')}), an ECDSA P-256 certificate of the dev cluster's "
              "test CA; sysbench 1.0 `--mysql-ssl=on` with the test CA as `cacert.pem` (it verifies the chain) "
              "and a client certificate of the same CA")
    if meta.get("NOTE"):
        md.append(f"* Note: {meta['NOTE']}")
    md.append("")

    md.append("| target | path | TLS terminated by |")
    md.append("|---|---|---|")
    for t in targets:
        p, term = PATH.get(t, ("?", "?"))
        if t.startswith("dbrouter") and checks.get(t, {}).get("server_cipher"):
            # [backend.tls]: dbrouter's own connections to MariaDB are TLS too.
            p = "sysbench → dbrouter → MariaDB (TLS, `[backend.tls]`)"
            term = "dbrouter; MariaDB for dbrouter's connections" if t.endswith("-tls") else "MariaDB (dbrouter's connections)"
        md.append(f"| {t} | {p} | {term} |")
    md.append("")

    md.append(f"### Results (median over {repeats} repeat{'s' if repeats != '1' else ''})")
    md.append("")
    md.append("Also the client's side (sysbench's own CPU, its TLS included) and the whole host's busy time "
              "per query (every process, this benchmark's and others'): on 2 cores, the QPS of a saturated run "
              "follows the whole host's CPU per query.")
    md.append("")
    md.append("| target | threads | QPS | p50 µs | p99 µs | proxy CPU µs/query | mariadbd CPU µs/query "
              "| proxy + mariadbd µs/query | sysbench µs/query | host µs/query | runs ok |")
    md.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in threads:
        for t in targets:
            a = agg.get((t, n))
            if not a:
                continue
            proxy = "–" if t.startswith("direct") else f2(a["cpu"])
            md.append(f"| {t} | {n} | {f0(a['qps'])} | {f0(a['p50'])} | {f0(a['p99'])} | {proxy} "
                      f"| {f2(a['server_cpu'])} | {f2(a['both_cpu'])} | {f1(a['client_cpu'])} | {f1(a['host_cpu'])} "
                      f"| {a['ok']}/{a['runs']} |")
    md.append("")

    md.append("### TLS / plain")
    md.append("")
    md.append("Ratios of the medians above (TLS target over its plain twin; QPS below 1× and CPU above 1× is "
              "what TLS costs), the QPS ratio in each repeat (runs of the same repeat ran back to back), and "
              "the CPU added per query in µs.")
    md.append("")
    md.append("| setup | threads | QPS | QPS per repeat | p50 | p99 | proxy CPU/query | mariadbd CPU/query "
              "| proxy + mariadbd | Δ proxy µs/query | Δ mariadbd µs/query | Δ sysbench µs/query | Δ host µs/query |")
    md.append("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in threads:
        for s in SETUPS:
            p, t = agg.get((s, n)), agg.get((s + "-tls", n))
            if not p or not t:
                continue
            per = paired(t["qps_by_repeat"], p["qps_by_repeat"])
            proxy = s != "direct"
            md.append(
                f"| {s} | {n} | {fratio(ratio(t['qps'], p['qps']))} | {', '.join(f'{v:.2f}' for v in per) or '–'} "
                f"| {fratio(ratio(t['p50'], p['p50']))} | {fratio(ratio(t['p99'], p['p99']))} "
                f"| {fratio(ratio(t['cpu'], p['cpu'])) if proxy else '–'} "
                f"| {fratio(ratio(t['server_cpu'], p['server_cpu']))} "
                f"| {fratio(ratio(t['both_cpu'], p['both_cpu']))} "
                f"| {fdelta(t['cpu'] - p['cpu']) if proxy and t['cpu'] is not None and p['cpu'] is not None else '–'} "
                f"| {fdelta(sub(t['server_cpu'], p['server_cpu']))} "
                f"| {fdelta(sub(t['client_cpu'], p['client_cpu']))} | {fdelta(sub(t['host_cpu'], p['host_cpu']))} |")
    md.append("")

    md.append("### How TLS was checked")
    md.append("")
    md.append("Before the runs, one short sysbench run per target with `--mysql-debug=on` (the cipher of its "
              "connection, `mysql_get_ssl_cipher`), then a `mariadb` client on the same path asking "
              "`SHOW STATUS LIKE 'Ssl_cipher'`: MariaDB's view, empty when the leg that reaches MariaDB is "
              "clear text. During every run, MariaDB's `Ssl_accepts` counter (TLS handshakes it ran; the "
              "measuring connection itself is clear text).")
    md.append("")
    md.append("| target | sysbench's cipher | MariaDB's `Ssl_cipher` on that path | MariaDB TLS handshakes per run (median, by threads) |")
    md.append("|---|---|---|---|")
    for t in targets:
        c = checks.get(t, {})
        acc = ", ".join(f"{n}: {f0(agg[(t, n)]['ssl_accepts'])}" for n in threads if (t, n) in agg)
        md.append(f"| {t} | {c.get('client_cipher', '?') if c.get('client_cipher') != '-' else 'none (no TLS asked)'} "
                  f"| {c.get('server_cipher') or 'none (clear text)'} | {acc} |")
    md.append("")

    md.append("### HAProxy and MySQL-protocol TLS")
    md.append("")
    md.append("HAProxy cannot be the TLS terminator for MySQL clients. A MySQL session starts in clear text — "
              "the server's greeting, then the client's SSLRequest — and only then switches to TLS, the way "
              "STARTTLS does. HAProxy's `bind … ssl` \"enables SSL deciphering on connections instantiated from "
              "this listener\" (HAProxy's configuration manual, `ssl` bind option): it expects a TLS "
              "ClientHello as the first bytes of the connection, and it has no STARTTLS mode for any protocol; "
              "an HAProxy maintainer put it so in haproxy/haproxy#1970 (MySQL with `require_secure_transport`, "
              "closed \"works as designed\"): \"HAProxy does not support the MySQL protocol. And in fact, it does "
              "not support any starttls mechanism … a global limitation of HAProxy.\" So the HAProxy setup with "
              "TLS is `haproxy-tls` above: HAProxy in TCP mode passes the client's TLS through and MariaDB "
              "terminates it.")
    md.append("")
    if meta.get("PROBE_CMD"):
        out = meta.get("PROBE_OUTPUT", "").strip()
        rc = meta.get("PROBE_RC", "?")
        md.append(f"Probe in this run: {meta['PROBE_CMD']}: exit {rc} after {meta.get('PROBE_SECONDS', '?')} s"
                  + (f", `{out}`" if out else "")
                  + ". Both sides wait: the client for the MySQL greeting, HAProxy for a ClientHello, until the "
                    "client's connect timeout. A client that opens with a ClientHello (`openssl s_client`, not "
                    f"a MySQL client) does get a handshake from that listener: {meta.get('PROBE_S_CLIENT', '?')}.")
        md.append("")

    md.append("### Noise")
    md.append("")
    foreign = [num(r["foreign_cpu_s"]) / num(r["seconds"]) for r in ok_rows
               if num(r["foreign_cpu_s"]) is not None and num(r["seconds"])]
    waited = [num(r["quiet_wait_s"]) for r in ok_rows if num(r["quiet_wait_s"]) is not None]
    quiet = float(meta.get("BENCH_QUIET_CORES", "0.3") or 0.3)
    lines = []
    if foreign:
        busy = sum(1 for f in foreign if f > quiet)
        lines.append(f"CPU used outside this benchmark during a run (host busy time minus sysbench, the MariaDB "
                     f"servers, HAProxy and dbrouter): median {statistics.median(foreign):.2f} cores, max "
                     f"{max(foreign):.2f} of {meta.get('NPROC', '?')}; {busy} of {len(foreign)} runs had more "
                     f"than {quiet} cores of it.")
    if waited:
        lines.append(f"Each run first waited up to {meta.get('BENCH_QUIET_WAIT', '?')} s for a quiet second "
                     f"(median wait {statistics.median(waited):.1f} s, max {max(waited):.1f} s).")
    spreads = [(t, n, agg[(t, n)]["qps_spread"]) for t in targets for n in threads
               if (t, n) in agg and agg[(t, n)]["qps_spread"] is not None]
    if spreads:
        worst = max(spreads, key=lambda x: x[2])
        lines.append(f"QPS spread over the repeats (max − min over median): median "
                     f"{statistics.median(s for _, _, s in spreads) * 100:.0f} %, worst {worst[2] * 100:.0f} % "
                     f"({worst[0]}, {worst[1]} thread{'s' if worst[1] != 1 else ''}): differences smaller than that are within noise.")
    if failed:
        lines.append(f"{len(failed)} run(s) failed: " + ", ".join(
            f"{r['target']}/{r['threads']}/#{r['repeat']} ({r['status']}, log {r['log']})" for r in failed) + ".")
    errors = sum(int(num(r["ignored_errors"]) or 0) for r in ok_rows)
    if errors:
        lines.append(f"sysbench ignored {errors} errors in total.")
    md.append(" ".join(lines) if lines else "–")
    md.append("")
    return "\n".join(md)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tsv", required=True)
    ap.add_argument("--meta", required=True)
    ap.add_argument("--checks", help="checks.tsv of the run (default: beside --tsv)")
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--doc", help=f"docs/benchmarks.md to update (section '## {TITLE}')")
    args = ap.parse_args()

    rows = load(args.tsv)
    meta = read_meta(args.meta)
    checks = {}
    path = args.checks or os.path.join(os.path.dirname(args.tsv), "checks.tsv")
    if os.path.exists(path):
        with open(path) as f:
            checks = {r["target"]: r for r in csv.DictReader(f, delimiter="\t")}
    text = build(rows, meta, checks)
    with open(os.path.join(args.out_dir, "report.md"), "w") as f:
        f.write(text)
    print(text)
    if args.doc:
        with open(args.doc) as f:
            headings = [l.rstrip() for l in f if l.startswith("## ")]
        before = None
        if f"## {AFTER}" in headings:
            i = headings.index(f"## {AFTER}")
            nxt = [h for h in headings[i + 1:] if h != f"## {TITLE}"]
            before = nxt[0][3:] if nxt else None
        replace_section(args.doc, TITLE, text, before=before, keep=KEEP)
        print(f"bench-tls: updated section '## {TITLE}' of {args.doc}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
