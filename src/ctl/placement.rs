//! Placement commands that never separate a user from their rows. A user's rows live on
//! the shard the user is routed to; anything that would route a user elsewhere — a shard
//! given ring weight (`shard add --weight`, `shard set-weight`), a pin or an unpin — first
//! looks at where users actually have rows, on every shard's master:
//!
//! * a ring change pins every existing user whose ring shard would change to the shard
//!   that holds their rows (per-bucket compare-and-set writes of overrides), and only then
//!   publishes the new ring (a compare-and-set on the topology document read before the
//!   scan, so nothing changed meanwhile). The shards are scanned twice — the second pass,
//!   right before the publish, catches users whose first rows were written during the
//!   first — which leaves a window of one round trip for a user's very first row;
//! * `user pin` / `unpin` of a user with rows on another shard than the one they would go
//!   to is refused (pointing to `user move`), unless the operator says `--no-data-check`.
//!
//! Users are found with `SELECT DISTINCT <key>` over every sharded table (the tables of
//! `[sharding]` in every schema, plus, with `unlisted_tables = "sharded"`, every table with
//! the key column), in chunks of [`CHUNK`], with the service account.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, Row, Value};

use crate::config::{Config, KeyColumnType, UnlistedTables};
use crate::router::{key_from_int, key_from_text, RoutingTable};
use crate::topology::zk::{ZkStore, ZkTarget};
use crate::topology::{ShardDoc, ShardState, Snapshot, TopologyDoc};

/// Keys read per `SELECT DISTINCT` round trip.
pub const CHUNK: usize = 10_000;

/// How long one query to a shard master may take.
const QUERY_TIMEOUT: Duration = Duration::from_secs(60);

/// A sharded table on a master: schema, table, key column.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ShardedTable {
    schema: String,
    table: String,
    key: String,
}

impl ShardedTable {
    fn qualified(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.table))
    }
}

/// A backticked identifier (a backtick inside is doubled).
fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// A connection to a shard master with the service account.
async fn connect(config: &Config, addr: &str) -> Result<Conn, String> {
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| format!("{addr:?} is not host:port"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("{addr:?} has a bad port"))?;
    let opts = Opts::from(
        OptsBuilder::default()
            .ip_or_hostname(host)
            .tcp_port(port)
            .user(Some(config.backend.user.as_str()))
            .pass(Some(config.backend.password()))
            .prefer_socket(false),
    );
    timed(addr, "connect", Conn::new(opts)).await
}

async fn timed<T>(
    addr: &str,
    what: &str,
    f: impl std::future::Future<Output = Result<T, mysql_async::Error>>,
) -> Result<T, String> {
    match tokio::time::timeout(QUERY_TIMEOUT, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{addr}: {what}: {e}")),
        Err(_) => Err(format!(
            "{addr}: {what}: no answer within {QUERY_TIMEOUT:?}"
        )),
    }
}

/// The sharded tables on a master, from information_schema and the config's rules.
async fn sharded_tables(
    conn: &mut Conn,
    addr: &str,
    config: &Config,
) -> Result<Vec<ShardedTable>, String> {
    let rows: Vec<(String, String, String)> = timed(
        addr,
        "listing tables",
        conn.query(
            "SELECT c.table_schema, c.table_name, c.column_name \
             FROM information_schema.columns c JOIN information_schema.tables t \
               ON t.table_schema = c.table_schema AND t.table_name = c.table_name \
             WHERE t.table_type = 'BASE TABLE' \
               AND c.table_schema NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys')",
        ),
    )
    .await?;
    let sharding = &config.sharding;
    let mut tables: Vec<ShardedTable> = rows
        .into_iter()
        .filter(|(_, table, column)| {
            let is = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
            if sharding.global_tables.iter().any(|g| is(g, table)) {
                return false;
            }
            match sharding.tables.iter().find(|t| is(&t.name, table)) {
                Some(t) => is(t.key.as_deref().unwrap_or(&sharding.key_column), column),
                None => {
                    sharding.unlisted_tables == UnlistedTables::Sharded
                        && is(&sharding.key_column, column)
                }
            }
        })
        .map(|(schema, table, key)| ShardedTable { schema, table, key })
        .collect();
    tables.sort_by(|a, b| (&a.schema, &a.table).cmp(&(&b.schema, &b.table)));
    Ok(tables)
}

/// A key value read from a master, canonical as the router computes it.
fn canonical(value: &Value, ty: KeyColumnType) -> Option<Vec<u8>> {
    match value {
        Value::Int(n) => key_from_int(i128::from(*n), ty).ok(),
        Value::UInt(n) => key_from_int(i128::from(*n), ty).ok(),
        Value::Bytes(b) => key_from_text(b, ty).ok(),
        _ => None,
    }
}

/// Every user with rows on one master (canonical keys), and the keys found that no
/// router could route (NULL, out of the key type's range): counted, never pinned.
async fn users_on(config: &Config, addr: &str) -> Result<(BTreeSet<Vec<u8>>, usize), String> {
    let mut conn = connect(config, addr).await?;
    let tables = sharded_tables(&mut conn, addr, config).await?;
    let ty = config.sharding.key_type;
    let mut users = BTreeSet::new();
    let mut unroutable = 0;
    for t in &tables {
        let key = quote_ident(&t.key);
        let mut after: Option<Value> = None;
        loop {
            let sql = match after {
                None => format!(
                    "SELECT DISTINCT {key} FROM {} WHERE {key} IS NOT NULL ORDER BY {key} LIMIT {CHUNK}",
                    t.qualified()
                ),
                Some(_) => format!(
                    "SELECT DISTINCT {key} FROM {} WHERE {key} > ? ORDER BY {key} LIMIT {CHUNK}",
                    t.qualified()
                ),
            };
            let params = after.take().map_or(mysql_async::Params::Empty, |v| {
                mysql_async::Params::Positional(vec![v])
            });
            let rows: Vec<Row> = timed(
                addr,
                &format!("reading {}", t.qualified()),
                conn.exec(sql, params),
            )
            .await?;
            let n = rows.len();
            for row in rows {
                let Some(value) = row.as_ref(0).cloned() else {
                    continue;
                };
                match canonical(&value, ty) {
                    Some(k) => {
                        users.insert(k);
                    }
                    None => unroutable += 1,
                }
                after = Some(value);
            }
            if n < CHUNK {
                break;
            }
        }
    }
    let _ = conn.disconnect().await;
    Ok((users, unroutable))
}

/// The shards (names) whose masters hold rows of `user` (canonical key).
pub async fn shards_holding(
    config: &Config,
    topology: &TopologyDoc,
    user: &[u8],
) -> Result<Vec<String>, String> {
    let mut holding = Vec::new();
    for shard in &topology.shards {
        let mut conn = connect(config, &shard.master).await?;
        let tables = sharded_tables(&mut conn, &shard.master, config).await?;
        for t in &tables {
            let sql = format!(
                "SELECT 1 FROM {} WHERE {} = ? LIMIT 1",
                t.qualified(),
                quote_ident(&t.key)
            );
            let found: Option<u8> = timed(
                &shard.master,
                &format!("reading {}", t.qualified()),
                conn.exec_first(sql, (user.to_vec(),)),
            )
            .await?;
            if found.is_some() {
                holding.push(shard.name.clone());
                break;
            }
        }
        let _ = conn.disconnect().await;
    }
    Ok(holding)
}

/// What a ring change means for the users that exist.
#[derive(Debug, Default)]
struct Affected {
    /// Users whose ring shard changes, with the shard holding their rows.
    pins: BTreeMap<Vec<u8>, String>,
    /// Users with rows on a shard they are not routed to today (already separated).
    stray: Vec<(Vec<u8>, String)>,
    /// Users seen.
    users: usize,
    /// Key values no router can route (NULL or out of range).
    unroutable: usize,
}

/// Scans every shard's master and works out who must be pinned for `before` → `after`.
async fn affected_users(
    config: &Config,
    topology: &TopologyDoc,
    before: &RoutingTable,
    after: &RoutingTable,
) -> Result<Affected, String> {
    let mut out = Affected::default();
    for shard in &topology.shards {
        let (users, unroutable) = users_on(config, &shard.master).await?;
        out.users += users.len();
        out.unroutable += unroutable;
        for user in users {
            let now = before.shard_for_key(&user).0;
            let next = after.shard_for_key(&user).0;
            if Some(now) != before.shard_id(&shard.name) {
                out.stray.push((user, shard.name.clone()));
            } else if next != now {
                out.pins.insert(user, shard.name.clone());
            }
        }
    }
    Ok(out)
}

/// A ring change: a shard added, or a weight changed.
#[derive(Debug, Clone)]
pub enum RingChange {
    /// A new shard (appended, so existing shard ids stay).
    Add(ShardDoc),
    /// A new weight for a shard.
    Weight {
        /// The shard.
        name: String,
        /// Its new weight.
        weight: u32,
    },
}

/// `shard add` / `shard set-weight`: changes the ring without separating any user from
/// their rows (see the module comment). With `dry_run`, only says what it would do.
pub async fn change_ring(
    target: &ZkTarget,
    config: &Config,
    change: RingChange,
    dry_run: bool,
) -> Result<String, String> {
    let store = super::topology::store(target).await?;
    let (doc, expected) = store.read_topology().await.map_err(|e| e.to_string())?;
    let mut next = doc.clone();
    let what = match &change {
        RingChange::Add(shard) => {
            if doc.shards.iter().any(|s| s.name == shard.name) {
                return Err(format!("shard {} exists already", shard.name));
            }
            next.shards.push(shard.clone());
            format!(
                "added shard {} (master {}, weight {})",
                shard.name, shard.master, shard.weight
            )
        }
        RingChange::Weight { name, weight } => {
            let shard = next
                .shard_mut(name)
                .ok_or_else(|| format!("no shard is named {name}"))?;
            let old = std::mem::replace(&mut shard.weight, *weight);
            format!("shard {name}: weight {old} -> {weight}")
        }
    };
    next.validate().map_err(|e| e.to_string())?;
    if next.shards.iter().any(|s| s.state == ShardState::Switching) {
        return Err("a shard is switching masters; change the ring after the switchover".into());
    }
    let mut out = String::new();
    let ring_changes = ring_of(&doc) != ring_of(&next);
    if ring_changes {
        let snapshot = store.read_all().await.map_err(|e| e.to_string())?;
        let tables = |topology: &TopologyDoc| {
            Snapshot {
                topology: topology.clone(),
                ..snapshot.clone()
            }
            .routing_table(&config.sharding)
            .map_err(|e| e.to_string())
        };
        let (before, after) = (tables(&doc)?, tables(&next)?);
        let first = affected_users(config, &doc, &before, &after).await?;
        out.push_str(&format!(
            "scanned {} shard(s): {} user(s) with rows; {} would move on the new ring\n",
            doc.shards.len(),
            first.users,
            first.pins.len()
        ));
        report_strays(&mut out, &first);
        if dry_run {
            out.push_str("dry run: nothing written\n");
            return Ok(out);
        }
        let pinned = pin_all(&store, &first.pins).await?;
        // Users whose first rows arrived during the first pass.
        let second = affected_users(config, &doc, &before, &after).await?;
        let late: BTreeMap<Vec<u8>, String> = second
            .pins
            .into_iter()
            .filter(|(u, _)| !first.pins.contains_key(u))
            .collect();
        let pinned_late = pin_all(&store, &late).await?;
        out.push_str(&format!(
            "pinned {} user(s) to the shards holding their rows ({} found by the second pass); `dbrouter ctl user move` moves them later\n",
            pinned + pinned_late,
            pinned_late
        ));
    } else if dry_run {
        return Ok(format!(
            "{what}: the ring does not change; dry run: nothing written\n"
        ));
    }
    let version = store
        .write_topology(&next, expected)
        .await
        .map_err(|e| match e {
            crate::topology::TopologyError::Conflict => {
                "the topology changed under you (another command); nothing was published, retry. \
                 The pins written place users where their rows are and stay: harmless"
                    .to_string()
            }
            other => other.to_string(),
        })?;
    out.push_str(&format!("{what}; topology version {version}\n"));
    Ok(out)
}

/// The ring's inputs: serving shards and weights, in order.
fn ring_of(doc: &TopologyDoc) -> Vec<(String, u32)> {
    doc.shards
        .iter()
        .filter(|s| s.weight > 0)
        .map(|s| (s.name.clone(), s.weight))
        .collect()
}

fn report_strays(out: &mut String, affected: &Affected) {
    if affected.unroutable > 0 {
        out.push_str(&format!(
            "note: {} key value(s) are NULL or outside sharding.key_type: no router routes them\n",
            affected.unroutable
        ));
    }
    if affected.stray.is_empty() {
        return;
    }
    out.push_str(&format!(
        "warning: {} user(s) already have rows on a shard they are not routed to (left as they are):\n",
        affected.stray.len()
    ));
    for (user, shard) in affected.stray.iter().take(10) {
        out.push_str(&format!(
            "  user {} has rows on {shard}\n",
            String::from_utf8_lossy(user)
        ));
    }
}

/// Writes overrides bucket by bucket (one compare-and-set per bucket, retried on a
/// conflict); a user who got an override meanwhile keeps it. Returns how many were
/// written.
async fn pin_all(store: &ZkStore, pins: &BTreeMap<Vec<u8>, String>) -> Result<usize, String> {
    let mut by_bucket: BTreeMap<usize, Vec<(&[u8], &str)>> = BTreeMap::new();
    for (user, shard) in pins {
        by_bucket
            .entry(crate::topology::bucket_of(user))
            .or_default()
            .push((user, shard));
    }
    let mut written = 0;
    for (bucket, entries) in by_bucket {
        written += store
            .add_overrides(bucket, &entries)
            .await
            .map_err(|e| format!("writing overrides of bucket {bucket}: {e}"))?;
    }
    Ok(written)
}

/// Refuses a pin or unpin that would route `user` away from their rows.
pub async fn check_placement(
    config: &Config,
    topology: &TopologyDoc,
    user: &[u8],
    destination: &str,
) -> Result<(), String> {
    let holding = shards_holding(config, topology, user).await?;
    // Two shard names on one server (a shard being set up there) share its rows.
    let master = |name: &str| {
        topology
            .shards
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.master.as_str())
    };
    let elsewhere: Vec<&String> = holding
        .iter()
        .filter(|s| master(s) != master(destination))
        .collect();
    if elsewhere.is_empty() {
        return Ok(());
    }
    let user = String::from_utf8_lossy(user);
    Err(format!(
        "user {user} has rows on {}: routing them to {destination} would separate them from their data. \
         Use `dbrouter ctl user move {user} {destination}` to move the rows with the user, \
         or --no-data-check if those rows are not needed",
        elsewhere
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    ))
}
