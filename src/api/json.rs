//! JSON bodies in and out: the extractor turns every way a body can be wrong into a problem
//! document (415 not JSON, 413 too large, 400 malformed, 422 wrong or missing fields, naming the
//! field), and nothing is done with a body that did not parse.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::{ApiError, FieldError};

pub use crate::config::DEFAULT_BODY_LIMIT;

/// A JSON request or response body.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| {
                let v = v.trim();
                v.eq_ignore_ascii_case("application/json")
                    || (v.starts_with("application/") && v.ends_with("+json"))
            });
        if !is_json {
            return Err(ApiError::UnsupportedMediaType);
        }
        let RawBody(bytes) = RawBody::from_request(req, state).await?;
        parse(&bytes).map(Json)
    }
}

/// A JSON body that may be left out: `None` for an empty body, else parsed as [`Json`] is.
#[derive(Debug, Clone)]
pub struct OptionalJson<T>(pub Option<T>);

impl<T, S> FromRequest<S> for OptionalJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let RawBody(bytes) = RawBody::from_request(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(None));
        }
        parse(&bytes).map(|body| Self(Some(body)))
    }
}

/// A request body as bytes (the payment webhook checks its signature over them), read within
/// the body timeout and the size limit, every failure a problem document.
#[derive(Debug, Clone)]
pub struct RawBody(pub Bytes);

impl<S> FromRequest<S> for RawBody
where
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let timeout = req
            .extensions()
            .get::<super::server::BodyTimeout>()
            .map_or(std::time::Duration::from_secs(15), |t| t.0);
        let read = Bytes::from_request(req, state);
        tokio::time::timeout(timeout, read)
            .await
            .map_err(|_| ApiError::RequestTimeout)?
            .map(RawBody)
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge
                } else {
                    ApiError::BadRequest(rejection.body_text())
                }
            })
    }
}

/// Parses a JSON body: syntax errors are 400, wrong or missing fields 422 with the field named,
/// and so is a string (or a key) with a control character (`\u0000`, a newline, DEL, C1): no
/// text from outside carries one into the database or the logs.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if escapes_a_control(bytes) {
        let value: serde_json::Value = serde_json::from_slice(bytes)
            .map_err(|e| ApiError::BadRequest(format!("the body is not valid JSON: {e}")))?;
        if let Some(field) = control_in(&value, String::new()) {
            return Err(ApiError::field(
                &field,
                "must not contain control characters",
            ));
        }
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => ApiError::Validation(vec![FieldError {
                field: if path == "." { "body".into() } else { path },
                message: without_position(&inner.to_string()),
            }]),
            _ => ApiError::BadRequest(format!("the body is not valid JSON: {inner}")),
        }
    })?;
    deserializer
        .end()
        .map_err(|e| ApiError::BadRequest(format!("the body is not valid JSON: {e}")))?;
    Ok(value)
}

/// Whether a JSON text holds a control character: written as an escape, or raw where JSON allows
/// it (DEL, and C1 as UTF-8; raw C0 is not JSON): a fast scan, so that only such bodies are
/// looked at closely.
fn escapes_a_control(bytes: &[u8]) -> bool {
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            0x7f => return true,
            0xc2 if bytes.get(i + 1).is_some_and(|b| (0x80..=0x9f).contains(b)) => return true,
            b'\\' => {}
            _ => {
                i += 1;
                continue;
            }
        }
        match bytes.get(i + 1) {
            Some(b'b' | b'f' | b'n' | b'r' | b't') => return true,
            Some(b'u') => {
                let code = bytes
                    .get(i + 2..i + 6)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u32::from_str_radix(h, 16).ok());
                if code.and_then(char::from_u32).is_some_and(char::is_control) {
                    return true;
                }
                i += 6;
            }
            _ => i += 2,
        }
    }
    false
}

/// The path of the first string or key of `value` with a control character.
fn control_in(value: &serde_json::Value, path: String) -> Option<String> {
    let bad = |s: &str| s.chars().any(char::is_control);
    let at = |path: &str| {
        if path.is_empty() {
            "body".to_owned()
        } else {
            path.to_owned()
        }
    };
    match value {
        serde_json::Value::String(s) => bad(s).then(|| at(&path)),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| control_in(v, format!("{path}[{i}]"))),
        serde_json::Value::Object(map) => map.iter().find_map(|(k, v)| {
            let field = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            if bad(k) {
                Some(at(&path))
            } else {
                control_in(v, field)
            }
        }),
        _ => None,
    }
}

fn without_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message.to_owned(),
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// A page size from `?limit=`: 1 to 200, default 50.
pub fn page_size(limit: Option<u32>) -> Result<i64, ApiError> {
    match limit.unwrap_or(50) {
        n @ 1..=200 => Ok(i64::from(n)),
        _ => Err(ApiError::field("limit", "must be 1 to 200")),
    }
}

/// A `?state=` filter: one of `allowed`, else a 422 naming it.
pub fn state_filter(state: Option<&str>, allowed: &[&str]) -> Result<(), ApiError> {
    match state {
        Some(wanted) if !allowed.contains(&wanted) => Err(ApiError::field(
            "state",
            format!("one of {}", allowed.join(", ")),
        )),
        _ => Ok(()),
    }
}

/// The key to pass for the next page: the last item's, when the page came full.
pub fn next_page<T, K>(items: &[T], limit: i64, key: impl Fn(&T) -> K) -> Option<K> {
    (items.len() as i64 == limit)
        .then(|| items.last().map(key))
        .flatten()
}

/// Path parameters; one that does not parse (a rental id that is not a UUID, a door beyond
/// 65535) is a 400 problem document naming it, never axum's plain-text answer.
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        let raw = axum::extract::RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::BadRequest(format!("bad path: {}", e.body_text())))?;
        if let Some((name, _)) = raw.iter().find(|(_, v)| v.chars().any(char::is_control)) {
            return Err(ApiError::BadRequest(format!(
                "bad path: {name} has a control character"
            )));
        }
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| Path(value))
            .map_err(|e| ApiError::BadRequest(format!("bad path: {}", e.body_text())))
    }
}

/// Query-string parameters; a bad one is a 400 problem document naming it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
            .map_err(|e| ApiError::BadRequest(format!("bad query string: {e}")))?;
        if let Some((name, _)) = pairs
            .iter()
            .find(|(k, v)| k.chars().chain(v.chars()).any(char::is_control))
        {
            return Err(ApiError::BadRequest(format!(
                "bad query string: {name:?} has a control character"
            )));
        }
        serde_urlencoded::from_str(query)
            .map(Query)
            .map_err(|e| ApiError::BadRequest(format!("bad query string: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_found_by_field_and_escaped_backslashes_are_not() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Body {
            name: String,
            items: Vec<String>,
        }
        let refused = |json: &str| match parse::<Body>(json.as_bytes()) {
            Err(ApiError::Validation(errors)) => errors[0].field.clone(),
            other => panic!("{json}: {other:?}"),
        };
        assert_eq!(refused(r#"{"name": "a\u0000b", "items": []}"#), "name");
        assert_eq!(
            refused(r#"{"name": "a", "items": ["ok", "x\ny"]}"#),
            "items[1]"
        );
        assert_eq!(refused(r#"{"name": "\u007F", "items": []}"#), "name");
        assert_eq!(refused(r#"{"name": "\u0085", "items": []}"#), "name");
        assert_eq!(refused("{\"name\": \"a\u{7f}\", \"items\": []}"), "name");
        assert_eq!(refused("{\"name\": \"a\u{85}\", \"items\": []}"), "name");
        // A backslash followed by the text u0000 is not a control character.
        let fine: Body = parse(br#"{"name": "a\\u0000", "items": ["\u00e9"]}"#).expect("fine");
        assert_eq!(fine.name, "a\\u0000");
    }

    proptest::proptest! {
        #[test]
        fn the_scan_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let _ = escapes_a_control(&bytes);
        }
    }
}
