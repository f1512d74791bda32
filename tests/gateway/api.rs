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
    problem(missing, 404, "no_such_route").await;
    let wrong = app.http.post(app.url("/livez")).send().await.expect("sent");
    problem(wrong, 405, "method_not_allowed").await;
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
