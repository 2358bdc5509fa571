//! Fuzz target `scanner_differential`: the shard-key scanner's fast path against the full
//! scanner (`router::scan_in`, `router::fast`, `router::key`).
//!
//! `router::scan_in` runs the fast path (`router::fast`) for every dialect but
//! ANSI_QUOTES and returns its answer when it gives one, else clears its partial result
//! and runs the full scanner. The fast path's contract (its module docs, and the unit
//! test `fast_path_agrees_with_the_full_scanner`, which compares them on generated
//! statements under the default dialect): where it answers, the answer is exactly the
//! full scanner's. So, on arbitrary bytes, key columns and a dialect (sql_mode flags,
//! character set, server version) chosen from the input:
//! - `scan_in(sql, dialect, columns)` equals `key::scan_full_into(sql, dialect, columns)`
//!   field by field, as the unit test's comparison does (kind, keys, tables, truncation,
//!   hint, problem, placeholders, multi-statement, temporary) — a difference is either
//!   the fast path deciding what the full scanner would not, or a partial fast-path
//!   result leaking past `clear`;
//! - neither scanner panics or loops; the statement's shape (`key::shape`), its words
//!   (`router::words`) and routing the scan through a routing table (`route`,
//!   `route_pinned`) do not panic either, and what they return lies inside the text.
//!
//! Input: `dialect byte, version byte, columns byte, sql...`.

#![no_main]

use std::sync::OnceLock;

use dbrouter::config::{ShardedTableConfig, ShardingConfig};
use dbrouter::router::dialect::{may_change_dialect, Charset, Dialect, MbTable};
use dbrouter::router::key::{may_have_shape, scan_full_into, shape, KeyRef, KeyValue, Scan, Shape};
use dbrouter::router::table::ShardInfo;
use dbrouter::router::{scan_in, words, RoutingTable};
use libfuzzer_sys::fuzz_target;

const CHARSETS: [Charset; 5] = [
    Charset::Utf8,
    Charset::Other,
    Charset::AsciiTrail(MbTable::Sjis),
    Charset::AsciiTrail(MbTable::Gbk),
    Charset::AsciiTrail(MbTable::Big5),
];
/// Server versions around the `/*!NNNNN */` thresholds the lexer distinguishes.
const VERSIONS: [u32; 8] = [101100, 100000, 50700, 50699, 80000, 99999, 110401, 0];

fuzz_target!(|data: &[u8]| {
    let Some((&[d, v, c], sql)) = data.split_first_chunk::<3>() else {
        return;
    };
    let dialect = Dialect {
        backslash_escapes: d & 1 == 0,
        ansi_quotes: d & 2 != 0,
        foreign_grammar: d & 4 != 0,
        charset: CHARSETS[usize::from(d >> 3) % CHARSETS.len()],
        version: VERSIONS[usize::from(v) % VERSIONS.len()],
    };
    let table = &tables()[usize::from(c) % tables().len()];
    let columns = table.key_columns();

    let got = scan_in(sql, dialect, columns);
    let mut full = Scan::empty();
    scan_full_into(sql, dialect, columns, &mut full);
    if let Some(field) = difference(&got, &full) {
        panic!(
            "fast path and full scanner disagree on {field} for {:?} under {dialect:?}\n\
             scan_in: {got:?}\nfull:    {full:?}",
            String::from_utf8_lossy(sql)
        );
    }
    inside(sql, &got);

    // What the session does next with the statement.
    if may_have_shape(&got) || d & 0x80 != 0 {
        match shape(sql, dialect) {
            Shape::Batch(parts) => parts.iter().for_each(|p| within(sql, p)),
            Shape::SetStatement { inner, .. } => within(sql, inner),
            Shape::ExecuteImmediate(Some(text)) => within(sql, text),
            _ => {}
        }
    }
    for w in words(sql, dialect).take(sql.len() + 2) {
        let _ = w.is(b"select");
    }
    let _ = may_change_dialect(sql);
    let _ = table.route(&got);
    let _ = table.route_pinned(&got, Some(b"42"));
    let _ = table.named_user(&got, None);
});

/// The first field in which two scans differ (the unit tests' `PartialEq` for `Scan`,
/// which is test-only, compares exactly these).
fn difference(a: &Scan<'_>, b: &Scan<'_>) -> Option<&'static str> {
    [
        (a.kind == b.kind, "kind"),
        (a.keys() == b.keys(), "keys"),
        (a.tables() == b.tables(), "tables"),
        (a.tables_truncated == b.tables_truncated, "tables_truncated"),
        (a.from_hint == b.from_hint, "from_hint"),
        (a.problem == b.problem, "problem"),
        (a.placeholders == b.placeholders, "placeholders"),
        (a.multi_statement == b.multi_statement, "multi_statement"),
        (a.temporary == b.temporary, "temporary"),
    ]
    .into_iter()
    .find_map(|(same, field)| (!same).then_some(field))
}

/// Table names and string keys are borrowed from the statement's text.
fn inside(sql: &[u8], scan: &Scan<'_>) {
    for t in scan.tables() {
        within(sql, t);
    }
    for k in scan.keys() {
        if let KeyRef::Literal(KeyValue::Str(s)) = k {
            within(sql, s);
        }
    }
}

fn within(sql: &[u8], part: &[u8]) {
    if part.is_empty() {
        return;
    }
    let outer = sql.as_ptr_range();
    let inner = part.as_ptr_range();
    assert!(
        outer.start <= inner.start && inner.end <= outer.end,
        "a slice outside the statement"
    );
}

/// Routing tables with different key columns (the scanner reads a table's columns).
fn tables() -> &'static [RoutingTable] {
    static TABLES: OnceLock<Vec<RoutingTable>> = OnceLock::new();
    TABLES.get_or_init(|| {
        let shard = |name: &str, weight| ShardInfo {
            name: name.into(),
            master: format!("{name}:3306"),
            standbys: Vec::new(),
            weight,
            epoch: 1,
            switching: false,
            rejoin: Vec::new(),
            hibernation: false,
            auto_failover_armed: true,
        };
        let sharding =
            |key: &str, tables: &[(&str, Option<&str>)], globals: &[&str]| ShardingConfig {
                key_column: key.into(),
                global_tables: globals.iter().map(|g| g.to_string()).collect(),
                tables: tables
                    .iter()
                    .map(|(name, key)| ShardedTableConfig {
                        name: name.to_string(),
                        key: key.map(str::to_string),
                    })
                    .collect(),
                ..ShardingConfig::default()
            };
        [
            sharding("userid", &[], &[]),
            sharding(
                "userid",
                &[("posts", None), ("events", Some("Owner_Id"))],
                &["countries"],
            ),
            sharding("id", &[("t", Some("user_id"))], &["g"]),
            sharding("user_id", &[], &["countries", "t2"]),
        ]
        .iter()
        .map(|s| {
            let shards = vec![shard("a", 16), shard("b", 16), shard("c", 0)];
            let overrides = [(&b"42"[..], "c"), (&b"alice"[..], "b")];
            RoutingTable::build(1, shards, "a", overrides, s)
                .unwrap_or_else(|e| panic!("fixed routing table: {e}"))
        })
        .collect()
    })
}
