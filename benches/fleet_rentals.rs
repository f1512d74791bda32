//! Rental cycles with a fleet of 1, 2 and 3 gateways (`GATEWAY_COUNTS`), each a release process of
//! its own behind one Mosquitto, on one PostgreSQL and one Redis: `LOCKERS` simulated lockers (12
//! doors each, answering at once, a person closing each door 10 ms after it opens) in a child
//! process, and `CONCURRENCY` clients, spread over the gateways in turn, each renting a door,
//! waiting `PAUSE_MS` (the door closed meanwhile) and ending the rental (both open the door), as
//! fast as it can for `SECONDS`. (Ending while the door is still open costs the open window, 10 s:
//! an MQTT locker sends no event for a door that was open already, so the gateway waits for one
//! and then asks; the pause keeps that out of these figures.)
//!
//!   DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres cargo bench --bench fleet_rentals
//!
//! Prints, per fleet size, cycles/s, the start's and the end's p50/p99, what was refused, and the
//! CPU seconds each gateway process spent per 100 cycles (from `/proc`); then the sizes side by
//! side with their ratio to one gateway. Everything (gateways, Mosquitto, the lockers,
//! PostgreSQL, the clients) shares the machine. Not a test: it asserts nothing, it measures.

#[path = "support/fleet.rs"]
mod fleet;

#[allow(dead_code)] // the tests' helpers: this uses part of them
#[path = "../tests/support/basics.rs"]
mod basics;
#[allow(dead_code)]
#[path = "../tests/support/gateway_process.rs"]
mod gateway_process;
#[allow(dead_code)]
#[path = "../tests/support/mosquitto_server.rs"]
mod mosquitto_server;

use std::time::{Duration, Instant};

use fleet::{env_number, percentile, start_fleet, stop_fleet, users};
use gateway_process::GatewayProcess;
use locker_gateway::storage::Storage;
use mosquitto_server::{Mosquitto, gateway_url};
use uuid::Uuid;

fn main() {
    if fleet::child_mode() {
        return;
    }
    if !std::env::args().any(|a| a == "--bench") {
        println!("fleet rentals benchmark: skipped outside `cargo bench`");
        return;
    }
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(bench());
}

/// A process's CPU time so far (user + system), from `/proc`.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name (which may hold spaces) start after its ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|i| fields.get(*i)?.parse::<f64>().ok())
        .sum();
    // CLK_TCK is 100 on Linux.
    ticks / 100.0
}

/// The machine's CPU time so far, (busy, all), in ticks, from `/proc/stat`.
fn machine_ticks() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|t| t.parse().ok())
        .collect();
    let all: f64 = ticks.iter().sum();
    // idle and iowait are the 4th and 5th.
    let idle = ticks.get(3).copied().unwrap_or(0.0) + ticks.get(4).copied().unwrap_or(0.0);
    (all - idle, all)
}

/// The database's commits so far (its statistics are flushed about once a second).
async fn commits(pool: &sqlx::PgPool) -> i64 {
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

/// One fleet size's figures.
struct Figures {
    gateways: usize,
    cycles_per_s: f64,
    start_p50: f64,
    start_p99: f64,
    end_p50: f64,
    cpu_per_100: Vec<f64>,
    machine_busy: f64,
    commits_per_cycle: f64,
}

async fn bench() {
    let lockers = env_number("LOCKERS", 100) as usize;
    let concurrency = env_number("CONCURRENCY", 32) as usize;
    let secs = env_number("SECONDS", 15);
    let pause = Duration::from_millis(env_number("PAUSE_MS", 40));
    let counts: Vec<usize> = std::env::var("GATEWAY_COUNTS")
        .unwrap_or_else(|_| "1 2 3".into())
        .split_whitespace()
        .filter_map(|n| n.parse().ok())
        .filter(|n| *n > 0)
        .collect();
    let (url, pool) = fleet::bench_database("fleet_rentals", 16).await;
    let storage = Storage::Postgres(pool.clone());
    let (provisioned, credentials) = fleet::provision(storage.clone(), lockers, 12).await;
    let tokens = users(&storage, concurrency * 8).await;
    fleet::publish_plan(&storage).await;
    let passwords: Vec<(&str, String)> = provisioned
        .iter()
        .map(|p| (p.device_id.as_str(), p.secret.mqtt_password()))
        .collect();
    let mosquitto = Mosquitto::start(&passwords, true).await;
    let prefix = format!("bench-{}:", Uuid::new_v4());
    let mut simulated = None;
    let mut figures = Vec::new();
    for &count in &counts {
        let mut gateways = Vec::new();
        for n in 1..=count {
            let env = vec![
                ("LOCKER_MQTT_BROKER", gateway_url(&mosquitto)),
                ("LOCKER_GATEWAY_ID", format!("bench-gw-{n}")),
                ("LOCKER_REDIS_PREFIX", prefix.clone()),
                ("LOCKER_RATE_LIMIT_PER_IP", "1000000".to_owned()),
                ("LOCKER_RATE_LIMIT_PER_USER", "1000000".to_owned()),
                ("LOCKER_MAX_ACTIVE_RENTALS", "1000".to_owned()),
                ("RUST_LOG", "error".to_owned()),
            ];
            let addr = basics::free_addr();
            gateways.push(GatewayProcess::start_with(&pool, mosquitto.addr, addr, &env).await);
        }
        if simulated.is_none() {
            simulated = Some(
                start_fleet(
                    storage.clone(),
                    mosquitto.addr,
                    &credentials,
                    lockers,
                    0,
                    50,
                )
                .await,
            );
        }
        let commits_before = commits(&pool).await;
        let mut run = run(
            count,
            &gateways,
            &tokens,
            (lockers, concurrency, secs, pause),
        )
        .await;
        let cycles = run.cycles_per_s * secs as f64;
        run.commits_per_cycle = (commits(&pool).await - commits_before) as f64 / cycles.max(1.0);
        figures.push(run);
        for mut gateway in gateways {
            gateway.terminate();
        }
    }
    if let Some(child) = simulated {
        stop_fleet(child);
    }
    println!("\nrental cycles (rent, then end: two door openings each), side by side:");
    println!(
        "  gateways   cycles/s   × one   start p50   start p99   end p50   CPU s per 100 cycles, each gateway"
    );
    let one = figures.first().map_or(f64::NAN, |f| f.cycles_per_s);
    for f in &figures {
        let cpu: Vec<String> = f.cpu_per_100.iter().map(|c| format!("{c:.2}")).collect();
        println!(
            "  {:>8} {:>10.1} {:>7.2} {:>8.1} ms {:>8.1} ms {:>6.1} ms {:>11.0} % {:>15.1}   {}",
            f.gateways,
            f.cycles_per_s,
            f.cycles_per_s / one,
            f.start_p50,
            f.start_p99,
            f.end_p50,
            f.machine_busy,
            f.commits_per_cycle,
            cpu.join(", ")
        );
    }
    let _ = std::fs::remove_file(&credentials);
    drop(mosquitto);
    pool.close().await;
    let _ = <sqlx::Postgres as sqlx::migrate::MigrateDatabase>::drop_database(&url).await;
}

/// `concurrency` clients, client `w` on gateway `w % gateways.len()`, renting and ending
/// (`pause` apart) for `secs` seconds.
async fn run(
    count: usize,
    gateways: &[GatewayProcess],
    tokens: &[String],
    (lockers, concurrency, secs, pause): (usize, usize, u64, Duration),
) -> Figures {
    println!("\n== {count} gateway(s)");
    let http = reqwest::Client::new();
    let bases: Vec<String> = gateways
        .iter()
        .map(|g| format!("http://{}", g.http))
        .collect();
    let pids: Vec<u32> = gateways.iter().map(|g| g.child.id()).collect();
    let cpu_before: Vec<f64> = pids.iter().map(|p| cpu_seconds(*p)).collect();
    let machine_before = machine_ticks();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(secs);
    let mut clients = tokio::task::JoinSet::new();
    for w in 0..concurrency {
        let http = http.clone();
        let base = bases[w % bases.len()].clone();
        let mine: Vec<String> = tokens
            .iter()
            .skip(w)
            .step_by(concurrency)
            .cloned()
            .collect();
        clients.spawn(async move {
            let mut starts = Vec::new();
            let mut ends = Vec::new();
            let mut refused = std::collections::BTreeMap::<String, usize>::new();
            let mut n = w;
            while Instant::now() < deadline {
                let token = &mine[n % mine.len()];
                let device = format!("bench-{:05}", n % lockers + 1);
                n += concurrency;
                let t = Instant::now();
                let Ok(response) = http
                    .post(format!("{base}/v1/rentals"))
                    .bearer_auth(token)
                    .json(&serde_json::json!({ "device_id": device }))
                    .send()
                    .await
                else {
                    continue;
                };
                let status = response.status().as_u16();
                let body: serde_json::Value = response.json().await.unwrap_or_default();
                if status != 201 {
                    *refused
                        .entry(format!("start {status} {}", body["code"]))
                        .or_default() += 1;
                    continue;
                }
                starts.push(t.elapsed().as_secs_f64() * 1000.0);
                let id = body["id"].as_str().unwrap_or_default().to_owned();
                tokio::time::sleep(pause).await;
                let t = Instant::now();
                match http
                    .post(format!("{base}/v1/rentals/{id}/end"))
                    .bearer_auth(token)
                    .send()
                    .await
                {
                    Ok(r) if r.status() == 200 => ends.push(t.elapsed().as_secs_f64() * 1000.0),
                    Ok(r) => *refused.entry(format!("end {}", r.status())).or_default() += 1,
                    Err(_) => *refused.entry("end: no answer".into()).or_default() += 1,
                }
            }
            (starts, ends, refused)
        });
    }
    let (mut starts, mut ends) = (Vec::new(), Vec::new());
    let mut refused = std::collections::BTreeMap::<String, usize>::new();
    while let Some(done) = clients.join_next().await {
        let (s, e, r) = done.expect("client");
        starts.extend(s);
        ends.extend(e);
        for (k, v) in r {
            *refused.entry(k).or_default() += v;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let machine_after = machine_ticks();
    let machine_busy = 100.0 * (machine_after.0 - machine_before.0)
        / (machine_after.1 - machine_before.1).max(1.0);
    starts.sort_by(f64::total_cmp);
    ends.sort_by(f64::total_cmp);
    let cycles = ends.len();
    let cpu_per_100: Vec<f64> = pids
        .iter()
        .zip(&cpu_before)
        .map(|(pid, before)| (cpu_seconds(*pid) - before) / (cycles.max(1) as f64 / 100.0))
        .collect();
    let figures = Figures {
        gateways: count,
        cycles_per_s: cycles as f64 / elapsed,
        start_p50: percentile(&starts, 0.5),
        start_p99: percentile(&starts, 0.99),
        end_p50: percentile(&ends, 0.5),
        cpu_per_100,
        machine_busy,
        commits_per_cycle: f64::NAN,
    };
    println!(
        "{lockers} lockers × 12 doors, {concurrency} clients, {elapsed:.1} s: {cycles} cycles ({:.1}/s); start p50 {:.1} ms, p99 {:.1} ms; end p50 {:.1} ms, p99 {:.1} ms; refused {refused:?}",
        figures.cycles_per_s,
        figures.start_p50,
        figures.start_p99,
        figures.end_p50,
        percentile(&ends, 0.99)
    );
    figures
}
