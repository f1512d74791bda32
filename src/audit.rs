//! The audit log: every operator action, including refused attempts, with who, what, when and
//! how it ended. Written by the api; read by admins.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::account::User;
use crate::storage::{Storage, on_pool};

/// How an action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Done.
    Ok,
    /// Not allowed, or refused by the rules (nothing done).
    Refused,
    /// Tried and failed.
    Failed,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Refused => "refused",
            Outcome::Failed => "failed",
        }
    }
}

/// One entry.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Entry {
    /// Its id (newest is highest).
    pub id: i64,
    /// When.
    pub at: DateTime<Utc>,
    /// Who (an account id), if known.
    pub actor_id: Option<Uuid>,
    /// Who (their email then).
    pub actor_email: Option<String>,
    /// What: `device.provision`, `device.revoke`, `door.unlock`, `POST /v1/devices` (refused), ...
    pub action: String,
    /// On what (a device id, a command id, a path).
    pub target: Option<String>,
    /// `ok`, `refused` or `failed`.
    pub outcome: String,
    /// Anything else worth keeping (the reason given, the error).
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

/// Records one action. A failure to record is logged, never hidden: the caller decides.
pub async fn record(
    storage: &Storage,
    actor: Option<&User>,
    action: &str,
    target: Option<&str>,
    outcome: Outcome,
    detail: serde_json::Value,
) -> Result<(), sqlx::Error> {
    const RECORD: &str =
        "INSERT INTO audit_log (actor_id, actor_email, action, target, outcome, detail, at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)";
    let now = Utc::now();
    on_pool!(storage, |pool| {
        sqlx::query(RECORD)
            .bind(actor.map(|a| a.id))
            .bind(actor.map(|a| a.email.as_str()))
            .bind(truncate(action, 128))
            .bind(target.map(|t| truncate(t, 256)))
            .bind(outcome.as_str())
            .bind(&detail)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected()
    });
    Ok(())
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((at, _)) => &s[..at],
        None => s,
    }
}

/// Which entries to read.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only this actor's.
    pub actor_id: Option<Uuid>,
    /// Only this action.
    pub action: Option<String>,
    /// Only this outcome.
    pub outcome: Option<String>,
    /// Only older than this id (the page before).
    pub before: Option<i64>,
    /// Only by the account with this email (as it was then).
    pub actor_email: Option<String>,
    /// Only at or after this time.
    pub from: Option<DateTime<Utc>>,
    /// Only before this time.
    pub to: Option<DateTime<Utc>>,
    /// At most this many.
    pub limit: i64,
}

/// Entries, newest first.
pub async fn list(storage: &Storage, filter: &Filter) -> Result<Vec<Entry>, sqlx::Error> {
    // The parameters' types come with their values, so one statement reads on both backends.
    const LIST: &str = "SELECT id, at, actor_id, actor_email, action, target, outcome, detail
         FROM audit_log
         WHERE ($1 IS NULL OR actor_id = $1) AND ($2 IS NULL OR action = $2)
           AND ($3 IS NULL OR outcome = $3) AND ($4 IS NULL OR id < $4)
           AND ($6 IS NULL OR lower(actor_email) = lower($6))
           AND ($7 IS NULL OR at >= $7) AND ($8 IS NULL OR at < $8)
         ORDER BY id DESC LIMIT $5";
    Ok(on_pool!(storage, |pool| {
        sqlx::query_as(LIST)
            .bind(filter.actor_id)
            .bind(&filter.action)
            .bind(&filter.outcome)
            .bind(filter.before)
            .bind(filter.limit)
            .bind(&filter.actor_email)
            .bind(filter.from)
            .bind(filter.to)
            .fetch_all(pool)
            .await?
    }))
}
