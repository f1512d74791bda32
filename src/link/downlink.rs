//! Messages to lockers leave through one bounded queue, served by one task that owns the MQTT
//! publisher, so no worker ever blocks on the broker.

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::bus::BusTx;

/// A handle to the downlink queue.
#[derive(Debug, Clone)]
pub struct Downlinks {
    tx: mpsc::Sender<(String, Vec<u8>)>,
}

impl Downlinks {
    /// Starts the publishing task on `tasks`, until `shutdown` (it sends what is queued first).
    pub fn start(mut bus: BusTx, tasks: &TaskTracker, shutdown: CancellationToken) -> Self {
        let (tx, mut rx) = mpsc::channel::<(String, Vec<u8>)>(1024);
        tasks.spawn(async move {
            loop {
                let next = tokio::select! {
                    next = rx.recv() => next,
                    _ = shutdown.cancelled() => {
                        rx.close();
                        rx.recv().await
                    }
                };
                let Some((topic, payload)) = next else {
                    return;
                };
                if let Err(e) = bus.publish(topic, payload) {
                    metrics::counter!("locker_downlinks_dropped_total", "reason" => "broker")
                        .increment(1);
                    tracing::warn!(error = %e, "a downlink could not be published");
                }
            }
        });
        Self { tx }
    }

    /// Queues a downlink; if the queue is full it is dropped and counted (callers retry by design).
    pub fn send(&self, topic: String, payload: Vec<u8>) -> bool {
        let queued = self.tx.try_send((topic, payload)).is_ok();
        if !queued {
            metrics::counter!("locker_downlinks_dropped_total", "reason" => "queue_full")
                .increment(1);
        }
        queued
    }
}
