//! Rentals over HTTP with a real broker, simulated lockers, PostgreSQL and Redis: the door opens
//! for exactly one renter, and a failed unlock charges nobody.

use serde_json::{Value, json};
use simulator::mqtt::Knob;
use sqlx::PgPool;
use uuid::Uuid;

use crate::accounts::{customer, operator};
use crate::api::problem;
use crate::command_helpers::online_locker;
use crate::helpers::{
    TestApp, on_storage, spawn_app, spawn_app_with, spawn_edge_app, spawn_edge_app_with,
};

/// A plan for size `m` (every test door's size): deposit 20.00.
pub async fn plan(app: &TestApp) {
    let admin = operator(app, &format!("ops-{}@example.com", Uuid::new_v4())).await;
    let made = app
        .http
        .post(app.url("/v1/plans"))
        .bearer_auth(&admin)
        .json(&crate::plans::plan_body("m", "Medium"))
        .send()
        .await
        .expect("sent");
    assert_eq!(made.status(), 201);
}

/// A customer with `amount` (minor units) in their wallet; returns (token, id).
pub async fn funded(app: &TestApp, email: &str, amount: i64) -> (String, Uuid) {
    let token = customer(app, email).await;
    let id: Uuid = crate::accounts::me_id(app, &token)
        .await
        .parse()
        .expect("uuid");
    if amount > 0 {
        let wallets = locker_gateway::wallet::Wallets::new(app.storage.clone(), Default::default());
        wallets
            .change(id, &locker_gateway::wallet::Movement::top_up(amount))
            .await
            .expect("funded");
    }
    (token, id)
}

pub async fn rent(app: &TestApp, token: &str, body: Value) -> reqwest::Response {
    app.http
        .post(app.url("/v1/rentals"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("sent")
}

/// (available, held) and whether the ledger adds up.
pub async fn money(app: &TestApp, user: Uuid) -> (i64, i64) {
    let (available, held, sum, _) = crate::wallets::books(&app.storage, user).await;
    assert_eq!(available + held, sum, "the ledger adds up");
    (available, held)
}

/// One statement's single value, on the app's storage.
pub async fn scalar<T>(app: &TestApp, sql: &'static str) -> T
where
    T: Send + Unpin,
    T: for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
    T: for<'r> sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>,
{
    on_storage!(&app.storage, |pool| sqlx::query_scalar(sql)
        .fetch_one(pool)
        .await
        .expect(sql))
}

#[sqlx::test]
async fn a_rental_opens_a_door_and_holds_the_deposit(pool: PgPool) {
    a_rental_opens_a_door_and_holds_the_deposit_in(spawn_app(pool).await).await;
}

#[tokio::test]
async fn in_edge_mode_a_rental_opens_a_door_and_holds_the_deposit() {
    a_rental_opens_a_door_and_holds_the_deposit_in(spawn_edge_app().await).await;
}

async fn a_rental_opens_a_door_and_holds_the_deposit_in(app: TestApp) {
    plan(&app).await;
    let _locker = online_locker(&app, "lk-1").await;
    let (token, id) = funded(&app, "r@example.com", 5000).await;
    let response = rent(&app, &token, json!({ "device_id": "lk-1", "size": "m" })).await;
    assert_eq!(response.status(), 201);
    let rental: Value = response.json().await.expect("rental");
    assert_eq!(rental["state"], "active");
    assert_eq!(rental["deposit_held"], "20.00");
    assert!(rental["started_at"].is_string());
    assert_eq!(money(&app, id).await, (3000, 2000));
    let door: String = scalar(
        &app,
        "SELECT c.door_result FROM rentals r JOIN commands c ON c.id = r.start_command",
    )
    .await;
    assert_eq!(door, "opened");
    let started: i64 = scalar(
        &app,
        "SELECT count(*) FROM outbox WHERE event_type = 'rental.started'",
    )
    .await;
    assert_eq!(started, 1);
    // The owner sees it; another user does not even learn it exists.
    let path = format!("/v1/rentals/{}", rental["id"].as_str().expect("id"));
    let mine = app
        .http
        .get(app.url(&path))
        .bearer_auth(&token)
        .send()
        .await
        .expect("sent");
    assert_eq!(mine.status(), 200);
    let (other, _) = funded(&app, "o@example.com", 0).await;
    let theirs = app
        .http
        .get(app.url(&path))
        .bearer_auth(&other)
        .send()
        .await
        .expect("sent");
    problem(theirs, 404, "not_found").await;
    // Not enough money: refused, nothing held.
    let poor = rent(&app, &other, json!({ "device_id": "lk-1" })).await;
    problem(poor, 402, "insufficient_funds").await;
    let rentals: i64 = scalar(&app, "SELECT count(*) FROM rentals").await;
    assert_eq!(rentals, 1);
}

#[sqlx::test]
async fn a_failed_unlock_cancels_the_rental_and_charges_nobody(pool: PgPool) {
    a_failed_unlock_cancels_the_rental_and_charges_nobody_in(spawn_app(pool).await).await;
}

#[tokio::test]
async fn in_edge_mode_a_failed_unlock_cancels_the_rental_and_charges_nobody() {
    a_failed_unlock_cancels_the_rental_and_charges_nobody_in(spawn_edge_app().await).await;
}

async fn a_failed_unlock_cancels_the_rental_and_charges_nobody_in(app: TestApp) {
    plan(&app).await;
    let locker = online_locker(&app, "lk-1").await;
    let (token, id) = funded(&app, "r@example.com", 5000).await;
    // A jammed door: cancelled, the hold released, the door suspect.
    locker.turn(Knob::Jam(1)).await;
    let jammed = rent(&app, &token, json!({ "device_id": "lk-1", "door": 1 })).await;
    let body = problem(jammed, 409, "door_jammed").await;
    assert!(
        body["detail"].as_str().unwrap_or("").contains("cancelled"),
        "{body}"
    );
    assert_eq!(money(&app, id).await, (5000, 0));
    const DOOR: &str =
        "SELECT suspect, jams_in_row FROM doors WHERE device_id = 'lk-1' AND door = 1";
    let (suspect, jams): (bool, i32) = on_storage!(&app.storage, |pool| sqlx::query_as(DOOR)
        .fetch_one(pool)
        .await
        .expect("door"));
    assert_eq!((suspect, jams), (true, 1));
    // The next rental skips the suspect door.
    let next = rent(&app, &token, json!({ "device_id": "lk-1" })).await;
    assert_eq!(next.status(), 201);
    let next: Value = next.json().await.expect("rental");
    assert_eq!(next["door"], 2);
    // An offline locker: cancelled at once, nothing held.
    app.provision("lk-off", 4).await;
    const CLOSED: &str = "UPDATE doors SET sensor = 'closed' WHERE device_id = 'lk-off'";
    on_storage!(&app.storage, |pool| sqlx::query(CLOSED)
        .execute(pool)
        .await
        .expect("doors")
        .rows_affected());
    let offline = rent(&app, &token, json!({ "device_id": "lk-off" })).await;
    problem(offline, 503, "device_offline").await;
    assert_eq!(
        money(&app, id).await,
        (3000, 2000),
        "only the running rental holds money"
    );
    const CANCELLED: &str =
        "SELECT cancel_reason FROM rentals WHERE state = 'cancelled' ORDER BY created_at";
    let cancelled: Vec<String> = on_storage!(&app.storage, |pool| sqlx::query_scalar(CANCELLED)
        .fetch_all(pool)
        .await
        .expect("rentals"));
    assert_eq!(cancelled, ["jammed", "offline"]);
}

#[sqlx::test]
async fn two_hundred_requests_for_four_doors_make_four_rentals(pool: PgPool) {
    let app = spawn_app_with(pool, |config| {
        config.rate_limits.per_ip_per_minute = 100_000;
    })
    .await;
    two_hundred_requests_for_four_doors_make_four_rentals_in(app).await;
}

#[tokio::test]
async fn in_edge_mode_two_hundred_requests_for_four_doors_make_four_rentals() {
    let app = spawn_edge_app_with(|config| {
        config.rate_limits.per_ip_per_minute = 100_000;
    })
    .await;
    two_hundred_requests_for_four_doors_make_four_rentals_in(app).await;
}

async fn two_hundred_requests_for_four_doors_make_four_rentals_in(app: TestApp) {
    plan(&app).await;
    let _locker = online_locker(&app, "lk-1").await;
    let mut tokens = Vec::new();
    for n in 0..200 {
        tokens.push(funded(&app, &format!("u{n}@example.com"), 5000).await.0);
    }
    let mut requests = tokio::task::JoinSet::new();
    for token in tokens {
        let (http, url) = (app.http.clone(), app.url("/v1/rentals"));
        requests.spawn(async move {
            let response = http
                .post(url)
                .bearer_auth(token)
                .json(&json!({ "device_id": "lk-1" }))
                .send()
                .await
                .expect("sent");
            let status = response.status().as_u16();
            let body: Value = response.json().await.expect("json");
            (status, body)
        });
    }
    let mut doors = Vec::new();
    let mut refused = 0;
    while let Some(joined) = requests.join_next().await {
        let (status, body) = joined.expect("task");
        match status {
            201 => doors.push(body["door"].as_i64().expect("door")),
            409 => {
                assert_eq!(body["code"], "no_free_door", "{body}");
                refused += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    doors.sort();
    assert_eq!(doors, [1, 2, 3, 4], "each door once");
    assert_eq!(refused, 196);
    let held: i64 = scalar(&app, "SELECT CAST(sum(held) AS BIGINT) FROM wallets").await;
    assert_eq!(held, 4 * 2000, "only the four renters hold money");
    // Money is never created or lost: every wallet's ledger adds up to its balances.
    let unbalanced: i64 = scalar(
        &app,
        "SELECT count(*) FROM wallets w
         WHERE w.available + w.held <> (SELECT coalesce(sum(available_delta + held_delta), 0)
                                        FROM ledger l WHERE l.wallet_id = w.id)",
    )
    .await;
    assert_eq!(unbalanced, 0);
}

#[sqlx::test]
async fn without_redis_no_door_is_rented_and_nothing_is_written(pool: PgPool) {
    let redis = crate::api::OwnRedis::start().await;
    let url = redis.url.clone();
    let app = spawn_app_with(pool.clone(), |config| config.redis_url = Some(url.clone())).await;
    plan(&app).await;
    let _locker = online_locker(&app, "lk-1").await;
    let (token, id) = funded(&app, "r@example.com", 5000).await;
    let port = redis.url.rsplit(':').next().expect("port").to_owned();
    drop(redis);
    let refused = rent(&app, &token, json!({ "device_id": "lk-1" })).await;
    problem(refused, 503, "unavailable").await;
    assert_eq!(money(&app, id).await, (5000, 0));
    let rentals: i64 = sqlx::query_scalar("SELECT count(*) FROM rentals")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(rentals, 0);
    // Redis back on the same port: rentals work again.
    let _back = crate::api::OwnRedis::start_on(port.parse().expect("port")).await;
    let mut status = 0;
    for _ in 0..50 {
        status = rent(&app, &token, json!({ "device_id": "lk-1" }))
            .await
            .status()
            .as_u16();
        if status == 201 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(status, 201, "rentals resume when Redis is back");
}

#[sqlx::test]
async fn a_retried_rental_with_the_same_key_is_one_rental(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    plan(&app).await;
    let _locker = online_locker(&app, "lk-1").await;
    let (token, id) = funded(&app, "r@example.com", 5000).await;
    let send = || {
        app.http
            .post(app.url("/v1/rentals"))
            .bearer_auth(&token)
            .header("Idempotency-Key", "rent-1")
            .json(&json!({ "device_id": "lk-1" }))
            .send()
    };
    let first: Value = send().await.expect("sent").json().await.expect("json");
    let again = send().await.expect("sent");
    assert_eq!(again.status(), 201);
    let again: Value = again.json().await.expect("json");
    assert_eq!(again["id"], first["id"]);
    assert_eq!(money(&app, id).await, (3000, 2000));
}

#[sqlx::test]
async fn refused_unlocks_cancel_and_unanswered_ones_are_settled_by_asking_the_locker(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    plan(&app).await;
    let locker = online_locker(&app, "lk-1").await;
    let (token, id) = funded(&app, "r@example.com", 5000).await;
    // The gateway thinks there is a door 5; the locker has four: it refuses, the door goes out
    // of service.
    sqlx::query("INSERT INTO doors (device_id, door, sensor) VALUES ('lk-1', 5, 'closed')")
        .execute(&pool)
        .await
        .expect("door 5");
    let refused = rent(&app, &token, json!({ "device_id": "lk-1", "door": 5 })).await;
    let body = problem(refused, 409, "refused_by_device").await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap_or("")
            .contains("no_such_door"),
        "{body}"
    );
    let out: bool = sqlx::query_scalar(
        "SELECT out_of_service FROM doors WHERE device_id = 'lk-1' AND door = 5",
    )
    .fetch_one(&pool)
    .await
    .expect("door");
    assert!(out);
    assert_eq!(money(&app, id).await, (5000, 0));
    // No answer within the deadline: a 504, and the locker is asked. It says the door opened,
    // so the rental runs and the hold stays.
    locker.turn(Knob::DropAcks(100)).await;
    let silent = rent(&app, &token, json!({ "device_id": "lk-1", "door": 1 })).await;
    let body = problem(silent, 504, "outcome_unknown").await;
    assert!(
        body["detail"].as_str().unwrap_or("").contains("asked"),
        "{body}"
    );
    // Not "cancelled": the rental waits for the locker's answer, and the document says so.
    assert!(
        !body["detail"].as_str().unwrap_or("").contains("cancelled)"),
        "{body}"
    );
    assert_eq!(body["subject"]["kind"], "rental");
    assert_eq!(body["subject"]["state"], "pending");
    let state_of = |door: i32| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, String>(
                "SELECT state FROM rentals WHERE door = $1 ORDER BY created_at DESC LIMIT 1",
            )
            .bind(door)
            .fetch_one(&pool)
            .await
            .unwrap_or_default()
        }
    };
    crate::helpers::eventually("settled as active by the locker's report", || async {
        state_of(1).await == "active"
    })
    .await;
    assert_eq!(money(&app, id).await, (3000, 2000));
    // A locker that cannot say (no report): cancelled once the outcome is given up, the hold
    // released, the door to be checked.
    locker
        .turn(Knob::StateReports(simulator::mqtt::Reports::Missing))
        .await;
    let silent = rent(&app, &token, json!({ "device_id": "lk-1", "door": 2 })).await;
    problem(silent, 504, "outcome_unknown").await;
    crate::helpers::eventually("cancelled when the outcome is given up", || async {
        state_of(2).await == "cancelled"
    })
    .await;
    assert_eq!(
        money(&app, id).await,
        (3000, 2000),
        "only the running rental holds money"
    );
    let suspect: bool =
        sqlx::query_scalar("SELECT suspect FROM doors WHERE device_id = 'lk-1' AND door = 2")
            .fetch_one(&pool)
            .await
            .expect("door");
    assert!(suspect);
    let reasons: Vec<String> = sqlx::query_scalar(
        "SELECT cancel_reason FROM rentals WHERE state = 'cancelled' ORDER BY created_at",
    )
    .fetch_all(&pool)
    .await
    .expect("rentals");
    assert_eq!(reasons, ["refused", "timeout"]);
}

#[sqlx::test]
async fn a_user_at_the_limit_of_running_rentals_is_refused(pool: PgPool) {
    let app = spawn_app_with(pool.clone(), |config| config.rentals.max_active = 1).await;
    plan(&app).await;
    let _locker = online_locker(&app, "lk-1").await;
    let (token, id) = funded(&app, "r@example.com", 10_000).await;
    assert_eq!(
        rent(&app, &token, json!({ "device_id": "lk-1" }))
            .await
            .status(),
        201
    );
    problem(
        rent(&app, &token, json!({ "device_id": "lk-1" })).await,
        409,
        "too_many_rentals",
    )
    .await;
    assert_eq!(money(&app, id).await, (8000, 2000));
    problem(
        rent(&app, &token, json!({ "device_id": "nobody" })).await,
        404,
        "not_found",
    )
    .await;
}

#[sqlx::test]
async fn a_door_lock_is_renewed_while_its_work_runs(pool: PgPool) {
    // A 1.5 s lock, a locker that answers after 2 s: without renewal the lock would lapse.
    let prefix = format!("renew-{}:", Uuid::new_v4());
    let app = spawn_app_with(pool.clone(), |config| {
        config.rentals.lock_ttl = std::time::Duration::from_millis(1500);
        config.redis_prefix = prefix.clone();
    })
    .await;
    plan(&app).await;
    let locker = online_locker(&app, "lk-1").await;
    locker
        .turn(Knob::AckDelay(std::time::Duration::from_millis(2000)))
        .await;
    let (token, _) = funded(&app, "r@example.com", 10_000).await;
    let (other, _) = funded(&app, "o@example.com", 10_000).await;
    let first = tokio::spawn({
        let (http, url, token) = (app.http.clone(), app.url("/v1/rentals"), token.clone());
        async move {
            http.post(url)
                .bearer_auth(token)
                .json(&json!({ "device_id": "lk-1", "door": 1 }))
                .send()
                .await
                .expect("sent")
                .status()
                .as_u16()
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(1800)).await;
    let client = redis::Client::open(crate::helpers::redis_url()).expect("url");
    let mut redis = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let held: bool = redis::cmd("EXISTS")
        .arg(format!("{prefix}lock:door:lk-1:1"))
        .query_async(&mut redis)
        .await
        .expect("exists");
    assert!(held, "the lock lapsed while its unlock was still running");
    let second = rent(&app, &other, json!({ "device_id": "lk-1", "door": 1 })).await;
    problem(second, 409, "no_free_door").await;
    assert_eq!(first.await.expect("joined"), 201);
}

#[sqlx::test]
async fn a_door_that_was_already_open_starts_the_rental_flagged_for_operators(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    plan(&app).await;
    let locker = online_locker(&app, "lk-1").await;
    let (token, id) = funded(&app, "r@example.com", 5000).await;
    // The door stands open, but the gateway's record says closed (a report it missed).
    locker.turn(Knob::ForceOpen(3)).await;
    crate::helpers::eventually("the forced opening recorded", || async {
        sqlx::query_scalar::<_, String>(
            "SELECT sensor FROM doors WHERE device_id = 'lk-1' AND door = 3",
        )
        .fetch_one(&pool)
        .await
        .is_ok_and(|s| s == "open")
    })
    .await;
    sqlx::query("UPDATE doors SET sensor = 'closed', state_at = now() - interval '1 minute' WHERE device_id = 'lk-1' AND door = 3")
        .execute(&pool)
        .await
        .expect("stale record");
    // The locker executes, sends no opening event and no jam alarm; asked, it says open.
    let rented = rent(&app, &token, json!({ "device_id": "lk-1", "door": 3 })).await;
    assert_eq!(rented.status(), 201);
    let rental: Value = rented.json().await.expect("rental");
    assert_eq!(rental["state"], "active");
    assert_eq!(rental["flags"], json!(["already_open"]));
    assert_eq!(money(&app, id).await, (3000, 2000), "the hold stays");
}

/// The database's own fence, in both dialects: however the door locks fail, a door holds at
/// most one running rental; ended and cancelled ones do not count.
async fn the_database_fences_one_rental_per_door(storage: locker_gateway::storage::Storage) {
    const RENTAL: &str = "INSERT INTO rentals (id, user_id, device_id, door, state, terms,
                                               deposit_held, created_at)
         VALUES ($1, $2, 'lk-1', $3, $4, '{}', 0, $5)";
    let registry = locker_gateway::device::DeviceRegistry::new(storage.clone());
    crate::helpers::provision(&registry, "lk-1", 2).await;
    let user = crate::wallets::user_on(&storage).await;
    let insert = |door: i32, state: &'static str| {
        let storage = storage.clone();
        async move {
            on_storage!(&storage, |pool| sqlx::query(RENTAL)
                .bind(Uuid::now_v7())
                .bind(user)
                .bind(door)
                .bind(state)
                .bind(chrono::Utc::now())
                .execute(pool)
                .await
                .map(|done| done.rows_affected()))
        }
    };
    insert(1, "ended").await.expect("an ended rental");
    insert(1, "cancelled").await.expect("a cancelled one");
    insert(1, "active").await.expect("the running one");
    for state in ["pending", "active", "ending"] {
        match insert(1, state).await {
            Err(sqlx::Error::Database(e)) => assert!(e.is_unique_violation(), "{e}"),
            other => panic!("a second {state} rental of door 1: {other:?}"),
        }
    }
    insert(2, "pending").await.expect("another door");
    let running: i64 = on_storage!(&storage, |pool| sqlx::query_scalar(
        "SELECT count(*) FROM rentals WHERE state IN ('pending', 'active', 'ending')"
    )
    .fetch_one(pool)
    .await
    .expect("count"));
    assert_eq!(running, 2);
}

#[sqlx::test]
async fn the_database_fences_one_rental_per_door_on_postgresql(pool: PgPool) {
    the_database_fences_one_rental_per_door(pool.into()).await;
}

#[tokio::test]
async fn the_database_fences_one_rental_per_door_on_sqlite() {
    let (storage, _dir) = crate::helpers::sqlite().await;
    the_database_fences_one_rental_per_door(storage).await;
}
