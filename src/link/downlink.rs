//! Messages to lockers leave through one bounded queue, served by one task that owns the MQTT
//! publisher, so no worker ever blocks on the broker.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use std::collections::HashMap;

use firmware_protocol::{DeviceId, DeviceKey, Downlink, EncodeError, Envelope, Topic};

use crate::command::outlet::{Acknowledgements, Outlet, Sealed, Turns};
use crate::mqtt::MqttTx;

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
    turns: Turns,
    serial: std::sync::Arc<std::sync::RwLock<HashMap<DeviceId, SerialRoute>>>,
    /// What the external broker acknowledged of the downlinks (none on the embedded broker).
    delivered: Option<std::sync::Arc<crate::mqtt::Delivered>>,
}

/// Where a board on a serial bus is reached: its bus's request queues and its address.
#[derive(Debug, Clone)]
pub struct SerialRoute {
    /// The bus task's queue.
    pub requests: mpsc::Sender<SerialRequest>,
    /// Its queue for firmware updates (`update_offer`, `chunk`, `install`), served when no
    /// request waits, else one step in four (PROTOCOL.md §11.3).
    pub updates: mpsc::Sender<SerialRequest>,
    /// The board's address on the bus.
    pub address: u8,
}

/// Work for the bus task, for one board.
#[derive(Debug, Clone)]
pub struct SerialRequest {
    /// The board's address.
    pub address: u8,
    /// What to do.
    pub work: SerialWork,
}

/// What a bus is asked to do with a board.
#[derive(Debug, Clone)]
pub enum SerialWork {
    /// Send this binary envelope and read the answer.
    Send(bytes::Bytes),
    /// Poll the board until it has sent everything it had queued: afterwards the gateway knows
    /// every door event and alarm from before, and the doors' state after them.
    Drain,
}

impl Downlinks {
    /// Starts the publishing task on `tasks`, until `shutdown` (it sends what is queued first).
    pub fn start(mut bus: MqttTx, tasks: &TaskTracker, shutdown: CancellationToken) -> Self {
        let delivered = bus.delivered();
        let failed = delivered.clone();
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
                    if let Some(failed) = &failed {
                        failed.give_up_one();
                    }
                    metrics::counter!("locker_downlinks_dropped_total", "reason" => "broker")
                        .increment(1);
                    tracing::warn!(error = %e, "a downlink could not be published");
                }
            }
        });
        Self {
            tx,
            turns: Turns::default(),
            serial: Default::default(),
            delivered,
        }
    }

    /// What the broker acknowledged of the downlinks published so far (`None` without an MQTT
    /// connection): what a fleet's turns wait for before they are given up.
    pub fn acknowledgements(&self) -> Option<std::sync::Arc<dyn Acknowledgements>> {
        let delivered = self.delivered.as_ref()?;
        Some(std::sync::Arc::new(Acked(delivered.clone())))
    }

    /// In a fleet on an external broker: lockers' turns shared with the other gateways
    /// ([`Turns::in_fleet`]). Call before cloning. (On the embedded broker the gateway runs
    /// alone: nothing to share.)
    pub fn with_turns(mut self, turns: Turns) -> Self {
        self.turns = turns;
        self
    }

    /// From now on, `device` is a board at `route` on a serial bus, not an MQTT locker.
    pub fn route_serial(&self, device: DeviceId, route: SerialRoute) {
        if let Ok(mut routes) = self.serial.write() {
            routes.insert(device, route);
        }
    }

    fn serial_route(&self, device: &DeviceId) -> Option<SerialRoute> {
        self.serial.read().ok()?.get(device).cloned()
    }

    /// Seals `envelope` for the device's transport (JSON over MQTT, binary on a serial bus)
    /// without queueing it (`Outlet::deliver` seals and queues).
    pub fn seal(
        &self,
        envelope: &Envelope<Downlink>,
        key: &DeviceKey,
    ) -> Result<Sealed, EncodeError> {
        let device = &envelope.header.device_id;
        Ok(
            if self.serial_route(device).is_some() || self.turns.on_a_line(device) {
                Sealed::Binary(envelope.seal_binary(key)?.into())
            } else {
                Sealed::Json(envelope.seal_json(key)?)
            },
        )
    }

    /// For a board on a serial bus: has it polled until it has sent everything it had queued
    /// (what `query_state` is for an MQTT locker, whose events are never held back). `false` for
    /// a locker that is not on a bus, or a bus whose queue is full.
    pub fn drain(&self, device: &DeviceId) -> bool {
        self.serial_route(device).is_some_and(|route| {
            route
                .requests
                .try_send(SerialRequest {
                    address: route.address,
                    work: SerialWork::Drain,
                })
                .is_ok()
        })
    }

    /// Whether the device is a board on a serial bus of this gateway.
    pub fn is_serial(&self, device: &DeviceId) -> bool {
        self.serial_route(device).is_some()
    }

    /// Queues a sealed downlink (again); on MQTT 5 it expires after `ttl`.
    pub fn redeliver(&self, device: &DeviceId, sealed: &Sealed, ttl: Option<Duration>) -> bool {
        let payload = match sealed {
            Sealed::Json(json) => json.as_bytes().to_vec(),
            Sealed::Binary(bytes) if self.is_serial(device) => {
                return self.to_board(device, bytes.clone());
            }
            // A board on another gateway's line: that gateway relays it from the board's topic.
            Sealed::Binary(bytes) => {
                metrics::counter!("locker_serial_relayed_total", "way" => "published").increment(1);
                bytes.to_vec()
            }
        };
        let topic = Topic::down(*device).to_string();
        match ttl {
            Some(ttl) => self.send_expiring(topic, payload, ttl),
            None => self.send(topic, payload),
        }
    }

    /// A message on the `down` topic of `device` from the broker (only boards on this gateway's
    /// lines are subscribed to): if it is a binary envelope for that board, it is queued for the
    /// board's bus as it is (the board checks its tag); anything else is dropped and counted.
    /// Returns whether it was queued.
    pub fn relay(&self, device: &DeviceId, payload: bytes::Bytes) -> bool {
        let refused = |reason: &'static str| {
            metrics::counter!("locker_serial_relay_refused_total", "reason" => reason).increment(1);
            tracing::debug!(%device, reason, "a message on a board's topic is not relayed");
            false
        };
        if !self.is_serial(device) {
            return refused("not_on_this_gateway");
        }
        match firmware_protocol::Unverified::parse_binary(&payload) {
            Ok(raw) if raw.header().device_id != *device => return refused("other_device"),
            Ok(raw) if raw.header().direction != firmware_protocol::Direction::Down => {
                return refused("not_a_downlink");
            }
            Ok(_) => {}
            Err(_) => return refused("not_a_binary_envelope"),
        }
        let queued = self.to_board(device, payload);
        if queued {
            metrics::counter!("locker_serial_relayed_total", "way" => "to_line").increment(1);
        }
        queued
    }

    /// Queues a binary envelope for the board's bus.
    fn to_board(&self, device: &DeviceId, bytes: bytes::Bytes) -> bool {
        let Some(route) = self.serial_route(device) else {
            metrics::counter!("locker_downlinks_dropped_total", "reason" => "no_route")
                .increment(1);
            return false;
        };
        let update = firmware_protocol::Unverified::parse_binary(&bytes).is_ok_and(|raw| {
            use firmware_protocol::MessageType as T;
            matches!(raw.message_type(), T::UpdateOffer | T::Chunk | T::Install)
        });
        let request = SerialRequest {
            address: route.address,
            work: SerialWork::Send(bytes),
        };
        let lane = if update {
            &route.updates
        } else {
            &route.requests
        };
        let queued = lane.try_send(request).is_ok();
        if !queued {
            metrics::counter!("locker_downlinks_dropped_total", "reason" => "queue_full")
                .increment(1);
        }
        queued
    }

    /// A serial board's turn (in this process: a bus is on this gateway alone) to take a
    /// downlink counter and queue what it seals: a board refuses a counter below one it has
    /// accepted (`stale_counter`), so two downlinks to one board must be queued in the order of
    /// their counters. Hold it from taking the counter until the message is queued (one database
    /// round trip), never while waiting for an answer.
    pub async fn turn(
        &self,
        device: &firmware_protocol::DeviceId,
    ) -> tokio::sync::MutexGuard<'_, ()> {
        self.turns.local_turn(device).await
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
        if queued && let Some(delivered) = &self.delivered {
            delivered.promise();
        }
        if !queued {
            metrics::counter!("locker_downlinks_dropped_total", "reason" => "queue_full")
                .increment(1);
        }
        queued
    }
}

impl Outlet for Downlinks {
    fn seal(&self, envelope: &Envelope<Downlink>, key: &DeviceKey) -> Result<Sealed, EncodeError> {
        Downlinks::seal(self, envelope, key)
    }

    fn redeliver(&self, device: &DeviceId, sealed: &Sealed, ttl: Option<Duration>) -> bool {
        Downlinks::redeliver(self, device, sealed, ttl)
    }

    fn drain(&self, device: &DeviceId) -> bool {
        Downlinks::drain(self, device)
    }

    fn is_serial(&self, device: &DeviceId) -> bool {
        Downlinks::is_serial(self, device)
    }

    fn turns(&self) -> &Turns {
        &self.turns
    }
}

/// The MQTT client's count of acknowledged publishes, as the command module's turns read it.
#[derive(Debug)]
struct Acked(std::sync::Arc<crate::mqtt::Delivered>);

impl Acknowledgements for Acked {
    fn queued(&self) -> u64 {
        self.0.queued()
    }

    fn wait_acked(
        &self,
        count: u64,
        within: Duration,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send + '_>> {
        Box::pin(self.0.wait_acked(count, within))
    }
}
