//! A pickup is settled by what the locker reports, never by a timeout: a door that opened ends
//! the rental as of that unlock; one that did not leaves it running without billing the wait.
//! The answer says "not known yet", with the rental's state, instead of "did not open".

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use simulator::mqtt::Knob;

use crate::api::problem;
use crate::command_helpers::online_locker;
use crate::helpers::{TestApp, in_both_modes, on_storage};
use crate::rentals::{funded, money, plan, rent};

async fn end(app: &TestApp, token: &str, id: &str) -> reqwest::Response {
    app.http
        .post(app.url(&format!("/v1/rentals/{id}/end")))
        .bearer_auth(token)
        .send()
        .await
        .expect("sent")
}

async fn rental(app: &TestApp, token: &str, id: &str) -> Value {
    app.http
        .get(app.url(&format!("/v1/rentals/{id}")))
        .bearer_auth(token)
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("rental")
}

async fn unbilled_ms(app: &TestApp, id: &str) -> i64 {
    let id: uuid::Uuid = id.parse().expect("uuid");
    on_storage!(&app.storage, |pool| sqlx::query_scalar(
        "SELECT unbilled_ms FROM rentals WHERE id = $1"
    )
    .bind(id)
    .fetch_one(pool)
    .await
    .expect("unbilled"))
}

/// Waits (polling) until the rental is in `state`, for up to 30 s.
async fn settles_as(app: &TestApp, token: &str, id: &str, state: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let now = rental(app, token, id).await;
        if now["state"] == state {
            return now;
        }
        assert!(tokio::time::Instant::now() < deadline, "still {now}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

in_both_modes! {
    /// The locker opens the door for the pickup but its ack is lost.
    async fn a_pickup_whose_ack_is_lost_ends_the_rental_as_of_the_unlock(backend: Backend) {
        let app = backend
            .spawn_with(|config| config.command_deadline = Duration::from_secs(2))
            .await;
        plan(&app).await;
        let locker = online_locker(&app, "lk-1").await;
        let (token, user) = funded(&app, "r@example.com", 5000).await;
        let started: Value = rent(&app, &token, json!({ "device_id": "lk-1", "door": 1 }))
            .await
            .json()
            .await
            .expect("rental");
        let id = started["id"].as_str().expect("id").to_owned();
        locker.turn(Knob::CloseDoor(1)).await;
        locker.turn(Knob::DropAcks(100)).await;
        let asked_at = Utc::now();
        let body = problem(end(&app, &token, &id).await, 504, "outcome_unknown").await;
        let answered_at = Utc::now();
        assert_eq!(body["subject"]["id"], id.as_str());
        assert_eq!(body["subject"]["state"], "ending");
        let detail = body["detail"].as_str().unwrap_or_default();
        assert!(!detail.contains("did not open"), "{detail}");
        assert!(!detail.contains("nothing was charged"), "{detail}");
        // The locker says the door opened: the rental ends as of that unlock, not later.
        let ended = settles_as(&app, &token, &id, "ended").await;
        let ended_at: DateTime<Utc> = ended["ended_at"]
            .as_str()
            .expect("ended_at")
            .parse()
            .expect("time");
        assert!(
            ended_at >= asked_at - chrono::Duration::seconds(1) && ended_at <= answered_at,
            "ended at {ended_at}, asked at {asked_at}, answered at {answered_at}"
        );
        assert_eq!(ended["fee"], "0.00", "within the free minutes");
        assert_eq!(money(&app, user).await, (5000, 0), "the hold released");
    }
}

in_both_modes! {
    /// The pickup's door jams and the ack is lost: once the locker says so, the rental runs on and
    /// the wait is not billed.
    async fn a_pickup_that_turns_out_jammed_keeps_the_rental_without_billing_the_wait(backend: Backend) {
        let app = backend
            .spawn_with(|config| config.command_deadline = Duration::from_secs(2))
            .await;
        plan(&app).await;
        let locker = online_locker(&app, "lk-1").await;
        let (token, user) = funded(&app, "r@example.com", 5000).await;
        let started: Value = rent(&app, &token, json!({ "device_id": "lk-1", "door": 1 }))
            .await
            .json()
            .await
            .expect("rental");
        let id = started["id"].as_str().expect("id").to_owned();
        locker.turn(Knob::CloseDoor(1)).await;
        locker.turn(Knob::Jam(1)).await;
        locker.turn(Knob::DropAcks(100)).await;
        let body = problem(end(&app, &token, &id).await, 504, "outcome_unknown").await;
        assert_eq!(body["subject"]["state"], "ending");
        let active = settles_as(&app, &token, &id, "active").await;
        assert!(active["ended_at"].is_null());
        assert!(
            unbilled_ms(&app, &id).await >= 2000,
            "the wait from the pickup request to the locker's answer is not billed"
        );
        assert_eq!(money(&app, user).await, (3000, 2000), "the hold stays");
    }
}
