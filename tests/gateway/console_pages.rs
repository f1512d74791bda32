//! Every console page, without a browser (issue 23): none reached without an operator's session
//! (no cookie, a customer's token), each shows what it lists to a viewer, and the live tail
//! streams the domain events.

use reqwest::header::{COOKIE, LOCATION};
use serde_json::json;
use sqlx::PgPool;

use crate::accounts::{customer, operator_as};
use crate::helpers::{TestApp, spawn_app};

/// Every page, with a text it shows once the test's data is in place.
const PAGES: &[(&str, &str)] = &[
    ("/console", "taken today"),
    ("/console/lockers", "Command the selected lockers"),
    ("/console/lockers/lk-1", "Rotate secret"),
    ("/console/lockers/lk-1", "sim-0.1.0"),
    ("/console/alarms", "Alarms"),
    ("/console/rentals", "lk-1"),
    (
        "/console/rentals?user=renter%40example.com&state=active",
        "End",
    ),
    ("/console/orders", "Orders"),
    ("/console/users?q=renter", "renter@example.com"),
    ("/console/catalog?locker=lk-1", "cola"),
    ("/console/webhooks", "https://hooks.example.com/lockers"),
    ("/console/firmware", "LOCKER_FIRMWARE_KEYS"),
    ("/console/events", "Live events"),
    ("/console/gateways", "live"),
    ("/console/commands?failed=false", "outcome is unknown"),
    ("/console/import", "CSV"),
    ("/console/audit", "webhook.create"),
];

async fn get(app: &TestApp, path: &str, token: Option<&str>) -> reqwest::Response {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let mut request = client.get(app.url(path));
    if let Some(token) = token {
        request = request.header(COOKIE, format!("lgw_console={token}"));
    }
    request.send().await.expect("sent")
}

#[sqlx::test]
async fn every_page_is_for_operators_and_shows_what_it_lists(pool: PgPool) {
    let app = spawn_app(pool).await;
    crate::rentals::plan(&app).await;
    let admin = operator_as(
        &app,
        "ops@example.com",
        locker_gateway::account::Role::Admin,
    )
    .await;
    let viewer = operator_as(&app, "v@example.com", locker_gateway::account::Role::Viewer).await;
    let _locker = crate::command_helpers::online_locker(&app, "lk-1").await;
    let (renter, renter_id) = crate::rentals::funded(&app, "renter@example.com", 5000).await;
    let rented =
        crate::rentals::rent(&app, &renter, json!({ "device_id": "lk-1", "door": 1 })).await;
    assert_eq!(rented.status(), 201);
    crate::orders::product(&app, &admin, "cola", "2.00").await;
    let hook = app
        .http
        .post(app.url("/v1/webhooks"))
        .bearer_auth(&admin)
        .json(&json!({ "url": "https://hooks.example.com/lockers", "event_types": ["alarm.*"] }))
        .send()
        .await
        .expect("sent");
    assert_eq!(hook.status(), 201);
    let customer_token = customer(&app, "c@example.com").await;
    let mut pages: Vec<(String, &str)> = PAGES.iter().map(|(p, t)| ((*p).to_owned(), *t)).collect();
    pages.push((format!("/console/users/{renter_id}"), "Available 30.00"));
    for (path, shows) in &pages {
        for token in [None, Some(customer_token.as_str())] {
            let refused = get(&app, path, token).await;
            assert_eq!(
                refused.status(),
                303,
                "{path} without an operator's session"
            );
            assert_eq!(refused.headers()[LOCATION], "/console/login");
        }
        let page = get(&app, path, Some(&viewer)).await;
        assert_eq!(page.status(), 200, "{path}");
        let html = page.text().await.expect("html");
        assert!(html.contains(shows), "{path} does not show {shows:?}");
    }
    // The live tail streams the events written so far (the last 50), then new ones.
    let mut stream = get(&app, "/console/events/live?types=device.*", Some(&viewer)).await;
    assert_eq!(stream.status(), 200);
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + crate::helpers::WAIT;
    while !seen.contains("device.provisioned") {
        let chunk = tokio::time::timeout_at(deadline, stream.chunk())
            .await
            .expect("an event in time")
            .expect("read")
            .expect("more");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(seen.contains("event: event"), "{seen}");
    assert!(
        !seen.contains("rental.started"),
        "only the types asked for: {seen}"
    );
    let refused = get(&app, "/console/events/live", Some(&customer_token)).await;
    assert_eq!(refused.status(), 401);
}
