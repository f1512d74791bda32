//! Messages to lockers leave through one bounded queue, served by one task that owns the MQTT
//! publisher, so no worker ever blocks on the broker.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::bus::BusTx;

/// One message for a locker.
#[derive(Debug)]
struct Outgoing {
    topic: String,
    payload: Vec<u8>,
    expiry: Option<Duration>,
}

/// A handle to the downlink queue.
#[derive(Debug, Clone)]
pub struct Downlinks {
    tx: mpsc::Sender<Outgoing>,
    turns: std::sync::Arc<[tokio::sync::Mutex<()>]>,
}

/// Shards of the per-locker turn (lockers hash onto them).
const TURN_SHARDS: usize = 256;

impl Downlinks {
    /// Starts the publishing task on `tasks`, until `shutdown` (it sends what is queued first).
    pub fn start(mut bus: BusTx, tasks: &TaskTracker, shutdown: CancellationToken) -> Self {
        let (tx, mut rx) = mpsc::channel::<Outgoing>(1024);
        tasks.spawn(async move {
            loop {
                let next = tokio::select! {
                    next = rx.recv() => next,
                    _ = shutdown.cancelled() => {
                        rx.close();
                        rx.recv().await
                    }
                };
                let Some(Outgoing {
                    topic,
                    payload,
                    expiry,
                }) = next
                else {
                    return;
                };
                if let Err(e) = bus.publish(topic, payload, expiry).await {
                    metrics::counter!("locker_downlinks_dropped_total", "reason" => "broker")
                        .increment(1);
                    tracing::warn!(error = %e, "a downlink could not be published");
                }
            }
        });
        let turns = (0..TURN_SHARDS)
            .map(|_| tokio::sync::Mutex::new(()))
            .collect();
        Self { tx, turns }
    }

    /// The locker's turn to take a downlink counter and queue what it seals: a locker refuses a
    /// counter below one it has accepted (`stale_counter`), so two downlinks to one locker must
    /// be queued in the order of their counters. Hold it from taking the counter until the
    /// message is queued (one database round trip), never while waiting for an answer.
    pub async fn turn(
        &self,
        device: &firmware_protocol::DeviceId,
    ) -> tokio::sync::MutexGuard<'_, ()> {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        device.as_str().hash(&mut hasher);
        let shard = (hasher.finish() as usize) % self.turns.len();
        self.turns[shard].lock().await
    }

    /// Queues a downlink; if the queue is full it is dropped and counted (callers retry by design).
    pub fn send(&self, topic: String, payload: Vec<u8>) -> bool {
        self.queue(Outgoing {
            topic,
            payload,
            expiry: None,
        })
    }

    /// Queues a downlink that must not reach the locker after `ttl`: on MQTT 5 it carries a
    /// message expiry (whole seconds, rounded down, at least 1), so the broker drops it rather
    /// than deliver it late. (The command's own deadline in the locker's clock is the exact
    /// guard; this keeps stale commands out of the broker's queues.)
    pub fn send_expiring(&self, topic: String, payload: Vec<u8>, ttl: Duration) -> bool {
        self.queue(Outgoing {
            topic,
            payload,
            expiry: Some(ttl),
        })
    }

    fn queue(&self, outgoing: Outgoing) -> bool {
        let queued = self.tx.try_send(outgoing).is_ok();
        if !queued {
            metrics::counter!("locker_downlinks_dropped_total", "reason" => "queue_full")
                .increment(1);
        }
        queued
    }
}
