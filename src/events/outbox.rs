//! Appending events to the transactional outbox.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::storage::{UnitOfWork, in_work};

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

/// The statement that appends an event (the same on both backends).
pub(crate) const APPEND: &str =
    "INSERT INTO outbox (id, aggregate_type, aggregate_id, event_type, payload, occurred_at)
     VALUES ($1, $2, $3, $4, $5, $6)";

/// Appending [`Columns`] as a piece of a larger PostgreSQL statement (one round trip on a hot
/// path): the six vectors are bound from placeholder `$first` on, and the events are written
/// only `when` holds.
pub fn append_columns_piece(first: u32, when: &str) -> String {
    let [a, b, c, d, e, f] = [0, 1, 2, 3, 4, 5].map(|i| first + i);
    format!(
        "INSERT INTO outbox (id, aggregate_type, aggregate_id, event_type, payload, occurred_at)
         SELECT * FROM unnest(${a}::uuid[], ${b}::text[], ${c}::text[], ${d}::text[],
                              ${e}::jsonb[], ${f}::timestamptz[])
         WHERE {when}"
    )
}

/// Events as columns, for appending them inside a larger statement (one round trip):
/// `INSERT INTO outbox (id, aggregate_type, aggregate_id, event_type, payload, occurred_at)
/// SELECT * FROM unnest($a::uuid[], $b::text[], $c::text[], $d::text[], $e::jsonb[],
/// $f::timestamptz[])`, binding the six vectors in this order. The statement must lock the
/// aggregate's row too, as every unit of work that appends one does.
pub struct Columns {
    /// Ids.
    pub ids: Vec<Uuid>,
    /// Aggregate types.
    pub aggregate_types: Vec<String>,
    /// Aggregate ids.
    pub aggregate_ids: Vec<String>,
    /// Event types.
    pub event_types: Vec<String>,
    /// Data.
    pub payloads: Vec<serde_json::Value>,
    /// When.
    pub occurred_at: Vec<DateTime<Utc>>,
}

impl Columns {
    /// The columns of `events`.
    pub fn of(events: Vec<Event>) -> Self {
        let mut columns = Self {
            ids: Vec::with_capacity(events.len()),
            aggregate_types: Vec::with_capacity(events.len()),
            aggregate_ids: Vec::with_capacity(events.len()),
            event_types: Vec::with_capacity(events.len()),
            payloads: Vec::with_capacity(events.len()),
            occurred_at: Vec::with_capacity(events.len()),
        };
        for e in events {
            columns.ids.push(e.id);
            columns.aggregate_types.push(e.aggregate_type);
            columns.aggregate_ids.push(e.aggregate_id);
            columns.event_types.push(e.event_type);
            columns.payloads.push(e.data);
            columns.occurred_at.push(e.occurred_at);
        }
        columns
    }

    /// Binds the six vectors to `query`, in order.
    pub fn bind_as<'q, O>(
        self,
        query: sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments> {
        query
            .bind(self.ids)
            .bind(self.aggregate_types)
            .bind(self.aggregate_ids)
            .bind(self.event_types)
            .bind(self.payloads)
            .bind(self.occurred_at)
    }
}

/// Appending to the outbox, as an extension of the unit of work: the event is written in the
/// caller's transaction, with the change that causes it.
pub trait Append {
    /// Appends `event` to the outbox in this unit of work.
    fn append(
        &mut self,
        event: &Event,
    ) -> impl std::future::Future<Output = Result<(), sqlx::Error>> + Send;
}

impl Append for UnitOfWork {
    async fn append(&mut self, event: &Event) -> Result<(), sqlx::Error> {
        in_work!(self, |conn| {
            sqlx::query(APPEND)
                .bind(event.id)
                .bind(&event.aggregate_type)
                .bind(&event.aggregate_id)
                .bind(&event.event_type)
                .bind(&event.data)
                .bind(event.occurred_at)
                .execute(conn)
                .await?
                .rows_affected()
        });
        Ok(())
    }
}
