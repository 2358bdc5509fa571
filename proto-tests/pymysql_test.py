#!/usr/bin/env python3
"""proto-tests/pymysql_test.py — PyMySQL through dbrouter, compared with shard1's master directly.

PyMySQL is a pure-Python driver with its own usage patterns (autocommit off by default,
callproc, executemany batching, unbuffered SSCursor that drains on close, LOAD DATA LOCAL,
client-side parameter escaping of large blobs, show_warnings, COM_PING, COM_INIT_DB). Each
check runs the same thing through the router and, where that makes sense, directly against
shard1's master, and compares both with each other AND with a known expected value (so that two
equally wrong or empty answers never pass).

Needs the variables of `eval "$(scripts/dev-cluster env)"` (scripts/test exports them):
  DBR_ROUTER     host:port of the router       (user DBR_APP_USER / DBR_APP_PASSWORD, default app / app-secret)
  DBR_S1_MASTER  host:port of shard1's master  (compared as the app account, which the router's
                                                sessions act as; fixtures made as DBR_ADMIN_USER /
                                                DBR_ADMIN_PASSWORD, default dbrouter_admin / admin-secret)
  DBR_APP_DB     database of the client account (default app)
Run with Debian's interpreter so that python3-pymysql is importable:
  /usr/bin/python3 proto-tests/pymysql_test.py [CHECK-NAME-SUBSTRING ...]
To check the script itself against bare MariaDB, point DBR_ROUTER at DBR_S1_MASTER and set
DBR_APP_USER/DBR_APP_PASSWORD to an account on it (scripts/test does this with DBR_TEST_DIRECT=1).
DBR_PY_FAIL_FAST=1 stops at the first failed check (default: run every check, then summarise).

Fixtures live in their own database `py_proto` (CHARACTER SET utf8mb4), dropped and re-created
directly on the master at the start. Output: one line per check, then "N passed, N failed";
the exit status is non-zero when any check failed.
"""

import datetime
import hashlib
import os
import sys
import tempfile
import time
import traceback
from decimal import Decimal

try:
    import pymysql
    import pymysql.cursors
    from pymysql.constants import CLIENT, SERVER_STATUS
except ImportError as exc:  # pragma: no cover - environment problem, not a router problem
    print(f"FAIL - cannot import pymysql ({exc}); run with /usr/bin/python3 and install python3-pymysql")
    print("0 passed, 1 failed")
    sys.exit(1)


def env_addr(name):
    value = os.environ.get(name)
    if not value:
        print(f'FAIL - {name} is not set: run through scripts/test or eval "$(scripts/dev-cluster env)"')
        print("0 passed, 1 failed")
        sys.exit(2)
    host, _, port = value.rpartition(":")
    return host, int(port)


ROUTER = env_addr("DBR_ROUTER")
DIRECT = env_addr("DBR_S1_MASTER")
APP_USER = os.environ.get("DBR_APP_USER", "app")
APP_PASSWORD = os.environ.get("DBR_APP_PASSWORD", "app-secret")
APP_DB = os.environ.get("DBR_APP_DB", "app")
# Fixtures are made directly with the admin account (they need GRANT); comparisons run
# directly as the app account, which is what the router's sessions act as.
ADMIN_USER = os.environ.get("DBR_ADMIN_USER", "dbrouter_admin")
ADMIN_PASSWORD = os.environ.get("DBR_ADMIN_PASSWORD", "admin-secret")
FAIL_FAST = os.environ.get("DBR_PY_FAIL_FAST") == "1"

PYDB = "py_proto"          # fixture database, created directly on shard1's master
NOSUCHDB = "py_nosuchdb"   # never created
MIB = 1024 * 1024


class CheckFailed(Exception):
    pass


def expect(cond, message):
    if not cond:
        raise CheckFailed(message)


def short(value, limit=300):
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"


def expect_eq(what, got, want):
    if got != want:
        raise CheckFailed(f"{what}: got {short(got)}, expected {short(want)}")


def expect_same(what, via_router, via_direct):
    """Router and direct agree (the caller also checks the value itself)."""
    if via_router != via_direct:
        raise CheckFailed(f"{what} differs: router {short(via_router)}, direct {short(via_direct)}")


def _connect(addr, user, password, **kwargs):
    params = dict(
        host=addr[0],
        port=addr[1],
        user=user,
        password=password,
        database=APP_DB,
        charset="utf8mb4",
        connect_timeout=10,
        read_timeout=120,   # no single call may hang the suite
        write_timeout=120,
    )
    params.update(kwargs)
    return pymysql.connect(**params)


def router(**kwargs):
    kwargs.setdefault("user", APP_USER)
    kwargs.setdefault("password", APP_PASSWORD)
    return _connect(ROUTER, **kwargs)


def direct(**kwargs):
    kwargs.setdefault("user", APP_USER)
    kwargs.setdefault("password", APP_PASSWORD)
    return _connect(DIRECT, **kwargs)


def direct_admin(**kwargs):
    return direct(user=ADMIN_USER, password=ADMIN_PASSWORD, **kwargs)


def query(conn, sql, args=None):
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchall()


def scalar(conn, sql, args=None):
    rows = query(conn, sql, args)
    expect(len(rows) == 1 and len(rows[0]) == 1, f"{sql!r}: expected one value, got {short(rows)}")
    return rows[0][0]


def connect_error(connect, **kwargs):
    """The exception a connection attempt raises (a CheckFailed when it succeeds)."""
    try:
        conn = connect(**kwargs)
    except pymysql.err.MySQLError as exc:
        return exc
    conn.close()
    raise CheckFailed(f"connecting with {kwargs} succeeded, expected an error")


def error_of(fn):
    """(exception class name, args) of what fn raises; a CheckFailed when it raises nothing."""
    try:
        fn()
    except pymysql.err.MySQLError as exc:
        return type(exc).__name__, exc.args
    raise CheckFailed("no error raised, expected one")


def field_info(cur):
    """Everything PyMySQL decoded from the column definitions of the current result."""
    fields = cur._result.fields if cur._result is not None and cur._result.fields else []
    return [
        (f.catalog, f.db, f.table_name, f.org_table, f.name, f.org_name,
         f.charsetnr, f.length, f.type_code, f.flags, f.scale)
        for f in fields
    ]


def all_result_sets(cur):
    """[(column names or None, rows, rowcount)] for the current result and every nextset()."""
    sets = []
    while True:
        names = tuple(d[0] for d in cur.description) if cur.description else None
        sets.append((names, tuple(cur.fetchall()), cur.rowcount))
        if not cur.nextset():
            return sets


CHECKS = []


def check(name):
    def register(fn):
        CHECKS.append((name, fn))
        return fn
    return register


# --- fixtures ---------------------------------------------------------------------------------

TYPES_DDL = f"""
CREATE TABLE {PYDB}.types (
    id INT PRIMARY KEY,
    i BIGINT, u BIGINT UNSIGNED, d DECIMAL(65,30), f DOUBLE, fl FLOAT,
    s VARCHAR(100), t TEXT, c CHAR(5), b VARBINARY(64), bl BLOB,
    dt DATETIME(6), da DATE, tm TIME(6), ts TIMESTAMP(3) NULL, y YEAR, bt BIT(10),
    e ENUM('a','b','ü'), st SET('x','y','z'), js JSON
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
"""

UNICODE = "héllo wörld — 日本語 — 🦀"
TEXT_VALUE = "line1\nline2\ttab \\ backslash 'quote' \"dq\" \x00nul"
BIN_VALUE = b"\x00\xff\x7f\x80\x00'\\\n\r\x1a"
BLOB_VALUE = bytes(range(256)) * 4
BIG_DECIMAL = Decimal("-12345678901234567890123456789012345.123456789012345678901234567890")

FIXTURES = [
    f"DROP DATABASE IF EXISTS {PYDB}",
    f"CREATE DATABASE {PYDB} CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci",
    # Sessions act as the client's own account at the database: app needs the grant.
    f"GRANT ALL PRIVILEGES ON {PYDB}.* TO 'app'@'%'",
    TYPES_DDL,
    f"CREATE TABLE {PYDB}.many (id INT PRIMARY KEY, name VARCHAR(64) NOT NULL, amount DECIMAL(12,2)) ENGINE=InnoDB",
    f"CREATE TABLE {PYDB}.tx (id INT PRIMARY KEY, v VARCHAR(32)) ENGINE=InnoDB",
    f"CREATE TABLE {PYDB}.errs (id INT PRIMARY KEY, small TINYINT NOT NULL) ENGINE=InnoDB",
    f"CREATE TABLE {PYDB}.warn (id INT PRIMARY KEY, v VARCHAR(8)) ENGINE=InnoDB",
    f"INSERT INTO {PYDB}.warn VALUES (1, 'one')",
    f"CREATE TABLE {PYDB}.load_data (id INT PRIMARY KEY, v VARCHAR(64) NOT NULL, d DECIMAL(10,3)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
    f"CREATE TABLE {PYDB}.blobs (id INT PRIMARY KEY, b LONGBLOB) ENGINE=InnoDB",
    f"""CREATE PROCEDURE {PYDB}.two_results(IN n INT)
        BEGIN
            SELECT n AS first, 'one' AS label;
            SELECT n * 2 AS second, NULL AS nothing, 'zwei — 二' AS label;
        END""",
]


@check("fixtures: database py_proto (utf8mb4), tables and a procedure, created directly")
def t_fixtures():
    with direct_admin(autocommit=True) as conn:
        for sql in FIXTURES:
            query(conn, sql)
        with conn.cursor() as cur:
            cur.execute(
                f"INSERT INTO {PYDB}.types VALUES"
                " (1, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,"
                "  '9999-12-31 23:59:59.999999', '1000-01-01', '-838:59:59.000000',"
                "  '2038-01-19 03:14:07.999', 2155, b'1111111111', 'ü', 'x,z', %s),"
                " (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,"
                "  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),"
                " (3, 0, 0, 0, -0.0, 0, '', '', '', '', '',"
                "  '1970-01-01 00:00:00', '2020-02-29', '00:00:00.000001', NULL, 1901, b'0', 'a', '', '[]')",
                (-9223372036854775808, 18446744073709551615, BIG_DECIMAL, 1.7976931348623157e308, 3.14,
                 UNICODE, TEXT_VALUE, "ab", BIN_VALUE, BLOB_VALUE, '{"k": [1, 2.5, null, "ü"]}'),
            )
        expect_eq("rows in py_proto.types", scalar(conn, f"SELECT COUNT(*) FROM {PYDB}.types"), 3)


@check("preflight: the router accepts app's login and answers SELECT 1")
def t_preflight():
    with router() as r:
        expect_eq("SELECT 1 through the router", scalar(r, "SELECT 1"), 1)


# --- connecting -------------------------------------------------------------------------------

SESSION_CHARSET = ("SELECT DATABASE(), @@character_set_client, @@character_set_connection,"
                   " @@character_set_results, @@collation_connection")


@check("connect with database and charset utf8mb4: session charset and database as direct")
def t_connect_utf8mb4():
    with router() as r, direct() as d:
        got_r, got_d = query(r, SESSION_CHARSET), query(d, SESSION_CHARSET)
        expect_same("database and charset variables", got_r, got_d)
        expect_eq("DATABASE(), character_set_client/connection/results",
                  got_r[0][:4], (APP_DB, "utf8mb4", "utf8mb4", "utf8mb4"))
        probe = "SELECT %s AS v, CHAR_LENGTH(%s) AS n, HEX(%s) AS h"
        args = ("🦀 ü", "🦀 ü", "🦀 ü")
        got_r, got_d = query(r, probe, args), query(d, probe, args)
        expect_same("utf8mb4 round trip", got_r, got_d)
        expect_eq("utf8mb4 round trip", got_r, (("🦀 ü", 3, "F09FA68020C3BC"),))
        # PyMySQL turns autocommit off at connect (SET AUTOCOMMIT = 0) unless told otherwise.
        expect_eq("@@autocommit after PyMySQL's connect", scalar(r, "SELECT @@autocommit"), 0)
        expect_eq("get_autocommit() (server status flag)", r.get_autocommit(), False)


@check("connect with charset='latin1': @@character_set_client as direct with the same charset")
def t_connect_latin1():
    with router(charset="latin1") as r, direct(charset="latin1") as d:
        got_r = query(r, SESSION_CHARSET)
        got_d = query(d, SESSION_CHARSET)
        expect_eq("direct @@character_set_client with charset='latin1'", got_d[0][1], "latin1")
        expect_same("SELECT @@character_set_client (charset='latin1')", got_r[0][1], got_d[0][1])
        expect_same("database and charset variables (charset='latin1')", got_r, got_d)
        probe = "SELECT %s AS v, CHAR_LENGTH(%s) AS n, HEX(%s) AS h"
        args = ("café", "café", "café")
        got_r, got_d = query(r, probe, args), query(d, probe, args)
        expect_same("latin1 round trip", got_r, got_d)
        expect_eq("latin1 round trip ('é' is one byte E9)", got_r, (("café", 4, "636166E9"),))


@check("wrong password -> OperationalError 1045, exact MySQL message")
def t_wrong_password():
    exc = connect_error(router, password="not-" + APP_PASSWORD)
    expect_eq("exception class", type(exc).__name__, "OperationalError")
    expect_eq("error args", exc.args,
              (1045, f"Access denied for user '{APP_USER}'@'127.0.0.1' (using password: YES)"))
    # The router must still accept a correct login afterwards.
    with router() as r:
        expect_eq("SELECT 1 after a failed login", scalar(r, "SELECT 1"), 1)


@check("empty password and unknown user -> 1045 like MySQL")
def t_other_auth_failures():
    exc = connect_error(router, password="")
    expect_eq("empty password: error args", exc.args,
              (1045, f"Access denied for user '{APP_USER}'@'127.0.0.1' (using password: NO)"))
    exc = connect_error(router, user="py_nosuchuser")
    expect_eq("unknown user: error args", exc.args,
              (1045, "Access denied for user 'py_nosuchuser'@'127.0.0.1' (using password: YES)"))


def no_such_db_error():
    """What MariaDB answers the account for a database it may not see: the app account
    (no grant on it) may not learn whether it exists (1044); an account with global
    privileges (DBR_TEST_DIRECT=1) gets 1049."""
    if APP_USER == "app":
        return (1044, f"Access denied for user '{APP_USER}'@'%' to database '{NOSUCHDB}'")
    return (1049, f"Unknown database '{NOSUCHDB}'")


@check("unknown database at connect -> the account's own error (1044 for app), same as direct")
def t_unknown_database():
    exc_r = connect_error(router, database=NOSUCHDB)
    exc_d = connect_error(direct, database=NOSUCHDB)
    expect_eq("direct error args", exc_d.args, no_such_db_error())
    expect_same("exception class", type(exc_r).__name__, type(exc_d).__name__)
    expect_same("error args", exc_r.args, exc_d.args)


# --- text protocol results --------------------------------------------------------------------

@check("SELECT * over every column type (NULLs, unicode, binary, decimals, dates): values and column definitions as direct")
def t_types_table():
    sql = "SELECT * FROM types ORDER BY id"
    with router(database=PYDB) as r, direct(database=PYDB) as d:
        with r.cursor() as cr, d.cursor() as cd:
            cr.execute(sql)
            cd.execute(sql)
            rows_r, rows_d = cr.fetchall(), cd.fetchall()
            expect_same("column definitions", field_info(cr), field_info(cd))
            expect_same("cursor.description", cr.description, cd.description)
            for n, (row_r, row_d) in enumerate(zip(rows_r, rows_d), start=1):
                expect_same(f"row {n}", row_r, row_d)
            expect_same("rows", rows_r, rows_d)
    expect_eq("row count", len(rows_r), 3)
    names = [col[0] for col in cr.description]
    one = dict(zip(names, rows_r[0]))
    want = {
        "id": 1, "i": -9223372036854775808, "u": 18446744073709551615, "d": BIG_DECIMAL,
        "f": 1.7976931348623157e308, "s": UNICODE, "t": TEXT_VALUE, "c": "ab", "b": BIN_VALUE,
        "bl": BLOB_VALUE, "dt": datetime.datetime(9999, 12, 31, 23, 59, 59, 999999),
        "da": datetime.date(1000, 1, 1), "tm": -datetime.timedelta(hours=838, minutes=59, seconds=59),
        "ts": datetime.datetime(2038, 1, 19, 3, 14, 7, 999000), "y": 2155, "bt": b"\x03\xff",
        "e": "ü", "st": "x,z",
    }
    for col, value in want.items():
        expect_eq(f"row 1 column {col}", one[col], value)
    expect(abs(one["fl"] - 3.14) < 1e-5, f"row 1 column fl: got {one['fl']!r}, expected ~3.14")
    expect_eq("row 2 (all NULL but id)", rows_r[1], (2,) + (None,) * (len(names) - 1))
    three = dict(zip(names, rows_r[2]))
    expect_eq("row 3 empties", (three["s"], three["b"], three["bl"], three["tm"], three["da"]),
              ("", b"", b"", datetime.timedelta(microseconds=1), datetime.date(2020, 2, 29)))


@check("SELECT of literals (NULL, decimals, unicode, binary, dates, big unsigned) as direct")
def t_literals():
    sql = ("SELECT NULL AS n, 1.50 AS dec1, -0.000001 AS small, CAST(1 AS DECIMAL(65,30)) AS wide,"
           " 'Ω🦀' AS u, x'00ff' AS bin, DATE '2024-02-29' AS da,"
           " CAST('2020-01-02 03:04:05.25' AS DATETIME(2)) AS dt, TIME '-01:02:03' AS tm,"
           " 1e308 AS dbl, CAST(18446744073709551615 AS UNSIGNED) AS big, '' AS empty, 'NULL' AS word")
    with router() as r, direct() as d:
        with r.cursor() as cr, d.cursor() as cd:
            cr.execute(sql)
            cd.execute(sql)
            got_r, got_d = cr.fetchall(), cd.fetchall()
            expect_same("column definitions", field_info(cr), field_info(cd))
    expect_same("values", got_r, got_d)
    expect_eq("values", got_r, ((
        None, Decimal("1.50"), Decimal("-0.000001"), Decimal("1." + "0" * 30), "Ω🦀", b"\x00\xff",
        datetime.date(2024, 2, 29), datetime.datetime(2020, 1, 2, 3, 4, 5, 250000),
        -datetime.timedelta(hours=1, minutes=2, seconds=3), 1e308, 18446744073709551615, "", "NULL"),))


# --- several result sets ----------------------------------------------------------------------

@check("multi-statement (CLIENT.MULTI_STATEMENTS): nextset() over 4 results, then the next query")
def t_multi_statements():
    sql = "SELECT 1 AS a; SELECT 'two' AS b, NULL AS c; DO 1; SELECT 3 AS d UNION ALL SELECT 4"
    with router(client_flag=CLIENT.MULTI_STATEMENTS) as r, \
            direct(client_flag=CLIENT.MULTI_STATEMENTS) as d:
        with r.cursor() as cr, d.cursor() as cd:
            cr.execute(sql)
            got_r = all_result_sets(cr)
            cd.execute(sql)
            got_d = all_result_sets(cd)
            expect_same("result sets", got_r, got_d)
            expect_eq("result sets (names, rows, rowcount)", got_r, [
                (("a",), ((1,),), 1),
                (("b", "c"), (("two", None),), 1),
                (None, (), 0),
                (("d",), ((3,), (4,)), 2),
            ])
            expect_eq("SELECT 42 after the multi-statement", scalar(r, "SELECT 42"), 42)
            # An error in the middle ends the chain; the connection stays in sync.
            bad = f"SELECT 1 AS a; SELECT * FROM {PYDB}.py_nosuchtable; SELECT 3"
            cr.execute(bad)
            expect_eq("first result before the error", cr.fetchall(), ((1,),))
            err_r = error_of(cr.nextset)
            cd.execute(bad)
            cd.fetchall()
            err_d = error_of(cd.nextset)
            expect_eq("error in the second statement", err_d,
                      ("ProgrammingError", (1146, f"Table '{PYDB}.py_nosuchtable' doesn't exist")))
            expect_same("error in the second statement", err_r, err_d)
            expect_eq("SELECT 43 after the failed multi-statement", scalar(r, "SELECT 43"), 43)


@check("callproc() of a procedure with two SELECTs: nextset() walks both and the CALL's OK")
def t_stored_procedure():
    with router(database=PYDB) as r, direct(database=PYDB) as d:
        got = []
        for conn in (r, d):
            with conn.cursor() as cur:
                # A procedure's statements are invisible to the router: CALL needs the
                # session pin (or a hint).
                cur.execute("SET @dbrouter_userid = 1")
                args = cur.callproc("two_results", (21,))
                expect_eq("callproc return value", args, (21,))
                got.append(all_result_sets(cur))
        expect_same("result sets of CALL two_results(21)", got[0], got[1])
        expect_eq("result sets of CALL two_results(21)", got[0], [
            (("first", "label"), ((21, "one"),), 1),
            (("second", "nothing", "label"), ((42, None, "zwei — 二"),), 1),
            (None, (), 0),
        ])
        # callproc stores the arguments in @_<procname>_<n> on the server.
        expect_eq("@_two_results_0 (same session)", scalar(r, "SELECT @_two_results_0"), 21)
        with r.cursor() as cur:
            cur.execute("CALL two_results(%s)", (5,))
            expect_eq("CALL two_results(5) again via execute()", all_result_sets(cur)[:2], [
                (("first", "label"), ((5, "one"),), 1),
                (("second", "nothing", "label"), ((10, None, "zwei — 二"),), 1),
            ])
        expect_eq("SELECT 99 after the CALLs", scalar(r, "SELECT 99"), 99)


# --- writes -----------------------------------------------------------------------------------

@check("executemany() INSERT of 1000 rows (batched multi-row INSERT), commit, content as direct")
def t_executemany():
    rows = [(i, f"name-{i} ü", Decimal(i * 7) / 100) for i in range(1, 1001)]
    with router(database=PYDB) as r:
        with r.cursor() as cur:
            cur.execute("DELETE FROM many")
            n = cur.executemany("INSERT INTO many (id, name, amount) VALUES (%s, %s, %s)", rows)
            expect_eq("executemany() rowcount", n, 1000)
        r.commit()
    summary = "SELECT COUNT(*), SUM(id), SUM(amount), MD5(GROUP_CONCAT(name ORDER BY id SEPARATOR '|')) FROM many"
    want_md5 = hashlib.md5("|".join(name for _, name, _ in rows).encode()).hexdigest()
    want = ((1000, Decimal(500500), Decimal("35035.00"), want_md5),)
    with router(database=PYDB) as r, direct(database=PYDB) as d:
        expect_eq("direct: count, sums, md5 of names", query(d, summary), want)
        expect_eq("router: count, sums, md5 of names", query(r, summary), want)


@check("server errors pass through identical to direct (class, code, message); the session goes on")
def t_errors():
    statements = [
        ("SELECT * FROM py_nosuchtable", 1146),
        ("SELEKT 1", 1064),
        ("INSERT INTO errs (id, small) VALUES (1, 1), (1, 2)", 1062),
        ("INSERT INTO errs (id, small) VALUES (2, 1000)", 1264),
        ("INSERT INTO errs (id) VALUES (3)", 1364),
        ("SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'custom failure ü 🦀'", 1644),
        # CALL needs a hint (or the pin) through the router; then the server answers.
        ("/* userid=1 */ CALL py_no_such_proc()", 1305),
        ("SELECT nosuchcolumn FROM errs", 1054),
    ]
    with router(database=PYDB, autocommit=True) as r, direct(database=PYDB, autocommit=True) as d:
        query(d, "DELETE FROM errs")
        for sql, code in statements:
            err_d = error_of(lambda: query(d, sql))
            err_r = error_of(lambda: query(r, sql))
            expect_eq(f"{sql!r}: direct error code", err_d[1][0], code)
            expect_same(f"{sql!r}: error", err_r, err_d)
            expect_eq(f"{sql!r}: SELECT 1 afterwards", scalar(r, "SELECT 1"), 1)
        expect_eq("rows in errs (every INSERT failed)", scalar(d, "SELECT COUNT(*) FROM errs"), 0)


@check("conn.ping() (COM_PING) keeps the session: user variable and connection id survive")
def t_ping():
    with router() as r:
        query(r, "SET @py_ping = 7")
        conn_id = scalar(r, "SELECT @@pseudo_thread_id")  # the backend thread
        for _ in range(3):
            r.ping(reconnect=False)
        expect_eq("@py_ping after three pings", scalar(r, "SELECT @py_ping"), 7)
        expect_eq("backend thread after three pings", scalar(r, "SELECT @@pseudo_thread_id"), conn_id)
        expect_eq("connection still open", r.open, True)


@check("conn.select_db() (COM_INIT_DB): switch databases, unknown database -> the account's error, as direct")
def t_select_db():
    with router() as r, direct() as d:
        expect_eq("DATABASE() at start", scalar(r, "SELECT DATABASE()"), APP_DB)
        r.select_db(PYDB)
        expect_eq("DATABASE() after select_db(py_proto)", scalar(r, "SELECT DATABASE()"), PYDB)
        expect_eq("unqualified SELECT COUNT(*) FROM types", scalar(r, "SELECT COUNT(*) FROM types"), 3)
        r.select_db(APP_DB)
        expect_eq(f"DATABASE() after select_db({APP_DB})", scalar(r, "SELECT DATABASE()"), APP_DB)
        err_r = error_of(lambda: r.select_db(NOSUCHDB))
        err_d = error_of(lambda: d.select_db(NOSUCHDB))
        expect_eq("direct select_db(nosuchdb)", err_d, ("OperationalError", no_such_db_error()))
        expect_same("select_db(nosuchdb) error", err_r, err_d)
        expect_eq("DATABASE() after the failed select_db", scalar(r, "SELECT DATABASE()"), APP_DB)


@check("sql_mode= and init_command= connect options apply; session state never leaks to the next connection")
def t_session_isolation():
    probe = ("SELECT @py_leak, @py_init, @@character_set_client, @@sql_mode, DATABASE(),"
             " (SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_NAME = 'py_tmp') AS tmp_visible")
    with direct() as d:
        clean = query(d, probe)
    expect_eq("a fresh direct session", clean[0][:3] + clean[0][4:], (None, None, "utf8mb4", APP_DB, 0))
    for round_ in range(3):
        with router(charset="latin1", sql_mode="ANSI_QUOTES", init_command="SET @py_init = 'yes'") as r:
            got = query(r, "SELECT @py_init, @@sql_mode, @@character_set_client")
            expect_eq("init_command, sql_mode and charset of the dirty session", got, (("yes", "ANSI_QUOTES", "latin1"),))
            r.select_db(PYDB)
            query(r, "SET @py_leak = 1")
            query(r, "CREATE TEMPORARY TABLE py_tmp (x INT)")
            query(r, 'SELECT "x" FROM py_tmp')  # ANSI_QUOTES: a quoted identifier
        for _ in range(3):
            with router() as r:
                expect_eq(f"a new router session after dirty session #{round_ + 1}", query(r, probe), clean)


@check("autocommit off (PyMySQL default): uncommitted insert invisible elsewhere, rollback, commit")
def t_transactions():
    sel = "SELECT id, v FROM tx ORDER BY id"
    with router(database=PYDB) as r, direct(database=PYDB, autocommit=True) as d:
        expect_eq("get_autocommit()", r.get_autocommit(), False)
        expect_eq("@@autocommit", scalar(r, "SELECT @@autocommit"), 0)
        query(r, "DELETE FROM tx")
        r.commit()
        query(r, "INSERT INTO tx VALUES (1, 'rolled back')")
        expect(r.server_status & SERVER_STATUS.SERVER_STATUS_IN_TRANS,
               f"SERVER_STATUS_IN_TRANS not set after an INSERT with autocommit off (status {r.server_status:#x})")
        expect_eq("router sees its own uncommitted row", query(r, sel), ((1, "rolled back"),))
        expect_eq("direct does not see the uncommitted row", query(d, sel), ())
        r.rollback()
        expect(not r.server_status & SERVER_STATUS.SERVER_STATUS_IN_TRANS,
               f"SERVER_STATUS_IN_TRANS still set after rollback (status {r.server_status:#x})")
        expect_eq("router after rollback", query(r, sel), ())
        query(r, "INSERT INTO tx VALUES (2, 'committed')")
        expect_eq("direct before commit", query(d, sel), ())
        r.commit()
        expect_eq("direct after commit", query(d, sel), ((2, "committed"),))
        r.autocommit(True)
        expect_eq("get_autocommit() after autocommit(True)", r.get_autocommit(), True)
        query(r, "INSERT INTO tx VALUES (3, 'autocommitted')")
        expect_eq("direct sees the autocommitted row", query(d, sel), ((2, "committed"), (3, "autocommitted")))


@check("SSCursor streams 100000 rows of seq_1_to_100000 unbuffered")
def t_sscursor_full():
    with router() as r:
        with r.cursor(pymysql.cursors.SSCursor) as cur:
            cur.execute("SELECT seq, CONCAT('row-', seq) FROM seq_1_to_100000")
            count = total = 0
            last = None
            for row in cur.fetchall_unbuffered():
                count += 1
                total += row[0]
                last = row
            expect_eq("rows streamed", count, 100000)
            expect_eq("SUM(seq)", total, 5000050000)
            expect_eq("last row", last, (100000, "row-100000"))
        expect_eq("SELECT 1 afterwards", scalar(r, "SELECT 1"), 1)


@check("SSCursor closed after 10 of 100000 rows: PyMySQL drains the rest, the session goes on")
def t_sscursor_early_close():
    with router() as r:
        query(r, "SET @py_stream = 'kept'")
        conn_id = scalar(r, "SELECT @@pseudo_thread_id")  # the backend thread
        cur = r.cursor(pymysql.cursors.SSCursor)
        cur.execute("SELECT seq, CONCAT('row-', seq), REPEAT('x', 200) FROM seq_1_to_100000")
        first = [cur.fetchone() for _ in range(10)]
        expect_eq("first 10 rows", [row[:2] for row in first], [(i, f"row-{i}") for i in range(1, 11)])
        time.sleep(1)  # let the router and the server fill their buffers while nobody reads
        t0 = time.monotonic()
        cur.close()
        drained = time.monotonic() - t0
        expect_eq("SELECT 42 after closing the cursor", scalar(r, "SELECT 42"), 42)
        expect_eq("@py_stream", scalar(r, "SELECT @py_stream"), "kept")
        expect_eq("backend thread", scalar(r, "SELECT @@pseudo_thread_id"), conn_id)
        expect(drained < 60, f"draining took {drained:.1f}s")


@check("LOAD DATA LOCAL INFILE (local_infile=True) of 10000 lines; missing file -> 1017, session goes on")
def t_load_data_local():
    lines = [(i, f"row {i} ünïcødé 🦀", Decimal(i * 3) / 2) for i in range(1, 10001)]
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", suffix=".tsv", delete=False) as f:
        for i, v, dec in lines:
            f.write(f"{i}\t{v}\t{dec:.3f}\n")
        path = f.name
    load = ("LOAD DATA LOCAL INFILE %s INTO TABLE load_data CHARACTER SET utf8mb4"
            " FIELDS TERMINATED BY '\\t' LINES TERMINATED BY '\\n' (id, v, d)")
    try:
        with router(database=PYDB, local_infile=True) as r:
            query(r, "DELETE FROM load_data")
            with r.cursor() as cur:
                n = cur.execute(load, (path,))
                expect_eq("LOAD DATA rowcount", n, 10000)
                expect_eq("warnings of LOAD DATA", cur._result.warning_count, 0)
            r.commit()
            # PyMySQL answers the server's file request with an empty file and raises 1017
            # itself (naming the file by the bytes the server asked for) once the OK arrives.
            missing = path + ".missing"
            err_r = error_of(lambda: query(r, load, (missing,)))
            expect_eq("missing local file", err_r,
                      ("OperationalError", (1017, f"Can't find file '{os.fsencode(missing)}'")))
            expect_eq("SELECT 1 after the missing file", scalar(r, "SELECT 1"), 1)
            r.rollback()
    finally:
        os.unlink(path)
    summary = ("SELECT COUNT(*), SUM(id), SUM(d), MD5(GROUP_CONCAT(v ORDER BY id SEPARATOR '|'))"
               " FROM load_data")
    want_md5 = hashlib.md5("|".join(v for _, v, _ in lines).encode()).hexdigest()
    want = ((10000, Decimal(50005000), Decimal("75007500.000"), want_md5),)
    with router(database=PYDB) as r, direct(database=PYDB) as d:
        query(d, "SET SESSION group_concat_max_len = 16777216")
        query(r, "SET SESSION group_concat_max_len = 16777216")
        expect_eq("direct: count, sums, md5", query(d, summary), want)
        expect_eq("router: count, sums, md5", query(r, summary), want)


@check("20 MiB blob: INSERT with a parameter (>16 MiB packet), read back, sha1 matches")
def t_big_blob():
    data = os.urandom(20 * MIB)
    want = hashlib.sha1(data).hexdigest()
    with router(database=PYDB, max_allowed_packet=64 * MIB) as r:
        with r.cursor() as cur:
            cur.execute("DELETE FROM blobs")
            expect_eq("INSERT rowcount", cur.execute("INSERT INTO blobs (id, b) VALUES (%s, %s)", (1, data)), 1)
        r.commit()
        back = scalar(r, "SELECT b FROM blobs WHERE id = 1")
        expect_eq("length read back through the router", len(back), len(data))
        expect_eq("sha1 read back through the router", hashlib.sha1(back).hexdigest(), want)
        expect_eq("SHA1(b) computed by the server, via router", scalar(r, "SELECT SHA1(b) FROM blobs WHERE id = 1"), want)
        expect_eq("SELECT 1 afterwards", scalar(r, "SELECT 1"), 1)
    with direct(database=PYDB) as d:
        expect_eq("LENGTH(b), SHA1(b) directly", query(d, "SELECT LENGTH(b), SHA1(b) FROM blobs WHERE id = 1"),
                  ((20 * MIB, want),))


@check("TLS: ssl_ca=test CA, certificate and host name verified; a 20 MiB blob round-trips encrypted")
def t_tls():
    ca = os.environ.get("DBR_TLS_CA")
    if not ca or os.environ.get("DBR_TEST_DIRECT") == "1":
        return  # bare MariaDB in the direct run has no TLS of the test CA
    data = os.urandom(20 * MIB)
    want = hashlib.sha1(data).hexdigest()
    with router(database=PYDB, max_allowed_packet=64 * MIB, ssl_ca=ca, ssl_verify_cert=True,
                ssl_verify_identity=True) as r:
        expect(r._sock.version() in ("TLSv1.2", "TLSv1.3"), f"TLS version {r._sock.version()}")
        with r.cursor() as cur:
            cur.execute("DELETE FROM blobs")
            cur.execute("INSERT INTO blobs (id, b) VALUES (%s, %s)", (2, data))
        r.commit()
        expect_eq("sha1 read back over TLS", hashlib.sha1(scalar(r, "SELECT b FROM blobs WHERE id = 2")).hexdigest(), want)


@check("conn.show_warnings() after warning-producing SELECT and INSERT IGNORE, as direct")
def t_show_warnings():
    got = []
    for connect in (router, direct):
        with connect(database=PYDB, autocommit=True) as conn:
            with conn.cursor() as cur:
                cur.execute("SELECT CAST('x' AS SIGNED) AS v")
                one = (cur.fetchall(), cur._result.warning_count, conn.show_warnings())
                cur.execute("INSERT IGNORE INTO warn VALUES (1, 'dup'), (2, 'toolongvalue')")
                two = (cur.rowcount, cur._result.warning_count, conn.show_warnings())
                # A statement that uses a table clears the diagnostics area.
                cur.execute("SELECT id FROM warn WHERE id = 1")
                three = (cur.fetchall(), cur._result.warning_count, conn.show_warnings())
                query(conn, "DELETE FROM warn WHERE id <> 1")
            got.append((one, two, three))
    expect_eq("warnings directly", got[1], (
        (((0,),), 1, (("Warning", 1292, "Truncated incorrect INTEGER value: 'x'"),)),
        (1, 2, (("Warning", 1062, "Duplicate entry '1' for key 'PRIMARY'"),
                ("Warning", 1265, "Data truncated for column 'v' at row 2"))),
        (((1,),), 0, ()),
    ))
    expect_same("warnings", got[0], got[1])


# --- runner -----------------------------------------------------------------------------------

def main(argv):
    selected = [c for c in CHECKS if not argv[1:] or c[0].startswith(("fixtures", "preflight"))
                or any(word in c[0] for word in argv[1:])]
    print(f"# pymysql_test.py: PyMySQL {pymysql.__version__}, router {ROUTER[0]}:{ROUTER[1]} (user {APP_USER})"
          f" vs direct {DIRECT[0]}:{DIRECT[1]} (user {APP_USER})")
    passed = failed = 0
    for n, (name, fn) in enumerate(selected, start=1):
        t0 = time.monotonic()
        try:
            fn()
        except CheckFailed as exc:
            failed += 1
            print(f"FAIL {n:2d} - {name}: {exc}", flush=True)
        except Exception as exc:  # an unexpected driver error is a failure too, with its origin
            failed += 1
            where = traceback.extract_tb(exc.__traceback__)
            frame = next((fr for fr in reversed(where) if fr.filename == __file__), where[-1])
            print(f"FAIL {n:2d} - {name}: {type(exc).__module__}.{type(exc).__name__}{short(exc.args, 500)}"
                  f" (at line {frame.lineno}: {frame.line})", flush=True)
        else:
            passed += 1
            print(f"ok   {n:2d} - {name} ({time.monotonic() - t0:.2f}s)", flush=True)
            continue
        if FAIL_FAST or name.startswith(("fixtures", "preflight")):
            break  # everything after depends on it
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 and passed == len(selected) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
