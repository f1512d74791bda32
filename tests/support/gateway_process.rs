//! The gateway as a child process, so a test can SIGKILL it and start it again.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sqlx::PgPool;

use crate::basics::{WAIT, free_addr, redis_url};

/// Where a gateway process keeps its state: the test's PostgreSQL database (with the shared
/// Redis), or the SQLite file in a data directory.
pub enum Keeping {
    /// Fleet mode.
    Fleet(PgPool),
    /// Edge mode, in this data directory.
    Edge(std::path::PathBuf),
}

/// A running `locker-gateway serve`.
pub struct GatewayProcess {
    pub child: Child,
    pub mqtt: SocketAddr,
    pub http: SocketAddr,
}

/// The URL of the test's own database (`#[sqlx::test]` made it), from `DATABASE_URL`'s server.
pub fn database_url(pool: &PgPool) -> String {
    let base = std::env::var("DATABASE_URL").expect("DATABASE_URL is set by scripts/test.sh");
    let database = pool
        .connect_options()
        .get_database()
        .expect("the test pool names its database")
        .to_owned();
    let (server, _) = base
        .rsplit_once('/')
        .expect("DATABASE_URL has a database part");
    format!("{server}/{database}")
}

/// Where a gateway process started on these ports writes its log.
pub fn log_file(mqtt: SocketAddr, http: SocketAddr) -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "locker-gateway-{}-{}.log",
        mqtt.port(),
        http.port()
    ))
}

impl GatewayProcess {
    /// Starts the gateway on `mqtt` (a free port if `None`) and waits until it listens.
    pub async fn start(pool: &PgPool, mqtt: Option<SocketAddr>) -> Self {
        let keeping = Keeping::Fleet(pool.clone());
        match mqtt {
            Some(mqtt) => Self::start_on(&keeping, mqtt, free_addr(), &[]).await,
            // Ports of our own choosing: a conflict moves to other free ones.
            None => Self::start_inner(&keeping, free_addr(), free_addr(), &[], true).await,
        }
    }

    /// Starts the gateway on these ports with these extra environment variables.
    pub async fn start_with(
        pool: &PgPool,
        mqtt: SocketAddr,
        http: SocketAddr,
        env: &[(&str, String)],
    ) -> Self {
        Self::start_on(&Keeping::Fleet(pool.clone()), mqtt, http, env).await
    }

    /// Starts the gateway keeping its state where `keeping` says, on these ports, with these
    /// extra environment variables.
    pub async fn start_on(
        keeping: &Keeping,
        mqtt: SocketAddr,
        http: SocketAddr,
        env: &[(&str, String)],
    ) -> Self {
        Self::start_inner(keeping, mqtt, http, env, false).await
    }

    /// As `start_on`; with `movable`, a port found taken (a "free" port another process took
    /// since, such as an outgoing connection's) is given up for other free ones.
    async fn start_inner(
        keeping: &Keeping,
        mut mqtt: SocketAddr,
        mut http: SocketAddr,
        env: &[(&str, String)],
        movable: bool,
    ) -> Self {
        let mut log = log_file(mqtt, http);
        let stderr = std::fs::File::create(&log).expect("log file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_locker-gateway"));
        command
            .arg("serve")
            .env_remove("DATABASE_URL")
            .env_remove("REDIS_URL");
        match keeping {
            Keeping::Fleet(pool) => {
                command
                    .env("DATABASE_URL", database_url(pool))
                    .env("REDIS_URL", redis_url())
                    .env(
                        "LOCKER_REDIS_PREFIX",
                        format!("test-{}:", uuid::Uuid::new_v4()),
                    );
            }
            Keeping::Edge(dir) => {
                command.env("LOCKER_DATA_DIR", dir);
            }
        }
        command
            .env("LOCKER_MQTT_ADDR", mqtt.to_string())
            .env("LOCKER_HTTP_ADDR", http.to_string())
            .env("LOCKER_HEARTBEAT_SECS", "60")
            .env("LOCKER_OUTBOX_POLL_MS", "20")
            .env("LOCKER_GATEWAY_LEASE_SECS", "2")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(stderr);
        for (name, value) in env {
            command.env(name, value);
        }
        let child = command.spawn().expect("the gateway binary starts");
        let mut process = Self { child, mqtt, http };
        let deadline = tokio::time::Instant::now() + WAIT;
        // A restart on the same ports may find one briefly held (another test probing for a free
        // port): try again for a while before calling it a failure.
        let mut port_retries = 20;
        let client = reqwest::Client::new();
        loop {
            // Ready: the broker listens and the gateway's own subscription is in place (a
            // locker's hello before that would be lost).
            if tokio::net::TcpStream::connect(mqtt).await.is_ok()
                && client
                    .get(format!("http://{http}/readyz"))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
            {
                return process;
            }
            if let Ok(Some(status)) = process.child.try_wait() {
                let output = std::fs::read_to_string(&log).unwrap_or_default();
                if output.contains("cannot listen for") && port_retries > 0 {
                    port_retries -= 1;
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    if movable {
                        (mqtt, http) = (free_addr(), free_addr());
                        (process.mqtt, process.http) = (mqtt, http);
                        log = log_file(mqtt, http);
                        command
                            .env("LOCKER_MQTT_ADDR", mqtt.to_string())
                            .env("LOCKER_HTTP_ADDR", http.to_string());
                    }
                    let stderr = std::fs::File::create(&log).expect("log file");
                    command.stderr(stderr);
                    process.child = command.spawn().expect("the gateway binary starts");
                    continue;
                }
                panic!("the gateway exited with {status}:\n{output}");
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the gateway was not ready on {mqtt} and {http}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL: no shutdown, no flush.
    pub fn kill(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }

    /// SIGTERM, and wait for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        self.child.wait().expect("exited")
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
