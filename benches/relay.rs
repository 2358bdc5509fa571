//! The wire-path hot loop without sockets: scanning relayed result sets (header parse,
//! classification of packet heads, terminator detection) and framing client commands.
//! A counting allocator checks that scanning allocates nothing per packet.
//!
//! Run: `cargo bench --bench relay` (docs/benchmarks.md has recent numbers).

use std::sync::atomic::Ordering;

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dbrouter::net::write_packet;
use dbrouter::protocol::response::{ResponseKind, ResultFormat, Step};
use dbrouter::protocol::scanner::ResponseScanner;

#[path = "common/alloc.rs"]
mod alloc;
use alloc::{CountingAlloc, ALLOCATIONS};

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// A text result set of `rows` rows of about 40 bytes, as a backend sends it.
fn result_set(rows: usize) -> Vec<u8> {
    let mut out = BytesMut::new();
    let coldef =
        b"\x03def\x03app\x01t\x01t\x02id\x02id\x0c\x3f\x00\x0b\x00\x00\x00\x03\x00\x00\x00\x00\x00";
    let mut seq = write_packet(&mut out, 1, &[2]);
    seq = write_packet(&mut out, seq, coldef);
    seq = write_packet(&mut out, seq, coldef);
    seq = write_packet(&mut out, seq, &[0xfe, 0, 0, 2, 0]);
    for i in 0..rows {
        let id = format!("{i}");
        let mut row = vec![id.len() as u8];
        row.extend_from_slice(id.as_bytes());
        row.push(32);
        row.extend_from_slice(&[b'x'; 32]);
        seq = write_packet(&mut out, seq, &row);
    }
    write_packet(&mut out, seq, &[0xfe, 0, 0, 0x22, 0]);
    out.to_vec()
}

fn scan_all(stream: &[u8]) -> Option<Step> {
    let mut scanner = ResponseScanner::new(ResponseKind::Query, ResultFormat::default(), 0);
    scanner.scan(stream).ok().and_then(|s| s.finished)
}

fn bench_scan(c: &mut Criterion) {
    for rows in [1usize, 100, 10_000] {
        let stream = result_set(rows);
        // Zero allocations per scan, whatever the number of packets.
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        assert_eq!(scan_all(&stream), Some(Step::Done { status: Some(0x22) }));
        assert_eq!(
            ALLOCATIONS.load(Ordering::Relaxed),
            before,
            "scanning allocated"
        );

        let mut group = c.benchmark_group("scan_result_set");
        group.throughput(Throughput::Elements(rows as u64 + 5));
        group.bench_function(format!("{rows}_rows"), |b| {
            b.iter(|| scan_all(std::hint::black_box(&stream)))
        });
        group.finish();
    }
}

fn bench_frame_command(c: &mut Criterion) {
    let sql = b"\x03SELECT id, name, email FROM users WHERE userid = 12345 AND active = 1";
    let mut out = BytesMut::with_capacity(4096);
    c.bench_function("frame_command", |b| {
        b.iter(|| {
            out.clear();
            write_packet(&mut out, 0, std::hint::black_box(sql))
        })
    });
}

criterion_group!(benches, bench_scan, bench_frame_command);
criterion_main!(benches);
