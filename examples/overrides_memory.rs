//! How much memory a router spends on per-user overrides (pins left by placement
//! commands, moves, hibernation): builds the routing table of a 16-shard topology with N
//! overrides, as a router does for every topology version, and reports the resident set
//! growth and the build time. During a topology swap a router holds two tables for a
//! moment (the old one until the last statement using it ends).
//!
//! ```text
//! cargo run --release --example overrides_memory -- 100000 1000000
//! ```

use std::process::ExitCode;
use std::time::Instant;

use dbrouter::config::ShardingConfig;
use dbrouter::router::table::{RoutingTable, ShardInfo};

/// Resident set size of this process, in bytes (`/proc/self/statm`, 4 KiB pages).
fn rss() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

fn main() -> ExitCode {
    let counts: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    if counts.is_empty() {
        eprintln!("usage: overrides_memory N [N …]   (numbers of overrides)");
        return ExitCode::FAILURE;
    }
    let shards: Vec<ShardInfo> = (0..16)
        .map(|i| ShardInfo {
            name: format!("shard{i}"),
            master: format!("10.0.0.{i}:3306"),
            standbys: Vec::new(),
            weight: 256,
            epoch: 1,
            switching: false,
            rejoin: Vec::new(),
            hibernation: false,
            auto_failover_armed: true,
        })
        .collect();
    let names: Vec<String> = shards.iter().map(|s| s.name.clone()).collect();
    let sharding = ShardingConfig::default();
    println!("| overrides | resident set growth | per override | table build |");
    println!("|---:|---:|---:|---:|");
    for n in counts {
        // User ids as canonical keys: decimal text, 10-19 digits like real bigint ids.
        let users: Vec<(Vec<u8>, usize)> = (0..n)
            .map(|i| {
                let id = 1_000_000_000u64 + (i as u64).wrapping_mul(7919);
                (id.to_string().into_bytes(), i % names.len())
            })
            .collect();
        let before = rss();
        let started = Instant::now();
        let table = RoutingTable::build(
            1,
            shards.clone(),
            "shard0",
            users
                .iter()
                .map(|(k, s)| (k.as_slice(), names[*s].as_str())),
            &sharding,
        );
        let took = started.elapsed();
        let grown = rss().saturating_sub(before);
        match table {
            Ok(t) => {
                assert_eq!(t.override_count(), n);
                println!(
                    "| {n} | {:.1} MiB | {} bytes | {:.0} ms |",
                    grown as f64 / (1024.0 * 1024.0),
                    grown / n.max(1) as u64,
                    took.as_secs_f64() * 1000.0
                );
                drop(t);
            }
            Err(e) => {
                eprintln!("cannot build the table: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
