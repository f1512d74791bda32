//! Commands to a selection of lockers (issue 23): one result per locker in the order asked (an
//! offline locker, an unknown id, each answered on its own line), a rented or stocked door left
//! shut unless the request overrides, the override in the audit log; roles; on both backends.

use locker_gateway::account::Role;
use serde_json::{Value, json};

use crate::accounts::{operator, operator_as};
use crate::command_helpers::online_locker;
use crate::helpers::{TestApp, in_both_modes};

async fn bulk(app: &TestApp, token: &str, what: &str, body: Value) -> (u16, Value) {
    let path = format!("/v1/bulk/{what}");
    app.json(reqwest::Method::POST, &path, token, Some(&body))
        .await
}

/// Each result's (device, ok, problem code).
fn summary(answer: &Value) -> Vec<(String, bool, Option<String>)> {
    answer["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| {
            (
                r["device_id"].as_str().expect("id").to_owned(),
                r["ok"].as_bool().expect("ok"),
                r["problem"]["code"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

fn row(id: &str, ok: bool, code: Option<&str>) -> (String, bool, Option<String>) {
    (id.to_owned(), ok, code.map(str::to_owned))
}

in_both_modes! {
async fn a_bulk_unlock_answers_per_locker_and_opens_occupied_doors_only_when_told(backend: Backend) {
    let app = backend.spawn().await;
    crate::rentals::plan(&app).await;
    let admin = operator(&app, "ops@example.com").await;
    let technician = operator_as(&app, "tech@example.com", Role::Technician).await;
    let viewer = operator_as(&app, "view@example.com", Role::Viewer).await;
    let _a = online_locker(&app, "lk-a").await;
    let _b = online_locker(&app, "lk-b").await;
    let _c = online_locker(&app, "lk-c").await;
    app.provision("lk-off", 4).await;
    let (renter, _) = crate::rentals::funded(&app, "renter@example.com", 5000).await;
    let rented = crate::rentals::rent(&app, &renter, json!({ "device_id": "lk-b", "door": 1 })).await;
    assert_eq!(rented.status(), 201);
    let cola = crate::orders::product(&app, &admin, "cola", "2.00").await;
    crate::orders::stock(&app, &admin, "lk-c", 1, json!([{ "product_id": cola, "qty": 1 }])).await;

    let five = json!({
        "devices": ["lk-a", "lk-b", "lk-c", "lk-off", "nope"], "door": 1, "reason": "inspection",
    });
    let (status, refused) = bulk(&app, &viewer, "unlock", five.clone()).await;
    assert_eq!((status, refused["code"].as_str()), (403, Some("forbidden")));
    let (status, answer) = bulk(&app, &technician, "unlock", five).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        summary(&answer),
        vec![
            row("lk-a", true, None),
            row("lk-b", false, Some("door_occupied")),
            row("lk-c", false, Some("door_occupied")),
            row("lk-off", false, Some("device_offline")),
            row("nope", false, Some("not_found")),
        ]
    );
    assert_eq!((answer["done"].as_u64(), answer["failed"].as_u64()), (Some(1), Some(4)));
    assert!(answer["results"][0]["command_id"].as_i64().is_some());
    assert_eq!(answer["results"][0]["door"], "opened");
    assert_eq!(answer["results"][1]["problem"]["status"], 409);
    // Told to, the technician opens the rented and the stocked door; the log says so.
    let (status, answer) = bulk(&app, &technician, "unlock", json!({
        "devices": ["lk-b", "lk-c"], "door": 1, "reason": "cleaning", "override_occupied": true,
    })).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(summary(&answer), vec![row("lk-b", true, None), row("lk-c", true, None)]);
    let audit = app.get_json("/v1/audit?action=door.unlock&limit=50", &admin).await;
    let entries = audit["items"].as_array().expect("items");
    assert_eq!(entries.len(), 7, "each locker's unlock audited: {audit}");
    let overridden = entries
        .iter()
        .find(|e| e["target"] == "lk-b" && e["outcome"] == "ok")
        .expect("lk-b opened");
    assert_eq!(overridden["detail"]["override_occupied"], true);
    assert_eq!(overridden["detail"]["occupied"], "rented");
    assert_eq!(overridden["detail"]["bulk"], true);
    let left_shut = entries
        .iter()
        .find(|e| e["target"] == "lk-c" && e["outcome"] == "refused")
        .expect("lk-c left shut");
    assert_eq!(left_shut["detail"]["occupied"], "stocked");
    assert_eq!(left_shut["detail"]["error"], "door_occupied");
}
}

in_both_modes! {
async fn a_bulk_request_is_checked_whole_before_anything_is_sent(backend: Backend) {
    let app = backend.spawn().await;
    let admin = operator(&app, "ops@example.com").await;
    let _a = online_locker(&app, "lk-a").await;
    let too_many: Vec<String> = (0..201).map(|i| format!("lk-{i}")).collect();
    for (body, field) in [
        (json!({ "devices": [], "door": 1, "reason": "x" }), "devices"),
        (json!({ "devices": too_many, "door": 1, "reason": "x" }), "devices"),
        (json!({ "devices": ["lk-a", "lk-a"], "door": 1, "reason": "x" }), "devices[1]"),
        (json!({ "devices": ["lk-a", "no/such"], "door": 1, "reason": "x" }), "devices[1]"),
        (json!({ "devices": ["lk-a"], "door": 1, "reason": "  " }), "reason"),
    ] {
        let (status, problem) = bulk(&app, &admin, "unlock", body).await;
        assert_eq!((status, problem["code"].as_str()), (422, Some("validation_failed")));
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
    }
    let (status, problem) = bulk(&app, &admin, "configure", json!({
        "devices": ["lk-a"], "heartbeat_secs": 1, "open_window_ms": 5000, "pulse_ms": 300,
        "ajar_alarm_secs": 0, "reason": "x",
    })).await;
    assert_eq!((status, problem["errors"][0]["field"].as_str()), (422, Some("heartbeat_secs")));
    // Nothing was sent to lk-a by any of them.
    let commands = app.get_json("/v1/devices/lk-a/commands", &admin).await;
    assert_eq!(commands["items"].as_array().map(Vec::len), Some(0));
    // Settings and revocation, per locker.
    let (status, answer) = bulk(&app, &admin, "configure", json!({
        "devices": ["lk-a", "nope"], "heartbeat_secs": 30, "open_window_ms": 5000,
        "pulse_ms": 300, "ajar_alarm_secs": 0, "reason": "fleet settings",
    })).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(summary(&answer), vec![row("lk-a", true, None), row("nope", false, Some("not_found"))]);
    let support = operator_as(&app, "support@example.com", Role::Support).await;
    let revoke = json!({ "devices": ["lk-a"], "reason": "stolen cabinet" });
    let (status, _) = bulk(&app, &support, "revoke", revoke.clone()).await;
    assert_eq!(status, 403, "support does not revoke");
    let (status, answer) = bulk(&app, &admin, "revoke", revoke).await;
    assert_eq!((status, summary(&answer)), (200, vec![row("lk-a", true, None)]));
    let device = app.get_json("/v1/devices/lk-a", &admin).await;
    assert!(device["device"]["revoked_at"].is_string(), "{device}");
}
}
