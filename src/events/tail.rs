//! The outbox read as a log, for the console's live tail: events after a position, oldest first,
//! across every gateway (they all write the one outbox).

use super::Event;
use crate::storage::{Storage, on_pool};

/// An outbox row as both backends return it.
#[derive(sqlx::FromRow)]
pub(super) struct Row {
    seq: i64,
    id: uuid::Uuid,
    aggregate_type: String,
    aggregate_id: String,
    event_type: String,
    payload: serde_json::Value,
    occurred_at: chrono::DateTime<chrono::Utc>,
}

impl Row {
    pub(super) fn into_pair(self) -> (i64, Event) {
        (
            self.seq,
            Event {
                id: self.id,
                event_type: self.event_type,
                aggregate_type: self.aggregate_type,
                aggregate_id: self.aggregate_id,
                occurred_at: self.occurred_at,
                data: self.payload,
            },
        )
    }
}

/// At most `limit` events after position `after`, oldest first, with their positions.
pub async fn after(
    storage: &Storage,
    after: i64,
    limit: i64,
) -> Result<Vec<(i64, Event)>, sqlx::Error> {
    const AFTER: &str = "SELECT seq, id, aggregate_type, aggregate_id, event_type, payload,
            occurred_at FROM outbox WHERE seq > $1 ORDER BY seq LIMIT $2";
    let rows: Vec<Row> = on_pool!(storage, |pool| sqlx::query_as(AFTER)
        .bind(after)
        .bind(limit)
        .fetch_all(pool)
        .await?);
    Ok(rows.into_iter().map(Row::into_pair).collect())
}

/// The last `limit` events, oldest first, with their positions.
pub async fn latest(storage: &Storage, limit: i64) -> Result<Vec<(i64, Event)>, sqlx::Error> {
    const LATEST: &str = "SELECT seq, id, aggregate_type, aggregate_id, event_type, payload,
            occurred_at FROM outbox ORDER BY seq DESC LIMIT $1";
    let rows: Vec<Row> = on_pool!(storage, |pool| sqlx::query_as(LATEST)
        .bind(limit)
        .fetch_all(pool)
        .await?);
    Ok(rows.into_iter().rev().map(Row::into_pair).collect())
}
