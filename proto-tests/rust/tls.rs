//! TLS between clients and the router, checked with the mariadb command-line client and
//! the test CA `scripts/dev-cluster` creates (`$DBR_STATE/tls`): a verified handshake,
//! clear-text clients refused where TLS is required (for everyone, or per account), TLS
//! 1.2 refused under `min_version = "1.3"`, and a certificate renewed on SIGHUP while an
//! open TLS connection goes on.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::harness::*;

fn tls_dir() -> PathBuf {
    PathBuf::from(env("DBR_STATE")).join("tls")
}

/// The router's `[server] tls` inline table for a certificate and key, plus `extra`.
fn tls_settings(cert: &Path, key: &Path, extra: &str) -> RouterSettings {
    RouterSettings {
        server_extra: format!(
            "tls = {{ cert_file = \"{}\", key_file = \"{}\"{extra} }}\n",
            cert.display(),
            key.display()
        ),
        ..Default::default()
    }
}

/// Runs the mariadb client against `addr`; returns whether it succeeded and its output.
fn mariadb(addr: &str, user: &str, password: &str, args: &[&str]) -> (bool, String) {
    let (host, port) = addr.rsplit_once(':').unwrap();
    let out = Command::new("timeout")
        .args([
            "30",
            "mariadb",
            "--no-defaults",
            "--protocol=TCP",
            "-N",
            "-B",
        ])
        .arg(format!("-h{host}"))
        .arg(format!("-P{port}"))
        .arg(format!("-u{user}"))
        .arg(format!("-p{password}"))
        .args(args)
        .output()
        .expect("run mariadb");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// `--ssl` verified against `ca`.
fn verified(ca: &Path) -> [String; 3] {
    [
        "--ssl".into(),
        format!("--ssl-ca={}", ca.display()),
        "--ssl-verify-server-cert".into(),
    ]
}

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// A CA of its own and a certificate for 127.0.0.1 signed by it, in `dir`: (ca, cert, key).
fn other_ca(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl").args(args).output().unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let p = |name: &str| dir.join(name).display().to_string();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509", "-days", "2", "-subj", "/CN=second test CA"];
    ca.extend(ec);
    let (ca_key, ca_pem) = (p("ca2.key"), p("ca2.pem"));
    ca.extend(["-keyout", &ca_key, "-out", &ca_pem]);
    run(&ca);
    let mut csr = vec!["req", "-subj", "/CN=localhost"];
    csr.extend(ec);
    let (key, csr_file) = (p("server2.key"), p("server2.csr"));
    csr.extend(["-keyout", &key, "-out", &csr_file]);
    run(&csr);
    std::fs::write(dir.join("server2.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    let (cert, ext) = (p("server2.pem"), p("server2.ext"));
    run(&[
        "x509",
        "-req",
        "-in",
        &csr_file,
        "-CA",
        &ca_pem,
        "-CAkey",
        &ca_key,
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        &ext,
        "-out",
        &cert,
    ]);
    (
        dir.join("ca2.pem"),
        dir.join("server2.pem"),
        dir.join("server2.key"),
    )
}

#[test]
fn clear_text_is_refused_under_require_secure_transport_and_tls_is_verified() {
    let dir = tls_dir();
    let mut s = tls_settings(&dir.join("server.pem"), &dir.join("server.key"), "");
    s.server_extra.push_str("require_secure_transport = true\n");
    let router = TestRouter::start(s);
    let tls = verified(&dir.join("ca.pem"));
    let (ok, out) = mariadb(
        &router.addr,
        "app",
        APP_PASSWORD,
        &[&args(&tls)[..], &["-e", "SELECT 'over tls'"]].concat(),
    );
    assert!(ok && out.contains("over tls"), "{out}");
    // TLS 1.2 is accepted by default.
    let (ok, out) = mariadb(
        &router.addr,
        "app",
        APP_PASSWORD,
        &[
            &args(&tls)[..],
            &["--tls-version=TLSv1.2", "-e", "SELECT 1"],
        ]
        .concat(),
    );
    assert!(ok, "TLS 1.2: {out}");
    // Clear text: refused before authentication, with MariaDB's code and a way out.
    let (ok, out) = mariadb(
        &router.addr,
        "app",
        APP_PASSWORD,
        &["--skip-ssl", "-e", "SELECT 1"],
    );
    assert!(
        !ok && out.contains("3159") && out.contains("insecure transport"),
        "{out}"
    );
    assert!(out.contains("--ssl"), "{out}");
    // The wrong password over TLS is still the ordinary access denied.
    let (ok, out) = mariadb(
        &router.addr,
        "app",
        "wrong",
        &[&args(&tls)[..], &["-e", "SELECT 1"]].concat(),
    );
    assert!(!ok && out.contains("1045"), "{out}");
}

#[test]
fn an_account_with_require_tls_is_refused_in_clear_text_only() {
    let dir = tls_dir();
    let mut s = tls_settings(&dir.join("server.pem"), &dir.join("server.key"), "");
    s.sharding.push_str(
        "\n[[users]]\nname = \"tls_only\"\npassword = \"tls-secret\"\nrequire_tls = true\nbackend_user = \"app\"\nbackend_password = \"app-secret\"\n",
    );
    let router = TestRouter::start(s);
    let tls = verified(&dir.join("ca.pem"));
    let (ok, out) = mariadb(
        &router.addr,
        "tls_only",
        "tls-secret",
        &["--skip-ssl", "-e", "SELECT 1"],
    );
    assert!(
        !ok && out.contains("3159") && out.contains("tls_only"),
        "{out}"
    );
    let (ok, out) = mariadb(
        &router.addr,
        "tls_only",
        "tls-secret",
        &[&args(&tls)[..], &["-e", "SELECT 'tls user'"]].concat(),
    );
    assert!(ok && out.contains("tls user"), "{out}");
    // Other accounts may still use clear text.
    let (ok, out) = mariadb(
        &router.addr,
        "app",
        APP_PASSWORD,
        &["--skip-ssl", "-e", "SELECT 'plain'"],
    );
    assert!(ok && out.contains("plain"), "{out}");
}

#[test]
fn min_version_1_3_refuses_tls_1_2() {
    let dir = tls_dir();
    let s = tls_settings(
        &dir.join("server.pem"),
        &dir.join("server.key"),
        ", min_version = \"1.3\"",
    );
    let router = TestRouter::start(s);
    let tls = verified(&dir.join("ca.pem"));
    let (ok, out) = mariadb(
        &router.addr,
        "app",
        APP_PASSWORD,
        &[
            &args(&tls)[..],
            &["--tls-version=TLSv1.2", "-e", "SELECT 1"],
        ]
        .concat(),
    );
    assert!(!ok, "TLS 1.2 was accepted: {out}");
    let (ok, out) = mariadb(
        &router.addr,
        "app",
        APP_PASSWORD,
        &[
            &args(&tls)[..],
            &["--tls-version=TLSv1.3", "-e", "SELECT 13"],
        ]
        .concat(),
    );
    assert!(ok && out.contains("13"), "{out}");
}

#[test]
fn sighup_reloads_the_certificate_and_open_connections_go_on() {
    let dir = tls_dir();
    let work = TempDir::new("tls-reload");
    let (cert, key) = (work.0.join("server.pem"), work.0.join("server.key"));
    std::fs::copy(dir.join("server.pem"), &cert).unwrap();
    std::fs::copy(dir.join("server.key"), &key).unwrap();
    let router = TestRouter::start(tls_settings(&cert, &key, ""));
    let first = verified(&dir.join("ca.pem"));
    // A TLS session open across the reload: statements fed one at a time.
    let (host, port) = router.addr.rsplit_once(':').unwrap();
    let mut open = Command::new("mariadb")
        .args(["--no-defaults", "--protocol=TCP", "-N", "-B", "-uapp"])
        .arg(format!("-p{APP_PASSWORD}"))
        .arg(format!("-h{host}"))
        .arg(format!("-P{port}"))
        .args(args(&first))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = open.stdin.take().unwrap();
    writeln!(stdin, "SELECT 'before reload';").unwrap();
    stdin.flush().unwrap();

    let (ca2, cert2, key2) = other_ca(&work.0);
    std::fs::copy(&cert2, &cert).unwrap();
    std::fs::copy(&key2, &key).unwrap();
    let hup = |pid: u32| {
        let st = Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .unwrap();
        assert!(st.success());
    };
    hup(router.pid());
    let second = verified(&ca2);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (ok, out) = mariadb(
            &router.addr,
            "app",
            APP_PASSWORD,
            &[&args(&second)[..], &["-e", "SELECT 'renewed'"]].concat(),
        );
        if ok && out.contains("renewed") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the renewed certificate was not served: {out}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // The old CA no longer verifies new connections.
    let (ok, out) = mariadb(
        &router.addr,
        "app",
        APP_PASSWORD,
        &[&args(&first)[..], &["-e", "SELECT 1"]].concat(),
    );
    assert!(!ok, "{out}");
    // A broken pair is refused on reload; the router keeps serving the last good one.
    std::fs::write(&key, "not a key").unwrap();
    hup(router.pid());
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (ok, out) = mariadb(
        &router.addr,
        "app",
        APP_PASSWORD,
        &[&args(&second)[..], &["-e", "SELECT 'still'"]].concat(),
    );
    assert!(ok && out.contains("still"), "{out}");
    let log = std::fs::read_to_string(&router.log).unwrap();
    assert!(log.contains("not reloaded"), "{log}");
    // The session opened before the reload is untouched.
    writeln!(stdin, "SELECT 'after reload';").unwrap();
    drop(stdin);
    let out = open.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("before reload") && text.contains("after reload"),
        "{text}"
    );
}

#[test]
fn a_router_with_unusable_tls_files_does_not_start() {
    let work = TempDir::new("tls-bad");
    let (cert, key) = (work.0.join("server.pem"), work.0.join("server.key"));
    std::fs::write(&cert, "garbage").unwrap();
    std::fs::copy(tls_dir().join("server.key"), &key).unwrap();
    let mut router = TestRouter::spawn(tls_settings(&cert, &key, ""));
    let status = router.wait_exit(std::time::Duration::from_secs(20));
    assert!(status.is_some_and(|code| code != 0), "the router started");
    let log = std::fs::read_to_string(&router.log).unwrap();
    assert!(
        log.contains("server.tls") && log.contains("server.pem"),
        "{log}"
    );
}

/// Router settings over shard 1 whose own connections to MariaDB use TLS with `ca`.
fn backend_tls(ca: &Path) -> RouterSettings {
    let mut s = RouterSettings {
        standbys: vec![vec![env("DBR_S1_STANDBY")]],
        ..Default::default()
    };
    s.sharding.push_str(&format!(
        "\n[backend.tls]\nca_file = \"{}\"\n\n[health]\ninterval_ms = 300\n\n[admin]\nuser = \"dbrouter_admin\"\npassword = \"admin-secret\"\n",
        ca.display()
    ));
    s
}

#[tokio::test]
async fn with_backend_tls_the_router_talks_tls_to_mariadb_everywhere() {
    use mysql_async::prelude::*;
    let router = TestRouter::start(backend_tls(&tls_dir().join("ca.pem")));
    let mut c = router.app_conn(None).await;
    // The session's backend connection (pooled, relayed) is encrypted: MariaDB says so.
    let cipher: Option<(String, String)> = c
        .query_first("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        .await
        .unwrap();
    let cipher = cipher.map(|(_, v)| v).unwrap_or_default();
    assert!(
        !cipher.is_empty(),
        "the backend connection is not encrypted"
    );
    let version: Option<(String, String)> = c
        .query_first("SHOW SESSION STATUS LIKE 'Ssl_version'")
        .await
        .unwrap();
    assert!(
        version.is_some_and(|(_, v)| v == "TLSv1.3" || v == "TLSv1.2"),
        "TLS version"
    );
    // Pooled TLS connections move between the serving threads with the sessions that
    // borrow them (re-registered in place, the TLS session kept): many short sessions.
    let mut tasks = Vec::new();
    for t in 0..8i64 {
        let opts = router.app_opts(None);
        tasks.push(tokio::spawn(async move {
            for round in 0..5i64 {
                let mut c = mysql_async::Conn::new(mysql_async::Opts::from(opts.clone()))
                    .await
                    .unwrap();
                for i in 0..10i64 {
                    let n: Option<i64> = c
                        .query_first(format!("SELECT {t} * 1000 + {round} * 100 + {i}"))
                        .await
                        .unwrap();
                    assert_eq!(n, Some(t * 1000 + round * 100 + i));
                }
                c.disconnect().await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    // The health checker (mysql_async, with the same [backend.tls]) reaches the master
    // and its standby over TLS.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let rows: Vec<(String, Option<String>)> = c.query("SHOW DBROUTER STATUS").await.unwrap();
        let servers: Vec<&String> = rows
            .iter()
            .filter(|(n, _)| n.starts_with("server."))
            .filter_map(|(_, v)| v.as_ref())
            .collect();
        if servers.len() == 2 && servers.iter().all(|v| v.contains("reachable=true")) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{servers:?}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    c.disconnect().await.unwrap();
}

#[test]
fn a_mariadb_certificate_of_another_ca_is_refused() {
    let work = TempDir::new("backend-tls-ca");
    let (ca2, _, _) = other_ca(&work.0);
    let mut s = backend_tls(&ca2);
    s.timeouts = "startup_ms = 3000".into();
    let mut router = TestRouter::spawn(s);
    let status = router.wait_exit(std::time::Duration::from_secs(30));
    assert!(status.is_some_and(|code| code != 0), "the router started");
    let log = std::fs::read_to_string(&router.log).unwrap();
    assert!(
        log.contains("TLS handshake") && log.to_lowercase().contains("certificate"),
        "{log}"
    );
}
