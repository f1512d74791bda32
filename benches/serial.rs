//! Serial bus benchmark: one bus of `BOARDS` (16) simulated lock boards on a pseudo-terminal
//! that behaves like a line at `BAUD` (9600: each answer waits as long as request and answer take
//! on such a line), the gateway in this process with the protocol's default gap (`GAP_MS`, 50),
//! each board polled at least every `POLL_MS` (1000) if the line allows, and one client per board
//! unlocking its doors back to back for `SECONDS` (20). Prints commands/s against the bus's own
//! limit (one exchange per gap plus the frames' time on the line; each command is an exchange
//! plus the poll that fetches its door event, and the door's closing a moment later two polls
//! more: its event, and the heartbeat that says nothing more is queued), p50/p99; one client
//! alone (latency without queueing); and one client at 1 % of the boards' bytes corrupted: the
//! share of commands that complete, and their p99.
//!
//!   DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres cargo bench --bench serial
//!
//! Not a test: it asserts nothing, it measures.

#[path = "support/fleet.rs"]
mod fleet;

use std::time::{Duration, Instant};

use fleet::{env_number, percentile};
use locker_gateway::app::App;
use simulator::serial::{BoardConfig, SerialKnob, spawn_bus};

fn main() {
    if fleet::child_mode() {
        return;
    }
    if !std::env::args().any(|a| a == "--bench") {
        println!("serial benchmark: skipped outside `cargo bench`");
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

struct Run {
    sent: usize,
    executed: usize,
    latencies: Vec<f64>,
    elapsed: f64,
}

/// `clients` clients (one per board, the first ones) unlocking back to back for `secs`.
async fn drive(app: &App, count: u8, secs: u64) -> Run {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(secs);
    let mut clients = tokio::task::JoinSet::new();
    for address in 1..=count {
        let commands = app.commands().clone();
        let device = firmware_protocol::DeviceId::new(&format!("bench-{address:05}")).expect("id");
        clients.spawn(async move {
            let (mut sent, mut executed, mut latencies) = (0, 0, Vec::new());
            let mut door = 0u16;
            while Instant::now() < deadline {
                door = door % 4 + 1;
                let t = Instant::now();
                sent += 1;
                if commands.unlock(device, door).await.is_ok() {
                    executed += 1;
                    latencies.push(t.elapsed().as_secs_f64() * 1000.0);
                }
            }
            (sent, executed, latencies)
        });
    }
    let mut run = Run {
        sent: 0,
        executed: 0,
        latencies: Vec::new(),
        elapsed: 0.0,
    };
    while let Some(done) = clients.join_next().await {
        let (sent, executed, latencies) = done.expect("client");
        run.sent += sent;
        run.executed += executed;
        run.latencies.extend(latencies);
    }
    run.elapsed = started.elapsed().as_secs_f64();
    run.latencies.sort_by(|a, b| a.total_cmp(b));
    run
}

async fn bench() {
    let boards = env_number("BOARDS", 16) as u8;
    let baud = env_number("BAUD", 9600) as u32;
    let gap = Duration::from_millis(env_number("GAP_MS", 50));
    let secs = env_number("SECONDS", 20);
    let poll_every = Duration::from_millis(env_number("POLL_MS", 1000));
    let (url, pool) = fleet::bench_database("serial", 16).await;
    let (provisioned, credentials) = fleet::provision(pool.clone(), boards as usize, 4).await;
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
    // Someone takes their goods and closes the door right after it opens (its next unlock finds
    // it closed, so every unlock has a door event to fetch).
    bus.turn(SerialKnob::CloseAfter(Duration::from_millis(100)))
        .await;
    let line = (1..=boards)
        .map(|a| format!("{a}:bench-{a:05}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut config = locker_gateway::Config::load(None, |_| None).expect("defaults");
    config.mqtt_addr = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr");
    config.http_addr = "127.0.0.1:0".parse().expect("addr");
    config.database_url = Some(url.clone());
    config.serial_buses =
        locker_gateway::serial::parse_buses(&format!("{}@{baud}={line}", bus.path())).expect("bus");
    for b in &mut config.serial_buses {
        b.gap = gap;
        b.poll_every = poll_every;
    }
    let settings = config.serial_buses[0].clone();
    let app = App::with_pool(&config, pool.clone())
        .await
        .expect("gateway");
    let started = Instant::now();
    loop {
        let online: i64 = sqlx::query_scalar("SELECT count(*) FROM devices WHERE online")
            .fetch_one(&pool)
            .await
            .expect("count");
        if online == i64::from(boards) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "boards never came online"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "{boards} boards on one bus at {baud} baud, gap {gap:?}, each polled at least every {poll_every:?} (a round takes {:?} at least): all online in {:.1} s",
        settings.poll_round(usize::from(boards)),
        started.elapsed().as_secs_f64()
    );
    // The bus's own limit: a command is its exchange and the poll that collects its door event;
    // the door's closing a moment later is one more poll for its event and one whose heartbeat
    // says nothing more is queued.
    let (command, ack, poll, event, heartbeat) = (58, 54, 52, 63, 63);
    let exchange = |req: usize, ans: usize| gap + settings.transmit_time(req + ans);
    let opening = exchange(command, ack) + exchange(poll, event);
    let with_closing = opening + exchange(poll, event) + exchange(poll, heartbeat);
    let limit = 1.0 / opening.as_secs_f64();
    println!(
        "  bus limit: {:.1} exchanges/s; {limit:.1} unlocks/s with their door events, {:.1}/s if each door's closing costs two polls more (unlock ~{command}+{ack} bytes, polls ~{poll}+{event})",
        2.0 / opening.as_secs_f64(),
        1.0 / with_closing.as_secs_f64(),
    );
    let stats = app.serial_buses()[0].clone();
    let polls_before = locker_gateway::serial::BusStats::get(&stats.polls);
    let clean = drive(&app, boards, secs).await;
    let polls = locker_gateway::serial::BusStats::get(&stats.polls) - polls_before;
    println!(
        "  clean line, {boards} clients: {:.1} commands/s ({:.0} % of the limit), {} of {} executed, p50 {:.0} ms, p99 {:.0} ms; {:.1} polls/s",
        clean.executed as f64 / clean.elapsed,
        100.0 * clean.executed as f64 / clean.elapsed / limit,
        clean.executed,
        clean.sent,
        percentile(&clean.latencies, 0.5),
        percentile(&clean.latencies, 0.99),
        polls as f64 / clean.elapsed
    );
    let quiet_before = locker_gateway::serial::BusStats::get(&stats.timeouts);
    let alone = drive(&app, 1, secs).await;
    println!(
        "  clean line, 1 client: {:.1} commands/s, {} of {} executed, p50 {:.0} ms, p99 {:.0} ms; {} tries unanswered",
        alone.executed as f64 / alone.elapsed,
        alone.executed,
        alone.sent,
        percentile(&alone.latencies, 0.5),
        percentile(&alone.latencies, 0.99),
        locker_gateway::serial::BusStats::get(&stats.timeouts) - quiet_before,
    );
    bus.turn(SerialKnob::FlipRate(0.01)).await;
    let timeouts_before = locker_gateway::serial::BusStats::get(&stats.timeouts);
    let bad_before = locker_gateway::serial::BusStats::get(&stats.bad_frames);
    let noisy = drive(&app, 1, secs).await;
    println!(
        "  1 % of the boards' bytes corrupted, 1 client: {:.1} commands/s, {} of {} completed ({:.1} %), p50 {:.0} ms, p99 {:.0} ms; {} tries unanswered, {} frames dropped as noise",
        noisy.executed as f64 / noisy.elapsed,
        noisy.executed,
        noisy.sent,
        100.0 * noisy.executed as f64 / noisy.sent.max(1) as f64,
        percentile(&noisy.latencies, 0.5),
        percentile(&noisy.latencies, 0.99),
        locker_gateway::serial::BusStats::get(&stats.timeouts) - timeouts_before,
        locker_gateway::serial::BusStats::get(&stats.bad_frames) - bad_before,
    );
    let results: Vec<(Option<String>, i64)> = sqlx::query_as(
        "SELECT door_result, count(*) FROM commands WHERE kind = 'unlock' GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap_or_default();
    println!("  what the doors did: {results:?}");
    app.run_until_stopped(async {}).await;
    drop(bus);
    pool.close().await;
    let _ = <sqlx::Postgres as sqlx::migrate::MigrateDatabase>::drop_database(&url).await;
}
