//! A Redis Cluster of a test's own: masters (and replicas) as `redis-server` processes on free
//! ports with their files in a temporary directory, joined by `redis-cli --cluster create`.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a node may be unreachable before the cluster fails it over. Short, so that a
/// failover test takes seconds.
const NODE_TIMEOUT_MS: &str = "1000";

struct Node {
    port: u16,
    process: Option<Child>,
    /// Stopped (SIGSTOP): it holds its connections and answers nothing, as a hung host does.
    frozen: bool,
}

pub struct RedisCluster {
    nodes: Vec<Node>,
    _dir: tempfile::TempDir,
}

/// A free port whose cluster bus port (+10000) is free too.
fn free_port() -> u16 {
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        if port < 55_000 && std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

fn wait_until(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ready() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `redis-cli -p port args…`; returns its output.
fn cli(port: u16, args: &[&str]) -> String {
    let output = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli is required for this test");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

impl RedisCluster {
    /// Three masters, each with `replicas` replicas, every slot covered.
    pub fn start(replicas: usize) -> RedisCluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut nodes = Vec::new();
        for _ in 0..3 * (1 + replicas) {
            let port = free_port();
            let process = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .args(["--cluster-enabled", "yes", "--cluster-config-file", &format!("nodes-{port}.conf")])
                .args(["--cluster-node-timeout", NODE_TIMEOUT_MS])
                .arg("--dir")
                .arg(dir.path())
                .stdout(Stdio::null())
                .spawn()
                .expect("redis-server is required for this test");
            nodes.push(Node { port, process: Some(process), frozen: false });
        }
        for node in &nodes {
            wait_until("redis-server did not start", Duration::from_secs(10), || {
                std::net::TcpStream::connect(("127.0.0.1", node.port)).is_ok()
            });
        }
        let addresses: Vec<String> = nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect();
        let created = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdout(Stdio::null())
            .status()
            .expect("redis-cli is required for this test");
        assert!(created.success(), "redis-cli --cluster create failed");
        let cluster = RedisCluster { nodes, _dir: dir };
        cluster.wait_until_healthy();
        // A replica can take over only once it is in sync with its master.
        wait_until("the replicas did not sync", Duration::from_secs(30), || {
            cluster.running().all(|port| {
                let info = cli(port, &["info", "replication"]);
                info.contains("role:master") || info.contains("master_link_status:up")
            })
        });
        cluster
    }

    /// Waits until every running node sees every slot served, and no node only suspected of
    /// failing (a failure being decided).
    pub fn wait_until_healthy(&self) {
        wait_until("the cluster did not become healthy", Duration::from_secs(30), || {
            self.running().all(|port| {
                cli(port, &["cluster", "info"]).contains("cluster_state:ok")
                    && !cli(port, &["cluster", "nodes"]).contains("fail?")
            })
        });
    }

    /// Waits until the cluster has declared `port` failed and a replica serves its slots.
    pub fn wait_for_failover(&self, port: u16) {
        let address = format!("127.0.0.1:{port}@");
        wait_until("the cluster did not fail over", Duration::from_secs(30), || {
            self.running().all(|node| {
                cli(node, &["cluster", "nodes"])
                    .lines()
                    .any(|l| l.contains(&address) && l.contains("fail") && !l.contains("fail?"))
            })
        });
        self.wait_until_healthy();
    }

    /// The nodes that answer.
    fn running(&self) -> impl Iterator<Item = u16> + '_ {
        self.nodes.iter().filter(|n| n.process.is_some() && !n.frozen).map(|n| n.port)
    }

    /// The process ids of the running nodes.
    #[allow(dead_code)] // used by tests/bench only
    pub fn pids(&self) -> Vec<u32> {
        self.nodes.iter().filter_map(|n| n.process.as_ref().map(Child::id)).collect()
    }

    /// `redis://…` of every node, comma-separated: the seed list a service is given.
    pub fn seeds(&self) -> String {
        self.nodes.iter().map(|n| format!("redis://127.0.0.1:{}", n.port)).collect::<Vec<_>>().join(",")
    }

    /// The port of the master serving the hash slot of `key`.
    pub fn master_of(&self, key: &str) -> u16 {
        let any = self.running().next().expect("a running node");
        let slot: u16 = cli(any, &["cluster", "keyslot", key]).trim().parse().expect("a slot");
        for line in cli(any, &["cluster", "nodes"]).lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if !fields[2].contains("master") || fields[2].contains("fail") {
                continue;
            }
            let serves = fields[8..].iter().any(|range| match range.split_once('-') {
                Some((from, to)) => (from.parse().unwrap()..=to.parse().unwrap()).contains(&slot),
                None => range.parse() == Ok(slot),
            });
            if serves {
                let address = fields[1].split('@').next().unwrap();
                return address.rsplit(':').next().unwrap().parse().unwrap();
            }
        }
        panic!("no master serves slot {slot}");
    }

    /// The value of `key` as the cluster answers it (following redirections), or None.
    pub fn get(&self, key: &str) -> Option<String> {
        let any = self.running().next()?;
        let answer = cli(any, &["-c", "GET", key]);
        let answer = answer.trim();
        (!answer.is_empty() && !answer.contains("ERR") && !answer.contains("CLUSTERDOWN")).then(|| answer.to_owned())
    }

    /// Stops a node without closing anything, as a host that hangs would: its connections stay
    /// open and no call to it is answered. Dropping the cluster kills it.
    pub fn freeze(&mut self, port: u16) {
        let node = self.nodes.iter_mut().find(|n| n.port == port).expect("a node of this cluster");
        let pid = node.process.as_ref().expect("a running node").id();
        let stopped = Command::new("kill").args(["-STOP", &pid.to_string()]).status().expect("kill");
        assert!(stopped.success(), "could not stop redis-server {pid}");
        node.frozen = true;
    }

    /// Kills a node as a crash would.
    pub fn kill(&mut self, port: u16) {
        let node = self.nodes.iter_mut().find(|n| n.port == port).expect("a node of this cluster");
        if let Some(mut process) = node.process.take() {
            let _ = process.kill();
            let _ = process.wait();
        }
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for port in self.nodes.iter().map(|n| n.port).collect::<Vec<_>>() {
            self.kill(port);
        }
    }
}
