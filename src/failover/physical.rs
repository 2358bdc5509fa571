//! The physical clone of `ctl standby add|rebuild --method physical`: `mariadb-backup
//! --backup --stream=mbstream` runs on the source's host, its stream passes through this
//! process (counted for the progress line) into `mbstream -x` on the target's host, next
//! to the target's data directory; then the target server is stopped, the backup is
//! prepared and moved into its emptied data directory, the server is started again and
//! left read-only with an empty binary log and `gtid_slave_pos` at the backup's position.
//!
//! Commands on a database host run through `[clone] shell` (empty: this machine; else e.g.
//! `ssh -o BatchMode=yes {host}`); the target is stopped and started with `[clone]
//! stop_server` / `start_server`. The admin password reaches `mariadb-backup` on its
//! standard input (never a command line: `ps` would show it on the database host).
//!
//! **Why and when.** A physical copy moves files at disk speed and needs no replay of SQL:
//! for a large shard it is many times faster than a logical dump, and the copy includes the
//! `mysql` schema (accounts, grants) as the source has it. It needs shell access to both
//! hosts and stops the target server for the restore; the logical method needs neither.
//! docs/operations.md compares both (`scripts/report-clone`).
//!
//! **Safety.** The target's data directory is emptied only after the whole stream has been
//! received and the target server is stopped, and only if it looks like a MariaDB data
//! directory (an absolute path holding `mysql/`); a failure before that leaves the target
//! as it was (read-only, not in the topology).

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use super::copy::{copy_with_progress, host_port};
use super::gtid::GtidPos;
use super::server::Admin;
use super::{OpError, Ops};

/// How many trailing lines of a failed command's output an error shows.
const ERROR_TAIL_LINES: usize = 6;

/// Copies `source` into the target's data directory (the target is restarted); returns
/// the GTID position the copy is consistent with (the master's own binary log position
/// when copied from the master, else the standby's position in its master's stream) and
/// the bytes streamed. `target` is reconnected after the restart.
pub(super) async fn clone_physical(
    ops: &Ops,
    (source, from_master): (&str, bool),
    target: &mut Admin,
    estimate: u64,
    say: &mut (dyn FnMut(String) + Send),
) -> Result<(GtidPos, u64), OpError> {
    let addr = target.addr.clone();
    let target_dir = datadir(target).await?;
    if !target_dir.starts_with('/') || target_dir.trim_end_matches('/').is_empty() {
        return Err(OpError::Refused(format!(
            "{addr}'s data directory {target_dir:?} is not an absolute path: nothing was changed"
        )));
    }
    let stage = format!("{}.dbrouter-clone", target_dir.trim_end_matches('/'));
    let source_dir = {
        let mut s = Admin::connect(ops, source)
            .await
            .map_err(OpError::Refused)?;
        datadir(&mut s).await?
    };
    let (source_host, source_port) = host_port(source)?;
    let (target_host, target_port) = host_port(&addr)?;

    // 1. The stream, from the source's host into the target's stage directory.
    say(format!(
        "streaming a physical backup of {source} ({source_dir}) into {target_host}:{stage}"
    ));
    let mut receive = on_host(
        ops,
        &target_host,
        &format!(
            "rm -rf {s} && mkdir -p {s} && exec mbstream -x -C {s}",
            s = quote(&stage)
        ),
    )?;
    receive
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut receiver = receive
        .spawn()
        .map_err(|e| OpError::Failed(format!("cannot run the receiving shell: {e}")))?;
    let mut backup_args =
        format!(
        "read -r MYSQL_PWD && export MYSQL_PWD && exec mariadb-backup --backup --stream=mbstream \
         --target-dir={tmp} --datadir={dir} --host={host} --port={port} --user={user}",
        tmp = quote(&format!("{}.dbrouter-backup-tmp", source_dir.trim_end_matches('/'))),
        dir = quote(&source_dir),
        host = quote(&source_host),
        port = source_port,
        user = quote(&ops.admin_user),
    );
    if !from_master {
        // The standby's position in its master's stream, taken while commits are blocked.
        backup_args.push_str(" --slave-info --safe-slave-backup");
    }
    if let Some(tls) = &ops.tls {
        backup_args.push_str(&format!(
            " --ssl-ca={}",
            quote(&tls.ca_file.to_string_lossy())
        ));
        if let (Some(cert), Some(key)) = (&tls.cert_file, &tls.key_file) {
            backup_args.push_str(&format!(
                " --ssl-cert={} --ssl-key={}",
                quote(&cert.to_string_lossy()),
                quote(&key.to_string_lossy())
            ));
        }
    }
    let mut backup = on_host(ops, &source_host, &backup_args)?;
    backup
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut backer = backup.spawn().map_err(|e| {
        OpError::Failed(format!(
            "cannot run mariadb-backup (package mariadb-backup): {e}"
        ))
    })?;
    if let Some(mut stdin) = backer.stdin.take() {
        let line = format!("{}\n", ops.admin_password);
        // A write error means mariadb-backup is gone: its exit status says why.
        let _ = stdin.write_all(line.as_bytes()).await;
    }
    let backup_log = drain(backer.stderr.take());
    let receive_log = drain(receiver.stderr.take());
    let streamed = pump(&mut backer, &mut receiver, estimate, say).await;
    let backed_up = backer.wait().await;
    drop(receiver.stdin.take());
    let received = receiver.wait().await;
    let backup_log = backup_log.await.unwrap_or_default();
    let receive_log = receive_log.await.unwrap_or_default();
    let bytes = streamed?;
    if !backed_up.map(|s| s.success()).unwrap_or(false) {
        return Err(OpError::Failed(format!(
            "mariadb-backup on {source_host} failed: {}",
            tail(&backup_log)
        )));
    }
    if !received.map(|s| s.success()).unwrap_or(false) {
        return Err(OpError::Failed(format!(
            "mbstream on {target_host} failed: {}",
            tail(&receive_log)
        )));
    }
    let gtid = backup_position(ops, &target_host, &stage, from_master).await?;
    say(format!(
        "received {bytes} bytes; the backup is at GTID {gtid}"
    ));

    // 2. The restore: the target stopped, the backup prepared and moved in, started.
    let fill = |template: &str| {
        template
            .replace("{host}", &target_host)
            .replace("{port}", &target_port.to_string())
            .replace("{datadir}", &target_dir)
    };
    say(format!("stopping {addr} for the restore"));
    run_on_host(
        ops,
        &target_host,
        &fill(&ops.clone.stop_server),
        "stop_server",
    )
    .await?;
    wait_stopped(&addr, ops.timeout.max(Duration::from_secs(60))).await?;
    say(format!(
        "preparing the backup and moving it into {target_dir}"
    ));
    let restore = format!(
        "set -e; d={d}; s={s}; test -d \"$d/mysql\"; \
         mariadb-backup --prepare --target-dir=\"$s\"; \
         owner=$(stat -c %u:%g \"$d\"); \
         find \"$d\" -mindepth 1 -delete; \
         mariadb-backup --move-back --target-dir=\"$s\" --datadir=\"$d\"; \
         chown -R \"$owner\" \"$d\"; rm -rf \"$s\"",
        d = quote(&target_dir),
        s = quote(&stage),
    );
    run_on_host(ops, &target_host, &restore, "the restore").await?;
    say(format!("starting {addr}"));
    run_on_host(
        ops,
        &target_host,
        &fill(&ops.clone.start_server),
        "start_server",
    )
    .await?;
    *target = wait_started(
        ops,
        &addr,
        Duration::from_millis(ops.clone.start_timeout_ms),
    )
    .await?;
    // The restored server has no binary log of its own yet, but one kept outside the data
    // directory would survive: its transactions must never be served to anyone.
    for sql in [
        "SET GLOBAL read_only = ON",
        "STOP SLAVE",
        "RESET SLAVE ALL",
        "SET SESSION sql_log_bin = 0",
        "RESET MASTER",
    ] {
        target.exec(sql).await.map_err(OpError::Failed)?;
    }
    Ok((gtid, bytes))
}

/// `@@datadir` of a server.
async fn datadir(admin: &mut Admin) -> Result<String, OpError> {
    admin
        .value("SELECT @@datadir")
        .await
        .map_err(OpError::Failed)?
        .filter(|d| !d.is_empty())
        .ok_or_else(|| OpError::Failed(format!("{} names no data directory", admin.addr)))
}

/// A POSIX shell word for `text` (single-quoted).
pub(crate) fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// `script` run by `sh -c` on `host`: here, or through `[clone] shell` (the script is its
/// last argument; ssh hands it to the remote login shell as one command line).
fn on_host(ops: &Ops, host: &str, script: &str) -> Result<Command, OpError> {
    let shell = ops.clone.shell.trim();
    let mut cmd = if shell.is_empty() {
        let mut c = Command::new("sh");
        c.arg("-c").arg(script);
        c
    } else {
        let mut words = shell.split_whitespace().map(|w| w.replace("{host}", host));
        let program = words
            .next()
            .ok_or_else(|| OpError::Refused("[clone] shell is empty".into()))?;
        let mut c = Command::new(program);
        c.args(words).arg(format!("sh -c {}", quote(script)));
        c
    };
    cmd.kill_on_drop(true);
    Ok(cmd)
}

/// Runs `script` on `host` to its end; an error names `what` and the output's tail.
async fn run_on_host(ops: &Ops, host: &str, script: &str, what: &str) -> Result<(), OpError> {
    let out = on_host(ops, host, script)?
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| OpError::Failed(format!("{what} on {host}: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        let mut text = String::from_utf8_lossy(&out.stderr).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stdout));
        Err(OpError::Failed(format!(
            "{what} on {host} failed ({}): {}",
            out.status,
            tail(&text)
        )))
    }
}

/// Copies the backup's stream into the receiver, reporting progress.
async fn pump(
    backer: &mut tokio::process::Child,
    receiver: &mut tokio::process::Child,
    estimate: u64,
    say: &mut (dyn FnMut(String) + Send),
) -> Result<u64, OpError> {
    let mut from = backer
        .stdout
        .take()
        .ok_or_else(|| OpError::Failed("mariadb-backup has no output".into()))?;
    let to = receiver
        .stdin
        .as_mut()
        .ok_or_else(|| OpError::Failed("mbstream has no input".into()))?;
    let ends = ("the backup stream", "the backup stream");
    copy_with_progress(&mut from, to, estimate, ends, say).await
}

/// Reads a child's stderr to the end in a task of its own (a full pipe would stall it).
fn drain(stream: Option<tokio::process::ChildStderr>) -> tokio::task::JoinHandle<String> {
    tokio::spawn(async move {
        let mut text = Vec::new();
        if let Some(mut s) = stream {
            let _ = s.read_to_end(&mut text).await;
        }
        String::from_utf8_lossy(&text).into_owned()
    })
}

/// The last lines of a command's output, on one line.
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let from = lines.len().saturating_sub(ERROR_TAIL_LINES);
    lines.get(from..).unwrap_or_default().join(" | ")
}

/// The GTID position of the received backup: `xtrabackup_slave_info`'s `gtid_slave_pos`
/// for a standby's backup, `xtrabackup_binlog_info`'s third column for the master's.
async fn backup_position(
    ops: &Ops,
    host: &str,
    stage: &str,
    from_master: bool,
) -> Result<GtidPos, OpError> {
    let file = if from_master {
        "xtrabackup_binlog_info"
    } else {
        "xtrabackup_slave_info"
    };
    let out = on_host(
        ops,
        host,
        &format!("cat {}", quote(&format!("{stage}/{file}"))),
    )?
    .stdin(Stdio::null())
    .output()
    .await
    .map_err(|e| OpError::Failed(format!("reading {file} on {host}: {e}")))?;
    let text = String::from_utf8_lossy(&out.stdout);
    parse_position(&text, from_master).ok_or_else(|| {
        OpError::Failed(format!(
            "the backup names no GTID position in {stage}/{file} ({:?}): is the source's binary log on, does it replicate with GTIDs?",
            text.trim()
        ))
    })
}

/// Parses `xtrabackup_binlog_info` (`file<TAB>pos<TAB>gtid`) or `xtrabackup_slave_info`
/// (`SET GLOBAL gtid_slave_pos = '…';`).
fn parse_position(text: &str, binlog_info: bool) -> Option<GtidPos> {
    let gtid = if binlog_info {
        text.lines().next()?.split_whitespace().nth(2)?.to_string()
    } else {
        text.lines()
            .find(|l| l.contains("gtid_slave_pos"))?
            .split('\'')
            .nth(1)?
            .to_string()
    };
    GtidPos::parse(&gtid).filter(|g| !g.domains.is_empty())
}

/// Waits until nothing answers at `addr` any more (the server is down).
async fn wait_stopped(addr: &str, limit: Duration) -> Result<(), OpError> {
    let deadline = Instant::now() + limit;
    loop {
        let open =
            tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(addr))
                .await
                .map(|c| c.is_ok())
                .unwrap_or(false);
        if !open {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(OpError::Failed(format!(
                "{addr} still accepts connections {} s after stop_server: nothing was changed; check [clone] stop_server",
                limit.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until the restored server accepts the admin account again.
async fn wait_started(ops: &Ops, addr: &str, limit: Duration) -> Result<Admin, OpError> {
    let deadline = Instant::now() + limit;
    loop {
        match Admin::connect(ops, addr).await {
            Ok(admin) => return Ok(admin),
            Err(e) if Instant::now() >= deadline => {
                return Err(OpError::Failed(format!(
                    "{addr} does not answer {} s after start_server ({e}): its data directory holds the restored copy; start it and run the command again with --wipe",
                    limit.as_secs()
                )))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(300)).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_read_from_both_info_files() {
        let binlog = "bin.000002\t336\t0-11-26715\n";
        assert_eq!(
            parse_position(binlog, true).map(|g| g.to_string()),
            Some("0-11-26715".to_string())
        );
        let slave = "SET GLOBAL gtid_slave_pos = '0-11-26715,1-2-3';\nCHANGE MASTER TO master_use_gtid = slave_pos;\n";
        assert_eq!(
            parse_position(slave, false).map(|g| g.to_string()),
            Some("0-11-26715,1-2-3".to_string())
        );
        assert!(parse_position("", true).is_none());
        assert!(parse_position("bin.000001\t4\n", true).is_none());
        assert!(parse_position("SET GLOBAL gtid_slave_pos = '';", false).is_none());
    }

    #[test]
    fn shell_words_are_quoted() {
        assert_eq!(quote("/var/lib/mysql"), "'/var/lib/mysql'");
        assert_eq!(quote("a'b"), r"'a'\''b'");
        assert_eq!(tail("a\n\nb\nc\n"), "a | b | c");
    }
}
