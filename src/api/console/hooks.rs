//! The console's webhooks: the endpoints subscribed, a new one (its signing secret shown once),
//! one removed after confirmation, an endpoint's delivery log with a replay per delivery (the
//! API's `/v1/webhooks/…`, support and admins, audited).

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use uuid::Uuid;

use super::html::{action, select, table, when};
use super::{bar, escape, page, signed_in};
use crate::api::ApiState;
use crate::webhook::{self, DeliveryFilter};

/// Whose deliveries to show.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct HooksQuery {
    id: String,
    state: String,
}

pub(super) async fn page_of(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(query): Query<HooksQuery>,
) -> Response {
    let Some((user, token)) = signed_in(&state, &headers).await else {
        return Redirect::to("/console/login").into_response();
    };
    let endpoints = match webhook::list(&state.storage).await {
        Ok(endpoints) => endpoints,
        Err(e) => return crate::api::ApiError::from(e).into_response(),
    };
    let rows: String = endpoints
        .iter()
        .map(|e| {
            format!(
                "<tr><td><a href=\"/console/webhooks?id={id}\">{url}</a></td><td>{types}</td>\
                 <td>{what}</td><td>{at}</td><td>{remove}</td></tr>",
                id = e.id,
                url = escape(&e.url),
                types = escape(&e.event_types),
                what = escape(&e.description),
                at = when(&e.created_at),
                remove = action(
                    ("DELETE", &format!("/v1/webhooks/{}", e.id)),
                    "",
                    "Remove",
                    Some("Remove this endpoint and its delivery log?"),
                    true,
                ),
            )
        })
        .collect();
    let log = match query.id.parse::<Uuid>() {
        Ok(id) => deliveries(&state, id, &query.state).await,
        Err(_) => String::new(),
    };
    let body = format!(
        "{}<main data-csrf=\"{}\"><h1>Webhooks</h1><p>Each event of the types an endpoint \
         subscribed to is POSTed to it as JSON, signed in <code>locker-signature</code> \
         (<code>t=&lt;unix seconds&gt;,v1=&lt;hex HMAC-SHA256 of \"t.body\"&gt;</code>), and \
         tried again with growing waits until it is answered 2xx.</p>{}\
         <h2>A new endpoint</h2>{}{log}</main><script src=\"/console/assets/act.js\"></script>",
        bar(&user, &token),
        super::session::csrf_of(&token),
        table(
            "webhooks",
            &["URL", "Events", "For", "Since (UTC)", ""],
            &rows
        ),
        action(
            ("POST", "/v1/webhooks"),
            "<label>URL <input name=\"url\" type=\"url\" maxlength=\"500\" size=\"30\" \
             placeholder=\"https://…\" required></label>\
             <label>Events <input name=\"event_types\" data-list size=\"24\" \
             value=\"alarm.* rental.* order.* device.*\"></label>\
             <label>For <input name=\"description\" maxlength=\"200\"></label>",
            "Subscribe",
            None,
            false,
        ),
    );
    page(StatusCode::OK, "Webhooks", &body, &[])
}

/// Endpoint `id`'s latest deliveries, each with a replay.
async fn deliveries(state: &ApiState, id: Uuid, wanted: &str) -> String {
    let filter = DeliveryFilter {
        state: ["pending", "delivered", "failed"]
            .contains(&wanted)
            .then(|| wanted.to_owned()),
        before: None,
        limit: 100,
    };
    let found = match webhook::deliveries(&state.storage, id, &filter).await {
        Ok(found) => found,
        Err(e) => return format!("<p class=\"error\">{}</p>", escape(&e.to_string())),
    };
    let rows: String = found
        .iter()
        .map(|d| {
            format!(
                "<tr data-delivery=\"{n}\"><td>{n}</td><td>{at}</td><td>{kind}</td>\
                 <td class=\"state\">{st}</td><td>{tries}</td><td>{status}</td><td>{error}</td>\
                 <td>{replay}</td></tr>",
                n = d.id,
                at = when(&d.created_at),
                kind = escape(&d.event_type),
                st = escape(&d.state),
                tries = d.attempts,
                status = d.last_status.map(|s| s.to_string()).unwrap_or_default(),
                error = escape(d.last_error.as_deref().unwrap_or("")),
                replay = action(
                    (
                        "POST",
                        &format!("/v1/webhooks/{id}/deliveries/{}/replay", d.id)
                    ),
                    "",
                    "Replay",
                    None,
                    true,
                ),
            )
        })
        .collect();
    format!(
        "<h2>Deliveries</h2><form class=\"filters\" method=\"get\" action=\"/console/webhooks\">\
         <input type=\"hidden\" name=\"id\" value=\"{id}\">{}<button type=\"submit\">Show</button>\
         </form>{}",
        select(
            "state",
            "State",
            wanted,
            &[
                ("", "any"),
                ("pending", "pending"),
                ("delivered", "delivered"),
                ("failed", "failed")
            ]
        ),
        table(
            "deliveries",
            &[
                "#",
                "Written (UTC)",
                "Event",
                "State",
                "Attempts",
                "Last status",
                "Last error",
                ""
            ],
            &rows
        ),
    )
}
