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
            name.starts_with("locker_") || name.starts_with("process_"),
            "a metric outside the locker_ and process_ namespaces: {line}"
        );
        // Every metric says what it is and what it means.
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| {
                name.strip_suffix(suffix).filter(|b| {
                    text.contains(&format!("# TYPE {b} histogram"))
                        || text.contains(&format!("# TYPE {b} summary"))
                })
            })
            .unwrap_or(name);
        assert!(
            text.contains(&format!("# TYPE {base} ")),
            "no TYPE for {base}"
        );
        assert!(
            text.contains(&format!("# HELP {base} ")),
            "no HELP for {base}"
        );
    }
    // The process's own figures, and what is running.
    for expected in [
        "process_cpu_seconds_total ",
        "process_resident_memory_bytes ",
        "process_open_fds ",
        "locker_build_info{",
        &format!("version=\"{}\"", locker_gateway::VERSION),
    ] {
        assert!(text.contains(expected), "{expected} missing from:\n{text}");
    }
}
