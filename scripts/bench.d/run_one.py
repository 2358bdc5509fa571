#!/usr/bin/env python3
"""One sysbench run for scripts/bench, with CPU accounting; appends one row to a TSV.

Reads utime+stime (/proc/<pid>/stat, in clock ticks) of the proxy and of the other
processes of the cluster before and after the run, the host's busy ticks (/proc/stat),
sysbench's own CPU (rusage of the child) and, given the server's socket, its
Bytes_received / Bytes_sent counters (what crossed the wire per query, whoever is in
between) and Ssl_accepts (TLS handshakes the server ran), then parses sysbench's report: queries,
transactions, errors, and p50/p95/p99 from the latency histogram of that same run.

Backend connections: given --backend HOST:PORT (shard1's master), it samples during the run
how many established TCP connections the target holds to that server — the proxy's, or
sysbench's own for a target without a proxy (/proc/<pid>/fd against /proc/net/tcp: exact per
process, where the server's process list would mix routers that log in as the same account) —
and keeps the largest count. Given --metrics (a dbrouter's /metrics), it also keeps the largest
dbrouter_pool_connections_in_use and dbrouter_pool_waiting of that shard, and the ERR packets
the router sent itself during the run (dbrouter_errors_sent_total, by kind).

Latency is per sysbench *event*: one statement for oltp_point_select, one transaction
(BEGIN … COMMIT) for the other oltp_* tests.
"""
import argparse
import math
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request

CLK_TCK = os.sysconf("SC_CLK_TCK")

COLUMNS = [
    "test", "threads", "target", "repeat", "status", "seconds", "queries", "qps",
    "transactions", "tps", "ignored_errors", "reconnects", "lat_avg_us", "p50_us",
    "p95_us", "p99_us", "lat_max_us", "events_in_histogram", "proxy_cpu_s",
    "proxy_cpu_us_per_query", "server_cpu_s", "server_cpu_us_per_query",
    "sysbench_cpu_s", "host_busy_s", "foreign_cpu_s", "quiet_wait_s", "started", "log",
    "server_bytes_in_per_query", "server_bytes_out_per_query", "server_ssl_accepts",
    "backend_conns_max", "backend_samples", "pool_in_use_max", "pool_waiting_max", "router_errors",
]


def proc_ticks(pid):
    """utime + stime of a process (all its threads), in ticks; None if it is gone."""
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode("latin-1")
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    rest = data[data.rfind(")") + 2:].split()
    return int(rest[11]) + int(rest[12])


def server_bytes(socket):
    """(Bytes_received, Bytes_sent, Ssl_accepts) of the MariaDB server behind `socket` (as
    root), or None. --skip-ssl: the dev cluster's servers serve TLS, and the mariadb client
    would use it by default even over the socket (and count itself in Ssl_accepts)."""
    if not socket:
        return None
    try:
        out = subprocess.run(
            ["mariadb", "--no-defaults", "--skip-ssl", "-uroot", "-S", socket, "-N", "-B", "-e",
             "SHOW GLOBAL STATUS WHERE Variable_name IN ('Bytes_received', 'Bytes_sent', 'Ssl_accepts')"],
            capture_output=True, text=True, timeout=10, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None
    values = dict(line.split("\t", 1) for line in out.stdout.splitlines() if "\t" in line)
    try:
        return int(values["Bytes_received"]), int(values["Bytes_sent"]), int(values.get("Ssl_accepts", 0))
    except (KeyError, ValueError):
        return None


def tcp_remote(addr):
    """HOST:PORT as /proc/net/tcp writes a remote address (IPv4, e.g. 0100007F:0CF7)."""
    host, port = addr.rsplit(":", 1)
    ip = struct.unpack("=I", socket.inet_aton(host))[0]
    return f"{ip:08X}:{int(port):04X}"


def tcp_conns_to(pid, remote):
    """Established TCP connections of process `pid` to `remote` (tcp_remote form); None if gone."""
    inodes = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return None
    for fd in fds:
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    n = 0
    try:
        with open(f"/proc/{pid}/net/tcp") as f:
            next(f, None)
            for line in f:
                p = line.split()
                # sl local rem st tx:rx tr:when retrnsmt uid timeout inode
                if len(p) > 9 and p[3] == "01" and p[2] == remote and p[9] in inodes:
                    n += 1
    except OSError:
        return None
    return n


def router_metrics(url, shard):
    """{"in_use", "idle", "waiting": the pool of `shard`, "errors": {kind: count}} from a
    dbrouter's /metrics; None if unreachable."""
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            text = r.read().decode("utf-8", "replace")
    except Exception:  # noqa: BLE001 — a missed sample is no failure of the run
        return None
    in_use = idle = waiting = 0
    errors = {}
    label = f'shard="{shard}"'
    for line in text.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        name, _, value = line.rpartition(" ")
        try:
            v = float(value)
        except ValueError:
            continue
        if name.startswith("dbrouter_pool_connections_in_use{") and label in name:
            in_use += v
        elif name.startswith("dbrouter_pool_connections_idle{") and label in name:
            idle += v
        elif name.startswith("dbrouter_pool_waiting{") and label in name:
            waiting += v
        elif name.startswith("dbrouter_errors_sent_total{"):
            m = re.search(r'kind="([^"]*)"', name)
            if m:
                errors[m.group(1)] = errors.get(m.group(1), 0) + v
    return {"in_use": int(in_use), "idle": int(idle), "waiting": int(waiting), "errors": errors}


class Sampler(threading.Thread):
    """Samples the backend connections of a run every `every` seconds until stopped."""

    def __init__(self, pid, remote, metrics, shard, every):
        super().__init__(daemon=True)
        self.pid, self.remote, self.metrics, self.shard, self.every = pid, remote, metrics, shard, every
        self.stop = threading.Event()
        self.conns, self.in_use, self.waiting = [], [], []

    def sample(self):
        if self.pid and self.remote:
            n = tcp_conns_to(self.pid, self.remote)
            if n is not None:
                self.conns.append(n)
        if self.metrics:
            m = router_metrics(self.metrics, self.shard)
            if m:
                self.in_use.append(m["in_use"])
                self.waiting.append(m["waiting"])

    def run(self):
        while not self.stop.wait(self.every):
            self.sample()


def host_busy_ticks():
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu "):
                v = [int(x) for x in line.split()[1:]]
                # user nice system idle iowait irq softirq steal [guest guest_nice]: guest time
                # is already counted in user, so only the first 8 matter.
                total = sum(v[:8])
                return total - v[3] - v[4]
    raise RuntimeError("no cpu line in /proc/stat")


def stat_count(text, label):
    """N from a sysbench line 'label:  N  (x per sec.)' (or 'label: N')."""
    m = re.search(r"^\s*" + re.escape(label) + r":\s+([0-9.]+)", text, re.M)
    return float(m.group(1)) if m else None


def histogram(text):
    """[(value_ms, count)] from sysbench's --histogram output."""
    out = []
    inside = False
    for line in text.splitlines():
        if line.startswith("Latency histogram"):
            inside = True
            continue
        if inside:
            m = re.match(r"^\s*([0-9.]+)\s+\|\**\s+([0-9]+)\s*$", line)
            if m:
                out.append((float(m.group(1)), int(m.group(2))))
            elif out and not line.strip():
                break
    return out


def percentile(hist, p):
    """The histogram value at which the cumulative count reaches p% (as sysbench computes
    --percentile: the first bucket whose cumulative count is >= ceil(total * p / 100))."""
    total = sum(c for _, c in hist)
    if total == 0:
        return None
    need = max(1, math.ceil(total * p / 100.0))
    acc = 0
    for value, count in hist:
        acc += count
        if acc >= need:
            return value
    return hist[-1][0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True, help="TSV to append to (header written if new)")
    ap.add_argument("--log", required=True, help="where sysbench's output goes")
    ap.add_argument("--test", required=True)
    ap.add_argument("--label", help="what the TSV's test column says (default: the test)")
    ap.add_argument("--rate", type=int, default=0,
                    help="sysbench --rate: events per second over all threads (0: as fast as possible)")
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--target", required=True)
    ap.add_argument("--repeat", type=int, required=True)
    ap.add_argument("--time", type=int, required=True)
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--db", required=True)
    ap.add_argument("--tables", required=True)
    ap.add_argument("--table-size", required=True)
    ap.add_argument("--proxy-pid", type=int, default=0, help="the proxy of this target (0: none)")
    ap.add_argument("--server-pid", type=int, default=0, help="shard1 master's mariadbd")
    ap.add_argument("--server-socket", help="shard1 master's socket: count its bytes in and out (as root)")
    ap.add_argument("--ssl-dir",
                    help="TLS from sysbench: --mysql-ssl=on, run in this directory (sysbench 1.0 loads "
                         "cacert.pem, client-cert.pem and client-key.pem from its working directory)")
    ap.add_argument("--our-pids", default="", help="comma-separated: every other process of the setup")
    ap.add_argument("--perf-out", help="perf record the proxy (-F 997, no call graphs) during the run into this file")
    ap.add_argument("--quiet-wait", type=float, default=0,
                    help="wait up to this many seconds for the host to be quiet before the run")
    ap.add_argument("--quiet-cores", type=float, default=0.3,
                    help="quiet = less than this many cores busy over one second")
    ap.add_argument("--backend", help="HOST:PORT of the server behind the target (shard1's master): "
                                      "sample the target's connections to it during the run")
    ap.add_argument("--metrics", help="the target's dbrouter /metrics URL: sample its pool of --shard")
    ap.add_argument("--shard", default="shard1", help="the shard whose pool --metrics samples")
    args = ap.parse_args()

    our = [int(p) for p in args.our_pids.split(",") if p]
    watched = sorted({p for p in our + [args.proxy_pid, args.server_pid] if p})
    cmd = [
        "sysbench", args.test, "--db-driver=mysql",
        f"--mysql-host={args.host}", f"--mysql-port={args.port}",
        f"--mysql-user={args.user}", f"--mysql-password={args.password}",
        f"--mysql-db={args.db}", f"--tables={args.tables}", f"--table-size={args.table_size}",
        f"--threads={args.threads}", f"--time={args.time}", "--events=0",
        "--report-interval=0", "--histogram=on", "--percentile=99",
    ] + ([f"--rate={args.rate}"] if args.rate > 0 else []) + (
        ["--mysql-ssl=on"] if args.ssl_dir else []) + ["run"]

    # Other people's builds and tests share this machine: wait (bounded) for a quiet second.
    quiet_t0 = time.monotonic()
    while time.monotonic() - quiet_t0 < args.quiet_wait:
        b0 = host_busy_ticks()
        time.sleep(1.0)
        if (host_busy_ticks() - b0) / CLK_TCK < args.quiet_cores:
            break
    quiet_wait = time.monotonic() - quiet_t0

    perf = None
    if args.perf_out and args.proxy_pid:
        perf = subprocess.Popen(["perf", "record", "-q", "-e", "cpu-clock", "-F", "997", "-p", str(args.proxy_pid), "-o", args.perf_out],
                                stdout=subprocess.DEVNULL, stderr=open(args.perf_out + ".log", "w"),
                                stdin=subprocess.DEVNULL)
        # Syscalls, context switches and migrations of the proxy during the same run.
        pstat = subprocess.Popen(["perf", "stat", "-x", ",", "-e",
                                  "raw_syscalls:sys_enter,context-switches,cpu-migrations",
                                  "-p", str(args.proxy_pid), "-o", args.perf_out + ".stat"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                 stdin=subprocess.DEVNULL)
        time.sleep(0.5)  # let them attach

    started = time.strftime("%Y-%m-%dT%H:%M:%S")
    errors0 = router_metrics(args.metrics, args.shard) if args.metrics else None
    bytes0 = server_bytes(args.server_socket)
    before = {p: proc_ticks(p) for p in watched}
    busy0 = host_busy_ticks()
    t0 = time.monotonic()
    with open(args.log, "w") as log:
        log.write("# " + " ".join(c if not c.startswith("--mysql-password=") else "--mysql-password=***" for c in cmd) + "\n")
        log.flush()
        child = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 cwd=args.ssl_dir or None)
        # Backend connections: the proxy's, or sysbench's own without one; ~10 samples a run.
        sampler = Sampler(args.proxy_pid or child.pid, tcp_remote(args.backend) if args.backend else None,
                          args.metrics, args.shard, min(2.0, max(0.25, args.time / 10.0)))
        sampler.start()
        try:
            _, status, rusage = os.wait4(child.pid, 0)
        except KeyboardInterrupt:
            child.kill()
            raise
        finally:
            sampler.stop.set()
    elapsed = time.monotonic() - t0
    sampler.join(timeout=10)
    errors1 = router_metrics(args.metrics, args.shard) if args.metrics else None
    if perf:
        for p in (perf, pstat):
            p.send_signal(signal.SIGINT)
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
    busy1 = host_busy_ticks()
    after = {p: proc_ticks(p) for p in watched}
    bytes1 = server_bytes(args.server_socket)
    child.returncode = os.waitstatus_to_exitcode(status)

    def delta_s(pid):
        if not pid or before.get(pid) is None or after.get(pid) is None:
            return None
        return (after[pid] - before[pid]) / CLK_TCK

    with open(args.log) as f:
        text = f.read()
    queries = stat_count(text, "queries")
    transactions = stat_count(text, "transactions")
    total_time = stat_count(text, "total time")
    errors = stat_count(text, "ignored errors")
    reconnects = stat_count(text, "reconnects")
    hist = histogram(text)
    ok = child.returncode == 0 and queries and total_time and hist
    status_s = "ok" if ok else f"fail(exit {child.returncode})"

    sysbench_cpu = rusage.ru_utime + rusage.ru_stime
    proxy_cpu = delta_s(args.proxy_pid)
    server_cpu = delta_s(args.server_pid)
    ours = sysbench_cpu + sum(d for d in (delta_s(p) for p in watched) if d is not None)
    host_busy = (busy1 - busy0) / CLK_TCK
    foreign = host_busy - ours

    def per_query_us(cpu):
        if cpu is None or not queries:
            return None
        return cpu / queries * 1e6

    def us(ms):
        return None if ms is None else ms * 1000.0

    row = {
        "test": args.label or args.test, "threads": args.threads, "target": args.target,
        "repeat": args.repeat, "status": status_s,
        "seconds": total_time if total_time else elapsed,
        "queries": int(queries) if queries else 0,
        "qps": queries / total_time if ok else None,
        "transactions": int(transactions) if transactions else 0,
        "tps": transactions / total_time if ok and transactions else None,
        "ignored_errors": int(errors) if errors is not None else None,
        "reconnects": int(reconnects) if reconnects is not None else None,
        "lat_avg_us": us(stat_count(text, "avg")),
        "p50_us": us(percentile(hist, 50)) if hist else None,
        "p95_us": us(percentile(hist, 95)) if hist else None,
        "p99_us": us(percentile(hist, 99)) if hist else None,
        "lat_max_us": us(stat_count(text, "max")),
        "events_in_histogram": sum(c for _, c in hist),
        "proxy_cpu_s": proxy_cpu,
        "proxy_cpu_us_per_query": per_query_us(proxy_cpu),
        "server_cpu_s": server_cpu,
        "server_cpu_us_per_query": per_query_us(server_cpu),
        "sysbench_cpu_s": sysbench_cpu,
        "host_busy_s": host_busy,
        "foreign_cpu_s": foreign,
        "quiet_wait_s": quiet_wait,
        "started": started,
        "log": os.path.basename(args.log),
        "server_bytes_in_per_query": (bytes1[0] - bytes0[0]) / queries if bytes0 and bytes1 and queries else None,
        "server_bytes_out_per_query": (bytes1[1] - bytes0[1]) / queries if bytes0 and bytes1 and queries else None,
        "server_ssl_accepts": bytes1[2] - bytes0[2] if bytes0 and bytes1 else None,
        "backend_conns_max": max(sampler.conns) if sampler.conns else None,
        "backend_samples": len(sampler.conns) or None,
        "pool_in_use_max": max(sampler.in_use) if sampler.in_use else None,
        "pool_waiting_max": max(sampler.waiting) if sampler.waiting else None,
        "router_errors": (",".join(f"{k}:{int(errors1['errors'][k] - errors0['errors'].get(k, 0))}"
                                   for k in sorted(errors1["errors"])
                                   if errors1["errors"][k] - errors0["errors"].get(k, 0) > 0) or "none")
        if errors0 and errors1 else None,
    }

    def fmt(v):
        if v is None:
            return ""
        if isinstance(v, float):
            return f"{v:.3f}"
        return str(v)

    if args.perf_out and queries and os.path.exists(args.perf_out + ".stat"):
        counts = {}
        with open(args.perf_out + ".stat") as f:
            for line in f:
                parts = line.strip().split(",")
                if len(parts) > 2 and parts[0].replace(".", "").isdigit():
                    counts[parts[2]] = float(parts[0])
        with open(args.perf_out + ".per-query", "w") as f:
            for event, label in (("raw_syscalls:sys_enter", "syscalls"),
                                 ("context-switches", "context switches"),
                                 ("cpu-migrations", "CPU migrations")):
                if event in counts:
                    f.write(f"{label}\t{counts[event] / queries:.2f}\n")
            if proxy_cpu is not None:
                f.write(f"CPU µs\t{proxy_cpu / queries * 1e6:.1f}\n")

    new = not os.path.exists(args.out) or os.path.getsize(args.out) == 0
    with open(args.out, "a") as f:
        if new:
            f.write("\t".join(COLUMNS) + "\n")
        f.write("\t".join(fmt(row[c]) for c in COLUMNS) + "\n")

    line = (f"{(args.label or args.test):<18} {args.threads:>4} thr  {args.target:<12} #{args.repeat}  "
            f"{status_s:<4} ")
    if ok:
        cpu = row["proxy_cpu_us_per_query"]
        line += (f"{row['qps']:>9.0f} qps  p50 {row['p50_us']:>8.0f}  p95 {row['p95_us']:>8.0f}  "
                 f"p99 {row['p99_us']:>8.0f} us  proxy cpu "
                 + (f"{cpu:6.2f} us/q" if cpu is not None else "     -     ")
                 + f"  foreign {foreign / row['seconds']:4.2f} cores")
        if errors:
            line += f"  ignored errors {int(errors)}"
        if row["backend_conns_max"] is not None:
            line += f"  backend conns {row['backend_conns_max']}"
            if row["pool_in_use_max"] is not None:
                line += f" (in use {row['pool_in_use_max']})"
        if row["router_errors"] not in (None, "none"):
            line += f"  router errors {row['router_errors']}"
    else:
        # Why: sysbench's first FATAL line (e.g. the server refusing a connection).
        why = next((l.strip() for l in text.splitlines() if "FATAL" in l), "")
        if why:
            line += f" {why[:200]}"
    print(line, flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
