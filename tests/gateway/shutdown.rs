//! Stopping: /readyz turns 503, new connections are refused, requests in flight (and the unlocks
//! they wait for) finish, within a bound.

use std::time::{Duration, Instant};

use serde_json::json;
use simulator::mqtt::Knob;
use sqlx::PgPool;

use crate::accounts::operator;
use crate::command_helpers::online_locker;
use crate::helpers::spawn_app_with;

async fn stop_with_slow_unlock(
    pool: PgPool,
    grace: Duration,
    door_ms: u64,
) -> (Option<u16>, Duration) {
    let app = spawn_app_with(pool, |config| config.shutdown_grace = grace).await;
    let admin = operator(&app, "ops@example.com").await;
    let locker = online_locker(&app, "lk-1").await;
    locker
        .turn(Knob::AckDelay(Duration::from_millis(door_ms)))
        .await;
    let url = app.url("/v1/devices/lk-1/doors/1/unlock");
    let livez = app.url("/livez");
    let request = tokio::spawn({
        let http = app.http.clone();
        async move {
            http.post(url)
                .bearer_auth(admin)
                .json(&json!({ "reason": "during shutdown" }))
                .send()
                .await
                .ok()
                .map(|r| r.status().as_u16())
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let http = app.http.clone();
    app.app.run_until_stopped(async {}).await;
    let took = started.elapsed();
    let status = request.await.expect("joined");
    // Stopped: nothing answers any more.
    assert!(
        http.get(livez).send().await.is_err(),
        "still accepting after the stop"
    );
    (status, took)
}

#[sqlx::test]
async fn a_request_in_flight_finishes_before_the_gateway_stops(pool: PgPool) {
    let (status, took) = stop_with_slow_unlock(pool, Duration::from_secs(30), 1500).await;
    assert_eq!(status, Some(200), "the unlock in flight was answered");
    assert!(
        took >= Duration::from_millis(900),
        "the stop did not wait: {took:?}"
    );
}

#[sqlx::test]
async fn the_wait_for_requests_in_flight_is_bounded(pool: PgPool) {
    let (status, took) = stop_with_slow_unlock(pool, Duration::from_secs(1), 4000).await;
    // Cut off: no answer at all, never a 5xx from a request left running on closed pools.
    assert_eq!(status, None, "the slow unlock outlived the grace period");
    assert!(took < Duration::from_secs(3), "the stop took {took:?}");
}
