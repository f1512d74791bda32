//! The console's firmware page: the images uploaded (version, models, size, SHA-256, the key that
//! signed each) and an upload form for admins (the API's `POST /v1/firmware`, sent by
//! `firmware.js` with the session's CSRF token); the campaigns and a form to start one
//! (`campaigns::section`).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

use super::html::{row, table, when};
use super::{bar, page, signed_in};
use crate::api::ApiState;

pub(super) async fn page_of(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    let Some((user, token)) = signed_in(&state, &headers).await else {
        return Redirect::to("/console/login").into_response();
    };
    let images = match crate::firmware::list(&state.storage).await {
        Ok(images) => images,
        Err(e) => return crate::api::ApiError::from(e).into_response(),
    };
    let campaigns = match crate::firmware::campaign::list(&state.storage).await {
        Ok(campaigns) => campaigns,
        Err(e) => return crate::api::ApiError::from(e).into_response(),
    };
    let rows: String = images
        .iter()
        .map(|i| {
            row(&[
                &i.version,
                &i.models.join(", "),
                &i.size.to_string(),
                &i.sha256,
                &i.key_name,
                &when(&i.uploaded_at),
            ])
        })
        .collect();
    let keys: Vec<String> = state
        .firmware
        .keys
        .iter()
        .map(|k| match k.retire_after {
            Some(day) => format!("{} (until {day})", k.name),
            None => k.name.clone(),
        })
        .collect();
    let keys = if keys.is_empty() {
        "none: set LOCKER_FIRMWARE_KEYS to accept images".to_owned()
    } else {
        keys.join(", ")
    };
    let body = format!(
        "{}<main data-csrf=\"{}\"><h1>Firmware</h1><p>Vendor keys: {}. Largest image: {} bytes.</p>\
         {}<h2>Upload an image</h2><p>Admins only. The signature is the vendor's Ed25519 \
         signature of the image's manifest (PROTOCOL.md §11).</p>\
         <form id=\"upload\" class=\"filters\">\
         <label>Image <input name=\"file\" type=\"file\" required></label>\
         <label>Version <input name=\"version\" maxlength=\"32\" size=\"10\" required></label>\
         <label>Models <input name=\"models\" maxlength=\"500\" size=\"14\" placeholder=\"lk-4,lk-12\" required></label>\
         <label>Signature <input name=\"signature\" maxlength=\"128\" size=\"20\" required></label>\
         <button type=\"submit\">Upload</button><span id=\"result\" role=\"status\"></span></form>\
         {}</main><script src=\"/console/assets/firmware.js\"></script>\
         <script src=\"/console/assets/act.js\"></script>",
        bar(&user, &token),
        super::session::csrf_of(&token),
        super::escape(&keys),
        state.firmware.max_bytes,
        table(
            "images",
            &[
                "Version",
                "Models",
                "Bytes",
                "SHA-256",
                "Signed by",
                "Uploaded (UTC)"
            ],
            &rows
        ),
        super::campaigns::section(&campaigns, &images, state.time_zone.name()),
    );
    page(StatusCode::OK, "Firmware", &body, &[])
}
