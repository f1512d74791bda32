//! The console's live tail of domain events: the latest ones, then each new one as it is written
//! (server-sent events read from the outbox every second, so every gateway's events show),
//! optionally only the types a pattern names (`alarm.*`).

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as Sent, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::html::input;
use super::{bar, escape, page, signed_in};
use crate::api::ApiState;
use crate::events::tail;

/// Which events.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct TailQuery {
    types: String,
}

impl TailQuery {
    /// Whether `event_type` is wanted (every one when no pattern is given).
    fn wants(&self, event_type: &str) -> bool {
        let patterns = self.types.split([' ', ',']).filter(|p| !p.is_empty());
        let mut any = false;
        for pattern in patterns {
            any = true;
            if crate::webhook::matches(pattern, event_type) {
                return true;
            }
        }
        !any
    }
}

pub(super) async fn page_of(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(query): Query<TailQuery>,
) -> Response {
    let Some((user, token)) = signed_in(&state, &headers).await else {
        return Redirect::to("/console/login").into_response();
    };
    let body = format!(
        "{}<main data-types=\"{}\"><h1>Live events</h1>\
         <form class=\"filters\" method=\"get\" action=\"/console/events\">{}\
         <button type=\"submit\">Follow</button></form>\
         <p id=\"tail-state\" role=\"status\">Connecting…</p>\
         <ol id=\"tail\" class=\"tail\" aria-live=\"polite\"></ol></main>\
         <script src=\"/console/assets/tail.js\"></script>",
        bar(&user, &token),
        escape(&query.types),
        input("types", "Only (e.g. alarm.* rental.ended)", &query.types),
    );
    page(StatusCode::OK, "Live events", &body, &[])
}

/// The stream: the latest 50 wanted events, then each new one.
pub(super) async fn live(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(query): Query<TailQuery>,
) -> Response {
    if signed_in(&state, &headers).await.is_none() {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let storage = state.storage.clone();
    let start = tail::latest(&storage, 200).await.unwrap_or_default();
    let last = start.last().map_or(0, |(seq, _)| *seq);
    let wanted: Vec<String> = start
        .into_iter()
        .filter(|(_, e)| query.wants(&e.event_type))
        .filter_map(|(_, e)| serde_json::to_string(&e).ok())
        .collect();
    let first = wanted[wanted.len().saturating_sub(50)..].to_vec();
    let stream = futures_util::stream::unfold(
        (storage, query, last, first, true),
        |(storage, query, mut last, mut pending, first)| async move {
            loop {
                if let Some(next) = (!pending.is_empty()).then(|| pending.remove(0)) {
                    let sent = Sent::default().event("event").data(next);
                    return Some((
                        Ok::<_, Infallible>(sent),
                        (storage, query, last, pending, false),
                    ));
                }
                if !first {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                let Ok(new) = tail::after(&storage, last, 100).await else {
                    continue;
                };
                if let Some((seq, _)) = new.last() {
                    last = *seq;
                }
                pending = new
                    .into_iter()
                    .filter(|(_, e)| query.wants(&e.event_type))
                    .filter_map(|(_, e)| serde_json::to_string(&e).ok())
                    .collect();
            }
        },
    );
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}
