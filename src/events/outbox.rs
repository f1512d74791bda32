//! Appending events to the transactional outbox.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

/// One domain event, as stored and as delivered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Unique id (UUIDv7: time-ordered).
    pub id: Uuid,
    /// Dotted type, e.g. `device.online`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// What the event is about, e.g. `device`.
    pub aggregate_type: String,
    /// Which one, e.g. the device id.
    pub aggregate_id: String,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
    /// Event-specific data.
    pub data: serde_json::Value,
}

impl Event {
    /// A new event happening now.
    pub fn new(
        event_type: &str,
        aggregate_type: &str,
        aggregate_id: &str,
        data: serde_json::Value,
    ) -> Self {
        Self {
            id: Uuid::now_v7(),
            event_type: event_type.to_owned(),
            aggregate_type: aggregate_type.to_owned(),
            aggregate_id: aggregate_id.to_owned(),
            occurred_at: Utc::now(),
            data,
        }
    }
}

/// Appends `event` to the outbox inside the caller's transaction. Lock the aggregate's row first
/// so that events of one aggregate are numbered in commit order.
pub async fn append(conn: &mut PgConnection, event: &Event) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO outbox (id, aggregate_type, aggregate_id, event_type, payload, occurred_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(event.id)
    .bind(&event.aggregate_type)
    .bind(&event.aggregate_id)
    .bind(&event.event_type)
    .bind(&event.data)
    .bind(event.occurred_at)
    .execute(conn)
    .await?;
    Ok(())
}
