//! The console's import page: lockers provisioned from a CSV file through the API
//! (`POST /v1/devices/import`), their credentials shown once and offered as a download.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

use super::{bar, page, signed_in};
use crate::api::ApiState;

pub(super) async fn form(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    let Some((user, token)) = signed_in(&state, &headers).await else {
        return Redirect::to("/console/login").into_response();
    };
    let body = format!(
        "{}<main data-csrf=\"{}\"><h1>Import lockers</h1>\
         <p>A CSV file with the header <code>id,doors,model,size_classes</code> and one locker a \
         row; <code>size_classes</code> is one class for every door, or one per door separated by \
         spaces. All or none: a bad row is named with its line and nothing is provisioned.</p>\
         <form id=\"import\" class=\"filters\"><label>CSV file \
         <input id=\"file\" type=\"file\" accept=\".csv,text/csv\" required></label>\
         <button type=\"submit\">Provision</button></form>\
         <p id=\"result\" role=\"status\"></p><ul id=\"errors\" class=\"error-list\"></ul>\
         <p><a id=\"download\" download=\"credentials.jsonl\" hidden>Download the credentials</a></p>\
         <label>Credentials (one JSON object a line) \
         <textarea id=\"credentials\" readonly rows=\"6\"></textarea></label></main>\
         <script src=\"/console/assets/import.js\"></script>",
        bar(&user, &token),
        super::session::csrf_of(&token),
    );
    page(StatusCode::OK, "Import lockers", &body, &[])
}
