//! The rows of users on shard masters, read and written with the service account: which
//! tables are sharded on a server (information_schema and the `[sharding]` rules), which
//! users have rows there, and — for a move — copying, comparing and deleting one user's
//! rows. Every statement names its server in its error and runs within a time limit.

use std::collections::BTreeSet;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, Row, Value};

use crate::config::{Config, KeyColumnType, UnlistedTables};
use crate::router::{key_from_int, key_from_text};
use crate::topology::TopologyDoc;

/// Keys read per `SELECT DISTINCT` round trip.
pub const CHUNK: usize = 10_000;

/// How long one query to a shard master may take.
const QUERY_TIMEOUT: Duration = Duration::from_secs(60);

/// A sharded table on a master: schema, table, key column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardedTable {
    /// Schema (database).
    pub schema: String,
    /// Table name.
    pub table: String,
    /// Its shard-key column.
    pub key: String,
}

impl ShardedTable {
    /// `schema`.`table`, quoted.
    pub fn qualified(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.table))
    }
}

/// A backticked identifier (a backtick inside is doubled).
pub fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// A connection to a shard master with the service account.
pub async fn connect(config: &Config, addr: &str) -> Result<Conn, String> {
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
            .prefer_socket(false)
            .ssl_opts(config.backend.tls.as_ref().map(crate::failover::ssl_opts)),
    );
    timed(addr, "connect", Conn::new(opts)).await
}

/// Runs one query within [`QUERY_TIMEOUT`], naming the server and what it did on failure.
pub async fn timed<T>(
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
pub async fn sharded_tables(
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
pub fn canonical(value: &Value, ty: KeyColumnType) -> Option<Vec<u8>> {
    match value {
        Value::Int(n) => key_from_int(i128::from(*n), ty).ok(),
        Value::UInt(n) => key_from_int(i128::from(*n), ty).ok(),
        Value::Bytes(b) => key_from_text(b, ty).ok(),
        _ => None,
    }
}

/// Every user with rows on one master (canonical keys), and the keys found that no
/// router could route (NULL, out of the key type's range): counted, never pinned.
pub async fn users_on(config: &Config, addr: &str) -> Result<(BTreeSet<Vec<u8>>, usize), String> {
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

/// The columns of a table in order, from information_schema.
pub async fn columns(conn: &mut Conn, addr: &str, t: &ShardedTable) -> Result<Vec<String>, String> {
    timed(
        addr,
        &format!("listing the columns of {}", t.qualified()),
        conn.exec(
            "SELECT column_name FROM information_schema.columns \
             WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
            (t.schema.as_str(), t.table.as_str()),
        ),
    )
    .await
}

/// `SHOW CREATE TABLE` without the parts that differ between copies of one definition
/// (the next AUTO_INCREMENT value).
pub async fn definition(conn: &mut Conn, addr: &str, t: &ShardedTable) -> Result<String, String> {
    let row: Option<(String, String)> = timed(
        addr,
        &format!("SHOW CREATE TABLE {}", t.qualified()),
        conn.query_first(format!("SHOW CREATE TABLE {}", t.qualified())),
    )
    .await?;
    let text = row.map(|r| r.1).unwrap_or_default();
    Ok(text
        .split(' ')
        .filter(|word| !word.starts_with("AUTO_INCREMENT="))
        .collect::<Vec<_>>()
        .join(" "))
}

/// The SQL expression of one row's checksum: CRC32 over every column with a NULL marker
/// (so that `(NULL, 'a')` and `('a', NULL)` differ).
fn row_crc(columns: &[String]) -> String {
    let parts: Vec<String> = columns
        .iter()
        .map(|c| {
            let c = quote_ident(c);
            format!("ISNULL({c}), {c}")
        })
        .collect();
    format!("CRC32(CONCAT_WS('#', {}))", parts.join(", "))
}

/// One user's rows of a table, summarised: row count, sum and xor of the row checksums.
pub async fn checksum(
    conn: &mut Conn,
    addr: &str,
    t: &ShardedTable,
    columns: &[String],
    user: &[u8],
) -> Result<(u64, u64, u64), String> {
    let crc = row_crc(columns);
    let sql = format!(
        "SELECT COUNT(*), CAST(COALESCE(SUM({crc}), 0) AS UNSIGNED), COALESCE(BIT_XOR({crc}), 0) FROM {} WHERE {} = ?",
        t.qualified(),
        quote_ident(&t.key)
    );
    let row: Option<(u64, u64, u64)> = timed(
        addr,
        &format!("checksumming {}", t.qualified()),
        conn.exec_first(sql, (user.to_vec(),)),
    )
    .await?;
    Ok(row.unwrap_or((0, 0, 0)))
}

/// Rows per INSERT when copying.
const INSERT_BATCH: usize = 500;

/// What a copy moved: rows, and bytes of column values read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Copied {
    /// Rows.
    pub rows: u64,
    /// Bytes of the column values (strings and blobs by length, numbers and temporal
    /// values by their binary size).
    pub bytes: u64,
}

impl std::ops::AddAssign for Copied {
    fn add_assign(&mut self, other: Copied) {
        self.rows += other.rows;
        self.bytes += other.bytes;
    }
}

/// A value's size for [`Copied::bytes`].
fn value_bytes(v: &Value) -> u64 {
    match v {
        Value::NULL => 0,
        Value::Bytes(b) => b.len() as u64,
        Value::Int(_) | Value::UInt(_) | Value::Double(_) => 8,
        Value::Float(_) => 4,
        Value::Date(..) => 11,
        Value::Time(..) => 12,
    }
}

/// Copies one user's rows of a table from `source` (read in one consistent snapshot,
/// streamed: at most [`INSERT_BATCH`] rows are in the mover's memory at a time, whatever
/// the user's size) to `target` (foreign key checks off on that session: parents and
/// children arrive in any order). A row whose primary or unique key is taken on the
/// target fails the copy with a message naming the table and the key.
pub async fn copy_rows(
    (source, source_addr): (&mut Conn, &str),
    (target, target_addr): (&mut Conn, &str),
    t: &ShardedTable,
    columns: &[String],
    user: &[u8],
) -> Result<Copied, String> {
    let list: Vec<String> = columns.iter().map(|c| quote_ident(c)).collect();
    let list = list.join(", ");
    timed(
        target_addr,
        "SET foreign_key_checks = 0",
        target.query_drop("SET SESSION foreign_key_checks = 0"),
    )
    .await?;
    timed(
        source_addr,
        "START TRANSACTION WITH CONSISTENT SNAPSHOT",
        source.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY"),
    )
    .await?;
    let copied = stream_rows(
        (source, source_addr),
        (target, target_addr),
        t,
        columns,
        &list,
        user,
    )
    .await;
    let _ = source.query_drop("COMMIT").await;
    copied
}

/// The body of [`copy_rows`], inside the source's snapshot.
async fn stream_rows(
    (source, source_addr): (&mut Conn, &str),
    (target, target_addr): (&mut Conn, &str),
    t: &ShardedTable,
    columns: &[String],
    list: &str,
    user: &[u8],
) -> Result<Copied, String> {
    let select = format!(
        "SELECT {list} FROM {} WHERE {} = ?",
        t.qualified(),
        quote_ident(&t.key)
    );
    let reading = format!("reading {}", t.qualified());
    let mut result = timed(
        source_addr,
        &reading,
        source.exec_iter(select, (user.to_vec(),)),
    )
    .await?;
    let mut copied = Copied::default();
    let mut batch: Vec<Value> = Vec::with_capacity(INSERT_BATCH * columns.len());
    loop {
        let row: Option<Row> = timed(source_addr, &reading, result.next()).await?;
        let end = row.is_none();
        if let Some(mut row) = row {
            for i in 0..columns.len() {
                let v: Value = row.take(i).unwrap_or(Value::NULL);
                copied.bytes += value_bytes(&v);
                batch.push(v);
            }
            copied.rows += 1;
        }
        let rows_in_batch = batch.len() / columns.len().max(1);
        if rows_in_batch > 0 && (end || rows_in_batch == INSERT_BATCH) {
            insert_batch(
                (target, target_addr),
                t,
                list,
                columns.len(),
                std::mem::take(&mut batch),
            )
            .await?;
        }
        if end {
            return Ok(copied);
        }
    }
}

/// One multi-row INSERT of a copy.
async fn insert_batch(
    (target, target_addr): (&mut Conn, &str),
    t: &ShardedTable,
    list: &str,
    width: usize,
    params: Vec<Value>,
) -> Result<(), String> {
    let one = format!("({})", vec!["?"; width].join(", "));
    let values: Vec<&str> = vec![one.as_str(); params.len() / width.max(1)];
    let insert = format!(
        "INSERT INTO {} ({list}) VALUES {}",
        t.qualified(),
        values.join(", ")
    );
    match tokio::time::timeout(QUERY_TIMEOUT, target.exec_drop(insert, params)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(mysql_async::Error::Server(e))) if e.code == 1062 => Err(format!(
            "key collision on {target_addr}: {} — rows of another user have the same primary or unique key in {} there ({}). \
             Ids from AUTO_INCREMENT collide across shards unless each shard has its own auto_increment_offset (docs/moves.md)",
            t.qualified(),
            t.qualified(),
            e.message
        )),
        Ok(Err(e)) => Err(format!("{target_addr}: writing {}: {e}", t.qualified())),
        Err(_) => Err(format!(
            "{target_addr}: writing {}: no answer within {QUERY_TIMEOUT:?}",
            t.qualified()
        )),
    }
}

/// The primary-key columns of a table, in key order (none: the table has no primary key).
pub async fn primary_key(
    conn: &mut Conn,
    addr: &str,
    t: &ShardedTable,
) -> Result<Vec<String>, String> {
    timed(
        addr,
        &format!("listing the primary key of {}", t.qualified()),
        conn.exec(
            "SELECT column_name FROM information_schema.key_column_usage \
             WHERE table_schema = ? AND table_name = ? AND constraint_name = 'PRIMARY' \
             ORDER BY ordinal_position",
            (t.schema.as_str(), t.table.as_str()),
        ),
    )
    .await
}

/// One user's rows of a table by primary key: the key's values (as SQL literals, the
/// same text on both servers for identical definitions) → the key's values and the row's
/// checksum.
async fn row_digests(
    conn: &mut Conn,
    addr: &str,
    t: &ShardedTable,
    columns: &[String],
    pk: &[String],
    user: &[u8],
) -> Result<std::collections::HashMap<String, (Vec<Value>, u64)>, String> {
    let keys: Vec<String> = pk.iter().map(|c| quote_ident(c)).collect();
    let sql = format!(
        "SELECT {}, {} FROM {} WHERE {} = ?",
        keys.join(", "),
        row_crc(columns),
        t.qualified(),
        quote_ident(&t.key)
    );
    let rows: Vec<Row> = timed(
        addr,
        &format!("checksumming the rows of {}", t.qualified()),
        conn.exec(sql, (user.to_vec(),)),
    )
    .await?;
    let mut out = std::collections::HashMap::with_capacity(rows.len());
    for mut row in rows {
        let values: Vec<Value> = (0..pk.len())
            .map(|i| row.take(i).unwrap_or(Value::NULL))
            .collect();
        let crc: u64 = row.take(pk.len()).unwrap_or(0);
        let text: Vec<String> = values.iter().map(|v| v.as_sql(false)).collect();
        out.insert(text.join("\u{1f}"), (values, crc));
    }
    Ok(out)
}

/// Differences found and mended by [`mend_rows`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Mended {
    /// Rows copied from the source (new there, or changed).
    pub copied: u64,
    /// Rows deleted from the target (gone from the source, or changed).
    pub deleted: u64,
}

/// Rows beyond which a differing table is copied again whole instead of row by row.
const MEND_LIMIT: usize = 1000;

/// Makes the target's rows of a user equal to the source's by primary key: rows whose
/// checksum differs or that exist on one side only are deleted from the target and copied
/// from the source, one by one. `None` when the table has no primary key or more than
/// [`MEND_LIMIT`] rows differ (the caller copies the table again whole).
pub async fn mend_rows(
    (source, source_addr): (&mut Conn, &str),
    (target, target_addr): (&mut Conn, &str),
    t: &ShardedTable,
    columns: &[String],
    user: &[u8],
) -> Result<Option<Mended>, String> {
    let pk = primary_key(source, source_addr, t).await?;
    if pk.is_empty() {
        return Ok(None);
    }
    let (on_source, on_target) = tokio::try_join!(
        row_digests(source, source_addr, t, columns, &pk, user),
        row_digests(target, target_addr, t, columns, &pk, user)
    )?;
    let stale: Vec<&Vec<Value>> = on_target
        .iter()
        .filter(|(k, (_, crc))| on_source.get(*k).is_none_or(|(_, c)| c != crc))
        .map(|(_, (v, _))| v)
        .collect();
    let missing: Vec<&Vec<Value>> = on_source
        .iter()
        .filter(|(k, (_, crc))| on_target.get(*k).is_none_or(|(_, c)| c != crc))
        .map(|(_, (v, _))| v)
        .collect();
    if stale.len() + missing.len() > MEND_LIMIT {
        return Ok(None);
    }
    let by_key: Vec<String> = pk
        .iter()
        .map(|c| format!("{} = ?", quote_ident(c)))
        .collect();
    let by_key = format!("{} = ? AND {}", quote_ident(&t.key), by_key.join(" AND "));
    timed(
        target_addr,
        "SET foreign_key_checks = 0",
        target.query_drop("SET SESSION foreign_key_checks = 0"),
    )
    .await?;
    let delete = format!("DELETE FROM {} WHERE {by_key}", t.qualified());
    for key in &stale {
        let params: Vec<Value> = std::iter::once(Value::from(user.to_vec()))
            .chain(key.iter().cloned())
            .collect();
        timed(
            target_addr,
            &format!("deleting a changed row of {}", t.qualified()),
            target.exec_drop(delete.as_str(), params),
        )
        .await?;
    }
    let list: Vec<String> = columns.iter().map(|c| quote_ident(c)).collect();
    let list = list.join(", ");
    let select = format!("SELECT {list} FROM {} WHERE {by_key}", t.qualified());
    for key in &missing {
        let params: Vec<Value> = std::iter::once(Value::from(user.to_vec()))
            .chain(key.iter().cloned())
            .collect();
        let row: Option<Row> = timed(
            source_addr,
            &format!("reading a changed row of {}", t.qualified()),
            source.exec_first(select.as_str(), params),
        )
        .await?;
        if let Some(mut row) = row {
            let values: Vec<Value> = (0..columns.len())
                .map(|i| row.take(i).unwrap_or(Value::NULL))
                .collect();
            insert_batch((target, target_addr), t, &list, columns.len(), values).await?;
        }
    }
    Ok(Some(Mended {
        copied: missing.len() as u64,
        deleted: stale.len() as u64,
    }))
}

/// Deletes one user's rows of a table, in chunks (foreign key checks off on that session:
/// the user's rows go whatever their order). Returns how many.
pub async fn delete_rows(
    conn: &mut Conn,
    addr: &str,
    t: &ShardedTable,
    user: &[u8],
) -> Result<u64, String> {
    timed(
        addr,
        "SET foreign_key_checks = 0",
        conn.query_drop("SET SESSION foreign_key_checks = 0"),
    )
    .await?;
    let sql = format!(
        "DELETE FROM {} WHERE {} = ? LIMIT 5000",
        t.qualified(),
        quote_ident(&t.key)
    );
    let mut deleted = 0;
    loop {
        timed(
            addr,
            &format!("deleting from {}", t.qualified()),
            conn.exec_drop(sql.as_str(), (user.to_vec(),)),
        )
        .await?;
        let n = conn.affected_rows();
        deleted += n;
        if n == 0 {
            return Ok(deleted);
        }
    }
}
