//! The console's firmware campaigns: the list with a form to start one (on the firmware page),
//! and one campaign's page with each wave and each locker, and pause, resume and cancel (the
//! API's operations, sent by `act.js`; a campaign's fields by `campaign.js`).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

use super::html::{action, row, table, when};
use super::{bar, escape, page, signed_in};
use crate::api::ApiState;
use crate::firmware::Image;
use crate::firmware::campaign::{self, Campaign};

/// The campaigns' table and the form that starts one, for the firmware page.
pub(super) fn section(campaigns: &[Campaign], images: &[Image], zone: &str) -> String {
    let rows: String = campaigns
        .iter()
        .map(|c| {
            format!(
                "<tr><td><a href=\"/console/firmware/campaigns/{}\">{}</a></td><td>{}</td>\
                 <td>{}</td><td>{}</td><td>{}/{}</td><td>{}</td></tr>",
                c.id,
                c.id,
                escape(&c.name),
                escape(&c.version),
                escape(&c.state),
                c.waves_started,
                c.wave_count,
                when(&c.created_at)
            )
        })
        .collect();
    let options: String = images
        .iter()
        .map(|i| format!("<option value=\"{}\">{}</option>", i.id, escape(&i.version)))
        .collect();
    format!(
        "<h2>Campaigns</h2>{}<h2>Start a campaign</h2><p>Admins only. Lockers that announced \
         update support, of a model the image fits and on another version, in waves: each next \
         one once the wave before reached the success threshold; a wave failing more than the \
         error threshold stops the campaign. Installs only inside the window ({}).</p>\
         <form class=\"act filters\" id=\"campaign\" data-api=\"/v1/firmware/campaigns\" \
         data-method=\"POST\" data-campaign data-reload>\
         <label>Name <input name=\"name\" maxlength=\"100\" size=\"12\" required></label>\
         <label>Image <select name=\"image_id\">{options}</select></label>\
         <label>Waves <input name=\"waves\" size=\"10\" placeholder=\"10,25%,100%\" required></label>\
         <label>Success % <input name=\"success_threshold\" type=\"number\" min=\"0\" max=\"100\" value=\"90\"></label>\
         <label>Error % <input name=\"error_threshold\" type=\"number\" min=\"0\" max=\"100\" value=\"5\"></label>\
         <label>Model <input name=\"model\" size=\"8\"></label>\
         <label>From version <input name=\"from_version\" size=\"8\"></label>\
         <label>Id prefix <input name=\"id_prefix\" size=\"8\"></label>\
         <label>Window from <input name=\"window_start\" type=\"time\"></label>\
         <label>to <input name=\"window_end\" type=\"time\"></label>\
         <label>Time zone <input name=\"time_zone\" size=\"12\" placeholder=\"{}\"></label>\
         <button type=\"submit\">Start</button><span data-result role=\"status\"></span></form>",
        table(
            "campaigns",
            &["Id", "Name", "Version", "State", "Waves", "Started (UTC)"],
            &rows
        ),
        escape(zone),
        escape(zone),
    )
}

/// One campaign's page.
pub(super) async fn one(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Response {
    let Some((user, token)) = signed_in(&state, &headers).await else {
        return Redirect::to("/console/login").into_response();
    };
    let progress = match campaign::progress(&state.storage, id).await {
        Ok(Some(progress)) => progress,
        Ok(None) => return crate::api::ApiError::NotFound("campaign").into_response(),
        Err(e) => return crate::api::ApiError::from(e).into_response(),
    };
    let c = &progress.campaign;
    let waves: String = progress
        .waves
        .iter()
        .map(|w| {
            row(&[
                &(w.wave + 1).to_string(),
                &w.size.to_string(),
                if w.started { "yes" } else { "no" },
                &w.waiting.to_string(),
                &w.in_progress.to_string(),
                &w.installed.to_string(),
                &w.failed.to_string(),
                &w.cancelled.to_string(),
            ])
        })
        .collect();
    let lockers: String = progress
        .lockers
        .iter()
        .map(|l| {
            format!(
                "<tr><td><a href=\"/console/lockers/{}\">{}</a></td><td>{}</td><td>{}</td>\
                 <td>{}/{}</td><td>{}</td><td>{}</td></tr>",
                escape(&l.device_id),
                escape(&l.device_id),
                l.wave + 1,
                escape(&l.state),
                l.next_chunk,
                l.chunks,
                escape(l.reason.as_deref().unwrap_or("")),
                when(&l.updated_at)
            )
        })
        .collect();
    let api = format!("/v1/firmware/campaigns/{id}");
    let steer = |verb: &str, label: &str, confirm: Option<&str>| {
        action(("POST", &format!("{api}/{verb}")), "", label, confirm, true)
    };
    let window = match (&c.window_start, &c.window_end) {
        (Some(start), Some(end)) => format!("installs {start} to {end} ({})", c.time_zone),
        _ => "installs at any time".to_owned(),
    };
    let body = format!(
        "{}<main data-csrf=\"{}\"><h1>Campaign {}: {}</h1><p>Firmware {}; <strong>{}</strong>{}; \
         {} of {} waves started; success {}%, error {}%; {}.</p><div class=\"filters\">{}{}{}</div>\
         <h2>Waves</h2>{}<h2>Lockers</h2>{}</main>\
         <script src=\"/console/assets/act.js\"></script>",
        bar(&user, &token),
        super::session::csrf_of(&token),
        c.id,
        escape(&c.name),
        escape(&c.version),
        escape(&c.state),
        c.stop_reason
            .as_deref()
            .map(|r| format!(" ({})", escape(r)))
            .unwrap_or_default(),
        c.waves_started,
        c.wave_count,
        c.success_pct,
        c.error_pct,
        escape(&window),
        steer("pause", "Pause", None),
        steer("resume", "Resume", None),
        steer(
            "cancel",
            "Cancel",
            Some("Cancel this campaign? Lockers not installing yet are left as they are.")
        ),
        table(
            "waves",
            &[
                "Wave",
                "Lockers",
                "Started",
                "Waiting",
                "Under way",
                "Installed",
                "Failed",
                "Cancelled"
            ],
            &waves
        ),
        table(
            "lockers",
            &[
                "Locker",
                "Wave",
                "State",
                "Chunk",
                "Reason",
                "Changed (UTC)"
            ],
            &lockers
        ),
    );
    page(StatusCode::OK, "Campaign", &body, &[])
}
