//! The contract test's calls of the operations the console added (issue 23): bulk commands and
//! webhooks, each as a client calls it.

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
    vec![
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
