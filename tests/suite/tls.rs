//! PostgreSQL and Redis reached over TLS, as managed services require: servers of the test's
//! own that take no plaintext connection at all (PostgreSQL's `hostssl` only, Redis on its TLS
//! port only), with a certificate made for the test by `openssl`.

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::harness::{TestDatabase, TestEnv, TestRedis};
use crate::postgres_pair::{free_port, hand_over, run, start, stop_now};

/// A self-signed certificate for 127.0.0.1 and its key, in `dir`.
fn certificate(dir: &Path) {
    let status = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"])
        .args(["-keyout", "key.pem", "-out", "cert.pem"])
        .current_dir(dir)
        .output()
        .expect("openssl is required for this test")
        .status;
    assert!(status.success(), "openssl could not make a certificate");
}

fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A PostgreSQL server and a Redis server that speak TLS only.
struct TlsServers {
    dir: tempfile::TempDir,
    postgres_port: u16,
    redis_port: u16,
    redis: Child,
}

impl TlsServers {
    fn start() -> TlsServers {
        let dir = tempfile::tempdir().expect("tempdir");
        certificate(dir.path());
        let data = dir.path().join("postgres");
        hand_over(dir.path());
        run("initdb", &["-D", &data.to_string_lossy(), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"]);
        for file in ["cert.pem", "key.pem"] {
            std::fs::copy(dir.path().join(file), data.join(file)).expect("copy the certificate");
        }
        let settings = "fsync = off\nssl = on\nssl_cert_file = 'cert.pem'\nssl_key_file = 'key.pem'\n";
        std::fs::write(data.join("postgresql.auto.conf"), settings).expect("write config");
        // TCP only with TLS: a plaintext connection finds no line that lets it in.
        std::fs::write(data.join("pg_hba.conf"), "local all all trust\nhostssl all all 127.0.0.1/32 trust\n")
            .expect("write pg_hba.conf");
        hand_over(dir.path());
        std::fs::set_permissions(data.join("key.pem"), std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .expect("key permissions");
        let postgres_port = free_port();
        start(&data, postgres_port, &dir.path().join("postgres.log"));

        let redis_port = free_port();
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        let redis = Command::new("redis-server")
            .args(["--port", "0", "--tls-port", &redis_port.to_string(), "--tls-auth-clients", "no"])
            .arg("--tls-cert-file")
            .arg(&cert)
            .arg("--tls-key-file")
            .arg(&key)
            .arg("--tls-ca-cert-file")
            .arg(&cert)
            .args(["--save", "", "--appendonly", "no", "--bind", "127.0.0.1"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server is required for this test");
        wait_for_port(redis_port, "redis-server");
        TlsServers { dir, postgres_port, redis_port, redis }
    }

    /// The server's `postgres` database over TLS (`sslmode=require`: encrypted, the test's own
    /// certificate not checked against a CA).
    fn postgres_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres?sslmode=require", self.postgres_port)
    }

    /// The Redis over TLS, its self-signed certificate taken as it is (`#insecure`).
    fn redis_url(&self) -> String {
        format!("rediss://127.0.0.1:{}/#insecure", self.redis_port)
    }
}

impl Drop for TlsServers {
    fn drop(&mut self) {
        let _ = self.redis.kill();
        let _ = self.redis.wait();
        stop_now(&self.dir.path().join("postgres"));
    }
}

/// The split topology on servers that take TLS only: a key made, a website added and listed,
/// an event tracked and counted, a limit decided in Redis.
#[tokio::test]
async fn the_split_services_reach_postgres_and_redis_over_tls() {
    let servers = TlsServers::start();
    let plaintext = format!("postgres://postgres@127.0.0.1:{}/postgres?sslmode=disable", servers.postgres_port);
    assert!(sqlx::PgPool::connect(&plaintext).await.is_err(), "the server takes no plaintext connection");
    let database = TestDatabase::create_on(servers.postgres_url()).await;
    let redis = TestRedis::at(servers.redis_url()).await;
    let env = TestEnv::split_on_servers(database, redis).await;

    let ann = env.user("ann").await;
    env.set_plan(&ann.team_id, "pro").await;
    let (key, _) = env.create_key(&ann, json!({ "name": "k", "permissions": ["read", "write"], "teams": "all" })).await;
    let body = json!({ "team_id": ann.team_id, "domain": "tls.example", "name": "TLS" });
    let (status, site) = env.api(Method::POST, "/websites", &key, Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{site}");
    let event = json!({ "domain": "tls.example", "name": "pageview", "url": "https://tls.example/" });
    assert_eq!(crate::harness::track(&env, &crate::harness::browser(1), event).await, StatusCode::ACCEPTED);
    let site_id = site["data"]["id"].as_str().unwrap();
    let path = format!("/stats/aggregate?site_id={site_id}&period=day&metrics=pageviews");
    let (status, body) = env.api(Method::GET, &path, &key, None).await;
    assert_eq!((status, &body["data"]["results"]["pageviews"]["value"]), (StatusCode::OK, &json!(1)), "{body}");
}
