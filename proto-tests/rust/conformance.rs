//! The conformance harness: `proto-tests/conformance/script.txt` — raw protocol exchanges
//! covering session tracking, MariaDB's extended metadata and metadata caching, bulk
//! execute, prepared statements, COM_INIT_DB / COM_FIELD_LIST / COM_PING /
//! COM_RESET_CONNECTION, errors and session ids — run against shard1's master directly
//! and through a router; every answer must be the same bytes, with one mapping: each
//! side's own connection id (its greeting's) is replaced by `<id>` before comparing.

use mysql_common::constants::MariadbCapabilities as M;

use crate::harness::*;
use crate::raw::{prepare, stmt_id, RawClient};
use dbrouter::protocol::response::ResponseKind;

const SCRIPT: &str = include_str!("../conformance/script.txt");

/// One side's connection and the statement ids it was given.
struct Side {
    client: RawClient,
    statements: Vec<u32>,
}

/// The packets of an answer, with the side's own connection id (as decimal text or as
/// a 4-byte little-endian number) replaced by `<id>`.
fn mapped(packets: Vec<Vec<u8>>, own_id: u32) -> Vec<Vec<u8>> {
    let text = own_id.to_string().into_bytes();
    packets
        .into_iter()
        .map(|p| {
            let mut out = Vec::with_capacity(p.len());
            let mut i = 0;
            while i < p.len() {
                // The id as a whole number only (id 295 is no part of 4294967295).
                let whole = (i == 0 || !p[i - 1].is_ascii_digit())
                    && !p.get(i + text.len()).is_some_and(u8::is_ascii_digit);
                if whole && p[i..].starts_with(&text) {
                    // A length-encoded string of the id: its length byte goes too.
                    if out.last() == Some(&(text.len() as u8)) {
                        out.pop();
                    }
                    out.extend_from_slice(b"<id>");
                    i += text.len();
                } else {
                    out.push(p[i]);
                    i += 1;
                }
            }
            out
        })
        .collect()
}

fn bigint_execute(id: u32, params: &[i64]) -> Vec<u8> {
    let mut p = vec![0x17];
    p.extend_from_slice(&id.to_le_bytes());
    p.push(0);
    p.extend_from_slice(&1u32.to_le_bytes());
    if !params.is_empty() {
        p.extend(std::iter::repeat_n(0u8, params.len().div_ceil(8)));
        p.push(1);
        for _ in params {
            p.extend_from_slice(&[0x08, 0x00]);
        }
        for v in params {
            p.extend_from_slice(&v.to_le_bytes());
        }
    }
    p
}

fn bigint_bulk(id: u32, rows: &[i64]) -> Vec<u8> {
    let mut p = vec![0xfa];
    p.extend_from_slice(&id.to_le_bytes());
    p.extend_from_slice(&128u16.to_le_bytes());
    p.extend_from_slice(&[0x08, 0x00]);
    for v in rows {
        p.push(0);
        p.extend_from_slice(&v.to_le_bytes());
    }
    p
}

/// Runs the whole script against `addr`; one entry per step: (line number, the line,
/// the answer's packets, mapped).
async fn run_script(addr: &str, cache_metadata: bool) -> Vec<(usize, String, Vec<Vec<u8>>)> {
    let mut side: Option<Side> = None;
    let mut out = Vec::new();
    for (n, line) in SCRIPT.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (verb, rest) = line.split_once(' ').unwrap_or((line, ""));
        if verb == "session" {
            let mut caps = M::empty();
            let mut db = None;
            for word in rest.split_whitespace() {
                match word {
                    "cache_metadata" if cache_metadata => caps |= M::MARIADB_CLIENT_CACHE_METADATA,
                    "cache_metadata" => {}
                    "extended_metadata" => caps |= M::MARIADB_CLIENT_EXTENDED_METADATA,
                    "bulk" => caps |= M::MARIADB_CLIENT_STMT_BULK_OPERATIONS,
                    w => db = Some(w.strip_prefix("db=").expect("db=<name>").to_string()),
                }
            }
            let client =
                RawClient::connect_with(addr, "app", APP_PASSWORD, db.as_deref(), caps).await;
            out.push((n + 1, line.to_string(), vec![client.login_ok.clone()]));
            side = Some(Side {
                client,
                statements: Vec::new(),
            });
            continue;
        }
        let side = side.as_mut().expect("a session first");
        let (payload, kind) = match verb {
            "query" => ([&[0x03][..], rest.as_bytes()].concat(), ResponseKind::Query),
            "init_db" => (
                [&[0x02][..], rest.as_bytes()].concat(),
                ResponseKind::Single,
            ),
            "ping" => (vec![0x0e], ResponseKind::Single),
            "reset" => (vec![0x1f], ResponseKind::Single),
            "field_list" => (
                [&[0x04][..], rest.as_bytes(), &[0]].concat(),
                ResponseKind::FieldList,
            ),
            "prepare" => (prepare(rest), ResponseKind::Prepare),
            "pipelined" => {
                // PREPARE and, before its answer, EXECUTE of statement 0xFFFFFFFF ("the
                // one prepared last"), as MariaDB's connectors pipeline them.
                side.client.send(&prepare(rest)).await;
                side.client.send(&bigint_execute(u32::MAX, &[])).await;
                let mut prepared = side.client.read_response(ResponseKind::Prepare).await;
                if prepared[0][0] == 0x00 {
                    side.statements.push(stmt_id(&prepared[0]));
                    prepared[0].splice(1..5, [0; 4]);
                }
                let executed = side.client.read_response(ResponseKind::Execute).await;
                prepared.extend(executed);
                out.push((
                    n + 1,
                    line.to_string(),
                    mapped(prepared, side.client.connection_id),
                ));
                continue;
            }
            "execute" | "bulk" | "close" => {
                let mut args = rest.split_whitespace();
                let index: usize = args.next().unwrap().parse().unwrap();
                let id = side.statements[index - 1];
                let values: Vec<i64> = args.map(|a| a.parse().unwrap()).collect();
                match verb {
                    "execute" => (bigint_execute(id, &values), ResponseKind::Execute),
                    "bulk" => (bigint_bulk(id, &values), ResponseKind::Execute),
                    _ => {
                        let mut p = vec![0x19];
                        p.extend_from_slice(&id.to_le_bytes());
                        side.client.send(&p).await;
                        continue;
                    }
                }
            }
            other => panic!("line {}: unknown verb {other}", n + 1),
        };
        let mut packets = side.client.command(&payload, kind).await;
        if verb == "prepare" && packets[0][0] == 0x00 {
            side.statements.push(stmt_id(&packets[0]));
            // The statement ids are each side's own: compared without them.
            packets[0].splice(1..5, [0; 4]);
        }
        out.push((
            n + 1,
            line.to_string(),
            mapped(packets, side.client.connection_id),
        ));
    }
    out
}

#[tokio::test]
async fn the_conformance_script_gets_the_same_bytes_directly_and_through_the_router() {
    // Metadata caching where the router offers it (session pooling); in transaction
    // pooling it does not, and both sides run the script without it (caching byte for
    // byte in session pooling: queries::mariadb_metadata_caching_matches_direct_byte_for_byte).
    let router = cluster_router_addr();
    let offered = RawClient::connect(&router, "app", APP_PASSWORD, None)
        .await
        .offered;
    let cache_metadata = offered.contains(M::MARIADB_CLIENT_CACHE_METADATA);
    // The same starting point for both runs.
    fresh_database("conformance").await;
    let direct = run_script(&master_addr(), cache_metadata).await;
    fresh_database("conformance").await;
    let routed = run_script(&router, cache_metadata).await;
    assert_eq!(direct.len(), routed.len());
    assert!(direct.len() > 30, "the script ran {} steps", direct.len());
    let text = |p: &[Vec<u8>]| {
        p.iter()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect::<Vec<_>>()
    };
    for ((n, line, d), (_, _, r)) in direct.iter().zip(&routed) {
        assert_eq!(
            r,
            d,
            "line {n}: {line}\n router: {:?}\n direct: {:?}",
            text(r),
            text(d)
        );
    }
}
