//! Firmware updates (issue 24), measured.
//!
//! 1. Over MQTT: a campaign updating `LOCKERS` (1,000) simulated lockers (a child process, as in
//!    the commands benchmark) with an `IMAGE_KIB` (256) KiB image in one wave, chunks of 32 KiB;
//!    the time from the campaign's start to the last locker installed, side by side with a bare
//!    loop of the database statements the gateway makes for as many chunks (the part of the
//!    time that is the books, not the wire).
//! 2. On a serial bus at `BAUD` (9600) with four boards: the unlock round trip p50/p99 of one
//!    client for `SECONDS` (20) with no update, then while another board of the bus downloads an
//!    image in 256-byte chunks (PROTOCOL.md §11.3: an unlock waits at most one chunk exchange),
//!    and how far the download got.
//!
//!   DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres cargo bench --bench firmware
//!
//! Not a test: it asserts nothing, it measures.

#[path = "support/fleet.rs"]
mod fleet;

use std::time::{Duration, Instant};

use ed25519_dalek::{Signer, SigningKey};
use fleet::{env_number, percentile};
use locker_gateway::app::App;
use locker_gateway::firmware::campaign::{self, NewCampaign, Target};
use locker_gateway::firmware::plan::WaveSize;
use locker_gateway::firmware::{self, NewImage};
use simulator::serial::{BoardConfig, SerialKnob, spawn_bus};
use sqlx::PgPool;
use sqlx::migrate::MigrateDatabase;

fn main() {
    if fleet::child_mode() {
        return;
    }
    if !std::env::args().any(|a| a == "--bench") {
        println!("firmware benchmark: skipped outside `cargo bench`");
        return;
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error,rumqttd=off")),
        )
        .try_init();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    // PARTS=mqtt or PARTS=serial runs one part.
    let parts = std::env::var("PARTS").unwrap_or_default();
    runtime.block_on(async {
        if parts != "serial" {
            over_mqtt().await;
        }
        if parts != "mqtt" {
            on_a_serial_bus().await;
        }
    });
}

fn vendor() -> SigningKey {
    SigningKey::from_bytes(&[42; 32])
}

fn image(kib: usize) -> Vec<u8> {
    (0..kib * 1024).map(|i| (i * 131 % 251) as u8).collect()
}

fn config(url: &str) -> locker_gateway::Config {
    let mut config = locker_gateway::Config::load(None, |_| None).expect("defaults");
    config.mqtt_addr = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr");
    config.http_addr = "127.0.0.1:0".parse().expect("addr");
    config.database_url = Some(url.to_owned());
    config.firmware.keys = vec![locker_gateway::config::VendorKey {
        name: "bench".into(),
        key: vendor().verifying_key().to_bytes(),
        retire_after: None,
    }];
    config.firmware.max_bytes = 16 * 1024 * 1024;
    config.rollout_tick = Duration::from_millis(200);
    config
}

/// Uploads `bytes` as `version` for model `model` and starts a one-wave campaign of it.
async fn roll_out(
    pool: &PgPool,
    settings: &locker_gateway::config::FirmwareSettings,
    version: &str,
    bytes: &[u8],
) -> i64 {
    let storage = locker_gateway::storage::Storage::from(pool.clone());
    let hash = firmware_protocol::image::digest(bytes);
    let manifest =
        firmware_protocol::image::manifest(version, bytes.len() as u64, &hash).expect("manifest");
    let signature = vendor().sign(&manifest).to_bytes();
    let new = NewImage {
        version,
        models: vec!["bench".into()],
        bytes,
        signature: &signature,
    };
    let image = firmware::upload(&storage, settings, &new, None)
        .await
        .expect("uploaded");
    let new = NewCampaign {
        name: format!("bench {version}"),
        image_id: image.id,
        target: Target::default(),
        waves: vec![WaveSize::Percent(100)],
        success_threshold: 100,
        error_threshold: 100,
        window_start: None,
        window_end: None,
        time_zone: None,
    };
    campaign::create(&storage, &new, "UTC", None)
        .await
        .expect("campaign")
        .campaign
        .id
}

/// (installed, failed, next chunks asked in all) of campaign `id`.
async fn tally(pool: &PgPool, id: i64) -> (i64, i64, i64) {
    sqlx::query_as(
        "SELECT COALESCE(SUM(CASE WHEN state = 'installed' THEN 1 ELSE 0 END), 0),
                COALESCE(SUM(CASE WHEN state IN ('failed', 'rolled_back') THEN 1 ELSE 0 END), 0),
                COALESCE(SUM(next_chunk), 0)::BIGINT
         FROM firmware_updates WHERE campaign_id = $1",
    )
    .bind(id)
    .fetch_one(pool)
    .await
    .expect("tally")
}

async fn over_mqtt() {
    let lockers = env_number("LOCKERS", 1000) as usize;
    let kib = env_number("IMAGE_KIB", 256) as usize;
    let (url, pool) = fleet::bench_database("firmware_mqtt", 32).await;
    let (_, credentials) = fleet::provision(pool.clone(), lockers, 4).await;
    let config = config(&url);
    let addr = config.mqtt_addr;
    let app = App::with_pool(&config, pool.clone())
        .await
        .expect("gateway");
    let key = hex::encode(vendor().verifying_key().to_bytes());
    let child = fleet::start_fleet_with(
        pool.clone(),
        addr,
        &credentials,
        lockers,
        (0, 0),
        &[("LOCKER_BENCH_VENDOR_KEY", key.as_str())],
    )
    .await;
    let _ = std::fs::remove_file(&credentials);
    let bytes = image(kib);
    let started = Instant::now();
    let id = roll_out(&pool, &config.firmware, "9.0.0", &bytes).await;
    let (installed, failed) = loop {
        let (installed, failed, _) = tally(&pool, id).await;
        if (installed + failed) as usize >= lockers || started.elapsed() > Duration::from_secs(1800)
        {
            break (installed, failed);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let elapsed = started.elapsed().as_secs_f64();
    let chunks = lockers * kib.div_ceil(32);
    println!(
        "MQTT: {lockers} lockers updated with a {kib} KiB image in {elapsed:.1} s ({installed} installed, {failed} failed): {:.1} lockers/s, {chunks} chunks of 32 KiB ({:.0} chunks/s, {:.1} MB/s of image)",
        installed as f64 / elapsed,
        chunks as f64 / elapsed,
        (lockers * kib * 1024) as f64 / elapsed / 1e6,
    );
    fleet::stop_fleet(child);
    // The books' part: per chunk the gateway records the request (one UPDATE) and takes the
    // locker's next downlink counter (one UPDATE); here both, as many times, from 16 tasks.
    let update: i64 =
        sqlx::query_scalar("SELECT MIN(id) FROM firmware_updates WHERE campaign_id = $1")
            .bind(id)
            .fetch_one(&pool)
            .await
            .expect("an update");
    let bare = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..16 {
        let pool = pool.clone();
        tasks.spawn(async move {
            for i in (t..chunks).step_by(16) {
                sqlx::query(
                    "UPDATE firmware_updates SET next_chunk = $2, updated_at = now() WHERE id = $1",
                )
                .bind(update)
                .bind(i as i64)
                .execute(&pool)
                .await
                .expect("update");
                sqlx::query("UPDATE devices SET down_counter = down_counter + 1 WHERE id = $1")
                    .bind(format!("bench-{:05}", i % lockers + 1))
                    .execute(&pool)
                    .await
                    .expect("counter");
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let bare = bare.elapsed().as_secs_f64();
    println!(
        "  side by side: the same {chunks} chunks' two statements in a bare loop (16 tasks) take {bare:.2} s: the campaign took {:.1}x that",
        elapsed / bare
    );
    app.run_until_stopped(async {}).await;
    pool.close().await;
    let _ = sqlx::Postgres::drop_database(&url).await;
}

struct Run {
    latencies: Vec<f64>,
    failed: usize,
}

/// One client unlocking the doors of `device` back to back for `secs`.
async fn unlocks(app: &App, device: &str, secs: u64) -> Run {
    let device = firmware_protocol::DeviceId::new(device).expect("id");
    let deadline = Instant::now() + Duration::from_secs(secs);
    let (mut latencies, mut failed, mut door) = (Vec::new(), 0, 0u16);
    while Instant::now() < deadline {
        door = door % 4 + 1;
        let started = Instant::now();
        match app.commands().unlock(device, door).await {
            Ok(_) => latencies.push(started.elapsed().as_secs_f64() * 1000.0),
            Err(_) => failed += 1,
        }
    }
    latencies.sort_by(|a, b| a.total_cmp(b));
    Run { latencies, failed }
}

async fn on_a_serial_bus() {
    let baud = env_number("BAUD", 9600) as u32;
    let secs = env_number("SECONDS", 20);
    let kib = env_number("SERIAL_IMAGE_KIB", 256) as usize;
    let (url, pool) = fleet::bench_database("firmware_serial", 8).await;
    let (provisioned, credentials) = fleet::provision(pool.clone(), 4, 4).await;
    let _ = std::fs::remove_file(&credentials);
    let configs: Vec<BoardConfig> = provisioned
        .iter()
        .enumerate()
        .map(|(i, p)| BoardConfig {
            address: i as u8 + 1,
            device_id: p.device_id,
            key: p.secret.tag_key(),
            doors: 4,
        })
        .collect();
    let bus = spawn_bus(configs).expect("a pseudo-terminal");
    bus.turn(SerialKnob::Baud(baud)).await;
    bus.turn(SerialKnob::CloseAfter(Duration::from_millis(100)))
        .await;
    let mut config = config(&url);
    let line = (1..=4)
        .map(|a| format!("{a}:bench-{a:05}"))
        .collect::<Vec<_>>()
        .join(",");
    config.serial_buses =
        locker_gateway::serial::parse_buses(&format!("{}@{baud}={line}", bus.path())).expect("bus");
    let app = App::with_pool(&config, pool.clone())
        .await
        .expect("gateway");
    // Board 2 takes updates (it says so in the hello of its next session).
    let updater = simulator::Updater::new(vec![vendor().verifying_key().to_bytes()], 1000, 1 << 20);
    bus.turn(SerialKnob::Updater(2, Box::new(updater))).await;
    bus.turn(SerialKnob::Reboot(2)).await;
    let started = Instant::now();
    loop {
        let ready: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM devices WHERE online AND (id <> 'bench-00002' OR update_chunk IS NOT NULL)",
        )
        .fetch_one(&pool)
        .await
        .expect("count");
        if ready == 4 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "boards never came online"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let quiet = unlocks(&app, "bench-00001", secs).await;
    let id = roll_out(&pool, &config.firmware, "9.1.0", &image(kib)).await;
    let updating_from = Instant::now();
    // Wait for the download to be under way, then measure again.
    loop {
        let (_, _, next) = tally(&pool, id).await;
        if next > 0 || updating_from.elapsed() > Duration::from_secs(30) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The download alone on the bus (polls go on), then with the client unlocking back to back.
    let (_, _, idle_from) = tally(&pool, id).await;
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let (_, _, before) = tally(&pool, id).await;
    let busy = unlocks(&app, "bench-00001", secs).await;
    let (_, _, after) = tally(&pool, id).await;
    let settings = &config.serial_buses[0];
    // One chunk exchange: the chunk's frame (59 + 256 bytes for an 11-character id: 63 + 256)
    // and the board's chunk request (57), and the gap.
    let exchange = settings.transmit_time(63 + 256 + 57) + settings.gap;
    let row = |what: &str, run: &Run| {
        println!(
            "  {what}: {} unlocks, p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms, {} failed",
            run.latencies.len(),
            percentile(&run.latencies, 0.5),
            percentile(&run.latencies, 0.99),
            run.latencies.last().copied().unwrap_or(0.0),
            run.failed
        );
    };
    println!(
        "serial bus at {baud} baud, 4 boards, one client unlocking board 1 for {secs} s; board 2 downloads a {kib} KiB image in 256-byte chunks (one exchange {:.0} ms):",
        exchange.as_secs_f64() * 1000.0
    );
    row("no update", &quiet);
    row("board 2 downloading", &busy);
    let idle = (before - idle_from) as f64 / secs as f64;
    println!(
        "  the download with no command: {} chunks in {secs} s ({idle:.2}/s, {:.0} B/s): the whole image in {:.1} min",
        before - idle_from,
        idle * 256.0,
        (kib * 4) as f64 / idle.max(0.001) / 60.0,
    );
    let per_second = (after - before) as f64 / secs as f64;
    println!(
        "  the download with the client: {} chunks in {secs} s ({per_second:.2}/s, {:.0} B/s); the whole image at that pace: {:.0} min (one exchange after another: {:.1} min)",
        after - before,
        per_second * 256.0,
        (kib * 4) as f64 / per_second.max(0.001) / 60.0,
        (kib * 4) as f64 * exchange.as_secs_f64() / 60.0,
    );
    println!(
        "  p99 with the update / without: {:.2}x (+{:.0} ms; the bound is one exchange, {:.0} ms)",
        percentile(&busy.latencies, 0.99) / percentile(&quiet.latencies, 0.99).max(0.001),
        percentile(&busy.latencies, 0.99) - percentile(&quiet.latencies, 0.99),
        exchange.as_secs_f64() * 1000.0
    );
    app.run_until_stopped(async {}).await;
    drop(bus);
    pool.close().await;
    let _ = sqlx::Postgres::drop_database(&url).await;
}
