//! The device link over MQTT: every message lockers publish reaches the gateway through its
//! in-process broker link, is checked (tag with the key of the device named in the topic, session
//! and counter) and applied (presence, last-seen, alarms) before anything else sees it.
//!
//! ```text
//! MQTT bus ──► dispatcher ──(bounded, by device)──► shard workers ──► PostgreSQL + outbox
//!                                                                 └──► verified uplinks (broadcast)
//! ```
//! One device always lands on the same shard, so its messages are handled in order; devices on
//! different shards are handled in parallel. Every queue is bounded: a slow database slows the
//! dispatcher, which slows the broker link, rather than growing memory.

pub mod downlink;
mod hello_asks;
mod presence;
pub mod worker;

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use firmware_protocol::{DeviceId, Topic, TopicKind, Uplink};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use worker::{Inbound, InboundKind, Rejection, Worker};

use crate::mqtt::MqttRx;

/// An uplink that passed every check and was recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedUplink {
    /// The locker.
    pub device: DeviceId,
    /// Its session.
    pub session: u32,
    /// The uplink's counter.
    pub counter: u32,
    /// The message.
    pub message: Uplink,
    /// Wall-clock time of receipt.
    pub received_at: DateTime<Utc>,
}

/// Counts of what the link accepted and dropped (also reported through `metrics`).
#[derive(Debug, Default)]
pub struct LinkStats {
    accepted: AtomicU64,
    rejected: AtomicU64,
    bad_tag: AtomicU64,
    replayed: AtomicU64,
}

impl LinkStats {
    pub(crate) fn accept(&self) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("locker_uplinks_accepted_total").increment(1);
    }

    pub(crate) fn reject(&self, rejection: &Rejection) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
        match rejection {
            Rejection::BadTag => {
                self.bad_tag.fetch_add(1, Ordering::Relaxed);
            }
            Rejection::Replay(_) => {
                self.replayed.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
        metrics::counter!("locker_uplinks_rejected_total", "reason" => rejection.kind())
            .increment(1);
    }

    /// Uplinks accepted.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Messages dropped, for any reason.
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }

    /// Uplinks dropped for a tag that did not verify.
    pub fn bad_tag(&self) -> u64 {
        self.bad_tag.load(Ordering::Relaxed)
    }

    /// Uplinks dropped as replays.
    pub fn replayed(&self) -> u64 {
        self.replayed.load(Ordering::Relaxed)
    }
}

/// Tuning of the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkSettings {
    /// Shard workers.
    pub shards: usize,
    /// Depth of each shard's queue.
    pub queue_depth: usize,
    /// The heartbeat interval lockers use; a device silent for three is marked offline.
    pub heartbeat: Duration,
}

impl Default for LinkSettings {
    fn default() -> Self {
        Self {
            shards: 8,
            queue_depth: 256,
            heartbeat: Duration::from_secs(60),
        }
    }
}

/// Handles to the running link.
#[derive(Debug, Clone)]
pub struct DeviceLink {
    stats: Arc<LinkStats>,
    uplinks: broadcast::Sender<VerifiedUplink>,
    /// Weak: the workers stop once the dispatcher and every injector are gone.
    shards: Vec<mpsc::WeakSender<Inbound>>,
}

/// Hands uplinks from another transport (a serial bus) to the link's shards, where they are
/// verified and recorded exactly like those from MQTT.
#[derive(Debug, Clone)]
pub struct Injector {
    shards: Vec<mpsc::Sender<Inbound>>,
}

impl Injector {
    /// Queues one uplink on its device's shard; `false` if the link has stopped.
    pub async fn inject(&self, inbound: Inbound) -> bool {
        let shard = &self.shards[shard_of(&inbound.device, self.shards.len())];
        shard.send(inbound).await.is_ok()
    }
}

impl DeviceLink {
    /// The topic filters the link's bus must be subscribed to.
    pub fn filters() -> Vec<String> {
        vec![
            Topic::filter_all(TopicKind::Up),
            Topic::filter_all(TopicKind::Status),
        ]
    }

    /// Starts the dispatcher (reading `bus`, subscribed to [`DeviceLink::filters`]), the shard
    /// workers (lockers authenticated with `registry`'s credentials; what they verify handed to
    /// `handler`, which the composition root chooses) and the presence sweeper on `tasks`, until
    /// `shutdown`.
    pub fn start<H: crate::uplink::Handler>(
        handler: H,
        registry: crate::device::DeviceRegistry,
        bus: MqttRx,
        downlinks: downlink::Downlinks,
        settings: LinkSettings,
        tasks: &TaskTracker,
        shutdown: CancellationToken,
    ) -> Self {
        let handler = Arc::new(handler);
        let stats = Arc::new(LinkStats::default());
        let (uplinks, _) = broadcast::channel(1024);
        let mut shards = Vec::with_capacity(settings.shards.max(1));
        for _ in 0..settings.shards.max(1) {
            let (tx, rx) = mpsc::channel(settings.queue_depth.max(1));
            let worker = Worker::new(
                handler.clone(),
                registry.clone(),
                uplinks.clone(),
                stats.clone(),
                downlinks.clone(),
            )
            .asking_for_hello_every(settings.heartbeat);
            tasks.spawn(worker.run(rx));
            shards.push(tx);
        }
        tasks.spawn(dispatch(bus, (shards.clone(), downlinks), shutdown.clone()));
        tasks.spawn(sweep(
            handler,
            settings.heartbeat * 3,
            settings.heartbeat / 2,
            shutdown,
        ));
        let shards = shards.iter().map(mpsc::Sender::downgrade).collect();
        Self {
            stats,
            uplinks,
            shards,
        }
    }

    /// A handle for other transports to hand their uplinks in (`None` once the link stopped).
    /// Drop it when the transport stops: the link's workers finish after the last one is gone.
    pub fn injector(&self) -> Option<Injector> {
        let shards: Option<Vec<_>> = self.shards.iter().map(mpsc::WeakSender::upgrade).collect();
        shards.map(|shards| Injector { shards })
    }

    /// What the link accepted and dropped.
    pub fn stats(&self) -> &LinkStats {
        &self.stats
    }

    /// A receiver of every verified uplink from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<VerifiedUplink> {
        self.uplinks.subscribe()
    }
}

fn shard_of(device: &DeviceId, shards: usize) -> usize {
    let mut hasher = DefaultHasher::new();
    device.hash(&mut hasher);
    (hasher.finish() % shards as u64) as usize
}

/// How long a stopping gateway hands on what its broker connection still delivers.
const DRAIN_WITHIN: Duration = Duration::from_secs(5);

/// Reads the bus and hands each locker message to its device's shard; a message on the `down`
/// topic of a board on this gateway's serial lines (another gateway's downlink) is relayed to
/// its bus.
async fn dispatch(
    mut bus: MqttRx,
    (shards, downlinks): (Vec<mpsc::Sender<Inbound>>, downlink::Downlinks),
    shutdown: CancellationToken,
) {
    // Stopping, with a stream that ends by itself: everything before its end is still handed
    // on (uplinks the broker gave this gateway are written, not dropped), within a bound.
    let mut stopping_by: Option<tokio::time::Instant> = None;
    loop {
        let message = match stopping_by {
            None => tokio::select! {
                _ = shutdown.cancelled() => {
                    if !bus.ends_when_stopped() {
                        break;
                    }
                    stopping_by = Some(tokio::time::Instant::now() + DRAIN_WITHIN);
                    continue;
                }
                message = bus.next() => message,
            },
            Some(by) => match tokio::time::timeout_at(by, bus.next()).await {
                Ok(message) => message,
                Err(_) => {
                    tracing::warn!("stopped before the broker's last messages were handed on");
                    break;
                }
            },
        };
        let Some(message) = message else {
            if stopping_by.is_none() {
                tracing::error!("the MQTT connection ended; the device link stops");
            }
            break;
        };
        let topic = std::str::from_utf8(&message.topic)
            .ok()
            .and_then(|t| Topic::parse(t).ok());
        let Some(topic) = topic else {
            metrics::counter!("locker_uplinks_rejected_total", "reason" => "bad_topic")
                .increment(1);
            continue;
        };
        let kind = match topic.kind {
            TopicKind::Up => InboundKind::Up,
            TopicKind::Status => InboundKind::Status,
            TopicKind::Down => {
                downlinks.relay(&topic.device_id, message.payload);
                continue;
            }
        };
        let inbound = Inbound {
            device: topic.device_id,
            kind,
            payload: message.payload,
            encoding: firmware_protocol::Encoding::Json,
            received_at: Utc::now(),
        };
        let shard = &shards[shard_of(&topic.device_id, shards.len())];
        if shard.send(inbound).await.is_err() {
            break;
        }
    }
    // Dropping the senders lets every worker finish its queue and stop.
}

/// Marks offline the devices silent for longer than `timeout`, every `every`.
async fn sweep<H: crate::uplink::Handler>(
    handler: Arc<H>,
    timeout: Duration,
    every: Duration,
    shutdown: CancellationToken,
) {
    let mut interval = tokio::time::interval(every.max(Duration::from_millis(50)));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = interval.tick() => {}
        }
        match handler.sweep(timeout).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(devices = n, "marked offline after a heartbeat timeout"),
            Err(e) => {
                metrics::counter!("locker_worker_errors_total", "worker" => "presence_sweeper")
                    .increment(1);
                tracing::warn!(error = %e, "presence sweep failed");
            }
        }
    }
}
