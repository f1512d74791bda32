//! `/metrics` in Prometheus text format.

use sqlx::PgPool;

use crate::helpers::spawn_app;

#[sqlx::test]
async fn metrics_count_requests_by_route_and_read_gauges_when_scraped(pool: PgPool) {
    let app = spawn_app(pool).await;
    let _ = crate::accounts::customer(&app, "m@example.com").await;
    assert_eq!(
        app.http
            .get(app.url("/livez"))
            .send()
            .await
            .expect("sent")
            .status(),
        200
    );
    let response = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
    assert!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/plain")),
    );
    let text = response.text().await.expect("text");
    for expected in [
        "locker_http_requests_total{",
        "route=\"/livez\"",
        "route=\"/v1/sessions\"",
        "locker_http_request_duration_seconds_bucket{",
        "locker_lockers_online ",
        "locker_outbox_lag_seconds ",
        "locker_db_pool_connections{state=\"in_use\"}",
        "locker_commands_in_flight ",
    ] {
        assert!(text.contains(expected), "{expected} missing from:\n{text}");
    }
    // Ids are route templates, never values; nothing names a user.
    assert!(!text.contains("m@example.com"));
    assert!(!text.contains("route=\"/v1/rentals/0"));
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let name = line.split(['{', ' ']).next().unwrap_or("");
        assert!(
            name.starts_with("locker_"),
            "a metric outside the locker_ namespace: {line}"
        );
    }
}
