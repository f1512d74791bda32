//! Rental benchmark, in each mode (`MODES`, default `fleet,edge`): the gateway runs in this
//! process (HTTP API, embedded broker; fleet: PostgreSQL and Redis at `DATABASE_URL`/`REDIS_URL`;
//! edge: a SQLite file and door locks in the process), `LOCKERS` simulated lockers (12 doors
//! each, answering at once, a person closing each door 50 ms after it opens) in a child process.
//! `CONCURRENCY` clients rent and end (`PAUSE_MS` apart) as fast as they can for `SECONDS` over
//! HTTP; in fleet mode a bare loop then does plain PostgreSQL commits at the same concurrency for
//! as long.
//!
//!   DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres cargo bench --bench rentals
//!
//! Prints starts/s, ends/s, p50/p99 of each, the gateway's commits/s and the bare commits/s
//! (fleet), the cache's hit rate (`CACHE=off` runs with the cache turned off, to compare), and
//! at the end the modes side by side. Not a test: it asserts nothing, it measures.

#[path = "support/fleet.rs"]
mod fleet;

use std::sync::Arc;
use std::time::{Duration, Instant};

use fleet::{env_number, percentile, start_fleet, stop_fleet, users};
use locker_gateway::app::App;
use locker_gateway::storage::Storage;
use sqlx::PgPool;
use sqlx::migrate::MigrateDatabase;
use uuid::Uuid;

fn main() {
    if fleet::child_mode() {
        return;
    }
    if !std::env::args().any(|a| a == "--bench") {
        println!("rentals benchmark: skipped outside `cargo bench`");
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

async fn commits(pool: &PgPool) -> i64 {
    // Statistics are flushed by each backend at most once a second.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut conn = pool.acquire().await.expect("connection");
    let _ = sqlx::query("SELECT pg_stat_clear_snapshot()")
        .execute(&mut *conn)
        .await;
    sqlx::query_scalar(
        "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()",
    )
    .fetch_one(&mut *conn)
    .await
    .expect("commits")
}

struct Cycle {
    start_ms: f64,
    end_ms: Option<f64>,
}

/// The gateway's metrics page.
async fn scrape(http: &reqwest::Client, base: &str) -> String {
    match http.get(format!("{base}/metrics")).send().await {
        Ok(page) => page.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// The sum of a metric's series on a metrics page.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .fold(0.0, |a, b| a + b)
}

/// One mode's figures: starts/s, start p50 and p99 (ms).
struct Figures {
    mode: &'static str,
    starts_per_s: f64,
    p50: f64,
    p99: f64,
}

async fn bench() {
    let modes = std::env::var("MODES").unwrap_or_else(|_| "fleet,edge".into());
    let mut figures = Vec::new();
    for mode in modes.split(',').map(str::trim) {
        match mode {
            "fleet" => figures.push(run("fleet").await),
            "edge" => figures.push(run("edge").await),
            other => eprintln!("unknown mode {other:?} in MODES (fleet, edge)"),
        }
    }
    println!("\nrental starts, side by side:");
    println!("  mode   starts/s   start p50   start p99");
    for f in &figures {
        println!(
            "  {:<6} {:>8.0} {:>9.1} ms {:>9.1} ms",
            f.mode, f.starts_per_s, f.p50, f.p99
        );
    }
}

async fn run(mode: &'static str) -> Figures {
    println!("\n== {mode} mode");
    let lockers = env_number("LOCKERS", 100) as usize;
    let concurrency = env_number("CONCURRENCY", 16) as usize;
    let secs = env_number("SECONDS", 10);
    // How long a client waits between its rental's start and its end.
    let pause = Duration::from_millis(env_number("PAUSE_MS", 0));
    let mut config = locker_gateway::Config::load(None, |_| None).expect("defaults");
    let data = std::env::temp_dir().join(format!("locker-bench-edge-{}", std::process::id()));
    let (url, pool, storage) = if mode == "fleet" {
        let (url, pool) = fleet::bench_database("rentals", 32).await;
        config.database_url = Some(url.clone());
        config.redis_url =
            Some(std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into()));
        config.redis_prefix = format!("bench-{}:", Uuid::new_v4());
        (Some(url), Some(pool.clone()), Storage::Postgres(pool))
    } else {
        let _ = std::fs::remove_dir_all(&data);
        std::fs::create_dir_all(&data).expect("data directory");
        config.data_dir = data.clone();
        let storage = Storage::open_sqlite(&config.sqlite_path())
            .await
            .expect("SQLite");
        (None, None, storage)
    };
    let (_provisioned, credentials) = fleet::provision(storage.clone(), lockers, 12).await;
    let tokens = users(&storage, concurrency * 8).await;
    let mqtt = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr");
    config.mqtt_addr = mqtt;
    config.http_addr = "127.0.0.1:0".parse().expect("addr");
    config.rate_limits.per_ip_per_minute = 10_000_000;
    config.rate_limits.per_user_per_minute = 10_000_000;
    config.rentals.max_active = 1000;
    // CACHE=off: every plan read goes to the database (to compare).
    if std::env::var("CACHE").is_ok_and(|v| v == "off") {
        config.cache_ttl = Duration::ZERO;
    }
    let app = Arc::new(
        App::with_storage(&config, storage.clone())
            .await
            .expect("gateway"),
    );
    fleet::publish_plan(&storage).await;
    let fleet = start_fleet(storage.clone(), mqtt, &credentials, lockers, 0, 50).await;
    let base = format!("http://{}", app.http_addr());
    let http = reqwest::Client::new();
    let before = match &pool {
        Some(pool) => commits(pool).await,
        None => 0,
    };
    // The metrics recorder is the process's: what this run added is after minus before.
    let metrics_before = scrape(&http, &base).await;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(secs);
    let mut workers = tokio::task::JoinSet::new();
    for w in 0..concurrency {
        let (http, base) = (http.clone(), base.clone());
        let mine: Vec<String> = tokens
            .iter()
            .skip(w)
            .step_by(concurrency)
            .cloned()
            .collect();
        workers.spawn(async move {
            let mut cycles = Vec::new();
            let mut refused = std::collections::BTreeMap::<String, usize>::new();
            let mut n = w;
            while Instant::now() < deadline {
                let token = &mine[n % mine.len()];
                let device = format!("bench-{:05}", n % lockers + 1);
                n += concurrency;
                let t = Instant::now();
                let response = http
                    .post(format!("{base}/v1/rentals"))
                    .bearer_auth(token)
                    .json(&serde_json::json!({ "device_id": device }))
                    .send()
                    .await;
                let Ok(response) = response else { continue };
                let status = response.status().as_u16();
                let body: serde_json::Value = response.json().await.unwrap_or_default();
                let start_ms = t.elapsed().as_secs_f64() * 1000.0;
                if status != 201 {
                    *refused
                        .entry(format!("{status} {}", body["code"]))
                        .or_default() += 1;
                    continue;
                }
                let id = body["id"].as_str().unwrap_or_default().to_owned();
                tokio::time::sleep(pause).await;
                let t = Instant::now();
                let ended = http
                    .post(format!("{base}/v1/rentals/{id}/end"))
                    .bearer_auth(token)
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 200);
                cycles.push(Cycle {
                    start_ms,
                    end_ms: ended.then(|| t.elapsed().as_secs_f64() * 1000.0),
                });
            }
            (cycles, refused)
        });
    }
    let mut cycles = Vec::new();
    let mut refused = std::collections::BTreeMap::<String, usize>::new();
    while let Some(done) = workers.join_next().await {
        let (c, r) = done.expect("worker");
        cycles.extend(c);
        for (k, v) in r {
            *refused.entry(k).or_default() += v;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let after = match &pool {
        Some(pool) => commits(pool).await,
        None => 0,
    };
    let mut starts: Vec<f64> = cycles.iter().map(|c| c.start_ms).collect();
    let mut ends: Vec<f64> = cycles.iter().filter_map(|c| c.end_ms).collect();
    starts.sort_by(|a, b| a.total_cmp(b));
    ends.sort_by(|a, b| a.total_cmp(b));
    let gateway_commits = (after - before) as f64 / elapsed;
    println!(
        "{lockers} lockers × 12 doors, {concurrency} clients, {elapsed:.1} s: {} rentals started ({:.0}/s), {} ended ({:.0}/s)",
        starts.len(),
        starts.len() as f64 / elapsed,
        ends.len(),
        ends.len() as f64 / elapsed
    );
    println!(
        "  start p50 {:.1} ms, p99 {:.1} ms; end p50 {:.1} ms, p99 {:.1} ms; refused {refused:?}",
        percentile(&starts, 0.5),
        percentile(&starts, 0.99),
        percentile(&ends, 0.5),
        percentile(&ends, 0.99)
    );
    if pool.is_some() {
        println!(
            "  gateway: {gateway_commits:.0} PostgreSQL commits/s ({:.1} per started-and-ended rental)",
            (after - before) as f64 / (starts.len().max(1)) as f64
        );
    }
    // Where the time went, from the gateway's own histograms (sum / count = mean).
    {
        let text = scrape(&http, &base).await;
        let value = |name: &str| -> f64 { metric(&text, name) - metric(&metrics_before, name) };
        let hits = value("locker_cache_requests_total{result=\"hit\"}");
        let misses = value("locker_cache_requests_total{result=\"miss\"}");
        let errors = value("locker_cache_requests_total{result=\"error\"}");
        println!(
            "  cache (ttl {:?}): {hits:.0} hits, {misses:.0} misses, {errors:.0} errors: hit rate {:.1}%",
            config.cache_ttl,
            100.0 * hits / (hits + misses + errors).max(1.0)
        );
        for (what, metric) in [
            ("command round trip", "locker_command_round_trip_seconds"),
            ("uplink handling (batch)", "locker_uplink_handling_seconds"),
            ("uplink lag", "locker_uplink_lag_seconds"),
        ] {
            let (sum, count) = (
                value(&format!("{metric}_sum")),
                value(&format!("{metric}_count")),
            );
            println!(
                "  mean {what}: {:.1} ms over {count:.0}",
                1000.0 * sum / count.max(1.0)
            );
        }
    }
    stop_fleet(fleet);
    let figures = Figures {
        mode,
        starts_per_s: starts.len() as f64 / elapsed,
        p50: percentile(&starts, 0.5),
        p99: percentile(&starts, 0.99),
    };
    let _ = std::fs::remove_file(&credentials);
    let (Some(url), Some(pool)) = (url, pool) else {
        if let Ok(app) = Arc::try_unwrap(app) {
            app.run_until_stopped(async {}).await;
        }
        let _ = std::fs::remove_dir_all(&data);
        return figures;
    };
    // The bare loop: plain commits at the same concurrency, for as long.
    sqlx::query("CREATE TABLE bare (id BIGSERIAL PRIMARY KEY, v BIGINT NOT NULL)")
        .execute(&pool)
        .await
        .expect("table");
    let before = commits(&pool).await;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(secs);
    let mut loops = tokio::task::JoinSet::new();
    for w in 0..concurrency {
        let pool = pool.clone();
        loops.spawn(async move {
            let mut n = 0u64;
            while Instant::now() < deadline {
                if sqlx::query("INSERT INTO bare (v) VALUES ($1)")
                    .bind(w as i64)
                    .execute(&pool)
                    .await
                    .is_ok()
                {
                    n += 1;
                }
            }
            n
        });
    }
    let mut bare = 0u64;
    while let Some(n) = loops.join_next().await {
        bare += n.expect("loop");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let after = commits(&pool).await;
    let bare_commits = (after - before) as f64 / elapsed;
    println!(
        "  bare loop: {:.0} commits/s ({bare} inserts); gateway / bare = {:.2}",
        bare_commits,
        gateway_commits / bare_commits
    );
    if let Ok(app) = Arc::try_unwrap(app) {
        app.run_until_stopped(async {}).await;
    }
    pool.close().await;
    let _ = sqlx::Postgres::drop_database(&url).await;
    figures
}
