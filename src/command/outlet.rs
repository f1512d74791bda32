//! The port commands leave through: the command module seals and queues downlinks through an
//! [`Outlet`], which the device link implements (`link::downlink::Downlinks`: MQTT or a serial
//! bus, whichever the locker is on). Commands never name a transport.
//!
//! A locker's [`Turns`] keep its downlink counters in order: a locker refuses a counter below one
//! it has accepted (`stale_counter`), so whoever takes a counter holds that locker's turn until
//! the message is queued (one database round trip), never while waiting for an answer. The turn
//! is per process; the fleet of gateways replaces it (an anti-replay window on the locker).

use std::sync::Arc;
use std::time::Duration;

use firmware_protocol::{DeviceId, DeviceKey, Downlink, EncodeError, Envelope};

/// Shards of the per-locker turn (lockers hash onto them).
const TURN_SHARDS: usize = 256;

/// Where downlinks leave for lockers.
pub trait Outlet: Send + Sync + std::fmt::Debug {
    /// Seals `envelope` for the device's transport (JSON over MQTT, binary on a serial bus)
    /// without queueing it: the copy to store, which a resend repeats byte for byte.
    fn seal(&self, envelope: &Envelope<Downlink>, key: &DeviceKey) -> Result<String, EncodeError>;

    /// Queues a sealed copy (again); on MQTT 5 it expires after `ttl`. `false` if it could not
    /// be queued (dropped and counted; callers resend by design).
    fn redeliver(&self, device: &DeviceId, stored: &str, ttl: Option<Duration>) -> bool;

    /// For a board on a serial bus: has it polled until it has sent everything it had queued
    /// (what `query_state` is for an MQTT locker). `false` for a locker not on a bus.
    fn drain(&self, device: &DeviceId) -> bool;

    /// Whether the device is a board on a serial bus.
    fn is_serial(&self, device: &DeviceId) -> bool;

    /// The lockers' turns to take a counter and queue what it seals.
    fn turns(&self) -> &Turns;

    /// Seals `envelope` and queues it; returns the sealed copy to store.
    fn deliver(
        &self,
        envelope: &Envelope<Downlink>,
        key: &DeviceKey,
        ttl: Option<Duration>,
    ) -> Result<String, EncodeError> {
        let stored = self.seal(envelope, key)?;
        self.redeliver(&envelope.header.device_id, &stored, ttl);
        Ok(stored)
    }
}

/// Each locker's turn to take downlink counters (see the module's documentation). Cheap to
/// clone; clones share the turns.
#[derive(Debug, Clone)]
pub struct Turns(Arc<[tokio::sync::Mutex<()>]>);

impl Default for Turns {
    fn default() -> Self {
        Self(
            (0..TURN_SHARDS)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
        )
    }
}

impl Turns {
    /// Waits for `device`'s turn and holds it until the guard is dropped.
    pub async fn turn(&self, device: &DeviceId) -> tokio::sync::MutexGuard<'_, ()> {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        device.as_str().hash(&mut hasher);
        let shard = (hasher.finish() as usize) % self.0.len();
        self.0[shard].lock().await
    }
}
