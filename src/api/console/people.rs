//! The console's users and wallets: accounts found by any part of their email; one user's wallet
//! (available, held, owed), its ledger, and a top-up with a reason (the API's
//! `POST /v1/wallets/{user_id}/top-ups`, admins only, audited).

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use uuid::Uuid;

use super::html::{action, input, table, text, when};
use super::{bar, escape, page, signed_in};
use crate::api::ApiState;

/// The search.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PeopleQuery {
    q: String,
}

pub(super) async fn list(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(query): Query<PeopleQuery>,
) -> Response {
    let Some((user, token)) = signed_in(&state, &headers).await else {
        return Redirect::to("/console/login").into_response();
    };
    let found = match text(&query.q) {
        None => Vec::new(),
        Some(q) => match state.accounts.search(&q, None, 100).await {
            Ok(found) => found,
            Err(e) => return crate::api::ApiError::from(e).into_response(),
        },
    };
    let rows: String = found
        .iter()
        .map(|u| {
            format!(
                "<tr><td><a href=\"/console/users/{}\">{}</a></td><td>{}</td><td>{}</td></tr>",
                u.id,
                escape(&u.email),
                u.role.as_str(),
                when(&u.created_at)
            )
        })
        .collect();
    let body = format!(
        "{}<main><h1>Users</h1><form class=\"filters\" method=\"get\" action=\"/console/users\" \
         role=\"search\">{}<button type=\"submit\">Search</button></form>{}</main>",
        bar(&user, &token),
        input("q", "Email contains", &query.q),
        table("users", &["Email", "Role", "Since (UTC)"], &rows),
    );
    page(StatusCode::OK, "Users", &body, &[])
}

pub(super) async fn one(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let Some((user, token)) = signed_in(&state, &headers).await else {
        return Redirect::to("/console/login").into_response();
    };
    let Ok(id) = id.parse::<Uuid>() else {
        return crate::api::ApiError::NotFound("user").into_response();
    };
    let person = match state.accounts.get(id).await {
        Ok(Some(person)) => person,
        Ok(None) => return crate::api::ApiError::NotFound("user").into_response(),
        Err(e) => return crate::api::ApiError::from(e).into_response(),
    };
    let currency = state.wallets.currency();
    let money = |minor: i64| currency.from_minor(minor).to_string();
    let (balance, ledger) = match (
        state.wallets.balance(id).await,
        state.wallets.ledger(id, None, 50).await,
    ) {
        (Ok(balance), Ok(ledger)) => (balance, ledger),
        (Err(e), _) | (_, Err(e)) => return crate::api::ApiError::from(e).into_response(),
    };
    let rows: String = ledger
        .iter()
        .map(|e| {
            format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                when(&e.created_at),
                escape(&e.kind),
                money(e.available_delta),
                money(e.held_delta),
                money(e.available_after),
                escape(e.reference.as_deref().unwrap_or("")),
            )
        })
        .collect();
    let top_up = action(
        ("POST", &format!("/v1/wallets/{id}/top-ups")),
        &format!(
            "<label>Amount ({}) <input name=\"amount\" size=\"8\" required></label>\
             <label>Reason <input name=\"reference\" maxlength=\"200\" required></label>",
            escape(&currency.code)
        ),
        "Top up",
        Some("Add this amount to the wallet?"),
        true,
    );
    let by_user = escape(&super::lockers::query_string(&[("user", &person.email)]));
    let body = format!(
        "{}<main data-csrf=\"{}\"><h1>{}</h1><p>{} · account since {} · \
         <a href=\"/console/rentals?{by_user}\">rentals</a> · \
         <a href=\"/console/orders?{by_user}\">orders</a></p>\
         <h2>Wallet</h2><p id=\"balance\">Available {} · held {} · owed {} {}</p>\
         <h3>Top-up</h3>{top_up}<h2>Ledger</h2>{}</main>\
         <script src=\"/console/assets/act.js\"></script>",
        bar(&user, &token),
        super::session::csrf_of(&token),
        escape(&person.email),
        person.role.as_str(),
        when(&person.created_at),
        money(balance.available),
        money(balance.held),
        money(balance.debt),
        escape(&currency.code),
        table(
            "ledger",
            &[
                "When (UTC)",
                "Kind",
                "Available ±",
                "Held ±",
                "Available after",
                "Reference"
            ],
            &rows
        ),
    );
    page(StatusCode::OK, &person.email, &body, &[])
}
