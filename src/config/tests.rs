//! Unit tests of the config: defaults, and errors that name the line or field; every
//! field of the example config documented (`doc_tests`).

use super::*;

const MINIMAL: &str = r#"
[server]
listen = "127.0.0.1:6033"
[backend]
user = "dbrouter"
password = "x"
[[shards]]
name = "s1"
master = "127.0.0.1:3311"
standbys = ["127.0.0.1:3312"]
[[users]]
name = "app"
password = "secret"
"#;

#[test]
fn minimal_config_loads_with_defaults() {
    let c = Config::parse(MINIMAL, Path::new("t.toml")).unwrap();
    assert_eq!(c.server.max_connections, 10_000);
    assert_eq!(c.timeouts.connect_ms, 3_000);
    assert!(c.account("app").is_some());
    assert_eq!(c.global_shard().unwrap().name, "s1");
    assert_eq!(c.backend.password(), "x");
}

#[test]
fn unknown_field_names_line() {
    let text = MINIMAL.replace("listen =", "lissen =");
    let err = Config::parse(&text, Path::new("t.toml"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("line 3"), "{err}");
    assert!(err.contains("lissen"), "{err}");
}

#[test]
fn bad_master_address_names_field() {
    let text = MINIMAL.replace("127.0.0.1:3311", "nowhere");
    let err = Config::parse(&text, Path::new("t.toml"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("shards[0].master"), "{err}");
}

#[test]
fn bad_hash_names_user() {
    let text = MINIMAL.replace("password = \"secret\"", "mysql_native_password = \"abc\"");
    let err = Config::parse(&text, Path::new("t.toml"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("users[0]"), "{err}");
}

mod doc_tests {
    use super::*;

    /// Every field the example config uses must be documented in docs/configuration.md.
    #[test]
    fn every_example_field_is_documented() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let example = std::fs::read_to_string(root.join("config/dbrouter.toml")).unwrap();
        let docs = std::fs::read_to_string(root.join("docs/configuration.md")).unwrap();
        let value: toml::Table = toml::from_str(&example).unwrap();
        let mut missing = Vec::new();
        for (section, v) in &value {
            let tables: Vec<&toml::Table> = match v {
                toml::Value::Table(t) => vec![t],
                toml::Value::Array(a) => a.iter().filter_map(|x| x.as_table()).collect(),
                _ => vec![],
            };
            let header = if v.is_array() {
                format!("`[[{section}]]`")
            } else {
                format!("`[{section}]`")
            };
            if !docs.contains(&header) {
                missing.push(header);
            }
            for key in tables.iter().flat_map(|t| t.keys()) {
                if !docs.contains(&format!("`{key}`")) {
                    missing.push(format!("{section}.{key}"));
                }
            }
        }
        assert!(
            missing.is_empty(),
            "undocumented config fields: {missing:?}"
        );
        Config::parse(&example, Path::new("config/dbrouter.toml")).unwrap();
    }
}

#[test]
fn addresses_are_host_port_and_nothing_else() {
    for good in [
        "127.0.0.1:3306",
        "db-1.example.com:3306",
        "[::1]:3306",
        "mariadb_s1:3306",
        "localhost:1",
    ] {
        assert!(check_host_port(good).is_ok(), "{good}");
    }
    for bad in [
        "127.0.0.1",
        "127.0.0.1:0",
        "127.0.0.1:65536",
        "127.0.0.1:+3306",
        "db'; DROP TABLE x; --:3306",
        "db host:3306",
        "db\n:3306",
        ":3306",
        "-db:3306",
        "db..x:3306",
        "[::1:3306",
        "::1:3306",
        "db\\:3306",
    ] {
        assert!(check_host_port(bad).is_err(), "{bad:?}");
    }
    let text = MINIMAL.replace("\"127.0.0.1:3312\"", "\"127.0.0.1:3312' OR '1\"");
    let err = Config::parse(&text, Path::new("t.toml"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("shards[0].standbys"), "{err}");
}

#[test]
fn secrets_come_inline_from_the_environment_or_a_file_and_never_into_errors() {
    let dir = std::env::temp_dir().join(format!("dbrouter-secret-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("backend.pw"), "from-file\n").unwrap();
    let config_path = dir.join("dbrouter.toml");
    let text = MINIMAL.replace("password = \"x\"", "password_file = \"backend.pw\"");
    let c = Config::parse(&text, &config_path).unwrap();
    assert_eq!(c.backend.password(), "from-file");
    // Two ways at once, or a missing file: refused, naming the field.
    let both = MINIMAL.replace(
        "password = \"x\"",
        "password = \"x\"\npassword_file = \"backend.pw\"",
    );
    let err = Config::parse(&both, &config_path).unwrap_err().to_string();
    assert!(
        err.contains("backend.password") && err.contains("exactly one"),
        "{err}"
    );
    let missing = MINIMAL.replace("password = \"x\"", "password_file = \"nope.pw\"");
    let err = Config::parse(&missing, &config_path)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("backend.password_file") && err.contains("nope.pw"),
        "{err}"
    );
    // The replication password from a file; one that would need escaping in SQL refused
    // without being shown.
    std::fs::write(dir.join("repl.pw"), "r3pl-from-file").unwrap();
    let repl = format!("{MINIMAL}\n[failover]\nrepl_password_file = \"repl.pw\"\n");
    let c = Config::parse(&repl, &config_path).unwrap();
    assert_eq!(c.failover.repl_password, "r3pl-from-file");
    std::fs::write(dir.join("repl.pw"), "it's-secret").unwrap();
    let err = Config::parse(&repl, &config_path).unwrap_err().to_string();
    assert!(
        err.contains("failover.repl_password") && err.contains("quotes"),
        "{err}"
    );
    assert!(!err.contains("it's-secret"), "{err}");
    // The admin token: long enough, from the environment.
    std::env::set_var("DBR_TEST_ADMIN_TOKEN", "0123456789abcdef-token");
    let tok = MINIMAL.replace(
        "[backend]",
        "admin_token_env = \"DBR_TEST_ADMIN_TOKEN\"\n[backend]",
    );
    let c = Config::parse(&tok, &config_path).unwrap();
    assert_eq!(c.server.admin_token(), Some("0123456789abcdef-token"));
    let short = MINIMAL.replace("[backend]", "admin_token = \"short\"\n[backend]");
    let err = Config::parse(&short, &config_path).unwrap_err().to_string();
    assert!(err.contains("admin_token") && err.contains("16"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn acting_as_the_clients_account_needs_a_native_hash_or_a_mapping() {
    let base = |users: &str, auth: &str| {
        format!(
            "[server]\nlisten = \"127.0.0.1:6033\"\n[backend]\nuser = \"svc\"\npassword = \"s\"\n\
             [[shards]]\nname = \"s1\"\nmaster = \"127.0.0.1:3306\"\n{auth}\n{users}"
        )
    };
    let sha2_only = format!(
        "[[users]]\nname = \"a\"\ncaching_sha2_password = \"{}\"\n",
        crate::protocol::auth::sha2_hash_string("pw")
    );
    let err = Config::parse(&base(&sha2_only, ""), Path::new("t.toml")).unwrap_err();
    assert!(err.to_string().contains("mysql_native_password"), "{err}");
    // Mapped to the service account (whose password is known): fine.
    let mapped = format!("{sha2_only}backend_user = \"svc\"\n");
    let c = Config::parse(&base(&mapped, ""), Path::new("t.toml")).unwrap();
    assert_eq!(
        c.backend_account("a"),
        BackendAccount::As {
            user: "svc".into(),
            password: "s".into()
        }
    );
    // Mapped to another account: its password is required.
    let other = format!("{sha2_only}backend_user = \"app_rw\"\n");
    let err = Config::parse(&base(&other, ""), Path::new("t.toml")).unwrap_err();
    assert!(err.to_string().contains("backend_password"), "{err}");
    // identity = "service": every account acts as the service account.
    let c = Config::parse(
        &base(&sha2_only, "[auth]\nidentity = \"service\"\n"),
        Path::new("t.toml"),
    )
    .unwrap();
    assert!(matches!(c.backend_account("a"), BackendAccount::As { user, .. } if user == "svc"));
    // A native account acts as itself by default.
    let native = "[[users]]\nname = \"n\"\npassword = \"pw\"\n";
    let c = Config::parse(&base(native, ""), Path::new("t.toml")).unwrap();
    assert_eq!(c.backend_account("n"), BackendAccount::Own);
}

#[test]
fn topology_source_is_file_or_a_zookeeper_url() {
    let with = |source: &str| {
        let text = format!("{MINIMAL}[topology]\nsource = \"{source}\"\n");
        Config::parse(&text, Path::new("t.toml")).map(|c| c.topology.source)
    };
    for good in [
        "file",
        "zk://127.0.0.1:2181/dbrouter/dev",
        "zk://127.0.0.1:2181,127.0.0.1:2182,127.0.0.1:2183/dbrouter/dev",
    ] {
        assert_eq!(with(good).unwrap(), good);
    }
    // Once read as "no ZooKeeper target": the router then served the file's shards.
    for bad in [
        "zk://127.0.0.1:2181",
        "zk://127.0.0.1:2181,/dbrouter/dev",
        "zookeeper://127.0.0.1:2181/dbrouter/dev",
        "Zk://h:1/x",
    ] {
        let err = with(bad).unwrap_err().to_string();
        assert!(err.contains("topology.source"), "{bad}: {err}");
    }
}

#[test]
fn zookeeper_urls_name_every_host_of_an_ensemble() {
    let url = "zk://zoo1:2181,zoo2:2181,[::1]:2183/dbrouter/prod";
    let (hosts, root) = parse_zk_url(url).unwrap();
    assert_eq!(
        (hosts, root.as_str()),
        ("zoo1:2181,zoo2:2181,[::1]:2183", "/dbrouter/prod")
    );
    // The port defaults to 2181, as in the ZooKeeper client.
    assert_eq!(parse_zk_url("zk://zoo1/x").unwrap().0, "zoo1");
    for bad in [
        "zk://h:1,/x",
        "zk://h:1,,h:2/x",
        "zk://h:1;h:2/x",
        "zk://h:0/x",
        "zk://h:65536/x",
        "zk://h:2181 ,h:2182/x",
        "zk://[::1/x",
        "zk://[::1]2181/x",
        "zk://zk://h:1/x",
    ] {
        assert!(parse_zk_url(bad).is_err(), "{bad}");
    }
}

#[test]
fn clone_commands_name_only_known_placeholders() {
    let parse = |clone: &str| {
        Config::parse(
            &format!("{MINIMAL}\n[clone]\n{clone}\n"),
            Path::new("t.toml"),
        )
    };
    let c = parse("").unwrap();
    assert_eq!(c.clone.method, CloneMethod::Logical);
    let c = parse(
        "method = \"physical\"\nshell = \"ssh -o BatchMode=yes {host}\"\nstop_server = \"svc stop {port} {datadir}\"",
    )
    .unwrap();
    assert_eq!(c.clone.method, CloneMethod::Physical);
    let err = parse("stop_server = \"stop {prot}\"")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("clone.stop_server") && err.contains("{prot}"),
        "{err}"
    );
    let err = parse("shell = \"ssh db1\"").unwrap_err().to_string();
    assert!(
        err.contains("clone.shell") && err.contains("{host}"),
        "{err}"
    );
    let err = parse("method = \"physical\"\nstart_server = \"\"")
        .unwrap_err()
        .to_string();
    assert!(err.contains("clone.method"), "{err}");
    assert!(parse("method = \"rsync\"").is_err());
}
