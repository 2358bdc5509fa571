//! Shared helpers: cluster addresses from the environment, connection options, and
//! `TestRouter`, a dbrouter process of the test's own with a tailored config;
//! `PrivateCluster`, a whole cluster of one test, with its ZooKeeper nodes
//! (`harness/ensemble.rs`), and writers that count what was acknowledged
//! (`harness/writers.rs`).

mod ensemble;
mod writers;
pub use writers::*;

use std::io::Write;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mysql_async::prelude::*;
use mysql_async::{Conn, Opts, OptsBuilder};

/// Password of the `app` account in every router config used here.
pub const APP_PASSWORD: &str = "app-secret";

/// Reads a variable exported by `scripts/dev-cluster env`.
pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the proto tests through ./scripts/test (or eval \"$(scripts/dev-cluster env)\" with a cluster up)")
    })
}

/// A numeric setting of a test from the environment (a report's rounds, sizes), `default`
/// when unset or not a number.
pub fn env_number<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `host:port` of shard 1's master.
pub fn master_addr() -> String {
    env("DBR_S1_MASTER")
}

/// `host:port` of the router started by the cluster scripts.
pub fn cluster_router_addr() -> String {
    env("DBR_ROUTER")
}

fn split(addr: &str) -> (String, u16) {
    let (h, p) = addr.rsplit_once(':').expect("host:port");
    (h.to_string(), p.parse().expect("port"))
}

/// Options for an account over TCP to the server or router at `addr` (no database).
pub fn account_opts_at(addr: &str, user: &str, password: &str) -> OptsBuilder {
    let (host, port) = split(addr);
    OptsBuilder::default()
        .ip_or_hostname(host)
        .tcp_port(port)
        .user(Some(user))
        .pass(Some(password))
        .prefer_socket(false)
}

/// Options for the `app` account through a router at `addr`.
pub fn app_opts(addr: &str, db: Option<&str>) -> OptsBuilder {
    account_opts_at(addr, "app", APP_PASSWORD).db_name(db)
}

/// Options for the `app` account directly on shard 1's master (what the router's
/// sessions act as).
pub fn app_direct_opts(db: Option<&str>) -> OptsBuilder {
    app_opts(&master_addr(), db)
}

/// Options for the admin account directly on shard 1's master.
pub fn direct_opts(db: Option<&str>) -> OptsBuilder {
    admin_opts_at(&master_addr(), db)
}

/// Options for the admin account directly on the server at `addr`.
pub fn admin_opts_at(addr: &str, db: Option<&str>) -> OptsBuilder {
    account_opts_at(addr, "dbrouter_admin", "admin-secret").db_name(db)
}

/// A direct admin connection to shard 1's master (the admin account: the router's service
/// account is restricted so that `read_only` fences it).
pub async fn direct(db: Option<&str>) -> Conn {
    Conn::new(Opts::from(direct_opts(db)))
        .await
        .expect("direct connection to the master")
}

/// Creates (or empties) a database for one test, directly on the master.
pub async fn fresh_database(name: &str) {
    let mut c = direct(None).await;
    c.query_drop(format!("DROP DATABASE IF EXISTS `{name}`"))
        .await
        .unwrap();
    c.query_drop(format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
        .await
        .unwrap();
    grant_app(&mut c, name).await;
    c.disconnect().await.unwrap();
}

/// Lets the `app` account (which sessions act as at the database) use a test database:
/// the dev cluster gives it its own database `app` only.
pub async fn grant_app(c: &mut Conn, db: &str) {
    c.query_drop(format!("GRANT ALL PRIVILEGES ON `{db}`.* TO 'app'@'%'"))
        .await
        .unwrap();
}

/// Creates a backend service account private to one test (so its connections can be
/// counted in the process list without interference from other tests).
pub async fn fresh_service_user(name: &str) {
    let mut c = direct(None).await;
    c.query_drop(format!("DROP USER IF EXISTS '{name}'@'%'"))
        .await
        .unwrap();
    c.query_drop(format!(
        "CREATE USER '{name}'@'%' IDENTIFIED BY 'svc-secret'"
    ))
    .await
    .unwrap();
    c.query_drop(format!("GRANT ALL PRIVILEGES ON *.* TO '{name}'@'%'"))
        .await
        .unwrap();
    c.disconnect().await.unwrap();
}

/// Number of backend connections the master has for `user`.
pub async fn backend_connections(user: &str) -> i64 {
    let mut c = direct(None).await;
    let n: Option<i64> = c
        .exec_first(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = ?",
            (user,),
        )
        .await
        .unwrap();
    c.disconnect().await.unwrap();
    n.unwrap_or(0)
}

/// Waits up to 10 s for the backend connection count of `user` to become `expected`.
pub async fn wait_backend_connections(user: &str, expected: i64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let n = backend_connections(user).await;
        if n == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{user} has {n} backend connections, expected {expected}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Settings of a test router; `Default` gives a working single-shard config.
pub struct RouterSettings {
    /// Backend service account. Any other than `dbrouter` is a test's private one (to
    /// count its backend connections): sessions then act as it (`[auth] identity =
    /// "service"`) instead of as the client's own account.
    pub service_user: String,
    /// Its password.
    pub service_password: String,
    /// Master address (default: shard 1's master).
    pub master: String,
    /// Extra lines for the `[server]` table.
    pub server_extra: String,
    /// Lines for the `[timeouts]` table.
    pub timeouts: String,
    /// Shards as (name, master); default: shard 1 alone.
    pub shards: Vec<(String, String)>,
    /// Standbys of each shard in `shards`, in the same order (may be shorter).
    pub standbys: Vec<Vec<String>>,
    /// The `[sharding]` table and anything after it (overrides, pool).
    pub sharding: String,
    /// More lines for the `[auth]` table (`source`, `refresh_ms`).
    pub auth: String,
    /// More `[[users]]` entries.
    pub users: String,
}

impl Default for RouterSettings {
    fn default() -> Self {
        Self {
            service_user: "dbrouter".into(),
            service_password: "dbrouter-secret".into(),
            master: master_addr(),
            server_extra: String::new(),
            timeouts: String::new(),
            shards: Vec::new(),
            standbys: Vec::new(),
            // Relay tests use tables of any name: unlisted tables are global (shard 1).
            sharding: "[sharding]\nunlisted_tables = \"global\"\n".into(),
            auth: String::new(),
            users: String::new(),
        }
    }
}

/// The router config with `[pool] mode` set from `DBR_TEST_POOL_MODE` (scripts/test runs
/// the tests once per mode); unchanged without it or when the test set a mode itself.
pub fn with_pool_mode(config: String) -> String {
    let Ok(mode) = std::env::var("DBR_TEST_POOL_MODE") else {
        return config;
    };
    let mut in_pool = false;
    let mut out = String::with_capacity(config.len() + 32);
    let mut placed = false;
    for line in config.lines() {
        if line.trim_start().starts_with('[') {
            in_pool = line.trim() == "[pool]";
        }
        if in_pool && line.trim_start().starts_with("mode") {
            return config;
        }
        out.push_str(line);
        out.push('\n');
        if line.trim() == "[pool]" && !placed {
            out.push_str(&format!("mode = \"{mode}\"\n"));
            placed = true;
        }
    }
    if !placed {
        out.push_str(&format!("\n[pool]\nmode = \"{mode}\"\n"));
    }
    out
}

/// Settings for a router over both shards of the cluster with the given `[sharding]`
/// table (and anything after it).
pub fn two_shards(sharding: &str) -> RouterSettings {
    RouterSettings {
        shards: vec![
            ("shard1".into(), master_addr()),
            ("shard2".into(), env("DBR_S2_MASTER")),
        ],
        sharding: sharding.into(),
        ..Default::default()
    }
}

/// A dbrouter process owned by one test; killed when dropped.
pub struct TestRouter {
    child: Child,
    /// `127.0.0.1:port` it listens on.
    pub addr: String,
    /// Its log file.
    pub log: PathBuf,
    /// Its config file.
    pub config_path: PathBuf,
    _dir: TempDir,
}

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// Creates a fresh directory under the system temp dir.
    pub fn new(tag: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "dbrouter-test-{tag}-{}-{}",
            std::process::id(),
            Instant::now().elapsed().as_nanos() ^ rand_u64()
        ));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("DBR_KEEP_TEST_DIRS").is_none() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn rand_u64() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// A port that was free a moment ago, never one this process handed out before (two
/// calls in a row may otherwise get the same one: the first is not bound yet).
pub fn free_port() -> u16 {
    static HANDED_OUT: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut seen = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
        if !seen.contains(&port) {
            seen.push(port);
            return port;
        }
    }
}

fn shard_tables(settings: &RouterSettings) -> String {
    let shards = if settings.shards.is_empty() {
        vec![("shard1".to_string(), settings.master.clone())]
    } else {
        settings.shards.clone()
    };
    shards
        .iter()
        .enumerate()
        .map(|(i, (name, master))| {
            let standbys = settings.standbys.get(i).map_or(String::new(), |list| {
                let quoted: Vec<String> = list.iter().map(|s| format!("\"{s}\"")).collect();
                format!("standbys = [{}]\n", quoted.join(", "))
            });
            format!("[[shards]]\nname = \"{name}\"\nmaster = \"{master}\"\n{standbys}")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

impl TestRouter {
    /// The routing table of this router's config, computed by the library.
    pub fn routing(&self) -> dbrouter::router::RoutingTable {
        let config = dbrouter::config::Config::load(&self.config_path).unwrap();
        dbrouter::topology::file::routing_table(&config).unwrap()
    }

    /// The router's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Writes a config and starts `dbrouter serve`; waits until it accepts connections.
    pub fn start(settings: RouterSettings) -> Self {
        let router = Self::spawn(settings);
        router.wait_listening(Duration::from_secs(30));
        router
    }

    /// Starts the process without waiting for it to listen.
    pub fn spawn(settings: RouterSettings) -> Self {
        Self::spawn_with_log(settings, Some("debug"))
    }

    /// [`TestRouter::spawn`] with `DBROUTER_LOG` set to `log`, or unset (the config's
    /// `[log] filter` then decides).
    pub fn spawn_with_log(settings: RouterSettings, log: Option<&str>) -> Self {
        let dir = TempDir::new("router");
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let config = format!(
            r#"
[server]
listen = "{addr}"
{server_extra}

[timeouts]
{timeouts}

[backend]
user = "{user}"
password = "{password}"

[auth]
identity = "{identity}"
{auth}

{shards}

{sharding}

[[users]]
name = "app"
mysql_native_password = "{app_native}"
caching_sha2_password = "{app_sha2}"

# These act as the `app` account at the database (an explicit mapping); `app` acts as
# itself.
[[users]]
name = "native_only"
mysql_native_password = "{native_only}"
backend_user = "app"
backend_password = "{app_password}"

[[users]]
name = "sha2_only"
caching_sha2_password = "{sha2_only}"
backend_user = "app"
backend_password = "{app_password}"

[[users]]
name = "nopass"
password = ""
backend_user = "app"
backend_password = "{app_password}"

{users}
"#,
            auth = settings.auth,
            users = settings.users,
            identity = if settings.service_user == "dbrouter" {
                "client"
            } else {
                "service"
            },
            app_password = APP_PASSWORD,
            server_extra = settings.server_extra,
            timeouts = settings.timeouts,
            user = settings.service_user,
            password = settings.service_password,
            shards = shard_tables(&settings),
            sharding = settings.sharding,
            app_native = dbrouter::protocol::auth::native_hash_string(APP_PASSWORD),
            app_sha2 = dbrouter::protocol::auth::sha2_hash_string(APP_PASSWORD),
            native_only = dbrouter::protocol::auth::native_hash_string("native-secret"),
            sha2_only = dbrouter::protocol::auth::sha2_hash_string("sha2-secret"),
        );
        let config = with_pool_mode(config);
        let config_path = dir.0.join("dbrouter.toml");
        std::fs::File::create(&config_path)
            .and_then(|mut f| f.write_all(config.as_bytes()))
            .unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_dbrouter"));
        command.args(["serve", "--config"]).arg(&config_path);
        match log {
            Some(filter) => command.env("DBROUTER_LOG", filter),
            None => command.env_remove("DBROUTER_LOG"),
        };
        let log = dir.0.join("dbrouter.log");
        let child = command
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn dbrouter");
        TestRouter {
            child,
            addr,
            log,
            config_path,
            _dir: dir,
        }
    }

    /// Waits until the port accepts TCP connections; panics with the log otherwise.
    pub fn wait_listening(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if TcpStream::connect(&self.addr).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "router did not listen on {} in time; log:\n{}",
            self.addr,
            self.log_text()
        );
    }

    /// The router's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM (graceful drain).
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit; returns its exit code (None if still running).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status.code().unwrap_or(-1));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Asserts the process is still running (it did not crash).
    pub fn assert_alive(&mut self) {
        assert!(
            self.child.try_wait().unwrap().is_none(),
            "router exited; log:\n{}",
            self.log_text()
        );
        assert!(
            !self.log_text().contains("panicked"),
            "router panicked; log:\n{}",
            self.log_text()
        );
    }

    /// Options for the `app` account through this router.
    pub fn app_opts(&self, db: Option<&str>) -> OptsBuilder {
        app_opts(&self.addr, db)
    }

    /// A connection as `app` through this router.
    pub async fn app_conn(&self, db: Option<&str>) -> Conn {
        Conn::new(Opts::from(self.app_opts(db)))
            .await
            .expect("connect through router")
    }
}

impl Drop for TestRouter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A failing test keeps its routers' logs (the temporary directory goes).
        if std::thread::panicking() {
            let kept = std::env::temp_dir().join(format!(
                "dbrouter-failed-test-{}.log",
                self.addr.replace([':', '.'], "_")
            ));
            if std::fs::copy(&self.log, &kept).is_ok() {
                eprintln!("router {} log kept in {}", self.addr, kept.display());
            }
        }
    }
}

/// The (code, SQLSTATE, message) of a server error, or a panic describing what came instead.
pub fn server_error(err: mysql_async::Error) -> (u16, String, String) {
    match err {
        mysql_async::Error::Server(e) => (e.code, e.state, e.message),
        other => panic!("expected a server error, got {other:?}"),
    }
}

/// A TCP forwarder between the router and a MariaDB server that a test can cut, to
/// simulate a backend that dies or a network that fails mid-conversation.
pub struct CutProxy {
    /// `127.0.0.1:port` to give the router as the master address.
    pub addr: String,
    cut: tokio::sync::watch::Sender<bool>,
}

impl CutProxy {
    /// Starts forwarding from `127.0.0.1:port` to `target`.
    pub async fn start_at(port: u16, target: String) -> Self {
        Self::forward(port, target, None).await
    }

    /// Starts forwarding from a fresh port to `target`, and closes a forwarded connection
    /// (both sides, without passing them on) as soon as the bytes towards `target` contain
    /// `pattern`: a server that dies just as it is sent one particular command.
    pub async fn start_cutting_on(target: String, pattern: &'static [u8]) -> Self {
        Self::forward(0, target, Some(pattern)).await
    }

    async fn forward(port: u16, target: String, cut_on: Option<&'static [u8]>) -> Self {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (cut, watch) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            let mut stop = watch.clone();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((mut inbound, _)) = accepted else { return };
                        let target = target.clone();
                        let mut stop = watch.clone();
                        tokio::spawn(async move {
                            let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await else { return };
                            match cut_on {
                                None => tokio::select! {
                                    _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                                    _ = stop.wait_for(|c| *c) => {}
                                },
                                Some(pattern) => {
                                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                                    let (mut in_r, mut in_w) = inbound.split();
                                    let (mut out_r, mut out_w) = outbound.split();
                                    let towards_target = async {
                                        let mut buf = vec![0u8; 64 * 1024];
                                        loop {
                                            let n = match in_r.read(&mut buf).await {
                                                Ok(0) | Err(_) => return,
                                                Ok(n) => n,
                                            };
                                            if buf[..n].windows(pattern.len()).any(|w| w == pattern) {
                                                return;
                                            }
                                            if out_w.write_all(&buf[..n]).await.is_err() {
                                                return;
                                            }
                                        }
                                    };
                                    tokio::select! {
                                        _ = towards_target => {}
                                        _ = tokio::io::copy(&mut out_r, &mut in_w) => {}
                                        _ = stop.wait_for(|c| *c) => {}
                                    }
                                }
                            }
                        });
                    }
                    _ = stop.wait_for(|c| *c) => return,
                }
            }
        });
        CutProxy { addr, cut }
    }

    /// Starts forwarding from a fresh port to `target`.
    pub async fn start(target: String) -> Self {
        Self::start_at(0, target).await
    }

    /// Closes every forwarded connection and stops listening.
    pub fn cut(&self) {
        let _ = self.cut.send(true);
    }
}

/// A ZooKeeper server private to one test (for outages and session expiry), on a free
/// port, started in the foreground so the test can stop, pause and restart it.
pub struct TestZk {
    child: Option<Child>,
    /// Its client port.
    pub port: u16,
    dir: TempDir,
}

impl TestZk {
    /// Starts a fresh server and waits until it answers `ruok`.
    pub fn start() -> Self {
        let dir = TempDir::new("zk");
        let port = free_port();
        std::fs::create_dir_all(dir.0.join("data")).unwrap();
        // tickTime 200 ms allows session timeouts from 0.4 s to 4 s.
        let cfg = format!(
            "tickTime=200\ninitLimit=10\nsyncLimit=5\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\nadmin.enableServer=false\n4lw.commands.whitelist=ruok,stat,srvr\nmaxClientCnxns=0\n",
            dir.0.join("data").display()
        );
        std::fs::write(dir.0.join("zoo.cfg"), cfg).unwrap();
        let mut zk = TestZk {
            child: None,
            port,
            dir,
        };
        zk.spawn();
        zk
    }

    fn spawn(&mut self) {
        let log = std::fs::File::create(self.dir.0.join("zk.log")).unwrap();
        let child = Command::new("/usr/share/zookeeper/bin/zkServer.sh")
            .arg("start-foreground")
            .arg(self.dir.0.join("zoo.cfg"))
            .env("ZOOCFGDIR", &self.dir.0)
            .env("ZOO_LOG_DIR", &self.dir.0)
            .env("HOSTNAME", format!("dbrouter-test-{}", self.port))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start zookeeper");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if self.ruok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("private zookeeper did not start on port {}", self.port);
    }

    /// Whether the server serves client requests (`srvr` answers with its version; `ruok`
    /// says imok before the server is ready).
    fn ruok(&self) -> bool {
        use std::io::Read;
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
        if s.write_all(b"srvr").is_err() {
            return false;
        }
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out.starts_with("Zookeeper version") && out.contains("Mode:")
    }

    /// `host:port` of the server.
    pub fn hosts(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Kills the server (its data stays for `restart`).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server again on the same port and data.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Freezes (SIGSTOP) or thaws (SIGCONT) the server process.
    pub fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            let status = Command::new("kill")
                .args([sig, &c.id().to_string()])
                .status()
                .unwrap();
            assert!(status.success());
        }
    }
}

impl Drop for TestZk {
    fn drop(&mut self) {
        self.signal("-CONT");
        self.stop();
    }
}

/// Runs `dbrouter ctl ARGS…` and returns (success, stdout + stderr).
pub fn ctl(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dbrouter"))
        .arg("ctl")
        .args(args)
        .output()
        .expect("run dbrouter ctl");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// A whole cluster (ZooKeeper, two shards of master + semi-sync standby) private to one
/// test, for tests that change masters or kill servers. Started by scripts/dev-cluster
/// without a router on a free port range; wiped when dropped.
pub struct PrivateCluster {
    /// Its state directory.
    pub state: PathBuf,
    /// Its port offset.
    pub offset: u16,
    /// Variables of `scripts/dev-cluster env`.
    pub vars: std::collections::HashMap<String, String>,
    /// ZooKeeper servers: 1, or 3 (an ensemble).
    pub zk_nodes: usize,
}

impl PrivateCluster {
    /// Starts one (trying a few port ranges until one is free).
    pub fn start(tag: &str) -> Self {
        Self::start_with_zk_nodes(tag, 1)
    }

    /// Starts one with `zk_nodes` ZooKeeper servers: 1, or 3 for an ensemble
    /// (`DBR_ZK_NODES=3 scripts/dev-cluster up`).
    pub fn start_with_zk_nodes(tag: &str, zk_nodes: usize) -> Self {
        assert!(zk_nodes == 1 || zk_nodes == 3, "1 or 3 ZooKeeper nodes");
        let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        for attempt in 0..10u64 {
            let seed = (std::process::id() as u64)
                .wrapping_mul(7919)
                .wrapping_add(attempt * 104_729);
            let offset = 20_000 + (seed % 200) as u16 * 100;
            let mut ports = vec![2181u16, 3311, 3312, 3321, 3322];
            if zk_nodes == 3 {
                // Client, quorum and election ports of the ensemble (scripts/dev-cluster).
                ports.extend([2182, 2183, 2888, 2889, 2890, 3891, 3892, 3893]);
            }
            if ports
                .iter()
                .any(|p| std::net::TcpListener::bind(("127.0.0.1", p + offset)).is_err())
            {
                continue;
            }
            let state =
                std::env::temp_dir().join(format!("dbr-{tag}-{}-{offset}", std::process::id()));
            let out = Command::new(repo.join("scripts/dev-cluster"))
                .arg("up")
                .env("DBR_STATE", &state)
                .env("DBR_PORT_OFFSET", offset.to_string())
                .env("DBR_ZK_NODES", zk_nodes.to_string())
                .env("DBR_NO_ROUTER", "1")
                .output()
                .expect("run scripts/dev-cluster");
            if !out.status.success() {
                let _ = Command::new(repo.join("scripts/dev-cluster"))
                    .arg("wipe")
                    .env("DBR_STATE", &state)
                    .env("DBR_PORT_OFFSET", offset.to_string())
                    .env("DBR_ZK_NODES", zk_nodes.to_string())
                    .output();
                eprintln!(
                    "private cluster at offset {offset} failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                continue;
            }
            let env_out = Command::new(repo.join("scripts/dev-cluster"))
                .arg("env")
                .env("DBR_STATE", &state)
                .env("DBR_PORT_OFFSET", offset.to_string())
                .env("DBR_ZK_NODES", zk_nodes.to_string())
                .output()
                .unwrap();
            let vars = String::from_utf8_lossy(&env_out.stdout)
                .lines()
                .filter_map(|l| l.strip_prefix("export "))
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_string(), v.trim_matches('\'').to_string()))
                .collect();
            return PrivateCluster {
                state,
                offset,
                vars,
                zk_nodes,
            };
        }
        panic!("could not start a private cluster");
    }

    /// A variable of the cluster's environment.
    pub fn var(&self, name: &str) -> String {
        self.vars
            .get(name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} missing from dev-cluster env"))
    }

    /// Router settings over this cluster's two shards, following its ZooKeeper at `root`,
    /// with the operations accounts ([admin], [failover]) and `extra` TOML.
    pub fn router_settings(&self, root: &str, extra: &str) -> RouterSettings {
        self.router_settings_with_session(root, extra, 4000)
    }

    /// `router_settings` with this ZooKeeper session timeout.
    pub fn router_settings_with_session(
        &self,
        root: &str,
        extra: &str,
        session_timeout_ms: u64,
    ) -> RouterSettings {
        RouterSettings {
            shards: vec![
                ("shard1".into(), self.var("DBR_S1_MASTER")),
                ("shard2".into(), self.var("DBR_S2_MASTER")),
            ],
            standbys: vec![vec![self.var("DBR_S1_STANDBY")], vec![self.var("DBR_S2_STANDBY")]],
            master: self.var("DBR_S1_MASTER"),
            sharding: format!(
                "[sharding]\nunlisted_tables = \"sharded\"\nglobal_shard = \"shard2\"\n\n[topology]\nsource = \"zk://{}{root}\"\nsession_timeout_ms = {session_timeout_ms}\n\n[admin]\nuser = \"dbrouter_admin\"\npassword = \"admin-secret\"\n\n[failover]\nrepl_user = \"repl\"\nrepl_password = \"repl-secret\"\ndrain_ms = 2000\nbuffer_max_ms = 15000\n{extra}\n",
                self.var("DBR_ZK")
            ),
            timeouts: "startup_ms = 30000".into(),
            ..Default::default()
        }
    }

    /// A `[clone]` table for router configs: physical copies stop and start this
    /// cluster's servers with `scripts/dev-cluster db-stop|db-start {port}`.
    pub fn clone_settings(&self) -> String {
        let dev_cluster = format!("{}/scripts/dev-cluster", env!("CARGO_MANIFEST_DIR"));
        let env = format!(
            "DBR_STATE='{}' DBR_PORT_OFFSET={}",
            self.state.display(),
            self.offset
        );
        format!(
            "\n[clone]\nstop_server = \"{env} '{dev_cluster}' db-stop {{port}}\"\nstart_server = \"{env} '{dev_cluster}' db-start {{port}}\"\n"
        )
    }

    /// The pid of a MariaDB server of this cluster (by its port).
    pub fn server_pid(&self, addr: &str) -> u32 {
        let port = addr.rsplit_once(':').unwrap().1;
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(cmd) = std::fs::read(entry.path().join("cmdline")) else {
                continue;
            };
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains("mariadbd")
                && cmd.contains(&format!("--port={port} "))
                && cmd.contains(self.state.to_str().unwrap())
            {
                return pid;
            }
        }
        panic!("no mariadbd for {addr}");
    }

    /// The full command line of a process.
    pub fn cmdline(pid: u32) -> Vec<String> {
        std::fs::read(format!("/proc/{pid}/cmdline"))
            .unwrap()
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect()
    }
}

/// Starts a crashed master again from its command line (detached, as scripts/dev-cluster
/// does), as an operator restarts one: read-only and in the slave role, so that MariaDB's
/// crash recovery truncates the transactions no standby acknowledged.
pub fn restart_in_slave_role(cmdline: &[String]) {
    let status = std::process::Command::new("setsid")
        .arg("-f")
        .args(cmdline)
        .arg("--init-rpl-role=SLAVE")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let _ = Command::new(repo.join("scripts/dev-cluster"))
            .arg("wipe")
            .env("DBR_STATE", &self.state)
            .env("DBR_PORT_OFFSET", self.offset.to_string())
            .env("DBR_ZK_NODES", self.zk_nodes.to_string())
            .output();
    }
}

/// A session context built in-process (for sessions run on in-memory pipes) over
/// `config`'s file topology, with these pools; everything else as `dbrouter serve` would
/// have it, without ZooKeeper, health checks or TLS.
pub fn in_process_context(
    config: std::sync::Arc<dbrouter::config::Config>,
    pools: std::sync::Arc<dbrouter::backend::pool::Pools>,
    server_version: &str,
) -> std::sync::Arc<dbrouter::frontend::session::SessionContext> {
    use std::sync::Arc;
    let table = dbrouter::topology::file::routing_table(&config).unwrap();
    let routing = Arc::new(arc_swap::ArcSwap::from_pointee(table));
    let sessions = dbrouter::frontend::sessions::SessionRegistry::new();
    let shared = Arc::new(arc_swap::ArcSwap::new(Arc::clone(&config)));
    Arc::new(dbrouter::frontend::session::SessionContext {
        config: Arc::clone(&shared),
        connections: dbrouter::net::Slots::new(config.server.max_connections),
        routing: Arc::clone(&routing),
        health: Arc::new(dbrouter::backend::health::HealthRegistry::default()),
        topology: dbrouter::topology::watcher::TopologyStatus::file(),
        pools: Arc::clone(&pools),
        server_version: server_version.into(),
        server_collation: 45,
        mariadb_capabilities: mysql_common::constants::MariadbCapabilities::empty(),
        drain: dbrouter::frontend::drain::DrainSignal::new(),
        held: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
        wakeups: dbrouter::topology::wakeups::WakeupQueue::disabled(),
        tls: None,
        logins: dbrouter::frontend::login_limits::LoginLimits::new(Default::default()),
        accounts: dbrouter::frontend::accounts::AccountDirectory::new(shared, Arc::clone(&routing)),
        sessions: Arc::clone(&sessions),
        killer: dbrouter::frontend::kill::Killer {
            sessions,
            routing,
            pools,
            timeout: Duration::from_secs(5),
        },
        remote_kills: None,
    })
}
