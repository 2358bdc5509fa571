//! Unit tests of the status page: escaping, the HTML and JSON renderings, dates.

use super::html::utc;
use super::*;

fn server(addr: &str, role: &str) -> ServerStatus {
    ServerStatus {
        addr: addr.into(),
        role: role.into(),
        state: "ok".into(),
        severity: "ok",
        checked: true,
        reachable: true,
        read_only: false,
        rtt_ms: 0.4,
        lag_seconds: Some(0),
        io_running: true,
        sql_running: true,
        semi_sync_master: false,
        semi_sync_slave: true,
        gtid_current_pos: "0-11-42".into(),
        consecutive_failures: 0,
        last_error: Some("<script>alert('x')</script>".into()),
        checked_ago_ms: Some(800),
    }
}

fn sample() -> Status {
    Status {
        router: RouterStatus {
            version: "0.1.0".into(),
            listen: "127.0.0.1:6033".into(),
            admin: Some("127.0.0.1:6034".into()),
            phase: "serving".into(),
            ready: false,
            not_ready_reason: Some("shard <b> master & down".into()),
            uptime_seconds: 4000,
            client_connections: 3,
            held_statements: 0,
            pool_mode: "transaction".into(),
            pinned_sessions: [("temporary_table", 2)].into_iter().collect(),
            generated_at_ms: 1_795_000_000_000,
        },
        topology: TopologyStatusView {
            source: "zk://127.0.0.1:2181/dbrouter/dev".into(),
            version: 12,
            zookeeper_state: "connected".into(),
            last_error: None,
            overridden_users: 2,
            held_users: 0,
            stale: false,
        },
        shards: vec![ShardStatus {
            name: "s<1>\"&'".into(),
            epoch: 3,
            weight: 256,
            switching: true,
            master: server("127.0.0.1:3311", "master"),
            standbys: vec![server("127.0.0.1:3312", "standby")],
            rejoin_pending: vec![server("127.0.0.1:3313", "needs-rejoin")],
            pool: PoolStatus {
                in_use: 1,
                idle: 2,
                waiting: 4,
                max: 10,
            },
        }],
        routers: Some(RoutersView {
            current_version: 12,
            routers: vec![RouterEntry {
                id: "r<1>".into(),
                address: "127.0.0.1:6033".into(),
                build: "0.1.0".into(),
                applied_version: 11,
                behind_by: 1,
                applied_at_ms: 1_795_000_000_000,
            }],
            error: None,
            read_ago_ms: 0,
        }),
        config: crate::admin::reload::ReloadStatus {
            path: Some("/etc/dbrouter/dbrouter.toml".into()),
            reloads: 2,
            failures: 1,
            last: Some(crate::admin::reload::ReloadOutcome {
                at_ms: 1_795_000_000_000,
                trigger: "SIGHUP".into(),
                ok: false,
                error: Some("field `pool.max_per_shard`: <must> be at least 1".into()),
                applied: Vec::new(),
                needs_restart: Vec::new(),
            }),
            last_success_ms: Some(1_794_000_000_000),
            needs_restart: vec!["server.listen".into()],
        },
    }
}

#[test]
fn escapes_every_special_character() {
    assert_eq!(
        escape(r#"<a href="x">'&'</a>"#),
        "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
    );
}

#[test]
fn page_escapes_values_and_shows_everything() {
    let html = render_html(&sample());
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(!html.contains("<script>"), "{html}");
    assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"));
    assert!(html.contains("s&lt;1&gt;&quot;&amp;&#39;"));
    assert!(html.contains("shard &lt;b&gt; master &amp; down"));
    assert!(html.contains("SWITCHING"));
    assert!(html.contains("needs-rejoin"));
    assert!(html.contains("behind by 1"));
    assert!(html.contains("r&lt;1&gt;"));
    assert!(html.contains("http-equiv=\"refresh\""));
    assert!(html.contains("REFUSED"));
    assert!(html.contains("field `pool.max_per_shard`: &lt;must&gt; be at least 1"));
    assert!(html.contains("NEEDS RESTART") && html.contains("server.listen"));
    assert!(html.trim_end().ends_with("</html>"));
}

#[test]
fn json_has_the_same_data() {
    let v: serde_json::Value = serde_json::to_value(sample()).unwrap();
    assert_eq!(v["shards"][0]["name"], "s<1>\"&'");
    assert_eq!(
        v["shards"][0]["rejoin_pending"][0]["addr"],
        "127.0.0.1:3313"
    );
    assert_eq!(v["routers"]["routers"][0]["behind_by"], 1);
    assert_eq!(v["config"]["last"]["ok"], false);
    assert_eq!(v["config"]["needs_restart"][0], "server.listen");
}

#[test]
fn utc_formats_known_instants() {
    assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
    assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00 UTC");
    assert_eq!(utc(1_795_000_000_000), "2026-11-18 11:06:40 UTC");
}
