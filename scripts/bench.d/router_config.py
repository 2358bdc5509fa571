#!/usr/bin/env python3
"""Settings of a dbrouter config file set from the command line, for scripts/bench
(BENCH_VARIANTS) and scripts/bench-connections (BENCH_CONNS_SET).

    router_config.py set  --config FILE TABLE.KEY=VALUE …   rewrite FILE in place
    router_config.py show --config FILE TABLE …              the tables' settings in effect,
                                                             defaults included, one line each

`set` replaces the line `KEY = …` of the table `[TABLE]` (a dotted table such as
`server.tls` is the table `[server.tls]`), adds the line at the end of the table's own
lines when the table has no such key, and adds the table at the end of the file when the
file has none. Comments and every other line are kept as they were. VALUE is written as it
is when it is a TOML integer, float, boolean, array or quoted string, and as a quoted string
otherwise (`pool.mode=session` becomes `mode = "session"`). The result is parsed again and
each setting checked, so a setting that did not land is an error, not a silent difference.

`show` prints `TABLE.KEY=VALUE` for the keys of the table in the file, plus the [pool]
defaults of dbrouter for the keys the file leaves out (docs/configuration.md), so that a
report can say what a router ran with.
"""
import os
import re
import sys
import tomllib

# dbrouter's defaults (src/config.rs, docs/configuration.md) for the tables a bench reports.
DEFAULTS = {
    "pool": {"mode": "session", "max_per_shard": 1000, "max_idle_per_shard": 100, "wait_ms": 2000,
             "max_waiting_per_shard": 10000},
    "server": {"max_connections": 10000},
    "limits": {"max_logins_per_address": 512},
}

HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*(\]\]?)\s*(#.*)?$")
BARE = re.compile(r"^(-?[0-9][0-9_]*|-?[0-9][0-9_]*\.[0-9_]+([eE][-+]?[0-9]+)?|true|false)$")


def toml_value(text):
    """VALUE as TOML source: as it is when it parses as a TOML value, else a quoted string."""
    if BARE.match(text) or text[:1] in ('"', "'", "[", "{"):
        try:
            tomllib.loads(f"v = {text}")
            return text
        except tomllib.TOMLDecodeError:
            pass
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse_setting(arg):
    if "=" not in arg:
        raise SystemExit(f"router_config: '{arg}' is not TABLE.KEY=VALUE")
    path, value = arg.split("=", 1)
    path = path.strip()
    if "." not in path:
        raise SystemExit(f"router_config: '{path}' names no table: write TABLE.KEY (e.g. pool.mode)")
    table, key = path.rsplit(".", 1)
    if not re.match(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$", table) or not re.match(r"^[A-Za-z0-9_-]+$", key):
        raise SystemExit(f"router_config: '{path}' is not a plain TABLE.KEY")
    return table, key, value.strip()


def table_spans(lines):
    """{table name: (header index, end index)} of the plain tables ([x], not [[x]])."""
    spans, cur, start = {}, None, None
    for i, line in enumerate(lines):
        m = HEADER.match(line)
        if not m:
            continue
        if cur is not None:
            spans.setdefault(cur, (start, i))
        cur, start = (m.group(2) if m.group(1) == "[" else None), i
    if cur is not None:
        spans.setdefault(cur, (start, len(lines)))
    return spans


def set_one(lines, table, key, value):
    text = f"{key} = {toml_value(value)}"
    span = table_spans(lines).get(table)
    if span is None:
        while lines and not lines[-1].strip():
            lines.pop()
        lines += ["", f"[{table}]", text]
        return
    start, end = span
    key_re = re.compile(r"^\s*" + re.escape(key) + r"\s*=")
    for i in range(start + 1, end):
        if key_re.match(lines[i]):
            lines[i] = text
            return
    # After the table's last setting (its trailing comments and blank lines belong to what follows).
    at = start + 1
    for i in range(start + 1, end):
        s = lines[i].strip()
        if s and not s.startswith("#"):
            at = i + 1
    lines.insert(at, text)


def lookup(doc, table, key):
    d = doc
    for part in table.split("."):
        d = d.get(part) if isinstance(d, dict) else None
    return d.get(key) if isinstance(d, dict) else None


def cmd_set(path, args):
    settings = [parse_setting(a) for a in args]
    with open(path) as f:
        lines = f.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for table, key, value in settings:
        set_one(lines, table, key, value)
    text = "\n".join(lines) + "\n"
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SystemExit(f"router_config: {path} no longer parses after the settings: {e}")
    for table, key, value in settings:
        want = tomllib.loads(f"v = {toml_value(value)}")["v"]
        if lookup(doc, table, key) != want:
            raise SystemExit(f"router_config: {table}.{key} did not land in {path}")
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def cmd_show(path, tables):
    with open(path, "rb") as f:
        doc = tomllib.load(f)
    for table in tables:
        have = {}
        d = doc
        for part in table.split("."):
            d = d.get(part, {}) if isinstance(d, dict) else {}
        if isinstance(d, dict):
            have = {k: v for k, v in d.items() if not isinstance(v, (dict, list))}
        merged = dict(DEFAULTS.get(table, {}))
        merged.update(have)
        for k, v in merged.items():
            shown = v if not isinstance(v, bool) else str(v).lower()
            print(f"{table}.{k}={shown}")


def main():
    if len(sys.argv) < 4 or sys.argv[1] not in ("set", "show") or sys.argv[2] != "--config":
        raise SystemExit(__doc__)
    if sys.argv[1] == "set":
        cmd_set(sys.argv[3], sys.argv[4:])
    else:
        cmd_show(sys.argv[3], sys.argv[4:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
