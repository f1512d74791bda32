//! What was asked of a device and what came of it, for operators.

use chrono::{DateTime, Utc};
use serde::Serialize;

use utoipa::ToSchema;
use uuid::Uuid;

use crate::storage::{Storage, on_pool};

/// A command as operators see it.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
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
    storage: &Storage,
    device: &str,
    state: Option<&str>,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<CommandView>, sqlx::Error> {
    const LIST: &str = "SELECT id, kind, door, state, refusal, door_result, attempts, queued,
                conflict, duplicates, requested_by, reason, created_at, sent_at, answered_at
         FROM commands
         WHERE device_id = $1 AND ($2 IS NULL OR state = $2) AND ($3 IS NULL OR id < $3)
         ORDER BY id DESC LIMIT $4";
    Ok(on_pool!(storage, |pool| sqlx::query_as(LIST)
        .bind(device)
        .bind(state)
        .bind(before)
        .bind(limit)
        .fetch_all(pool)
        .await?))
}

/// Whether command `id` belongs to `device` (so an id from another device is "not found").
pub async fn belongs_to(storage: &Storage, id: i64, device: &str) -> Result<bool, sqlx::Error> {
    const MINE: &str = "SELECT true FROM commands WHERE id = $1 AND device_id = $2";
    let found: Option<bool> = on_pool!(storage, |pool| sqlx::query_scalar(MINE)
        .bind(id)
        .bind(device)
        .fetch_optional(pool)
        .await?);
    Ok(found.is_some())
}

/// A command with its locker, for fleet-wide lists.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FleetCommand {
    /// The locker.
    pub device_id: String,
    /// The command.
    #[sqlx(flatten)]
    pub command: CommandView,
}

/// Commands of any locker made since `since` that ended `unknown` (`failed` = false) or refused
/// or expired (`failed` = true), newest first, at most `limit`.
pub async fn needing_a_look(
    storage: &Storage,
    failed: bool,
    since: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<FleetCommand>, sqlx::Error> {
    const LOOK: &str = "SELECT device_id, id, kind, door, state, refusal, door_result, attempts,
                queued, conflict, duplicates, requested_by, reason, created_at, sent_at,
                answered_at
         FROM commands
         WHERE created_at > $1 AND state IN ($2, $3)
         ORDER BY id DESC LIMIT $4";
    let (a, b) = if failed {
        ("refused", "expired")
    } else {
        ("unknown", "unknown")
    };
    Ok(on_pool!(storage, |pool| sqlx::query_as(LOOK)
        .bind(since)
        .bind(a)
        .bind(b)
        .bind(limit)
        .fetch_all(pool)
        .await?))
}
