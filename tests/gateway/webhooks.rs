//! Webhooks (issue 23): an endpoint on the loopback address subscribed to `device.*` receives
//! each device event once per attempt, signed (HMAC-SHA256 over the timestamp and the raw body),
//! retried with backoff after a 500, logged per endpoint, replayed on request; events of other
//! types are not sent to it; an endpoint that never answers ends `failed`; on both backends.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use locker_gateway::account::Role;
use serde_json::{Value, json};
use sha2::Sha256;

use crate::accounts::{operator, operator_as};
use crate::helpers::{TestApp, eventually, in_both_modes};

/// What the receiver got: each request's headers and raw body.
type Received = Arc<Mutex<Vec<(HeaderMap, String)>>>;

/// A receiver on the loopback address that answers 500 to its first `fail_first` requests,
/// then 200.
async fn receiver(fail_first: usize) -> (SocketAddr, Received) {
    let received: Received = Arc::default();
    let kept = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let kept = kept.clone();
            async move {
                let mut all = kept.lock().expect("lock");
                all.push((headers, body));
                if all.len() <= fail_first {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, received)
}

async fn call(
    app: &TestApp,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    app.json(method, path, token, body.as_ref()).await
}

/// Waits until `check` gives a value; returns it.
async fn found<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + crate::helpers::WAIT;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Checks a delivery's signature as a receiver would; returns its timestamp.
fn verify(secret: &str, headers: &HeaderMap, body: &str) -> i64 {
    let header = headers["locker-signature"].to_str().expect("text");
    let (t, v1) = header
        .strip_prefix("t=")
        .and_then(|rest| rest.split_once(",v1="))
        .expect("t=…,v1=…");
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(format!("{t}.{body}").as_bytes());
    mac.verify_slice(&hex::decode(v1).expect("hex"))
        .expect("the signature holds");
    t.parse().expect("seconds")
}

in_both_modes! {
async fn device_events_reach_a_subscribed_endpoint_signed_retried_logged_and_replayed(backend: Backend) {
    let app = backend
        .spawn_with(|c| {
            c.webhooks.first_retry = Duration::from_millis(200);
            c.webhooks.max_attempts = 3;
            c.secrets_key = locker_gateway::config::SecretsKey::from_hex(&"5a".repeat(32));
        })
        .await;
    let admin = operator(&app, "ops@example.com").await;
    let viewer = operator_as(&app, "view@example.com", Role::Viewer).await;
    let (addr, received) = receiver(1).await;
    let url = format!("http://{addr}/hook");
    let (status, created) = call(&app, &admin, reqwest::Method::POST, "/v1/webhooks",
        Some(json!({ "url": url, "event_types": ["device.*"], "description": "ops board" }))).await;
    assert_eq!(status, 201, "{created}");
    let secret = created["secret"].as_str().expect("secret once").to_owned();
    let id = created["webhook"]["id"].as_str().expect("id").to_owned();
    // Kept sealed with LOCKER_SECRETS_KEY: the database alone does not give it away.
    let kept: String = crate::helpers::on_storage!(&app.storage, |pool| sqlx::query_scalar(
        "SELECT secret FROM webhooks"
    )
    .fetch_one(pool)
    .await
    .expect("kept"));
    assert!(kept.starts_with("sealed:") && !kept.contains(&secret[6..]), "{kept}");
    let (_, listed) = call(&app, &viewer, reqwest::Method::GET, "/v1/webhooks", None).await;
    assert_eq!(listed["items"][0]["event_types"], "device.*");
    assert!(listed["items"][0].get("secret").is_none(), "never shown again");
    // A second endpoint, for alarms only, gets nothing of what follows.
    let (quiet_addr, quiet) = receiver(0).await;
    let (status, _) = call(&app, &admin, reqwest::Method::POST, "/v1/webhooks",
        Some(json!({ "url": format!("http://{quiet_addr}/hook"), "event_types": ["alarm.*"] }))).await;
    assert_eq!(status, 201);

    app.provision("lk-1", 2).await;
    eventually("refused once, then delivered", || async { received.lock().expect("lock").len() >= 2 }).await;
    let got = received.lock().expect("lock").clone();
    let (first, second) = (&got[0], &got[1]);
    assert_eq!(first.1, second.1, "the same body each attempt");
    let event: Value = serde_json::from_str(&second.1).expect("json");
    assert_eq!((event["type"].as_str(), event["aggregate_id"].as_str()), (Some("device.provisioned"), Some("lk-1")));
    assert_eq!(second.0["locker-event-type"], "device.provisioned");
    assert_eq!(second.0["locker-event-id"].to_str().expect("text"), event["id"].as_str().expect("id"));
    let signed_at = verify(&secret, &second.0, &second.1);
    assert!((chrono::Utc::now().timestamp() - signed_at).abs() < 300);
    assert!(std::panic::catch_unwind(|| verify("whsec_wrong", &second.0, &second.1)).is_err());

    let log = format!("/v1/webhooks/{id}/deliveries");
    let delivered = found("logged as delivered", || async {
        let (_, page) = call(&app, &viewer, reqwest::Method::GET, &log, None).await;
        (page["items"][0]["state"] == "delivered").then_some(page)
    })
    .await;
    let delivery = &delivered["items"][0];
    assert_eq!(delivered["items"].as_array().map(Vec::len), Some(1));
    assert_eq!((delivery["attempts"].as_i64(), delivery["last_status"].as_i64()), (Some(2), Some(200)));

    // Replayed on request: sent once more, same event.
    let replay = format!("{log}/{}/replay", delivery["id"]);
    let (status, _) = call(&app, &viewer, reqwest::Method::POST, &replay, None).await;
    assert_eq!(status, 403, "a viewer reads the log but does not replay");
    let (status, again) = call(&app, &admin, reqwest::Method::POST, &replay, None).await;
    assert_eq!((status, again["state"].as_str()), (200, Some("pending")));
    eventually("replayed", || async { received.lock().expect("lock").len() == 3 }).await;
    assert_eq!(received.lock().expect("lock")[2].1, second.1);
    eventually("three attempts logged", || async {
        let (_, page) = call(&app, &viewer, reqwest::Method::GET, &log, None).await;
        page["items"][0]["attempts"] == 3 && page["items"][0]["state"] == "delivered"
    })
    .await;
    assert!(quiet.lock().expect("lock").is_empty(), "alarm.* got no device event");
}
}

in_both_modes! {
async fn an_endpoint_that_never_answers_ends_failed_and_bad_subscriptions_are_refused(backend: Backend) {
    let app = backend
        .spawn_with(|c| {
            c.webhooks.first_retry = Duration::from_millis(100);
            c.webhooks.max_attempts = 2;
        })
        .await;
    let admin = operator(&app, "ops@example.com").await;
    let technician = operator_as(&app, "tech@example.com", Role::Technician).await;
    // A port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr");
    for (body, field) in [
        (json!({ "url": "http://hooks.example.com/x", "event_types": ["*"] }), "url"),
        (json!({ "url": "ftp://127.0.0.1/x", "event_types": ["*"] }), "url"),
        (json!({ "url": "https://hooks.example.com/x", "event_types": [] }), "event_types"),
        (json!({ "url": "https://hooks.example.com/x", "event_types": ["device.eaten"] }), "event_types[0]"),
    ] {
        let (status, problem) = call(&app, &admin, reqwest::Method::POST, "/v1/webhooks", Some(body)).await;
        assert_eq!((status, problem["errors"][0]["field"].as_str()), (422, Some(field)), "{problem}");
    }
    let subscribe = json!({ "url": format!("http://{closed}/hook"), "event_types": ["*"] });
    let (status, _) = call(&app, &technician, reqwest::Method::POST, "/v1/webhooks", Some(subscribe.clone())).await;
    assert_eq!(status, 403, "technicians do not subscribe endpoints");
    let (status, created) = call(&app, &admin, reqwest::Method::POST, "/v1/webhooks", Some(subscribe)).await;
    assert_eq!(status, 201);
    let id = created["webhook"]["id"].as_str().expect("id").to_owned();
    app.provision("lk-1", 2).await;
    let page = found("failed after two attempts", || async {
        let (_, page) = call(&app, &admin, reqwest::Method::GET, &format!("/v1/webhooks/{id}/deliveries?state=failed"), None).await;
        (page["items"].as_array().is_some_and(|a| !a.is_empty())).then_some(page)
    })
    .await;
    let failed = &page["items"][0];
    assert_eq!(failed["attempts"], 2);
    assert!(failed["last_status"].is_null());
    assert!(failed["last_error"].as_str().is_some_and(|e| e.contains("connect")), "{failed}");
    // The log forgets settled deliveries past its keeping time; a pending one would stay.
    let long_ago = chrono::Utc::now() - chrono::Duration::days(31);
    crate::helpers::on_storage!(&app.storage, |pool| sqlx::query(
        "UPDATE webhook_deliveries SET created_at = $1"
    )
    .bind(long_ago)
    .execute(pool)
    .await
    .expect("backdated")
    .rows_affected());
    let month_ago = chrono::Utc::now() - chrono::Duration::days(30);
    let forgotten = locker_gateway::webhook::forget_settled(&app.storage, month_ago)
        .await
        .expect("forgot");
    assert_eq!(forgotten, 1);
    let (_, page) = call(&app, &admin, reqwest::Method::GET, &format!("/v1/webhooks/{id}/deliveries"), None).await;
    assert_eq!(page["items"].as_array().map(Vec::len), Some(0));
    // Unsubscribed: gone with its log, and audited.
    let (status, _) = call(&app, &admin, reqwest::Method::DELETE, &format!("/v1/webhooks/{id}"), None).await;
    assert_eq!(status, 204);
    let (status, _) = call(&app, &admin, reqwest::Method::GET, &format!("/v1/webhooks/{id}/deliveries"), None).await;
    assert_eq!(status, 404);
    let (_, audit) = call(&app, &admin, reqwest::Method::GET, "/v1/audit?action=webhook.create", None).await;
    let outcomes: Vec<&str> = audit["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|e| e["outcome"].as_str())
        .collect();
    assert_eq!(outcomes, ["ok", "refused", "refused", "refused", "refused"], "{audit}");
    let (_, forbidden) = call(&app, &admin, reqwest::Method::GET, "/v1/audit?action=POST%20/v1/webhooks", None).await;
    assert_eq!(forbidden["items"][0]["actor_email"], "tech@example.com", "{forbidden}");
}
}
