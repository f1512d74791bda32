//! The contract test's calls of the operations added for the console (issue 23: bulk commands,
//! webhooks, order refunds) and for firmware (issue 24), each as a client calls it.

use reqwest::{Method, RequestBuilder};
use serde_json::json;

use crate::helpers::TestApp;

/// Each operation with a request that exercises it (lockers `lk-1` and `lk-2` are provisioned,
/// offline).
pub async fn calls(
    app: &TestApp,
    admin: &str,
) -> Vec<(&'static str, &'static str, RequestBuilder)> {
    let as_admin =
        |method: Method, path: &str| app.http.request(method, app.url(path)).bearer_auth(admin);
    // An endpoint nobody listens on, with one delivery (the provisioning below).
    let made: serde_json::Value = as_admin(Method::POST, "/v1/webhooks")
        .json(&json!({ "url": "http://127.0.0.1:9/hook", "event_types": ["device.*"] }))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    let hook = made["webhook"]["id"].as_str().expect("id").to_owned();
    app.provision("lk-hooked", 1).await;
    let log = format!("/v1/webhooks/{hook}/deliveries");
    crate::helpers::eventually("a delivery", || async {
        let page: serde_json::Value = as_admin(Method::GET, &log)
            .send()
            .await
            .expect("sent")
            .json()
            .await
            .expect("json");
        page["items"]
            .as_array()
            .is_some_and(|items| !items.is_empty())
    })
    .await;
    vec![
        (
            "post",
            "/v1/firmware",
            as_admin(
                Method::POST,
                &format!(
                    "/v1/firmware?version=1.0.0&models=lk&signature={}",
                    "00".repeat(64)
                ),
            )
            .header("content-type", "application/octet-stream")
            .body(vec![1u8; 1024]),
        ),
        ("get", "/v1/firmware", as_admin(Method::GET, "/v1/firmware")),
        (
            "get",
            "/v1/firmware/{id}",
            as_admin(
                Method::GET,
                &format!("/v1/firmware/{}", uuid::Uuid::now_v7()),
            ),
        ),
        (
            "get",
            "/v1/devices/{id}/firmware",
            as_admin(Method::GET, "/v1/devices/lk-1/firmware"),
        ),
        (
            "post",
            "/v1/firmware/campaigns",
            as_admin(Method::POST, "/v1/firmware/campaigns").json(&json!({
                "name": "contract", "image_id": uuid::Uuid::now_v7(),
                "target": { "model": "lk", "from_version": "0.9", "id_prefix": "lk-", "devices": ["lk-1"] },
                "waves": [{ "count": 1 }, { "percent": 50 }], "success_threshold": 90,
                "error_threshold": 10, "window_start": "22:00", "window_end": "04:00",
                "time_zone": "Europe/Berlin",
            })),
        ),
        (
            "get",
            "/v1/firmware/campaigns",
            as_admin(Method::GET, "/v1/firmware/campaigns"),
        ),
        (
            "get",
            "/v1/firmware/campaigns/{id}",
            as_admin(Method::GET, "/v1/firmware/campaigns/999"),
        ),
        (
            "post",
            "/v1/firmware/campaigns/{id}/pause",
            as_admin(Method::POST, "/v1/firmware/campaigns/999/pause"),
        ),
        (
            "post",
            "/v1/firmware/campaigns/{id}/resume",
            as_admin(Method::POST, "/v1/firmware/campaigns/999/resume"),
        ),
        (
            "post",
            "/v1/firmware/campaigns/{id}/cancel",
            as_admin(Method::POST, "/v1/firmware/campaigns/999/cancel"),
        ),
        (
            "post",
            "/v1/admin/orders/{id}/refund",
            as_admin(
                Method::POST,
                &format!("/v1/admin/orders/{}/refund", uuid::Uuid::now_v7()),
            )
            .json(&json!({ "reason": "contract" })),
        ),
        (
            "post",
            "/v1/webhooks",
            as_admin(Method::POST, "/v1/webhooks")
                .json(&json!({ "url": "https://hooks.example.com/x", "event_types": ["alarm.*"] })),
        ),
        ("get", "/v1/webhooks", as_admin(Method::GET, "/v1/webhooks")),
        (
            "get",
            "/v1/webhooks/{id}/deliveries",
            as_admin(Method::GET, &format!("{log}?limit=5")),
        ),
        (
            "post",
            "/v1/webhooks/{id}/deliveries/{delivery}/replay",
            as_admin(Method::POST, &format!("{log}/1/replay")),
        ),
        (
            "delete",
            "/v1/webhooks/{id}",
            as_admin(
                Method::DELETE,
                &format!("/v1/webhooks/{}", uuid::Uuid::now_v7()),
            ),
        ),
        (
            "post",
            "/v1/bulk/unlock",
            as_admin(Method::POST, "/v1/bulk/unlock")
                .json(&json!({ "devices": ["lk-1", "nope"], "door": 1, "reason": "contract" })),
        ),
        (
            "post",
            "/v1/bulk/configure",
            as_admin(Method::POST, "/v1/bulk/configure").json(&json!({
                "devices": ["lk-1"], "heartbeat_secs": 30, "open_window_ms": 5000,
                "pulse_ms": 300, "ajar_alarm_secs": 0, "reason": "contract",
            })),
        ),
        (
            "post",
            "/v1/bulk/revoke",
            as_admin(Method::POST, "/v1/bulk/revoke")
                .json(&json!({ "devices": ["nope"], "reason": "contract" })),
        ),
    ]
}
