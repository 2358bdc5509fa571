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
