//! The operator console's sign-in, without a browser: the session cookie's flags, the CSRF token
//! on every form and on API calls made with the cookie, customers kept out, sessions that expire,
//! sign-out.

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::Value;
use sqlx::PgPool;

use crate::accounts::{customer, operator_as};
use crate::helpers::{TestApp, spawn_app_with};

/// A client that shows redirects instead of following them.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// The value of `name` in the response's Set-Cookie headers, with the whole header.
fn set_cookie(response: &reqwest::Response, name: &str) -> Option<(String, String)> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| {
            let value = v[name.len() + 1..].split(';').next().unwrap_or_default();
            (value.to_owned(), v.to_owned())
        })
}

/// The hidden `csrf` field of a page's form.
fn csrf_field(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    html[at..].split('"').next().expect("its value").to_owned()
}

/// Signs in through the form; the response.
async fn sign_in(app: &TestApp, email: &str, password: &str, forwarded: bool) -> reqwest::Response {
    let client = browser();
    let mut form_page = client.get(app.url("/console/login"));
    if forwarded {
        form_page = form_page.header("x-forwarded-proto", "https");
    }
    let form_page = form_page.send().await.expect("sent");
    assert_eq!(form_page.status(), 200);
    let (login_cookie, _) = set_cookie(&form_page, "lgw_login").expect("the form's cookie");
    let csrf = csrf_field(&form_page.text().await.expect("html"));
    let mut request = client
        .post(app.url("/console/login"))
        .header(COOKIE, format!("lgw_login={login_cookie}"))
        .form(&[
            ("email", email),
            ("password", password),
            ("csrf", csrf.as_str()),
        ]);
    if forwarded {
        request = request.header("x-forwarded-proto", "https");
    }
    request.send().await.expect("sent")
}

async fn app(pool: PgPool) -> TestApp {
    spawn_app_with(pool, |c| {
        c.rate_limits.trusted_proxies = vec!["127.0.0.1".parse().expect("ip")];
    })
    .await
}

#[sqlx::test]
async fn an_operator_signs_in_with_a_strict_http_only_cookie_and_sees_the_overview(pool: PgPool) {
    let app = app(pool).await;
    operator_as(
        &app,
        "tech@example.com",
        locker_gateway::account::Role::Technician,
    )
    .await;
    let client = browser();
    let away = client.get(app.url("/console")).send().await.expect("sent");
    assert_eq!(away.status(), 303);
    assert_eq!(away.headers()[LOCATION], "/console/login");
    let signed = sign_in(&app, "tech@example.com", "an operator password", false).await;
    assert_eq!(signed.status(), 303);
    assert_eq!(signed.headers()[LOCATION], "/console");
    let (session, header) = set_cookie(&signed, "lgw_console").expect("a session cookie");
    assert!(
        header.contains("HttpOnly") && header.contains("SameSite=Strict"),
        "{header}"
    );
    assert!(
        !header.contains("Secure"),
        "plain HTTP, no proxy said TLS: {header}"
    );
    let page = client
        .get(app.url("/console"))
        .header(COOKIE, format!("lgw_console={session}"))
        .send()
        .await
        .expect("sent");
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-security-policy"]
            .to_str()
            .expect("csp")
            .contains("default-src 'self'")
    );
    let csrf = page.headers()["x-csrf-token"]
        .to_str()
        .expect("csrf")
        .to_owned();
    let html = page.text().await.expect("html");
    assert!(
        html.contains("Fleet overview") && html.contains("lockers online"),
        "{html}"
    );
    assert!(html.contains("tech@example.com · technician"));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "nothing from elsewhere"
    );
    // The API with the cookie: reads as is; a change needs the session's CSRF token.
    let cookie = format!("lgw_console={session}");
    let overview = client
        .get(app.url("/v1/overview"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .expect("sent");
    assert_eq!(overview.status(), 200);
    let counts: Value = overview.json().await.expect("json");
    assert_eq!(counts["gateways"], 1);
    let refused = client
        .post(app.url("/v1/alarms/1/acknowledge"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .expect("sent");
    assert_eq!(refused.status(), 403);
    let problem: Value = refused.json().await.expect("problem");
    assert_eq!(problem["code"], "csrf_failed");
    let allowed = client
        .post(app.url("/v1/alarms/1/acknowledge"))
        .header(COOKIE, &cookie)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .expect("sent");
    assert_eq!(
        allowed.status(),
        404,
        "past the token and the role: no such alarm"
    );
    // Behind a TLS-terminating proxy the cookie is Secure.
    let proxied = sign_in(&app, "tech@example.com", "an operator password", true).await;
    let (_, header) = set_cookie(&proxied, "lgw_console").expect("a session cookie");
    assert!(header.contains("; Secure"), "{header}");
}

#[sqlx::test]
async fn forms_without_their_token_are_refused_and_sign_out_ends_the_session(pool: PgPool) {
    let app = app(pool).await;
    operator_as(
        &app,
        "ops@example.com",
        locker_gateway::account::Role::Admin,
    )
    .await;
    let client = browser();
    // The sign-in form posted without its token.
    let forged = client
        .post(app.url("/console/login"))
        .form(&[
            ("email", "ops@example.com"),
            ("password", "an operator password"),
        ])
        .send()
        .await
        .expect("sent");
    assert_eq!(forged.status(), 403);
    assert!(set_cookie(&forged, "lgw_console").is_none());
    let signed = sign_in(&app, "ops@example.com", "an operator password", false).await;
    let (session, _) = set_cookie(&signed, "lgw_console").expect("a session cookie");
    let cookie = format!("lgw_console={session}");
    // Sign-out posted without the token: refused, still signed in.
    let refused = client
        .post(app.url("/console/logout"))
        .header(COOKIE, &cookie)
        .form(&[("csrf", "0123")])
        .send()
        .await
        .expect("sent");
    assert_eq!(refused.status(), 403);
    let page = client
        .get(app.url("/console"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .expect("sent");
    assert_eq!(page.status(), 200);
    let csrf = csrf_field(&page.text().await.expect("html"));
    let out = client
        .post(app.url("/console/logout"))
        .header(COOKIE, &cookie)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .expect("sent");
    assert_eq!(out.status(), 303);
    let (cleared, header) = set_cookie(&out, "lgw_console").expect("cleared");
    assert!(
        cleared.is_empty() && header.contains("Max-Age=0"),
        "{header}"
    );
    let after = client
        .get(app.url("/console"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .expect("sent");
    assert_eq!(after.status(), 303, "the session's token no longer works");
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE action IN ('console.sign_in', 'console.sign_out')",
    )
    .fetch_one(&app.pool)
    .await
    .expect("audit");
    assert_eq!(audited, 2);
}

#[sqlx::test]
async fn customers_cannot_sign_in_and_sessions_expire(pool: PgPool) {
    let app = app(pool).await;
    let token = customer(&app, "c@example.com").await;
    let refused = sign_in(&app, "c@example.com", "a long password", false).await;
    assert_eq!(refused.status(), 403);
    assert!(set_cookie(&refused, "lgw_console").is_none());
    assert!(
        refused
            .text()
            .await
            .expect("html")
            .contains("operator accounts")
    );
    // A customer's token put in the cookie by hand reaches no page and no API.
    let client = browser();
    let cookie = format!("lgw_console={token}");
    let page = client
        .get(app.url("/console"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .expect("sent");
    assert_eq!(page.status(), 303);
    let me = client
        .get(app.url("/v1/me"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .expect("sent");
    assert_eq!(me.status(), 401);
    // An operator's session past its expiry: back to the sign-in page.
    operator_as(
        &app,
        "ops@example.com",
        locker_gateway::account::Role::Viewer,
    )
    .await;
    let signed = sign_in(&app, "ops@example.com", "an operator password", false).await;
    let (session, _) = set_cookie(&signed, "lgw_console").expect("a session cookie");
    sqlx::query("UPDATE api_tokens SET expires_at = now() - interval '1 second'")
        .execute(&app.pool)
        .await
        .expect("expired");
    let page = client
        .get(app.url("/console"))
        .header(COOKIE, format!("lgw_console={session}"))
        .send()
        .await
        .expect("sent");
    assert_eq!(page.status(), 303);
    assert_eq!(page.headers()[LOCATION], "/console/login");
}

#[sqlx::test]
async fn the_audit_log_page_filters_by_who_what_outcome_and_time(pool: PgPool) {
    let app = app(pool).await;
    let admin = operator_as(
        &app,
        "ops@example.com",
        locker_gateway::account::Role::Admin,
    )
    .await;
    let viewer = operator_as(&app, "v@example.com", locker_gateway::account::Role::Viewer).await;
    for (token, id) in [(&admin, "lk-audit-1"), (&viewer, "lk-audit-2")] {
        app.http
            .post(app.url("/v1/devices"))
            .bearer_auth(token)
            .json(&serde_json::json!({ "id": id, "door_count": 2 }))
            .send()
            .await
            .expect("sent");
    }
    let signed = sign_in(&app, "ops@example.com", "an operator password", false).await;
    let (session, _) = set_cookie(&signed, "lgw_console").expect("a session cookie");
    let client = browser();
    let show = |query: &'static str| {
        let cookie = format!("lgw_console={session}");
        let client = client.clone();
        let url = app.url(&format!("/console/audit{query}"));
        async move {
            let page = client
                .get(url)
                .header(COOKIE, cookie)
                .send()
                .await
                .expect("sent");
            assert_eq!(page.status(), 200);
            let html = page.text().await.expect("html");
            let body = &html[html.find("<tbody").expect("a table")..];
            body.matches("<tr").count()
        }
    };
    assert_eq!(
        show("?action=device.provision").await,
        1,
        "the admin's provisioning"
    );
    assert_eq!(
        show("?outcome=refused").await,
        1,
        "the viewer's refused attempt"
    );
    assert_eq!(show("?actor=V%40EXAMPLE.COM").await, 1, "any case");
    assert_eq!(
        show("?from=2000-01-01T00%3A00&to=2999-01-01T00%3A00&action=device.provision").await,
        1
    );
    assert_eq!(show("?from=2999-01-01T00%3A00").await, 0);
    // The same filters through the API.
    let page: Value = app
        .http
        .get(app.url("/v1/audit?actor_email=ops@example.com&from=2000-01-01T00:00:00Z"))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    let actions: Vec<&str> = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(
        actions.contains(&"device.provision") && actions.contains(&"console.sign_in"),
        "{actions:?}"
    );
    assert!(
        page["items"]
            .as_array()
            .expect("items")
            .iter()
            .all(|e| e["actor_email"] == "ops@example.com")
    );
}
