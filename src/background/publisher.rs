//! Delivers outbox events at least once, in order per aggregate: to MQTT topics `events/{type}`
//! on the broker, then to in-process subscribers (a `broadcast` channel).
//!
//! On PostgreSQL one publisher at a time across every gateway process holds the batch (see
//! [`crate::events::batch`]), so events are never delivered out of `seq` order; on SQLite (edge
//! mode, one process) the batch's unit of work holds the database's write lock, which does the
//! same. A batch is marked published only after it was handed on; a crash in between delivers
//! it again (at least once).

use std::time::Duration;

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::events::batch::{Batch, Claim};
use crate::events::{Event, event_topic};
use crate::mqtt::MqttTx;
use crate::storage::Storage;
use crate::worker::Items;

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
    link: MqttTx,
    bus: broadcast::Sender<Event>,
    batch: i64,
}

impl Publisher {
    /// A publisher of the outbox in `storage`, delivering through `link` and to `bus`.
    pub fn on(storage: Storage, link: MqttTx, bus: broadcast::Sender<Event>) -> Self {
        Self {
            storage,
            link,
            bus,
            batch: 100,
        }
    }

    /// Delivers one batch of pending events.
    pub async fn try_publish_batch(&mut self) -> Result<Outcome, PublishError> {
        let mut batch = match Batch::claim(&self.storage, self.batch).await? {
            Claim::Batch(batch) => batch,
            Claim::Empty => return Ok(Outcome::Empty),
            Claim::NotLeader => return Ok(Outcome::NotLeader),
        };
        for event in batch.events() {
            let payload =
                serde_json::to_vec(event).map_err(|e| PublishError::Mqtt(e.to_string()))?;
            self.link
                .publish(event_topic(&event.event_type), payload, None)
                .await
                .map_err(|e| PublishError::Mqtt(e.to_string()))?;
        }
        // Each event's webhook deliveries, written with the mark that it was published: none
        // lost if the process dies, none doubled when a batch is delivered again.
        let (work, events) = batch.work_with_events();
        crate::webhook::fan_out(work, events).await?;
        let events = batch.published().await?;
        let published = events.len();
        for event in events {
            // No in-process subscriber is not an error.
            let _ = self.bus.send(event);
        }
        metrics::counter!("locker_events_published_total").increment(published as u64);
        Ok(Outcome::Published(published))
    }

    /// Publishes every `every` (at once while batches come full) until `shutdown`, then flushes
    /// what is left. A batch that fails (or panics) is logged and counted by `items` (one item,
    /// `outbox`), tried again after its backoff, and flagged for operators if it keeps failing.
    pub async fn run(mut self, every: Duration, items: Items, shutdown: CancellationToken) {
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
