//! Delivers outbox events at least once, in order per aggregate: to in-process subscribers (a
//! `broadcast` channel) and to MQTT topics `events/{type}` on the broker.
//!
//! On PostgreSQL one publisher at a time across every gateway process holds an advisory lock for
//! the length of a batch, so events are never delivered out of `seq` order; on SQLite (edge mode,
//! one process) the batch's unit of work holds the database's write lock, which does the same. A
//! batch is marked published only after it was handed on; a crash in between delivers it again
//! (at least once).

use std::time::Duration;

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::Event;
use crate::bus::BusTx;
use crate::storage::{Storage, UnitOfWork, in_work};

/// The advisory lock key that elects the one publisher.
pub const PUBLISHER_LOCK: i64 = 0x6c6f_636b_6572; // "locker"

/// The MQTT topic an event is published on.
pub fn event_topic(event_type: &str) -> String {
    format!("events/{event_type}")
}

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// This many events were delivered and marked.
    Published(usize),
    /// Nothing to deliver.
    Empty,
    /// Another process is publishing.
    NotLeader,
}

/// The outbox publisher.
pub struct Publisher {
    storage: Storage,
    link: BusTx,
    bus: broadcast::Sender<Event>,
    batch: i64,
}

impl Publisher {
    /// A publisher delivering to `bus` and through `link`.
    pub fn new(storage: impl Into<Storage>, link: BusTx, bus: broadcast::Sender<Event>) -> Self {
        Self::on(storage.into(), link, bus)
    }

    /// A publisher of the outbox in `storage` (see [`Publisher::new`]).
    pub fn on(storage: Storage, link: BusTx, bus: broadcast::Sender<Event>) -> Self {
        Self {
            storage,
            link,
            bus,
            batch: 100,
        }
    }

    /// Delivers one batch of pending events.
    pub async fn try_publish_batch(&mut self) -> Result<Outcome, PublishError> {
        const PENDING: &str =
            "SELECT seq, id, aggregate_type, aggregate_id, event_type, payload, occurred_at
             FROM outbox WHERE published_at IS NULL ORDER BY seq LIMIT $1";
        let mut work = self.storage.begin().await?;
        // On SQLite the unit of work's write lock already makes this the only publisher.
        if let UnitOfWork::Postgres(tx) = &mut work {
            let leader: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
                .bind(PUBLISHER_LOCK)
                .fetch_one(&mut **tx)
                .await?;
            if !leader {
                return Ok(Outcome::NotLeader);
            }
        }
        let rows: Vec<OutboxRow> = in_work!(&mut work, |conn| {
            sqlx::query_as(PENDING)
                .bind(self.batch)
                .fetch_all(conn)
                .await?
        });
        if rows.is_empty() {
            return Ok(Outcome::Empty);
        }
        let mut seqs = Vec::with_capacity(rows.len());
        for row in rows {
            seqs.push(row.seq);
            let event = Event {
                id: row.id,
                event_type: row.event_type,
                aggregate_type: row.aggregate_type,
                aggregate_id: row.aggregate_id,
                occurred_at: row.occurred_at,
                data: row.payload,
            };
            let payload =
                serde_json::to_vec(&event).map_err(|e| PublishError::Mqtt(e.to_string()))?;
            self.link
                .publish(event_topic(&event.event_type), payload, None)
                .await
                .map_err(|e| PublishError::Mqtt(e.to_string()))?;
            // No in-process subscriber is not an error.
            let _ = self.bus.send(event);
        }
        let now = chrono::Utc::now();
        match &mut work {
            UnitOfWork::Postgres(tx) => {
                sqlx::query("UPDATE outbox SET published_at = $2 WHERE seq = ANY($1)")
                    .bind(&seqs)
                    .bind(now)
                    .execute(&mut **tx)
                    .await?;
            }
            UnitOfWork::Sqlite(tx) => {
                // The write lock has been held since the batch was read: nobody appended in
                // between, so the batch is every pending event up to its last.
                let last = seqs.last().copied().unwrap_or_default();
                sqlx::query(
                    "UPDATE outbox SET published_at = $2 WHERE published_at IS NULL AND seq <= $1",
                )
                .bind(last)
                .bind(now)
                .execute(&mut **tx)
                .await?;
            }
        }
        work.commit().await?;
        metrics::counter!("locker_events_published_total").increment(seqs.len() as u64);
        Ok(Outcome::Published(seqs.len()))
    }

    /// Publishes every `every` (at once while batches come full) until `shutdown`, then flushes
    /// what is left. A batch that fails (or panics) is logged and counted by `items` (one item,
    /// `outbox`), tried again after its backoff, and flagged for operators if it keeps failing.
    pub async fn run(
        mut self,
        every: Duration,
        items: crate::worker::Items,
        shutdown: CancellationToken,
    ) {
        loop {
            let batch = items.attempt("outbox", self.try_publish_batch()).await;
            let wait = match batch {
                Some(Outcome::Published(n)) if n as i64 == self.batch => Duration::ZERO,
                Some(_) => every,
                // Failed (logged, counted, backed off) or not due yet.
                None => every.max(Duration::from_millis(100)),
            };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(wait) => {}
            }
        }
        // Flush: bounded, so a broken database cannot hold up shutdown forever.
        for _ in 0..50 {
            match self.try_publish_batch().await {
                Ok(Outcome::Published(_)) => continue,
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "outbox not flushed at shutdown; it resumes at start");
                    break;
                }
            }
        }
    }
}

/// An outbox row as both backends return it.
#[derive(sqlx::FromRow)]
struct OutboxRow {
    seq: i64,
    id: uuid::Uuid,
    aggregate_type: String,
    aggregate_id: String,
    event_type: String,
    payload: serde_json::Value,
    occurred_at: chrono::DateTime<chrono::Utc>,
}

/// Why a batch was not delivered (it will be retried).
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The broker link refused the event.
    #[error("broker: {0}")]
    Mqtt(String),
}
