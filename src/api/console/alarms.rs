//! The console's alarms: a filtered list, each alarm acknowledged or resolved through the API
//! (`POST /v1/alarms/{id}/acknowledge`, `…/resolve`) by the page's script with the session's CSRF
//! token.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::{bar, escape, page, signed_in};
use crate::alarm::{self, Filter};
use crate::api::ApiState;

/// The list's filters.
#[derive(Debug, Default, Deserialize)]
pub struct AlarmQuery {
    #[serde(default)]
    state: String,
    #[serde(default)]
    severity: String,
}

fn pick(value: &str, allowed: &[&str]) -> Option<String> {
    allowed.contains(&value).then(|| value.to_owned())
}

fn option(value: &str, current: &str, label: &str) -> String {
    let selected = if value == current { " selected" } else { "" };
    format!("<option value=\"{value}\"{selected}>{label}</option>")
}

pub(super) async fn list(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(query): Query<AlarmQuery>,
) -> Response {
    let Some((user, token)) = signed_in(&state, &headers).await else {
        return Redirect::to("/console/login").into_response();
    };
    let filter = Filter {
        state: pick(&query.state, &["open", "acknowledged", "resolved"]),
        severity: pick(&query.severity, &["critical", "major", "minor"]),
        limit: 100,
        ..Filter::default()
    };
    let alarms = match alarm::list(&state.storage, &filter).await {
        Ok(alarms) => alarms,
        Err(e) => return crate::api::ApiError::from(e).into_response(),
    };
    let rows: String = alarms
        .iter()
        .map(|a| {
            let door = a.door.map_or_else(|| "cabinet".to_owned(), |d| format!("door {d}"));
            let actions = match a.state.as_str() {
                "open" => format!(
                    "<button type=\"button\" class=\"quiet\" data-act=\"acknowledge\" data-alarm=\"{id}\">Acknowledge</button> \
                     <button type=\"button\" class=\"quiet\" data-act=\"resolve\" data-alarm=\"{id}\">Resolve</button>",
                    id = a.id
                ),
                "acknowledged" => format!(
                    "<button type=\"button\" class=\"quiet\" data-act=\"resolve\" data-alarm=\"{}\">Resolve</button>",
                    a.id
                ),
                _ => escape(a.resolution.as_deref().unwrap_or("")),
            };
            format!(
                "<tr data-alarm=\"{id}\" class=\"{severity}\"><td class=\"sev\">{severity}</td>\
                 <td>{kind}</td><td><a href=\"/console/lockers/{device}\">{device}</a> · {door}</td>\
                 <td class=\"state\">{state}</td><td>{times}</td>\
                 <td>{raised}</td><td>{actions}</td></tr>",
                id = a.id,
                severity = escape(&a.severity),
                kind = escape(&a.kind),
                device = escape(&a.device_id),
                state = escape(&a.state),
                times = a.times,
                raised = a.raised_at.format("%Y-%m-%d %H:%M:%S UTC"),
            )
        })
        .collect();
    let body = format!(
        "{}<main data-csrf=\"{}\"><h1>Alarms</h1>\
         <form class=\"filters\" method=\"get\" action=\"/console/alarms\">\
         <label>State <select name=\"state\">{}{}{}{}</select></label>\
         <label>Severity <select name=\"severity\">{}{}{}{}</select></label>\
         <button type=\"submit\">Show</button></form>\
         <p><label>What was done (to resolve) \
         <input id=\"resolution\" maxlength=\"500\"></label></p><p id=\"result\" role=\"status\"></p>\
         <div class=\"table\"><table><thead><tr><th>Severity</th><th>Kind</th><th>Where</th>\
         <th>State</th><th>Times</th><th>Raised</th><th></th></tr></thead>\
         <tbody id=\"alarms\">{rows}</tbody></table></div></main>\
         <script src=\"/console/assets/alarms.js\"></script>",
        bar(&user, &token),
        super::session::csrf_of(&token),
        option("", &query.state, "any"),
        option("open", &query.state, "open"),
        option("acknowledged", &query.state, "acknowledged"),
        option("resolved", &query.state, "resolved"),
        option("", &query.severity, "any"),
        option("critical", &query.severity, "critical"),
        option("major", &query.severity, "major"),
        option("minor", &query.severity, "minor"),
    );
    page(StatusCode::OK, "Alarms", &body, &[])
}
