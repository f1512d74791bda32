//! `Idempotency-Key` on mutating requests (POST), scoped per user and kept 24 hours: a retry
//! with the same key and the same request gets the first answer (status and body, with
//! `Idempotent-Replayed: true`) without the work being done again; the same key with a different
//! request is a 422; the same key while the first request is still running is a 409.
//!
//! Keys belong to the authenticated caller; on anonymous requests the header is ignored. A first
//! request that failed inside the gateway (500, 503) leaves no record, so its retry runs again; any
//! other answer, including a locker's timeout (504, whose command may have run), is kept. A
//! record left unfinished by a crash is taken over after ten minutes.

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::ApiState;
use super::error::ApiError;
use crate::storage::{Storage, in_work, on_pool};

/// The request header.
pub const HEADER: &str = "idempotency-key";
/// Set on a replayed answer.
pub const REPLAYED: &str = "idempotent-replayed";
/// How long answers are kept.
pub const KEEP_HOURS: i64 = 24;
/// After this long an unfinished record is considered abandoned (its request crashed).
const ABANDONED_MINUTES: i64 = 10;

fn valid_key(key: &str) -> bool {
    (1..=255).contains(&key.len()) && key.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

enum Claim {
    /// This request runs; record its answer.
    Run,
    /// Answered before: replay.
    Replay(u16, Option<String>, Vec<u8>),
    /// Same key, another request.
    Mismatch,
    /// Same key, still running.
    Running,
}

async fn claim(
    storage: &Storage,
    user: uuid::Uuid,
    key: &str,
    digest: &[u8],
) -> Result<Claim, sqlx::Error> {
    // Times are bound, not read by the database: the same statements on both backends, and on
    // SQLite the stored and compared times are in one format.
    let now = chrono::Utc::now();
    let expired = now - chrono::Duration::hours(KEEP_HOURS);
    let abandoned = now - chrono::Duration::minutes(ABANDONED_MINUTES);
    let mut work = storage.begin().await?;
    let (taken, stored): (bool, Option<Stored>) = in_work!(&mut work, |conn| {
        // Forget this key's expired or abandoned record, then try to take it.
        sqlx::query(
            "DELETE FROM idempotency_keys WHERE user_id = $1 AND key = $2
               AND (created_at < $3 OR (status IS NULL AND created_at < $4))",
        )
        .bind(user)
        .bind(key)
        .bind(expired)
        .bind(abandoned)
        .execute(&mut *conn)
        .await?;
        let taken = sqlx::query(
            "INSERT INTO idempotency_keys (user_id, key, request_sha256, created_at)
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(user)
        .bind(key)
        .bind(digest)
        .bind(now)
        .execute(&mut *conn)
        .await?
        .rows_affected()
            == 1;
        let stored = if taken {
            None
        } else {
            Some(
                sqlx::query_as(
                    "SELECT request_sha256, status, content_type, body FROM idempotency_keys
                     WHERE user_id = $1 AND key = $2",
                )
                .bind(user)
                .bind(key)
                .fetch_one(conn)
                .await?,
            )
        };
        (taken, stored)
    });
    work.commit().await?;
    Ok(match stored {
        _ if taken => Claim::Run,
        None => Claim::Run,
        Some(stored) => match stored.status {
            _ if stored.request_sha256 != digest => Claim::Mismatch,
            None => Claim::Running,
            Some(status) => Claim::Replay(
                u16::try_from(status).unwrap_or(500),
                stored.content_type,
                stored.body.unwrap_or_default(),
            ),
        },
    })
}

/// A kept answer, as both backends return it.
#[derive(sqlx::FromRow)]
struct Stored {
    request_sha256: Vec<u8>,
    status: Option<i32>,
    content_type: Option<String>,
    body: Option<Vec<u8>>,
}

/// The middleware.
pub async fn layer(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    let Some(key) = request.headers().get(HEADER) else {
        return next.run(request).await;
    };
    let Some(key) = key
        .to_str()
        .ok()
        .filter(|k| valid_key(k))
        .map(str::to_owned)
    else {
        return ApiError::BadRequest(
            "Idempotency-Key must be 1 to 255 visible ASCII characters".into(),
        )
        .into_response();
    };
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .map(str::to_owned);
    let user = match token {
        Some(token) => match state.accounts.authenticate(&token).await {
            Ok(Some(user)) => user,
            // Not authenticated: the handler says 401 as usual.
            Ok(None) => return next.run(request).await,
            Err(e) => return ApiError::from(e).into_response(),
        },
        None => return next.run(request).await,
    };
    let (parts, body) = request.into_parts();
    let bytes = match to_bytes(body, state.body_limit).await {
        Ok(bytes) => bytes,
        Err(_) => return ApiError::PayloadTooLarge.into_response(),
    };
    let mut hasher = Sha256::new();
    hasher.update(parts.method.as_str().as_bytes());
    hasher.update([0]);
    hasher.update(parts.uri.to_string().as_bytes());
    hasher.update([0]);
    hasher.update(&bytes);
    let digest = hasher.finalize().to_vec();
    match claim(&state.storage, user.id, &key, &digest).await {
        Err(e) => ApiError::from(e).into_response(),
        Ok(Claim::Mismatch) => ApiError::Unprocessable {
            code: "idempotency_key_reused",
            detail: "this Idempotency-Key was used with a different request".into(),
        }
        .into_response(),
        Ok(Claim::Running) => ApiError::Conflict {
            code: "idempotency_in_progress",
            detail: "a request with this Idempotency-Key is still running; retry later".into(),
        }
        .into_response(),
        Ok(Claim::Replay(status, content_type, body)) => {
            metrics::counter!("locker_http_idempotent_replays_total").increment(1);
            let mut response = Response::new(Body::from(body));
            *response.status_mut() =
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            if let Some(value) = content_type.and_then(|c| HeaderValue::from_str(&c).ok()) {
                response.headers_mut().insert(header::CONTENT_TYPE, value);
            }
            response
                .headers_mut()
                .insert(REPLAYED, HeaderValue::from_static("true"));
            response
        }
        Ok(Claim::Run) => {
            let response = next
                .run(Request::from_parts(parts, Body::from(bytes)))
                .await;
            remember(&state, user.id, &key, response).await
        }
    }
}

/// Stores the answer (or forgets the claim after a failure inside the gateway) and returns it.
async fn remember(state: &ApiState, user: uuid::Uuid, key: &str, response: Response) -> Response {
    let status = response.status();
    if matches!(
        status,
        StatusCode::INTERNAL_SERVER_ERROR | StatusCode::SERVICE_UNAVAILABLE
    ) {
        let released: Result<u64, sqlx::Error> = async {
            Ok(on_pool!(&state.storage, |pool| {
                sqlx::query("DELETE FROM idempotency_keys WHERE user_id = $1 AND key = $2")
                    .bind(user)
                    .bind(key)
                    .execute(pool)
                    .await?
                    .rows_affected()
            }))
        }
        .await;
        if let Err(e) = released {
            tracing::error!(error = %e, "cannot release an idempotency key");
        }
        return response;
    }
    let (parts, body) = response.into_parts();
    let bytes = match to_bytes(body, 1024 * 1024).await {
        Ok(bytes) => bytes,
        Err(e) => {
            tracing::error!(error = %e, "cannot read a response to remember it");
            return ApiError::Internal(format!("response body: {e}")).into_response();
        }
    };
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let kept: Result<u64, sqlx::Error> = async {
        Ok(on_pool!(&state.storage, |pool| {
            sqlx::query(
                "UPDATE idempotency_keys SET status = $3, content_type = $4, body = $5,
                        completed_at = $6
                 WHERE user_id = $1 AND key = $2",
            )
            .bind(user)
            .bind(key)
            .bind(i32::from(status.as_u16()))
            .bind(content_type)
            .bind(bytes.as_ref())
            .bind(chrono::Utc::now())
            .execute(pool)
            .await?
            .rows_affected()
        }))
    }
    .await;
    if let Err(e) = kept {
        tracing::error!(error = %e, "cannot remember an idempotent answer");
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// Forgets answers older than 24 hours. Returns how many.
pub async fn purge(storage: &Storage) -> Result<u64, sqlx::Error> {
    let expired = chrono::Utc::now() - chrono::Duration::hours(KEEP_HOURS);
    Ok(on_pool!(storage, |pool| {
        sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
            .bind(expired)
            .execute(pool)
            .await?
            .rows_affected()
    }))
}
