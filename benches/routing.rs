//! Routing's per-statement cost: the shard-key scanner over realistic statements, then
//! scan + canonical key bytes + ring lookup (16 shards × 1024 virtual nodes). A counting
//! allocator checks first that scanning and routing allocate nothing.
//!
//! Run: `cargo bench --bench routing` (docs/benchmarks.md has recent numbers).
//!
//! Instruction counts (noise-free, for `valgrind --tool=callgrind`): with
//! `ROUTING_REPEAT=<group>/<statement>/<n>` (group `scan` or `route`) the binary only runs
//! that statement n times and exits; (Ir at n = 1001 − Ir at n = 1) / 1000 is the count per
//! call. docs/benchmarks.md has the loop.

use std::hint::black_box;
use std::sync::atomic::Ordering;

use criterion::{criterion_group, Criterion};
use dbrouter::router::dialect::Dialect;
use dbrouter::router::key::{may_have_shape, shape, KeyColumns, KeyRef, KeyValue, Shape};
use dbrouter::router::ring::{key_hash, Ring, ShardId};
use dbrouter::router::scan;

#[path = "common/alloc.rs"]
mod alloc;
use alloc::{CountingAlloc, ALLOCATIONS};

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// A ~2 KB statement whose key comes last: a long IN list and a long string before it.
fn long_statement() -> String {
    let mut sql = String::from("SELECT id, title, body, created FROM posts WHERE id IN (");
    for i in 0..250 {
        sql.push_str(&format!("{},", 100_000 + i));
    }
    sql.push_str("0) AND body <> '");
    while sql.len() < 1950 {
        sql.push_str("lorem ipsum, (dolor) sit amet; ");
    }
    sql.push_str("' AND userid = 12345");
    sql
}

/// (name, statement, whether it has a key).
fn statements() -> Vec<(&'static str, String, bool)> {
    vec![
        (
            "point_select",
            "SELECT id, name, email FROM users WHERE userid = 12345 AND active = 1".into(),
            true,
        ),
        (
            "join_with_hint",
            "/* userid=12345 */ SELECT p.id, p.title, c.body FROM posts p JOIN comments c \
             ON c.post_id = p.id LEFT JOIN likes l ON l.post_id = p.id WHERE p.created > \
             NOW() - INTERVAL 7 DAY ORDER BY p.id DESC LIMIT 20"
                .into(),
            true,
        ),
        (
            "update",
            "UPDATE users SET last_login = NOW(), login_count = login_count + 1 \
             WHERE userid = 12345"
                .into(),
            true,
        ),
        (
            "delete",
            "DELETE FROM sessions WHERE userid = 12345 AND expires < NOW()".into(),
            true,
        ),
        (
            "insert_3_rows",
            "INSERT INTO events (userid, kind, payload, created) VALUES \
             (12345, 'click', '{\"x\":1}', NOW()), (12345, 'view', 'a,b)', NOW()), \
             (12345, 'buy', CONCAT('a', 'b'), NOW())"
                .into(),
            true,
        ),
        (
            "prepared_select",
            "SELECT id, name, email FROM users WHERE userid = ? AND status = ? LIMIT 1".into(),
            true,
        ),
        ("long_2kb_key_last", long_statement(), true),
        ("keyless_select_1", "SELECT 1".into(), false),
    ]
}

/// What a session does for a COM_QUERY: check the statement's shape (a batch, dynamic
/// SQL…), scan it, then place the first key on the ring.
fn route(sql: &[u8], cols: &KeyColumns, ring: &Ring) -> Option<ShardId> {
    let s = scan(sql, cols);
    if may_have_shape(&s) && shape(sql, Dialect::default()) != Shape::Plain {
        return None;
    }
    if s.problem.is_some() {
        return None;
    }
    let mut buf = [0u8; 20];
    let canonical = match s.keys().first()? {
        KeyRef::Literal(v) => v.canonical(&mut buf),
        // A prepared statement's key value arrives with COM_STMT_EXECUTE.
        KeyRef::Param(_) => KeyValue::Int(12345).canonical(&mut buf),
    };
    Some(ring.lookup(key_hash(canonical)).shard)
}

fn bench_scan(c: &mut Criterion) {
    let cols = KeyColumns::new(["userid"]);
    let mut group = c.benchmark_group("scan");
    for (name, sql, keyed) in statements() {
        // Zero allocations per scan, and the scan finds what it should.
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        let s = scan(sql.as_bytes(), &cols);
        let found = s.keys().len();
        let problem = s.problem;
        assert_eq!(
            ALLOCATIONS.load(Ordering::Relaxed),
            before,
            "{name}: scan allocated"
        );
        assert_eq!(problem, None, "{name}");
        assert_eq!(found > 0, keyed, "{name}");
        group.bench_function(name, |b| {
            b.iter(|| scan(black_box(sql.as_bytes()), &cols).keys().len())
        });
    }
    group.finish();
}

fn bench_route(c: &mut Criterion) {
    let cols = KeyColumns::new(["userid"]);
    let names: Vec<String> = (0..16).map(|i| format!("shard{i}")).collect();
    let shards: Vec<(&str, u32)> = names.iter().map(|n| (n.as_str(), 1024)).collect();
    let built = Ring::build(&shards);
    assert!(built.is_ok(), "ring: {built:?}");
    let Ok(ring) = built else { return };
    let mut group = c.benchmark_group("scan_canonical_lookup");
    for (name, sql, keyed) in statements().into_iter().filter(|s| s.2) {
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        assert_eq!(
            route(sql.as_bytes(), &cols, &ring).is_some(),
            keyed,
            "{name}"
        );
        assert_eq!(
            ALLOCATIONS.load(Ordering::Relaxed),
            before,
            "{name}: routing allocated"
        );
        group.bench_function(name, |b| {
            b.iter(|| route(black_box(sql.as_bytes()), &cols, &ring))
        });
    }
    group.finish();
}

/// `ROUTING_REPEAT=<group>/<statement>/<n>`: run one statement n times, for callgrind.
fn repeat(spec: &str) {
    let parts: Vec<&str> = spec.split('/').collect();
    let [group, name, n] = parts[..] else {
        eprintln!("ROUTING_REPEAT=<scan|route>/<statement>/<n>");
        std::process::exit(2);
    };
    let n: usize = n.parse().unwrap_or(1);
    let all = statements();
    let Some((_, sql, _)) = all.iter().find(|s| s.0 == name) else {
        eprintln!("no statement {name}");
        std::process::exit(2);
    };
    let cols = KeyColumns::new(["userid"]);
    let names: Vec<String> = (0..16).map(|i| format!("shard{i}")).collect();
    let shards: Vec<(&str, u32)> = names.iter().map(|n| (n.as_str(), 1024)).collect();
    let Ok(ring) = Ring::build(&shards) else {
        return;
    };
    let mut acc = 0usize;
    for _ in 0..n {
        acc += match group {
            "route" => route(black_box(sql.as_bytes()), &cols, &ring).map_or(0, usize::from),
            _ => scan(black_box(sql.as_bytes()), &cols).keys().len(),
        };
    }
    println!("{acc}");
}

criterion_group!(benches, bench_scan, bench_route);

fn main() {
    if let Ok(spec) = std::env::var("ROUTING_REPEAT") {
        return repeat(&spec);
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
