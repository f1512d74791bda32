//! Rentals after they start: open again, end and pay (the fee, the hold, the debt), operators'
//! actions, alarms, and rentals a crash interrupted.

use serde_json::{Value, json};
use simulator::mqtt::Knob;
use sqlx::PgPool;
use uuid::Uuid;

use crate::accounts::operator;
use crate::api::problem;
use crate::command_helpers::online_locker;
use crate::helpers::{TestApp, on_storage, spawn_app, spawn_edge_app};
use crate::rentals::{funded, money, plan, rent};

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
    rent_close_reopen_end_and_the_fee_is_taken_from_the_hold_in(spawn_app(pool).await).await;
}

#[tokio::test]
async fn in_edge_mode_rent_close_reopen_end_and_the_fee_is_taken_from_the_hold() {
    rent_close_reopen_end_and_the_fee_is_taken_from_the_hold_in(spawn_edge_app().await).await;
}

async fn rent_close_reopen_end_and_the_fee_is_taken_from_the_hold_in(app: TestApp) {
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
    const BACKDATE: &str = "UPDATE rentals SET started_at = $2 WHERE id = $1";
    let three_hours_ago = chrono::Utc::now() - chrono::Duration::hours(3);
    let rental_id: Uuid = rid.parse().expect("uuid");
    on_storage!(&app.storage, |pool| sqlx::query(BACKDATE)
        .bind(rental_id)
        .bind(three_hours_ago)
        .execute(pool)
        .await
        .expect("backdated")
        .rows_affected());
    let ended = post_empty(&app, &token, &format!("/v1/rentals/{rid}/end")).await;
    assert_eq!(ended.status(), 200);
    let ended: Value = ended.json().await.expect("rental");
    assert_eq!(
        (&ended["state"], &ended["fee"]),
        (&json!("ended"), &json!("3.00"))
    );
    // The money, plainly: how the fee was made and where the deposit went.
    let bill = &ended["bill"];
    assert_eq!(bill["fee"], "3.00", "{bill}");
    assert_eq!(
        (&bill["free_minutes"], &bill["units"]),
        (&json!(30), &json!(3))
    );
    assert_eq!(bill["cap_applied"], false);
    assert_eq!(bill["captured_from_deposit"], "3.00");
    assert_eq!(bill["released_to_wallet"], "17.00");
    assert_eq!(bill["beyond_deposit"], "0.00");
    assert!(
        bill["billed_minutes"]
            .as_u64()
            .is_some_and(|m| (180..=182).contains(&m))
    );
    assert_eq!(money(&app, id).await, (4700, 0));
    const KINDS: &str = "SELECT kind FROM ledger l JOIN wallets w ON w.id = l.wallet_id
         WHERE w.user_id = $1 ORDER BY l.id";
    let kinds: Vec<String> = on_storage!(&app.storage, |pool| sqlx::query_scalar(KINDS)
        .bind(id)
        .fetch_all(pool)
        .await
        .expect("ledger"));
    assert_eq!(kinds, ["top_up", "hold", "capture", "release"]);
    const EVENTS: &str = "SELECT event_type FROM outbox
         WHERE event_type LIKE 'rental.%' OR event_type LIKE 'payment.%' ORDER BY seq";
    let events: Vec<String> = on_storage!(&app.storage, |pool| sqlx::query_scalar(EVENTS)
        .fetch_all(pool)
        .await
        .expect("events"));
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
    const SENSOR: &str = "SELECT sensor FROM doors WHERE device_id = 'lk-1' AND door = $1";
    crate::helpers::eventually("the door closed", || async {
        on_storage!(&app.storage, |pool| sqlx::query_scalar::<_, String>(SENSOR)
            .bind(i32::from(door))
            .fetch_one(pool)
            .await
            .is_ok_and(|s| s == "closed"))
    })
    .await;
    let next: Value = rent(&app, &token, json!({ "device_id": "lk-1", "door": door }))
        .await
        .json()
        .await
        .expect("rental");
    assert_eq!(next["state"], "active");
}

crate::helpers::in_both_modes! {
    /// A fee beyond the hold and the balance: the door opens, the rest is a debt paid first by a top-up.
    async fn a_fee_beyond_hold_and_balance_still_opens_the_door_and_leaves_a_debt(backend: Backend) {
        let app = backend.spawn().await;
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
        let three_days_ago = chrono::Utc::now() - chrono::Duration::days(3);
        let rental_id: Uuid = rid.parse().expect("uuid");
        on_storage!(&app.storage, |pool| sqlx::query("UPDATE rentals SET started_at = $2 WHERE id = $1")
            .bind(rental_id)
            .bind(three_days_ago)
            .execute(pool)
            .await
            .expect("backdated")
            .rows_affected());
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
}

crate::helpers::in_both_modes! {
    /// Ending while the locker is offline is refused, charges nothing, and the rental goes on.
    async fn ending_while_the_locker_is_offline_charges_nothing_and_the_rental_goes_on(backend: Backend) {
        let app = backend.spawn().await;
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
        let rental_id: Uuid = rid.parse().expect("uuid");
        let state: String = on_storage!(&app.storage, |pool| sqlx::query_scalar("SELECT state FROM rentals WHERE id = $1")
            .bind(rental_id)
            .fetch_one(pool)
            .await
            .expect("state"));
        assert_eq!(state, "active");
    }
}

crate::helpers::in_both_modes! {
    /// Operators end, refund and cancel rentals (each audited, customers refused), on both
    /// backends; an alarm during a rental flags it.
    async fn operators_end_refund_and_cancel_rentals_and_alarms_flag_them(backend: Backend) {
        let app = backend.spawn().await;
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
            let listed: Value = app
                .http
                .get(app.url("/v1/admin/rentals?device_id=lk-1"))
                .bearer_auth(&admin)
                .send()
                .await
                .expect("sent")
                .json()
                .await
                .expect("a page");
            listed["items"].as_array().is_some_and(|items| {
                items.iter().any(|r| {
                    r["id"] == first_id.as_str()
                        && r["flags"].as_array().is_some_and(|f| f.iter().any(|x| x == "alarm.forced_open"))
                })
            })
        })
        .await;
        // The operator ends it (2 hours: 2.00), then refunds 0.50, then the rest.
        let two_hours_ago = chrono::Utc::now() - chrono::Duration::hours(2);
        let first_uuid: Uuid = first_id.parse().expect("a uuid");
        on_storage!(&app.storage, |pool| sqlx::query("UPDATE rentals SET started_at = $1 WHERE id = $2")
            .bind(two_hours_ago)
            .bind(first_uuid)
            .execute(pool)
            .await
            .expect("backdated")
            .rows_affected());
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
        let rows: Vec<(String, String)> = on_storage!(&app.storage, |pool| sqlx::query_as(
            "SELECT action, outcome FROM audit_log WHERE action LIKE 'rental.%' ORDER BY id",
        )
        .fetch_all(pool)
        .await
        .expect("audit"));
        let actions: Vec<String> = rows.iter().map(|(a, o)| format!("{a}:{o}")).collect();
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
}

/// A rental left `pending` by a request that never finished (the gateway died mid-way), made
/// to look ten minutes old.
async fn interrupted_rental(app: &TestApp, user: Uuid, door: i32) -> Uuid {
    let wallets = locker_gateway::wallet::Wallets::on(app.storage.clone(), Default::default());
    let id = Uuid::now_v7();
    wallets
        .change(
            user,
            &locker_gateway::wallet::Movement::hold(2000).for_(format!("rental {id}")),
        )
        .await
        .expect("held");
    let ten_minutes_ago = chrono::Utc::now() - chrono::Duration::minutes(10);
    on_storage!(&app.storage, |pool| sqlx::query(
        "INSERT INTO rentals (id, user_id, device_id, door, state, terms, deposit_held, created_at)
         VALUES ($1, $2, 'lk-1', $3, 'pending', '{}', 2000, $4)",
    )
    .bind(id)
    .bind(user)
    .bind(door)
    .bind(ten_minutes_ago)
    .execute(pool)
    .await
    .expect("rental")
    .rows_affected());
    id
}

crate::helpers::in_both_modes! {
    /// Rentals a crash interrupted: undone if no unlock was sent, running if the door opened.
    async fn rentals_interrupted_by_a_crash_are_finished_or_undone(backend: Backend) {
        let app = backend.spawn().await;
        plan(&app).await;
        let _locker = online_locker(&app, "lk-1").await;
        let (_, user) = funded(&app, "r@example.com", 5000).await;
        // Died before sending the unlock: no door opened, so nothing is charged.
        let undone = interrupted_rental(&app, user, 1).await;
        // Died after the locker opened the door: the rental runs.
        let finished = interrupted_rental(&app, user, 2).await;
        on_storage!(&app.storage, |pool| sqlx::query(
            "INSERT INTO commands (device_id, kind, door, body, state, door_result, reason, created_at)
             VALUES ('lk-1', 'unlock', 2, '{\"door\": 2}', 'executed', 'opened', $1, $2)",
        )
        .bind(format!("rental {finished}"))
        .bind(chrono::Utc::now())
        .execute(pool)
        .await
        .expect("command")
        .rows_affected());
        let storage = app.storage.clone();
        let state = |id: Uuid| {
            let storage = storage.clone();
            async move {
                on_storage!(&storage, |pool| sqlx::query_scalar::<_, String>(
                    "SELECT state FROM rentals WHERE id = $1"
                )
                .bind(id)
                .fetch_one(pool)
                .await
                .unwrap_or_default())
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
}
