//! The console's page of one locker: its doors as a grid kept live by server-sent events, a
//! maintenance unlock and putting a door back in service (the API's operations, called by the
//! page's script with the session's CSRF token), its latest commands, the firmware it ran.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};

use super::{bar, escape, page, signed_in};
use crate::api::ApiState;
use crate::device::directory::{self, DoorView};
use crate::unlock::occupant::{self, Occupant};

/// The marks of a door: what it holds (`rented`, `stocked`) and what a person should look at.
fn marks(door: &DoorView, occupied: &[(i32, Occupant)]) -> String {
    let held = occupied
        .iter()
        .find(|(n, _)| *n == door.door)
        .map(|(_, occupant)| occupant.as_str());
    held.into_iter()
        .chain(door.suspect.then_some("suspect"))
        .chain(door.out_of_service.then_some("out of service"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn door_cell(door: &DoorView, occupied: &[(i32, Occupant)]) -> String {
    let locked = match door.locked {
        Some(true) => "locked",
        Some(false) => "unlocked",
        None => "",
    };
    let marks = marks(door, occupied);
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
    let occupied = occupant::of_locker(&state.storage, &d.id)
        .await
        .unwrap_or_default();
    let doors: String = detail
        .doors
        .iter()
        .map(|door| door_cell(door, &occupied))
        .collect();
    let commands = crate::command::history::list(&state.storage, &d.id, None, None, 20)
        .await
        .unwrap_or_default();
    let firmware_rows: String = crate::device::firmware::history(&state.storage, &d.id)
        .await
        .unwrap_or_default()
        .iter()
        .map(|f| {
            super::html::row(&[
                &f.firmware,
                &super::html::when(&f.first_seen_at),
                &super::html::when(&f.last_seen_at),
            ])
        })
        .collect();
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
         <tbody id=\"commands\">{command_rows}</tbody></table></div>\
         <h2>Firmware history</h2>{firmware_history}\
         <h2>Credentials</h2><p>A new secret replaces the locker's (the old one keeps working for \
         a day); revoking is final: the locker never connects again.</p>\
         <p class=\"actions\"><button type=\"button\" class=\"quiet\" id=\"rotate\">Rotate secret</button> \
         <button type=\"button\" class=\"danger\" id=\"revoke\">Revoke</button></p>\
         <div id=\"credentials\" hidden><p>The new secret, shown once: \
         <code id=\"secret\"></code></p></div></main>\
         <script src=\"/console/assets/locker.js\"></script>",
        bar(&user, &token),
        id = escape(&d.id),
        model = escape(&d.model),
        count = d.door_count,
        presence = if d.revoked_at.is_some() {
            "revoked"
        } else if d.online {
            "online"
        } else {
            "offline"
        },
        firmware = escape(d.firmware.as_deref().unwrap_or("unknown")),
        csrf = super::session::csrf_of(&token),
        firmware_history = super::html::table(
            "firmware",
            &["Firmware", "First hello (UTC)", "Last hello (UTC)"],
            &firmware_rows
        ),
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
                    Ok(Some(detail)) => {
                        let occupied = occupant::of_locker(&storage, &id).await.unwrap_or_default();
                        let marks: Vec<String> =
                            detail.doors.iter().map(|d| marks(d, &occupied)).collect();
                        serde_json::json!({
                            "online": detail.device.online,
                            "revoked": detail.device.revoked_at.is_some(),
                            "doors": detail.doors,
                            "marks": marks,
                        })
                        .to_string()
                    }
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
