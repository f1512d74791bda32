//! Operator endpoints for devices, over HTTP, with a real broker and simulated lockers.

use serde_json::{Value, json};
use sqlx::PgPool;

use crate::accounts::{customer, operator};
use crate::api::problem;
use crate::command_helpers::online_locker;
use crate::helpers::{TestApp, device, spawn_app};

pub(crate) async fn post(app: &TestApp, token: &str, path: &str, body: Value) -> reqwest::Response {
    app.http
        .post(app.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("sent")
}

pub(crate) async fn get(app: &TestApp, token: &str, path: &str) -> reqwest::Response {
    app.http
        .get(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .expect("sent")
}

pub(crate) async fn json_of(response: reqwest::Response, status: u16) -> Value {
    let actual = response.status().as_u16();
    let body: Value = response.json().await.expect("json");
    assert_eq!(actual, status, "{body}");
    body
}

/// Every operator endpoint, as (method, path, body).
fn operator_endpoints() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        (
            "POST",
            "/v1/devices",
            json!({ "id": "lk-x", "door_count": 4 }),
        ),
        ("GET", "/v1/devices", Value::Null),
        ("GET", "/v1/devices/lk-1", Value::Null),
        ("POST", "/v1/devices/lk-1/revoke", json!({})),
        ("POST", "/v1/devices/lk-1/rotate", json!({})),
        ("GET", "/v1/devices/lk-1/commands", Value::Null),
        ("POST", "/v1/devices/lk-1/commands/1/cancel", json!({})),
        (
            "POST",
            "/v1/devices/lk-1/doors/1/unlock",
            json!({ "reason": "x" }),
        ),
        (
            "POST",
            "/v1/devices/lk-1/configure",
            crate::device_settings::settings(60, "x"),
        ),
        ("GET", "/v1/audit", Value::Null),
        ("GET", "/v1/gateways", Value::Null),
        ("POST", "/v1/plans", crate::plans::plan_body("m", "M")),
        (
            "POST",
            "/v1/admin/rentals/0190a5d2-0000-7000-8000-000000000000/end",
            json!({}),
        ),
        (
            "POST",
            "/v1/admin/rentals/0190a5d2-0000-7000-8000-000000000000/cancel",
            json!({}),
        ),
        (
            "POST",
            "/v1/admin/rentals/0190a5d2-0000-7000-8000-000000000000/refund",
            json!({}),
        ),
        (
            "POST",
            "/v1/wallets/0190a5d2-0000-7000-8000-000000000000/top-ups",
            json!({ "amount": "1.00" }),
        ),
    ]
}

#[sqlx::test]
async fn customers_and_strangers_reach_no_operator_endpoint_and_refusals_are_audited(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    app.provision("lk-1", 4).await;
    let user = customer(&app, "u@example.com").await;
    let other = customer(&app, "v@example.com").await;
    let admin = operator(&app, "ops@example.com").await;
    for (method, path, body) in operator_endpoints() {
        let request = |token: Option<&str>| {
            let mut request = match method {
                "GET" => app.http.get(app.url(path)),
                _ => app.http.post(app.url(path)).json(&body),
            };
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            request
        };
        let anonymous = request(None).send().await.expect("sent");
        problem(anonymous, 401, "unauthorized").await;
        for token in [&user, &other] {
            let as_user = request(Some(token)).send().await.expect("sent");
            problem(as_user, 403, "forbidden").await;
        }
    }
    // Nothing the customer tried happened.
    let revoked: Option<bool> =
        sqlx::query_scalar("SELECT revoked_at IS NOT NULL FROM devices WHERE id = 'lk-1'")
            .fetch_optional(&pool)
            .await
            .expect("row");
    assert_eq!(revoked, Some(false));
    let provisioned: i64 = sqlx::query_scalar("SELECT count(*) FROM devices WHERE id = 'lk-x'")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(provisioned, 0);
    // Each refused attempt is in the audit log, readable by the operator.
    let page = json_of(
        get(&app, &admin, "/v1/audit?outcome=refused&limit=200").await,
        200,
    )
    .await;
    let items = page["items"].as_array().expect("items");
    assert_eq!(items.len(), 2 * operator_endpoints().len());
    assert!(
        items
            .iter()
            .all(|e| e["actor_email"] == "u@example.com" || e["actor_email"] == "v@example.com")
    );
    assert!(
        items
            .iter()
            .any(|e| e["action"] == "POST /v1/devices/{id}/revoke"
                && e["target"] == "/v1/devices/lk-1/revoke"),
        "{page}"
    );
}

#[sqlx::test]
async fn an_operator_provisions_finds_and_pages_through_devices(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let admin = operator(&app, "ops@example.com").await;
    for (id, model) in [
        ("a-1", "m1"),
        ("a-2", "m1"),
        ("a-3", "m2"),
        ("b-1", "m1"),
        ("b-2", "m2"),
    ] {
        let body = json_of(
            post(
                &app,
                &admin,
                "/v1/devices",
                json!({ "id": id, "model": model, "door_count": 4 }),
            )
            .await,
            201,
        )
        .await;
        assert_eq!(body["device_id"], id);
        assert_eq!(body["secret"].as_str().map(str::len), Some(64));
    }
    problem(
        post(
            &app,
            &admin,
            "/v1/devices",
            json!({ "id": "a-1", "door_count": 4 }),
        )
        .await,
        409,
        "device_exists",
    )
    .await;
    problem(
        post(
            &app,
            &admin,
            "/v1/devices",
            json!({ "id": "bad id!", "door_count": 4 }),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    let ids = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|d| d["id"].as_str().unwrap_or("").to_owned())
            .collect()
    };
    let page = json_of(
        get(&app, &admin, "/v1/devices?prefix=a-&limit=2").await,
        200,
    )
    .await;
    assert_eq!(ids(&page), ["a-1", "a-2"]);
    assert_eq!(page["next"], "a-2");
    let page = json_of(
        get(&app, &admin, "/v1/devices?prefix=a-&limit=2&after=a-2").await,
        200,
    )
    .await;
    assert_eq!(ids(&page), ["a-3"]);
    assert!(page["next"].is_null());
    let page = json_of(get(&app, &admin, "/v1/devices?model=m2").await, 200).await;
    assert_eq!(ids(&page), ["a-3", "b-2"]);
    let page = json_of(get(&app, &admin, "/v1/devices?online=true").await, 200).await;
    assert!(ids(&page).is_empty());
    problem(
        get(&app, &admin, "/v1/devices?limit=0").await,
        422,
        "validation_failed",
    )
    .await;
    problem(
        get(&app, &admin, "/v1/devices?online=maybe").await,
        400,
        "bad_request",
    )
    .await;
    // A locker with the credentials the API gave comes online and shows with its doors.
    let _locker = online_locker(&app, "lk-on").await;
    let page = json_of(get(&app, &admin, "/v1/devices?online=true").await, 200).await;
    assert_eq!(ids(&page), ["lk-on"]);
    let detail = json_of(get(&app, &admin, "/v1/devices/lk-on").await, 200).await;
    assert_eq!(detail["device"]["online"], true);
    assert_eq!(detail["doors"].as_array().map(Vec::len), Some(4));
    problem(
        get(&app, &admin, "/v1/devices/nobody").await,
        404,
        "not_found",
    )
    .await;
    let audit = json_of(
        get(&app, &admin, "/v1/audit?action=device.provision").await,
        200,
    )
    .await;
    let outcomes: Vec<&str> = audit["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|e| e["outcome"].as_str())
        .collect();
    assert_eq!(outcomes.iter().filter(|o| **o == "ok").count(), 5);
    assert_eq!(outcomes.iter().filter(|o| **o == "refused").count(), 2);
}

#[sqlx::test]
async fn a_maintenance_unlock_opens_the_door_and_records_who_and_why(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let admin = operator(&app, "ops@example.com").await;
    let _locker = online_locker(&app, "lk-1").await;
    let body = json_of(
        post(
            &app,
            &admin,
            "/v1/devices/lk-1/doors/2/unlock",
            json!({ "reason": "stuck parcel" }),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(body["door"], "opened");
    let command_id = body["command_id"].as_i64().expect("id");
    let (reason, by): (Option<String>, Option<uuid::Uuid>) =
        sqlx::query_as("SELECT reason, requested_by FROM commands WHERE id = $1")
            .bind(command_id)
            .fetch_one(&pool)
            .await
            .expect("row");
    assert_eq!(reason.as_deref(), Some("stuck parcel"));
    let me: Value = get(&app, &admin, "/v1/me").await.json().await.expect("me");
    assert_eq!(
        by.map(|u| u.to_string()),
        me["id"].as_str().map(str::to_owned)
    );
    let history = json_of(get(&app, &admin, "/v1/devices/lk-1/commands").await, 200).await;
    assert_eq!(history["items"][0]["id"], command_id);
    assert_eq!(history["items"][0]["reason"], "stuck parcel");
    let audit = json_of(get(&app, &admin, "/v1/audit?action=door.unlock").await, 200).await;
    assert_eq!(audit["items"][0]["outcome"], "ok");
    assert_eq!(audit["items"][0]["detail"]["reason"], "stuck parcel");
    // No reason, no unlock; an offline locker is said at once.
    problem(
        post(
            &app,
            &admin,
            "/v1/devices/lk-1/doors/2/unlock",
            json!({ "reason": " " }),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    app.provision("lk-off", 4).await;
    problem(
        post(
            &app,
            &admin,
            "/v1/devices/lk-off/doors/1/unlock",
            json!({ "reason": "test" }),
        )
        .await,
        409,
        "device_offline",
    )
    .await;
    let refused = json_of(
        get(&app, &admin, "/v1/audit?action=door.unlock&outcome=refused").await,
        200,
    )
    .await;
    assert_eq!(refused["items"].as_array().map(Vec::len), Some(2));
}

#[sqlx::test]
async fn pending_commands_are_listed_and_cancelled_revoke_and_rotate(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let admin = operator(&app, "ops@example.com").await;
    app.provision("lk-1", 4).await;
    app.provision("lk-2", 4).await;
    let queued = app
        .app
        .commands()
        .queue(
            device("lk-1"),
            locker_gateway::command::Command::Unlock { door: 1 },
            std::time::Duration::from_secs(600),
        )
        .await
        .expect("queued");
    let pending = json_of(
        get(&app, &admin, "/v1/devices/lk-1/commands?state=pending").await,
        200,
    )
    .await;
    assert_eq!(pending["items"][0]["id"], queued);
    assert_eq!(pending["items"][0]["queued"], true);
    // Through another device's path the command does not exist.
    let elsewhere = format!("/v1/devices/lk-2/commands/{queued}/cancel");
    problem(
        post(&app, &admin, &elsewhere, json!({})).await,
        404,
        "not_found",
    )
    .await;
    let path = format!("/v1/devices/lk-1/commands/{queued}/cancel");
    let body = json_of(post(&app, &admin, &path, json!({})).await, 200).await;
    assert_eq!(body["command_id"], queued);
    problem(
        post(&app, &admin, &path, json!({})).await,
        409,
        "not_cancellable",
    )
    .await;
    // Rotate gives a new secret; revoke is final.
    let rotated = json_of(
        post(
            &app,
            &admin,
            "/v1/devices/lk-1/rotate",
            json!({ "grace_secs": 60 }),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(rotated["secret"].as_str().map(str::len), Some(64));
    assert!(rotated["previous_valid_until"].is_string());
    let revoked = json_of(
        post(&app, &admin, "/v1/devices/lk-1/revoke", json!({})).await,
        200,
    )
    .await;
    assert!(revoked["revoked_at"].is_string());
    problem(
        post(&app, &admin, "/v1/devices/lk-1/rotate", json!({})).await,
        409,
        "device_revoked",
    )
    .await;
    problem(
        post(&app, &admin, "/v1/devices/nobody/revoke", json!({})).await,
        404,
        "not_found",
    )
    .await;
}

#[sqlx::test]
async fn malformed_oversized_and_wrong_bodies_write_nothing(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let admin = operator(&app, "ops@example.com").await;
    let send = |body: Vec<u8>, content_type: &'static str| {
        app.http
            .post(app.url("/v1/devices"))
            .bearer_auth(&admin)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    problem(
        send(b"{\"id\": ".to_vec(), "application/json")
            .await
            .expect("sent"),
        400,
        "bad_request",
    )
    .await;
    problem(
        send(
            br#"{"id": "a", "door_count": "four"}"#.to_vec(),
            "application/json",
        )
        .await
        .expect("sent"),
        422,
        "validation_failed",
    )
    .await;
    problem(
        send(br#"{"id": "a"}"#.to_vec(), "application/json")
            .await
            .expect("sent"),
        422,
        "validation_failed",
    )
    .await;
    problem(
        send(br#"{"id": "a", "door_count": 4}"#.to_vec(), "text/plain")
            .await
            .expect("sent"),
        415,
        "unsupported_media_type",
    )
    .await;
    let mut huge = br#"{"id": "a", "door_count": 4, "model": ""#.to_vec();
    huge.extend(std::iter::repeat_n(b'x', 100 * 1024));
    huge.extend(br#""}"#);
    problem(
        send(huge, "application/json").await.expect("sent"),
        413,
        "payload_too_large",
    )
    .await;
    let devices: i64 = sqlx::query_scalar("SELECT count(*) FROM devices")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(devices, 0, "nothing was written");
}

#[sqlx::test]
async fn a_locker_that_does_not_answer_is_a_504_and_audited_as_failed(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let admin = operator(&app, "ops@example.com").await;
    let locker = online_locker(&app, "lk-1").await;
    locker.turn(simulator::mqtt::Knob::DropAcks(100)).await;
    let response = post(
        &app,
        &admin,
        "/v1/devices/lk-1/doors/1/unlock",
        json!({ "reason": "t" }),
    )
    .await;
    problem(response, 504, "device_timeout").await;
    let audit = json_of(get(&app, &admin, "/v1/audit?action=door.unlock").await, 200).await;
    assert_eq!(audit["items"][0]["outcome"], "failed");
    assert_eq!(audit["items"][0]["detail"]["error"], "device_timeout");
}

/// A CSV upload provisions lockers all or none: a bad row is named with its line and nothing is
/// made; a good file gives every locker's credentials once, and its doors their size classes.
#[sqlx::test]
async fn lockers_are_provisioned_from_a_csv_upload_all_or_none(pool: sqlx::PgPool) {
    let app = crate::helpers::spawn_app(pool.clone()).await;
    let support = crate::accounts::operator_as(
        &app,
        "s@example.com",
        locker_gateway::account::Role::Support,
    )
    .await;
    let upload = |body: String| {
        app.http
            .post(app.url("/v1/devices/import"))
            .bearer_auth(&support)
            .header("content-type", "text/csv")
            .body(body)
            .send()
    };
    let mut good = String::from("id,doors,model,size_classes\n");
    for i in 1..=100 {
        good.push_str(&format!("csv-{i:03},4,lx-4,s s m l\n"));
    }
    let mut bad = good.clone();
    bad.push_str("csv-101,0,lx-4,m\n");
    let refused = json_of(upload(bad).await.expect("sent"), 422).await;
    assert_eq!(refused["code"], "validation_failed");
    assert_eq!(refused["errors"][0]["field"], "line 102: doors");
    let none: i64 = sqlx::query_scalar("SELECT count(*) FROM devices")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(none, 0, "nothing provisioned");
    let made = json_of(upload(good.clone()).await.expect("sent"), 201).await;
    assert_eq!(made["count"], 100);
    assert_eq!(made["credentials"][0]["device_id"], "csv-001");
    assert_eq!(
        made["credentials"][99]["mqtt_password"]
            .as_str()
            .map(str::len),
        Some(64)
    );
    let sizes: Vec<String> = sqlx::query_scalar(
        "SELECT size_class FROM doors WHERE device_id = 'csv-042' ORDER BY door",
    )
    .fetch_all(&pool)
    .await
    .expect("doors");
    assert_eq!(sizes, ["s", "s", "m", "l"]);
    // The same file again: they exist; nothing more made.
    let again = json_of(upload(good).await.expect("sent"), 409).await;
    assert_eq!(again["code"], "device_exists");
    let json = app
        .http
        .post(app.url("/v1/devices/import"))
        .bearer_auth(&support)
        .json(&serde_json::json!({}))
        .send()
        .await
        .expect("sent");
    assert_eq!(json.status(), 415);
}
