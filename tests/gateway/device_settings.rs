//! Operators change a locker's settings (`POST /v1/devices/{id}/configure`): checked against the
//! protocol's ranges before anything is stored or sent, executed by the locker, recorded with who
//! and why, audited.

use serde_json::{Value, json};
use sqlx::PgPool;

use crate::accounts::operator;
use crate::api::problem;
use crate::command_helpers::online_locker;
use crate::devices_api::{get, json_of, post};
use crate::helpers::spawn_app;

/// A settings body with this heartbeat and reason, the rest at the protocol's defaults.
pub fn settings(heartbeat_secs: u16, reason: &str) -> Value {
    json!({
        "heartbeat_secs": heartbeat_secs, "open_window_ms": 10_000, "pulse_ms": 300,
        "ajar_alarm_secs": 120, "reason": reason,
    })
}

#[sqlx::test]
async fn an_operator_changes_a_lockers_settings_and_the_command_is_recorded(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let admin = operator(&app, "ops@example.com").await;
    let _locker = online_locker(&app, "lk-1").await;
    let body = json_of(
        post(
            &app,
            &admin,
            "/v1/devices/lk-1/configure",
            settings(30, "faster heartbeats"),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(body["result"], "executed");
    let command_id = body["command_id"].as_i64().expect("id");
    let (kind, state, sent, reason): (String, String, Value, Option<String>) =
        sqlx::query_as("SELECT kind, state, body, reason FROM commands WHERE id = $1")
            .bind(command_id)
            .fetch_one(&pool)
            .await
            .expect("the command row");
    assert_eq!(kind, "configure");
    assert_eq!(state, "executed");
    assert_eq!(sent["heartbeat_secs"], 30);
    assert_eq!(reason.as_deref(), Some("faster heartbeats"));
    let history = json_of(get(&app, &admin, "/v1/devices/lk-1/commands").await, 200).await;
    assert_eq!(history["items"][0]["id"], command_id);
    let audit = json_of(
        get(&app, &admin, "/v1/audit?action=device.configure").await,
        200,
    )
    .await;
    assert_eq!(audit["items"][0]["outcome"], "ok");
    assert_eq!(audit["items"][0]["detail"]["heartbeat_secs"], 30);
}

#[sqlx::test]
async fn settings_outside_the_protocols_ranges_are_refused_before_anything_is_sent(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let admin = operator(&app, "ops@example.com").await;
    let _locker = online_locker(&app, "lk-1").await;
    let cases = [
        ("heartbeat_secs", json!(4)),
        ("heartbeat_secs", json!(3601)),
        ("open_window_ms", json!(999)),
        ("pulse_ms", json!(5001)),
        ("ajar_alarm_secs", json!(9)),
    ];
    for (field, value) in cases {
        let mut body = settings(60, "test");
        body[field] = value.clone();
        let answer = problem(
            post(&app, &admin, "/v1/devices/lk-1/configure", body).await,
            422,
            "validation_failed",
        )
        .await;
        assert_eq!(
            answer["errors"][0]["field"], field,
            "{field} = {value}: {answer}"
        );
    }
    // Not a number the wire can carry, an unknown field, no reason: refused as well.
    let mut body = settings(60, "test");
    body["pulse_ms"] = json!(70_000);
    let status = post(&app, &admin, "/v1/devices/lk-1/configure", body)
        .await
        .status();
    assert_eq!(status.as_u16(), 422);
    let mut body = settings(60, "test");
    body["colour"] = json!("red");
    let status = post(&app, &admin, "/v1/devices/lk-1/configure", body)
        .await
        .status();
    assert_eq!(status.as_u16(), 422);
    problem(
        post(
            &app,
            &admin,
            "/v1/devices/lk-1/configure",
            settings(60, " "),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    let (commands,): (i64,) = sqlx::query_as("SELECT count(*) FROM commands")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(commands, 0, "nothing stored or sent");
    let refused = json_of(
        get(
            &app,
            &admin,
            "/v1/audit?action=device.configure&outcome=refused",
        )
        .await,
        200,
    )
    .await;
    assert_eq!(refused["items"].as_array().map(Vec::len), Some(6));
}
