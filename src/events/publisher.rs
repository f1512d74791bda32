//! Delivers outbox events at least once, in order per aggregate: to in-process subscribers (a
//! `broadcast` channel) and to MQTT topics `events/{type}` on the broker.
//!
//! One publisher at a time across every gateway process holds a PostgreSQL advisory lock for the
//! length of a batch, so events are never delivered out of `seq` order. A batch is marked published
//! only after it was handed on; a crash in between delivers it again (at least once).

use std::time::Duration;

use sqlx::{PgPool, Row};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::Event;
use crate::bus::BusTx;

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
    pool: PgPool,
    link: BusTx,
    bus: broadcast::Sender<Event>,
    batch: i64,
}

impl Publisher {
    /// A publisher delivering to `bus` and through `link`.
    pub fn new(pool: PgPool, link: BusTx, bus: broadcast::Sender<Event>) -> Self {
        Self {
            pool,
            link,
            bus,
            batch: 100,
        }
    }

    /// Delivers one batch of pending events.
    pub async fn try_publish_batch(&mut self) -> Result<Outcome, PublishError> {
        let mut tx = self.pool.begin().await?;
        let leader: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
            .bind(PUBLISHER_LOCK)
            .fetch_one(&mut *tx)
            .await?;
        if !leader {
            return Ok(Outcome::NotLeader);
        }
        let rows = sqlx::query(
            "SELECT seq, id, aggregate_type, aggregate_id, event_type, payload, occurred_at
             FROM outbox WHERE published_at IS NULL ORDER BY seq LIMIT $1",
        )
        .bind(self.batch)
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            return Ok(Outcome::Empty);
        }
        let mut seqs = Vec::with_capacity(rows.len());
        for row in &rows {
            let event = Event {
                id: row.try_get("id")?,
                event_type: row.try_get("event_type")?,
                aggregate_type: row.try_get("aggregate_type")?,
                aggregate_id: row.try_get("aggregate_id")?,
                occurred_at: row.try_get("occurred_at")?,
                data: row.try_get("payload")?,
            };
            let payload =
                serde_json::to_vec(&event).map_err(|e| PublishError::Mqtt(e.to_string()))?;
            self.link
                .publish(event_topic(&event.event_type), payload, None)
                .await
                .map_err(|e| PublishError::Mqtt(e.to_string()))?;
            // No in-process subscriber is not an error.
            let _ = self.bus.send(event);
            seqs.push(row.try_get::<i64, _>("seq")?);
        }
        sqlx::query("UPDATE outbox SET published_at = now() WHERE seq = ANY($1)")
            .bind(&seqs)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        metrics::counter!("locker_events_published_total").increment(seqs.len() as u64);
        Ok(Outcome::Published(seqs.len()))
    }

    /// Publishes every `every` (at once while batches come full) until `shutdown`, then flushes
    /// what is left.
    pub async fn run(mut self, every: Duration, shutdown: CancellationToken) {
        loop {
            let wait = match self.try_publish_batch().await {
                Ok(Outcome::Published(n)) if n as i64 == self.batch => Duration::ZERO,
                Ok(_) => every,
                Err(e) => {
                    metrics::counter!("locker_worker_errors_total", "worker" => "outbox_publisher")
                        .increment(1);
                    tracing::warn!(error = %e, "outbox publishing failed; retrying");
                    every.max(Duration::from_millis(500))
                }
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

/// Why a batch was not delivered (it will be retried).
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// PostgreSQL failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The broker link refused the event.
    #[error("broker: {0}")]
    Mqtt(String),
}
