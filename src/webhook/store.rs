//! The webhooks' tables: endpoints, and one delivery per event and matching endpoint with the
//! answer of its last attempt.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::config::SecretsKey;
use crate::events::Event;
use crate::storage::{Storage, UnitOfWork, in_work, on_pool};

/// An endpoint as operators see it (never its secret).
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Endpoint {
    /// Its id.
    pub id: Uuid,
    /// Where deliveries are POSTed.
    pub url: String,
    /// What it receives: event types (`rental.ended`), families (`alarm.*`) or `*`,
    /// space-separated.
    pub event_types: String,
    /// What it is for.
    pub description: String,
    /// Who subscribed it.
    pub created_by: Option<Uuid>,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// A new endpoint.
#[derive(Debug, Clone)]
pub struct NewEndpoint {
    /// Where deliveries go (checked by [`super::check_url`]).
    pub url: String,
    /// Patterns (each checked by [`super::is_pattern`]).
    pub event_types: Vec<String>,
    /// What it is for.
    pub description: String,
    /// The operator subscribing it.
    pub created_by: Uuid,
}

/// One event for one endpoint, with its last attempt.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Delivery {
    /// Its id.
    pub id: i64,
    /// The endpoint.
    pub webhook_id: Uuid,
    /// The event (also the body's `id`: receivers drop an id they have seen).
    pub event_id: Uuid,
    /// Its type.
    pub event_type: String,
    /// `pending` (to be tried, or tried again after its backoff), `delivered` (answered 2xx) or
    /// `failed` (every attempt failed; replay it once the endpoint is fixed).
    pub state: String,
    /// Attempts so far.
    pub attempts: i32,
    /// When it is tried next (while pending).
    pub next_attempt_at: DateTime<Utc>,
    /// The HTTP status of the last attempt, if one answered.
    pub last_status: Option<i32>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When it was written (the event was published).
    pub created_at: DateTime<Utc>,
    /// When an attempt was answered 2xx.
    pub delivered_at: Option<DateTime<Utc>>,
}

/// Why a webhook could not be handled.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// No such endpoint or delivery.
    #[error("no such webhook or delivery")]
    NotFound,
    /// The database failed.
    #[error("storage: {0}")]
    Storage(#[from] sqlx::Error),
}

/// Which deliveries to read.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    /// Only in this state.
    pub state: Option<String>,
    /// Only older than this id (the next page).
    pub before: Option<i64>,
    /// At most this many.
    pub limit: i64,
}

/// How a sealed secret is written in `webhooks.secret`: this, then the sealed bytes in hex.
const SEALED: &str = "sealed:";

/// The signing secret of endpoint `id` as kept: opened with `key` if it was sealed (`None` if it
/// cannot be: no key, or not the key it was sealed with).
pub(super) fn secret_of(kept: &str, id: Uuid, key: Option<&SecretsKey>) -> Option<String> {
    match kept.strip_prefix(SEALED) {
        None => Some(kept.to_owned()),
        Some(sealed) => {
            let sealed = hex::decode(sealed).ok()?;
            let plain = crate::sealing::open(key?, id.as_bytes(), &sealed)?;
            String::from_utf8(plain).ok()
        }
    }
}

const ENDPOINT_COLUMNS: &str = "id, url, event_types, description, created_by, created_at";
const DELIVERY_COLUMNS: &str = "id, webhook_id, event_id, event_type, state, attempts,
    next_attempt_at, last_status, last_error, created_at, delivered_at";

/// Subscribes an endpoint with `secret` (kept sealed with `key` when there is one: see
/// [`crate::sealing`]); returns it.
pub async fn create(
    storage: &Storage,
    new: &NewEndpoint,
    secret: &str,
    key: Option<&SecretsKey>,
) -> Result<Endpoint, sqlx::Error> {
    const INSERT: &str = "INSERT INTO webhooks
            (id, url, event_types, secret, description, created_by, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)";
    let endpoint = Endpoint {
        id: Uuid::now_v7(),
        url: new.url.clone(),
        event_types: new.event_types.join(" "),
        description: new.description.clone(),
        created_by: Some(new.created_by),
        created_at: Utc::now(),
    };
    let kept = match key {
        Some(key) => format!(
            "{SEALED}{}",
            hex::encode(crate::sealing::seal(
                key,
                endpoint.id.as_bytes(),
                secret.as_bytes()
            ))
        ),
        None => secret.to_owned(),
    };
    on_pool!(storage, |pool| sqlx::query(INSERT)
        .bind(endpoint.id)
        .bind(&endpoint.url)
        .bind(&endpoint.event_types)
        .bind(&kept)
        .bind(&endpoint.description)
        .bind(endpoint.created_by)
        .bind(endpoint.created_at)
        .execute(pool)
        .await?
        .rows_affected());
    Ok(endpoint)
}

/// Every endpoint, oldest first.
pub async fn list(storage: &Storage) -> Result<Vec<Endpoint>, sqlx::Error> {
    let sql = format!("SELECT {ENDPOINT_COLUMNS} FROM webhooks ORDER BY created_at, id");
    Ok(on_pool!(storage, |pool| sqlx::query_as(
        sqlx::AssertSqlSafe(sql.clone())
    )
    .fetch_all(pool)
    .await?))
}

/// Unsubscribes endpoint `id` (its delivery log goes with it); `false` if there was none.
pub async fn remove(storage: &Storage, id: Uuid) -> Result<bool, sqlx::Error> {
    const DELIVERIES: &str = "DELETE FROM webhook_deliveries WHERE webhook_id = $1";
    const ENDPOINT: &str = "DELETE FROM webhooks WHERE id = $1";
    let mut work = storage.begin().await?;
    in_work!(&mut work, |conn| sqlx::query(DELIVERIES)
        .bind(id)
        .execute(conn)
        .await?
        .rows_affected());
    let removed = in_work!(&mut work, |conn| sqlx::query(ENDPOINT)
        .bind(id)
        .execute(conn)
        .await?
        .rows_affected());
    work.commit().await?;
    Ok(removed == 1)
}

/// Endpoint `id`'s deliveries, newest first; `NotFound` if there is no such endpoint.
pub async fn deliveries(
    storage: &Storage,
    id: Uuid,
    filter: &DeliveryFilter,
) -> Result<Vec<Delivery>, WebhookError> {
    const KNOWN: &str = "SELECT count(*) FROM webhooks WHERE id = $1";
    let known: i64 = on_pool!(storage, |pool| sqlx::query_scalar(KNOWN)
        .bind(id)
        .fetch_one(pool)
        .await?);
    if known == 0 {
        return Err(WebhookError::NotFound);
    }
    let sql = format!(
        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries
         WHERE webhook_id = $1 AND ($2 IS NULL OR state = $2) AND ($3 IS NULL OR id < $3)
         ORDER BY id DESC LIMIT $4"
    );
    Ok(on_pool!(storage, |pool| sqlx::query_as(
        sqlx::AssertSqlSafe(sql.clone())
    )
    .bind(id)
    .bind(&filter.state)
    .bind(filter.before)
    .bind(filter.limit)
    .fetch_all(pool)
    .await?))
}

/// Sends delivery `delivery` of endpoint `id` again, now, whatever became of it: it is pending
/// once more, its attempts still counted.
pub async fn replay(storage: &Storage, id: Uuid, delivery: i64) -> Result<Delivery, WebhookError> {
    const AGAIN: &str = "UPDATE webhook_deliveries SET state = 'pending', next_attempt_at = $3
         WHERE id = $2 AND webhook_id = $1";
    let again = on_pool!(storage, |pool| sqlx::query(AGAIN)
        .bind(id)
        .bind(delivery)
        .bind(Utc::now())
        .execute(pool)
        .await?
        .rows_affected());
    if again == 0 {
        return Err(WebhookError::NotFound);
    }
    let sql = format!("SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = $1");
    Ok(on_pool!(storage, |pool| sqlx::query_as(
        sqlx::AssertSqlSafe(sql.clone())
    )
    .bind(delivery)
    .fetch_one(pool)
    .await?))
}

/// Writes, in `work` (the unit of work that marks `events` published), one delivery per event
/// and endpoint subscribed to its type. An event written twice (a batch published again after a
/// crash) is one delivery.
pub async fn fan_out(work: &mut UnitOfWork, events: &[Event]) -> Result<usize, sqlx::Error> {
    const ENDPOINTS: &str = "SELECT id, event_types FROM webhooks";
    const INSERT: &str = "INSERT INTO webhook_deliveries
            (webhook_id, event_id, event_type, payload, next_attempt_at, created_at)
         VALUES ($1, $2, $3, $4, $5, $5)
         ON CONFLICT (webhook_id, event_id) DO NOTHING";
    let endpoints: Vec<(Uuid, String)> = in_work!(&mut *work, |conn| {
        sqlx::query_as(ENDPOINTS).fetch_all(conn).await?
    });
    if endpoints.is_empty() {
        return Ok(0);
    }
    let now = Utc::now();
    let mut written = 0;
    for event in events {
        let mut body = None;
        for (endpoint, patterns) in &endpoints {
            if !patterns
                .split(' ')
                .any(|pattern| super::matches(pattern, &event.event_type))
            {
                continue;
            }
            let payload = body.get_or_insert_with(|| {
                serde_json::to_string(event).unwrap_or_else(|_| "{}".to_owned())
            });
            written += in_work!(&mut *work, |conn| sqlx::query(INSERT)
                .bind(endpoint)
                .bind(event.id)
                .bind(&event.event_type)
                .bind(payload.as_str())
                .bind(now)
                .execute(conn)
                .await?
                .rows_affected());
        }
    }
    Ok(written as usize)
}
