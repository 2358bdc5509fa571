//! The ZooKeeper nodes of a `PrivateCluster` started with three of them
//! (`PrivateCluster::start_with_zk_nodes(tag, 3)`): each node's address and mode (the
//! `srvr` four-letter word), the leader, `kill -9` of one node and its restart
//! (`scripts/dev-cluster zk-start N`), freezing one.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use super::PrivateCluster;

impl PrivateCluster {
    /// `127.0.0.1:port` of ZooKeeper node `n` (from 1).
    pub fn zk_addr(&self, n: usize) -> String {
        self.var("DBR_ZK")
            .split(',')
            .nth(n.wrapping_sub(1))
            .unwrap_or_else(|| panic!("no ZooKeeper node {n}"))
            .to_string()
    }

    /// Node `n`'s mode while it serves clients (`leader`, `follower`, `standalone`);
    /// `None` when it does not answer, or answers without a quorum.
    pub fn zk_mode(&self, n: usize) -> Option<String> {
        let mut s = TcpStream::connect(self.zk_addr(n)).ok()?;
        s.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
        s.write_all(b"srvr").ok()?;
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out.lines()
            .find_map(|l| l.strip_prefix("Mode: "))
            .map(|m| m.trim().to_string())
    }

    /// The node that leads the ensemble, waiting up to 60 s for there to be one.
    pub fn zk_leader(&self) -> usize {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let modes: Vec<Option<String>> = (1..=self.zk_nodes).map(|n| self.zk_mode(n)).collect();
            if let Some(i) = modes.iter().position(|m| m.as_deref() == Some("leader")) {
                return i + 1;
            }
            assert!(
                Instant::now() < deadline,
                "no ZooKeeper leader within 60 s: {modes:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits up to 60 s until every node serves clients (each one is in the quorum).
    pub fn wait_zk_all_serving(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let modes: Vec<Option<String>> = (1..=self.zk_nodes).map(|n| self.zk_mode(n)).collect();
            if modes.iter().all(Option::is_some) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "ZooKeeper nodes not all serving within 60 s: {modes:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn zk_dir(&self, n: usize) -> PathBuf {
        if self.zk_nodes == 1 {
            self.state.join("zookeeper")
        } else {
            self.state.join(format!("zookeeper-{n}"))
        }
    }

    /// The pid of node `n`'s server, if it runs (the java process with the node's
    /// zoo.cfg on its command line, as scripts/dev-cluster finds it).
    pub fn zk_pid(&self, n: usize) -> Option<u32> {
        let cfg = self.zk_dir(n).join("zoo.cfg");
        let cfg = cfg.to_string_lossy();
        std::fs::read_dir("/proc")
            .ok()?
            .flatten()
            .find_map(|entry| {
                let pid = entry.file_name().to_string_lossy().parse::<u32>().ok()?;
                let argv = std::fs::read(entry.path().join("cmdline")).ok()?;
                let mut args = argv.split(|b| *b == 0).map(String::from_utf8_lossy);
                let exe = args.next()?;
                if !(exe.ends_with("/java") || exe == "java") {
                    return None;
                }
                args.any(|a| a == cfg).then_some(pid)
            })
    }

    /// Kills node `n` with SIGKILL — no goodbye to its peers or its clients — and waits
    /// until the process is gone.
    pub fn zk_kill9(&self, n: usize) {
        let pid = self
            .zk_pid(n)
            .unwrap_or_else(|| panic!("ZooKeeper node {n} does not run"));
        let status = Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::path::Path::new(&format!("/proc/{pid}")).exists() {
            assert!(
                Instant::now() < deadline,
                "ZooKeeper node {n} (pid {pid}) survived kill -9"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Freezes node `n` (SIGSTOP: it still accepts TCP connections, in the kernel, but
    /// never answers — like a node cut off by the network) until the guard is dropped.
    pub fn zk_freeze(&self, n: usize) -> Frozen {
        let pid = self
            .zk_pid(n)
            .unwrap_or_else(|| panic!("ZooKeeper node {n} does not run"));
        signal(pid, "-STOP");
        Frozen(pid)
    }

    /// Starts node `n` again with `scripts/dev-cluster zk-start N`, which returns once the
    /// node serves clients (it has rejoined the quorum).
    pub fn zk_start(&self, n: usize) {
        let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let out = Command::new(repo.join("scripts/dev-cluster"))
            .args(["zk-start", &n.to_string()])
            .env("DBR_STATE", &self.state)
            .env("DBR_PORT_OFFSET", self.offset.to_string())
            .env("DBR_ZK_NODES", self.zk_nodes.to_string())
            .output()
            .expect("run scripts/dev-cluster zk-start");
        assert!(
            out.status.success(),
            "zk-start {n} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A frozen ZooKeeper node, thawed (SIGCONT) when dropped.
pub struct Frozen(u32);

impl Drop for Frozen {
    fn drop(&mut self) {
        signal(self.0, "-CONT");
    }
}

fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill {sig} {pid}");
}
