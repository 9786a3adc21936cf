//! A PostgreSQL primary with a streaming replica of a test's own: `initdb`, `pg_basebackup -R`
//! and `pg_ctl` from the machine's PostgreSQL 15 binaries, data in temporary directories, on
//! free ports. PostgreSQL refuses to run as root, so as root the servers run as `postgres`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = "/usr/lib/postgresql/15/bin";
/// The unprivileged account the servers run as when the tests run as root.
const RUN_AS: &str = "postgres";

pub struct PostgresPair {
    pub primary_port: u16,
    pub replica_port: u16,
    dir: tempfile::TempDir,
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn is_root() -> bool {
    let output = Command::new("id").arg("-u").output().expect("id");
    String::from_utf8_lossy(&output.stdout).trim() == "0"
}

/// One of PostgreSQL's programs, to run as the unprivileged account when we are root.
fn program(name: &str) -> Command {
    let path = format!("{BIN}/{name}");
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", RUN_AS, "--", &path]);
        c
    } else {
        Command::new(&path)
    }
}

/// Runs one of PostgreSQL's programs, as the unprivileged account when we are root.
pub(crate) fn run(name: &str, args: &[&str]) {
    let output =
        program(name).args(args).output().unwrap_or_else(|e| panic!("{BIN}/{name} is required for this test: {e}"));
    assert!(
        output.status.success(),
        "{name} {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Gives a directory to the account the servers run as.
pub(crate) fn hand_over(path: &Path) {
    if is_root() {
        let status = Command::new("chown").args(["-R", RUN_AS]).arg(path).status().expect("chown");
        assert!(status.success());
    }
}

pub(crate) fn start(data: &Path, port: u16, log: &Path) {
    let options = format!("-p {port} -c listen_addresses=127.0.0.1 -k {}", data.display());
    run("pg_ctl", &["-D", &data.to_string_lossy(), "-l", &log.to_string_lossy(), "-o", &options, "-w", "start"]);
}

impl PostgresPair {
    pub fn start() -> PostgresPair {
        let dir = tempfile::tempdir().expect("tempdir");
        hand_over(dir.path());
        let (primary_port, replica_port) = (free_port(), free_port());
        let pair = PostgresPair { primary_port, replica_port, dir };
        let primary = pair.data("primary");
        run("initdb", &["-D", &primary.to_string_lossy(), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"]);
        // Fast enough for tests; replication as the default allows it.
        std::fs::write(
            primary.join("postgresql.auto.conf"),
            "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nwal_level = replica\n",
        )
        .expect("write config");
        start(&primary, primary_port, &pair.log("primary"));
        let replica = pair.data("replica");
        let port = primary_port.to_string();
        run(
            "pg_basebackup",
            &["-h", "127.0.0.1", "-p", &port, "-U", "postgres", "-D", &replica.to_string_lossy(), "-R", "-X", "stream"],
        );
        pair.start_replica();
        pair
    }

    fn data(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn log(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.log"))
    }

    pub fn primary_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.primary_port)
    }

    pub fn replica_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.replica_port)
    }

    pub fn start_replica(&self) {
        start(&self.data("replica"), self.replica_port, &self.log("replica"));
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.replica_port)).is_err() {
            assert!(Instant::now() < deadline, "the replica did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the replica at once, as a crash would.
    pub fn stop_replica(&self) {
        run("pg_ctl", &["-D", &self.data("replica").to_string_lossy(), "-m", "immediate", "stop"]);
    }
}

/// Stops the server of `data` at once, whatever state it is in (for `Drop`: nothing to assert).
pub(crate) fn stop_now(data: &Path) {
    let _ = program("pg_ctl").args(["-D", &data.to_string_lossy(), "-m", "immediate", "stop"]).output();
}

impl Drop for PostgresPair {
    fn drop(&mut self) {
        for name in ["replica", "primary"] {
            stop_now(&self.data(name));
        }
    }
}
