//! Rentals over HTTP with a real broker, simulated lockers, PostgreSQL and Redis: the door opens
//! for exactly one renter, and a failed unlock charges nobody.

use serde_json::{Value, json};
use simulator::mqtt::Knob;
use sqlx::PgPool;
use uuid::Uuid;

use crate::accounts::{customer, operator};
use crate::api::problem;
use crate::command_helpers::online_locker;
use crate::helpers::{TestApp, spawn_app, spawn_app_with};

/// A plan for size `m` (every test door's size): deposit 20.00.
async fn plan(app: &TestApp) {
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
async fn funded(app: &TestApp, email: &str, amount: i64) -> (String, Uuid) {
    let token = customer(app, email).await;
    let id: Uuid = crate::accounts::me_id(app, &token)
        .await
        .parse()
        .expect("uuid");
    if amount > 0 {
        let wallets = locker_gateway::wallet::Wallets::new(app.pool.clone(), Default::default());
        wallets
            .change(id, &locker_gateway::wallet::Movement::top_up(amount))
            .await
            .expect("funded");
    }
    (token, id)
}

async fn rent(app: &TestApp, token: &str, body: Value) -> reqwest::Response {
    app.http
        .post(app.url("/v1/rentals"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("sent")
}

/// (available, held) and whether the ledger adds up.
async fn money(app: &TestApp, user: Uuid) -> (i64, i64) {
    let (available, held, sum, _) = crate::wallets::books(&app.pool, user).await;
    assert_eq!(available + held, sum, "the ledger adds up");
    (available, held)
}

#[sqlx::test]
async fn a_rental_opens_a_door_and_holds_the_deposit(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
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
    let door: String = sqlx::query_scalar(
        "SELECT c.door_result FROM rentals r JOIN commands c ON c.id = r.start_command",
    )
    .fetch_one(&pool)
    .await
    .expect("command");
    assert_eq!(door, "opened");
    let started: i64 =
        sqlx::query_scalar("SELECT count(*) FROM outbox WHERE event_type = 'rental.started'")
            .fetch_one(&pool)
            .await
            .expect("count");
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
    let rentals: i64 = sqlx::query_scalar("SELECT count(*) FROM rentals")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(rentals, 1);
}

#[sqlx::test]
async fn a_failed_unlock_cancels_the_rental_and_charges_nobody(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
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
    let (suspect, jams): (bool, i32) = sqlx::query_as(
        "SELECT suspect, jams_in_row FROM doors WHERE device_id = 'lk-1' AND door = 1",
    )
    .fetch_one(&pool)
    .await
    .expect("door");
    assert_eq!((suspect, jams), (true, 1));
    // The next rental skips the suspect door.
    let next = rent(&app, &token, json!({ "device_id": "lk-1" })).await;
    assert_eq!(next.status(), 201);
    let next: Value = next.json().await.expect("rental");
    assert_eq!(next["door"], 2);
    // An offline locker: cancelled at once, nothing held.
    app.provision("lk-off", 4).await;
    sqlx::query("UPDATE doors SET sensor = 'closed' WHERE device_id = 'lk-off'")
        .execute(&pool)
        .await
        .expect("doors");
    let offline = rent(&app, &token, json!({ "device_id": "lk-off" })).await;
    problem(offline, 503, "device_offline").await;
    assert_eq!(
        money(&app, id).await,
        (3000, 2000),
        "only the running rental holds money"
    );
    let cancelled: Vec<String> = sqlx::query_scalar(
        "SELECT cancel_reason FROM rentals WHERE state = 'cancelled' ORDER BY created_at",
    )
    .fetch_all(&pool)
    .await
    .expect("rentals");
    assert_eq!(cancelled, ["jammed", "offline"]);
}

#[sqlx::test]
async fn two_hundred_requests_for_four_doors_make_four_rentals(pool: PgPool) {
    let app = spawn_app_with(pool.clone(), |config| {
        config.rate_limits.per_ip_per_minute = 100_000;
    })
    .await;
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
    let held: i64 = sqlx::query_scalar("SELECT sum(held)::bigint FROM wallets")
        .fetch_one(&pool)
        .await
        .expect("sum");
    assert_eq!(held, 4 * 2000, "only the four renters hold money");
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

async fn post_empty(app: &TestApp, token: &str, path: &str) -> reqwest::Response {
    app.http
        .post(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .expect("sent")
}

#[sqlx::test]
async fn rent_close_reopen_end_and_the_fee_is_taken_from_the_hold(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let (_tap, mut bus) = app.tap("events/#");
    plan(&app).await;
    let locker = online_locker(&app, "lk-1").await;
    let (token, id) = funded(&app, "r@example.com", 5000).await;
    let rental: Value = rent(&app, &token, json!({ "device_id": "lk-1" }))
        .await
        .json()
        .await
        .expect("rental");
    let rid = rental["id"].as_str().expect("id").to_owned();
    let door = rental["door"].as_u64().expect("door") as u16;
    locker.turn(Knob::CloseDoor(door)).await;
    let reopened = post_empty(&app, &token, &format!("/v1/rentals/{rid}/open")).await;
    assert_eq!(reopened.status(), 200);
    assert_eq!(
        money(&app, id).await,
        (3000, 2000),
        "opening again costs nothing"
    );
    locker.turn(Knob::CloseDoor(door)).await;
    // A new plan for the size changes nothing for this running rental.
    let admin = operator(&app, "later@example.com").await;
    let mut dearer = crate::plans::plan_body("m", "Dearer");
    dearer["price_per_unit"] = json!("9.00");
    let published = app
        .http
        .post(app.url("/v1/plans"))
        .bearer_auth(&admin)
        .json(&dearer)
        .send()
        .await
        .expect("sent");
    assert_eq!(published.status(), 201);
    // Three hours ago: 30 free minutes, then 3 started hours at 1.00.
    sqlx::query("UPDATE rentals SET started_at = now() - interval '3 hours' WHERE id = $1::uuid")
        .bind(&rid)
        .execute(&pool)
        .await
        .expect("backdated");
    let ended = post_empty(&app, &token, &format!("/v1/rentals/{rid}/end")).await;
    assert_eq!(ended.status(), 200);
    let ended: Value = ended.json().await.expect("rental");
    assert_eq!(
        (&ended["state"], &ended["fee"]),
        (&json!("ended"), &json!("3.00"))
    );
    assert_eq!(money(&app, id).await, (4700, 0));
    let kinds: Vec<String> = sqlx::query_scalar(
        "SELECT kind FROM ledger l JOIN wallets w ON w.id = l.wallet_id
         WHERE w.user_id = $1 ORDER BY l.id",
    )
    .bind(id)
    .fetch_all(&pool)
    .await
    .expect("ledger");
    assert_eq!(kinds, ["top_up", "hold", "capture", "release"]);
    let events: Vec<String> = sqlx::query_scalar(
        "SELECT event_type FROM outbox WHERE event_type LIKE 'rental.%' OR event_type LIKE 'payment.%'
         ORDER BY seq",
    )
    .fetch_all(&pool)
    .await
    .expect("events");
    assert_eq!(
        events,
        ["rental.started", "payment.captured", "rental.ended"]
    );
    let again = post_empty(&app, &token, &format!("/v1/rentals/{rid}/end")).await;
    problem(again, 409, "rental_not_active").await;
    // Subscribers of events/# saw the rental's life go by.
    let mut seen = Vec::new();
    let wanted = [
        "events/wallet.topped_up",
        "events/rental.started",
        "events/device.unlocked",
        "events/device.locked",
        "events/payment.captured",
        "events/rental.ended",
    ];
    let deadline = tokio::time::Instant::now() + crate::helpers::WAIT;
    while !wanted.iter().all(|w| seen.iter().any(|s: &String| s == w)) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "events seen: {seen:?}"
        );
        let (topic, _) = crate::helpers::link_next(&mut bus).await;
        seen.push(topic);
    }
    // The door is free again for the next renter, once its sensor says it closed.
    locker.turn(Knob::CloseDoor(door)).await;
    crate::helpers::eventually("the door closed", || async {
        sqlx::query_scalar::<_, String>(
            "SELECT sensor FROM doors WHERE device_id = 'lk-1' AND door = $1",
        )
        .bind(i32::from(door))
        .fetch_one(&pool)
        .await
        .is_ok_and(|s| s == "closed")
    })
    .await;
    let next: Value = rent(&app, &token, json!({ "device_id": "lk-1", "door": door }))
        .await
        .json()
        .await
        .expect("rental");
    assert_eq!(next["state"], "active");
}

#[sqlx::test]
async fn a_fee_beyond_hold_and_balance_still_opens_the_door_and_leaves_a_debt(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    plan(&app).await;
    let locker = online_locker(&app, "lk-1").await;
    let (token, id) = funded(&app, "r@example.com", 2500).await;
    let rental: Value = rent(&app, &token, json!({ "device_id": "lk-1" }))
        .await
        .json()
        .await
        .expect("rental");
    let rid = rental["id"].as_str().expect("id").to_owned();
    locker.turn(Knob::CloseDoor(1)).await;
    // Three full days: 30.00, against a 20.00 hold and 5.00 available.
    sqlx::query("UPDATE rentals SET started_at = now() - interval '3 days' WHERE id = $1::uuid")
        .bind(&rid)
        .execute(&pool)
        .await
        .expect("backdated");
    let ended = post_empty(&app, &token, &format!("/v1/rentals/{rid}/end")).await;
    assert_eq!(ended.status(), 200, "pickup is never refused over money");
    let ended: Value = ended.json().await.expect("rental");
    assert_eq!(ended["fee"], "30.00");
    assert_eq!(money(&app, id).await, (0, 0));
    let wallet: Value = app
        .http
        .get(app.url("/v1/wallet"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("wallet");
    assert_eq!(wallet["debt"], "5.00");
    problem(
        rent(&app, &token, json!({ "device_id": "lk-1" })).await,
        402,
        "unpaid_debt",
    )
    .await;
    // A top-up pays the debt first.
    let admin = operator(&app, "ops2@example.com").await;
    let topped = app
        .http
        .post(app.url(&format!("/v1/wallets/{id}/top-ups")))
        .bearer_auth(&admin)
        .json(&json!({ "amount": "25.00" }))
        .send()
        .await
        .expect("sent");
    let topped: Value = topped.json().await.expect("wallet");
    assert_eq!(
        (&topped["available"], &topped["debt"]),
        (&json!("20.00"), &json!("0.00"))
    );
    assert_eq!(money(&app, id).await, (2000, 0));
    assert_eq!(
        rent(&app, &token, json!({ "device_id": "lk-1" }))
            .await
            .status(),
        201
    );
}

#[sqlx::test]
async fn ending_while_the_locker_is_offline_charges_nothing_and_the_rental_goes_on(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    plan(&app).await;
    let locker = online_locker(&app, "lk-1").await;
    let (token, id) = funded(&app, "r@example.com", 5000).await;
    let rental: Value = rent(&app, &token, json!({ "device_id": "lk-1" }))
        .await
        .json()
        .await
        .expect("rental");
    let rid = rental["id"].as_str().expect("id").to_owned();
    locker.turn(Knob::Drop).await;
    crate::helpers::eventually("offline", || async { !app.online("lk-1").await }).await;
    let refused = post_empty(&app, &token, &format!("/v1/rentals/{rid}/end")).await;
    problem(refused, 503, "device_offline").await;
    assert_eq!(money(&app, id).await, (3000, 2000));
    let state: String = sqlx::query_scalar("SELECT state FROM rentals WHERE id = $1::uuid")
        .bind(&rid)
        .fetch_one(&pool)
        .await
        .expect("state");
    assert_eq!(state, "active");
}

#[sqlx::test]
async fn operators_end_refund_and_cancel_rentals_and_alarms_flag_them(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    plan(&app).await;
    let locker = online_locker(&app, "lk-1").await;
    let admin = operator(&app, "boss@example.com").await;
    let (token, id) = funded(&app, "r@example.com", 10_000).await;
    let first: Value = rent(&app, &token, json!({ "device_id": "lk-1", "door": 1 }))
        .await
        .json()
        .await
        .expect("rental");
    let first_id = first["id"].as_str().expect("id").to_owned();
    // A forced opening during the rental flags it for operators.
    locker.turn(Knob::CloseDoor(1)).await;
    locker.turn(Knob::ForceOpen(1)).await;
    crate::helpers::eventually("the rental is flagged", || async {
        sqlx::query_scalar::<_, bool>(
            "SELECT 'alarm.forced_open' = ANY(flags) FROM rentals WHERE id = $1::uuid",
        )
        .bind(&first_id)
        .fetch_one(&pool)
        .await
        .unwrap_or(false)
    })
    .await;
    // The operator ends it (2 hours: 2.00), then refunds 0.50, then the rest.
    sqlx::query("UPDATE rentals SET started_at = now() - interval '2 hours' WHERE id = $1::uuid")
        .bind(&first_id)
        .execute(&pool)
        .await
        .expect("backdated");
    let admin_post = |path: String, body: Value| {
        app.http
            .post(app.url(&path))
            .bearer_auth(&admin)
            .json(&body)
            .send()
    };
    let ended: Value = admin_post(format!("/v1/admin/rentals/{first_id}/end"), json!({}))
        .await
        .expect("sent")
        .json()
        .await
        .expect("rental");
    assert_eq!(
        (&ended["state"], &ended["fee"]),
        (&json!("ended"), &json!("2.00"))
    );
    assert_eq!(money(&app, id).await, (9800, 0));
    let refund = format!("/v1/admin/rentals/{first_id}/refund");
    let part: Value = admin_post(
        refund.clone(),
        json!({ "amount": "0.50", "reason": "late" }),
    )
    .await
    .expect("sent")
    .json()
    .await
    .expect("rental");
    assert_eq!(part["refunded"], "0.50");
    let too_much = admin_post(refund.clone(), json!({ "amount": "5.00" }))
        .await
        .expect("sent");
    problem(too_much, 422, "not_refundable").await;
    let rest: Value = admin_post(refund.clone(), json!({}))
        .await
        .expect("sent")
        .json()
        .await
        .expect("rental");
    assert_eq!(rest["refunded"], "2.00");
    assert_eq!(money(&app, id).await, (10_000, 0));
    // A running rental cancelled by the operator: no fee, the hold released.
    let second: Value = rent(&app, &token, json!({ "device_id": "lk-1", "door": 2 }))
        .await
        .json()
        .await
        .expect("rental");
    let second_id = second["id"].as_str().expect("id").to_owned();
    assert_eq!(money(&app, id).await, (8000, 2000));
    let cancelled: Value = admin_post(format!("/v1/admin/rentals/{second_id}/cancel"), json!({}))
        .await
        .expect("sent")
        .json()
        .await
        .expect("rental");
    assert_eq!(cancelled["state"], "cancelled");
    assert_eq!(money(&app, id).await, (10_000, 0));
    let again = admin_post(format!("/v1/admin/rentals/{second_id}/cancel"), json!({}))
        .await
        .expect("sent");
    problem(again, 409, "rental_not_active").await;
    // Customers cannot; every operator action is audited.
    let by_customer = app
        .http
        .post(app.url(&format!("/v1/admin/rentals/{second_id}/cancel")))
        .bearer_auth(&token)
        .send()
        .await
        .expect("sent");
    problem(by_customer, 403, "forbidden").await;
    let actions: Vec<String> = sqlx::query_scalar(
        "SELECT action || ':' || outcome FROM audit_log WHERE action LIKE 'rental.%' ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .expect("audit");
    assert_eq!(
        actions,
        [
            "rental.end:ok",
            "rental.refund:ok",
            "rental.refund:refused",
            "rental.refund:ok",
            "rental.cancel:ok",
            "rental.cancel:refused"
        ]
    );
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
    let body = problem(silent, 504, "device_timeout").await;
    assert!(
        body["detail"].as_str().unwrap_or("").contains("asked"),
        "{body}"
    );
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
    problem(silent, 504, "device_timeout").await;
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

/// A rental left `pending` by a request that never finished (the gateway died mid-way), made
/// to look ten minutes old.
async fn interrupted_rental(app: &TestApp, user: Uuid, door: i32) -> Uuid {
    let wallets = locker_gateway::wallet::Wallets::new(app.pool.clone(), Default::default());
    let id = Uuid::now_v7();
    wallets
        .change(
            user,
            &locker_gateway::wallet::Movement::hold(2000).for_(format!("rental {id}")),
        )
        .await
        .expect("held");
    sqlx::query(
        "INSERT INTO rentals (id, user_id, device_id, door, state, terms, deposit_held, created_at)
         VALUES ($1, $2, 'lk-1', $3, 'pending', '{}', 2000, now() - interval '10 minutes')",
    )
    .bind(id)
    .bind(user)
    .bind(door)
    .execute(&app.pool)
    .await
    .expect("rental");
    id
}

#[sqlx::test]
async fn rentals_interrupted_by_a_crash_are_finished_or_undone(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    plan(&app).await;
    let _locker = online_locker(&app, "lk-1").await;
    let (_, user) = funded(&app, "r@example.com", 5000).await;
    // Died before sending the unlock: no door opened, so nothing is charged.
    let undone = interrupted_rental(&app, user, 1).await;
    // Died after the locker opened the door: the rental runs.
    let finished = interrupted_rental(&app, user, 2).await;
    sqlx::query(
        "INSERT INTO commands (device_id, kind, door, body, state, door_result, reason)
         VALUES ('lk-1', 'unlock', 2, '{\"door\": 2}', 'executed', 'opened', $1)",
    )
    .bind(format!("rental {finished}"))
    .execute(&pool)
    .await
    .expect("command");
    let state = |id: Uuid| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, String>("SELECT state FROM rentals WHERE id = $1")
                .bind(id)
                .fetch_one(&pool)
                .await
                .unwrap_or_default()
        }
    };
    crate::helpers::eventually("both settled", || async {
        state(undone).await == "cancelled" && state(finished).await == "active"
    })
    .await;
    assert_eq!(
        money(&app, user).await,
        (3000, 2000),
        "only the running rental holds money"
    );
}
