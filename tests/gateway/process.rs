//! The gateway as a child process, so a test can SIGKILL it and start it again.

use std::process::{Command, Stdio};
use std::time::Duration;

use sqlx::PgPool;

use crate::helpers::{WAIT, free_addr};

pub use crate::gateway_process::{GatewayProcess, Keeping, database_url, log_file};

/// Runs the binary with `args`, the environment cleared but for `env`; returns (exit code, stderr).
pub fn run_binary(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_locker-gateway"))
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .expect("the binary runs");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Runs the gateway binary with `args` and only `env`: its exit code, standard output and
/// standard error.
pub fn run_binary_with_output(
    args: &[&str],
    env: &[(&str, &str)],
) -> (Option<i32>, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_locker-gateway"))
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .expect("the binary runs");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_gateway_on_postgresql_without_redis_refuses_to_start_and_says_why() {
    // Two such gateways would each hold door locks in their own process.
    let (code, stderr) = run_binary(
        &["serve"],
        &[("DATABASE_URL", "postgres://postgres@127.0.0.1:1/x")],
    );
    assert_ne!(code, Some(0));
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.contains("fleet mode needs DATABASE_URL and REDIS_URL")
            && last.contains("REDIS_URL is not set"),
        "{stderr}"
    );
    // Edge mode named with a server configured: refused too.
    let (code, stderr) = run_binary(
        &["serve"],
        &[
            ("LOCKER_MODE", "edge"),
            ("REDIS_URL", "redis://127.0.0.1:1"),
        ],
    );
    assert_ne!(code, Some(0));
    assert!(stderr.contains("LOCKER_MODE=edge"), "{stderr}");
    // An administrative command in fleet mode without its database: refused, nothing written to
    // a local file instead.
    let data = std::env::temp_dir().join(format!("locker-fleet-{}", uuid::Uuid::new_v4()));
    let data_dir = data.display().to_string();
    let (code, stderr) = run_binary(
        &["device", "list"],
        &[("LOCKER_MODE", "fleet"), ("LOCKER_DATA_DIR", &data_dir)],
    );
    assert_ne!(code, Some(0));
    assert!(stderr.contains("DATABASE_URL is not set"), "{stderr}");
    assert!(!data.exists());
    // A mode that is neither.
    let (code, stderr) = run_binary(&["serve"], &[("LOCKER_MODE", "cloud")]);
    assert_ne!(code, Some(0));
    assert!(
        stderr.contains("LOCKER_MODE") && stderr.contains("edge, fleet"),
        "{stderr}"
    );
}

#[test]
fn configuration_errors_name_their_source_and_never_print_secrets() {
    let path = std::env::temp_dir().join(format!("locker-cli-{}.toml", std::process::id()));
    std::fs::write(
        &path,
        "database_url = \"postgres://app:hunter2@127.0.0.1:1/x\"\nheartbeat_secs = 0\n",
    )
    .expect("written");
    let file = path.to_string_lossy().into_owned();
    let (code, stderr) = run_binary(&["--config", &file, "migrate"], &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(&file) && stderr.contains("`heartbeat_secs`"),
        "{stderr}"
    );
    let (code, stderr) = run_binary(
        &["migrate"],
        &[("LOCKER_CONFIG", &file), ("LOCKER_HEARTBEAT_SECS", "often")],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("environment variable LOCKER_HEARTBEAT_SECS"),
        "{stderr}"
    );
    assert!(stderr.contains("often"), "{stderr}");
    // A valid file with a password: the failure to connect names the server, not the password.
    std::fs::write(
        &path,
        "database_url = \"postgres://app:hunter2@127.0.0.1:1/x\"\n",
    )
    .expect("written");
    let (code, stderr) = run_binary(&["--config", &file, "migrate"], &[]);
    assert_ne!(code, Some(0));
    assert!(stderr.contains("127.0.0.1:1"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
    let _ = std::fs::remove_file(&path);
}

#[sqlx::test]
async fn the_demo_runs_simulated_lockers_and_boards_and_healthcheck_says_ready(pool: PgPool) {
    let (mqtt, http) = (free_addr(), free_addr());
    // The demo is its own binary (the gateway does not carry the simulator), built beside the
    // gateway's by the test command (`cargo build --workspace --bins` before the tests).
    let binary =
        std::path::Path::new(env!("CARGO_BIN_EXE_locker-gateway")).with_file_name("locker-demo");
    assert!(
        binary.exists(),
        "{} is missing: run scripts/test.sh, which builds the workspace's binaries first \
         (cargo build --workspace --bins)",
        binary.display()
    );
    let mut demo = Command::new(&binary)
        .args(["--lockers", "2"])
        .env("DATABASE_URL", database_url(&pool))
        .env("REDIS_URL", crate::helpers::redis_url())
        .env(
            "LOCKER_REDIS_PREFIX",
            format!("test-{}:", uuid::Uuid::new_v4()),
        )
        .env("LOCKER_MQTT_ADDR", mqtt.to_string())
        .env("LOCKER_HTTP_ADDR", http.to_string())
        .env("LOCKER_ARGON2_MEMORY_KIB", "64")
        .env("LOCKER_ARGON2_ITERATIONS", "1")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the demo starts");
    crate::helpers::eventually(
        "both demo lockers and four serial boards online",
        || async {
            let online: Vec<String> =
                sqlx::query_scalar("SELECT id FROM devices WHERE online ORDER BY id")
                    .fetch_all(&pool)
                    .await
                    .unwrap_or_default();
            online
                == [
                    "demo-1",
                    "demo-2",
                    "demo-board-1",
                    "demo-board-2",
                    "demo-board-3",
                    "demo-board-4",
                ]
        },
    )
    .await;
    let healthcheck = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_locker-gateway"))
            .arg("healthcheck")
            .env_clear()
            .env("LOCKER_HTTP_ADDR", http.to_string())
            .output()
            .expect("runs")
    };
    let ready = healthcheck();
    assert!(ready.status.success(), "{ready:?}");
    assert!(String::from_utf8_lossy(&ready.stdout).starts_with("ready"));
    let admins: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE role = 'admin'")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(admins, 1, "the demo operator");
    let _ = demo.kill();
    let _ = demo.wait();
    let gone = healthcheck();
    assert_eq!(gone.status.code(), Some(1), "{gone:?}");
    assert!(String::from_utf8_lossy(&gone.stderr).contains("LOCKER_HTTP_ADDR"));
}

/// With nothing configured the binary runs in edge mode: its state in a SQLite file under the
/// data directory (made if missing), shared with the administrative commands, kept across a
/// restart; no PostgreSQL, no Redis.
#[tokio::test]
async fn with_nothing_configured_the_gateway_runs_in_edge_mode_on_a_sqlite_file() {
    let data = std::env::temp_dir()
        .join(format!("locker-edge-{}", uuid::Uuid::new_v4()))
        .join("data");
    let data_dir = data.display().to_string();
    // The data directory itself is made by the gateway; its parent holds the logs.
    std::fs::create_dir_all(data.parent().expect("parent")).expect("temp dir");
    let cli = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_locker-gateway"))
            .args(args)
            .env_clear()
            .env("LOCKER_DATA_DIR", &data_dir)
            .output()
            .expect("the binary runs");
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let start = || {
        let (mqtt, http) = (free_addr(), free_addr());
        let log = data.with_file_name(format!("gateway-{}.log", http.port()));
        let child = Command::new(env!("CARGO_BIN_EXE_locker-gateway"))
            .env_clear()
            .env("LOCKER_DATA_DIR", &data_dir)
            .env("LOCKER_MQTT_ADDR", mqtt.to_string())
            .env("LOCKER_HTTP_ADDR", http.to_string())
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("the gateway binary starts");
        (GatewayProcess { child, mqtt, http }, log)
    };
    let (mut gateway, log) = start();
    let said: serde_json::Value = ready(&mut gateway, &log).await;
    assert_eq!(
        (&said["sqlite"], &said["postgres"], &said["redis"]),
        (
            &serde_json::json!("ok"),
            &serde_json::json!("not_configured"),
            &serde_json::json!("not_configured")
        ),
        "{said}"
    );
    let logged = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(logged.contains("mode: edge"), "{logged}");
    assert!(data.join("gateway.sqlite").exists());
    // The CLI writes to the same file while the gateway runs.
    cli(&["device", "add", "lk-edge", "--doors", "4"]);
    assert_eq!(gateway.terminate().code(), Some(0));
    // A restart finds it.
    let (mut gateway, log) = start();
    ready(&mut gateway, &log).await;
    assert!(cli(&["device", "list"]).contains("lk-edge"));
    assert_eq!(gateway.terminate().code(), Some(0));
    let _ = std::fs::remove_dir_all(data.parent().expect("parent"));
}

/// Waits until the gateway answers `/readyz` with 200, and returns what it said.
async fn ready(gateway: &mut GatewayProcess, log: &std::path::Path) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    let url = format!("http://{}/readyz", gateway.http);
    loop {
        if let Ok(response) = reqwest::get(&url).await
            && response.status().is_success()
        {
            return response.json().await.expect("json");
        }
        if let Ok(Some(status)) = gateway.child.try_wait() {
            let output = std::fs::read_to_string(log).unwrap_or_default();
            panic!("the gateway exited with {status}:\n{output}");
        }
        assert!(tokio::time::Instant::now() < deadline, "not ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
