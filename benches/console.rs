//! The console's reads with a large fleet (issue 23: under 200 ms with 100,000 lockers on a
//! 2-core machine): the overview's counts (with a month of ledger, a million entries, for the
//! money taken today, and 10,000 running rentals for the overdue count) and the lockers list
//! (first page, filters, by last seen, search by an id fragment), read through the gateway's own
//! functions on a throwaway PostgreSQL database.
//! The fragment search is measured side by side with and without its trigram index; the plans
//! PostgreSQL chose are printed.
//!
//!   DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres LOCKERS=100000 \
//!     cargo bench --bench console

use std::time::Instant;

use locker_gateway::device::directory::{self, DeviceSearch};
use locker_gateway::storage::Storage;
use sqlx::PgPool;

#[path = "support/fleet.rs"]
mod support;

use support::{bench_database, env_number, percentile};

/// Lockers, doors, alarms and commands: a fleet's worth of rows, made in SQL.
async fn seed(pool: &PgPool, lockers: u64) {
    let statements = [
        "INSERT INTO devices (id, model, door_count, secret_sha256, tag_key, online, last_seen_at)
         SELECT 'cab-' || lpad(i::text, 6, '0') || '-' || (ARRAY['north','south','east','west'])[i % 4 + 1],
                'm' || (i % 5), 12, sha256(i::text::bytea), sha256(('k' || i)::bytea),
                i % 3 <> 0, now() - (i % 600) * interval '1 second'
         FROM generate_series(1, $1) AS i",
        "INSERT INTO alarms (device_id, door, kind, severity, raised_at, last_raised_at)
         SELECT id, 1, 'jammed', 'major', now(), now() FROM devices WHERE random() < 0.02",
        // A tenth of the boards on the serial lines of ten gateways.
        "UPDATE devices SET serial_gateway = 'gw-' || (length(id) + ascii(substr(id, 8, 1))) % 10
         WHERE random() < 0.1",
        // Customers with wallets, a month of ledger (ten entries a locker), and a running rental
        // at a tenth of the lockers (some of them overdue).
        "INSERT INTO users (id, email, password_hash)
         SELECT gen_random_uuid(), 'c' || i || '@example.com', 'x'
         FROM generate_series(1, $1 / 10) AS i",
        "INSERT INTO wallets (id, user_id, currency, available)
         SELECT gen_random_uuid(), id, 'EUR', 1000000 FROM users",
        "INSERT INTO ledger (wallet_id, kind, available_delta, held_delta, available_after,
                             held_after, created_at)
         SELECT w.id, (ARRAY['capture','charge','refund','top_up'])[i % 4 + 1],
                CASE WHEN i % 4 = 1 THEN -250 ELSE 100 END, 0, 1000000, 0,
                now() - ((w.n * 100 + i) % 43200) * interval '1 minute'
         FROM (SELECT id, row_number() OVER () AS n FROM wallets) w,
              generate_series(1, 100) AS i",
        "INSERT INTO doors (device_id, door) SELECT id, 1 FROM devices",
        "INSERT INTO rentals (id, user_id, device_id, door, state, terms, deposit_held, started_at)
         SELECT gen_random_uuid(), u.id, d.id, 1, 'active',
                jsonb_build_object('max_minutes', 4320), 2000,
                now() - (random() * 5000) * interval '1 minute'
         FROM (SELECT id, row_number() OVER () AS n FROM devices) d
         JOIN (SELECT id, row_number() OVER () AS n FROM users) u ON u.n = d.n",
        "ANALYZE",
    ];
    for statement in statements {
        let query = sqlx::query(statement);
        let query = if statement.contains("$1") {
            query.bind(lockers as i64)
        } else {
            query
        };
        query.execute(pool).await.expect("seeded");
    }
}

/// Times `read` `runs` times after a warm-up: (p50, p99) in milliseconds.
async fn time<F, Fut>(runs: usize, mut read: F) -> (f64, f64)
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = usize>,
{
    for i in 0..5 {
        read(i).await;
    }
    let mut took = Vec::with_capacity(runs);
    for i in 0..runs {
        let started = Instant::now();
        std::hint::black_box(read(i).await);
        took.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    took.sort_by(f64::total_cmp);
    (percentile(&took, 0.5), percentile(&took, 0.99))
}

async fn search(storage: &Storage, search: DeviceSearch) -> usize {
    directory::search(storage, &search)
        .await
        .expect("searched")
        .len()
}

fn fragment(i: usize) -> DeviceSearch {
    // Fragments that hit a few lockers each, a different one every run.
    DeviceSearch {
        fragment: Some(format!("{:04}-so", (i * 7919) % 10_000)),
        limit: 50,
        ..DeviceSearch::default()
    }
}

async fn plan(pool: &PgPool, statement: &str) -> String {
    let rows: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!("EXPLAIN {statement}")))
        .fetch_all(pool)
        .await
        .expect("explained");
    rows.into_iter()
        .map(|(line,)| format!("    {line}\n"))
        .collect()
}

#[tokio::main]
async fn main() {
    let lockers = env_number("LOCKERS", 100_000);
    let runs = env_number("RUNS", 50) as usize;
    let (url, pool) = bench_database("console", 4).await;
    let seeding = Instant::now();
    seed(&pool, lockers).await;
    println!(
        "console reads: {lockers} lockers seeded in {:.1} s; {runs} runs each, after 5 warm-up runs",
        seeding.elapsed().as_secs_f64()
    );
    let storage = Storage::from(pool.clone());
    let currency = locker_gateway::money::Currency::default();
    let zone: chrono_tz::Tz = "Europe/Berlin".parse().expect("a zone");
    let mut rows = Vec::new();
    rows.push((
        "overview (every count)",
        time(runs, |_| async {
            locker_gateway::api::overview::counts(&storage, &currency, zone)
                .await
                .expect("counted");
            1
        })
        .await,
    ));
    rows.push((
        "lockers, first page",
        time(runs, |_| {
            search(
                &storage,
                DeviceSearch {
                    limit: 50,
                    ..Default::default()
                },
            )
        })
        .await,
    ));
    rows.push((
        "lockers, offline",
        time(runs, |_| {
            search(
                &storage,
                DeviceSearch {
                    online: Some(false),
                    limit: 50,
                    ..Default::default()
                },
            )
        })
        .await,
    ));
    rows.push((
        "lockers, with open alarms",
        time(runs, |_| {
            search(
                &storage,
                DeviceSearch {
                    open_alarms: Some(true),
                    limit: 50,
                    ..Default::default()
                },
            )
        })
        .await,
    ));
    rows.push((
        "lockers, by last seen",
        time(runs, |_| {
            search(
                &storage,
                DeviceSearch {
                    order: directory::Order::LastSeen,
                    limit: 50,
                    ..Default::default()
                },
            )
        })
        .await,
    ));
    rows.push((
        "lockers, on one gateway's serial lines",
        time(runs, |_| {
            search(
                &storage,
                DeviceSearch {
                    serial_gateway: Some("gw-3".into()),
                    limit: 50,
                    ..Default::default()
                },
            )
        })
        .await,
    ));
    let indexed = time(runs, |i| search(&storage, fragment(i))).await;
    rows.push(("lockers, id fragment (trigram index)", indexed));
    let fragment_plan = plan(
        &pool,
        "SELECT id FROM devices WHERE lower(id) LIKE '%0123-so%' ORDER BY id LIMIT 50",
    )
    .await;
    sqlx::query("DROP INDEX devices_id_fragment")
        .execute(&pool)
        .await
        .expect("dropped");
    let scanned = time(runs, |i| search(&storage, fragment(i))).await;
    rows.push(("lockers, id fragment (no index, before)", scanned));
    println!("\n| read | p50 ms | p99 ms |\n|---|---|---|");
    for (what, (p50, p99)) in &rows {
        println!("| {what} | {p50:.1} | {p99:.1} |");
    }
    println!(
        "\nid fragment: {:.2} x the time without the trigram index (p50)",
        indexed.0 / scanned.0
    );
    println!("\nplan of an id-fragment search (with the index):\n{fragment_plan}");
    println!(
        "plan of the overview's locker counts:\n{}",
        plan(
            &pool,
            "SELECT count(*) FILTER (WHERE online) FROM devices WHERE revoked_at IS NULL"
        )
        .await
    );
    println!(
        "plan of the overview's money taken today:\n{}",
        plan(
            &pool,
            "SELECT sum(available_delta + held_delta) FROM ledger
             WHERE created_at >= now() - interval '10 hours'
               AND kind IN ('capture', 'charge', 'refund')"
        )
        .await
    );
    pool.close().await;
    let admin =
        sqlx::PgPool::connect(&url.replace(&url[url.rfind('/').unwrap_or(0)..], "/postgres"))
            .await
            .expect("admin connection");
    let name = &url[url.rfind('/').map_or(0, |i| i + 1)..];
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&admin)
    .await
    .expect("dropped the bench database");
}
