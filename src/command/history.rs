//! What was asked of a device and what came of it, for operators.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgPool, Row};
use utoipa::ToSchema;
use uuid::Uuid;

/// A command as operators see it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CommandView {
    /// Its id (also the id the locker sees).
    pub id: i64,
    /// `unlock` or `configure`.
    pub kind: String,
    /// The door, for an unlock.
    pub door: Option<i32>,
    /// `pending`, `sent`, `executed`, `refused`, `expired`, `cancelled` or `unknown`.
    pub state: String,
    /// Why the locker refused it.
    pub refusal: Option<String>,
    /// What the door did: `opened`, `already_open`, `jammed`.
    pub door_result: Option<String>,
    /// How many times it was sent.
    pub attempts: i32,
    /// Queued for an offline locker (with a time to live).
    pub queued: bool,
    /// A second answer that disagreed with the first (the first stands).
    pub conflict: Option<String>,
    /// The same answer received again.
    pub duplicates: i32,
    /// Who asked for it (an operator), if anyone.
    pub requested_by: Option<Uuid>,
    /// Why they asked.
    pub reason: Option<String>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it was first sent.
    pub sent_at: Option<DateTime<Utc>>,
    /// When the locker answered.
    pub answered_at: Option<DateTime<Utc>>,
}

/// A device's commands, newest first: all, or in one state; older than `before` (the next
/// page); at most `limit`.
pub async fn list(
    pool: &PgPool,
    device: &str,
    state: Option<&str>,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<CommandView>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, kind, door, state, refusal, door_result, attempts, queued, conflict,
                duplicates, requested_by, reason, created_at, sent_at, answered_at
         FROM commands
         WHERE device_id = $1 AND ($2::text IS NULL OR state = $2)
           AND ($3::bigint IS NULL OR id < $3)
         ORDER BY id DESC LIMIT $4",
    )
    .bind(device)
    .bind(state)
    .bind(before)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(CommandView {
                id: row.try_get("id")?,
                kind: row.try_get("kind")?,
                door: row.try_get("door")?,
                state: row.try_get("state")?,
                refusal: row.try_get("refusal")?,
                door_result: row.try_get("door_result")?,
                attempts: row.try_get("attempts")?,
                queued: row.try_get("queued")?,
                conflict: row.try_get("conflict")?,
                duplicates: row.try_get("duplicates")?,
                requested_by: row.try_get("requested_by")?,
                reason: row.try_get("reason")?,
                created_at: row.try_get("created_at")?,
                sent_at: row.try_get("sent_at")?,
                answered_at: row.try_get("answered_at")?,
            })
        })
        .collect()
}

/// Whether command `id` belongs to `device` (so an id from another device is "not found").
pub async fn belongs_to(pool: &PgPool, id: i64, device: &str) -> Result<bool, sqlx::Error> {
    Ok(
        sqlx::query_scalar::<_, bool>("SELECT true FROM commands WHERE id = $1 AND device_id = $2")
            .bind(id)
            .bind(device)
            .fetch_optional(pool)
            .await?
            .is_some(),
    )
}
