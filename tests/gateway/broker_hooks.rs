//! The HTTP hooks a broker such as EMQX asks about every login and every publish and
//! subscription, called as EMQX 5's HTTP authenticator and authorizer call them (the bodies its
//! templates in the README produce, `Authorization: Bearer` and the hook secret).

use serde_json::{Value, json};

use crate::api::problem;
use crate::helpers::{TestApp, spawn_app_with};

const SECRET: &str = "hook-secret-for-tests";

async fn ask(app: &TestApp, path: &str, secret: Option<&str>, body: Value) -> reqwest::Response {
    let mut request = app.http.post(app.url(path)).json(&body);
    if let Some(secret) = secret {
        request = request.bearer_auth(secret);
    }
    request.send().await.expect("sent")
}

async fn decision(app: &TestApp, path: &str, body: Value) -> Value {
    let response = ask(app, path, Some(SECRET), body).await;
    assert_eq!(response.status(), 200);
    response.json().await.expect("json")
}

async fn login(app: &TestApp, clientid: &str, username: &str, password: &str) -> Value {
    let body = json!({ "clientid": clientid, "username": username, "password": password,
                       "peerhost": "10.0.0.7" });
    decision(app, "/v1/broker/authenticate", body).await
}

async fn may(app: &TestApp, who: &str, action: &str, topic: &str) -> String {
    let body = json!({ "clientid": who, "username": who, "topic": topic, "action": action,
                       "qos": "1", "retain": "false" });
    let answer = decision(app, "/v1/broker/authorize", body).await;
    answer["result"].as_str().expect("result").to_owned()
}

#[sqlx::test]
async fn a_broker_asking_over_http_gets_the_embedded_brokers_rules(pool: sqlx::PgPool) {
    let app = spawn_app_with(pool, |c| {
        c.broker_hook_secret = Some(SECRET.to_owned());
        c.rate_limits.per_ip_per_minute = 60;
    })
    .await;
    let a = app.provision("hk-a", 4).await;
    let b = app.provision("hk-b", 4).await;
    let (pa, pb) = (a.secret.mqtt_password(), b.secret.mqtt_password());
    // Logins.
    let ok = login(&app, "hk-a", "hk-a", &pa).await;
    assert_eq!(
        (ok["result"].as_str(), ok["is_superuser"].as_bool()),
        (Some("allow"), Some(false))
    );
    assert_eq!(
        login(&app, "hk-a", "hk-a", &pb).await["result"],
        "deny",
        "another's password"
    );
    assert_eq!(
        login(&app, "hk-x", "hk-a", &pa).await["result"],
        "deny",
        "client id is not the username"
    );
    assert_eq!(login(&app, "nobody", "nobody", &pa).await["result"], "deny");
    assert_eq!(login(&app, "hk-a", "hk-a", "").await["result"], "deny");
    // Topics: its own up and status to publish, its own down to subscribe; nothing else.
    assert_eq!(
        may(&app, "hk-a", "publish", "lockers/hk-a/up").await,
        "allow"
    );
    assert_eq!(
        may(&app, "hk-a", "publish", "lockers/hk-a/status").await,
        "allow"
    );
    assert_eq!(
        may(&app, "hk-a", "subscribe", "lockers/hk-a/down").await,
        "allow"
    );
    for (action, topic) in [
        ("publish", "lockers/hk-b/up"),
        ("publish", "lockers/hk-b/status"),
        ("publish", "lockers/hk-a/down"),
        ("subscribe", "lockers/hk-b/down"),
        ("subscribe", "lockers/+/down"),
        ("subscribe", "#"),
        ("subscribe", "$SYS/#"),
        ("publish", "events/rental.started"),
        ("all", "lockers/hk-a/up"),
    ] {
        assert_eq!(
            may(&app, "hk-a", action, topic).await,
            "deny",
            "{action} {topic}"
        );
    }
    let other_client = json!({ "clientid": "hk-x", "username": "hk-a", "topic": "lockers/hk-a/up",
                               "action": "publish" });
    assert_eq!(
        decision(&app, "/v1/broker/authorize", other_client).await["result"],
        "deny"
    );
    // Revoked: neither logs in nor publishes any more.
    let registry = locker_gateway::device::DeviceRegistry::new(app.pool.clone());
    registry
        .revoke(crate::helpers::device("hk-a"))
        .await
        .expect("revoked");
    assert_eq!(login(&app, "hk-a", "hk-a", &pa).await["result"], "deny");
    assert_eq!(
        may(&app, "hk-a", "publish", "lockers/hk-a/up").await,
        "deny"
    );
    // The gateways' own login (LOCKER_MQTT_BROKER's user) is a superuser.
    // (This gateway runs on its embedded broker: it has none, so `gateway` is nobody here.)
    assert_eq!(
        login(&app, "gateway", "gateway", "x").await["result"],
        "deny"
    );
    // Only the broker may ask: no secret, a wrong one, a malformed body.
    let body = json!({ "clientid": "hk-b", "username": "hk-b", "password": pb });
    problem(
        ask(&app, "/v1/broker/authenticate", None, body.clone()).await,
        401,
        "unauthorized",
    )
    .await;
    problem(
        ask(&app, "/v1/broker/authenticate", Some("guess"), body.clone()).await,
        401,
        "unauthorized",
    )
    .await;
    let malformed = ask(
        &app,
        "/v1/broker/authorize",
        Some(SECRET),
        json!({ "topic": 5 }),
    )
    .await;
    problem(malformed, 422, "validation_failed").await;
    // The broker asks for every locker of the fleet: its calls are not held to the per-IP limit
    // (60 a minute here), anyone else's are.
    for _ in 0..80 {
        assert_eq!(
            may(&app, "hk-b", "publish", "lockers/hk-b/up").await,
            "allow"
        );
    }
    let mut limited = false;
    for _ in 0..80 {
        let response = ask(&app, "/v1/broker/authenticate", Some("guess"), body.clone()).await;
        if response.status() == 429 {
            limited = true;
            break;
        }
    }
    assert!(
        limited,
        "calls without the secret count against the caller's limit"
    );
}

#[sqlx::test]
async fn without_a_hook_secret_the_hooks_are_off(pool: sqlx::PgPool) {
    let app = crate::helpers::spawn_app(pool).await;
    let body = json!({ "clientid": "a", "username": "a", "password": "p" });
    problem(
        ask(&app, "/v1/broker/authenticate", Some("anything"), body).await,
        404,
        "not_found",
    )
    .await;
}

#[sqlx::test]
async fn the_gateways_own_broker_login_is_a_superuser(pool: sqlx::PgPool) {
    use crate::mosquitto_server::{GATEWAY_PASSWORD, GATEWAY_USER, Mosquitto};
    let mosquitto = Mosquitto::start(&[], true).await;
    let gateway = crate::mosquitto::gateway_on_with(&mosquitto, pool.clone(), |c| {
        c.broker_hook_secret = Some(SECRET.to_owned());
    })
    .await;
    let app = TestApp::around(gateway, pool);
    let ok = login(
        &app,
        "locker-gateway-x-uplinks",
        GATEWAY_USER,
        GATEWAY_PASSWORD,
    )
    .await;
    assert_eq!(
        (ok["result"].as_str(), ok["is_superuser"].as_bool()),
        (Some("allow"), Some(true))
    );
    let wrong = login(&app, "locker-gateway-x-uplinks", GATEWAY_USER, "guess").await;
    assert_eq!(wrong["result"], "deny");
    let body = json!({ "clientid": "locker-gateway-x-downlinks", "username": GATEWAY_USER,
                       "topic": "lockers/any/down", "action": "publish" });
    assert_eq!(
        decision(&app, "/v1/broker/authorize", body).await["result"],
        "allow"
    );
    app.app.run_until_stopped(async {}).await;
}
