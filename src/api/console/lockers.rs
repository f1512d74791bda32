//! The console's lockers: the list (search by any fragment of the id, filters, pages) and one
//! locker's page with its doors as a grid kept live by server-sent events, and a maintenance
//! unlock (the API's `POST /v1/devices/{id}/doors/{door}/unlock`, called by the page's script
//! with the session's CSRF token).

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::{bar, escape, page, signed_in};
use crate::api::ApiState;
use crate::device::directory::{self, DeviceSearch, DoorView};

/// The list's search form and filters.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    online: String,
    #[serde(default)]
    open_alarms: String,
    after: Option<String>,
}

fn flag(value: &str) -> Option<bool> {
    match value {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

fn option(value: &str, current: &str, label: &str) -> String {
    let selected = if value == current { " selected" } else { "" };
    format!("<option value=\"{value}\"{selected}>{label}</option>")
}

const PAGE: i64 = 50;

pub(super) async fn list(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> Response {
    let Some((user, token)) = signed_in(&state, &headers).await else {
        return Redirect::to("/console/login").into_response();
    };
    let fragment = query.q.trim();
    let search = DeviceSearch {
        fragment: (!fragment.is_empty()).then(|| fragment.chars().take(32).collect()),
        online: flag(&query.online),
        open_alarms: flag(&query.open_alarms),
        after: query.after.clone(),
        limit: PAGE,
        ..DeviceSearch::default()
    };
    let found = match directory::search(&state.storage, &search).await {
        Ok(found) => found,
        Err(e) => return crate::api::ApiError::from(e).into_response(),
    };
    let rows: String = found
        .iter()
        .map(|d| {
            let seen = d
                .last_seen_at
                .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
                .unwrap_or_else(|| "never".into());
            let presence = if d.online { "online" } else { "offline" };
            format!(
                "<tr><td><a href=\"/console/lockers/{id}\">{id}</a></td><td>{model}</td>\
                 <td>{doors}</td><td class=\"{presence}\">{presence}</td><td>{seen}</td></tr>",
                id = escape(&d.id),
                model = escape(&d.model),
                doors = d.door_count,
            )
        })
        .collect();
    let next = match found.last() {
        Some(last) if found.len() as i64 == PAGE => format!(
            "<p><a href=\"/console/lockers?q={}&amp;online={}&amp;open_alarms={}&amp;after={}\">Next page</a></p>",
            escape(&urlencode(fragment)),
            escape(&query.online),
            escape(&query.open_alarms),
            escape(&urlencode(&last.id))
        ),
        _ => String::new(),
    };
    let body = format!(
        "{}<main><h1>Lockers</h1>\
         <form class=\"filters\" method=\"get\" action=\"/console/lockers\" role=\"search\">\
         <label>Id contains <input name=\"q\" value=\"{}\" maxlength=\"32\"></label>\
         <label>Presence <select name=\"online\">{}{}{}</select></label>\
         <label>Alarms <select name=\"open_alarms\">{}{}</select></label>\
         <button type=\"submit\">Search</button></form>\
         <div class=\"table\"><table><thead><tr><th>Id</th><th>Model</th><th>Doors</th>\
         <th>Presence</th><th>Last seen</th></tr></thead><tbody>{rows}</tbody></table></div>{next}</main>",
        bar(&user, &token),
        escape(fragment),
        option("", &query.online, "any"),
        option("true", &query.online, "online"),
        option("false", &query.online, "offline"),
        option("", &query.open_alarms, "any"),
        option("true", &query.open_alarms, "with open alarms"),
    );
    page(StatusCode::OK, "Lockers", &body, &[])
}

/// `text` for a URL's query.
fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

fn door_cell(door: &DoorView) -> String {
    let locked = match door.locked {
        Some(true) => "locked",
        Some(false) => "unlocked",
        None => "",
    };
    let marks = [
        (door.suspect, "suspect"),
        (door.out_of_service, "out of service"),
    ]
    .iter()
    .filter(|(on, _)| *on)
    .map(|(_, name)| *name)
    .collect::<Vec<_>>()
    .join(", ");
    format!(
        "<li class=\"door {sensor}\" data-door=\"{n}\"><span class=\"num\">{n}</span>\
         <span class=\"sensor\">{sensor}</span><span class=\"lock\">{locked}</span>\
         <span class=\"marks\">{marks}</span>\
         <button type=\"button\" class=\"quiet unlock\" data-door=\"{n}\">Unlock</button>\
         <button type=\"button\" class=\"quiet service\" data-door=\"{n}\">Back in service</button></li>",
        n = door.door,
        sensor = escape(&door.sensor),
    )
}

pub(super) async fn one(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let Some((user, token)) = signed_in(&state, &headers).await else {
        return Redirect::to("/console/login").into_response();
    };
    let detail = match directory::get(&state.storage, &id).await {
        Ok(Some(detail)) => detail,
        Ok(None) => {
            let body = format!("{}<main><h1>No such locker</h1></main>", bar(&user, &token));
            return page(StatusCode::NOT_FOUND, "No such locker", &body, &[]);
        }
        Err(e) => return crate::api::ApiError::from(e).into_response(),
    };
    let d = &detail.device;
    let doors: String = detail.doors.iter().map(door_cell).collect();
    let commands = crate::command::history::list(&state.storage, &d.id, None, None, 20)
        .await
        .unwrap_or_default();
    let command_rows: String = commands
        .iter()
        .map(|c| {
            let outcome = c
                .door_result
                .as_deref()
                .or(c.refusal.as_deref())
                .unwrap_or("");
            format!(
                "<tr><td>{id}</td><td>{kind}</td><td>{door}</td><td class=\"state\">{state}</td>\
                 <td>{outcome}</td><td>{reason}</td><td>{at}</td></tr>",
                id = c.id,
                kind = escape(&c.kind),
                door = c.door.map(|n| n.to_string()).unwrap_or_default(),
                state = escape(&c.state),
                outcome = escape(outcome),
                reason = escape(c.reason.as_deref().unwrap_or("")),
                at = c.created_at.format("%Y-%m-%d %H:%M:%S UTC"),
            )
        })
        .collect();
    let body = format!(
        "{}<main data-locker=\"{id}\" data-csrf=\"{csrf}\"><h1>Locker {id}</h1>\
         <p>{model} · {count} doors · <span id=\"presence\">{presence}</span> · firmware {firmware}</p>\
         <h2>Doors</h2><ul class=\"doors\" id=\"doors\" aria-live=\"polite\">{doors}</ul>\
         <p><label>Reason (for an unlock, or what was done to put a door back in service) \
         <input id=\"reason\" maxlength=\"200\" placeholder=\"why\"></label></p>\
         <p id=\"result\" role=\"status\"></p>\
         <h2>Latest commands</h2><div class=\"table\"><table><thead><tr><th>Id</th><th>Kind</th>\
         <th>Door</th><th>State</th><th>Outcome</th><th>Reason</th><th>Created</th></tr></thead>\
         <tbody id=\"commands\">{command_rows}</tbody></table></div></main>\
         <script src=\"/console/assets/locker.js\"></script>",
        bar(&user, &token),
        id = escape(&d.id),
        model = escape(&d.model),
        count = d.door_count,
        presence = if d.online { "online" } else { "offline" },
        firmware = escape(d.firmware.as_deref().unwrap_or("unknown")),
        csrf = super::session::csrf_of(&token),
    );
    page(StatusCode::OK, &format!("Locker {}", d.id), &body, &[])
}

/// The doors of a locker as server-sent events: one `doors` event with every door's state when
/// the stream opens and whenever they change (read from the books each second, so changes any
/// gateway records show).
pub(super) async fn live(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if signed_in(&state, &headers).await.is_none() {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let storage = state.storage.clone();
    let stream = futures_util::stream::unfold(
        (storage, id, String::new(), true),
        |(storage, id, last, first)| async move {
            let mut wait = !first;
            loop {
                if wait {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                wait = true;
                let now = match directory::get(&storage, &id).await {
                    Ok(Some(detail)) => serde_json::json!({
                        "online": detail.device.online,
                        "doors": detail.doors,
                    })
                    .to_string(),
                    Ok(None) => return None,
                    Err(_) => continue,
                };
                if now != last {
                    let event = Event::default().event("doors").data(now.clone());
                    return Some((Ok::<_, Infallible>(event), (storage, id, now, false)));
                }
            }
        },
    );
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}
