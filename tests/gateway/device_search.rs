//! Finding lockers by any fragment of their id (EMQX users keep asking for it): case-insensitive,
//! `%` and `_` taken literally, with the open-alarms filter; on both backends.

use firmware_protocol::AlarmKind;
use serde_json::Value;

use crate::accounts::operator_as;
use crate::helpers::{TestApp, device, in_both_modes};

async fn ids(app: &TestApp, token: &str, query: &str) -> (u16, Vec<String>) {
    let response = app
        .http
        .get(app.url(&format!("/v1/devices{query}")))
        .bearer_auth(token)
        .send()
        .await
        .expect("sent");
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("json");
    let ids = body["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|d| d["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    (status, ids)
}

in_both_modes! {
async fn lockers_are_found_by_any_fragment_of_their_id(backend: Backend) {
    let app = backend.spawn().await;
    for id in ["cab-north-01", "cab-south-01", "CAB-x_1", "lobby-2"] {
        app.provision(id, 2).await;
    }
    let viewer = operator_as(&app, "v@example.com", locker_gateway::account::Role::Viewer).await;
    assert_eq!(ids(&app, &viewer, "?q=south").await, (200, vec!["cab-south-01".to_owned()]));
    assert_eq!(
        ids(&app, &viewer, "?q=cab").await.1,
        ["CAB-x_1", "cab-north-01", "cab-south-01"],
        "any case"
    );
    assert_eq!(ids(&app, &viewer, "?q=_").await.1, ["CAB-x_1"], "an underscore is itself");
    assert!(ids(&app, &viewer, "?q=%25").await.1.is_empty(), "a percent sign is itself");
    assert_eq!(ids(&app, &viewer, "?q=01&limit=1").await.1, ["cab-north-01"]);
    assert_eq!(ids(&app, &viewer, "?q=01&after=cab-north-01").await.1, ["cab-south-01"]);
    assert_eq!(ids(&app, &viewer, "?q=").await.0, 422);
    // With an alarm not yet resolved.
    let mut work = app.storage.begin().await.expect("work");
    let at = chrono::Utc::now();
    locker_gateway::alarm::raise(&mut work, &device("lobby-2"), AlarmKind::Tamper, None, at)
        .await
        .expect("raised");
    work.commit().await.expect("committed");
    assert_eq!(ids(&app, &viewer, "?open_alarms=true").await.1, ["lobby-2"]);
    assert_eq!(ids(&app, &viewer, "?q=b&open_alarms=true").await.1, ["lobby-2"]);
    assert_eq!(ids(&app, &viewer, "?q=b&open_alarms=false").await.1.len(), 3);
}
}

in_both_modes! {
/// Filters by model and transport (MQTT, or the serial line of one gateway), sorted by last seen.
async fn lockers_are_filtered_by_transport_and_model_and_sorted_by_last_seen(backend: Backend) {
    let app = backend.spawn().await;
    for id in ["a-mqtt", "b-board", "c-board", "d-never"] {
        app.provision(id, 2).await;
    }
    let now = chrono::Utc::now();
    for (id, gateway, seen_secs_ago) in
        [("a-mqtt", None, 30), ("b-board", Some("gw-1"), 300), ("c-board", Some("gw-2"), 5)]
    {
        let seen = now - chrono::Duration::seconds(seen_secs_ago);
        crate::helpers::on_storage!(&app.storage, |pool| {
            sqlx::query("UPDATE devices SET serial_gateway = $2, last_seen_at = $3, model = $4 WHERE id = $1")
                .bind(id)
                .bind(gateway)
                .bind(seen)
                .bind(if gateway.is_some() { "board-v2" } else { "generic" })
                .execute(pool)
                .await
                .expect("set");
        });
    }
    let viewer = operator_as(&app, "v@example.com", locker_gateway::account::Role::Viewer).await;
    assert_eq!(ids(&app, &viewer, "?transport=serial").await.1, ["b-board", "c-board"]);
    assert_eq!(ids(&app, &viewer, "?transport=mqtt").await.1, ["a-mqtt", "d-never"]);
    assert_eq!(ids(&app, &viewer, "?serial_gateway=gw-2").await.1, ["c-board"]);
    assert_eq!(ids(&app, &viewer, "?model=board-v2&q=b-").await.1, ["b-board"]);
    assert_eq!(
        ids(&app, &viewer, "?sort=last_seen").await.1,
        ["c-board", "a-mqtt", "b-board", "d-never"],
        "most recently seen first, never seen last"
    );
    let page = app.get_json("/v1/devices?sort=last_seen&limit=2", &viewer).await;
    assert_eq!((page["next_offset"].as_u64(), page["next"].as_str()), (Some(2), None));
    assert_eq!(ids(&app, &viewer, "?sort=last_seen&offset=2").await.1, ["b-board", "d-never"]);
    assert_eq!(ids(&app, &viewer, "?transport=carrier-pigeon").await.0, 422);
    assert_eq!(ids(&app, &viewer, "?sort=name").await.0, 422);
}
}
