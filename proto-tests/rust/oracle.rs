//! "MariaDB is the oracle": a differential test of routing. Statements go through a
//! router of the test's own over both shards; afterwards both masters are read directly,
//! and every row the statement stored, changed, deleted or read must be on the home shard
//! of the user whose row it is — the user id MariaDB itself stored or filtered on, not the
//! one the router's scanner thought it saw. The router may refuse anything (any ERR is
//! fine) and MariaDB may reject anything (syntax errors are fine); what must never happen
//! is a misplacement ([`Wrong`]):
//!
//! * a row stored (inserted, or changed into) on a shard that is not its user's home;
//! * a row changed, deleted or read on a shard that is not its user's home — unless the
//!   case pins a keyless statement to a user (the session pin or a hint,
//!   [`Case::pinned_to`]) and the shard is that user's.
//!
//! To make every misroute visible, CANARY rows are kept on BOTH masters for every test
//! user (rows no correct router could have put there), each with a unique body: a keyless
//! DELETE sent to one shard deletes another user's canary, an UPDATE keyed on the wrong
//! user changes one, a SELECT answered by the wrong shard returns one.
//!
//! This module owns: the databases `oracle_*` on both masters (one per test, so tests run
//! in parallel), the case model ([`Case`], with `{db}`, `{A}`… placeholders so that a
//! printed case pastes as a regression test), the checker ([`Oracle`]), the fixed-seed
//! test and the time-boxed fuzz run started by `scripts/fuzz-routing`. The seeded case
//! generator is in [`generate`], the named regression tests of the routing bug report in
//! [`regressions`].
//!
//! Users: `{A}`, `{A2}`, `{A3}` live on shard1 and `{B}`, `{B2}`, `{B3}` on shard2; each is
//! chosen so that every naive reading of it (`' A'`, `'+A'`, `'A.0'`, `A + 1`…) hashes to
//! the other shard, so a scanner that reads a key differently from MariaDB misroutes
//! visibly instead of by luck.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use mysql_async::prelude::*;
use mysql_async::{Conn, Opts, OptsBuilder, Params, Row, Value};

use dbrouter::protocol::response::ResponseKind;
use dbrouter::router::{canonical_key_text, RoutingTable};

use crate::harness::*;
use crate::raw::RawClient;

mod generate;
mod regressions;

use generate::{Gen, CATEGORIES};

/// The router's `[sharding]` table: `posts` and `messages` sharded by `userid`, and every
/// other table sharded too (so a statement the scanner mistakes for another table is still
/// refused without a key).
const SHARDING: &str = r#"
[sharding]
key_column = "userid"
key_type = "bigint unsigned"
global_shard = "shard1"
unlisted_tables = "sharded"

[[sharding.tables]]
name = "posts"
key = "userid"

[[sharding.tables]]
name = "messages"
key = "userid"
"#;

/// The test tables, identical in shape, on both masters.
const TABLES: [&str; 2] = ["posts", "messages"];

/// Placeholder names of the test users, per home shard (index 0 = shard1).
const USER_NAMES: [[&str; 3]; 2] = [["A", "A2", "A3"], ["B", "B2", "B3"]];

/// Above this many rows on one master the tables are emptied and the canaries planted anew.
const MAX_ROWS: i64 = 300;

/// How long one case may take through the router before it counts as broken.
const CASE_TIMEOUT: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------------------------
// Cases
// ---------------------------------------------------------------------------------------

/// What one client does on one fresh connection: setup statements, then the statement
/// under test. Text may hold placeholders: `{db}` (the test's database), `{A}`, `{A2}`,
/// `{A3}`, `{B}`, `{B2}`, `{B3}` (the users) and `{HUGE}` (a decimal above 2^64).
#[derive(Debug, Clone)]
pub struct Case {
    /// Sent first, in order (sql_mode, character set, the pin, BEGIN…); their errors are
    /// reported but do not stop the case.
    pub setup: Vec<String>,
    /// The statement under test.
    pub action: Action,
    /// The user (placeholder name) a keyless statement is pinned to by the session pin or
    /// a leading hint: rows of any user may be touched or read on that user's shard.
    pub pinned_to: Option<String>,
}

/// The statement under test.
#[derive(Debug, Clone)]
pub enum Action {
    /// COM_QUERY: one statement or a multi-statement batch.
    Query(Vec<u8>),
    /// COM_STMT_PREPARE and COM_STMT_EXECUTE (mysql_async) with these parameters.
    Prepared(String, Vec<Param>),
    /// Prepared, every parameter sent as COM_STMT_SEND_LONG_DATA (raw client).
    LongData(String, Vec<String>),
    /// `LOAD DATA LOCAL INFILE` and the file the client uploads.
    LoadData(Vec<u8>, Vec<u8>),
}

/// A parameter of a prepared statement; numbers are written as placeholder text
/// (`"{A}"`, `"{A}.4"`) and parsed after substitution.
#[derive(Debug, Clone)]
pub enum Param {
    /// A string parameter.
    Text(String),
    /// A DOUBLE parameter.
    Double(String),
    /// A signed BIGINT parameter.
    Int(String),
    /// An unsigned BIGINT parameter.
    UInt(String),
}

impl Case {
    /// A text statement (or batch) after `setup`.
    pub fn query(setup: &[&str], sql: &[u8]) -> Self {
        Self::with(setup, Action::Query(sql.to_vec()))
    }

    /// A prepared statement executed with `params`.
    pub fn prepared(setup: &[&str], sql: &str, params: Vec<Param>) -> Self {
        Self::with(setup, Action::Prepared(sql.into(), params))
    }

    /// A prepared statement whose parameters are all sent as long data.
    pub fn long_data(setup: &[&str], sql: &str, params: &[&str]) -> Self {
        let params = params.iter().map(|p| p.to_string()).collect();
        Self::with(setup, Action::LongData(sql.into(), params))
    }

    /// `LOAD DATA LOCAL INFILE` uploading `file`.
    pub fn load_data(setup: &[&str], sql: &[u8], file: &[u8]) -> Self {
        Self::with(setup, Action::LoadData(sql.to_vec(), file.to_vec()))
    }

    /// Marks the case as a keyless statement pinned to `user` (see [`Case::pinned_to`]).
    pub fn pinned_to(mut self, user: &str) -> Self {
        self.pinned_to = Some(user.into());
        self
    }

    fn with(setup: &[&str], action: Action) -> Self {
        Case {
            setup: setup.iter().map(|s| s.to_string()).collect(),
            action,
            pinned_to: None,
        }
    }

    /// The case as Rust source (for a regression test).
    fn to_rust(&self) -> String {
        let setup: Vec<String> = self.setup.iter().map(|s| format!("{s:?}")).collect();
        let setup = format!("&[{}]", setup.join(", "));
        let mut code = match &self.action {
            Action::Query(sql) => format!("Case::query({setup}, {})", rust_bytes(sql)),
            Action::Prepared(sql, params) => {
                let params: Vec<String> = params.iter().map(Param::to_rust).collect();
                format!(
                    "Case::prepared({setup}, {sql:?}, vec![{}])",
                    params.join(", ")
                )
            }
            Action::LongData(sql, params) => {
                let params: Vec<String> = params.iter().map(|p| format!("{p:?}")).collect();
                format!(
                    "Case::long_data({setup}, {sql:?}, &[{}])",
                    params.join(", ")
                )
            }
            Action::LoadData(sql, file) => format!(
                "Case::load_data({setup}, {}, {})",
                rust_bytes(sql),
                rust_bytes(file)
            ),
        };
        if let Some(user) = &self.pinned_to {
            let _ = write!(code, ".pinned_to({user:?})");
        }
        code
    }
}

impl Param {
    /// A string parameter.
    pub fn text(s: &str) -> Self {
        Param::Text(s.into())
    }

    /// The value sent, placeholders substituted.
    fn value(&self, ph: &Placeholders) -> Value {
        let text = |s: &str| String::from_utf8_lossy(&ph.render(s.as_bytes())).into_owned();
        match self {
            Param::Text(s) => Value::Bytes(ph.render(s.as_bytes())),
            Param::Double(s) => Value::Double(text(s).parse().unwrap()),
            Param::Int(s) => Value::Int(text(s).parse().unwrap()),
            Param::UInt(s) => Value::UInt(text(s).parse().unwrap()),
        }
    }

    fn to_rust(&self) -> String {
        match self {
            Param::Text(s) => format!("Param::text({s:?})"),
            Param::Double(s) => format!("Param::Double({s:?}.into())"),
            Param::Int(s) => format!("Param::Int({s:?}.into())"),
            Param::UInt(s) => format!("Param::UInt({s:?}.into())"),
        }
    }
}

/// `bytes` as a Rust byte-string literal.
fn rust_bytes(bytes: &[u8]) -> String {
    let mut out = String::from("b\"");
    for &b in bytes {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\t' => out.push_str("\\t"),
            b'\r' => out.push_str("\\r"),
            0x20..=0x7e => out.push(char::from(b)),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
    out.push('"');
    out
}

/// The values placeholders stand for in one test.
#[derive(Debug, Clone)]
struct Placeholders {
    values: Vec<(String, String)>,
}

impl Placeholders {
    /// `text` with every known `{name}` replaced.
    fn render(&self, text: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(text.len() + 16);
        let mut i = 0;
        while i < text.len() {
            if text[i] == b'{' {
                if let Some(len) = text[i..].iter().take(12).position(|&c| c == b'}') {
                    let name = &text[i + 1..i + len];
                    if let Some((_, value)) = self.values.iter().find(|(n, _)| n.as_bytes() == name)
                    {
                        out.extend_from_slice(value.as_bytes());
                        i += len + 1;
                        continue;
                    }
                }
            }
            out.push(text[i]);
            i += 1;
        }
        out
    }
}

// ---------------------------------------------------------------------------------------
// Users
// ---------------------------------------------------------------------------------------

/// Readings of user id `u` a scanner could take literally where MariaDB reads `u`
/// (or, for the last one, `/*!1*/+u`, which MariaDB reads as `u + 1`).
fn naive_readings(u: u64) -> Vec<Vec<u8>> {
    let mut readings: Vec<Vec<u8>> = [
        " {u}", "{u} ", "+{u}", "{u}.0", "{u}e0", "\t{u}", "\x0b{u}", "{u}abc", "{u}.4",
    ]
    .iter()
    .map(|f| f.replace("{u}", &u.to_string()).into_bytes())
    .collect();
    readings.push((u + 1).to_string().into_bytes());
    readings
}

/// The shard index (0 = shard1) the ring puts key text on.
fn shard_of_text(routing: &RoutingTable, text: &[u8]) -> usize {
    usize::from(routing.shard_for_key(&canonical_key_text(text)).0)
}

/// Three users per shard, each with every naive reading on the other shard.
fn pick_users(routing: &RoutingTable) -> [Vec<u64>; 2] {
    let mut users = [Vec::new(), Vec::new()];
    for u in 1000u64.. {
        let home = shard_of_text(routing, u.to_string().as_bytes());
        if users[home].len() < 3
            && naive_readings(u)
                .iter()
                .all(|r| shard_of_text(routing, r) != home)
        {
            users[home].push(u);
        }
        if users.iter().all(|list| list.len() == 3) {
            return users;
        }
    }
    unreachable!()
}

/// A decimal above 2^64 whose digits hash to the shard that is not home of u64::MAX (what
/// MariaDB clamps it to in a non-strict insert).
fn pick_huge(routing: &RoutingTable) -> String {
    let clamped = shard_of_text(routing, u64::MAX.to_string().as_bytes());
    (0u128..)
        .map(|k| (u128::from(u64::MAX) + 1 + k).to_string())
        .find(|text| shard_of_text(routing, text.as_bytes()) != clamped)
        .unwrap()
}

// ---------------------------------------------------------------------------------------
// What the masters hold, and the verdict
// ---------------------------------------------------------------------------------------

/// A row as the oracle sees it: (table, userid, body).
type Stored = (String, u64, Option<Vec<u8>>);

/// Every row of the test tables on each master (index 0 = shard1), with multiplicity.
#[derive(Debug, Clone, Default)]
struct Snapshot([BTreeMap<Stored, i64>; 2]);

impl Snapshot {
    fn count(&self, shard: usize, row: &Stored) -> i64 {
        self.0[shard].get(row).copied().unwrap_or(0)
    }

    /// Whether `shard` holds a row of `userid` in `table`.
    fn has_user(&self, shard: usize, table: &str, userid: u64) -> bool {
        let from = (table.to_string(), userid, None);
        let to = (table.to_string(), userid + 1, None);
        self.0[shard].range(from..to).any(|(_, n)| *n > 0)
    }
}

/// How a row was misplaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wrong {
    /// Stored (inserted, or changed into) on a shard that is not its user's home.
    Stored,
    /// Changed or deleted on a shard that is not its user's home.
    Touched,
    /// Returned to the client from a shard that is not its user's home.
    Read,
}

/// One row a statement stored, touched or read on the wrong shard.
#[derive(Debug, Clone)]
pub struct Misplacement {
    /// What happened to it.
    pub wrong: Wrong,
    /// The shard (index 0 = shard1) it happened on.
    pub shard: usize,
    /// The row.
    pub row: Stored,
    /// How many such rows (negative: removed).
    pub delta: i64,
}

/// The rows that changed between `before` and `after`, and the rows whose bodies came
/// back to the client, judged against the home shard of their users. `allowed` is the
/// shard a pinned keyless statement may touch and read anything on.
fn judge(
    before: &Snapshot,
    after: &Snapshot,
    read: &[Vec<u8>],
    allowed: Option<usize>,
    home: &dyn Fn(u64) -> usize,
) -> Vec<Misplacement> {
    let mut found = Vec::new();
    for shard in 0..2 {
        let rows: BTreeSet<&Stored> = before.0[shard]
            .keys()
            .chain(after.0[shard].keys())
            .collect();
        for row in rows {
            let delta = after.count(shard, row) - before.count(shard, row);
            let at_home = home(row.1) == shard;
            // A pinned keyless UPDATE may change other columns of any row on its shard
            // (the hint or pin vouches for its rows): a row "stored" there is no
            // misplacement when that user's row count in that table did not grow.
            let changed_in_place = allowed == Some(shard) && {
                let net = |snap: &Snapshot| -> i64 {
                    snap.0[shard]
                        .iter()
                        .filter(|(r, _)| r.0 == row.0 && r.1 == row.1)
                        .map(|(_, n)| *n)
                        .sum()
                };
                net(after) <= net(before)
            };
            let wrong = if delta > 0 && !at_home && !changed_in_place {
                Some(Wrong::Stored)
            } else if delta < 0 && !at_home && allowed != Some(shard) {
                Some(Wrong::Touched)
            } else {
                None
            };
            if let Some(wrong) = wrong {
                found.push(Misplacement {
                    wrong,
                    shard,
                    row: row.clone(),
                    delta,
                });
            }
        }
    }
    let places = unique_body_places(before, after);
    let read: BTreeSet<&Vec<u8>> = read.iter().collect();
    for body in read {
        if let Some(Some((shard, row))) = places.get(body.as_slice()) {
            if home(row.1) != *shard && allowed != Some(*shard) {
                found.push(Misplacement {
                    wrong: Wrong::Read,
                    shard: *shard,
                    row: (*row).clone(),
                    delta: 0,
                });
            }
        }
    }
    found
}

/// Where each body is stored: `Some((shard, row))` when exactly one row anywhere has it.
fn unique_body_places<'s>(
    before: &'s Snapshot,
    after: &'s Snapshot,
) -> HashMap<&'s [u8], Option<(usize, &'s Stored)>> {
    let mut places: HashMap<&[u8], Option<(usize, &Stored)>> = HashMap::new();
    for snapshot in [before, after] {
        for (shard, rows) in snapshot.0.iter().enumerate() {
            for row in rows.keys() {
                let Some(body) = row.2.as_deref() else {
                    continue;
                };
                places
                    .entry(body)
                    .and_modify(|place| {
                        if *place != Some((shard, row)) {
                            *place = None;
                        }
                    })
                    .or_insert(Some((shard, row)));
            }
        }
    }
    places
}

// ---------------------------------------------------------------------------------------
// Sending a case
// ---------------------------------------------------------------------------------------

/// What a server answered to one statement.
#[derive(Debug, Clone)]
pub enum Answer {
    /// Success (every result of a batch).
    Ok,
    /// An ERR from the router itself (its messages start with "dbrouter").
    Refused(u16, String),
    /// An ERR from MariaDB, relayed.
    Rejected(u16, String),
    /// No answer: the connection broke or timed out.
    Broken(String),
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Answer::Ok => write!(f, "OK"),
            Answer::Refused(code, message) => {
                write!(f, "refused by the router: ERR {code} {message}")
            }
            Answer::Rejected(code, message) => write!(f, "MariaDB error {code}: {message}"),
            Answer::Broken(why) => write!(f, "no answer: {why}"),
        }
    }
}

impl Answer {
    fn of(err: mysql_async::Error) -> Self {
        match err {
            mysql_async::Error::Server(e) => Self::from_err(e.code, e.message),
            other => Answer::Broken(other.to_string()),
        }
    }

    fn from_err(code: u16, message: String) -> Self {
        if message.starts_with("dbrouter") {
            Answer::Refused(code, message)
        } else {
            Answer::Rejected(code, message)
        }
    }

    /// From the first packet of a raw response.
    fn of_packet(packet: &[u8]) -> Self {
        if packet.first() != Some(&0xff) {
            return Answer::Ok;
        }
        let code = u16::from_le_bytes([packet[1], packet[2]]);
        let message = if packet.get(3) == Some(&b'#') {
            &packet[9..]
        } else {
            &packet[3..]
        };
        Self::from_err(code, String::from_utf8_lossy(message).into_owned())
    }
}

/// What came back from sending a case.
#[derive(Debug, Clone)]
pub struct Sent {
    /// The answers to the setup statements.
    pub setup: Vec<Answer>,
    /// The answer to the statement under test.
    pub answer: Answer,
    /// Every byte-string value of every row returned.
    pub read: Vec<Vec<u8>>,
}

/// Where cases are sent.
#[derive(Debug, Clone)]
enum Target {
    /// A router, as the `app` account.
    Router(String),
    /// A master directly, as the admin account.
    Direct(String),
}

impl Target {
    /// (address, user, password).
    fn login(&self) -> (&str, &str, &str) {
        match self {
            Target::Router(addr) => (addr, "app", APP_PASSWORD),
            Target::Direct(addr) => (addr, "dbrouter_admin", "admin-secret"),
        }
    }

    fn opts(&self, db: &str) -> OptsBuilder {
        let (addr, user, password) = self.login();
        let (host, port) = addr.rsplit_once(':').unwrap();
        OptsBuilder::default()
            .ip_or_hostname(host)
            .tcp_port(port.parse().unwrap())
            .user(Some(user))
            .pass(Some(password))
            .db_name(Some(db))
            .prefer_socket(false)
    }
}

/// Sends `case` on a fresh connection to `target`, then COMMIT (so that writes made inside
/// a transaction the case left open become visible), then disconnects.
async fn send(target: &Target, db: &str, ph: &Placeholders, case: &Case) -> Sent {
    let sending = async {
        match &case.action {
            Action::LongData(sql, params) => {
                send_long_data(target, db, ph, case, sql, params).await
            }
            _ => send_with_driver(target, db, ph, case).await,
        }
    };
    match tokio::time::timeout(CASE_TIMEOUT, sending).await {
        Ok(sent) => sent,
        Err(_) => Sent {
            setup: Vec::new(),
            answer: Answer::Broken("timed out".into()),
            read: Vec::new(),
        },
    }
}

async fn send_with_driver(target: &Target, db: &str, ph: &Placeholders, case: &Case) -> Sent {
    let mut conn = match Conn::new(Opts::from(target.opts(db))).await {
        Ok(conn) => conn,
        Err(e) => {
            return Sent {
                setup: Vec::new(),
                answer: Answer::of(e),
                read: Vec::new(),
            }
        }
    };
    let mut setup = Vec::new();
    for s in &case.setup {
        let r = conn.query_drop(ph.render(s.as_bytes())).await;
        setup.push(r.map_or_else(Answer::of, |()| Answer::Ok));
    }
    let mut read = Vec::new();
    let result = match &case.action {
        Action::Query(sql) => query_all(&mut conn, ph.render(sql), &mut read).await,
        Action::Prepared(sql, params) => {
            let values: Vec<Value> = params.iter().map(|p| p.value(ph)).collect();
            exec_all(&mut conn, ph.render(sql.as_bytes()), values, &mut read).await
        }
        Action::LoadData(sql, file) => {
            let file = bytes::Bytes::from(ph.render(file));
            conn.set_infile_handler(
                async move { Ok(futures_util::stream::iter([Ok(file)]).boxed()) },
            );
            query_all(&mut conn, ph.render(sql), &mut read).await
        }
        Action::LongData(..) => unreachable!("sent by send_long_data"),
    };
    let answer = result.map_or_else(Answer::of, |()| Answer::Ok);
    if !matches!(answer, Answer::Broken(_)) {
        let _ = conn.query_drop("COMMIT").await;
        let _ = conn.disconnect().await;
    }
    Sent {
        setup,
        answer,
        read,
    }
}

/// Runs a text statement or batch, collecting every value of every result set.
async fn query_all(
    conn: &mut Conn,
    sql: Vec<u8>,
    read: &mut Vec<Vec<u8>>,
) -> Result<(), mysql_async::Error> {
    let mut result = conn.query_iter(sql).await?;
    for _ in 0..1000 {
        if result.is_empty() {
            break;
        }
        let rows: Vec<Row> = result.collect().await?;
        collect_bytes(rows, read);
    }
    Ok(())
}

/// Prepares and executes a statement, collecting every value it returns.
async fn exec_all(
    conn: &mut Conn,
    sql: Vec<u8>,
    params: Vec<Value>,
    read: &mut Vec<Vec<u8>>,
) -> Result<(), mysql_async::Error> {
    let mut result = conn.exec_iter(sql, Params::Positional(params)).await?;
    for _ in 0..1000 {
        if result.is_empty() {
            break;
        }
        let rows: Vec<Row> = result.collect().await?;
        collect_bytes(rows, read);
    }
    Ok(())
}

fn collect_bytes(rows: Vec<Row>, read: &mut Vec<Vec<u8>>) {
    for row in rows {
        for value in row.unwrap() {
            if let Value::Bytes(bytes) = value {
                read.push(bytes);
            }
        }
    }
}

/// COM_STMT_PREPARE, every parameter as COM_STMT_SEND_LONG_DATA, COM_STMT_EXECUTE (raw).
async fn send_long_data(
    target: &Target,
    db: &str,
    ph: &Placeholders,
    case: &Case,
    sql: &str,
    params: &[String],
) -> Sent {
    let (addr, user, password) = target.login();
    let mut raw = RawClient::connect(addr, user, password, Some(db)).await;
    let mut setup = Vec::new();
    for s in &case.setup {
        let resp = raw
            .command(&com(0x03, &ph.render(s.as_bytes())), ResponseKind::Query)
            .await;
        setup.push(Answer::of_packet(&resp[0]));
    }
    let prepared = raw
        .command(
            &com(0x16, &ph.render(sql.as_bytes())),
            ResponseKind::Prepare,
        )
        .await;
    let mut answer = Answer::of_packet(&prepared[0]);
    if matches!(answer, Answer::Ok) {
        let id = crate::raw::stmt_id(&prepared[0]);
        for (i, param) in params.iter().enumerate() {
            let mut p = vec![0x18];
            p.extend_from_slice(&id.to_le_bytes());
            p.extend_from_slice(&(i as u16).to_le_bytes());
            p.extend_from_slice(&ph.render(param.as_bytes()));
            raw.send(&p).await;
        }
        let resp = raw
            .command(&execute_long_data(id, params.len()), ResponseKind::Execute)
            .await;
        answer = Answer::of_packet(&resp[0]);
    }
    raw.command(b"\x03COMMIT", ResponseKind::Query).await;
    raw.send(b"\x01").await;
    Sent {
        setup,
        answer,
        read: Vec::new(),
    }
}

/// A command payload: the command byte, then `body`.
fn com(command: u8, body: &[u8]) -> Vec<u8> {
    let mut p = vec![command];
    p.extend_from_slice(body);
    p
}

/// COM_STMT_EXECUTE of `n` string parameters that were all sent as long data.
fn execute_long_data(id: u32, n: usize) -> Vec<u8> {
    let mut p = vec![0x17];
    p.extend_from_slice(&id.to_le_bytes());
    p.push(0); // no cursor
    p.extend_from_slice(&1u32.to_le_bytes());
    p.resize(p.len() + n.div_ceil(8), 0); // no NULLs
    p.push(1); // types follow
    for _ in 0..n {
        p.extend_from_slice(&[0xfe, 0x00]); // MYSQL_TYPE_STRING
    }
    p
}

// ---------------------------------------------------------------------------------------
// The oracle
// ---------------------------------------------------------------------------------------

/// What one case did.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The answers to the setup statements.
    pub setup: Vec<Answer>,
    /// The answer to the statement under test.
    pub answer: Answer,
    /// What landed where it must not.
    pub misplacements: Vec<Misplacement>,
}

/// Runs cases through a router against a database of its own on both masters, keeping
/// the canaries in place, and judges each case by what the masters hold afterwards.
pub struct Oracle {
    target: Target,
    routing: RoutingTable,
    db: String,
    ph: Placeholders,
    users: [Vec<u64>; 2],
    masters: Vec<Conn>,
    before: Snapshot,
    canaries: u64,
}

impl Oracle {
    /// Creates database `db` (emptied) with the test tables on both masters, plants the
    /// canaries, and sends cases through `router`.
    pub async fn new(router: &TestRouter, db: &str) -> Self {
        let routing = router.routing();
        let users = pick_users(&routing);
        let mut values = vec![
            ("db".to_string(), db.to_string()),
            ("HUGE".to_string(), pick_huge(&routing)),
        ];
        for (shard, names) in USER_NAMES.iter().enumerate() {
            for (name, id) in names.iter().zip(&users[shard]) {
                values.push((name.to_string(), id.to_string()));
            }
        }
        let mut masters = Vec::new();
        for addr in [master_addr(), env("DBR_S2_MASTER")] {
            create_tables(&addr, db, true).await;
            let mut conn = crate::sharding::direct_to(&addr, Some(db)).await;
            conn.query_drop("SET SESSION innodb_lock_wait_timeout = 5")
                .await
                .unwrap();
            masters.push(conn);
        }
        let mut oracle = Oracle {
            target: Target::Router(router.addr.clone()),
            routing,
            db: db.into(),
            ph: Placeholders { values },
            users,
            masters,
            before: Snapshot::default(),
            canaries: 0,
        };
        oracle.ensure_canaries().await;
        oracle
    }

    /// The home shard (0 = shard1) of a user id.
    pub fn home(&self, userid: u64) -> usize {
        shard_of_text(&self.routing, userid.to_string().as_bytes())
    }

    /// The placeholder name of a test user, if it is one.
    fn name_of(&self, userid: u64) -> Option<&str> {
        let id = userid.to_string();
        self.ph
            .values
            .iter()
            .find(|(name, value)| *value == id && name != "db" && name != "HUGE")
            .map(|(name, _)| name.as_str())
    }

    /// Sends `case` and judges it.
    pub async fn run(&mut self, case: &Case) -> Outcome {
        self.ensure_canaries().await;
        let sent = send(&self.target, &self.db, &self.ph, case).await;
        let after = self.snapshot().await;
        let allowed = case.pinned_to.as_ref().map(|name| {
            let id = String::from_utf8(self.ph.render(format!("{{{name}}}").as_bytes())).unwrap();
            self.home(id.parse().unwrap())
        });
        let home = |u: u64| self.home(u);
        let misplacements = judge(&self.before, &after, &sent.read, allowed, &home);
        self.before = after;
        Outcome {
            setup: sent.setup,
            answer: sent.answer,
            misplacements,
        }
    }

    /// What MariaDB itself answers to `case`, sent directly to shard1's master in a
    /// scratch copy of the tables (`<db>_d`): a regression case that MariaDB rejects
    /// would pass vacuously.
    pub async fn direct_answer(&self, case: &Case) -> Sent {
        let scratch = format!("{}_d", self.db);
        create_tables(&master_addr(), &scratch, false).await;
        let mut ph = self.ph.clone();
        ph.values[0].1 = scratch.clone();
        send(&Target::Direct(master_addr()), &scratch, &ph, case).await
    }

    /// Both masters' rows, read concurrently.
    async fn snapshot(&mut self) -> Snapshot {
        let (first, second) = self.masters.split_at_mut(1);
        let (a, b) = tokio::join!(read_rows(&mut first[0]), read_rows(&mut second[0]));
        Snapshot([a, b])
    }

    /// Plants a canary for every (shard, table, user) that has no row, or empties the
    /// tables of a master that grew too big and plants them all again.
    async fn ensure_canaries(&mut self) {
        let all_users: Vec<u64> = self.users.iter().flatten().copied().collect();
        let mut planted = false;
        for shard in 0..2 {
            let total: i64 = self.before.0[shard].values().sum();
            let reset = total > MAX_ROWS;
            let mut sql = String::from("BEGIN;");
            if reset {
                sql.push_str(" DELETE FROM posts; DELETE FROM messages;");
            }
            let mut rows = 0;
            for table in TABLES {
                for &u in &all_users {
                    if reset || !self.before.has_user(shard, table, u) {
                        self.canaries += 1;
                        let _ = write!(
                            sql,
                            " INSERT INTO {table} (userid, body) VALUES ({u}, 'c{}-{}');",
                            shard + 1,
                            self.canaries
                        );
                        rows += 1;
                    }
                }
            }
            if rows > 0 {
                sql.push_str(" COMMIT");
                self.masters[shard].query_drop(sql).await.unwrap();
                planted = true;
            }
        }
        if planted || self.before.0.iter().all(BTreeMap::is_empty) {
            self.before = self.snapshot().await;
        }
    }

    /// A readable account of a misplaced case, with a regression test to paste.
    pub fn report(&self, origin: &str, test_name: &str, case: &Case, outcome: &Outcome) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "---- MISPLACEMENT ({origin}) ----");
        for (s, answer) in case.setup.iter().zip(&outcome.setup) {
            let _ = writeln!(out, "setup:     {s:?} -> {answer}");
        }
        let _ = writeln!(out, "statement: {}", self.statement_text(case));
        if let Some(user) = &case.pinned_to {
            let _ = writeln!(out, "pinned to: {{{user}}}");
        }
        let _ = writeln!(out, "answer:    {}", outcome.answer);
        for m in &outcome.misplacements {
            let _ = writeln!(out, "  {}", self.describe(m));
        }
        let _ = writeln!(out, "regression test:\n");
        let _ = writeln!(
            out,
            "#[tokio::test]\nasync fn {test_name}() {{\n    assert_case(\n        {:?},\n        {},\n    )\n    .await;\n}}\n",
            format!("oracle_{}", &test_name[..test_name.len().min(40)]),
            case.to_rust()
        );
        out
    }

    fn statement_text(&self, case: &Case) -> String {
        match &case.action {
            Action::Query(sql) => rust_bytes(sql),
            Action::Prepared(sql, params) => format!("{sql:?} with {params:?}"),
            Action::LongData(sql, params) => format!("{sql:?} with long data {params:?}"),
            Action::LoadData(sql, file) => {
                format!("{} uploading {}", rust_bytes(sql), rust_bytes(file))
            }
        }
    }

    fn describe(&self, m: &Misplacement) -> String {
        let (table, userid, body) = &m.row;
        let what = match m.wrong {
            Wrong::Stored => format!("STORED x{}", m.delta),
            Wrong::Touched => format!("CHANGED/DELETED x{}", -m.delta),
            Wrong::Read => "READ".to_string(),
        };
        let name = self
            .name_of(*userid)
            .map_or(String::new(), |n| format!(" {{{n}}}"));
        let body = body.as_deref().map_or("NULL".to_string(), rust_bytes);
        format!(
            "{what} on shard{} (home of userid {userid}{name} is shard{}): {table} body {body}",
            m.shard + 1,
            self.home(*userid) + 1
        )
    }
}

/// Creates `db` with the test tables on the master at `addr` (dropping it first if `fresh`).
async fn create_tables(addr: &str, db: &str, fresh: bool) {
    let mut c = crate::sharding::direct_to(addr, None).await;
    if fresh {
        c.query_drop(format!("DROP DATABASE IF EXISTS `{db}`"))
            .await
            .unwrap();
    }
    c.query_drop(format!(
        "CREATE DATABASE IF NOT EXISTS `{db}` CHARACTER SET utf8mb4"
    ))
    .await
    .unwrap();
    crate::harness::grant_app(&mut c, db).await;
    for table in TABLES {
        c.query_drop(format!(
            "CREATE TABLE IF NOT EXISTS `{db}`.`{table}` (id BIGINT AUTO_INCREMENT PRIMARY KEY, \
             userid BIGINT UNSIGNED NOT NULL, body VARBINARY(200), KEY (userid))"
        ))
        .await
        .unwrap();
    }
    c.disconnect().await.unwrap();
}

/// Every row of the test tables on one master.
async fn read_rows(conn: &mut Conn) -> BTreeMap<Stored, i64> {
    let rows: Vec<Stored> = conn
        .query(
            "SELECT 'posts', userid, body FROM posts UNION ALL SELECT 'messages', userid, body FROM messages",
        )
        .await
        .unwrap();
    let mut counted = BTreeMap::new();
    for row in rows {
        *counted.entry(row).or_insert(0) += 1;
    }
    counted
}

/// Runs `case` through a router of its own in database `db` and panics with a full
/// report on any misplacement. MariaDB itself must accept the case (sent directly to a
/// master first), so that the test cannot pass vacuously.
pub async fn assert_case(db: &str, case: Case) {
    let router = TestRouter::start(two_shards(SHARDING));
    let mut oracle = Oracle::new(&router, db).await;
    let direct = oracle.direct_answer(&case).await;
    let accepted = direct.setup.iter().chain([&direct.answer]);
    for answer in accepted {
        assert!(
            matches!(answer, Answer::Ok),
            "MariaDB itself rejects this case ({answer}), so it tests nothing: {}",
            case.to_rust()
        );
    }
    let outcome = oracle.run(&case).await;
    println!("{db}: the router's answer: {}", outcome.answer);
    assert!(
        outcome.misplacements.is_empty(),
        "{}",
        oracle.report(&format!("database {db}"), "regression", &case, &outcome)
    );
}

/// [`assert_case`] for a text statement after `setup`.
pub async fn assert_no_misplacement(db: &str, setup: &[&str], statement: &[u8]) {
    assert_case(db, Case::query(setup, statement)).await;
}

// ---------------------------------------------------------------------------------------
// Running the generator
// ---------------------------------------------------------------------------------------

/// Answers counted per outcome.
#[derive(Debug, Default, Clone)]
struct Stats {
    sent: u64,
    ok: u64,
    refused: u64,
    rejected: u64,
    broken: u64,
    misplaced: u64,
    /// Per category: [sent, ok, refused, rejected, misplaced].
    per_category: BTreeMap<&'static str, [u64; 5]>,
}

impl Stats {
    fn count(&mut self, category: &'static str, outcome: &Outcome) {
        let slot = match outcome.answer {
            Answer::Ok => 1,
            Answer::Refused(..) => 2,
            _ => 3,
        };
        self.sent += 1;
        match outcome.answer {
            Answer::Ok => self.ok += 1,
            Answer::Refused(..) => self.refused += 1,
            Answer::Rejected(..) => self.rejected += 1,
            Answer::Broken(_) => self.broken += 1,
        }
        let misplaced = u64::from(!outcome.misplacements.is_empty());
        self.misplaced += misplaced;
        let c = self.per_category.entry(category).or_default();
        c[0] += 1;
        c[slot] += 1;
        c[4] += misplaced;
    }

    fn add(&mut self, other: &Stats) {
        self.sent += other.sent;
        self.ok += other.ok;
        self.refused += other.refused;
        self.rejected += other.rejected;
        self.broken += other.broken;
        self.misplaced += other.misplaced;
        for (category, counts) in &other.per_category {
            let mine = self.per_category.entry(category).or_default();
            for (m, o) in mine.iter_mut().zip(counts) {
                *m += o;
            }
        }
    }

    fn print(&self, elapsed: Duration) {
        println!(
            "oracle: {} sent in {:.1}s: {} routed ok, {} refused by the router, {} MariaDB errors, {} broken; {} MISPLACED",
            self.sent,
            elapsed.as_secs_f64(),
            self.ok,
            self.refused,
            self.rejected,
            self.broken,
            self.misplaced
        );
        for (category, [sent, ok, refused, rejected, misplaced]) in &self.per_category {
            println!(
                "  {category:<10} {sent:>6} sent {ok:>6} ok {refused:>6} refused {rejected:>6} errors {misplaced:>5} misplaced"
            );
        }
    }
}

/// How long the generator runs.
#[derive(Debug, Clone, Copy)]
enum Budget {
    /// This many cases per worker.
    Cases(u64),
    /// Until then.
    Until(Instant),
}

/// Concurrent workers, each with its own database and generator stream.
const WORKERS: u64 = 3;

/// Runs the generator from `seed` on `WORKERS` concurrent workers through one router;
/// prints every misplacement as a regression test (the first `full_reports` of each
/// worker in full, then one line each). Returns the summed counts.
async fn run_generator(db_prefix: &str, seed: u64, budget: Budget, full_reports: usize) -> Stats {
    let router = TestRouter::start(two_shards(SHARDING));
    let started = Instant::now();
    let workers = (0..WORKERS).map(|w| worker(&router, db_prefix, seed, w, budget, full_reports));
    let results = futures_util::future::join_all(workers).await;
    let mut total = Stats::default();
    for stats in &results {
        total.add(stats);
    }
    total.print(started.elapsed());
    assert!(
        !router.log_text().contains("panicked"),
        "the router panicked:\n{}",
        router.log_text()
    );
    total
}

/// The generator seed of one worker.
fn worker_seed(seed: u64, worker: u64) -> u64 {
    seed ^ (worker + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

async fn worker(
    router: &TestRouter,
    db_prefix: &str,
    seed: u64,
    w: u64,
    budget: Budget,
    full_reports: usize,
) -> Stats {
    let mut oracle = Oracle::new(router, &format!("{db_prefix}_w{w}")).await;
    let mut generator = Gen::new(worker_seed(seed, w));
    let mut stats = Stats::default();
    let mut reported = 0;
    loop {
        let more = match budget {
            Budget::Cases(n) => generator.n < n,
            Budget::Until(deadline) => Instant::now() < deadline,
        };
        if !more {
            return stats;
        }
        let (category, case) = generator.next_case();
        let outcome = oracle.run(&case).await;
        stats.count(category, &outcome);
        if outcome.misplacements.is_empty() {
            continue;
        }
        let origin = format!(
            "seed {seed:#x}, worker {w}, case {} ({category}); rerun: scripts/fuzz-routing --seconds 60 --seed {seed:#x}",
            generator.n
        );
        let name = format!("found_{seed:x}_w{w}_{}", generator.n);
        if reported < full_reports {
            println!("{}", oracle.report(&origin, &name, &case, &outcome));
        } else {
            println!(
                "MISPLACEMENT ({origin}): {} -> {}: {}",
                case.to_rust(),
                outcome.answer,
                oracle.describe(&outcome.misplacements[0])
            );
        }
        reported += 1;
    }
}

/// Seed of the fixed-seed run (changing it changes every case).
const FIXED_SEED: u64 = 0x0db0_0ac1e;

/// Cases per worker in the fixed-seed run.
const FIXED_CASES: u64 = 1500;

#[tokio::test]
async fn oracle_no_statement_lands_on_the_wrong_shard() {
    println!("oracle: fixed seed {FIXED_SEED:#x}, {WORKERS} workers x {FIXED_CASES} cases");
    let stats = run_generator("oracle_gen", FIXED_SEED, Budget::Cases(FIXED_CASES), 10).await;
    assert!(
        stats.ok > 0 && stats.refused > 0,
        "the generator exercised nothing: {stats:?}"
    );
    assert_eq!(
        stats.misplaced, 0,
        "{} of {} cases misplaced rows (seed {FIXED_SEED:#x}); each is printed above as a regression test",
        stats.misplaced, stats.sent
    );
}

/// Parses a seed given in decimal or as `0x…` hex.
fn parse_seed(text: &str) -> u64 {
    let text = text.trim();
    text.strip_prefix("0x")
        .map_or_else(|| text.parse(), |hex| u64::from_str_radix(hex, 16))
        .unwrap_or_else(|e| panic!("DBR_FUZZ_SEED={text:?}: {e}"))
}

#[tokio::test]
#[ignore = "time-boxed fuzzing: run through scripts/fuzz-routing --seconds N [--seed S]"]
async fn oracle_fuzz_routing() {
    let seconds: u64 = std::env::var("DBR_FUZZ_SECONDS").map_or(60, |s| {
        s.trim()
            .parse()
            .expect("DBR_FUZZ_SECONDS: a number of seconds")
    });
    let seed = std::env::var("DBR_FUZZ_SEED").map_or_else(
        |_| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                ^ u64::from(std::process::id())
        },
        |s| parse_seed(&s),
    );
    println!("oracle fuzz: seed {seed:#x} for {seconds}s (rerun: DBR_FUZZ_SEED={seed:#x})");
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let stats = run_generator("oracle_fuzz", seed, Budget::Until(deadline), usize::MAX).await;
    println!("oracle fuzz: seed {seed:#x} done");
    assert_eq!(
        stats.misplaced, 0,
        "{} of {} cases misplaced rows (seed {seed:#x}); each is printed above as a regression test",
        stats.misplaced, stats.sent
    );
}

// ---------------------------------------------------------------------------------------
// The oracle's own checks
// ---------------------------------------------------------------------------------------

/// Misplacements done directly on a master (no router) are all seen: a row stored on the
/// wrong shard, a keyless DELETE, a keyless SELECT; and correct statements pass.
#[tokio::test]
async fn the_oracle_sees_planted_misplacements() {
    let router = TestRouter::start(two_shards(SHARDING));
    let mut oracle = Oracle::new(&router, "oracle_self").await;
    // Through the router, correctly keyed statements misplace nothing.
    for sql in [
        &b"INSERT INTO posts (userid, body) VALUES ({A}, 'ok1')"[..],
        b"INSERT INTO messages (userid, body) VALUES ({B}, 'ok2')",
        b"UPDATE posts SET body = 'ok3' WHERE userid = {B}",
        b"DELETE FROM messages WHERE userid = {A2}",
        b"SELECT userid, body FROM posts WHERE userid = {B3}",
    ] {
        let outcome = oracle.run(&Case::query(&[], sql)).await;
        assert!(matches!(outcome.answer, Answer::Ok), "{outcome:?}");
        assert!(outcome.misplacements.is_empty(), "{outcome:?}");
    }
    // Directly on shard1 (where only A users live): every kind of misplacement.
    oracle.target = Target::Direct(master_addr());
    let planted = [
        (
            &b"INSERT INTO posts (userid, body) VALUES ({B}, 'bad')"[..],
            Wrong::Stored,
        ),
        (b"DELETE FROM messages", Wrong::Touched),
        (
            b"UPDATE posts SET body = 'x' WHERE userid = {B2}",
            Wrong::Touched,
        ),
        (b"SELECT userid, body FROM posts", Wrong::Read),
        (
            b"UPDATE posts SET userid = {B} WHERE userid = {A}",
            Wrong::Stored,
        ),
    ];
    for (sql, wrong) in planted {
        let outcome = oracle.run(&Case::query(&[], sql)).await;
        assert!(
            outcome.misplacements.iter().any(|m| m.wrong == wrong),
            "{} not seen as {wrong:?}: {outcome:?}",
            rust_bytes(sql)
        );
    }
    // A pinned keyless statement may touch anything on its user's shard, nothing else.
    let pinned = Case::query(&[], b"DELETE FROM posts").pinned_to("A");
    assert!(oracle.run(&pinned).await.misplacements.is_empty());
    let pinned = Case::query(&[], b"DELETE FROM posts").pinned_to("B");
    assert!(!oracle.run(&pinned).await.misplacements.is_empty());
    // The report is a regression test.
    let case = Case::query(
        &["SET NAMES sjis"],
        b"INSERT INTO posts (userid, body) VALUES ({B}, 'M\x95\\')",
    );
    let outcome = oracle.run(&case).await;
    let report = oracle.report("self-test", "found_x", &case, &outcome);
    assert!(
        report.contains(r#"Case::query(&["SET NAMES sjis"], b"INSERT INTO posts (userid, body) VALUES ({B}, 'M\x95\\')")"#),
        "{report}"
    );
}

/// The generator is deterministic: equal seeds, equal cases.
#[test]
fn the_generator_depends_only_on_its_seed() {
    let cases = |seed| {
        let mut generator = Gen::new(seed);
        (0..500)
            .map(|_| format!("{:?}", generator.next_case()))
            .collect::<Vec<_>>()
    };
    assert_eq!(cases(7), cases(7));
    assert_ne!(cases(7), cases(8));
    let mut generator = Gen::new(1);
    let categories: BTreeSet<&str> = (0..500).map(|_| generator.next_case().0).collect();
    assert_eq!(categories.len(), CATEGORIES.len());
}
