#!/usr/bin/env node
/* proto-tests/node_mariadb_test.js — MariaDB Connector/Node.js (npm `mariadb`) through dbrouter,
 * compared with shard1's master directly.
 *
 * The connector is MariaDB's own JavaScript implementation of the protocol (no C library):
 * it negotiates MariaDB's extended metadata (JSON columns come back parsed into objects),
 * metadata caching, bulk execute (batch() sends COM_STMT_BULK_EXECUTE), pipelining (the next
 * command is written before the previous answer arrived), compression, COM_CHANGE_USER,
 * COM_RESET_CONNECTION, and implements query timeouts with `SET STATEMENT max_statement_time
 * = … FOR` (per query) or `SET max_statement_time` (per connection / pool). Each check runs
 * typical application code through the router and the same code directly against the master
 * (as the same `app` account the router's sessions act as), and compares both with each
 * other AND with a known expected value (so two equally wrong or empty answers never pass):
 *   connect with a database; plain queries and prepared statements (execute(), prepare())
 *   over every common column type, values and column definitions; errors; transactions
 *   (commit, rollback) on global and sharded tables; a JSON column created through the
 *   router; change user; reset; ping; protocol compression (the same answers, 15 MiB
 *   written and 17 MiB read compressed); latin1 and cp1251 connections (a table whose name,
 *   column and values are non-ASCII in that encoding, used with bare names, the error about a
 *   missing non-ASCII table, rows of the sharded table); a pool with queryTimeout and
 *   per-query timeouts; batch() into global and sharded tables; pipelining; values of a few
 *   MiB; KILL QUERY of conn.threadId (the greeting's id is CONNECTION_ID()); the router's own
 *   SHOW DBROUTER ROUTE FOR; and that rows of the sharded table `posts` land on the shard the
 *   route names, read on both masters directly.
 * A check given { todo: 'reason' } reports an expected difference as "ok … # TODO" (and fails once
 * it passes); none is marked now.
 * Connector limits seen directly too, so avoided: it cannot write a packet of 16 MiB or more
 * compressed, and it decodes error messages as UTF-8 whatever the connection's character set.
 *
 * Needs the variables of `eval "$(scripts/dev-cluster env)"` (scripts/test exports them):
 *   DBR_ROUTER     host:port of the router       (user DBR_APP_USER / DBR_APP_PASSWORD, default app / app-secret)
 *   DBR_S1_MASTER  host:port of shard1's master  (compared as the app account; fixtures made as
 *                                                 DBR_ADMIN_USER / DBR_ADMIN_PASSWORD, default
 *                                                 dbrouter_admin / admin-secret)
 *   DBR_S2_MASTER  host:port of shard2's master  (the sharded table `posts` lives on both masters)
 *   DBR_APP_DB     database of the client account (default app)
 * and the connector, installed from package-lock.json by scripts/test (or by hand):
 *   npm ci --prefix proto-tests/node
 * Run:
 *   node proto-tests/node_mariadb_test.js [CHECK-NAME-SUBSTRING ...]
 * To check the script itself against bare MariaDB, point DBR_ROUTER at DBR_S1_MASTER and set
 * DBR_APP_USER/DBR_APP_PASSWORD to an account on it (scripts/test does this with DBR_TEST_DIRECT=1;
 * the router-only checks are then skipped, and every user "lives" on shard1).
 * DBR_NODE_PIPELINING=0 connects with pipelining: false (a diagnostic: execute() then waits for
 * PREPARE's answer instead of executing statement id -1 right behind it).
 * DBR_NODE_FAIL_FAST=1 stops at the first failed check; DBR_NODE_CHECK_TIMEOUT (seconds, default
 * 120) bounds every check.
 *
 * Fixtures live in database `node_proto` (utf8mb4), dropped and re-created directly on both
 * masters at the start. Output: one line per check, then "N passed, N failed"; the exit status
 * is non-zero when any check failed.
 */
'use strict';

const childProcess = require('child_process');
const crypto = require('crypto');
const path = require('path');
const util = require('util');
const { createRequire } = require('module');

function bail(message) {
  console.log(`FAIL - ${message}`);
  console.log('0 passed, 1 failed');
  process.exit(1);
}

let mariadb;
try {
  mariadb = createRequire(path.join(__dirname, 'node', 'package.json'))('mariadb');
} catch (err) {
  bail(`cannot load the mariadb connector (${err.message}); run: npm ci --prefix proto-tests/node`);
}

function envAddr(name) {
  const value = process.env[name];
  if (!value) bail(`${name} is not set: run through scripts/test or eval "$(scripts/dev-cluster env)"`);
  const i = value.lastIndexOf(':');
  return { host: value.slice(0, i), port: Number(value.slice(i + 1)), text: value };
}

const ROUTER = envAddr('DBR_ROUTER');
const S1 = envAddr('DBR_S1_MASTER');
const S2 = envAddr('DBR_S2_MASTER');
const APP_USER = process.env.DBR_APP_USER || 'app';
const APP_PASSWORD = process.env.DBR_APP_PASSWORD || 'app-secret';
const APP_DB = process.env.DBR_APP_DB || 'app';
const ADMIN_USER = process.env.DBR_ADMIN_USER || 'dbrouter_admin';
const ADMIN_PASSWORD = process.env.DBR_ADMIN_PASSWORD || 'admin-secret';
const FAIL_FAST = process.env.DBR_NODE_FAIL_FAST === '1';
const CHECK_TIMEOUT_MS = 1000 * Number(process.env.DBR_NODE_CHECK_TIMEOUT || 120);
// DBR_NODE_PIPELINING=0: connect with pipelining: false (a diagnostic: the connector then waits
// for PREPARE's answer instead of executing statement id -1 right behind it).
const PIPELINING = process.env.DBR_NODE_PIPELINING !== '0';
// No router in between (scripts/test DBR_TEST_DIRECT=1): router-only checks are skipped.
const NO_ROUTER = process.env.DBR_TEST_DIRECT === '1' || ROUTER.text === S1.text;

const DB = 'node_proto'; // fixture database, created directly on both masters
const MIB = 1024 * 1024;

// --- assertions ---------------------------------------------------------------------------------

class CheckFailed extends Error {}

function show(value, limit = 300) {
  let text;
  if (Buffer.isBuffer(value)) {
    text = value.length > 64 ? `<Buffer ${value.length} bytes sha1 ${sha1(value)}>` : `<Buffer ${value.toString('hex')}>`;
  } else if (typeof value === 'string' && value.length > limit) {
    text = `<string ${value.length} chars sha1 ${sha1(value)}>`;
  } else {
    text = util.inspect(value, { depth: 6, breakLength: Infinity, maxStringLength: limit, maxArrayLength: 20 });
  }
  return text.length <= limit ? text : `${text.slice(0, limit)}... (${text.length} chars)`;
}

function expect(cond, message) {
  if (!cond) throw new CheckFailed(message);
}

function expectEq(what, got, want) {
  if (!util.isDeepStrictEqual(got, want)) throw new CheckFailed(`${what}: got ${show(got)}, expected ${show(want)}`);
}

/** Router and direct agree (the caller also checks the value itself). */
function expectSame(what, viaRouter, viaDirect) {
  if (!util.isDeepStrictEqual(viaRouter, viaDirect)) {
    throw new CheckFailed(`${what} differs: router ${show(viaRouter)}, direct ${show(viaDirect)}`);
  }
}

function sha1(data) {
  return crypto.createHash('sha1').update(data).digest('hex');
}

// --- connections --------------------------------------------------------------------------------

function connect(addr, opts = {}) {
  return mariadb.createConnection({
    host: addr.host,
    port: addr.port,
    user: APP_USER,
    password: APP_PASSWORD,
    database: APP_DB,
    connectTimeout: 10000,
    socketTimeout: 120000, // no single call may hang the suite
    ...(PIPELINING ? {} : { pipelining: false }),
    ...opts,
  });
}

const router = (opts) => connect(ROUTER, opts);
const direct = (opts) => connect(S1, opts);
const directAdmin = (addr, opts) => connect(addr, { user: ADMIN_USER, password: ADMIN_PASSWORD, database: null, ...opts });

async function close(conn) {
  if (!conn) return;
  try {
    await Promise.race([conn.end(), new Promise((_, reject) => setTimeout(() => reject(new Error('end timeout')), 5000))]);
  } catch (_) {
    conn.destroy();
  }
}

/** fn(routerConn, directConn) with both connected with the same options; both closed afterwards. */
async function both(opts, fn) {
  const r = await router(opts);
  let d;
  try {
    d = await direct(opts);
    return await fn(r, d);
  } finally {
    await close(r);
    await close(d);
  }
}

async function withConn(connP, fn) {
  const conn = await connP;
  try {
    return await fn(conn);
  } finally {
    await close(conn);
  }
}

/** What a driver error tells the application (the message without the connector's prefix). */
function errInfo(err) {
  return { errno: err.errno, sqlState: err.sqlState, code: err.code, sqlMessage: err.sqlMessage, fatal: err.fatal };
}

async function errorOf(fn, what = 'the call') {
  try {
    await fn();
  } catch (err) {
    if (err instanceof CheckFailed) throw err;
    if (err.errno === undefined) throw err;
    return errInfo(err);
  }
  throw new CheckFailed(`${what}: no error raised, expected one`);
}

async function scalar(conn, sql, values) {
  const rows = await conn.query({ sql, rowsAsArray: true }, values);
  expect(rows.length === 1 && rows[0].length === 1, `${sql}: expected one value, got ${show(rows)}`);
  return rows[0][0];
}

/** Everything the connector decoded from a result's column definitions. */
function metaInfo(meta) {
  return meta.map((c) => ({
    db: c.db(), table: c.table(), orgTable: c.orgTable(), name: c.name(), orgName: c.orgName(),
    collation: c.collation ? c.collation.name : null, columnLength: c.columnLength,
    columnType: c.columnType, type: c.type, flags: c.flags, scale: c.scale,
    dataTypeName: c.dataTypeName, json: c.isDataTypeFormatJson(),
  }));
}

/** Rows (without the non-enumerable meta) and the column definitions of a result. */
async function result(conn, how, sql, values) {
  const res = await conn[how](sql, values);
  if (Array.isArray(res)) return { rows: Array.from(res), meta: metaInfo(res.meta) };
  return { ok: okInfo(res) };
}

/** An OkPacket's fields (they are not own enumerable properties). */
function okInfo(res) {
  return { affectedRows: res.affectedRows, insertId: res.insertId, warningStatus: res.warningStatus };
}

// --- routing ------------------------------------------------------------------------------------

const routeCache = new Map();

/** The shard and master the router places a user on (everything is shard1 without a router).
 * Asked with the mariadb CLI: the connector's own SHOW DBROUTER ROUTE is a check of its own. */
async function routeOf(userid) {
  if (NO_ROUTER) return { shard: 'shard1', master: S1.text };
  if (!routeCache.has(userid)) {
    // One CLI call for a block of 64 ids.
    const ids = Array.from({ length: 64 }, (_, i) => userid + i);
    const out = childProcess.execFileSync('mariadb', ['--no-defaults', '--skip-ssl', '--protocol=TCP', `-h${ROUTER.host}`,
      `-P${ROUTER.port}`, `-u${APP_USER}`, `-p${APP_PASSWORD}`, '--connect-timeout=10', '-N', '-B',
      '-e', ids.map((u) => `SHOW DBROUTER ROUTE FOR ${u};`).join(' ')], { timeout: 30000, encoding: 'utf8' });
    for (const line of out.trim().split('\n')) {
      const fields = line.split('\t');
      expect(fields.length >= 3, `SHOW DBROUTER ROUTE FOR ${userid}..: ${show(line)}`);
      routeCache.set(Number(fields[0]), { shard: fields[1], master: fields[2] });
    }
    expect(routeCache.has(userid), `SHOW DBROUTER ROUTE FOR ${userid}: ${show(out)}`);
  }
  return routeCache.get(userid);
}

const masterAddr = (text) => (text === S1.text ? S1 : text === S2.text ? S2 : envAddr('DBR_S2_MASTER'));

/** Users 1000.. grouped by shard: { shard1: [...], shard2: [...] } with `n` users each (as available). */
async function usersByShard(n) {
  const out = { shard1: [], shard2: [] };
  for (let u = 1000; u < 1400 && (out.shard1.length < n || (!NO_ROUTER && out.shard2.length < n)); u++) {
    const { shard } = await routeOf(u);
    if (out[shard] && out[shard].length < n) out[shard].push(u);
  }
  expect(out.shard1.length === n, `found ${out.shard1.length} users on shard1`);
  expect(NO_ROUTER || out.shard2.length === n, `found ${out.shard2.length} users on shard2`);
  return out;
}

/** posts rows (userid, body) stored on each master, read directly. */
async function postsOnMasters(where = '') {
  const got = {};
  for (const [shard, addr] of [['shard1', S1], ['shard2', S2]]) {
    got[shard] = await withConn(directAdmin(addr, { database: DB, bigIntAsNumber: true }), (d) =>
      d.query(`SELECT userid, body FROM posts ${where} ORDER BY userid, body`));
    got[shard] = Array.from(got[shard]);
  }
  return got;
}

/** Checks that every row of posts (optionally filtered) sits on the master its user's route names. */
async function expectPostsWhereRouted(what, where, wantRows) {
  const got = await postsOnMasters(where);
  const want = { shard1: [], shard2: [] };
  for (const row of wantRows) want[(await routeOf(row.userid)).shard].push(row);
  for (const shard of ['shard1', 'shard2']) {
    want[shard].sort((a, b) => a.userid - b.userid || (a.body < b.body ? -1 : a.body > b.body ? 1 : 0));
    expectEq(`${what}: rows on ${shard}'s master`, got[shard], want[shard]);
  }
}

// --- checks -------------------------------------------------------------------------------------

const CHECKS = [];
function check(name, fn, opts = {}) {
  CHECKS.push({ name, fn, ...opts });
}

const UNICODE = 'héllo wörld — 日本語 — 🦀';
const TEXT_VALUE = "line1\nline2\ttab \\ backslash 'quote' \"dq\" \x00nul";
const BIN_VALUE = Buffer.from([0x00, 0xff, 0x7f, 0x80, 0x00, 0x27, 0x5c, 0x0a, 0x0d, 0x1a]);
const JSON_DOC = { name: 'ü 🦀', tags: ['a', 'b'], nested: { n: 1, f: 2.5, t: true, z: null }, empty: [] };

const TYPES_DDL = `CREATE TABLE ${DB}.types (
    id INT PRIMARY KEY, i BIGINT, u BIGINT UNSIGNED, d DECIMAL(30,10), f DOUBLE, s VARCHAR(100),
    t TEXT, b VARBINARY(64), dt DATETIME(6), da DATE, tm TIME(6), y YEAR, b1 BIT(1), bt BIT(10),
    e ENUM('a','b','ü'), st SET('x','y','z'), js JSON, uu UUID, ip INET6
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`;

const POSTS_DDL = `CREATE TABLE ${DB}.posts (id INT AUTO_INCREMENT PRIMARY KEY, userid BIGINT UNSIGNED NOT NULL,
    body VARCHAR(200) NOT NULL, meta JSON NULL, KEY (userid)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`;

check('fixtures: database node_proto (utf8mb4) with its tables on shard1, the sharded table posts on both masters', async () => {
  for (const addr of [S1, S2]) {
    await withConn(directAdmin(addr), async (c) => {
      await c.query(`DROP DATABASE IF EXISTS ${DB}`);
      await c.query(`CREATE DATABASE ${DB} CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci`);
      // Sessions act as the client's own account at the database: app needs the grant.
      await c.query(`GRANT ALL PRIVILEGES ON ${DB}.* TO 'app'@'%'`);
      await c.query(POSTS_DDL);
    });
  }
  await withConn(directAdmin(S1), async (c) => {
    await c.query(TYPES_DDL);
    await c.query(`CREATE TABLE ${DB}.tx (id INT PRIMARY KEY, v VARCHAR(32)) ENGINE=InnoDB`);
    await c.query(`CREATE TABLE ${DB}.errs (id INT PRIMARY KEY, small TINYINT NOT NULL) ENGINE=InnoDB`);
    await c.query(`CREATE TABLE ${DB}.bulk (id INT PRIMARY KEY, name VARCHAR(64) NOT NULL, amount DECIMAL(12,2), at DATETIME) ENGINE=InnoDB`);
    await c.query(`CREATE TABLE ${DB}.blobs (id INT PRIMARY KEY, t LONGTEXT, b LONGBLOB) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`);
    await c.query(
      `INSERT INTO ${DB}.types VALUES
        (1, ?, ?, ?, ?, ?, ?, ?, '9999-12-31 23:59:59.999999', '1000-01-01', '-838:59:59.000000', 2155,
         b'1', b'1111111111', 'ü', 'x,z', ?, '123e4567-e89b-12d3-a456-426655440000', '2001:db8::1'),
        (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
        (3, 0, 0, 0, -0.0, '', '', '', '1970-01-01 00:00:00', '2020-02-29', '00:00:00.000001', 1901, b'0', b'0',
         'a', '', '[]', '00000000-0000-0000-0000-000000000000', '::')`,
      [-9223372036854775808n, 18446744073709551615n, '-12345678901234567890.1234567891', 1.7976931348623157e308,
        UNICODE, TEXT_VALUE, BIN_VALUE, JSON.stringify(JSON_DOC)]);
    expectEq('rows in node_proto.types', await scalar(c, `SELECT COUNT(*) FROM ${DB}.types`), 3n);
  });
});

check('preflight: the router accepts app\'s login (database app) and answers SELECT 1; same server version as direct', async () => {
  await both({}, async (r, d) => {
    expectEq('SELECT 1 through the router', await scalar(r, 'SELECT 1'), 1);
    expectSame('serverVersion()', r.serverVersion(), d.serverVersion());
    expect(/MariaDB/.test(r.serverVersion()), `serverVersion() ${r.serverVersion()}`);
  });
});

check('SHOW DBROUTER ROUTE FOR (a result set the router answers itself) through the connector: shard and master as the CLI says', async () => {
  if (NO_ROUTER) return;
  const want = await routeOf(1000);
  await withConn(router(), async (r) => {
    const res = await result(r, 'query', 'SHOW DBROUTER ROUTE FOR 1000');
    expectEq('route of user 1000', [res.rows[0].userid, res.rows[0].shard, res.rows[0].master], ['1000', want.shard, want.master]);
    expectEq('column collation and length', [res.meta[0].collation, res.meta[0].columnLength], ['UTF8MB4_GENERAL_CI', 1024]);
    expectEq('SELECT 1 afterwards', await scalar(r, 'SELECT 1'), 1);
  });
});

const SESSION_VARS = 'SELECT DATABASE() AS db, CURRENT_USER() AS cu, @@character_set_client AS cs_client,' +
  ' @@character_set_connection AS cs_conn, @@character_set_results AS cs_results,' +
  ' @@collation_connection AS coll, @@autocommit AS ac, @@max_statement_time AS mst';

check('connect with database node_proto: session database, account, character set and collation as direct', async () => {
  await both({ database: DB }, async (r, d) => {
    const got = await r.query(SESSION_VARS);
    expectSame('session variables', Array.from(got), Array.from(await d.query(SESSION_VARS)));
    expectEq('database, character set', [got[0].db, got[0].cs_client, got[0].cs_results, got[0].ac], [DB, 'utf8mb4', 'utf8mb4', 1n]);
    expectEq('CURRENT_USER()', got[0].cu, `${APP_USER}@%`);
  });
});

check('query() over every common column type (NULLs, unicode, binary, BIGINT, DECIMAL, dates, BIT, JSON, UUID, INET6): values and column definitions as direct', async () => {
  const sql = 'SELECT * FROM types ORDER BY id';
  await both({ database: DB }, async (r, d) => {
    const got = await result(r, 'query', sql);
    const want = await result(d, 'query', sql);
    expectSame('column definitions', got.meta, want.meta);
    for (let n = 0; n < 3; n++) expectSame(`row ${n + 1}`, got.rows[n], want.rows[n]);
    expectEq('row count', got.rows.length, 3);
    const one = got.rows[0];
    expectEq('row 1 values', [one.i, one.u, one.d, one.s, one.t, one.b, one.y, one.b1, one.e, one.st, one.uu, one.ip],
      [-9223372036854775808n, 18446744073709551615n, '-12345678901234567890.1234567891', UNICODE, TEXT_VALUE, BIN_VALUE,
        2155, true, 'ü', ['x', 'z'], '123e4567-e89b-12d3-a456-426655440000', '2001:db8::1']);
    expectEq('row 1 JSON column (parsed by the connector: extended metadata says json)', one.js, JSON_DOC);
    const js = got.meta.find((m) => m.name === 'js');
    expectEq('JSON column definition', [js.json, js.dataTypeName], [true, undefined]);
    expectEq('UUID column extended type name', got.meta.find((m) => m.name === 'uu').dataTypeName, 'uuid');
    expectEq('row 2 (all NULL but id)', Object.values(got.rows[1]).filter((v) => v !== null), [2]);
  });
});

check('execute() (binary protocol) with parameters, and prepare() executed 3 times: rows and column definitions as direct', async () => {
  const sql = 'SELECT id, i, u, d, s, b, dt, js, ? AS p_int, ? AS p_str, ? AS p_null FROM types WHERE id <= ? ORDER BY id';
  const values = [42, 'ü🦀', null, 3];
  await both({ database: DB }, async (r, d) => {
    const got = await result(r, 'execute', sql, values);
    const want = await result(d, 'execute', sql, values);
    expectSame('column definitions', got.meta, want.meta);
    expectSame('rows', got.rows, want.rows);
    expectEq('rows', got.rows.length, 3);
    expectEq('row 1', [got.rows[0].u, got.rows[0].p_int, got.rows[0].p_str, got.rows[0].p_null, got.rows[0].js],
      [18446744073709551615n, 42, 'ü🦀', null, JSON_DOC]);
    const runs = [];
    for (const conn of [r, d]) {
      const stmt = await conn.prepare('SELECT id, s, ? + 1 AS next FROM types WHERE id = ?');
      const out = [stmt.parameterCount, metaInfo(stmt.columns)];
      for (const id of [1, 3, 2]) out.push(Array.from(await stmt.execute([id * 10, id])));
      stmt.close();
      out.push(await scalar(conn, 'SELECT 7'));
      runs.push(out);
    }
    expectSame('prepare(): parameter count, columns, three executions', runs[0], runs[1]);
    expectEq('prepare(): executions', runs[0].slice(2), [
      [{ id: 1, s: UNICODE, next: 11n }], [{ id: 3, s: '', next: 31n }], [{ id: 2, s: null, next: 21n }], 7]);
  });
});

check('server errors (1146, 1064, 1062, 1264, 1364, 1644, 1054) identical to direct in query() and execute(); the session goes on', async () => {
  const statements = [
    ['SELECT * FROM node_nosuchtable', 1146],
    ['SELEKT 1', 1064],
    ['INSERT INTO errs (id, small) VALUES (1, 1), (1, 2)', 1062],
    ['INSERT INTO errs (id, small) VALUES (2, 1000)', 1264],
    ['INSERT INTO errs (id) VALUES (3)', 1364],
    ["SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'custom failure ü 🦀'", 1644],
    ['SELECT nosuchcolumn FROM errs', 1054],
  ];
  await both({ database: DB }, async (r, d) => {
    await d.query('DELETE FROM errs');
    for (const how of ['query', 'execute']) {
      for (const [sql, code] of statements) {
        if (how === 'execute' && code === 1644) continue; // SIGNAL cannot be prepared
        const errD = await errorOf(() => d[how](sql));
        const errR = await errorOf(() => r[how](sql));
        expectEq(`${how}(${sql}): direct errno`, errD.errno, code);
        expectSame(`${how}(${sql}): error`, errR, errD);
        expectEq(`${how}(${sql}): SELECT 1 afterwards`, await scalar(r, 'SELECT 1'), 1);
      }
    }
    expectEq('rows in errs (every INSERT failed)', await scalar(d, 'SELECT COUNT(*) FROM errs'), 0n);
  });
});

check('transactions: beginTransaction() + rollback() leaves nothing, commit() is visible directly; IN_TRANS meanwhile', async () => {
  const sel = 'SELECT id, v FROM tx ORDER BY id';
  await both({ database: DB }, async (r, d) => {
    await r.query('DELETE FROM tx');
    await r.beginTransaction();
    await r.query("INSERT INTO tx VALUES (1, 'rolled back')");
    await r.execute('INSERT INTO tx VALUES (?, ?)', [2, 'rolled back too']);
    expectEq('router sees its own uncommitted rows', Array.from(await r.query(sel)).length, 2);
    expectEq('direct does not see the uncommitted rows', Array.from(await d.query(sel)), []);
    expectEq('@@in_transaction inside', await scalar(r, 'SELECT @@in_transaction'), 1n);
    await r.rollback();
    expectEq('router after rollback', Array.from(await r.query(sel)), []);
    await r.beginTransaction();
    await r.execute('INSERT INTO tx VALUES (?, ?)', [3, 'committed']);
    expectEq('direct before commit', Array.from(await d.query(sel)), []);
    await r.commit();
    expectEq('direct after commit', Array.from(await d.query(sel)), [{ id: 3, v: 'committed' }]);
    expectEq('@@in_transaction after commit', await scalar(r, 'SELECT @@in_transaction'), 0n);
  });
});

check('sharded posts: query() literals and execute() parameters for users of both shards land on the master their route names', async () => {
  const users = await usersByShard(3);
  const all = [...users.shard1, ...users.shard2];
  const want = [];
  await withConn(router({ database: DB }), async (r) => {
    for (const [n, u] of all.entries()) {
      if (n % 2 === 0) {
        const ok = await r.query(`INSERT INTO posts (userid, body) VALUES (${u}, 'text ${u}')`);
        expectEq(`INSERT for ${u}: affectedRows`, ok.affectedRows, 1);
        want.push({ userid: u, body: `text ${u}` });
      } else {
        const ok = await r.execute('INSERT INTO posts (body, userid) VALUES (?, ?)', [`prep ${u}`, u]);
        expectEq(`prepared INSERT for ${u}: affectedRows`, ok.affectedRows, 1);
        want.push({ userid: u, body: `prep ${u}` });
      }
    }
    // Reads by key, through the router, answer from the right shard.
    for (const u of all) {
      const rows = Array.from(await r.execute('SELECT userid, body FROM posts WHERE userid = ?', [u]));
      expectEq(`SELECT for user ${u}`, rows.map((x) => [Number(x.userid), x.body]), want.filter((w) => w.userid === u).map((w) => [u, w.body]));
    }
  });
  await expectPostsWhereRouted('inserted rows', `WHERE userid IN (${all.join(',')})`, want);
  if (!NO_ROUTER) {
    const s1 = (await routeOf(users.shard1[0])).master, s2 = (await routeOf(users.shard2[0])).master;
    expect(s1 !== s2, `users ${users.shard1[0]} and ${users.shard2[0]} on one master ${s1}`);
  }
});

check('sharded transaction: BEGIN, writes of one user, rollback then commit, on that user\'s shard only', async () => {
  const users = await usersByShard(1);
  for (const u of [...users.shard1, ...users.shard2]) {
    await withConn(router({ database: DB }), async (r) => {
      await r.query('DELETE FROM posts WHERE userid = ?', [u]);
      await r.beginTransaction();
      await r.execute('INSERT INTO posts (userid, body) VALUES (?, ?)', [u, 'tx rolled back']);
      await r.rollback();
      await r.beginTransaction();
      await r.execute('INSERT INTO posts (userid, body) VALUES (?, ?)', [u, 'tx one']);
      await r.query(`INSERT INTO posts (userid, body) VALUES (${u}, 'tx two')`);
      await r.commit();
    });
    await expectPostsWhereRouted(`user ${u}`, `WHERE userid = ${u}`, [{ userid: u, body: 'tx one' }, { userid: u, body: 'tx two' }]);
  }
});

check('a JSON column: CREATE TABLE through the connection, objects bound as parameters come back parsed, as direct (query and execute)', async () => {
  const doc2 = { list: [1, 2.5, null, 'ü'], deep: { a: { b: { c: [true, false] } } } };
  await both({ database: DB }, async (r, d) => {
    await r.query('DROP TABLE IF EXISTS docs');
    await r.query('CREATE TABLE docs (id INT PRIMARY KEY, doc JSON NOT NULL, note VARCHAR(20)) ENGINE=InnoDB');
    await r.execute('INSERT INTO docs VALUES (?, ?, ?)', [1, JSON_DOC, 'object param']);
    await r.query('INSERT INTO docs VALUES (?, ?, ?)', [2, doc2, 'text param']);
    await r.query(`INSERT INTO docs VALUES (3, '"just a string"', 'scalar'), (4, '[]', 'array')`);
    const got = [];
    for (const conn of [r, d]) {
      got.push([
        await result(conn, 'query', 'SELECT id, doc, note FROM docs ORDER BY id'),
        await result(conn, 'execute', 'SELECT id, doc FROM docs WHERE id = ?', [2]),
        Array.from(await conn.query("SELECT JSON_EXTRACT(doc, '$.name') AS name, JSON_TYPE(doc) AS t FROM docs WHERE id = 1")),
      ]);
    }
    expectSame('JSON results (rows and column definitions)', got[0], got[1]);
    const rows = got[0][0].rows;
    expectEq('docs rows', rows.map((x) => x.doc), [JSON_DOC, doc2, 'just a string', []]);
    expectEq('typeof doc', typeof rows[0].doc, 'object');
    expectEq('execute() doc', got[0][1].rows, [{ id: 2, doc: doc2 }]);
    expectEq('column definition of doc', got[0][0].meta[1].json, true);
  });
  // The JSON column of the sharded table, written and read through the router for a user of each shard.
  const users = await usersByShard(1);
  for (const u of [...users.shard1, ...users.shard2]) {
    const meta = { user: u, prefs: { theme: 'dark', langs: ['de', 'ü'] } };
    await withConn(router({ database: DB }), async (r) => {
      await r.execute('INSERT INTO posts (userid, body, meta) VALUES (?, ?, ?)', [u, 'with json', meta]);
      const back = Array.from(await r.query('SELECT meta FROM posts WHERE userid = ? AND body = ?', [u, 'with json']));
      expectEq(`posts.meta for user ${u} through the router`, back, [{ meta }]);
    });
    const { master } = await routeOf(u);
    const back = await withConn(connect(masterAddr(master), { database: DB }), (d) =>
      d.query('SELECT meta FROM posts WHERE userid = ? AND body = ?', [u, 'with json']));
    expectEq(`posts.meta for user ${u} directly on ${master}`, Array.from(back), [{ meta }]);
  }
});

check('changeUser() (COM_CHANGE_USER): new database, session state gone, as direct; a wrong password -> the same error as direct', async () => {
  const probe = 'SELECT DATABASE() AS db, CURRENT_USER() AS cu, @node_var AS v, @@character_set_client AS cs';
  await both({}, async (r, d) => {
    const got = [];
    for (const conn of [r, d]) {
      await conn.query("SET @node_var = 'before'");
      await conn.changeUser({ user: APP_USER, password: APP_PASSWORD, database: DB });
      const after = Array.from(await conn.query(probe));
      await conn.query("SET NAMES latin1");
      await conn.changeUser({ user: APP_USER, password: APP_PASSWORD, database: APP_DB });
      const again = Array.from(await conn.query(probe));
      got.push([after, again, await scalar(conn, 'SELECT COUNT(*) FROM node_proto.types')]);
    }
    expectSame('after changeUser()', got[0], got[1]);
    expectEq('after changeUser()', got[0], [
      [{ db: DB, cu: `${APP_USER}@%`, v: null, cs: 'utf8mb4' }], [{ db: APP_DB, cu: `${APP_USER}@%`, v: null, cs: 'utf8mb4' }], 3n]);
  });
  await both({}, async (r, d) => {
    const errD = await errorOf(() => d.changeUser({ user: APP_USER, password: `not-${APP_PASSWORD}` }));
    const errR = await errorOf(() => r.changeUser({ user: APP_USER, password: `not-${APP_PASSWORD}` }));
    expectEq('direct: wrong password', [errD.errno, errD.sqlState, errD.sqlMessage],
      [1045, '28000', `Access denied for user '${APP_USER}'@'127.0.0.1' (using password: YES)`]);
    expectSame('wrong password on changeUser()', errR, errD);
    // MariaDB ends the connection after a failed COM_CHANGE_USER.
    const after = [await errorOf(() => r.query('SELECT 1')), await errorOf(() => d.query('SELECT 1'))];
    expectSame('the next query after the failed changeUser()', after[0], after[1]);
    expectSame('isValid() afterwards', r.isValid(), d.isValid());
  });
});

check('reset() (COM_RESET_CONNECTION) and ping() (COM_PING): variables gone after reset, kept across pings, as direct', async () => {
  await both({ database: DB }, async (r, d) => {
    const got = [];
    for (const conn of [r, d]) {
      await conn.query('SET @node_reset = 5');
      await conn.ping();
      await conn.ping(2000);
      const kept = await scalar(conn, 'SELECT @node_reset');
      await conn.reset();
      got.push([kept, await scalar(conn, 'SELECT @node_reset'), await scalar(conn, 'SELECT DATABASE()')]);
    }
    expectSame('after pings and reset()', got[0], got[1]);
    expectEq('after pings and reset()', got[0], [5n, null, DB]);
  });
});

async function compressedAnswers(conn) {
  return [
    await result(conn, 'query', 'SELECT * FROM types ORDER BY id'),
    await result(conn, 'execute', 'SELECT id, s, js FROM types WHERE id < ? ORDER BY id', [3]),
    await result(conn, 'query', 'SELECT seq, REPEAT(CHAR(65 + seq % 26), seq % 300) AS pad FROM seq_1_to_5000'),
    await errorOf(() => conn.query('SELECT * FROM node_nosuchtable')),
    await scalar(conn, "SELECT SHA1(REPEAT('compress me ', 200000))"),
  ];
}

check('compress: true (CLIENT_COMPRESS): the same answers as direct compressed and as uncompressed; 15 MiB written, 17 MiB read', async () => {
  const got = [];
  for (const [name, connP] of [['router compressed', router({ database: DB, compress: true })],
    ['direct compressed', direct({ database: DB, compress: true })], ['router plain', router({ database: DB })]]) {
    got.push(await withConn(connP, async (c) => [name, await compressedAnswers(c)]));
  }
  expectSame('answers compressed', got[0][1], got[1][1]);
  expectSame('answers compressed vs uncompressed through the router', got[0][1], got[2][1]);
  expectEq('5000 rows', got[0][1][2].rows.length, 5000);
  // The connector cannot write a packet of 16 MiB or more compressed (directly either: the server
  // resets the connection), so it writes 15 MiB compressed and reads 17 MiB compressed.
  const mid = crypto.randomBytes(15 * MIB);
  const big = crypto.randomBytes(17 * MIB);
  await withConn(direct({ database: DB }), (d) => d.execute('REPLACE INTO blobs (id, b) VALUES (?, ?)', [17, big]));
  for (const [name, connP] of [['router', router({ database: DB, compress: true })], ['direct', direct({ database: DB, compress: true })]]) {
    await withConn(connP, async (c) => {
      const back = await scalar(c, 'SELECT b FROM blobs WHERE id = 17');
      expectEq(`${name}: 17 MiB blob read compressed: length`, back.length, big.length);
      expectEq(`${name}: 17 MiB blob read compressed: sha1`, sha1(back), sha1(big));
      await c.execute('REPLACE INTO blobs (id, b) VALUES (?, ?)', [15, mid]);
      expectEq(`${name}: SHA1() of the 15 MiB blob written compressed`, await scalar(c, 'SELECT SHA1(b) FROM blobs WHERE id = 15'), sha1(mid));
    });
  }
});

function encode(text, charset) {
  return createRequire(path.join(__dirname, 'node', 'package.json'))('iconv-lite').encode(text, charset === 'cp1251' ? 'win1251' : charset);
}

/** A connection in a non-UTF-8 character set: a table whose name, column and values are non-ASCII
 * in it, made and filled through the router, read back through the router and directly; the error
 * about a missing non-ASCII table; a row of the sharded posts for a user of each shard. The table is
 * created with backticked names (as schema tools write them), everything else uses bare names. */
async function charsetCheck(charset, table, column, values, missing, hex) {
  const probe = 'SELECT @@character_set_client AS c, @@character_set_connection AS n, @@character_set_results AS r';
  const users = await usersByShard(1);
  await both({ database: DB, charset }, async (r, d) => {
    expectSame('character set variables', Array.from(await r.query(probe)), Array.from(await d.query(probe)));
    expectEq('character set variables', Array.from(await r.query(probe)), [{ c: charset, n: charset, r: charset }]);
    await r.query(`DROP TABLE IF EXISTS \`${table}\``);
    await r.query(`CREATE TABLE \`${table}\` (id INT PRIMARY KEY, \`${column}\` VARCHAR(60)) CHARACTER SET ${charset}`);
    await r.query(`INSERT INTO ${table} (id, ${column}) VALUES (1, '${values[0]}')`);
    await r.query(`INSERT INTO ${table} (id, ${column}) VALUES (?, ?)`, [2, values[1]]);
    await r.execute(`INSERT INTO ${table} (id, ${column}) VALUES (?, ?)`, [3, values[2]]);
    const sel = `SELECT id, ${column}, HEX(${column}) AS h FROM ${table} ORDER BY id`;
    const got = [await result(r, 'query', sel), await result(r, 'execute', sel)];
    const want = [await result(d, 'query', sel), await result(d, 'execute', sel)];
    expectSame(`rows and column definitions of ${table}`, got, want);
    expectEq('values read back through the router', got[0].rows.map((x) => x[column]), values);
    expectEq(`HEX() of the first value (stored in ${charset})`, got[0].rows[0].h, hex);
    expectEq('column name', got[0].meta[1].name, column);
    const tables = [Array.from(await r.query('SHOW TABLES LIKE ?', [table])), Array.from(await d.query('SHOW TABLES LIKE ?', [table]))];
    expectSame('SHOW TABLES LIKE', tables[0], tables[1]);
    expectEq('SHOW TABLES LIKE', tables[0].map((x) => Object.values(x)[0]), [table]);
    // The server sends the message in character_set_results; the connector decodes every error
    // message as UTF-8 (non-UTF-8 bytes become U+FFFD), so the exact text is read with SHOW ERRORS.
    const message = `Table '${DB}.${missing}' doesn't exist`;
    const lossy = encode(message, charset).toString('utf8');
    for (const sql of [`SELECT * FROM ${missing}`, `SELECT * FROM \`${missing}\``]) {
      const errD = await errorOf(() => d.query(sql));
      const errR = await errorOf(() => r.query(sql));
      expectEq(`direct: ${sql}`, [errD.errno, errD.sqlMessage], [1146, lossy]);
      expectSame(`${sql}: error`, errR, errD);
      const shown = [Array.from(await r.query('SHOW ERRORS')), Array.from(await d.query('SHOW ERRORS'))];
      expectSame(`SHOW ERRORS after ${sql}`, shown[0], shown[1]);
      expectEq(`SHOW ERRORS after ${sql}`, shown[0], [{ Level: 'Error', Code: 1146, Message: message }]);
    }
    const errDx = await errorOf(() => d.execute(`SELECT * FROM ${missing} WHERE id = ?`, [1]));
    const errRx = await errorOf(() => r.execute(`SELECT * FROM ${missing} WHERE id = ?`, [1]));
    expectSame('missing non-ASCII table (prepare): error', errRx, errDx);
    // The sharded table: a non-ASCII value in this character set for a user of each shard.
    for (const u of [...users.shard1, ...users.shard2]) {
      await r.query(`INSERT INTO posts (userid, body) VALUES (${u}, '${charset} ${values[0]}')`);
      await r.execute('INSERT INTO posts (userid, body) VALUES (?, ?)', [u, `${charset} ${values[1]}`]);
      expectEq(`posts of user ${u} read back through the router`,
        Array.from(await r.query('SELECT body FROM posts WHERE userid = ? AND body LIKE ? ORDER BY id', [u, `${charset} %`])).map((x) => x.body),
        [`${charset} ${values[0]}`, `${charset} ${values[1]}`]);
    }
  });
  // What the server stored, read as utf8mb4 directly.
  await withConn(direct({ database: DB }), async (d) => {
    expectEq(`${table} read as utf8mb4 directly`, Array.from(await d.query(`SELECT \`${column}\` AS v FROM \`${table}\` ORDER BY id`)).map((x) => x.v), values);
  });
  const all = [...users.shard1, ...users.shard2];
  await expectPostsWhereRouted(`${charset} rows of posts`, `WHERE userid IN (${all.join(',')}) AND body LIKE '${charset} %'`,
    all.flatMap((u) => [{ userid: u, body: `${charset} ${values[0]}` }, { userid: u, body: `${charset} ${values[1]}` }]));
}

check("charset 'latin1': a table `café_ñü` with non-ASCII values (bare names), inserted and read back, the missing-table error, sharded rows, as direct", async () => {
  await charsetCheck('latin1', 'café_ñü', 'naïve', ['Crème brûlée à la carte', 'Ærøskøbing ß µ ¿', 'ÿ þ ð × ÷'], 'absent_ñandú',
    encode('Crème brûlée à la carte', 'latin1').toString('hex').toUpperCase());
});

check("charset 'cp1251': a table `заказы` with Cyrillic values (bare names), inserted and read back, the missing-table error, sharded rows, as direct", async () => {
  await charsetCheck('cp1251', 'заказы', 'имя', ['Привет, мир — ёЁ', 'Съешь же ещё этих мягких булок', '№ 5 «кавычки» €'], 'нет_такой_таблицы',
    encode('Привет, мир — ёЁ', 'cp1251').toString('hex').toUpperCase());
});

check('createPool({queryTimeout}): SLEEP beyond it -> 1969 as direct, the pool goes on; per-query timeout (SET STATEMENT … FOR) on both shards', async () => {
  const users = await usersByShard(1);
  const outcomes = [];
  for (const addr of [ROUTER, S1]) {
    const pool = mariadb.createPool({
      host: addr.host, port: addr.port, user: APP_USER, password: APP_PASSWORD, database: DB,
      connectionLimit: 3, queryTimeout: 1000, acquireTimeout: 20000, connectTimeout: 10000, socketTimeout: 120000,
    });
    try {
      const out = {};
      out.mst = await pool.query('SELECT @@max_statement_time AS mst');
      const t0 = Date.now();
      out.sleep = await errorOf(() => pool.query('SELECT SLEEP(5)'), `${addr.text}: SELECT SLEEP(5) with queryTimeout 1000`);
      out.sleepMs = Date.now() - t0;
      // Ten concurrent queries through 3 connections, then the pool is still usable.
      out.parallel = await Promise.all(Array.from({ length: 10 }, (_, i) => pool.query('SELECT ? AS n, SLEEP(0.05) AS s', [i])));
      out.parallel = out.parallel.map((rows) => Array.from(rows));
      out.after = Array.from(await pool.query('SELECT 1 AS one'));
      // Per query: { timeout } makes the connector prefix SET STATEMENT max_statement_time=… FOR.
      out.perQuery = await errorOf(() => pool.query({ sql: 'SELECT SLEEP(5)', timeout: 300 }), `${addr.text}: SELECT SLEEP(5) with timeout 300`);
      out.perQueryOk = Array.from(await pool.query({ sql: 'SELECT 2 AS two', timeout: 3000 }));
      outcomes.push(out);
    } finally {
      await pool.end();
    }
  }
  const [r, d] = outcomes;
  expectEq('direct: @@max_statement_time of a pooled connection', d.mst[0].mst, 1);
  expectEq('direct: SLEEP(5) with queryTimeout 1000', d.sleep.errno, 1969);
  for (const key of ['mst', 'sleep', 'parallel', 'after', 'perQuery', 'perQueryOk']) expectSame(key, r[key], d[key]);
  expect(r.sleepMs < 4500, `SLEEP(5) through the router ended after ${r.sleepMs} ms, not ~1000`);
  // The session timeout is session state: replayed on the shard2 connection of a pooled session.
  if (!NO_ROUTER) {
    const pool = mariadb.createPool({
      host: ROUTER.host, port: ROUTER.port, user: APP_USER, password: APP_PASSWORD, database: DB,
      connectionLimit: 2, queryTimeout: 1000, acquireTimeout: 20000, connectTimeout: 10000, socketTimeout: 120000,
    });
    try {
      for (const u of [users.shard1[0], users.shard2[0]]) {
        const rows = Array.from(await pool.query('SELECT @@max_statement_time AS mst, COUNT(*) AS n FROM posts WHERE userid = ?', [u]));
        expectEq(`@@max_statement_time on the shard of user ${u}`, rows[0].mst, 1);
        const err = await errorOf(() => pool.query('SELECT SLEEP(5), COUNT(*) FROM posts WHERE userid = ?', [u]), `SLEEP(5) for user ${u}`);
        expectEq(`SLEEP(5) on the shard of user ${u}`, err, d.sleep);
        const err2 = await errorOf(() => pool.query({ sql: 'SELECT SLEEP(5), COUNT(*) FROM posts WHERE userid = ?', timeout: 300 }, [u]), `SLEEP(5) with timeout 300 for user ${u}`);
        expectEq(`per-query timeout on the shard of user ${u}`, err2, d.perQuery);
      }
    } finally {
      await pool.end();
    }
  }
});

check('batch() (COM_STMT_BULK_EXECUTE) of 1000 rows into a global table; a duplicate key in a batch -> the same error as direct', async () => {
  const rows = Array.from({ length: 1000 }, (_, i) => [i + 1, `name-${i + 1} ü`, ((i + 1) * 7) / 100, new Date(2024, 0, 1, 0, 0, i % 60)]);
  const summary = "SELECT COUNT(*) AS n, SUM(id) AS ids, SUM(amount) AS amount, MD5(GROUP_CONCAT(name, '/', at ORDER BY id SEPARATOR '|')) AS md5 FROM bulk";
  const got = [];
  for (const connP of [router({ database: DB }), direct({ database: DB })]) {
    got.push(await withConn(connP, async (c) => {
      await c.query('SET SESSION group_concat_max_len = 1048576');
      await c.query('DELETE FROM bulk');
      const res = await c.batch('INSERT INTO bulk (id, name, amount, at) VALUES (?, ?, ?, ?)', rows);
      const sum = Array.from(await c.query(summary));
      const dup = await errorOf(() => c.batch('INSERT INTO bulk (id, name, amount, at) VALUES (?, ?, ?, ?)', [[5001, 'x', 1, null], [1, 'dup', 2, null]]));
      const after = await scalar(c, 'SELECT COUNT(*) FROM bulk');
      // One OkPacket, or one per row (what the connector makes of the server's answers).
      return { res: Array.isArray(res) ? res.map(okInfo) : okInfo(res), sum, dup, after };
    }));
  }
  const affected = (res) => (Array.isArray(res) ? res.reduce((n, x) => n + x.affectedRows, 0) : res.affectedRows);
  expectEq('direct batch(): rows affected', affected(got[1].res), 1000);
  expectSame('batch() result', got[0].res, got[1].res);
  expectSame('table content after batch()', got[0].sum, got[1].sum);
  expectEq('rows', got[0].sum[0].n, 1000n);
  expectEq('direct: duplicate in a batch', got[1].dup.errno, 1062);
  expectSame('duplicate in a batch: error', got[0].dup, got[1].dup);
  expectSame('rows after the failed batch', got[0].after, got[1].after);
});

check('batch() into the sharded posts: rows of users of one shard land there; rows of users of two shards -> ERR 1235, nothing written', async () => {
  const users = await usersByShard(3);
  const want = [];
  for (const shard of NO_ROUTER ? ['shard1'] : ['shard1', 'shard2']) {
    const rows = users[shard].flatMap((u) => [[u, `bulk a ${u}`, { n: u }], [u, `bulk b ${u}`, null]]);
    await withConn(router({ database: DB }), async (r) => {
      const res = await r.batch('INSERT INTO posts (userid, body, meta) VALUES (?, ?, ?)', rows);
      const affected = Array.isArray(res) ? res.reduce((n, x) => n + x.affectedRows, 0) : res.affectedRows;
      expectEq(`batch() for the users of ${shard}: rows affected`, affected, rows.length);
    });
    want.push(...rows.map(([u, body]) => ({ userid: u, body })));
  }
  await expectPostsWhereRouted('rows of batch()', "WHERE body LIKE 'bulk %'", want);
  if (NO_ROUTER) return;
  const mixed = [[users.shard1[0], 'bulk mixed', null], [users.shard2[0], 'bulk mixed', null]];
  const err = await withConn(router({ database: DB }), async (r) => {
    const e = await errorOf(() => r.batch('INSERT INTO posts (userid, body, meta) VALUES (?, ?, ?)', mixed));
    expectEq('SELECT 1 after the refused batch', await scalar(r, 'SELECT 1'), 1);
    return e;
  });
  expectEq('batch() over two shards: errno', err.errno, 1235);
  expect(/shard/.test(err.sqlMessage), `batch() over two shards: message ${err.sqlMessage}`);
  await expectPostsWhereRouted('rows after the refused batch', "WHERE body = 'bulk mixed'", []);
});

check('pipelining: 60 query()/execute() calls written without waiting on one connection, answers in order as direct', async () => {
  const users = await usersByShard(2);
  const keyed = NO_ROUTER ? users.shard1 : [...users.shard1, ...users.shard2];
  for (const u of keyed) {
    const { master } = await routeOf(u);
    await withConn(directAdmin(masterAddr(master), { database: DB }), async (d) => {
      await d.query("DELETE FROM posts WHERE userid = ? AND body LIKE 'pipe %'", [u]);
      await d.query("INSERT INTO posts (userid, body) VALUES (?, 'pipe 1'), (?, 'pipe 2')", [u, u]);
    });
  }
  const run = (conn) => Promise.all(Array.from({ length: 60 }, (_, i) => {
    if (i % 3 === 0) return conn.query('SELECT ? AS i, REPEAT(?, ?) AS pad', [i, 'ab', i * 10]).then((x) => Array.from(x));
    if (i % 3 === 1) return conn.execute('SELECT ? AS i, id, s FROM types WHERE id = ?', [i, (i % 3) + 1]).then((x) => Array.from(x));
    const u = keyed[i % keyed.length];
    return conn.execute('SELECT COUNT(*) AS n FROM posts WHERE userid = ? AND body LIKE ?', [u, 'pipe %']).then((x) => [u, Array.from(x)]);
  }));
  const got = await withConn(router({ database: DB, pipelining: true }), run);
  const want = [];
  for (const [i, answer] of got.entries()) {
    if (i % 3 !== 2) continue;
    const [u] = answer;
    const { master } = await routeOf(u);
    want.push([i, await withConn(connect(masterAddr(master), { database: DB }), (d) =>
      d.execute('SELECT COUNT(*) AS n FROM posts WHERE userid = ? AND body LIKE ?', [u, 'pipe %']).then((x) => [u, Array.from(x)]))]);
  }
  const direct60 = await withConn(direct({ database: DB, pipelining: true }), run);
  for (const [i, answer] of got.entries()) {
    if (i % 3 === 2) expectEq(`answer ${i} (user ${answer[0]}), vs its master directly`, answer, want.find((w) => w[0] === i)[1]);
    else expectSame(`answer ${i}`, answer, direct60[i]);
  }
  expectEq('answer 3', got[3], [{ i: 3, pad: 'ab'.repeat(30) }]);
  expectEq('answer 2 (the 2 rows of the user)', got[2][1], [{ n: 2n }]);
});

check('large values: 5 MiB text through query() (escaped) and 5 MiB blob through execute(), read back by both, sha1 as direct', async () => {
  const text = 'ü🦀 '.repeat(Math.floor((5 * MIB) / 9)) + "'\\\"\x00";
  const blob = crypto.randomBytes(5 * MIB);
  const got = [];
  for (const connP of [router({ database: DB }), direct({ database: DB })]) {
    got.push(await withConn(connP, async (c) => {
      await c.query('DELETE FROM blobs WHERE id IN (5, 6)');
      await c.query('INSERT INTO blobs (id, t) VALUES (5, ?)', [text]);
      await c.execute('INSERT INTO blobs (id, b) VALUES (?, ?)', [6, blob]);
      const q = Array.from(await c.query('SELECT t, b FROM blobs WHERE id IN (5, 6) ORDER BY id'));
      const x = Array.from(await c.execute('SELECT t, b FROM blobs WHERE id IN (?, ?) ORDER BY id', [5, 6]));
      const server = Array.from(await c.query('SELECT id, LENGTH(t) AS lt, SHA1(t) AS st, LENGTH(b) AS lb, SHA1(b) AS sb FROM blobs WHERE id IN (5, 6) ORDER BY id'));
      return [q[0].t === text, sha1(q[1].b), x[0].t === text, sha1(x[1].b), server];
    }));
  }
  expectEq('direct', got[1].slice(0, 4), [true, sha1(blob), true, sha1(blob)]);
  expectSame('values read back and SHA1() by the server', got[0], got[1]);
  expectEq('server-side lengths', got[0][4].map((x) => [x.lb, x.lt]), [[null, Buffer.byteLength(text)], [blob.length, null]]);
});

check('KILL QUERY <conn.threadId> from a second connection interrupts a running SLEEP -> the same error as direct', async () => {
  const got = [];
  for (const connect of [router, direct]) {
    const a = await connect();
    const b = await connect();
    try {
      const sleeping = a.query('SELECT SLEEP(20) AS s').then((rows) => ({ rows: Array.from(rows) }), (err) => ({ err: errInfo(err) }));
      await new Promise((resolve) => setTimeout(resolve, 500));
      const t0 = Date.now();
      await b.query(`KILL QUERY ${a.threadId}`);
      const outcome = await sleeping;
      expect(Date.now() - t0 < 10000, `the killed SLEEP(20) ended after ${Date.now() - t0} ms`);
      got.push([outcome, a.isValid(), await scalar(b, 'SELECT 1')]);
    } finally {
      await close(a);
      await close(b);
    }
  }
  expectSame('the killed statement', got[0], got[1]);
  expect(got[1][0].err ? got[1][0].err.errno === 1317 : util.isDeepStrictEqual(got[1][0].rows, [{ s: 1n }]),
    `direct: the killed statement ${show(got[1][0])}`);
});

check("the greeting's connection id (conn.threadId) is CONNECTION_ID()", async () => {
  await both({}, async (r, d) => {
    expectEq('direct: threadId vs CONNECTION_ID()', d.threadId, Number(await scalar(d, 'SELECT CONNECTION_ID()')));
    expectEq('router: threadId vs CONNECTION_ID()', r.threadId, Number(await scalar(r, 'SELECT CONNECTION_ID()')));
  });
});

// --- runner -------------------------------------------------------------------------------------

function timeout(ms) {
  let timer;
  const p = new Promise((_, reject) => { timer = setTimeout(() => reject(new CheckFailed(`timed out after ${ms / 1000}s`)), ms); });
  p.clear = () => clearTimeout(timer);
  return p;
}

function origin(err) {
  const line = (err.stack || '').split('\n').find((l) => l.includes(__filename));
  return line ? ` (${line.trim().replace(__dirname + path.sep, '')})` : '';
}

let onUncaught = null;
process.on('uncaughtException', (err) => {
  err.message = `uncaught exception inside the connector: ${err.message}`;
  if (onUncaught) onUncaught(err);
  else { console.log(`FAIL - ${err.stack}`); console.log('0 passed, 1 failed'); process.exit(1); }
});

async function main(argv) {
  const words = argv.slice(2);
  const selected = CHECKS.filter((c) => !words.length || /^(fixtures|preflight)/.test(c.name) || words.some((w) => c.name.includes(w)));
  const version = require(path.join(__dirname, 'node', 'node_modules', 'mariadb', 'package.json')).version;
  console.log(`# node_mariadb_test.js: mariadb ${version} on Node.js ${process.version}, router ${ROUTER.text} (user ${APP_USER})` +
    ` vs direct ${S1.text} / ${S2.text} (user ${APP_USER})${NO_ROUTER ? ' [no router: router-only checks skipped]' : ''}`);
  let passed = 0, failed = 0, todo = 0;
  for (const [i, c] of selected.entries()) {
    const n = String(i + 1).padStart(2);
    const t0 = Date.now();
    const limit = timeout(CHECK_TIMEOUT_MS);
    // A driver that throws inside its socket handler (a packet it cannot parse) fails this check.
    const uncaught = new Promise((_, reject) => { onUncaught = reject; });
    try {
      await Promise.race([c.fn(), limit, uncaught]);
      if (c.todo) {
        failed++;
        console.log(`FAIL ${n} - ${c.name}: passes now; remove its TODO (${c.todo})`);
        continue;
      }
      passed++;
      console.log(`ok   ${n} - ${c.name} (${((Date.now() - t0) / 1000).toFixed(2)}s)`);
      continue;
    } catch (err) {
      const what = (err instanceof CheckFailed ? err.message : `${err.constructor.name}: ${err.message}${origin(err)}`).replace(/\n/g, ' | ');
      if (c.todo) {
        todo++;
        passed++;
        console.log(`ok   ${n} - ${c.name} # TODO expected difference (${c.todo}): ${what}`);
        continue;
      }
      failed++;
      console.log(`FAIL ${n} - ${c.name}: ${what}`);
    } finally {
      limit.clear();
      onUncaught = null;
    }
    if (FAIL_FAST || /^(fixtures|preflight)/.test(c.name)) break; // everything after depends on it
  }
  if (todo) console.log(`# ${todo} expected difference(s) marked TODO`);
  console.log(`${passed} passed, ${failed} failed`);
  return failed === 0 && passed === selected.length ? 0 : 1;
}

main(process.argv).then(
  (rc) => process.exit(rc),
  (err) => { console.log(`FAIL - ${err.stack}`); console.log('0 passed, 1 failed'); process.exit(1); },
);
