//! The operator console at `/console`: pages rendered by the gateway, their stylesheet compiled
//! into the binary (nothing from elsewhere). Sign-in with an operator account gives a session
//! cookie (`session`); every action a page offers is an API operation, called with that cookie
//! and the session's CSRF token. Customers cannot sign in.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Form, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{AppendHeaders, Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::Deserialize;

use super::ApiState;
use crate::account::User;

mod alarms;
mod audit;
mod campaigns;
mod catalog;
mod firmware;
mod hooks;
mod html;
mod import;
mod locker;
mod lockers;
mod overview;
mod people;
mod sales;
pub mod session;
mod tail;

use session::{LOGIN_COOKIE, SESSION_COOKIE, cookie, csrf_of, same, set_cookie};

/// The console's static files, embedded in the binary: (name, content type, content).
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "console.css",
        "text/css; charset=utf-8",
        include_str!("assets/console.css"),
    ),
    ("locker.js", JS, include_str!("assets/locker.js")),
    ("alarms.js", JS, include_str!("assets/alarms.js")),
    ("import.js", JS, include_str!("assets/import.js")),
    ("bulk.js", JS, include_str!("assets/bulk.js")),
    ("act.js", JS, include_str!("assets/act.js")),
    ("tail.js", JS, include_str!("assets/tail.js")),
    ("firmware.js", JS, include_str!("assets/firmware.js")),
];
const JS: &str = "text/javascript; charset=utf-8";

/// The console's routes (pages, not API operations: they are not in the OpenAPI document).
pub fn routes() -> axum::Router<ApiState> {
    axum::Router::new()
        .route("/console", get(overview::overview_page))
        .route("/console/gateways", get(overview::gateways))
        .route("/console/commands", get(overview::commands))
        .route("/console/rentals", get(sales::rentals))
        .route("/console/orders", get(sales::orders))
        .route("/console/users", get(people::list))
        .route("/console/users/{id}", get(people::one))
        .route("/console/catalog", get(catalog::page_of))
        .route("/console/webhooks", get(hooks::page_of))
        .route("/console/firmware", get(firmware::page_of))
        .route("/console/firmware/campaigns/{id}", get(campaigns::one))
        .route("/console/events", get(tail::page_of))
        .route("/console/events/live", get(tail::live))
        .route("/console/login", get(login_page).post(log_in))
        .route("/console/logout", axum::routing::post(log_out))
        .route("/console/lockers", get(lockers::list))
        .route("/console/lockers/{id}", get(locker::one))
        .route("/console/lockers/{id}/live", get(locker::live))
        .route("/console/assets/{name}", get(asset))
        .route("/console/alarms", get(alarms::list))
        .route("/console/audit", get(audit::list))
        .route("/console/import", get(import::form))
}

/// Text for HTML: `<`, `>`, `&`, quotes escaped.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A whole page: the document, the stylesheet, no outside assets, never cached or framed.
pub(super) fn page(status: StatusCode, title: &str, body: &str, cookies: &[String]) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · Locker console</title>\
         <link rel=\"stylesheet\" href=\"/console/assets/console.css\"></head>\
         <body>{body}</body></html>\n",
        escape(title)
    );
    let mut response = (status, Html(html)).into_response();
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        "content-security-policy",
        HeaderValue::from_static("default-src 'self'; frame-ancestors 'none'; form-action 'self'"),
    );
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    for value in cookies {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.append(SET_COOKIE, value);
        }
    }
    response
}

/// One of the console's static files (404 for another name).
async fn asset(axum::extract::Path(name): axum::extract::Path<String>) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, content_type, content)) => {
            ([(CONTENT_TYPE, *content_type)], *content).into_response()
        }
        None => crate::api::ApiError::NotFound("file").into_response(),
    }
}

/// The operator whose session cookie came with the request, if it is valid.
pub(super) async fn signed_in(state: &ApiState, headers: &HeaderMap) -> Option<(User, String)> {
    let token = cookie(headers, SESSION_COOKIE)?;
    let user = state.accounts.authenticate(token).await.ok().flatten()?;
    user.role.is_operator().then(|| (user, token.to_owned()))
}

fn login_form(error: Option<&str>, csrf: &str) -> String {
    let error = error
        .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", escape(e)))
        .unwrap_or_default();
    format!(
        "<main class=\"narrow\"><h1>Locker console</h1>{error}\
         <form class=\"stack\" method=\"post\" action=\"/console/login\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <label>Email <input name=\"email\" type=\"email\" autocomplete=\"username\" required autofocus></label>\
         <label>Password <input name=\"password\" type=\"password\" autocomplete=\"current-password\" required></label>\
         <button type=\"submit\">Sign in</button></form></main>"
    )
}

/// A new login form with its CSRF token (in a cookie and in the form).
fn fresh_login(status: StatusCode, error: Option<&str>, secure: bool) -> Response {
    let mut bytes = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
    let csrf = hex::encode(bytes);
    let cookie = set_cookie(LOGIN_COOKIE, &csrf, "/console", 600, secure);
    page(status, "Sign in", &login_form(error, &csrf), &[cookie])
}

fn over_tls(state: &ApiState, peer: SocketAddr, headers: &HeaderMap) -> bool {
    state.limits.over_tls(peer.ip(), headers)
}

async fn login_page(
    State(state): State<ApiState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if signed_in(&state, &headers).await.is_some() {
        return Redirect::to("/console").into_response();
    }
    fresh_login(StatusCode::OK, None, over_tls(&state, peer, &headers))
}

/// The sign-in form.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    email: String,
    password: String,
    #[serde(default)]
    csrf: String,
}

async fn log_in(
    State(state): State<ApiState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let secure = over_tls(&state, peer, &headers);
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !same(&form.csrf, expected) {
        let why = "The sign-in form had expired: sign in again.";
        return fresh_login(StatusCode::FORBIDDEN, Some(why), secure);
    }
    let session = match state.accounts.log_in(&form.email, &form.password).await {
        Ok(session) => session,
        Err(_) => {
            let why = "Wrong email or password.";
            return fresh_login(StatusCode::UNAUTHORIZED, Some(why), secure);
        }
    };
    if !session.user.role.is_operator() {
        let _ = state.accounts.revoke_token(&session.token).await;
        let why = "The console is for operator accounts.";
        return fresh_login(StatusCode::FORBIDDEN, Some(why), secure);
    }
    record(&state, &session.user, "console.sign_in").await;
    let max_age = (session.expires_at - chrono::Utc::now())
        .num_seconds()
        .max(0) as u64;
    let cookies = AppendHeaders([
        (
            SET_COOKIE,
            set_cookie(SESSION_COOKIE, &session.token, "/", max_age, secure),
        ),
        (
            SET_COOKIE,
            set_cookie(LOGIN_COOKIE, "", "/console", 0, secure),
        ),
    ]);
    (cookies, Redirect::to("/console")).into_response()
}

/// Sign-out.
#[derive(Debug, Deserialize)]
pub struct LogoutForm {
    #[serde(default)]
    csrf: String,
}

async fn log_out(
    State(state): State<ApiState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<LogoutForm>,
) -> Response {
    let secure = over_tls(&state, peer, &headers);
    let Some((user, token)) = signed_in(&state, &headers).await else {
        return Redirect::to("/console/login").into_response();
    };
    if !same(&form.csrf, &csrf_of(&token)) {
        let body = "<main class=\"narrow\"><h1>Not signed out</h1><p class=\"error\" role=\"alert\">\
                    The form came without its token. <a href=\"/console\">Back</a></p></main>";
        return page(StatusCode::FORBIDDEN, "Not signed out", body, &[]);
    }
    let _ = state.accounts.revoke_token(&token).await;
    record(&state, &user, "console.sign_out").await;
    let clear = set_cookie(SESSION_COOKIE, "", "/", 0, secure);
    (
        AppendHeaders([(SET_COOKIE, clear)]),
        Redirect::to("/console/login"),
    )
        .into_response()
}

async fn record(state: &ApiState, user: &User, action: &str) {
    let ok = crate::audit::Outcome::Ok;
    if let Err(e) = crate::audit::record(
        &state.storage,
        Some(user),
        action,
        None,
        ok,
        serde_json::json!({}),
    )
    .await
    {
        metrics::counter!("locker_audit_write_failures_total").increment(1);
        tracing::error!(error = %e, action, "cannot write the audit log");
    }
}

/// The bar at the top of every signed-in page: who, and sign-out.
pub(super) fn bar(user: &User, token: &str) -> String {
    format!(
        "<header class=\"bar\"><strong>Locker console</strong>\
         <nav class=\"sections\"><a href=\"/console\">Overview</a>\
         <a href=\"/console/lockers\">Lockers</a>\
         <a href=\"/console/alarms\">Alarms</a>\
         <a href=\"/console/rentals\">Rentals</a>\
         <a href=\"/console/orders\">Orders</a>\
         <a href=\"/console/users\">Users</a>\
         <a href=\"/console/catalog\">Catalog</a>\
         <a href=\"/console/import\">Import</a>\
         <a href=\"/console/firmware\">Firmware</a>\
         <a href=\"/console/webhooks\">Webhooks</a>\
         <a href=\"/console/events\">Live events</a>\
         <a href=\"/console/audit\">Audit log</a></nav>\
         <span class=\"who\">{} · {}</span>\
         <form method=\"post\" action=\"/console/logout\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <button class=\"quiet\" type=\"submit\">Sign out</button></form></header>",
        escape(&user.email),
        user.role.as_str(),
        csrf_of(token)
    )
}
