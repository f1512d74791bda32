//! The console's first page, the fleet at a glance (each number links to its list), and the
//! lists only it links to: the gateways with their leases, and the commands of the last 24 hours
//! that ended unknown or failed.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::html::{row, table, when};
use super::session::csrf_of;
use super::{bar, escape, page, signed_in};
use crate::api::ApiState;

fn card(class: &str, n: &str, what: &str, href: &str) -> String {
    format!("<a class=\"card {class}\" href=\"{href}\"><span class=\"n\">{n}</span>{what}</a>")
}

pub(super) async fn overview_page(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    let Some((user, token)) = signed_in(&state, &headers).await else {
        return Redirect::to("/console/login").into_response();
    };
    let counts = match crate::api::overview::counts(
        &state.storage,
        state.wallets.currency(),
        state.time_zone,
    )
    .await
    {
        Ok(counts) => counts,
        Err(e) => return crate::api::ApiError::from(e).into_response(),
    };
    let n = |n: i64| n.to_string();
    let money = &counts.money_today;
    let currency = &state.wallets.currency().code;
    let cards = [
        card(
            "ok",
            &n(counts.lockers.online),
            "lockers online",
            "/console/lockers?online=true",
        ),
        card(
            "",
            &n(counts.lockers.offline),
            "lockers offline",
            "/console/lockers?online=false",
        ),
        card(
            "critical",
            &n(counts.alarms.critical),
            "critical alarms",
            "/console/alarms?severity=critical",
        ),
        card(
            "major",
            &n(counts.alarms.major),
            "major alarms",
            "/console/alarms?severity=major",
        ),
        card(
            "minor",
            &n(counts.alarms.minor),
            "minor alarms",
            "/console/alarms?severity=minor",
        ),
        card(
            "",
            &n(counts.commands_last_24h.unknown),
            "commands unknown (24 h)",
            "/console/commands?failed=false",
        ),
        card(
            "",
            &n(counts.commands_last_24h.failed),
            "commands failed (24 h)",
            "/console/commands?failed=true",
        ),
        card(
            "",
            &n(counts.rentals_running),
            "rentals running",
            "/console/rentals?state=active",
        ),
        card(
            "major",
            &n(counts.rentals_overdue),
            "rentals overdue",
            "/console/rentals?state=active",
        ),
        card(
            "ok",
            &escape(&format!("{} {currency}", money.net)),
            &format!(
                "taken today ({}; {} taken, {} refunded)",
                escape(&money.time_zone),
                money.taken,
                money.refunded
            ),
            "/console/rentals?state=ended",
        ),
        card("", &n(counts.gateways), "gateways", "/console/gateways"),
    ]
    .concat();
    let body = format!(
        "{}<main><h1>Fleet overview</h1><section class=\"cards\" aria-label=\"The fleet\">{cards}</section></main>",
        bar(&user, &token)
    );
    let mut response = page(StatusCode::OK, "Overview", &body, &[]);
    if let Ok(csrf) = HeaderValue::from_str(&csrf_of(&token)) {
        // For a page's script that calls the API: the session's CSRF token.
        response.headers_mut().insert("x-csrf-token", csrf);
    }
    response
}

pub(super) async fn gateways(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    let Some((user, token)) = signed_in(&state, &headers).await else {
        return Redirect::to("/console/login").into_response();
    };
    let members = match crate::lease::members(&state.storage).await {
        Ok(members) => members,
        Err(e) => return crate::api::ApiError::from(e).into_response(),
    };
    let now = chrono::Utc::now();
    let rows: String = members
        .iter()
        .map(|m| {
            let alive = if m.stopped_at.is_some() {
                "stopped"
            } else if m.expires_at > now {
                "live"
            } else {
                "expired"
            };
            row(&[
                &m.id,
                alive,
                &m.process,
                &m.version,
                &when(&m.started_at),
                &when(&m.renewed_at),
                &when(&m.expires_at),
            ])
        })
        .collect();
    let body = format!(
        "{}<main><h1>Gateways</h1><p>Each gateway holds a lease on the database and renews it; \
         the work of one whose lease expired is taken over by the others.</p>{}</main>",
        bar(&user, &token),
        table(
            "gateways",
            &[
                "Id",
                "State",
                "Process",
                "Version",
                "Started",
                "Renewed",
                "Lease ends (UTC)"
            ],
            &rows
        ),
    );
    page(StatusCode::OK, "Gateways", &body, &[])
}

/// Which commands.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct CommandsQuery {
    failed: bool,
}

pub(super) async fn commands(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(query): Query<CommandsQuery>,
) -> Response {
    let Some((user, token)) = signed_in(&state, &headers).await else {
        return Redirect::to("/console/login").into_response();
    };
    let since = chrono::Utc::now() - chrono::Duration::hours(24);
    let found =
        match crate::command::history::needing_a_look(&state.storage, query.failed, since, 200)
            .await
        {
            Ok(found) => found,
            Err(e) => return crate::api::ApiError::from(e).into_response(),
        };
    let rows: String = found
        .iter()
        .map(|f| {
            let c = &f.command;
            format!(
                "<tr><td><a href=\"/console/lockers/{d}\">{d}</a></td><td>{}</td><td>{}</td>\
                 <td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                c.id,
                escape(&c.kind),
                c.door.map(|d| d.to_string()).unwrap_or_default(),
                escape(&c.state),
                escape(c.refusal.as_deref().unwrap_or("")),
                when(&c.created_at),
                d = escape(&f.device_id),
            )
        })
        .collect();
    let title = if query.failed {
        "Commands refused or expired (24 h)"
    } else {
        "Commands whose outcome is unknown (24 h)"
    };
    let body = format!(
        "{}<main><h1>{title}</h1>{}</main>",
        bar(&user, &token),
        table(
            "commands",
            &[
                "Locker",
                "Id",
                "Kind",
                "Door",
                "State",
                "Refusal",
                "Made (UTC)"
            ],
            &rows
        ),
    );
    page(StatusCode::OK, title, &body, &[])
}
