//! Alarms operators handle (issue 23): raised by a simulated locker, recorded with their
//! severity, counted on one alarm while unresolved, acknowledged and resolved through the API by
//! the roles allowed, audited; on both backends.

use std::time::Duration;

use locker_gateway::account::Role;
use locker_gateway::command::{Command, DoorResult};
use serde_json::{Value, json};
use simulator::mqtt::Knob;

use crate::accounts::operator_as;
use crate::helpers::{TestApp, eventually, in_both_modes};

const BEATING: Duration = Duration::from_millis(300);

async fn alarms(app: &TestApp, token: &str, query: &str) -> (u16, Value) {
    let response = app
        .http
        .get(app.url(&format!("/v1/alarms{query}")))
        .bearer_auth(token)
        .send()
        .await
        .expect("sent");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

async fn act(app: &TestApp, token: &str, path: &str, body: Value) -> (u16, Value) {
    let response = app
        .http
        .post(app.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("sent");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

in_both_modes! {
async fn a_forced_door_is_a_critical_alarm_operators_acknowledge_and_resolve(backend: Backend) {
    let app = backend.spawn().await;
    let creds = app.provision("lk-1", 4).await;
    let technician = operator_as(&app, "t@example.com", Role::Technician).await;
    let viewer = operator_as(&app, "v@example.com", Role::Viewer).await;
    let locker = app.locker(&creds, BEATING);
    eventually("lk-1 online", || async { app.online("lk-1").await }).await;
    locker.turn(Knob::ForceOpen(2)).await;
    eventually("an open alarm", || async {
        alarms(&app, &viewer, "?state=open").await.1["items"].as_array().is_some_and(|a| a.len() == 1)
    })
    .await;
    let (_, page) = alarms(&app, &viewer, "?state=open&severity=critical").await;
    let alarm = page["items"][0].clone();
    assert_eq!(
        (alarm["device_id"].as_str(), alarm["door"].as_i64(), alarm["kind"].as_str()),
        (Some("lk-1"), Some(2), Some("forced_open"))
    );
    assert_eq!(alarm["severity"], "critical");
    assert_eq!(alarm["times"], 1, "the sensor's event and the locker's own alarm are one");
    // A door that does not open when pulsed, twice before anyone resolved it: one major alarm,
    // counted twice.
    let commands = app.app.commands();
    let window = Command::configure(60, 1000, 300, 0).expect("in range");
    commands.send(crate::helpers::device("lk-1"), window).await.expect("configured");
    locker.turn(Knob::Jam(3)).await;
    for _ in 0..2 {
        let jammed = commands.unlock(crate::helpers::device("lk-1"), 3).await.expect("executed");
        assert_eq!(jammed.door, Some(DoorResult::Jammed));
    }
    eventually("the jam counted twice", || async {
        let (_, page) = alarms(&app, &viewer, "?kind=jammed").await;
        page["items"][0]["times"] == 2 && page["items"][0]["severity"] == "major"
    })
    .await;
    let id = alarm["id"].as_i64().expect("id");
    // A viewer reads but does not handle alarms.
    let (status, _) = act(&app, &viewer, &format!("/v1/alarms/{id}/acknowledge"), json!({})).await;
    assert_eq!(status, 403);
    let (status, acknowledged) =
        act(&app, &technician, &format!("/v1/alarms/{id}/acknowledge"), json!({})).await;
    assert_eq!(status, 200, "{acknowledged}");
    assert_eq!(acknowledged["state"], "acknowledged");
    assert_eq!(acknowledged["acknowledged_by"], crate::accounts::me_id(&app, &technician).await);
    let (status, problem) =
        act(&app, &technician, &format!("/v1/alarms/{id}/resolve"), json!({ "resolution": "  " })).await;
    assert_eq!((status, problem["code"].as_str()), (422, Some("validation_failed")));
    let resolution = json!({ "resolution": "door re-hung, lock replaced" });
    let (status, resolved) = act(&app, &technician, &format!("/v1/alarms/{id}/resolve"), resolution.clone()).await;
    assert_eq!(status, 200, "{resolved}");
    assert_eq!(resolved["state"], "resolved");
    assert_eq!(resolved["resolution"], "door re-hung, lock replaced");
    let (status, problem) = act(&app, &technician, &format!("/v1/alarms/{id}/resolve"), resolution).await;
    assert_eq!((status, problem["code"].as_str()), (409, Some("alarm_resolved")));
    let (status, problem) = act(&app, &technician, &format!("/v1/alarms/{id}/acknowledge"), json!({})).await;
    assert_eq!((status, problem["code"].as_str()), (409, Some("alarm_resolved")));
    let (status, _) = act(&app, &technician, "/v1/alarms/999999/acknowledge", json!({})).await;
    assert_eq!(status, 404);
    // Resolved: the next jam is a new alarm.
    let (_, page) = alarms(&app, &viewer, "?kind=jammed").await;
    let jam = page["items"][0]["id"].as_i64().expect("id");
    let fixed = json!({ "resolution": "bolt freed" });
    assert_eq!(act(&app, &technician, &format!("/v1/alarms/{jam}/resolve"), fixed).await.0, 200);
    commands.unlock(crate::helpers::device("lk-1"), 3).await.expect("executed");
    eventually("a new jam alarm", || async {
        alarms(&app, &viewer, "?device_id=lk-1&kind=jammed").await.1["items"]
            .as_array()
            .is_some_and(|a| a.len() == 2)
    })
    .await;
    let (_, open) = alarms(&app, &viewer, "?state=open").await;
    assert_eq!(open["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(open["items"][0]["times"], 1);
    let (status, problem) = alarms(&app, &viewer, "?state=burning").await;
    assert_eq!((status, problem["code"].as_str()), (422, Some("validation_failed")));
    // Who did what is in the audit log.
    let admin = operator_as(&app, "a@example.com", Role::Admin).await;
    let (_, log) = {
        let response = app
            .http
            .get(app.url("/v1/audit?action=alarm.resolve"))
            .bearer_auth(&admin)
            .send()
            .await
            .expect("sent");
        (response.status(), response.json::<Value>().await.expect("json"))
    };
    let outcomes: Vec<&str> = log["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|e| e["outcome"].as_str())
        .collect();
    assert_eq!(outcomes, vec!["ok", "refused", "ok", "refused"], "newest first");
}
}
