#!/usr/bin/env python3
"""Report of scripts/bench: medians over repeats, ratios, targets, gnuplot plots, and the
"## End-to-end load" section of docs/benchmarks.md; for a build-vs-build run (BENCH_BUILDS,
META.env has BUILDS=…) the builds compared instead, in the section "## Build vs build".

    report.py --tsv RESULTS.tsv --meta META.env --out-dir DIR [--doc docs/benchmarks.md --png-dir docs]

META.env holds KEY=VALUE lines written by scripts/bench (command, machine, versions, …).
Also usable as a library: replace_section() is shared with scripts/bench-connections.
"""
import argparse
import csv
import os
import statistics
import subprocess
import sys

TARGETS = ["direct", "haproxy", "dbrouter", "floor", "pipefloor"]  # + the variants of a run, after dbrouter (use_variants)
TARGET_LABEL = {
    "direct": "MariaDB direct",
    "haproxy": "HAProxy (TCP relay)",
    "dbrouter": "dbrouter",
    "floor": "smallest relay (examples/relay_floor.rs)",
    "pipefloor": "pipelining floor (examples/pipeline_floor.rs)",
}
TEST_ORDER = ["oltp_point_select", "oltp_read_only", "oltp_write_only", "oltp_read_write"]

# Targets stated by the performance-harness issue.
T1_QPS_VS_HAPROXY = 1.0          # dbrouter QPS >= 1.0x HAProxy, point selects, 16 and 64 threads
T1_THREADS = (16, 64)
T2_CPU_VS_HAPROXY = 1.5          # proxy CPU per query <= 1.5x HAProxy's
T3_ADDED_P99_US = 50.0           # p99 added over direct <= 50 us at 16 threads
T3_THREADS = 16


def use_variants(meta):
    """The router variants of a run (BENCH_VARIANTS: meta VARIANTS=…) become targets after dbrouter."""
    names = meta.get("VARIANTS", "").split()
    # The cluster's router named with what it ran, beside the variants' settings.
    st = dict(kv.split("=", 1) for kv in meta.get("DBROUTER_SETTINGS", "").split() if "=" in kv)
    if names and st.get("pool.mode"):
        TARGET_LABEL["dbrouter"] = f"dbrouter ({st['pool.mode']}, pool {st.get('pool.max_per_shard', '?')})"
    for n in names:
        if n not in TARGETS:
            TARGETS.insert(TARGETS.index("floor"), n)
            TARGET_LABEL[n] = f"dbrouter {n}"
    return names


def variant_lines(meta, with_cluster=True):
    """Markdown: what each router ran with — the cluster's dbrouter (when it was a target) and each
    variant's settings."""
    names = meta.get("VARIANTS", "").split()
    md = []
    if (with_cluster and meta.get("DBROUTER_SETTINGS")) or names:
        md.append("| router target | settings given | settings in effect (defaults included) | binary |")
        md.append("|---|---|---|---|")
        if with_cluster and meta.get("DBROUTER_SETTINGS"):
            md.append(f"| dbrouter (the dev cluster's) | – | `{meta['DBROUTER_SETTINGS']}` | the cluster's |")
        for n in names:
            frm = meta.get(f"VARIANT_{n}_FROM", "")
            binp = meta.get(f"VARIANT_{n}_BIN", "")
            btxt = f"build {frm}" if frm and not frm.startswith("/") else (binp or "?")
            if not frm:
                btxt = "the cluster's dbrouter's"
            md.append(f"| {n} | `{meta.get(f'VARIANT_{n}_SET', '')}` | `{meta.get(f'VARIANT_{n}_SETTINGS', '?')}` | {btxt} |")
    return md


def backend_cell(a, tg):
    """'open / in use' backend connections to shard1's master (medians of the per-run maxima)."""
    if a.get("backend") is None:
        return "–"
    cell = f0(a["backend"])
    if a.get("in_use") is not None:
        cell += f" / {f0(a['in_use'])}"
    return cell


def replace_section(doc_path, title, body, before=None, keep=("Analysis",)):
    """Replace the section starting with the line '## <title>' (up to the next '## ' line)
    by body (which starts with that heading); append it (or insert it before the section
    '## <before>' when that exists) if it is missing. Other sections are kept byte for byte,
    and so are the hand-written subsections '### <keep>' of the old section (re-appended at
    the end of the new one unless body has them)."""
    heading = f"## {title}"
    with open(doc_path) as f:
        lines = f.read().split("\n")
    start = next((i for i, l in enumerate(lines) if l.rstrip() == heading), None)
    body_lines = body.rstrip("\n").split("\n")
    if start is not None:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        old = lines[start:end]
        for name in keep:
            sub = f"### {name}"
            if any(l.rstrip() == sub for l in body_lines):
                continue
            at = next((i for i, l in enumerate(old) if l.rstrip() == sub), None)
            if at is None:
                continue
            stop = next((i for i in range(at + 1, len(old)) if old[i].startswith("### ")), len(old))
            kept = old[at:stop]
            while kept and kept[-1] == "":
                kept.pop()
            body_lines = body_lines + [""] + kept
        tail = lines[end:]
        new = lines[:start] + body_lines + ([""] + tail if tail else [""])
    else:
        at = None
        if before:
            at = next((i for i, l in enumerate(lines) if l.rstrip() == f"## {before}"), None)
        if at is None:
            while lines and lines[-1] == "":
                lines.pop()
            new = lines + [""] + body_lines + [""]
        else:
            new = lines[:at] + body_lines + [""] + lines[at:]
    text = "\n".join(new)
    while text.endswith("\n\n"):
        text = text[:-1]
    if not text.endswith("\n"):
        text += "\n"
    tmp = doc_path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, doc_path)


def num(v):
    if v is None or v == "":
        return None
    try:
        return float(v)
    except ValueError:
        return None


def med(values):
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def load(tsv):
    with open(tsv) as f:
        return list(csv.DictReader(f, delimiter="\t"))


def read_meta(path):
    meta = {}
    if path and os.path.exists(path):
        with open(path) as f:
            for line in f:
                line = line.rstrip("\n")
                if "=" in line:
                    k, v = line.split("=", 1)
                    meta[k] = v
    return meta


def f0(v):
    return "–" if v is None else f"{v:,.0f}".replace(",", " ")


def f2(v):
    return "–" if v is None else f"{v:.2f}"


def fratio(v):
    return "–" if v is None else f"{v:.2f}×"


def fsigned(v):
    return "–" if v is None else f"{v:+,.0f}".replace(",", " ")


def aggregate(rows):
    """{(test, threads, target): medians} over the ok repeats."""
    groups = {}
    for r in rows:
        key = (r["test"], int(r["threads"]), r["target"])
        groups.setdefault(key, []).append(r)
    agg = {}
    for key, rs in groups.items():
        ok = [r for r in rs if r["status"] == "ok"]
        qps = [num(r["qps"]) for r in ok]
        agg[key] = {
            "runs": len(rs),
            "ok": len(ok),
            "qps": med(qps),
            "qps_min": min(qps) if qps else None,
            "qps_max": max(qps) if qps else None,
            "p50": med(num(r["p50_us"]) for r in ok),
            "p95": med(num(r["p95_us"]) for r in ok),
            "p99": med(num(r["p99_us"]) for r in ok),
            "p99_all": [num(r["p99_us"]) for r in ok if num(r["p99_us"]) is not None],
            "cpu": med(num(r["proxy_cpu_us_per_query"]) for r in ok),
            "server_cpu": med(num(r["server_cpu_us_per_query"]) for r in ok),
            "sysbench_cpu": med(num(r["sysbench_cpu_s"]) / num(r["queries"]) * 1e6 for r in ok
                                if num(r.get("sysbench_cpu_s")) is not None and num(r["queries"])),
            "bytes_in": med(num(r.get("server_bytes_in_per_query")) for r in ok),
            "bytes_out": med(num(r.get("server_bytes_out_per_query")) for r in ok),
            "foreign": med(num(r["foreign_cpu_s"]) for r in ok),
            "errors": sum(int(num(r["ignored_errors"]) or 0) for r in ok),
            "backend": med(num(r.get("backend_conns_max")) for r in ok),
            "in_use": med(num(r.get("pool_in_use_max")) for r in ok),
            "waiting": max((num(r.get("pool_waiting_max")) or 0 for r in ok), default=None),
            "router_errors": sorted({r.get("router_errors") for r in rs if r.get("router_errors") not in (None, "", "none")}),
        }
    return agg


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def diff(a, b):
    if a is None or b is None:
        return None
    return a - b


def test_rank(t):
    """Sort key: the sysbench tests in TEST_ORDER, a fixed-rate run (`test@N/s`) after its test."""
    base, _, rate = t.partition("@")
    return (TEST_ORDER.index(base) if base in TEST_ORDER else 99, rate != "", t)


def cells(agg):
    tests = sorted({k[0] for k in agg}, key=test_rank)
    threads = sorted({k[1] for k in agg})
    return tests, threads


def tables(agg):
    tests, threads = cells(agg)
    out = []
    out.append("| test | threads | target | QPS (median) | QPS min–max | p50 µs | p95 µs | p99 µs | proxy CPU µs/query | MariaDB CPU µs/query | MariaDB bytes in / out per query | backend conns |")
    out.append("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for t in tests:
        for n in threads:
            for tg in TARGETS:
                a = agg.get((t, n, tg))
                if not a:
                    continue
                if a["ok"] == 0:
                    out.append(f"| {t} | {n} | {tg} | failed ({a['runs']} runs) | | | | | | | | |")
                    continue
                rng = f"{f0(a['qps_min'])}–{f0(a['qps_max'])}" if a["ok"] > 1 else "–"
                cpu = "–" if tg == "direct" else f2(a["cpu"])
                note = "" if a["ok"] == a["runs"] else f" ({a['runs'] - a['ok']} of {a['runs']} runs failed)"
                out.append(f"| {t} | {n} | {tg}{note} | {f0(a['qps'])} | {rng} | {f0(a['p50'])} | {f0(a['p95'])} "
                           f"| {f0(a['p99'])} | {cpu} | {f2(a['server_cpu'])} | {f0(a['bytes_in'])} / {f0(a['bytes_out'])} "
                           f"| {backend_cell(a, tg)} |")
    table1 = "\n".join(out)

    out = []
    out.append("| test | threads | QPS dbrouter/direct | QPS dbrouter/HAProxy | HAProxy/direct | CPU/query dbrouter/HAProxy | p99 added over direct µs: dbrouter | … HAProxy | p50 added over direct µs: dbrouter | … HAProxy |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for t in tests:
        for n in threads:
            d, h, r = (agg.get((t, n, tg)) or {} for tg in ("direct", "haproxy", "dbrouter"))
            if not (d or h or r):
                continue  # e.g. the fixed-rate run exists at one thread count only
            out.append(
                f"| {t} | {n} | {fratio(ratio(r.get('qps'), d.get('qps')))} | {fratio(ratio(r.get('qps'), h.get('qps')))} "
                f"| {fratio(ratio(h.get('qps'), d.get('qps')))} | {fratio(ratio(r.get('cpu'), h.get('cpu')))} "
                f"| {fsigned(diff(r.get('p99'), d.get('p99')))} | {fsigned(diff(h.get('p99'), d.get('p99')))} "
                f"| {fsigned(diff(r.get('p50'), d.get('p50')))} | {fsigned(diff(h.get('p50'), d.get('p50')))} |")
    table2 = "\n".join(out)
    return table1, table2


def cpu_budget(agg, targets, cores):
    """Where the host's CPU went per query, by process, and the QPS ceiling it leaves.

    On a host that runs the load generator, the database and the proxy, QPS ≤ cores × 1e6 /
    (µs of CPU per query of all three). "Free-proxy ceiling" drops the proxy's share: the QPS
    that target's run would reach if its proxy cost nothing while sysbench and MariaDB cost
    what they did in that run — no proxy on these cores can beat it.
    """
    tests, threads = cells(agg)
    out = [f"| test | threads | target | QPS | CPU µs per query: sysbench | MariaDB | proxy | sum "
           f"| free-proxy ceiling ({cores} cores) | QPS / ceiling |",
           "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for t in tests:
        for n in threads:
            for tg in targets:
                a = agg.get((t, n, tg))
                if not a or a["ok"] == 0 or a.get("sysbench_cpu") is None or a["server_cpu"] is None:
                    continue
                proxy = 0.0 if tg == "direct" else (a["cpu"] or 0.0)
                load = a["sysbench_cpu"] + a["server_cpu"]
                ceiling = cores * 1e6 / load if load else None
                out.append(f"| {t} | {n} | {tg} | {f0(a['qps'])} | {f2(a['sysbench_cpu'])} | {f2(a['server_cpu'])} "
                           f"| {'–' if tg == 'direct' else f2(proxy)} | {f2(load + proxy)} | {f0(ceiling)} "
                           f"| {fratio(ratio(a['qps'], ceiling))} |")
    return "\n".join(out)


def budget_section(agg, targets, meta):
    """The "CPU budget" subsection of a report, or [] when the run has no sysbench CPU."""
    cores = int(meta.get("CORES") or os.cpu_count() or 1)
    table = cpu_budget(agg, targets, cores)
    if table.count("\n") < 2:
        return []
    return ["### CPU budget (median over repeats)", "",
            "CPU per query of each process on the host (utime+stime over the run, divided by sysbench's "
            "query count; sysbench's from its own rusage, start-up included), and the QPS that target's run "
            f"would have reached on {cores} fully busy cores had its proxy cost nothing: "
            "cores × 10⁶ / (sysbench + MariaDB µs per query). No proxy sharing these cores can pass it.",
            "", table, ""]


def verdict(ok):
    return "**met**" if ok else "**not met**"


def targets(agg):
    tests, threads = cells(agg)
    lines = []
    # T1
    parts, oks = [], []
    for n in T1_THREADS:
        r = agg.get(("oltp_point_select", n, "dbrouter"))
        h = agg.get(("oltp_point_select", n, "haproxy"))
        x = ratio(r and r["qps"], h and h["qps"])
        if x is None:
            parts.append(f"{n} threads: not measured")
            continue
        oks.append(x >= T1_QPS_VS_HAPROXY)
        parts.append(f"{n} threads: {x:.2f}×")
    v = verdict(all(oks)) if oks and len(oks) == len(T1_THREADS) else ("**not measured**" if not oks else verdict(all(oks)) + " (partly measured)")
    lines.append(f"| dbrouter QPS ≥ {T1_QPS_VS_HAPROXY:.1f}× HAProxy's, oltp_point_select at {' and '.join(map(str, T1_THREADS))} threads "
                 f"| {'; '.join(parts)} | {v} |")
    # T2
    worst, fails, n_cells = None, [], 0
    for t in tests:
        for n in threads:
            r = agg.get((t, n, "dbrouter"))
            h = agg.get((t, n, "haproxy"))
            x = ratio(r and r["cpu"], h and h["cpu"])
            if x is None:
                continue
            n_cells += 1
            if worst is None or x > worst[0]:
                worst = (x, t, n)
            if x > T2_CPU_VS_HAPROXY:
                fails.append(f"{t}/{n}: {x:.2f}×")
    ps = [ratio((agg.get(("oltp_point_select", n, "dbrouter")) or {}).get("cpu"),
                (agg.get(("oltp_point_select", n, "haproxy")) or {}).get("cpu")) for n in threads]
    ps_txt = ", ".join(f"{n} thr {x:.2f}×" for n, x in zip(threads, ps) if x is not None)
    if n_cells:
        detail = f"point_select: {ps_txt}; worst cell {worst[1]}/{worst[2]} thr {worst[0]:.2f}×"
        if fails:
            detail += f"; over the target in {len(fails)} of {n_cells} cells"
        lines.append(f"| proxy CPU per query ≤ {T2_CPU_VS_HAPROXY:.1f}× HAProxy's (every test and thread count) | {detail} | {verdict(not fails)} |")
    else:
        lines.append(f"| proxy CPU per query ≤ {T2_CPU_VS_HAPROXY:.1f}× HAProxy's | – | **not measured** |")
    # T3. On two shared cores a saturated run's p99 is mostly run-queue delay (16 clients,
    # MariaDB and the proxy on 2 cores), far larger than 50 us. The fixed-rate run
    # (`oltp_point_select@N/s`, below saturation) measures what a proxy adds; it is used when
    # present. When direct MariaDB's own p99 moves between repeats by more than the target, or
    # a proxy comes out faster than direct, the difference of p99s cannot resolve 50 us and the
    # verdict says so.
    test = next((t for t in tests if t.startswith("oltp_point_select@")
                 and agg.get((t, T3_THREADS, "dbrouter")) and agg.get((t, T3_THREADS, "direct"))),
                "oltp_point_select")
    r = agg.get((test, T3_THREADS, "dbrouter"))
    d = agg.get((test, T3_THREADS, "direct"))
    h = agg.get((test, T3_THREADS, "haproxy"))
    x = diff(r and r["p99"], d and d["p99"])
    name = f"p99 added over direct ≤ {T3_ADDED_P99_US:.0f} µs, {test} at {T3_THREADS} threads"
    if x is None:
        lines.append(f"| {name} | – | **not measured** |")
    else:
        hx = diff(h and h["p99"], d and d["p99"])
        detail = f"dbrouter {x:+.0f} µs" + (f", HAProxy {hx:+.0f} µs" if hx is not None else "")
        detail += f" (direct p99 {d['p99']:.0f} µs"
        spread = (max(d["p99_all"]) - min(d["p99_all"])) if len(d["p99_all"]) > 1 else None
        if spread is not None:
            detail += f", {spread:.0f} µs apart between repeats"
        detail += ")"
        p50x = diff(r["p50"], d["p50"])
        p50h = diff(h and h["p50"], d["p50"])
        if p50x is not None:
            detail += f"; p50 added: dbrouter {p50x:+.0f} µs" + (f", HAProxy {p50h:+.0f} µs" if p50h is not None else "")
        f = agg.get((test, T3_THREADS, "floor"))
        floor_p99 = diff(f and f["p99"], d["p99"])
        if floor_p99 is not None:
            detail += (f"; the smallest relay (no parsing, examples/relay_floor.rs) adds {floor_p99:+.0f} µs p99, "
                       f"{diff(f['p50'], d['p50']):+.0f} µs p50")
        one_r = agg.get(("oltp_point_select", 1, "dbrouter"))
        one_d = agg.get(("oltp_point_select", 1, "direct"))
        one_h = agg.get(("oltp_point_select", 1, "haproxy"))
        if one_r and one_d:
            detail += (f"; at 1 thread p50/p99 added: dbrouter {diff(one_r['p50'], one_d['p50']):+.0f}/"
                       f"{diff(one_r['p99'], one_d['p99']):+.0f} µs")
            if one_h:
                detail += f", HAProxy {diff(one_h['p50'], one_d['p50']):+.0f}/{diff(one_h['p99'], one_d['p99']):+.0f} µs"
        noisy = x < 0 or (spread is not None and spread > T3_ADDED_P99_US)
        if "@" in test:
            sat_r = agg.get(("oltp_point_select", T3_THREADS, "dbrouter"))
            sat_d = agg.get(("oltp_point_select", T3_THREADS, "direct"))
            if sat_r and sat_d:
                detail += (f"; saturated (no rate limit) p99 added: dbrouter "
                           f"{diff(sat_r['p99'], sat_d['p99']):+.0f} µs")
        v = ("**inconclusive** (p99 here is dominated by scheduling noise far larger than 50 µs)"
             if noisy else verdict(x <= T3_ADDED_P99_US))
        if x > T3_ADDED_P99_US and floor_p99 is not None and floor_p99 > T3_ADDED_P99_US:
            v += " on this host: a hop through any user-space relay costs more here"
        lines.append(f"| {name} | {detail} | {v} |")
    head = "| target | measured (medians) | |\n|---|---|---|"
    return head + "\n" + "\n".join(lines)


def plots(agg, out_dir, png_dir):
    """gnuplot PNGs: QPS, p99 and proxy CPU per query vs threads, one panel per test."""
    agg = {k: v for k, v in agg.items() if "@" not in k[0]}  # fixed-rate runs: one thread count
    tests, threads = cells(agg)
    if not tests:
        return []
    shown = [tg for tg in TARGETS if any(k[2] == tg for k in agg)]
    data_dir = os.path.join(out_dir, "plot")
    os.makedirs(data_dir, exist_ok=True)
    for t in tests:
        with open(os.path.join(data_dir, f"{t}.dat"), "w") as f:
            f.write("# threads " + " ".join(f"{tg}_qps {tg}_p99_us {tg}_cpu_us" for tg in TARGETS) + "\n")
            for n in threads:
                vals = []
                for tg in TARGETS:
                    a = agg.get((t, n, tg)) or {}
                    for k in ("qps", "p99", "cpu"):
                        v = a.get(k)
                        vals.append("NaN" if v is None or (tg == "direct" and k == "cpu") else f"{v:.3f}")
                f.write(f"{n} " + " ".join(vals) + "\n")
    n = len(tests)
    cols = 2 if n > 1 else 1
    rows = (n + cols - 1) // cols
    width, height = 560 * cols, 400 * rows
    xt = ", ".join(f'"{x}" {x}' for x in threads)
    made = []
    specs = [
        ("bench-qps.png", "QPS (queries/s)", 0, "QPS vs client threads", False),
        ("bench-p99.png", "p99 latency per event (µs, log)", 1, "p99 latency vs client threads", True),
        ("bench-cpu.png", "proxy CPU µs per query", 2, "proxy CPU per query vs client threads", False),
    ]
    for name, ylabel, col, title, logy in specs:
        png = os.path.join(out_dir, name)
        gp = [
            f'set terminal pngcairo size {width},{height} font "DejaVu Sans,10" enhanced',
            f'set output "{png}"',
            f'set multiplot layout {rows},{cols} title "{title} — sysbench, median of repeats; dbrouter vs HAProxy vs MariaDB direct" font ",12"',
            "set logscale x 2",
            f"set xtics ({xt})",
            f'set xrange [{threads[0] * 0.8}:{threads[-1] * 1.25}]' if threads else "",
            'set xlabel "client threads"',
            f'set ylabel "{ylabel}"',
            "set grid",
            "set key below horizontal maxcols 3 samplen 2 width -3",
            "set yrange [0:*]" if not logy else "set logscale y",
            "set format y \"%.0f\"" if col != 2 else "set format y \"%.1f\"",
        ]
        styles = {"direct": 'lc rgb "#1b9e77" pt 7', "haproxy": 'lc rgb "#d95f02" pt 5', "dbrouter": 'lc rgb "#7570b3" pt 9',
                  "floor": 'lc rgb "#999999" pt 13 dt 2',
                  "pipefloor": 'lc rgb "#666666" pt 12 dt 3'}
        palette = ["#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#1f78b4", "#666666"]
        for i, tg in enumerate(t for t in TARGETS if t not in styles):
            styles[tg] = f'lc rgb "{palette[i % len(palette)]}" pt {11 + 2 * (i % 3)} dt {2 + i % 3}'

        for t in tests:
            dat = os.path.join(data_dir, f"{t}.dat")
            gp.append(f'set title "{t}" noenhanced')
            series = []
            for i, tg in enumerate(TARGETS):
                if tg not in shown or (col == 2 and tg == "direct"):
                    continue
                c = 2 + i * 3 + col
                series.append(f'"{dat}" using 1:{c} with linespoints lw 2 ps 1.2 {styles[tg]} title "{TARGET_LABEL[tg]}" noenhanced')
            gp.append("plot " + ", \\\n     ".join(series))
        gp.append("unset multiplot")
        script = os.path.join(data_dir, name.replace(".png", ".gp"))
        with open(script, "w") as f:
            f.write("\n".join(g for g in gp if g) + "\n")
        res = subprocess.run(["gnuplot", script], capture_output=True, text=True)
        if res.returncode != 0:
            print(f"bench: gnuplot failed for {name}: {res.stderr.strip()}", file=sys.stderr)
            continue
        made.append(png)
        if png_dir:
            dst = os.path.join(png_dir, name)
            with open(png, "rb") as src, open(dst + ".tmp", "wb") as d:
                d.write(src.read())
            os.replace(dst + ".tmp", dst)
    return made


def pct(v):
    return "–" if v is None else f"{v * 100:+.1f} %"


def spread(values):
    """(max - min) / median of the values, or None for fewer than two."""
    vals = [v for v in values if v is not None]
    if len(vals) < 2 or not statistics.median(vals):
        return None
    return (max(vals) - min(vals)) / statistics.median(vals)


def direction(ratios):
    """What paired ratios (one per repeat) say about the sign of a difference."""
    if len(ratios) < 2:
        return "one repeat"
    if all(r > 1 for r in ratios):
        return "higher in every repeat"
    if all(r < 1 for r in ratios):
        return "lower in every repeat"
    return "no consistent direction"


def build_report(rows, meta):
    """The Markdown of a build-vs-build run (scripts/bench with BENCH_BUILDS)."""
    builds = meta.get("BUILDS", "").split()
    base = builds[0]
    others = builds[1:]
    run_targets = meta.get("BENCH_TARGETS_RUN", " ".join(builds)).split()
    refs = [t for t in run_targets if t not in builds]
    agg = aggregate(rows)
    tests, threads = cells(agg)

    def b(name, key):
        return meta.get(f"BUILD_{name}_{key}", "")

    # Per repeat: {(test, threads, target, repeat): row} of the ok runs, for paired ratios.
    by_rep = {}
    for r in rows:
        if r["status"] == "ok":
            by_rep[(r["test"], int(r["threads"]), r["target"], int(r["repeat"]))] = r

    def paired(t, n, other, col):
        out = []
        reps = sorted({k[3] for k in by_rep if k[0] == t and k[1] == n})
        for rp in reps:
            x, y = by_rep.get((t, n, other, rp)), by_rep.get((t, n, base, rp))
            v = ratio(num(x and x[col]), num(y and y[col]))
            if v is not None:
                out.append(v)
        return out

    md = []
    md.append("## Build vs build")
    md.append("")
    md.append(f"`scripts/bench` with `BENCH_BUILDS` compares dbrouter builds end to end: for each build it starts "
              "one more dbrouter from that binary with the dev cluster's config (`$DBR_STATE/dbrouter.toml` with its "
              "own listen and admin ports; same backends, ZooKeeper topology and accounts) and runs the same sysbench "
              "load through each, **interleaved in one run** — for each test and thread count: "
              f"{', '.join(run_targets)}, and again, `BENCH_REPEAT` times, the builds' order rotating from repeat "
              "to repeat — so machine noise and drift hit the builds alike. "
              + (f"{' and '.join(f'`{r}`' for r in refs)} ran in every repeat too, as a reference"
                 + (" (`direct` = MariaDB without a proxy: its spread between repeats is the host's own noise). "
                    if "direct" in refs else ". ")
                 if refs else "")
              + "QPS is sysbench's; CPU per query = utime+stime of that build's dbrouter process "
              "(`/proc/<pid>/stat`, all threads) over the run / sysbench's queries. Medians over the repeats; "
              f"the ratios {', '.join(f'{o}/{base}' for o in others)} are of the medians, and “paired” ones are "
              "taken within each repeat (the two builds ran back to back).")
    md.append("")
    md.append("| build | commit | source tree | binary |")
    md.append("|---|---|---|---|")
    for name in builds:
        commit = b(name, "COMMIT")
        ctext = f"`{commit[:7]}` {b(name, 'SUBJECT')}" if commit else "? (no dep-info beside the binary)"
        if b(name, "DIRTY"):
            ctext += " **+ uncommitted changes in src/**"
        if b(name, "STALE") not in ("", "0"):
            ctext += f" **(stale: {b(name, 'STALE')} source files newer than the binary)**"
        md.append(f"| {name} | {ctext.replace('|', '/')} | {b(name, 'SRC') or '?'} | {b(name, 'BIN')} (built {b(name, 'MTIME')}) |")
    md.append("")
    for name in builds:
        if b(name, "DROPPED"):
            md.append(f"{name} does not know some settings of the cluster's config and ran without them: "
                      f"`{b(name, 'DROPPED')}`.")
            md.append("")
    vl = variant_lines(meta, "dbrouter" in run_targets)
    if meta.get("VARIANTS"):
        md.append("Router variants (`BENCH_VARIANTS`, more targets started from the cluster's config with these settings):")
        md.append("")
        md.extend(vl)
        md.append("")
    md.append("To re-run: build each commit in a worktree of its own, start a dev cluster, run the command.")
    md.append("")
    md.append("```sh")
    made = {}  # (source tree, commit, target dir) -> the builds made so
    for name in builds:
        binp, src, commit = b(name, "BIN"), b(name, "SRC"), b(name, "COMMIT")
        tdir = binp[:-len("/release/dbrouter")] if binp.endswith("/release/dbrouter") else None
        if src and commit and tdir:
            made.setdefault((src, commit, tdir), []).append(name)
    for (src, commit, tdir), names in made.items():
        md.append(f"git worktree add --detach {src} {commit[:7]}   # {', '.join(names)}")
        md.append(f"(cd {src} && CARGO_TARGET_DIR={tdir} cargo build --release --bin dbrouter)")
    cluster = meta.get("CLUSTER", "")
    if cluster:
        first = b(builds[0], "BIN")
        md.append(f"export {cluster} && eval \"$(scripts/dev-cluster env)\"")
        md.append(f"DBR_ROUTER_BIN={first} scripts/dev-cluster up   # no cargo build of the repo's target/")
    md.append(meta.get("COMMAND", "scripts/bench"))
    md.append("```")
    md.append("")
    md.append(f"Measured {meta.get('DATE', '?')} on {meta.get('MACHINE', '?')}; {meta.get('VERSIONS', '')}. "
              f"Settings: tests `{meta.get('BENCH_TESTS', '?')}`, threads `{meta.get('BENCH_THREADS', '?')}`, "
              f"{meta.get('BENCH_TIME', '?')} s per run, {meta.get('BENCH_REPEAT', '?')} repeat(s), "
              f"{meta.get('BENCH_TABLES', '?')} tables × {meta.get('BENCH_TABLE_SIZE', '?')} rows; "
              f"{len(rows)} runs in {meta.get('ELAPSED', '?')}.")
    if meta.get("NOTE"):
        md.append("")
        md.append(meta["NOTE"])
    md.append("")
    md.append("### Results (median over repeats)")
    md.append("")
    md.append("| test | threads | target | QPS (median) | QPS min–max | CPU µs/query (median) | CPU µs/query min–max "
              "| p50 µs | p99 µs | foreign cores (median, max) | backend conns |")
    md.append("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for t in tests:
        for n in threads:
            for tg in run_targets:
                a = agg.get((t, n, tg))
                if not a:
                    continue
                if a["ok"] == 0:
                    md.append(f"| {t} | {n} | {tg} | failed ({a['runs']} runs) | | | | | | | |")
                    continue
                ok = [r for r in rows if r["test"] == t and int(r["threads"]) == n and r["target"] == tg and r["status"] == "ok"]
                cpus = [num(r["proxy_cpu_us_per_query"]) for r in ok if num(r["proxy_cpu_us_per_query"]) is not None]
                rng = f"{f0(a['qps_min'])}–{f0(a['qps_max'])}" if a["ok"] > 1 else "–"
                crng = f"{min(cpus):.2f}–{max(cpus):.2f}" if len(cpus) > 1 and tg != "direct" else "–"
                cpu = "–" if tg == "direct" else f2(a["cpu"])
                note = "" if a["ok"] == a["runs"] else f" ({a['runs'] - a['ok']} of {a['runs']} runs failed)"
                fc = [num(r["foreign_cpu_s"]) / num(r["seconds"]) for r in ok
                      if num(r["foreign_cpu_s"]) is not None and num(r["seconds"])]
                fct = f"{statistics.median(fc):.2f}, {max(fc):.2f}" if fc else "–"
                md.append(f"| {t} | {n} | {tg}{note} | {f0(a['qps'])} | {rng} | {cpu} | {crng} | {f0(a['p50'])} "
                          f"| {f0(a['p99'])} | {fct} | {backend_cell(a, tg)} |")
    md.append("")
    summary = []
    for o in others:
        md.append(f"### {o} / {base}")
        md.append("")
        md.append(f"| test | threads | QPS {o}/{base} | paired, per repeat | QPS {o} vs {base} over the repeats "
                  f"| CPU/query {o}/{base} | paired, per repeat | CPU/query {o} vs {base} over the repeats |")
        md.append("|---|---:|---:|---|---|---:|---|---|")
        for t in tests:
            for n in threads:
                x, y = agg.get((t, n, o)), agg.get((t, n, base))
                if not (x and y):
                    continue
                q = ratio(x["qps"], y["qps"])
                c = ratio(x["cpu"], y["cpu"])
                pq, pc = paired(t, n, o, "qps"), paired(t, n, o, "proxy_cpu_us_per_query")
                summary.append((o, t, n, q, c, pq, pc))
                md.append(f"| {t} | {n} | {fratio(q)} | {', '.join(f'{v:.3f}' for v in pq) or '–'} | {direction(pq)} "
                          f"| {fratio(c)} | {', '.join(f'{v:.3f}' for v in pc) or '–'} | {direction(pc)} |")
        md.append("")
    md.extend(budget_section(agg, run_targets, meta))
    md.append("### Reading these numbers")
    md.append("")
    # Noise: how far each target's own repeats moved (max - min over median), per cell.
    spreads_q, spreads_c = {}, {}
    for (t, n, tg) in agg:
        ok = [r for r in rows if r["test"] == t and int(r["threads"]) == n and r["target"] == tg and r["status"] == "ok"]
        sq = spread([num(r["qps"]) for r in ok])
        sc = spread([num(r["proxy_cpu_us_per_query"]) for r in ok])
        if sq is not None:
            spreads_q.setdefault(tg, []).append(sq)
        if sc is not None and tg != "direct":
            spreads_c.setdefault(tg, []).append(sc)
    lines = []
    if summary:
        wq = max((s for s in summary if s[3] is not None), key=lambda s: abs(s[3] - 1), default=None)
        wc = max((s for s in summary if s[4] is not None), key=lambda s: abs(s[4] - 1), default=None)
        if wq:
            lines.append(f"- Largest difference of the medians: QPS {pct(wq[3] - 1)} ({wq[0]} vs {base}, {wq[1]} at {wq[2]} "
                         f"thread{'s' if wq[2] != 1 else ''})"
                         + (f"; CPU per query {pct(wc[4] - 1)} ({wc[0]} vs {base}, {wc[1]} at {wc[2]} "
                            f"thread{'s' if wc[2] != 1 else ''})." if wc else "."))
        metric_cells = [p for s in summary for p in (s[5], s[6]) if len(p) > 1]
        consistent = [p for p in metric_cells if direction(p).endswith("every repeat")]
        reps = meta.get("BENCH_REPEAT", "")
        chance = (f" With {reps} repeats a cell does so by chance with probability {2 * 0.5 ** int(reps):.2f} when the "
                  f"builds do not differ (≈{len(metric_cells) * 2 * 0.5 ** int(reps):.1f} of {len(metric_cells)} expected), "
                  "so weigh the size of a difference against the spread below."
                  if reps.isdigit() and int(reps) > 1 else "")
        lines.append(f"- (cell, metric) pairs — QPS and CPU per query counted apart — whose paired ratios fell on the same "
                     f"side of 1 in every repeat: {len(consistent)} of {len(metric_cells)}." + chance)
    def sp(d, tg):
        v = d.get(tg)
        return f"{tg} median {statistics.median(v) * 100:.1f} %, max {max(v) * 100:.1f} %" if v else None
    qs = [x for x in (sp(spreads_q, tg) for tg in run_targets) if x]
    cs = [x for x in (sp(spreads_c, tg) for tg in run_targets) if x]
    if qs:
        lines.append("- Spread between repeats of one target in one cell ((max − min) / median), i.e. the noise a "
                     "difference must clear: QPS " + "; ".join(qs) + (". CPU per query " + "; ".join(cs) + "." if cs else "."))
    foreign = [num(r["foreign_cpu_s"]) / num(r["seconds"]) for r in rows
               if r["status"] == "ok" and num(r["foreign_cpu_s"]) is not None and num(r["seconds"])]
    if foreign:
        lines.append(f"- CPU used by processes outside this benchmark during a run: median {statistics.median(foreign):.2f} "
                     f"cores, max {max(foreign):.2f} of {meta.get('NPROC', '?')} (each run first waited up to "
                     f"{meta.get('BENCH_QUIET_WAIT', '?')} s for a quiet second). Load generator, MariaDB and the router "
                     "share the same cores: compare builds within one run, never absolute numbers across runs.")
    failed = [r for r in rows if r["status"] != "ok"]
    lines.append(f"- Failed runs: {len(failed)}.")
    if meta.get("WARNING"):
        lines.append(f"- **{meta['WARNING']}**")
    md.extend(lines)
    md.append("")
    return "\n".join(md)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tsv", required=True)
    ap.add_argument("--meta", required=True)
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--doc", help="docs/benchmarks.md to update (section '## End-to-end load')")
    ap.add_argument("--png-dir", help="where the PNGs go for the doc (docs/)")
    ap.add_argument("--perf", help="text file with the profile summary to include")
    args = ap.parse_args()

    rows = load(args.tsv)
    meta = read_meta(args.meta)
    use_variants(meta)
    if meta.get("BUILDS"):
        text = build_report(rows, meta)
        with open(os.path.join(args.out_dir, "report.md"), "w") as f:
            f.write(text)
        print(text)
        if args.doc:
            replace_section(args.doc, "Build vs build", text)
            print(f"bench: updated section '## Build vs build' of {args.doc}", file=sys.stderr)
        return 0
    agg = aggregate(rows)
    t1, t2 = tables(agg)
    tg = targets(agg)
    pngs = plots(agg, args.out_dir, args.png_dir if args.doc else None)

    failed = [r for r in rows if r["status"] != "ok"]
    errors = sum(int(num(r["ignored_errors"]) or 0) for r in rows if r["status"] == "ok")
    foreign = [num(r["foreign_cpu_s"]) for r in rows if r["status"] == "ok" and num(r["foreign_cpu_s"]) is not None]
    secs = [num(r["seconds"]) for r in rows if r["status"] == "ok"]
    repeats = meta.get("BENCH_REPEAT", "?")

    md = []
    md.append("## End-to-end load")
    md.append("")
    md.append("`scripts/bench` runs sysbench against three targets on one dev cluster and compares them "
              "**side by side**: MariaDB directly (shard1's master, the backend account), an HAProxy TCP "
              "relay in front of that master (`mode tcp`, one `listen`, started by the script), and "
              "dbrouter (the app account). Runs are interleaved — for each test and thread count: direct, "
              "HAProxy, dbrouter, and again, `BENCH_REPEAT` times — so machine noise hits all three alike; "
              "the tables show the median over the repeats.")
    md.append("")
    md.append("**How sysbench is routed.** sysbench's `sbtest*` tables are not listed in `[sharding]`, and "
              "`config/dbrouter.toml` has `unlisted_tables = \"global\"`, so dbrouter sends them to the global "
              "shard (shard1) — the same master the direct and HAProxy targets use. sysbench runs through "
              "dbrouter unchanged. Every statement still goes through the routing code (the scanner finds no "
              "key column and routes the table as global; sysbench's prepared statements are scanned once, at "
              "PREPARE). A keyed statement on a sharded table costs one routing decision — ≈0.1 µs for a "
              "point select (scan + ring lookup, see \"Routing decision\" above) — well under 1 % of "
              "dbrouter's CPU per query measured here, so these numbers stand for per-user routing too, "
              "within noise.")
    md.append("")
    md.append("What is measured, per run: QPS (sysbench's `queries`, which counts BEGIN/COMMIT in the "
              "transactional tests); p50/p95/p99 latency computed from the `--histogram` of that same run "
              "(latency is per sysbench *event*: one statement for `oltp_point_select`, one whole transaction "
              "for the other tests); proxy CPU per query = utime+stime of the HAProxy or dbrouter process "
              "(`/proc/<pid>/stat`, all threads) across the run, divided by sysbench's query count; the same "
              "for shard1's mariadbd; and the bytes shard1's master received and sent per query (its "
              "`Bytes_received` / `Bytes_sent` counters around the run, read as root over its socket): equal "
              "for all targets when the proxy is transparent. sysbench uses its defaults otherwise (server-side prepared statements, "
              "`--rand-type=special`). The raw per-run TSV and sysbench logs are under `$DBR_STATE/bench/`.")
    md.append("")
    md.append("**Backend conns** = the connections a target held to shard1's master during a run: the largest of "
              "~10 samples per run of the target process's established TCP connections to the master "
              "(`/proc/<pid>/fd` against `/proc/net/tcp`; for `direct`, sysbench's own), median over the repeats. "
              "For a dbrouter, \"open / in use\": in use = the largest `dbrouter_pool_connections_in_use{shard=\"shard1\"}` "
              "of its `/metrics` in the same samples; the rest of the open ones are idle in its pool (up to "
              "`pool.max_idle_per_shard`, kept from earlier runs).")
    mc = meta.get("MASTER_MAX_CONNECTIONS")
    if mc:
        md.append("")
        md.append(f"For the run shard1's master had `max_connections = {mc}` and `max_prepared_stmt_count = "
                  f"{meta.get('MASTER_MAX_PREPARED', '?')}` (`SET GLOBAL` by the script, set back at the end: direct "
                  f"sysbench at the largest thread count takes one connection per thread, and sysbench prepares its "
                  f"statements on each), HAProxy `maxconn {meta.get('HAPROXY_MAXCONN', '?')}`, open-files limit "
                  f"{meta.get('ULIMIT_NOFILE', '?')} for sysbench and the routers the script starts.")
    vl = variant_lines(meta, any(r["target"] == "dbrouter" for r in rows))
    if vl:
        md.append("")
        names = meta.get("VARIANTS", "").split()
        if names:
            md.append(f"**Router variants** ({', '.join(f'`{n}`' for n in names)}): more dbrouter processes started by "
                      "the script (`BENCH_VARIANTS`), each from the cluster's config with the settings given "
                      "(ports of their own; same backends, topology and accounts), interleaved with the other "
                      "targets, their order rotating from repeat to repeat. What each router ran with:")
        else:
            md.append("What the dbrouter target ran with:")
        md.append("")
        md.extend(vl)
    rate = meta.get("BENCH_LATENCY_RATE", "0")
    if rate not in ("", "0"):
        md.append("")
        md.append(f"**Latency below saturation.** The rows `oltp_point_select@{rate}/s` come from a last "
                  f"phase: point selects at {meta.get('BENCH_LATENCY_THREADS', '16')} threads with a fixed "
                  f"total rate (`sysbench --rate={rate}`, interleaved and repeated like the rest). Unthrottled, "
                  "16 clients, MariaDB and a proxy on 2 cores are saturated and p99 is mostly run-queue delay "
                  "(milliseconds); at a fixed rate well below every target's capacity the difference of p99s is "
                  "what the proxy adds, which is what the p99 target below is about. This phase also runs "
                  "through a fourth target, `floor`: `examples/relay_floor.rs`, the smallest relay we could "
                  "write (two blocking threads per connection that read and write, no parsing, no event "
                  "loop). What it adds is what one process in the middle costs on this host — the thread "
                  "wake-ups, not the work — and so the least any proxy can add here.")
    md.append("")
    md.append("```sh")
    md.append(meta.get("COMMAND", "scripts/bench"))
    md.append("```")
    md.append("")
    md.append(f"Measured {meta.get('DATE', '?')} on {meta.get('MACHINE', '?')}; "
              f"{meta.get('VERSIONS', '')}. dbrouter {meta.get('DBROUTER_BUILD', '?')}.")
    md.append(f"Settings: tests `{meta.get('BENCH_TESTS', '?')}`, threads `{meta.get('BENCH_THREADS', '?')}`, "
              f"{meta.get('BENCH_TIME', '?')} s per run, {repeats} repeat(s), "
              f"{meta.get('BENCH_TABLES', '?')} tables × {meta.get('BENCH_TABLE_SIZE', '?')} rows; "
              f"{len(rows)} runs in {meta.get('ELAPSED', '?')}.")
    if meta.get("NOTE"):
        md.append("")
        md.append(meta["NOTE"])
    md.append("")
    md.append("### Targets")
    md.append("")
    md.append(tg)
    md.append("")
    md.append("### Results (median over repeats)")
    md.append("")
    md.append(t1)
    md.append("")
    md.append("Ratios and added latency (from the medians above; “added” = minus direct MariaDB's latency):")
    md.append("")
    md.append(t2)
    md.append("")
    if pngs:
        names = [os.path.basename(p) for p in pngs]
        md.append(" ".join(f"![{n}]({n})" for n in names))
        md.append("")
    md.extend(budget_section(agg, TARGETS, meta))
    md.append("### Reading these numbers")
    md.append("")
    noise = ""
    if foreign and secs:
        fper = [f / s for f, s in zip(foreign, secs) if s]
        noise = (f" CPU used by processes outside this benchmark during a run (host busy time minus sysbench, "
                 f"the MariaDB servers and the proxies): median {statistics.median(fper):.2f} cores, "
                 f"max {max(fper):.2f} cores of {meta.get('NPROC', '?')}.")
    busy_runs = [r for r in rows if r["status"] == "ok" and num(r["foreign_cpu_s"]) is not None and num(r["seconds"])
                 and num(r["foreign_cpu_s"]) / num(r["seconds"]) > float(meta.get("BENCH_QUIET_CORES", "0.3") or 0.3)]
    if foreign:
        noise += (f" Each run first waited (up to {meta.get('BENCH_QUIET_WAIT', '?')} s) for a quiet second; "
                  f"{len(busy_runs)} of {len(secs)} runs still had more than {meta.get('BENCH_QUIET_CORES', '?')} "
                  f"foreign cores busy on average (column `foreign_cpu_s` of the TSV).")
    md.append("- Load generator, proxy and MariaDB share the same cores, so any proxy's CPU is taken from "
              "sysbench and MariaDB: an extra hop costs throughput here far more than it would on separate "
              "machines. Compare ratios within one run, never absolute numbers across runs." + noise)
    md.append(f"- Failed runs: {len(failed)}; errors ignored and retried by sysbench (deadlocks in the write "
              f"tests): {errors}.")
    rerr = [f"{k[2]} {k[0]}/{k[1]}: {', '.join(v['router_errors'])}" for k, v in sorted(agg.items(), key=lambda kv: (test_rank(kv[0][0]), kv[0][1], TARGETS.index(kv[0][2]) if kv[0][2] in TARGETS else 99))
            if v.get("router_errors")]
    if rerr:
        md.append("- ERR packets the routers sent themselves during runs (`dbrouter_errors_sent_total`, by kind): "
                  + "; ".join(rerr) + ".")
    if meta.get("WARNING"):
        md.append(f"- **{meta['WARNING']}**")
    if meta.get("ANALYSIS"):
        md.append(meta["ANALYSIS"])
    if args.perf and os.path.exists(args.perf):
        md.append("")
        md.append("### Profile")
        md.append("")
        with open(args.perf) as f:
            md.append(f.read().rstrip("\n"))
    md.append("")
    text = "\n".join(md)
    with open(os.path.join(args.out_dir, "report.md"), "w") as f:
        f.write(text)
    print(text)
    if args.doc:
        replace_section(args.doc, "End-to-end load", text, before="Connection scale")
        print(f"bench: updated section '## End-to-end load' of {args.doc}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
