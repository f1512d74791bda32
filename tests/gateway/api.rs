//! The HTTP API's foundation: health, problem documents, bodies.

use serde_json::Value;
use sqlx::PgPool;

use crate::helpers::spawn_app;

pub async fn problem(response: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status().as_u16(), status);
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/problem+json")
    );
    let body: Value = response.json().await.expect("a problem document");
    assert_eq!(body["status"], status);
    assert_eq!(body["code"], code);
    for field in ["type", "title", "detail"] {
        assert!(body[field].is_string(), "{field} missing in {body}");
    }
    body
}

#[sqlx::test]
async fn livez_and_readyz_answer_and_readyz_turns_503_when_draining(pool: PgPool) {
    let app = spawn_app(pool).await;
    let live = app.http.get(app.url("/livez")).send().await.expect("sent");
    assert_eq!(live.status(), 200);
    let ready = app.http.get(app.url("/readyz")).send().await.expect("sent");
    assert_eq!(ready.status(), 200);
    let body: Value = ready.json().await.expect("json");
    assert_eq!(body["postgres"], "ok");
    assert_eq!(body["redis"], "ok");
    assert_eq!(body["broker"], "ok");
    app.app.start_draining();
    let ready = app.http.get(app.url("/readyz")).send().await.expect("sent");
    let body = problem(ready, 503, "unavailable").await;
    assert!(
        body["detail"].as_str().unwrap_or("").contains("stopping"),
        "{body}"
    );
    // Liveness does not depend on it.
    let live = app.http.get(app.url("/livez")).send().await.expect("sent");
    assert_eq!(live.status(), 200);
}

#[sqlx::test]
async fn unknown_routes_and_methods_are_problem_documents(pool: PgPool) {
    let app = spawn_app(pool).await;
    let missing = app
        .http
        .get(app.url("/v1/nothing"))
        .send()
        .await
        .expect("sent");
    let body = problem(missing, 404, "no_such_route").await;
    // The problem's type explains it.
    assert_eq!(body["type"], "/problems/no_such_route");
    let explained = app
        .http
        .get(app.url("/problems/no_such_route"))
        .send()
        .await
        .expect("sent");
    assert_eq!(explained.status(), 200);
    assert!(
        explained
            .text()
            .await
            .expect("text")
            .contains("no_such_route (HTTP 404)")
    );
    let wrong = app.http.post(app.url("/livez")).send().await.expect("sent");
    problem(wrong, 405, "method_not_allowed").await;
}

#[sqlx::test]
async fn path_parameters_that_do_not_parse_are_problem_documents(pool: PgPool) {
    let app = spawn_app(pool).await;
    let token = crate::accounts::customer(&app, "c@example.com").await;
    let admin = crate::accounts::operator(&app, "ops@example.com").await;
    let rental = app
        .http
        .get(app.url("/v1/rentals/not-a-uuid"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("sent");
    let body = problem(rental, 400, "bad_request").await;
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("bad path")),
        "{body}"
    );
    let door = app
        .http
        .post(app.url("/v1/devices/lk-1/doors/70000/unlock"))
        .bearer_auth(&admin)
        .json(&serde_json::json!({ "reason": "x" }))
        .send()
        .await
        .expect("sent");
    problem(door, 400, "bad_request").await;
    let wallet = app
        .http
        .post(app.url("/v1/wallets/42/top-ups"))
        .bearer_auth(&admin)
        .json(&serde_json::json!({ "amount": "1.00" }))
        .send()
        .await
        .expect("sent");
    problem(wallet, 400, "bad_request").await;
}

#[test]
fn json_bodies_name_what_is_wrong() {
    use locker_gateway::api::{ApiError, json::parse};
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Door {
        door: u16,
        reason: String,
    }
    let Err(ApiError::BadRequest(_)) = parse::<Door>(b"{\"door\": 1,") else {
        panic!("malformed JSON is a 400");
    };
    let Err(ApiError::Validation(errors)) = parse::<Door>(br#"{"door": "x", "reason": "r"}"#)
    else {
        panic!("a wrong type is a 422");
    };
    assert_eq!(errors[0].field, "door");
    let Err(ApiError::Validation(errors)) = parse::<Door>(br#"{"door": 1}"#) else {
        panic!("a missing field is a 422");
    };
    assert!(errors[0].message.contains("reason"), "{errors:?}");
    let Err(ApiError::BadRequest(_)) = parse::<Door>(br#"{"door": 1, "reason": "r"} trailing"#)
    else {
        panic!("trailing bytes are a 400");
    };
    assert!(parse::<Door>(br#"{"door": 1, "reason": "r"}"#).is_ok());
}

#[sqlx::test]
async fn too_many_requests_get_429_with_retry_after_per_ip_and_per_user(pool: PgPool) {
    use locker_gateway::api::limits::LimitSettings;
    let app = crate::helpers::spawn_app_with(pool, |config| {
        config.rate_limits = LimitSettings {
            per_ip_per_minute: 8,
            per_user_per_minute: 3,
            trusted_proxies: vec!["127.0.0.1".parse().expect("ip")],
        };
    })
    .await;
    let token = crate::accounts::customer(&app, "r@example.com").await; // 2 requests from .1
    let me = |forwarded: &'static str| {
        app.http
            .get(app.url("/v1/me"))
            .bearer_auth(&token)
            .header("x-forwarded-for", forwarded)
            .send()
    };
    // Per user: 3 a minute, whichever address they come from.
    for from in ["10.0.0.2", "10.0.0.3", "10.0.0.4"] {
        assert_eq!(me(from).await.expect("sent").status(), 200);
    }
    let limited = me("10.0.0.5").await.expect("sent");
    let retry_after: u64 = limited
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("a Retry-After in seconds");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    problem(limited, 429, "rate_limited").await;
    // Per IP: behind the trusted proxy each forwarded client has its own budget of 8.
    let anonymous = |forwarded: &'static str| {
        app.http
            .get(app.url("/v1/nothing"))
            .header("x-forwarded-for", forwarded)
            .send()
    };
    for _ in 0..8 {
        assert_eq!(anonymous("10.0.1.1").await.expect("sent").status(), 404);
    }
    problem(
        anonymous("10.0.1.1").await.expect("sent"),
        429,
        "rate_limited",
    )
    .await;
    assert_eq!(anonymous("10.0.1.2").await.expect("sent").status(), 404);
    // Health probes are never limited.
    for _ in 0..10 {
        assert_eq!(
            app.http
                .get(app.url("/livez"))
                .send()
                .await
                .expect("sent")
                .status(),
            200
        );
    }
}

#[sqlx::test]
async fn a_forged_forwarded_for_from_an_untrusted_peer_changes_nothing(pool: PgPool) {
    use locker_gateway::api::limits::LimitSettings;
    let app = crate::helpers::spawn_app_with(pool, |config| {
        config.rate_limits = LimitSettings {
            per_ip_per_minute: 3,
            ..LimitSettings::default()
        };
    })
    .await;
    for n in 0..3 {
        let response = app
            .http
            .get(app.url("/v1/nothing"))
            .header("x-forwarded-for", format!("10.9.9.{n}"))
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), 404);
    }
    let response = app
        .http
        .get(app.url("/v1/nothing"))
        .header("x-forwarded-for", "10.9.9.99")
        .send()
        .await
        .expect("sent");
    problem(response, 429, "rate_limited").await;
}

/// A Redis of the test's own, on a free port, that the test may stop.
pub struct OwnRedis {
    child: std::process::Child,
    pub url: String,
}

impl OwnRedis {
    pub async fn start() -> Self {
        Self::start_on(crate::helpers::free_addr().port()).await
    }

    /// On a given port (to bring a stopped one back).
    pub async fn start_on(port: u16) -> Self {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let child = std::process::Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &addr.port().to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("redis-server starts (Debian: apt-get install redis-server)");
        let deadline = tokio::time::Instant::now() + crate::helpers::WAIT;
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "redis did not listen"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        Self {
            child,
            url: format!("redis://{addr}"),
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[sqlx::test]
async fn readyz_names_a_redis_that_stopped_answering(pool: PgPool) {
    let mut redis = OwnRedis::start().await;
    let url = redis.url.clone();
    let app =
        crate::helpers::spawn_app_with(pool, |config| config.redis_url = Some(url.clone())).await;
    let ready = app.http.get(app.url("/readyz")).send().await.expect("sent");
    assert_eq!(ready.status(), 200);
    let _ = redis.child.kill();
    let _ = redis.child.wait();
    let ready = app.http.get(app.url("/readyz")).send().await.expect("sent");
    let body = problem(ready, 503, "unavailable").await;
    assert!(
        body["detail"].as_str().unwrap_or("").contains("redis"),
        "{body}"
    );
    assert_eq!(
        app.http
            .get(app.url("/livez"))
            .send()
            .await
            .expect("sent")
            .status(),
        200
    );
}
