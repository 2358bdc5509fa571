//! The status page as HTML (`/`): plain server-side HTML with inline CSS that refreshes
//! itself every [`REFRESH_SECS`]. Every value shown goes through [`escape`]: shard names,
//! addresses and error texts come from config, ZooKeeper and servers, not from us.

use std::fmt::Write as _;

use super::{ServerStatus, Status, REFRESH_SECS, ROUTERS_TTL};
use crate::admin::reload::ReloadStatus;

/// Escapes text for HTML element content and double- or single-quoted attributes.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `2026-11-23 18:34:05 UTC` from milliseconds since the Unix epoch.
pub(super) fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn duration_text(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        s => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
    }
}

const CSS: &str = "
body{font:14px/1.4 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;background:#f4f5f7;color:#1d2330}
header{background:#1d2330;color:#fff;padding:14px 24px;display:flex;align-items:center;gap:16px;flex-wrap:wrap}
header h1{font-size:20px;margin:0;font-weight:600}
header .meta{color:#b8c0cf;font-size:13px}
main{padding:16px 24px;max-width:1400px}
section{background:#fff;border:1px solid #dde1e8;border-radius:6px;margin:0 0 16px;padding:12px 16px}
h2{font-size:16px;margin:0 0 8px;display:flex;gap:8px;align-items:center;flex-wrap:wrap}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:4px 10px 4px 0;border-bottom:1px solid #eef0f4;vertical-align:top}
th{font-weight:600;color:#5a6478;font-size:12px;text-transform:uppercase;letter-spacing:.03em}
td.num{font-variant-numeric:tabular-nums}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12px;word-break:break-all}
.badge{display:inline-block;border-radius:10px;padding:1px 9px;font-size:12px;font-weight:600;border:1px solid transparent}
.ok{background:#e3f6e8;color:#17692e;border-color:#bfe6ca}
.warn{background:#fff4d6;color:#7a5300;border-color:#f3dc9b}
.bad{background:#fde5e5;color:#9d1c1c;border-color:#f4bcbc}
.info{background:#e7eefc;color:#23467e;border-color:#c6d6f5}
.kv{display:grid;grid-template-columns:max-content 1fr;gap:2px 18px}
.kv div:nth-child(odd){color:#5a6478}
.muted{color:#7a8497}
.err{color:#9d1c1c}
footer{padding:0 24px 24px;color:#7a8497;font-size:12px}
footer a{color:#23467e}
";

fn badge(class: &str, text: &str) -> String {
    format!(
        "<span class=\"badge {}\">{}</span>",
        escape(class),
        escape(text)
    )
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// The HTML page.
pub fn render_html(s: &Status) -> String {
    let mut h = String::with_capacity(16 * 1024);
    let r = &s.router;
    let t = &s.topology;
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_SECS}\">\n\
         <title>dbrouter {listen} — status</title>\n<style>{CSS}</style>\n</head>\n<body>\n",
        listen = escape(&r.listen)
    );
    let ready = if r.ready {
        badge("ok", "READY")
    } else {
        badge("bad", "NOT READY")
    };
    let _ = write!(
        h,
        "<header><h1>dbrouter</h1>{ready}{phase}<span class=\"meta\">clients on <span class=\"mono\">{listen}</span> · version {version} · up {uptime}</span></header>\n<main>\n",
        phase = badge(if r.phase == "serving" { "info" } else { "warn" }, &r.phase),
        listen = escape(&r.listen),
        version = escape(&r.version),
        uptime = escape(&duration_text(r.uptime_seconds)),
    );
    if let Some(reason) = &r.not_ready_reason {
        let _ = writeln!(
            h,
            "<section><h2>Not ready</h2><p class=\"err\">{}</p></section>",
            escape(reason)
        );
    }

    // Router and topology summary.
    let zk_class = match t.zookeeper_state.as_str() {
        "connected" => "ok",
        "none" => "info",
        "connecting" => "warn",
        _ => "bad",
    };
    let _ = writeln!(
        h,
        "<section><h2>Router and topology</h2><div class=\"kv\">\
         <div>topology source</div><div class=\"mono\">{source}</div>\
         <div>topology version</div><div>{version}</div>\
         <div>ZooKeeper</div><div>{zk}</div>\
         <div>last topology error</div><div class=\"{err_class}\">{last_error}</div>\
         <div>overridden users</div><div>{overrides}</div>\
         <div>users held by a move</div><div>{held_users}</div>\
         <div>stale (cut off from ZooKeeper)</div><div>{stale}</div>\
         <div>client connections</div><div>{conns}</div>\
         <div>held statements</div><div>{held}</div>\
         <div>pool mode</div><div>{pool_mode}</div>\
         <div>pinned sessions</div><div>{pinned}</div>\
         <div>admin address</div><div class=\"mono\">{admin}</div>\
         </div></section>",
        source = escape(&t.source),
        version = t.version,
        zk = badge(zk_class, &t.zookeeper_state),
        err_class = if t.last_error.is_some() {
            "err"
        } else {
            "muted"
        },
        last_error = escape(t.last_error.as_deref().unwrap_or("none")),
        overrides = t.overridden_users,
        held_users = t.held_users,
        stale = if t.stale {
            "yes: refusing statements"
        } else {
            "no"
        },
        conns = r.client_connections,
        held = r.held_statements,
        pool_mode = escape(&r.pool_mode),
        pinned = if r.pinned_sessions.is_empty() {
            "none".to_string()
        } else {
            r.pinned_sessions
                .iter()
                .map(|(why, n)| format!("{n} {why}"))
                .collect::<Vec<_>>()
                .join(", ")
        },
        admin = escape(r.admin.as_deref().unwrap_or("-")),
    );

    config_section(&mut h, &s.config);

    if s.shards.is_empty() {
        h.push_str("<section><h2>Shards</h2><p class=\"muted\">No topology yet.</p></section>\n");
    }
    for shard in &s.shards {
        let state = if shard.switching {
            badge("warn", "SWITCHING (statements held)")
        } else {
            badge("ok", "serving")
        };
        let _ = write!(
            h,
            "<section><h2>Shard {name} {state}{epoch}{weight}{pool}</h2>\n<table>\n\
             <tr><th>role</th><th>server</th><th>health</th><th>lag</th><th>rtt</th>\
             <th>read_only</th><th>semi-sync</th><th>replication</th><th>GTID position</th>\
             <th>last error</th></tr>\n",
            name = escape(&shard.name),
            epoch = badge("info", &format!("epoch {}", shard.epoch)),
            weight = badge(
                if shard.weight == 0 { "warn" } else { "info" },
                &format!("weight {}", shard.weight)
            ),
            pool = badge(
                if shard.pool.in_use >= shard.pool.max {
                    "bad"
                } else {
                    "info"
                },
                &format!(
                    "pool {} in use / {} idle / {} waiting / max {}",
                    shard.pool.in_use, shard.pool.idle, shard.pool.waiting, shard.pool.max
                )
            ),
        );
        let servers = std::iter::once(&shard.master)
            .chain(&shard.standbys)
            .chain(&shard.rejoin_pending);
        for x in servers {
            server_row(&mut h, x);
        }
        h.push_str("</table></section>\n");
    }

    if let Some(routers) = &s.routers {
        let _ = writeln!(
            h,
            "<section><h2>Registered routers {}</h2>",
            badge(
                "info",
                &format!("ZooKeeper version {}", routers.current_version)
            )
        );
        if let Some(e) = &routers.error {
            let _ = writeln!(h, "<p class=\"err\">cannot read them: {}</p>", escape(e));
        } else if routers.routers.is_empty() {
            h.push_str("<p class=\"muted\">none registered</p>\n");
        } else {
            h.push_str("<table>\n<tr><th>id</th><th>address</th><th>build</th><th>version</th><th>state</th><th>applied at</th></tr>\n");
            for x in &routers.routers {
                let lag = if x.behind_by == 0 {
                    badge("ok", "current")
                } else {
                    badge("bad", &format!("behind by {}", x.behind_by))
                };
                let _ = writeln!(
                    h,
                    "<tr><td class=\"mono\">{}</td><td class=\"mono\">{}</td><td>{}</td><td class=\"num\">{}</td><td>{lag}</td><td>{}</td></tr>",
                    escape(&x.id),
                    escape(&x.address),
                    escape(&x.build),
                    x.applied_version,
                    escape(&utc(x.applied_at_ms)),
                );
            }
            h.push_str("</table>\n");
        }
        let _ = writeln!(
            h,
            "<p class=\"muted\">read from ZooKeeper {} s ago (cached for {} s)</p></section>",
            routers.read_ago_ms / 1000,
            ROUTERS_TTL.as_secs()
        );
    }
    let _ = write!(
        h,
        "</main>\n<footer>Generated {} · refreshes every {REFRESH_SECS} s · \
         <a href=\"/status.json\">status.json</a> · <a href=\"/metrics\">metrics</a> · \
         <a href=\"/readyz\">readyz</a></footer>\n</body>\n</html>\n",
        escape(&utc(r.generated_at_ms))
    );
    h
}

/// The configuration section: the file, the last reload and the restart-only changes
/// waiting for a restart.
fn config_section(h: &mut String, c: &ReloadStatus) {
    let last = match &c.last {
        None => "<span class=\"muted\">none since start</span>".to_string(),
        Some(l) if l.ok => format!(
            "{} {} ({}){}",
            badge("ok", "APPLIED"),
            escape(&utc(l.at_ms)),
            escape(&l.trigger),
            if l.applied.is_empty() {
                " — no reloadable field changed".to_string()
            } else {
                format!(
                    " — <span class=\"mono\">{}</span>",
                    escape(&l.applied.join(", "))
                )
            }
        ),
        Some(l) => format!(
            "{} {} ({}): <span class=\"err\">{}</span> — the previous configuration stays in force",
            badge("bad", "REFUSED"),
            escape(&utc(l.at_ms)),
            escape(&l.trigger),
            escape(l.error.as_deref().unwrap_or("unknown error"))
        ),
    };
    let pending = if c.needs_restart.is_empty() {
        "<span class=\"muted\">none</span>".to_string()
    } else {
        format!(
            "{} <span class=\"mono\">{}</span>",
            badge("warn", "NEEDS RESTART"),
            escape(&c.needs_restart.join(", "))
        )
    };
    let _ = writeln!(
        h,
        "<section><h2>Configuration</h2><div class=\"kv\">\
         <div>config file</div><div class=\"mono\">{path}</div>\
         <div>last reload</div><div>{last}</div>\
         <div>reloads applied / refused</div><div>{ok} / {failed}</div>\
         <div>changed, not applied until restart</div><div>{pending}</div>\
         </div></section>",
        path = escape(c.path.as_deref().unwrap_or("-")),
        ok = c.reloads,
        failed = c.failures,
    );
}

fn server_row(h: &mut String, x: &ServerStatus) {
    let unknown = "<span class=\"muted\">–</span>".to_string();
    let lag = match x.lag_seconds {
        Some(l) => format!("{l} s"),
        None if x.role == "master" => String::new(),
        None => unknown.clone(),
    };
    let (lag, rtt, read_only, semi, repl) = if x.checked && x.reachable {
        let semi = match (x.semi_sync_master, x.semi_sync_slave) {
            (true, _) => "master on",
            (false, true) => "slave on",
            (false, false) => "off",
        };
        let repl = if x.role == "master" && !x.io_running && !x.sql_running {
            "—".to_string()
        } else {
            format!(
                "IO {} · SQL {}",
                yes_no(x.io_running),
                yes_no(x.sql_running)
            )
        };
        (
            escape(&lag),
            escape(&format!("{:.2} ms", x.rtt_ms)),
            yes_no(x.read_only).to_string(),
            semi.to_string(),
            escape(&repl),
        )
    } else {
        (
            unknown.clone(),
            unknown.clone(),
            unknown.clone(),
            unknown.clone(),
            unknown,
        )
    };
    let checked = x
        .checked_ago_ms
        .map(|ms| format!(" · checked {:.1} s ago", ms as f64 / 1000.0))
        .unwrap_or_default();
    let failures = if x.consecutive_failures > 0 {
        format!(" ({} failed probes in a row)", x.consecutive_failures)
    } else {
        String::new()
    };
    let _ = writeln!(
        h,
        "<tr><td>{role}</td><td class=\"mono\">{addr}</td><td>{state}<div class=\"muted\">{checked}</div></td>\
         <td class=\"num\">{lag}</td><td class=\"num\">{rtt}</td><td>{read_only}</td><td>{semi}</td>\
         <td>{repl}</td><td class=\"mono\">{gtid}</td><td class=\"err\">{error}{failures}</td></tr>",
        role = escape(&x.role),
        addr = escape(&x.addr),
        state = badge(x.severity, &x.state),
        checked = escape(checked.trim_start_matches(" · ")),
        gtid = escape(&x.gtid_current_pos),
        error = escape(x.last_error.as_deref().unwrap_or("")),
        failures = escape(&failures),
    );
}
