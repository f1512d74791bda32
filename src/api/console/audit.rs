//! The console's audit log: every operator action and refused attempt, filtered by who (email),
//! what (action), how it ended and a time range (UTC), newest first.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::html::{moment, text};
use super::{bar, escape, page, signed_in};
use crate::api::ApiState;
use crate::audit::{self, Filter};

/// The page's filters.
#[derive(Debug, Default, Deserialize)]
pub struct AuditQuery {
    #[serde(default)]
    actor: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    outcome: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
}

pub(super) async fn list(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(query): Query<AuditQuery>,
) -> Response {
    let Some((user, token)) = signed_in(&state, &headers).await else {
        return Redirect::to("/console/login").into_response();
    };
    let outcome = ["ok", "refused", "failed"]
        .contains(&query.outcome.as_str())
        .then(|| query.outcome.clone());
    let filter = Filter {
        actor_email: text(&query.actor),
        action: text(&query.action),
        outcome,
        from: moment(&query.from),
        to: moment(&query.to),
        limit: 100,
        ..Filter::default()
    };
    let entries = match audit::list(&state.storage, &filter).await {
        Ok(entries) => entries,
        Err(e) => return crate::api::ApiError::from(e).into_response(),
    };
    let rows: String = entries
        .iter()
        .map(|e| {
            format!(
                "<tr class=\"{outcome}\"><td>{at}</td><td>{who}</td><td>{action}</td>\
                 <td>{target}</td><td>{outcome}</td><td><code>{detail}</code></td></tr>",
                at = e.at.format("%Y-%m-%d %H:%M:%S"),
                who = escape(e.actor_email.as_deref().unwrap_or("")),
                action = escape(&e.action),
                target = escape(e.target.as_deref().unwrap_or("")),
                outcome = escape(&e.outcome),
                detail = escape(&e.detail.to_string()),
            )
        })
        .collect();
    let select = |value: &str, label: &str| {
        let selected = if value == query.outcome {
            " selected"
        } else {
            ""
        };
        format!("<option value=\"{value}\"{selected}>{label}</option>")
    };
    let body = format!(
        "{}<main><h1>Audit log</h1>\
         <form class=\"filters\" method=\"get\" action=\"/console/audit\">\
         <label>Who (email) <input name=\"actor\" value=\"{}\"></label>\
         <label>Action <input name=\"action\" value=\"{}\" placeholder=\"door.unlock\"></label>\
         <label>Outcome <select name=\"outcome\">{}{}{}{}</select></label>\
         <label>From (UTC) <input type=\"datetime-local\" name=\"from\" value=\"{}\"></label>\
         <label>To (UTC) <input type=\"datetime-local\" name=\"to\" value=\"{}\"></label>\
         <button type=\"submit\">Show</button></form>\
         <div class=\"table\"><table><thead><tr><th>When (UTC)</th><th>Who</th><th>Action</th>\
         <th>On</th><th>Outcome</th><th>Detail</th></tr></thead><tbody id=\"entries\">{rows}</tbody>\
         </table></div></main>",
        bar(&user, &token),
        escape(&query.actor),
        escape(&query.action),
        select("", "any"),
        select("ok", "ok"),
        select("refused", "refused"),
        select("failed", "failed"),
        escape(&query.from),
        escape(&query.to),
    );
    page(StatusCode::OK, "Audit log", &body, &[])
}
