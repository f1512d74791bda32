//! What both benchmarks share: a simulated fleet in a child process (this same binary run with
//! `--simulate`), a throwaway database, provisioning with a credentials file.

#![allow(dead_code)] // each benchmark uses part of it

use std::io::Read;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use firmware_protocol::DeviceId;
use locker_gateway::device::{DeviceRegistry, NewDevice, Provisioned};
use locker_gateway::storage::{Storage, UnitOfWork};
use sha2::{Digest, Sha256};
use simulator::mqtt::{Credentials, LockerConfig, Simulator};
use sqlx::PgPool;
use sqlx::migrate::MigrateDatabase;
use uuid::Uuid;

/// A number from the environment, or `default`.
pub fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The `p` percentile of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// This process's resident memory, in MiB.
pub fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// If this process was started as the fleet (`--simulate ...`), runs it and returns `true`.
pub fn child_mode() -> bool {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == "--simulate") {
        Some(at) => {
            simulate(&args[at + 1..]);
            true
        }
        None => false,
    }
}

/// A throwaway database on `DATABASE_URL`'s server, migrated, with a pool of `connections`.
pub async fn bench_database(name: &str, connections: u32) -> (String, PgPool) {
    let server = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let (server, _) = server
        .rsplit_once('/')
        .expect("DATABASE_URL has a database part");
    let url = format!("{server}/locker_bench_{name}_{}", std::process::id());
    sqlx::Postgres::create_database(&url)
        .await
        .expect("create the bench database");
    let pool = locker_gateway::db::connect(&url, connections)
        .await
        .expect("database");
    (url, pool)
}

/// Provisions `count` lockers of `doors` doors and writes their credentials file.
pub async fn provision(
    storage: impl Into<locker_gateway::storage::Storage>,
    count: usize,
    doors: u16,
) -> (Vec<Provisioned>, std::path::PathBuf) {
    let devices = (1..=count)
        .map(|n| NewDevice {
            id: DeviceId::new(&format!("bench-{n:05}")).expect("id"),
            model: "bench".into(),
            door_count: doors,
        })
        .collect();
    let provisioned = DeviceRegistry::new(storage)
        .provision_batch(devices)
        .await
        .expect("provisioned");
    let credentials =
        std::env::temp_dir().join(format!("locker-bench-{}.jsonl", std::process::id()));
    let lines: String = provisioned
        .iter()
        .map(|p| {
            format!(
                "{}\n",
                serde_json::json!({ "device_id": p.device_id.as_str(), "secret": p.secret.mqtt_password() })
            )
        })
        .collect();
    std::fs::write(&credentials, lines).expect("credentials file");
    (provisioned, credentials)
}

/// The child process: `--simulate BROKER CREDENTIALS ACK_DELAY_MS [CLOSE_AFTER_MS]`. Runs the lockers until its
/// standard input closes (the parent ended or killed it).
fn simulate(args: &[String]) {
    let [broker, path, ack_delay_ms, ..] = args else {
        eprintln!("usage: --simulate BROKER CREDENTIALS ACK_DELAY_MS");
        return;
    };
    let broker: SocketAddr = broker.parse().expect("broker address");
    let credentials = Credentials::read_file(path).expect("credentials");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let mut template = LockerConfig::new(broker, credentials[0].clone());
        template.ack_delay = Duration::from_millis(ack_delay_ms.parse().unwrap_or(0));
        template.close_after = args
            .get(3)
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|ms| *ms > 0)
            .map(Duration::from_millis);
        // Lockers that take firmware updates signed by this vendor key (32 KiB chunks, 1 MiB slot).
        if let Some(key) = std::env::var("LOCKER_BENCH_VENDOR_KEY")
            .ok()
            .and_then(|hex_key| hex::decode(hex_key).ok())
            .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        {
            template.updater = Some(simulator::Updater::new(vec![key], 32 * 1024, 1 << 20));
        }
        let mut fleet = Simulator::default();
        // 1,000 connections a second.
        for chunk in credentials.chunks(100) {
            fleet
                .lockers
                .extend(Simulator::spawn(&template, chunk.to_vec()).lockers);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = tokio::task::spawn_blocking(|| std::io::stdin().read_to_end(&mut Vec::new())).await;
        drop(fleet);
    });
}

/// Starts the lockers in a child process and waits until each has a session begun after now.
pub async fn start_fleet(
    storage: impl Into<locker_gateway::storage::Storage>,
    broker: SocketAddr,
    credentials: &std::path::Path,
    lockers: usize,
    ack_delay_ms: u64,
    close_after_ms: u64,
) -> Child {
    start_fleet_with(
        storage,
        broker,
        credentials,
        lockers,
        (ack_delay_ms, close_after_ms),
        &[],
    )
    .await
}

/// [`start_fleet`] with these environment variables for the child (`LOCKER_BENCH_VENDOR_KEY`:
/// the lockers take firmware updates signed by this key, hex).
pub async fn start_fleet_with(
    storage: impl Into<locker_gateway::storage::Storage>,
    broker: SocketAddr,
    credentials: &std::path::Path,
    lockers: usize,
    (ack_delay_ms, close_after_ms): (u64, u64),
    env: &[(&str, &str)],
) -> Child {
    let since: DateTime<Utc> = Utc::now();
    let child = Command::new(std::env::current_exe().expect("own path"))
        .arg("--simulate")
        .arg(broker.to_string())
        .arg(credentials)
        .arg(ack_delay_ms.to_string())
        .arg(close_after_ms.to_string())
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .spawn()
        .expect("simulator process");
    let started = Instant::now();
    let storage = storage.into();
    const ONLINE: &str = "SELECT count(*) FROM devices d WHERE online AND EXISTS (
                 SELECT 1 FROM device_sessions s
                 WHERE s.device_id = d.id AND s.session = d.session AND s.started_at >= $1)";
    loop {
        use locker_gateway::storage::Storage;
        let online: i64 = match &storage {
            Storage::Postgres(pool) => sqlx::query_scalar(ONLINE).bind(since).fetch_one(pool).await,
            Storage::Sqlite(pool) => sqlx::query_scalar(ONLINE).bind(since).fetch_one(pool).await,
        }
        .expect("count");
        if online as usize >= lockers {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "lockers did not come online"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let online_after = started.elapsed().as_secs_f64();
    // Steady state: let the first heartbeats that follow each hello drain.
    tokio::time::sleep(Duration::from_secs(10)).await;
    println!(
        "{lockers} lockers online (door answers after {ack_delay_ms} ms) in {online_after:.1} s; gateway RSS {:.0} MiB",
        rss_mib()
    );
    child
}

pub fn stop_fleet(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Users with money (and its ledger entry, so the books add up) and a bearer token each, written
/// straight into the database.
pub async fn users(storage: &Storage, count: usize) -> Vec<String> {
    const USER: &str = "INSERT INTO users (id, email, password_hash) VALUES ($1, $2, 'x')";
    const WALLET: &str = "INSERT INTO wallets (id, user_id, currency, available)
         VALUES ($1, $2, 'EUR', 100000000)";
    const LEDGER: &str = "INSERT INTO ledger (wallet_id, kind, available_delta, held_delta,
                              available_after, held_after, reference)
         VALUES ($1, 'top_up', 100000000, 0, 100000000, 0, 'bench')";
    const TOKEN: &str =
        "INSERT INTO api_tokens (token_sha256, user_id, expires_at) VALUES ($1, $2, $3)";
    let expires = chrono::Utc::now() + chrono::Duration::days(1);
    let mut work = storage.begin().await.expect("begin");
    let mut tokens = Vec::with_capacity(count);
    for n in 0..count {
        let (user, wallet) = (Uuid::now_v7(), Uuid::now_v7());
        let token = format!("lgw_{}", hex::encode(rand::random::<[u8; 32]>()));
        let digest = Sha256::digest(token.as_bytes()).to_vec();
        let email = format!("bench{n}@example.com");
        macro_rules! write {
            ($conn:expr) => {{
                sqlx::query(USER)
                    .bind(user)
                    .bind(&email)
                    .execute(&mut *$conn)
                    .await?;
                sqlx::query(WALLET)
                    .bind(wallet)
                    .bind(user)
                    .execute(&mut *$conn)
                    .await?;
                sqlx::query(LEDGER)
                    .bind(wallet)
                    .execute(&mut *$conn)
                    .await?;
                sqlx::query(TOKEN)
                    .bind(&digest)
                    .bind(user)
                    .bind(expires)
                    .execute(&mut *$conn)
                    .await
                    .map(drop)
            }};
        }
        let written: Result<(), sqlx::Error> = match &mut work {
            UnitOfWork::Postgres(tx) => async { write!(&mut **tx) }.await,
            UnitOfWork::Sqlite(tx) => async { write!(&mut **tx) }.await,
        };
        written.expect("user");
        tokens.push(token);
    }
    work.commit().await.expect("commit");
    tokens
}

/// Publishes the benchmarks' price plan for size `m` (every bench door's size).
pub async fn publish_plan(storage: &Storage) {
    let plan = locker_gateway::rental::plan::Plan {
        id: Uuid::now_v7(),
        name: "bench".into(),
        currency: "EUR".into(),
        size_class: "m".into(),
        terms: locker_gateway::rental::Terms {
            deposit: 1000,
            free_minutes: 30,
            unit_minutes: 60,
            price_per_unit: 100,
            cap_per_24h: 1000,
            max_minutes: 4320,
            overdue_price_per_unit: 500,
        },
    };
    locker_gateway::rental::plan::publish(storage, &plan)
        .await
        .expect("plan");
}
