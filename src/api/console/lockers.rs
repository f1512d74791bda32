//! The console's lockers list: search by any fragment of the id, filters (presence, open alarms,
//! model, transport and the gateway holding a serial line), sorted by id or by last seen, in
//! pages; and commands to the lockers selected on the page (the API's `/v1/bulk/…`, called by the
//! page's script with the session's CSRF token), with one result per locker.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::html::select;
use super::{bar, escape, page, signed_in};
use crate::api::ApiState;
use crate::device::directory::{self, DeviceSearch, DeviceView, Order, Transport};

/// The list's search form and filters, as the page's form sends them (empty for "any").
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ListQuery {
    q: String,
    online: String,
    open_alarms: String,
    model: String,
    transport: String,
    gateway: String,
    sort: String,
    after: Option<String>,
    offset: Option<u32>,
}

fn flag(value: &str) -> Option<bool> {
    match value {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// `text`, trimmed and cut to `max` characters; `None` when empty.
fn given(text: &str, max: usize) -> Option<String> {
    let text = text.trim();
    (!text.is_empty()).then(|| text.chars().take(max).collect())
}

const PAGE: i64 = 50;

impl ListQuery {
    fn search(&self) -> DeviceSearch {
        DeviceSearch {
            fragment: given(&self.q, 32),
            online: flag(&self.online),
            open_alarms: flag(&self.open_alarms),
            model: given(&self.model, 64),
            transport: match self.transport.as_str() {
                "mqtt" => Some(Transport::Mqtt),
                "serial" => Some(Transport::Serial),
                _ => None,
            },
            serial_gateway: given(&self.gateway, 64),
            order: if self.sort == "last_seen" {
                Order::LastSeen
            } else {
                Order::Id
            },
            after: self.after.clone(),
            offset: i64::from(self.offset.unwrap_or(0).min(100_000)),
            limit: PAGE,
            ..DeviceSearch::default()
        }
    }

    /// The query string of the same search, for the next page's link.
    fn again(&self) -> String {
        query_string(&[
            ("q", &self.q),
            ("online", &self.online),
            ("open_alarms", &self.open_alarms),
            ("model", &self.model),
            ("transport", &self.transport),
            ("gateway", &self.gateway),
            ("sort", &self.sort),
        ])
    }
}

fn row(d: &DeviceView) -> String {
    let seen = d
        .last_seen_at
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| "never".into());
    let presence = if d.revoked_at.is_some() {
        "revoked"
    } else if d.online {
        "online"
    } else {
        "offline"
    };
    let transport = match &d.serial_gateway {
        Some(gateway) => format!("serial · {}", escape(gateway)),
        None => "MQTT".to_owned(),
    };
    format!(
        "<tr><td><input type=\"checkbox\" class=\"pick\" value=\"{id}\" \
         aria-label=\"Select {id}\"></td><td><a href=\"/console/lockers/{id}\">{id}</a></td>\
         <td>{model}</td><td>{doors}</td><td>{transport}</td>\
         <td class=\"{presence}\">{presence}</td><td>{seen}</td></tr>",
        id = escape(&d.id),
        model = escape(&d.model),
        doors = d.door_count,
    )
}

/// The form that sends a command to the selected lockers.
const BULK_FORM: &str = "<h2>Command the selected lockers</h2>\
    <form id=\"bulk\" class=\"filters\"><span id=\"picked\" role=\"status\">0 selected</span>\
    <label>Command <select id=\"bulk-action\" name=\"action\">\
    <option value=\"unlock\">Unlock a door</option><option value=\"configure\">Settings</option>\
    <option value=\"revoke\">Revoke</option></select></label>\
    <label data-for=\"unlock\">Door <input name=\"door\" type=\"number\" min=\"1\" max=\"512\" value=\"1\"></label>\
    <label data-for=\"unlock\"><input name=\"override\" type=\"checkbox\"> also rented or stocked doors</label>\
    <label data-for=\"configure\">Heartbeat (s) <input name=\"heartbeat_secs\" type=\"number\" min=\"5\" max=\"3600\" value=\"60\"></label>\
    <label data-for=\"configure\">Open window (ms) <input name=\"open_window_ms\" type=\"number\" min=\"1000\" max=\"60000\" value=\"5000\"></label>\
    <label data-for=\"configure\">Pulse (ms) <input name=\"pulse_ms\" type=\"number\" min=\"50\" max=\"5000\" value=\"300\"></label>\
    <label data-for=\"configure\">Door ajar alarm (s) <input name=\"ajar_alarm_secs\" type=\"number\" min=\"0\" max=\"3600\" value=\"120\"></label>\
    <label>Reason <input name=\"reason\" maxlength=\"200\" placeholder=\"why\"></label>\
    <button type=\"submit\">Send</button></form><p id=\"bulk-status\" role=\"status\"></p>\
    <div class=\"table\"><table><thead><tr><th>Locker</th><th>Result</th><th>Detail</th></tr>\
    </thead><tbody id=\"bulk-results\"></tbody></table></div>";

pub(super) async fn list(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> Response {
    let Some((user, token)) = signed_in(&state, &headers).await else {
        return Redirect::to("/console/login").into_response();
    };
    let search = query.search();
    let found = match directory::search(&state.storage, &search).await {
        Ok(found) => found,
        Err(e) => return crate::api::ApiError::from(e).into_response(),
    };
    let rows: String = found.iter().map(row).collect();
    let next = match found.last() {
        Some(last) if found.len() as i64 == PAGE => {
            let page = if search.order == Order::LastSeen {
                format!("offset={}", search.offset + PAGE)
            } else {
                query_string(&[("after", &last.id)])
            };
            format!(
                "<p><a href=\"/console/lockers?{}&amp;{page}\">Next page</a></p>",
                escape(&query.again())
            )
        }
        _ => String::new(),
    };
    let body = format!(
        "{bar}<main data-csrf=\"{csrf}\"><h1>Lockers</h1>\
         <form class=\"filters\" method=\"get\" action=\"/console/lockers\" role=\"search\">\
         <label>Id contains <input name=\"q\" value=\"{q}\" maxlength=\"32\"></label>\
         {online}{alarms}<label>Model <input name=\"model\" value=\"{model}\" maxlength=\"64\" \
         size=\"10\"></label>{transport}\
         <label>Serial gateway <input name=\"gateway\" value=\"{gateway}\" maxlength=\"64\" \
         size=\"10\"></label>{sort}<button type=\"submit\">Search</button></form>\
         <div class=\"table\"><table><thead><tr><th><input type=\"checkbox\" id=\"select-all\" \
         aria-label=\"Select all on this page\"></th><th>Id</th><th>Model</th><th>Doors</th>\
         <th>Transport</th><th>Presence</th><th>Last seen</th></tr></thead><tbody>{rows}</tbody>\
         </table></div>{next}{BULK_FORM}</main><script src=\"/console/assets/bulk.js\"></script>",
        bar = bar(&user, &token),
        csrf = super::session::csrf_of(&token),
        q = escape(query.q.trim()),
        online = select(
            "online",
            "Presence",
            &query.online,
            &[("", "any"), ("true", "online"), ("false", "offline")]
        ),
        alarms = select(
            "open_alarms",
            "Alarms",
            &query.open_alarms,
            &[("", "any"), ("true", "with open alarms")]
        ),
        model = escape(query.model.trim()),
        transport = select(
            "transport",
            "Transport",
            &query.transport,
            &[("", "any"), ("mqtt", "MQTT"), ("serial", "serial line")]
        ),
        gateway = escape(query.gateway.trim()),
        sort = select(
            "sort",
            "Sort by",
            &query.sort,
            &[("", "id"), ("last_seen", "last seen")]
        ),
    );
    page(StatusCode::OK, "Lockers", &body, &[])
}

/// `pairs` as a URL's query string.
pub(super) fn query_string(pairs: &[(&str, &str)]) -> String {
    serde_urlencoded::to_string(pairs).unwrap_or_default()
}
