//! The deliverer's statements: claim the deliveries that are due, read their endpoints, write
//! back what an attempt got.

use std::collections::HashMap;
use std::time::Duration;

use chrono::Utc;
use uuid::Uuid;

use crate::config::SecretsKey;
use crate::storage::{Storage, on_pool};

/// A delivery claimed for an attempt.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Due {
    /// The delivery.
    pub id: i64,
    /// Its endpoint.
    pub webhook_id: Uuid,
    /// The event.
    pub event_id: Uuid,
    /// Its type.
    pub event_type: String,
    /// The body to send.
    pub payload: String,
    /// Attempts before this one.
    pub attempts: i32,
}

/// Claims at most `limit` pending deliveries that are due, oldest due first, each moved on by
/// `lease` (tried again after it if the claimer dies). On PostgreSQL `FOR UPDATE SKIP LOCKED`:
/// gateways claiming at once take different ones; on SQLite the statement writes alone.
pub async fn claim(
    storage: &Storage,
    lease: Duration,
    limit: i64,
) -> Result<Vec<Due>, sqlx::Error> {
    let now = Utc::now();
    let until = now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX);
    Ok(on_pool!(storage, |pool, dialect| {
        let sql = format!(
            "UPDATE webhook_deliveries SET next_attempt_at = $2 WHERE id IN (
                SELECT id FROM webhook_deliveries
                WHERE state = 'pending' AND next_attempt_at <= $1
                ORDER BY next_attempt_at LIMIT $3 {})
             RETURNING id, webhook_id, event_id, event_type, payload, attempts",
            dialect.pick("FOR UPDATE SKIP LOCKED", "")
        );
        sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(now)
            .bind(until)
            .bind(limit)
            .fetch_all(pool)
            .await?
    }))
}

/// The URL and signing secret of each endpoint of `due` that still exists (`None` for a secret
/// sealed with another key than `key`, or with none now).
pub async fn endpoints_of(
    storage: &Storage,
    due: &[Due],
    key: Option<&SecretsKey>,
) -> Result<HashMap<Uuid, (String, Option<String>)>, sqlx::Error> {
    const ONE: &str = "SELECT url, secret FROM webhooks WHERE id = $1";
    let mut found = HashMap::new();
    for due in due {
        if found.contains_key(&due.webhook_id) {
            continue;
        }
        let row: Option<(String, String)> = on_pool!(storage, |pool| sqlx::query_as(ONE)
            .bind(due.webhook_id)
            .fetch_optional(pool)
            .await?);
        if let Some((url, kept)) = row {
            let secret = super::store::secret_of(&kept, due.webhook_id, key);
            found.insert(due.webhook_id, (url, secret));
        }
    }
    Ok(found)
}

/// Delivery `id` was answered `status` (2xx): delivered.
pub async fn delivered(storage: &Storage, id: i64, status: u16) -> Result<(), sqlx::Error> {
    const DELIVERED: &str = "UPDATE webhook_deliveries SET state = 'delivered',
            attempts = attempts + 1, last_status = $2, last_error = NULL, delivered_at = $3
         WHERE id = $1";
    on_pool!(storage, |pool| sqlx::query(DELIVERED)
        .bind(id)
        .bind(i32::from(status))
        .bind(Utc::now())
        .execute(pool)
        .await?
        .rows_affected());
    Ok(())
}

/// Delivery `id`'s attempt failed (`status` if the endpoint answered, and why): tried again
/// after `again`, or `failed` for good with `None`.
pub async fn not_delivered(
    storage: &Storage,
    id: i64,
    status: Option<u16>,
    error: &str,
    again: Option<Duration>,
) -> Result<(), sqlx::Error> {
    const AGAIN: &str = "UPDATE webhook_deliveries SET state = $4, attempts = attempts + 1,
            last_status = $2, last_error = $3, next_attempt_at = $5
         WHERE id = $1";
    let now = Utc::now();
    let next = now
        + again
            .and_then(|wait| chrono::Duration::from_std(wait).ok())
            .unwrap_or_default();
    on_pool!(storage, |pool| sqlx::query(AGAIN)
        .bind(id)
        .bind(status.map(i32::from))
        .bind(error)
        .bind(if again.is_some() { "pending" } else { "failed" })
        .bind(next)
        .execute(pool)
        .await?
        .rows_affected());
    Ok(())
}

/// Forgets the deliveries settled (delivered or failed) before `before`: the log keeps what an
/// operator may still look into, not every event forever. How many went.
pub async fn forget_settled(
    storage: &Storage,
    before: chrono::DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    const FORGET: &str =
        "DELETE FROM webhook_deliveries WHERE state <> 'pending' AND created_at < $1";
    Ok(on_pool!(storage, |pool| sqlx::query(FORGET)
        .bind(before)
        .execute(pool)
        .await?
        .rows_affected()))
}
