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

/// A downlink sealed for its locker's transport; a resend repeats it byte for byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sealed {
    /// A JSON envelope, for a locker on MQTT.
    Json(String),
    /// A binary envelope, for a board on a serial bus.
    Binary(bytes::Bytes),
}

/// How a stored copy marks a binary envelope (the rest is hex).
const BINARY: &str = "bin:";

impl Sealed {
    /// The copy kept with its command (`commands.payload`, text): the JSON as it is, a binary
    /// envelope as `bin:` and its hex.
    pub fn stored(&self) -> String {
        match self {
            Self::Json(json) => json.clone(),
            Self::Binary(bytes) => format!("{BINARY}{}", hex::encode(bytes)),
        }
    }

    /// A copy as [`Sealed::stored`] wrote it; `None` if it is not one.
    pub fn from_stored(text: &str) -> Option<Self> {
        match text.strip_prefix(BINARY) {
            Some(binary) => hex::decode(binary).ok().map(|b| Self::Binary(b.into())),
            None => Some(Self::Json(text.to_owned())),
        }
    }
}

/// Where downlinks leave for lockers.
pub trait Outlet: Send + Sync + std::fmt::Debug {
    /// Seals `envelope` for the device's transport (JSON over MQTT, binary on a serial bus)
    /// without queueing it.
    fn seal(&self, envelope: &Envelope<Downlink>, key: &DeviceKey) -> Result<Sealed, EncodeError>;

    /// Queues a sealed downlink (again); on MQTT 5 it expires after `ttl`. `false` if it could
    /// not be queued (dropped and counted; callers resend by design).
    fn redeliver(&self, device: &DeviceId, sealed: &Sealed, ttl: Option<Duration>) -> bool;

    /// For a board on a serial bus: has it polled until it has sent everything it had queued
    /// (what `query_state` is for an MQTT locker). `false` for a locker not on a bus.
    fn drain(&self, device: &DeviceId) -> bool;

    /// Whether the device is a board on a serial bus.
    fn is_serial(&self, device: &DeviceId) -> bool;

    /// The lockers' turns to take a counter and queue what it seals.
    fn turns(&self) -> &Turns;

    /// Seals `envelope` and queues it; returns the sealed downlink (to store, to resend).
    fn deliver(
        &self,
        envelope: &Envelope<Downlink>,
        key: &DeviceKey,
        ttl: Option<Duration>,
    ) -> Result<Sealed, EncodeError> {
        let sealed = self.seal(envelope, key)?;
        self.redeliver(&envelope.header.device_id, &sealed, ttl);
        Ok(sealed)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_downlink_is_stored_and_read_back_as_it_was() {
        for sealed in [
            Sealed::Json("{\"v\":1}".into()),
            Sealed::Binary(bytes::Bytes::from_static(&[0x7e, 0x01, 0xff])),
        ] {
            assert_eq!(Sealed::from_stored(&sealed.stored()), Some(sealed));
        }
        assert_eq!(Sealed::Binary(vec![0xab].into()).stored(), "bin:ab");
        assert_eq!(Sealed::from_stored("bin:zz"), None);
    }
}
