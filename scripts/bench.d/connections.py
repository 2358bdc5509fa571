#!/usr/bin/env python3
"""Connection scale of one dbrouter, for scripts/bench-connections.

A small asyncio MySQL client (raw sockets; just the handshake with mysql_native_password,
COM_QUERY 'SELECT 1' and COM_QUIT) holds thousands of idle client connections to dbrouter
and measures the router process's RSS (/proc/<pid>/status VmRSS) and file descriptors.

Every logged-in dbrouter session holds one pooled backend connection to the global shard's
master, so the number of clients that can be logged in at once is bounded by the master's
max_connections (and pool.max_per_shard), far below 10 000 — unless the router releases
the backend connection after the login. The phases:

  1. log clients in, a batch at a time, until all N are in or a batch has failures (the
     limit); RSS per logged-in session. At a limit, close `headroom` of them again.
  2. hold the other connections right before the login (greeting read, login not sent),
     the furthest a client can get without a backend connection; RSS per connection.
  3. probes with all N open, and with two of them closed (the router's own
     server.max_connections is 10 000): SELECT 1 through an existing connection, and new
     connections (connect, log in, SELECT 1, quit), timed.
  4. login storm: close everything, open N connections up to the greeting, and let them all
     log in at once; outcomes and times; probes again.

Results: a JSON file and the Markdown section "## Connection scale" (printed; written to
docs/benchmarks.md with --doc).

With --active N, another test instead (ActiveBench): many clients, few of them busy, as an
application fleet with a driver's connection pool looks to the router.

  1. log the clients in, a batch at a time (stopping at a batch with failures, a limit), each
     followed by what a driver sends right after its login (--after-login, by default as the
     Python drivers do: SET NAMES utf8mb4, SET autocommit = 1);
  2. all of them idle for a moment;
  3. N of them run point selects (`SELECT c FROM <table> WHERE id = <random>`, text protocol as
     Python drivers send them) in a loop for --active-time seconds, the others staying idle;
  4. all of them idle again, then all closed.

Throughout it samples twice a second the router's RSS and its pool of the global shard's
master (in use, idle, waiting: the router's /metrics), and at each step counts the router's
established TCP connections to that master exactly (/proc/<pid>/fd against /proc/net/tcp) and
the master's process list for the application account. Results: JSON, and the subsection
"### <mode> pooling" of the section "## Idle and active clients" (the other mode's subsection
is kept, so that one run per mode fills the section).
"""
import argparse
import asyncio
import hashlib
import json
import os
import random
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import replace_section  # noqa: E402
from run_one import router_metrics, tcp_conns_to, tcp_remote  # noqa: E402

CLIENT_LONG_PASSWORD = 0x1
CLIENT_LONG_FLAG = 0x4
CLIENT_CONNECT_WITH_DB = 0x8
CLIENT_PROTOCOL_41 = 0x200
CLIENT_TRANSACTIONS = 0x2000
CLIENT_SECURE_CONNECTION = 0x8000
CLIENT_MULTI_RESULTS = 0x20000
CLIENT_PLUGIN_AUTH = 0x80000
CAPS = (CLIENT_LONG_PASSWORD | CLIENT_LONG_FLAG | CLIENT_CONNECT_WITH_DB | CLIENT_PROTOCOL_41
        | CLIENT_TRANSACTIONS | CLIENT_SECURE_CONNECTION | CLIENT_MULTI_RESULTS | CLIENT_PLUGIN_AUTH)
UTF8MB4_GENERAL_CI = 45


class MySQLError(Exception):
    def __init__(self, code, message):
        super().__init__(f"ERR {code}: {message}")
        self.code = code
        self.message = message


def native_token(password, scramble):
    if not password:
        return b""
    h1 = hashlib.sha1(password.encode()).digest()
    h2 = hashlib.sha1(h1).digest()
    h3 = hashlib.sha1(scramble + h2).digest()
    return bytes(a ^ b for a, b in zip(h1, h3))


def parse_err(payload):
    code = struct.unpack_from("<H", payload, 1)[0]
    msg = payload[3:]
    if msg[:1] == b"#":
        msg = msg[6:]
    return MySQLError(code, msg.decode("utf-8", "replace"))


class Conn:
    """One client connection: greeting, login, queries."""

    def __init__(self, reader, writer):
        self.r = reader
        self.w = writer
        self.scramble = None
        self.conn_id = None

    @classmethod
    async def open(cls, host, port):
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def read_packet(self):
        hdr = await self.r.readexactly(4)
        n = hdr[0] | hdr[1] << 8 | hdr[2] << 16
        return hdr[3], await self.r.readexactly(n)

    def write_packet(self, seq, payload):
        self.w.write(len(payload).to_bytes(3, "little") + bytes([seq & 0xFF]) + payload)

    async def greeting(self):
        _, p = await self.read_packet()
        if p[:1] == b"\xff":
            raise parse_err(p)
        if p[0] != 10:
            raise RuntimeError(f"unexpected protocol version {p[0]}")
        end = p.index(b"\0", 1)
        self.conn_id = struct.unpack_from("<I", p, end + 1)[0]
        pos = end + 1 + 4
        part1 = p[pos:pos + 8]
        pos += 8 + 1 + 2 + 1 + 2 + 2
        auth_len = p[pos]
        pos += 1 + 10
        n2 = max(13, auth_len - 8)
        part2 = p[pos:pos + n2].rstrip(b"\0")
        self.scramble = part1 + part2

    async def login(self, user, password, db):
        token = native_token(password, self.scramble)
        payload = (struct.pack("<IIB", CAPS, 1 << 24, UTF8MB4_GENERAL_CI) + b"\0" * 23
                   + user.encode() + b"\0" + bytes([len(token)]) + token
                   + (db.encode() + b"\0" if db else b"\0") + b"mysql_native_password\0")
        self.write_packet(1, payload)
        await self.w.drain()
        seq, p = await self.read_packet()
        if p[:1] == b"\xfe":  # auth switch request
            rest = p[1:]
            name_end = rest.index(b"\0")
            plugin = rest[:name_end].decode()
            if plugin != "mysql_native_password":
                raise RuntimeError(f"auth switch to {plugin} not supported by this client")
            self.scramble = rest[name_end + 1:].rstrip(b"\0")
            self.write_packet(seq + 1, native_token(password, self.scramble))
            await self.w.drain()
            seq, p = await self.read_packet()
        if p[:1] == b"\xff":
            raise parse_err(p)
        if p[:1] != b"\x00":
            raise RuntimeError(f"unexpected login answer 0x{p[0]:02x}")

    async def query(self, sql):
        self.write_packet(0, b"\x03" + sql.encode())
        await self.w.drain()
        _, p = await self.read_packet()
        if p[:1] == b"\xff":
            raise parse_err(p)
        if p[:1] == b"\x00":
            return
        eofs = 0
        while eofs < 2:  # column definitions, EOF, rows, EOF (no CLIENT_DEPRECATE_EOF)
            _, p = await self.read_packet()
            if p[:1] == b"\xff":
                raise parse_err(p)
            if p[:1] == b"\xfe" and len(p) < 9:
                eofs += 1

    async def quit(self):
        try:
            self.write_packet(0, b"\x01")
            await self.w.drain()
        except (ConnectionError, OSError):
            pass
        self.close()

    def close(self):
        try:
            self.w.close()
        except Exception:
            pass


# --- measurements -----------------------------------------------------------------------------

def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return None


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def pct(values, p):
    if not values:
        return None
    v = sorted(values)  # nearest rank
    k = max(0, min(len(v) - 1, -(-len(v) * p // 100) - 1))
    return v[int(k)]


def summary_ms(values):
    if not values:
        return None
    return {"n": len(values), "p50_ms": pct(values, 50) * 1e3, "p99_ms": pct(values, 99) * 1e3,
            "max_ms": max(values) * 1e3}


def outcome_of(exc):
    if isinstance(exc, MySQLError):
        return f"ERR {exc.code}: {exc.message}"
    if isinstance(exc, asyncio.IncompleteReadError):
        return "closed by dbrouter"
    if isinstance(exc, asyncio.TimeoutError):
        return "timeout"
    if isinstance(exc, (ConnectionRefusedError, ConnectionResetError, BrokenPipeError)):
        return type(exc).__name__
    return f"{type(exc).__name__}: {exc}"


def mariadb_status(args, var):
    """A global status variable of the global shard's master (backend account, via the CLI)."""
    try:
        out = subprocess.run(
            ["mariadb", "--no-defaults", f"-h{args.master_host}", f"-P{args.master_port}",
             f"-u{args.backend_user}", f"-p{args.backend_password}", "--batch", "--skip-column-names",
             "-e", f"SHOW GLOBAL STATUS LIKE '{var}'"],
            capture_output=True, text=True, timeout=10)
        return int(out.stdout.split()[1])
    except Exception:
        return None


def mariadb_var(args, var):
    try:
        out = subprocess.run(
            ["mariadb", "--no-defaults", f"-h{args.master_host}", f"-P{args.master_port}",
             f"-u{args.backend_user}", f"-p{args.backend_password}", "--batch", "--skip-column-names",
             "-e", f"SELECT @@{var}"],
            capture_output=True, text=True, timeout=10)
        return int(out.stdout.strip())
    except Exception:
        return None


class Bench:
    def __init__(self, args):
        self.a = args
        self.pid = args.pid
        self.res = {"phases": {}}
        self.t_start = time.monotonic()

    def snap(self, name, **extra):
        d = {"t_s": round(time.monotonic() - self.t_start, 2), "rss_kib": rss_kib(self.pid),
             "router_fds": fd_count(self.pid)}
        d.update(extra)
        self.res["phases"][name] = d
        print(f"connections: {name}: " + ", ".join(f"{k}={v}" for k, v in d.items()), flush=True)
        return d

    async def login_one(self, sem=None):
        """Open, greet and log in one client. Returns (conn or None, outcome, seconds); the
        time runs from the TCP connect, after waiting for a slot of sem."""
        conn = None
        t0 = time.perf_counter()
        try:
            if sem:
                await sem.acquire()
                t0 = time.perf_counter()
            try:
                conn = await asyncio.wait_for(Conn.open(self.a.host, self.a.port), self.a.timeout)
                await asyncio.wait_for(conn.greeting(), self.a.timeout)
                await asyncio.wait_for(conn.login(self.a.user, self.a.password, self.a.db), self.a.timeout)
            finally:
                if sem:
                    sem.release()
            return conn, "ok", time.perf_counter() - t0
        except Exception as e:  # noqa: BLE001 — every failure is an outcome to report
            if conn:
                conn.close()
            return None, outcome_of(e), time.perf_counter() - t0

    async def greet_one(self, sem):
        """Open and read the greeting, then stop: held at the login step."""
        conn = None
        t0 = time.perf_counter()
        try:
            async with sem:
                t0 = time.perf_counter()
                conn = await asyncio.wait_for(Conn.open(self.a.host, self.a.port), self.a.timeout)
                await asyncio.wait_for(conn.greeting(), self.a.timeout)
            return conn, "greeted", time.perf_counter() - t0
        except Exception as e:  # noqa: BLE001
            if conn:
                conn.close()
            return None, outcome_of(e), time.perf_counter() - t0

    async def probe_existing(self, conn, n):
        lat, errors = [], {}
        for _ in range(n):
            t0 = time.perf_counter()
            try:
                await asyncio.wait_for(conn.query("SELECT 1"), self.a.timeout)
                lat.append(time.perf_counter() - t0)
            except Exception as e:  # noqa: BLE001
                errors[outcome_of(e)] = errors.get(outcome_of(e), 0) + 1
                break
        return {"ok": summary_ms(lat), "failures": errors}

    async def probe_new(self, n):
        """n sequential new connections: connect, log in, SELECT 1, quit; timed end to end."""
        ok, failures = [], {}
        fail_lat = []
        for _ in range(n):
            t0 = time.perf_counter()
            conn, outcome, _ = await self.login_one()
            if conn:
                try:
                    await asyncio.wait_for(conn.query("SELECT 1"), self.a.timeout)
                    await conn.quit()
                    ok.append(time.perf_counter() - t0)
                    continue
                except Exception as e:  # noqa: BLE001
                    outcome = "query: " + outcome_of(e)
                    conn.close()
            failures[outcome] = failures.get(outcome, 0) + 1
            fail_lat.append(time.perf_counter() - t0)
        return {"ok": summary_ms(ok), "failures": failures, "failure_latency": summary_ms(fail_lat)}

    async def login_batch(self, n, concurrency):
        sem = asyncio.Semaphore(concurrency)
        results = await asyncio.gather(*(self.login_one(sem) for _ in range(n)))
        ok = [c for c, o, _ in results if c]
        by = {}
        for _, o, s in results:
            by.setdefault(o, []).append(s)
        return ok, by

    async def run(self):
        a = self.a
        res = self.res
        res["config"] = {
            "clients": a.conns, "router_max_connections": a.router_max_connections,
            "pool_max_per_shard": a.pool_max, "pool_wait_ms": a.pool_wait_ms,
            "handshake_ms": a.handshake_ms, "probes": a.probes, "headroom": a.headroom,
            "batch": a.batch, "concurrency_login": a.concurrency_login,
        }
        res["mariadb_max_connections"] = mariadb_var(a, "max_connections")
        # Warm-up: lazy initialisation (pool entry, allocator arenas) is not per-connection cost.
        for _ in range(3):
            c, outcome, _ = await self.login_one()
            if not c:
                raise SystemExit(f"connections: cannot log in to dbrouter {a.host}:{a.port}: {outcome}")
            res.setdefault("router_connection_id_at_start", c.conn_id)
            await c.query("SELECT 1")
            await c.quit()
        await asyncio.sleep(0.5)
        base = self.snap("baseline", mariadb_threads_connected=mariadb_status(a, "Threads_connected"))

        # 1. Log clients in, a batch at a time, until all are in or a batch has failures.
        logged, failures, lat = [], {}, []
        t0 = time.monotonic()
        limit_hit = False
        while len(logged) < a.conns:
            n = min(a.batch, a.conns - len(logged))
            ok, by = await self.login_batch(n, a.concurrency_login)
            logged += ok
            lat += by.get("ok", [])
            bad = {o: v for o, v in by.items() if o != "ok"}
            if bad:
                limit_hit = True
                failures = {o: {"count": len(v), **summary_ms(v)} for o, v in bad.items()}
                break
        p1 = self.snap("logged_in", clients=len(logged), limit_hit=limit_hit, failures=failures,
                       seconds=round(time.monotonic() - t0, 2), login_latency=summary_ms(lat),
                       mariadb_threads_connected=mariadb_status(a, "Threads_connected"))
        per_logged = (p1["rss_kib"] - base["rss_kib"]) / len(logged) if logged else None
        released = 0
        if limit_hit:
            # Give the master room again for the probes.
            for _ in range(min(a.headroom, len(logged))):
                await logged.pop().quit()
                released += 1
            await asyncio.sleep(0.5)

        # 2. Hold the rest right before the login (greeting read, login not sent).
        want = a.conns - len(logged)
        held, outcomes, open_s = [], {}, 0.0
        t_held = time.monotonic()
        if want > 0:
            sem = asyncio.Semaphore(a.concurrency_open)
            results = await asyncio.gather(*(self.greet_one(sem) for _ in range(want)))
            held = [c for c, o, _ in results if c]
            for _, o, _ in results:
                outcomes[o] = outcomes.get(o, 0) + 1
            open_s = time.monotonic() - t_held
        p2 = self.snap("all_open", clients=len(logged) + len(held), logged_in=len(logged),
                       released=released, held_at_login=len(held), outcomes=outcomes,
                       seconds_to_open=round(open_s, 2))
        per_held = (p2["rss_kib"] - p1["rss_kib"]) / len(held) if held and not released else None
        if held and released:
            # RSS after releasing some logged-in sessions: per held connection as measured from there.
            per_held = (p2["rss_kib"] - p1["rss_kib"]) / len(held)
        total_open = len(logged) + len(held)
        per_all = (p2["rss_kib"] - base["rss_kib"]) / total_open if total_open else None

        # 3. Probes with all of them open, then with two closed (room for one new connection).
        existing = logged[0] if logged else None
        pr_existing = await self.probe_existing(existing, a.probes) if existing else None
        pr_new = await self.probe_new(a.probes)
        self.snap("probes_all_open", clients=total_open, existing=pr_existing, new=pr_new,
                  since_held_opened_s=round(time.monotonic() - t_held, 2) if held else None)
        for _ in range(2):
            if held:
                held.pop().close()
            elif len(logged) > 1:
                await logged.pop().quit()
        await asyncio.sleep(0.2)
        pr_existing2 = await self.probe_existing(existing, a.probes) if existing else None
        pr_room = await self.probe_new(a.probes)
        self.snap("probes_n_minus_2", clients=len(logged) + len(held), existing=pr_existing2, new=pr_room,
                  since_held_opened_s=round(time.monotonic() - t_held, 2) if held else None)

        # 4. Login storm: close everything, open N connections up to the greeting, and let
        #    all of them log in at the same moment (an application fleet restarting).
        for c in held:
            c.close()
        for c in logged:
            await c.quit()
        held, logged = [], []
        await asyncio.sleep(2.0)
        sem = asyncio.Semaphore(a.concurrency_open)
        results = await asyncio.gather(*(self.greet_one(sem) for _ in range(a.conns)))
        storm = [c for c, o, _ in results if c]
        pre = {}
        for _, o, _ in results:
            if o != "greeted":
                pre[o] = pre.get(o, 0) + 1

        async def finish_login(conn):
            t = time.perf_counter()
            try:
                await asyncio.wait_for(conn.login(a.user, a.password, a.db), a.pool_wait_ms / 1000.0 + a.timeout)
                return conn, "ok", time.perf_counter() - t
            except Exception as e:  # noqa: BLE001
                conn.close()
                return None, outcome_of(e), time.perf_counter() - t
        t4 = time.monotonic()
        results = await asyncio.gather(*(finish_login(c) for c in storm))
        storm_ok = [c for c, o, _ in results if c]
        by = {}
        for _, o, s in results:
            by.setdefault(o, []).append(s)
        storm_outcomes = {o: {"count": len(v), **(summary_ms(v) or {})}
                          for o, v in sorted(by.items(), key=lambda kv: -len(kv[1]))}
        await asyncio.sleep(0.5)
        p4 = self.snap("storm", greeted=len(storm), not_greeted=pre, seconds=round(time.monotonic() - t4, 2),
                       outcomes=storm_outcomes, logged_in_now=len(storm_ok),
                       mariadb_threads_connected=mariadb_status(a, "Threads_connected"))
        # Probes after the storm, with its survivors still open (two closed for room).
        for _ in range(2):
            if storm_ok:
                await storm_ok.pop().quit()
        await asyncio.sleep(0.2)
        pr_existing5 = await self.probe_existing(storm_ok[0], a.probes) if storm_ok else None
        pr_new5 = await self.probe_new(a.probes)
        self.snap("probes_after_storm", clients=len(storm_ok), existing=pr_existing5, new=pr_new5)
        for c in storm_ok:
            await c.quit()
        await asyncio.sleep(2.0)
        self.snap("end", mariadb_threads_connected=mariadb_status(a, "Threads_connected"))
        res["per_connection_kib"] = {"logged_in": per_logged, "held_at_login": per_held, "all_open": per_all}
        return res

# --- many clients, few active (--active) -------------------------------------------------------

def processlist_count(args, user):
    """Connections of `user` in the master's process list (the backend account has PROCESS)."""
    try:
        out = subprocess.run(
            ["mariadb", "--no-defaults", f"-h{args.master_host}", f"-P{args.master_port}",
             f"-u{args.backend_user}", f"-p{args.backend_password}", "--batch", "--skip-column-names",
             "-e", f"SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = '{user}'"],
            capture_output=True, text=True, timeout=10)
        return int(out.stdout.strip())
    except Exception:
        return None


def lat_summary(values):
    if not values:
        return None
    v = sorted(values)

    def q(p):
        return v[max(0, min(len(v) - 1, -(-len(v) * p // 100) - 1))] * 1e3
    return {"n": len(v), "p50_ms": q(50), "p95_ms": q(95), "p99_ms": q(99), "max_ms": v[-1] * 1e3,
            "avg_ms": sum(v) / len(v) * 1e3}


class ActiveBench(Bench):
    """--active N: all clients logged in the way a driver does it, N of them busy."""

    def __init__(self, args):
        super().__init__(args)
        self.remote = tcp_remote(f"{args.master_host}:{args.master_port}")
        self.samples = []
        self.phase = "baseline"
        self.sampling = True

    def pool(self):
        return router_metrics(self.a.metrics, self.a.shard) if self.a.metrics else None

    def sample_once(self):
        m = self.pool()
        return {"t_s": round(time.monotonic() - self.t_start, 2), "phase": self.phase,
                "rss_kib": rss_kib(self.pid),
                "in_use": m["in_use"] if m else None, "idle": m["idle"] if m else None,
                "waiting": m["waiting"] if m else None}

    async def sampler(self):
        loop = asyncio.get_running_loop()
        while self.sampling:
            self.samples.append(await loop.run_in_executor(None, self.sample_once))
            await asyncio.sleep(0.5)

    def state(self, name, **extra):
        """A step: RSS, fds, the router's exact TCP connections to the master, its pool, the
        master's process list for the application account."""
        m = self.pool()
        return self.snap(name, master_rss_kib=rss_kib(self.a.master_pid) if self.a.master_pid else None,
                         backend_tcp=tcp_conns_to(self.pid, self.remote),
                         pool_in_use=m["in_use"] if m else None, pool_idle=m["idle"] if m else None,
                         pool_waiting=m["waiting"] if m else None,
                         processlist_app=processlist_count(self.a, self.a.user),
                         errors_sent=m["errors"] if m else None, **extra)

    async def login_driver(self, sem):
        """login_one, then the statements a driver sends right after its login."""
        conn, outcome, secs = await self.login_one(sem)
        if not conn:
            return None, outcome, secs
        t0 = time.perf_counter() - secs
        for sql in self.a.after_login:
            try:
                await asyncio.wait_for(conn.query(sql), self.a.timeout)
            except Exception as e:  # noqa: BLE001
                conn.close()
                return None, f"{sql}: {outcome_of(e)}", time.perf_counter() - t0
        return conn, "ok", time.perf_counter() - t0

    async def active_loop(self, conn, t_end, lat, errs, per_s, t0, rng):
        a = self.a
        loop = asyncio.get_running_loop()
        table, rows, think = a.table, a.rows, a.think_ms / 1000.0
        try:
            async with asyncio.timeout_at(t_end + a.timeout):
                while loop.time() < t_end:
                    sql = f"SELECT c FROM {table} WHERE id = {rng.randint(1, rows)}"
                    t = time.perf_counter()
                    try:
                        await conn.query(sql)
                    except MySQLError as e:
                        k = outcome_of(e)
                        errs[k] = errs.get(k, 0) + 1
                        continue
                    done = time.perf_counter()
                    lat.append(done - t)
                    sec = int(done - t0)
                    per_s[sec] = per_s.get(sec, 0) + 1
                    if think:
                        await asyncio.sleep(think)
            return True
        except Exception as e:  # noqa: BLE001 — timeout, connection lost: counted, client gone
            k = outcome_of(e)
            errs[k] = errs.get(k, 0) + 1
            conn.close()
            return False

    async def run(self):
        a = self.a
        res = self.res
        res["kind"] = "active"
        res["config"] = {
            "clients": a.conns, "active": a.active, "active_time_s": a.active_time, "think_ms": a.think_ms,
            "after_login": a.after_login, "table": a.table, "rows": a.rows, "batch": a.batch,
            "concurrency_login": a.concurrency_login, "mode": a.mode, "settings": a.settings,
        }
        res["mariadb_max_connections"] = mariadb_var(a, "max_connections")
        for _ in range(3):
            c, outcome, _ = await self.login_one()
            if not c:
                raise SystemExit(f"connections: cannot log in to dbrouter {a.host}:{a.port}: {outcome}")
            res.setdefault("router_connection_id_at_start", c.conn_id)
            await c.query(f"SELECT c FROM {a.table} WHERE id = 1")
            await c.quit()
        await asyncio.sleep(0.5)
        self.state("baseline")
        sampler = asyncio.create_task(self.sampler())

        # 1. Log in like a driver, a batch at a time, until all are in or a batch has failures.
        self.phase = "login"
        logged, lat, failures = [], [], {}
        limit_hit = False
        t0 = time.monotonic()
        while len(logged) < a.conns:
            n = min(a.batch, a.conns - len(logged))
            sem = asyncio.Semaphore(a.concurrency_login)
            results = await asyncio.gather(*(self.login_driver(sem) for _ in range(n)))
            logged += [c for c, _, _ in results if c]
            lat += [s for c, _, s in results if c]
            bad = {}
            for c, o, s in results:
                if not c:
                    bad.setdefault(o, []).append(s)
            if bad:
                limit_hit = True
                failures = {o: {"count": len(v), **summary_ms(v)} for o, v in bad.items()}
                break
        self.state("logged_in", clients=len(logged), limit_hit=limit_hit, failures=failures,
                   seconds=round(time.monotonic() - t0, 2), login_latency=summary_ms(lat))

        # 2. All idle for a moment.
        self.phase = "idle"
        await asyncio.sleep(a.settle)
        self.state("idle", clients=len(logged))

        # 3. The first `active` of them busy, the rest idle.
        busy = logged[:a.active]
        self.phase = "active"
        loop = asyncio.get_running_loop()
        lat_q, errs, per_s = [], {}, {}
        rng = random.Random(20)
        t_act = time.perf_counter()
        t_end = loop.time() + a.active_time
        alive = await asyncio.gather(*(self.active_loop(c, t_end, lat_q, errs, per_s, t_act, rng) for c in busy))
        secs = time.perf_counter() - t_act
        full = [per_s.get(i, 0) for i in range(int(a.active_time))]
        self.state("active_end", clients=len(logged), active=len(busy), seconds=round(secs, 2),
                   queries=len(lat_q), qps=round(len(lat_q) / secs, 1) if secs else None,
                   latency=lat_summary(lat_q), errors=errs, clients_lost=sum(1 for x in alive if not x),
                   qps_per_second_min=min(full) if full else None, qps_per_second_max=max(full) if full else None)

        # 4. All idle again (the end), then all closed.
        self.phase = "after"
        await asyncio.sleep(a.settle)
        self.state("end", clients=len(logged))
        for c in logged:
            await c.quit()
        self.phase = "closed"
        await asyncio.sleep(a.settle)
        self.state("closed")
        self.sampling = False
        await sampler
        res["samples"] = self.samples
        return res


def markdown_active(res, meta):
    """The subsection '### <mode> pooling' of '## Idle and active clients', and the section's intro."""
    c = res["config"]
    ph = res["phases"]
    samples = res.get("samples", [])
    mode = c.get("mode") or "?"
    intro = ["## Idle and active clients", ""]
    intro.append("`scripts/bench-connections` with `BENCH_CONNS_ACTIVE` (`scripts/bench.d/connections.py`, one "
                 "asyncio process): many clients log in the way a driver does — the handshake with "
                 "`mysql_native_password`, then right away the statements a Python driver sends (`SET NAMES "
                 "utf8mb4`, `SET autocommit = 1`) — and stay connected; then a few of them run point selects "
                 "(`SELECT c FROM <table> WHERE id = <random>`, text protocol, back to back) for a while, the "
                 "others staying idle; then all idle again. It reports the backend connections the router holds to "
                 "the global shard's master at each step and at the peak, the router's RSS, and the active "
                 "clients' QPS and latency, per pool mode (one subsection per `[pool] mode`, each from its own "
                 "run). Backend connections: the router process's established TCP connections to the master, "
                 "counted exactly at each step (`/proc/<pid>/fd` against `/proc/net/tcp`); in use / idle: its "
                 "`dbrouter_pool_connections_in_use` / `_idle` (sampled twice a second for the peaks); the "
                 "master's process list for the application account as a cross-check (with `[auth] identity = "
                 "\"client\"` the router's connections log in as that account). The load generator is one Python "
                 "process on the same cores as the router and MariaDB: QPS is bounded by it, and latency "
                 "includes its own event-loop delay; compare the modes, not absolute numbers.")
    md = [f"### {mode} pooling", ""]
    md.append("```sh")
    md.append(meta.get("COMMAND", "scripts/bench-connections"))
    md.append("```")
    md.append("")
    md.append(f"Measured {meta.get('DATE', '?')} on {meta.get('MACHINE', '?')}; dbrouter {meta.get('DBROUTER_BUILD', '?')}. "
              f"Router: {meta.get('ROUTER', 'the dev cluster’s')}, settings `{c.get('settings') or '?'}`; "
              f"the master has `max_connections = {res.get('mariadb_max_connections')}`. {c['clients']} clients, "
              f"{c['active']} of them active for {c['active_time_s']} s"
              + (f" with {c['think_ms']} ms between queries" if c.get("think_ms") else "")
              + f"; after the login each sends {', '.join(f'`{s}`' for s in c['after_login']) or 'nothing'}.")
    md.append("")
    li = ph["logged_in"]
    if li["limit_hit"]:
        md.append(f"**Logins hit a limit after {li['clients']} clients** (batches of {c['batch']}, "
                  f"{c['concurrency_login']} at a time): "
                  f"{failures_text({o: v['count'] for o, v in li['failures'].items()})}. The rest of the test "
                  f"ran with those {li['clients']}.")
    else:
        md.append(f"**All {li['clients']} clients logged in** and sent their statements (batches of {c['batch']}, "
                  f"{c['concurrency_login']} at a time, in {li['seconds']} s; login + statements p50 "
                  f"{fmt_ms(li['login_latency'], 'p50_ms')} ms, p99 {fmt_ms(li['login_latency'], 'p99_ms')} ms).")
    md.append("")

    def peak(phases, key):
        vals = [s[key] for s in samples if s.get(key) is not None and (phases is None or s["phase"] in phases)]
        return max(vals) if vals else None

    def peak_open(phases):
        vals = [s["in_use"] + s["idle"] for s in samples
                if s.get("in_use") is not None and s.get("idle") is not None and (phases is None or s["phase"] in phases)]
        return max(vals) if vals else None

    def v(x):
        return "–" if x is None else str(x)

    md.append("| step | clients connected | active | backend conns to the master | pool in use / idle / waiting "
              "| master process list (app, all routers) | router RSS | master RSS |")
    md.append("|---|---:|---:|---:|---:|---:|---:|---:|")

    def row(label, d, clients, active):
        md.append(f"| {label} | {clients} | {active} | {v(d.get('backend_tcp'))} | {v(d.get('pool_in_use'))} / "
                  f"{v(d.get('pool_idle'))} / {v(d.get('pool_waiting'))} | {v(d.get('processlist_app'))} | "
                  f"{d['rss_kib'] / 1024:.1f} MiB | {fmt_mib(d.get('master_rss_kib'))} |")
    act = ph["active_end"]
    row("baseline (3 warm-up logins, closed)", ph["baseline"], 0, 0)
    row("all logged in, statements sent", li, li["clients"], 0)
    row(f"idle ({c.get('settle_s', 2)} s later)", ph["idle"], ph["idle"]["clients"], 0)
    row("end of the active phase", act, act["clients"], act["active"])
    row("idle again (the end)", ph["end"], ph["end"]["clients"], 0)
    row("all closed", ph["closed"], 0, 0)
    rss_peak = peak(None, "rss_kib")
    md.append(f"| **peak while logging in** (samples) | | | {v(peak_open({'login'}))} | {v(peak({'login'}, 'in_use'))} / – / "
              f"{v(peak({'login'}, 'waiting'))} | | {fmt_mib(peak({'login'}, 'rss_kib'))} | |")
    md.append(f"| **peak while active** (samples) | | {act['active']} | {v(peak_open({'active'}))} | "
              f"{v(peak({'active'}, 'in_use'))} / – / {v(peak({'active'}, 'waiting'))} | | {fmt_mib(peak({'active'}, 'rss_kib'))} | |")
    md.append("")
    md.append("(Backend conns: this router's TCP connections to the master, counted at each step; in the peak rows, the "
              "largest in use + idle of its pool in the samples taken twice a second. The master's process list counts "
              "every router's connections as the application account — the dev cluster's router keeps its idle pool "
              "when the test runs a router of its own.)")
    md.append("")
    lat = act.get("latency") or {}
    md.append("| active clients | seconds | queries | QPS | QPS per second min–max | p50 ms | p95 ms | p99 ms | max ms | errors | clients lost |")
    md.append("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|")
    qps = f"{act['qps']:.0f}" if act.get("qps") else "–"
    md.append(f"| {act['active']} | {act['seconds']} | {act['queries']} | {qps} | "
              f"{v(act.get('qps_per_second_min'))}–{v(act.get('qps_per_second_max'))} | {fmt_ms(lat, 'p50_ms')} | "
              f"{fmt_ms(lat, 'p95_ms')} | {fmt_ms(lat, 'p99_ms')} | {fmt_ms(lat, 'max_ms')} | "
              f"{failures_text(act.get('errors'))} | {act.get('clients_lost', 0)} |")
    md.append("")
    e0, e1 = ph["baseline"].get("errors_sent") or {}, ph["closed"].get("errors_sent") or {}
    sent = {k: int(e1[k] - e0.get(k, 0)) for k in e1 if e1[k] - e0.get(k, 0) > 0}
    md.append(f"ERR packets the router sent itself during the test (`dbrouter_errors_sent_total`): {failures_text(sent)}. "
              f"Router RSS peak {fmt_mib(rss_peak)}.")
    md.append("")
    return "\n".join(intro), "\n".join(md)


def fmt_mib(kib):
    return "–" if kib is None else f"{kib / 1024:.1f} MiB"


def fmt_ms(s, key):
    if not s:
        return "–"
    v = s.get(key)
    return "–" if v is None else (f"{v:.2f}" if v < 10 else f"{v:.0f}")


def failures_text(f):
    if not f:
        return "none"
    return "; ".join(f"{n} × {o}" for o, n in sorted(f.items(), key=lambda kv: -kv[1]))


def markdown(res, meta):
    c = res["config"]
    ph = res["phases"]
    per = res["per_connection_kib"]
    target = 16.0
    md = ["## Connection scale", ""]
    md.append("`scripts/bench-connections` holds many idle client connections on one dbrouter (the dev "
              "cluster's) with a small asyncio MySQL client (`scripts/bench.d/connections.py`: raw sockets, "
              "the handshake with `mysql_native_password`, `SELECT 1`), measures the router process's RSS "
              "(`VmRSS`) and file descriptors, times `SELECT 1` through an existing connection and through "
              "new ones while they are all open, and finally lets as many clients log in at the same moment.")
    md.append("")
    md.append("```sh")
    md.append(meta.get("COMMAND", "scripts/bench-connections"))
    md.append("```")
    md.append("")
    cid = res.get("router_connection_id_at_start")
    fresh = (f" The router had accepted {cid - 1} connections before (connection id of the first warm-up "
             f"login); measure on a freshly started router, as one that served a lot reuses freed memory "
             f"and shows less RSS growth." if cid else "")
    md.append(f"Measured {meta.get('DATE', '?')} on {meta.get('MACHINE', '?')}; dbrouter {meta.get('DBROUTER_BUILD', '?')}.{fresh} "
              f"Router config: `server.max_connections = {c['router_max_connections']}`, "
              f"`pool.max_per_shard = {c['pool_max_per_shard']}`, `pool.wait_ms = {c['pool_wait_ms']}`, "
              f"`timeouts.handshake_ms = {c['handshake_ms']}`; the global shard's master has "
              f"`max_connections = {res.get('mariadb_max_connections')}`.")
    md.append("")
    b, p1, p2 = ph["baseline"], ph["logged_in"], ph["all_open"]

    def master_conns(d):
        v = d.get("mariadb_threads_connected")
        return "unknown (the status query itself was refused: master full)" if v is None else str(v)

    if p1["limit_hit"]:
        md.append(f"**Logins hit a limit after {p1['clients']} clients** (batches of {c['batch']}, "
                  f"{c['concurrency_login']} at a time): {failures_text({o: v['count'] for o, v in p1['failures'].items()})}. "
                  f"The master then had {master_conns(p1)} connections: each logged-in session holds a pooled "
                  f"backend connection, so the number of clients that can be logged in at once is bounded by "
                  f"the master's `max_connections`, not by the router. {p2['released']} of them were closed "
                  f"again to make room for the probes, and the other {p2['held_at_login']} connections were held "
                  f"at the furthest step a client can reach without a backend connection: TCP accepted, "
                  f"greeting received, login not yet sent.")
    else:
        md.append(f"**All {p1['clients']} clients logged in** (batches of {c['batch']}, {c['concurrency_login']} "
                  f"at a time, in {p1['seconds']} s; login p50 {fmt_ms(p1['login_latency'], 'p50_ms')} ms, "
                  f"p99 {fmt_ms(p1['login_latency'], 'p99_ms')} ms). The master then had {master_conns(p1)} "
                  f"connections: logged-in idle sessions hold no backend connection.")
    md.append("")
    md.append("| state | clients | router RSS | RSS per connection | router fds |")
    md.append("|---|---:|---:|---:|---:|")
    md.append(f"| baseline (after 3 warm-up logins) | 0 | {b['rss_kib'] / 1024:.1f} MiB | – | {b['router_fds']} |")
    if per["logged_in"] is not None:
        md.append(f"| logged in | {p1['clients']} | {p1['rss_kib'] / 1024:.1f} MiB | **{per['logged_in']:.1f} KiB** | {p1['router_fds']} |")
    if per["held_at_login"] is not None:
        md.append(f"| + held at the login step (greeting received) | {p2['held_at_login']} | {p2['rss_kib'] / 1024:.1f} MiB "
                  f"| **{per['held_at_login']:.1f} KiB** | {p2['router_fds']} |")
    if per["all_open"] is not None and per["held_at_login"] is not None:
        md.append(f"| all open together | {p2['clients']} | | {per['all_open']:.1f} KiB (average) | |")
    md.append("")
    parts = []
    li, hl = per["logged_in"], per["held_at_login"]
    if li is not None:
        parts.append(f"logged-in session {li:.1f} KiB: {'**met**' if li <= target else '**not met**'}")
    if hl is not None:
        parts.append(f"connection at the login step {hl:.1f} KiB: {'**met**' if hl <= target else '**not met**'}")
    md.append(f"Target: RSS per connection ≤ {target:.0f} KiB — " + "; ".join(parts) +
              ". (RSS only: kernel socket buffers are not in it.)")
    md.append("")
    md.append("**Serving while they are open** (100 probes each, one after the other; new connection = "
              "connect, log in, `SELECT 1`, quit, timed end to end):")
    md.append("")
    md.append("| open client connections | probe | ok | p50 ms | p99 ms | failures |")
    md.append("|---|---|---:|---:|---:|---|")

    def row(when, what, pr):
        if pr is None:
            return
        ok = pr.get("ok")
        n_ok = ok["n"] if ok else 0
        fl = pr.get("failures") or {}
        extra = ""
        if fl and pr.get("failure_latency"):
            extra = f" (answered in p50 {fmt_ms(pr['failure_latency'], 'p50_ms')} ms, p99 {fmt_ms(pr['failure_latency'], 'p99_ms')} ms)"
        md.append(f"| {when} | {what} | {n_ok} | {fmt_ms(ok, 'p50_ms')} | {fmt_ms(ok, 'p99_ms')} | {failures_text(fl)}{extra} |")

    pa, pm = ph["probes_all_open"], ph["probes_n_minus_2"]
    row(f"{pa['clients']}", "`SELECT 1` on an existing connection", pa["existing"])
    row(f"{pa['clients']}", "new connection + `SELECT 1`", pa["new"])
    row(f"{pm['clients']}", "`SELECT 1` on an existing connection", pm["existing"])
    row(f"{pm['clients']}", "new connection + `SELECT 1`", pm["new"])
    if pa.get("since_held_opened_s") is not None:
        md.append("")
        md.append(f"(The held connections were opened in {p2['seconds_to_open']} s; the probes ended "
                  f"{pm['since_held_opened_s']} s after the first of them connected, within "
                  f"`timeouts.handshake_ms`.)")
    md.append("")
    p4 = ph["storm"]
    md.append(f"**Login storm:** after closing everything, {p4['greeted']} connections received their greeting "
              f"and then all sent their login at the same moment (an application fleet restarting):")
    md.append("")
    md.append("| outcome | clients | p50 ms | p99 ms | max ms |")
    md.append("|---|---:|---:|---:|---:|")
    for o, v in p4["outcomes"].items():
        md.append(f"| {o} | {v['count']} | {fmt_ms(v, 'p50_ms')} | {fmt_ms(v, 'p99_ms')} | {fmt_ms(v, 'max_ms')} |")
    md.append("")
    md.append(f"Then: {p4['logged_in_now']} clients logged in, the master had {master_conns(p4)} connections, "
              f"router RSS {p4['rss_kib'] / 1024:.1f} MiB, {p4['router_fds']} fds.")
    md.append("")
    ps = ph["probes_after_storm"]
    md.append("| open client connections | probe | ok | p50 ms | p99 ms | failures |")
    md.append("|---|---|---:|---:|---:|---|")
    row(f"{ps['clients']} (after the storm)", "`SELECT 1` on an existing connection", ps["existing"])
    row(f"{ps['clients']} (after the storm)", "new connection + `SELECT 1`", ps["new"])
    md.append("")
    e = ph["end"]
    md.append(f"At the end, all closed: router RSS {e['rss_kib'] / 1024:.1f} MiB (freed memory is not "
              f"returned to the system), {e['router_fds']} fds, master connections {master_conns(e)} "
              f"(idle pooled ones).")
    md.append("")
    return "\n".join(md)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--db", default="")
    ap.add_argument("--pid", type=int, required=True, help="dbrouter's pid")
    ap.add_argument("--master-host", required=True)
    ap.add_argument("--master-port", type=int, required=True)
    ap.add_argument("--master-pid", type=int, default=0, help="the master's mariadbd (its RSS in --active)")
    ap.add_argument("--backend-user", required=True)
    ap.add_argument("--backend-password", required=True)
    ap.add_argument("--conns", type=int, default=10000)
    ap.add_argument("--batch", type=int, default=100, help="logins per batch while looking for the limit")
    ap.add_argument("--headroom", type=int, default=50,
                    help="logged-in clients closed again when logins hit a limit, to make room for the probes")
    ap.add_argument("--probes", type=int, default=100)
    ap.add_argument("--concurrency-open", type=int, default=500)
    ap.add_argument("--concurrency-login", type=int, default=32)
    ap.add_argument("--timeout", type=float, default=15.0)
    ap.add_argument("--router-max-connections", type=int, default=0)
    ap.add_argument("--pool-max", type=int, default=1000)
    ap.add_argument("--pool-wait-ms", type=int, default=2000)
    ap.add_argument("--handshake-ms", type=int, default=10000)
    ap.add_argument("--meta", help="KEY=VALUE file (COMMAND, DATE, MACHINE, DBROUTER_BUILD)")
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--doc", help="docs/benchmarks.md to update (section '## Connection scale', or with "
                                  "--active '## Idle and active clients')")
    ap.add_argument("--active", type=int, default=0,
                    help="the other test: this many of the clients busy, the rest idle (0: the scale test)")
    ap.add_argument("--active-time", type=float, default=30, help="seconds of the active phase")
    ap.add_argument("--think-ms", type=float, default=0, help="pause of an active client between its queries")
    ap.add_argument("--after-login", action="append", default=None,
                    help="a statement each client sends right after its login (repeatable; "
                         "default: SET NAMES utf8mb4 and SET autocommit = 1)")
    ap.add_argument("--no-after-login", action="store_true", help="send nothing after the login")
    ap.add_argument("--table", default="bench_conns", help="table of the point selects: id INT key, c column")
    ap.add_argument("--rows", type=int, default=10000, help="its rows, ids 1..rows")
    ap.add_argument("--metrics", help="the router's /metrics URL (pool in use / idle / waiting)")
    ap.add_argument("--shard", default="shard1", help="the shard of the table (its master is --master-*)")
    ap.add_argument("--mode", default="", help="the router's [pool] mode, for the report")
    ap.add_argument("--settings", default="", help="the router's settings, for the report")
    ap.add_argument("--settle", type=float, default=2.0, help="seconds of idle between the steps")
    args = ap.parse_args()
    if args.no_after_login:
        args.after_login = []
    elif args.after_login is None:
        args.after_login = ["SET NAMES utf8mb4", "SET autocommit = 1"]

    if args.active > 0:
        return main_active(args)
    res = asyncio.run(Bench(args).run())
    meta = {}
    if args.meta and os.path.exists(args.meta):
        with open(args.meta) as f:
            for line in f:
                if "=" in line:
                    k, v = line.rstrip("\n").split("=", 1)
                    meta[k] = v
    with open(os.path.join(args.out_dir, "connections.json"), "w") as f:
        json.dump(res, f, indent=2)
    text = markdown(res, meta)
    with open(os.path.join(args.out_dir, "connections.md"), "w") as f:
        f.write(text)
    print(text)
    if args.doc:
        replace_section(args.doc, "Connection scale", text)
        print(f"connections: updated section '## Connection scale' of {args.doc}", file=sys.stderr)
    return 0


def main_active(args):
    res = asyncio.run(ActiveBench(args).run())
    res["config"]["settle_s"] = args.settle
    meta = {}
    if args.meta and os.path.exists(args.meta):
        with open(args.meta) as f:
            for line in f:
                if "=" in line:
                    k, v = line.rstrip("\n").split("=", 1)
                    meta[k] = v
    with open(os.path.join(args.out_dir, "active.json"), "w") as f:
        json.dump(res, f, indent=2)
    intro, sub = markdown_active(res, meta)
    with open(os.path.join(args.out_dir, "active.md"), "w") as f:
        f.write(intro + "\n\n" + sub)
    print(sub)
    if args.doc:
        mode = args.mode or "?"
        others = tuple(f"{m} pooling" for m in ("session", "transaction") if m != mode)
        replace_section(args.doc, "Idle and active clients", intro + "\n\n" + sub, before="TLS cost",
                        keep=others + ("Analysis",))
        print(f"connections: updated section '## Idle and active clients' (### {mode} pooling) of {args.doc}",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
