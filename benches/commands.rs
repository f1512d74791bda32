//! Command benchmark: the gateway in process, `LOCKERS` simulated lockers over its embedded broker,
//! a throwaway database on `DATABASE_URL`'s server. Prints the command round trip (send → ack)
//! p50/p99 at `RATE` commands per second, then the highest rate sustained with p99 under 1 s.
//!
//!   DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres LOCKERS=2000 RATE=1000 \
//!     cargo bench --bench commands
//!
//! Not a test: it asserts nothing, it measures.

use std::sync::Arc;
use std::time::{Duration, Instant};

use firmware_protocol::DeviceId;
use locker_gateway::app::App;
use locker_gateway::device::{DeviceRegistry, NewDevice};
use simulator::mqtt::{Credentials, FleetStats, LockerConfig, Simulator};
use sqlx::migrate::MigrateDatabase;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

struct Run {
    sent: usize,
    ok: usize,
    failed: usize,
    p50_ms: f64,
    p99_ms: f64,
    achieved: f64,
}

/// Sends `rate` unlocks per second for `secs` seconds, round robin over the lockers.
async fn run(app: &Arc<App>, lockers: &[DeviceId], rate: u64, secs: u64) -> Run {
    let total = (rate * secs) as usize;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<f64, String>>(total.max(1));
    let every = Duration::from_secs_f64(1.0 / rate as f64);
    let started = Instant::now();
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for i in 0..total {
        ticker.tick().await;
        let app = app.clone();
        let device = lockers[i % lockers.len()];
        let door = (i / lockers.len() % 12) as u16 + 1;
        let tx = tx.clone();
        tokio::spawn(async move {
            let t = Instant::now();
            let result = app.commands().unlock(device, door).await;
            let _ = tx
                .send(
                    result
                        .map(|_| t.elapsed().as_secs_f64() * 1000.0)
                        .map_err(|e| e.kind().to_owned()),
                )
                .await;
        });
    }
    drop(tx);
    let mut latencies = Vec::with_capacity(total);
    let mut failed = 0;
    let mut errors = std::collections::BTreeMap::<String, usize>::new();
    while let Some(result) = rx.recv().await {
        match result {
            Ok(ms) => latencies.push(ms),
            Err(kind) => {
                failed += 1;
                *errors.entry(kind).or_default() += 1;
            }
        }
    }
    if !errors.is_empty() {
        println!("    errors: {errors:?}");
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_by(|a, b| a.total_cmp(b));
    Run {
        sent: total,
        ok: latencies.len(),
        failed,
        p50_ms: percentile(&latencies, 0.50),
        p99_ms: percentile(&latencies, 0.99),
        achieved: latencies.len() as f64 / elapsed,
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this binary without it.
    if !std::env::args().any(|a| a == "--bench") {
        println!("commands benchmark: skipped outside `cargo bench`");
        return;
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error,rumqttd=off")),
        )
        .try_init();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(bench());
}

async fn bench() {
    let server = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let (server, _) = server
        .rsplit_once('/')
        .expect("DATABASE_URL has a database part");
    let url = format!("{server}/locker_bench_commands_{}", std::process::id());
    let lockers = env_number("LOCKERS", 2000) as usize;
    let rate = env_number("RATE", 1000);
    let secs = env_number("SECONDS", 10);
    sqlx::Postgres::create_database(&url)
        .await
        .expect("create the bench database");
    let pool = locker_gateway::db::connect(&url, 32)
        .await
        .expect("database");
    let registry = DeviceRegistry::new(pool.clone());
    let devices = (1..=lockers)
        .map(|n| NewDevice {
            id: DeviceId::new(&format!("cmd-{n:05}")).expect("id"),
            model: "bench".into(),
            door_count: 12,
        })
        .collect();
    let provisioned = registry
        .provision_batch(devices)
        .await
        .expect("provisioned");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let config = locker_gateway::Config {
        mqtt_addr: addr,
        http_addr: "127.0.0.1:0".parse().expect("addr"),
        mqtt5_addr: None,
        external_broker: None,
        database_url: Some(url.clone()),
        redis_url: None,
        heartbeat: Duration::from_secs(60),
        outbox_poll: Duration::from_millis(200),
        command_deadline: Duration::from_secs(10),
        query_again: Duration::from_secs(15),
        surface_unknown: Duration::from_secs(120),
        commands_in_flight: 5_000,
    };
    let app = Arc::new(
        App::with_pool(&config, pool.clone())
            .await
            .expect("gateway"),
    );
    let stats = Arc::new(FleetStats::default());
    let credentials: Vec<_> = provisioned
        .iter()
        .map(|p| Credentials::from_secret(p.device_id, &p.secret))
        .collect();
    let mut template = LockerConfig::new(addr, credentials[0].clone());
    template.stats = stats.clone();
    let mut fleet = Simulator::default();
    for chunk in credentials.chunks(100) {
        fleet
            .lockers
            .extend(Simulator::spawn(&template, chunk.to_vec()).lockers);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ids: Vec<DeviceId> = provisioned.iter().map(|p| p.device_id).collect();
    let started = Instant::now();
    loop {
        let online: i64 = sqlx::query_scalar("SELECT count(*) FROM devices WHERE online")
            .fetch_one(&pool)
            .await
            .expect("count");
        if online as usize >= lockers {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "lockers did not come online"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "{lockers} lockers online after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let report = |label: &str| {
        let link = app.device_link().stats();
        println!(
            "    [{label}] lockers connected {}, downlinks received {}, uplinks sent {}; gateway accepted {}, rejected {}",
            stats.connected(),
            stats.received(),
            stats.sent(),
            link.accepted(),
            link.rejected()
        );
    };
    report("before");
    let r = run(&app, &ids, rate, secs).await;
    report("after");
    println!(
        "at {rate} commands/s for {secs} s: {} sent, {} executed, {} failed; round trip p50 {:.1} ms, p99 {:.1} ms; {:.0} executed/s",
        r.sent, r.ok, r.failed, r.p50_ms, r.p99_ms, r.achieved
    );
    let mut best = 0.0;
    for step in [500u64, 1000, 1500, 2000, 3000, 4000] {
        let r = run(&app, &ids, step, 5).await;
        report("step");
        println!(
            "  {step:>5}/s offered: {:.0}/s executed, p50 {:.1} ms, p99 {:.1} ms, {} failed",
            r.achieved, r.p50_ms, r.p99_ms, r.failed
        );
        if r.p99_ms > 1000.0 || r.failed * 100 > r.sent {
            break;
        }
        best = r.achieved;
    }
    println!("highest sustained rate with p99 < 1 s and < 1 % failures: {best:.0} commands/s");
    drop(fleet);
    if let Ok(app) = Arc::try_unwrap(app) {
        app.run_until_stopped(async {}).await;
    }
    let _ = sqlx::Postgres::drop_database(&url).await;
}
