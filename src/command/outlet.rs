//! The port commands leave through: the command module seals and queues downlinks through an
//! [`Outlet`], which the device link implements (`link::downlink::Downlinks`: MQTT or a serial
//! bus, whichever the locker is on). Commands never name a transport.
//!
//! A locker's [`Turns`] keep its downlink counters in order: a locker of protocol version 1
//! refuses a counter below one it has accepted (`stale_counter`), so whoever takes a counter
//! holds that locker's turn until the message is queued (one database round trip), never while
//! waiting for an answer. In a fleet of gateways on one external broker the turn is also a lock
//! in Redis, held until the broker has acknowledged the message (PUBACK): two gateways each
//! sending through their own connection could otherwise reach the locker in the wrong order. A
//! locker of protocol version 2 keeps an anti-replay window for downlinks and takes them in any
//! order: no gateway waits for another's turn to send to it (the version is read from its last
//! `hello` in the books and kept here for [`VERSION_FRESH_FOR`]).

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
#[derive(Debug, Clone, Default)]
pub struct Turns {
    local: LocalTurns,
    fleet: Option<Arc<FleetTurns>>,
}

#[derive(Debug, Clone)]
struct LocalTurns(Arc<[tokio::sync::Mutex<()>]>);

impl Default for LocalTurns {
    fn default() -> Self {
        Self(
            (0..TURN_SHARDS)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
        )
    }
}

/// What the transport tells of the downlinks queued for the broker: how many, and whether the
/// broker has acknowledged them up to a point (the device link implements it over its MQTT
/// client).
pub trait Acknowledgements: Send + Sync + std::fmt::Debug {
    /// Downlinks queued so far.
    fn queued(&self) -> u64;

    /// Waits until the broker acknowledged `count` downlinks, at most `within`; `false` if not.
    fn wait_acked(
        &self,
        count: u64,
        within: Duration,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send + '_>>;
}

/// The fleet's side of a turn: a lock per locker in Redis, what the broker acknowledged, and
/// which lockers need the turn at all (protocol version 1).
#[derive(Debug)]
struct FleetTurns {
    locks: crate::lock::DoorLocks,
    delivered: Arc<dyn Acknowledgements>,
    versions: Versions,
}

/// How long a locker's protocol version, once read from the books, is taken as it is.
pub const VERSION_FRESH_FOR: Duration = Duration::from_secs(30);
/// Lockers whose versions are kept before the oldest readings are dropped.
const VERSIONS_KEPT: usize = 100_000;

/// What sending to the lockers commanded lately depends on, read from the books: each one's
/// protocol version, and whether it is a lock board on some gateway's serial line.
#[derive(Debug)]
struct Versions {
    storage: crate::storage::Storage,
    known: std::sync::Mutex<std::collections::HashMap<DeviceId, (Known, tokio::time::Instant)>>,
}

/// A locker's facts as last read.
#[derive(Debug, Clone, Copy)]
struct Known {
    version: u8,
    on_a_line: bool,
}

impl Versions {
    /// Whether `device` keeps a downlink window (protocol version 2 or later). Read from the
    /// books when not known or older than [`VERSION_FRESH_FOR`]; on a failed read, `false` (the
    /// turn is taken: always safe).
    async fn windowed(&self, device: &DeviceId) -> bool {
        let now = tokio::time::Instant::now();
        if let Some(known) = self.fresh(device, now) {
            return known.version >= 2;
        }
        let facts = match crate::device::counters::downlink_facts(&self.storage, device).await {
            Ok(facts) => facts,
            Err(e) => {
                tracing::warn!(error = %e, %device, "cannot read a locker's protocol version");
                return false;
            }
        };
        let known = Known {
            version: facts.as_ref().map_or(1, |f| f.protocol_version),
            on_a_line: facts.is_some_and(|f| f.serial_gateway.is_some()),
        };
        let mut cache = self.known.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= VERSIONS_KEPT {
            cache.retain(|_, (_, read_at)| now.duration_since(*read_at) < VERSION_FRESH_FOR);
        }
        cache.insert(*device, (known, now));
        known.version >= 2
    }

    /// What is known of `device`, if it was read less than [`VERSION_FRESH_FOR`] ago.
    fn fresh(&self, device: &DeviceId, now: tokio::time::Instant) -> Option<Known> {
        let cache = self.known.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .get(device)
            .filter(|(_, read_at)| now.duration_since(*read_at) < VERSION_FRESH_FOR)
            .map(|(known, _)| *known)
    }
}

/// How long a fleet turn's lock lives if its holder dies.
const FLEET_TURN_TTL: Duration = Duration::from_secs(3);
/// How long a gateway waits for a locker's fleet turn before it goes ahead without it (logged,
/// counted): a lost turn costs at most a refused counter, which the caller sees.
const FLEET_TURN_WAIT: Duration = Duration::from_secs(3);
/// How long a fleet turn waits for the broker's acknowledgement before it is given up anyway.
const ACK_WITHIN: Duration = Duration::from_secs(2);

/// A locker's turn, held until dropped. In a fleet, dropping it gives the Redis lock up once the
/// broker has acknowledged what was published while it was held (in a task of its own: the
/// holder goes on at once).
#[derive(Debug)]
pub struct Turn<'a> {
    _local: tokio::sync::MutexGuard<'a, ()>,
    fleet: Option<(Arc<FleetTurns>, crate::lock::DoorLock)>,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let Some((fleet, lock)) = self.fleet.take() else {
            return;
        };
        let published = fleet.delivered.queued();
        tokio::spawn(async move {
            if !fleet.delivered.wait_acked(published, ACK_WITHIN).await {
                metrics::counter!("locker_fleet_turn_unacked_total").increment(1);
            }
            if let Err(e) = fleet.locks.release(lock).await {
                tracing::warn!(error = %e, "cannot give a locker's turn up; it expires by itself");
            }
        });
    }
}

impl Turns {
    /// Turns shared with the fleet's other gateways through `locks` (Redis), each held until the
    /// broker acknowledged what `delivered` counts as published meanwhile.
    /// Versions are read from `storage`.
    pub fn in_fleet(
        locks: crate::lock::DoorLocks,
        delivered: Arc<dyn Acknowledgements>,
        storage: crate::storage::Storage,
    ) -> Self {
        let versions = Versions {
            storage,
            known: Default::default(),
        };
        Self {
            local: LocalTurns::default(),
            fleet: Some(Arc::new(FleetTurns {
                locks,
                delivered,
                versions,
            })),
        }
    }

    /// Waits for `device`'s turn (in this process, and in the fleet for a locker of protocol
    /// version 1) and holds it until the guard is dropped.
    pub async fn turn(&self, device: &DeviceId) -> Turn<'_> {
        let local = self.local_turn(device).await;
        let fleet = match &self.fleet {
            None => None,
            Some(fleet) if fleet.versions.windowed(device).await => {
                metrics::counter!("locker_fleet_turns_total", "turn" => "not_needed").increment(1);
                None
            }
            Some(fleet) => {
                metrics::counter!("locker_fleet_turns_total", "turn" => "taken").increment(1);
                fleet_lock(fleet, device)
                    .await
                    .map(|lock| (fleet.clone(), lock))
            }
        };
        Turn {
            _local: local,
            fleet,
        }
    }

    /// In a fleet: whether `device` is a lock board on some gateway's serial line, as read from
    /// the books with its turn (within [`VERSION_FRESH_FOR`]): its downlinks are sealed in binary
    /// and, if the line is another gateway's, relayed by that gateway from the board's `down`
    /// topic. `false` for a single gateway (its boards are on its own lines) and for a locker
    /// not read yet.
    pub fn on_a_line(&self, device: &DeviceId) -> bool {
        self.fleet.as_ref().is_some_and(|fleet| {
            fleet
                .versions
                .fresh(device, tokio::time::Instant::now())
                .is_some_and(|known| known.on_a_line)
        })
    }

    /// `device`'s turn in this process only (a serial bus's own polls: its boards are on this
    /// gateway's line alone).
    pub async fn local_turn(&self, device: &DeviceId) -> tokio::sync::MutexGuard<'_, ()> {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        device.as_str().hash(&mut hasher);
        let shard = (hasher.finish() as usize) % self.local.0.len();
        self.local.0[shard].lock().await
    }
}

/// Takes `device`'s lock in the fleet, waiting for it at most [`FLEET_TURN_WAIT`].
async fn fleet_lock(fleet: &FleetTurns, device: &DeviceId) -> Option<crate::lock::DoorLock> {
    let key = fleet.locks.turn_key(device.as_str());
    let give_up = tokio::time::Instant::now() + FLEET_TURN_WAIT;
    let mut pause = Duration::from_millis(1);
    loop {
        match fleet.locks.acquire_key(key.clone(), FLEET_TURN_TTL).await {
            Ok(Some(lock)) => return Some(lock),
            Ok(None) => {}
            Err(e) => {
                metrics::counter!("locker_fleet_turn_failures_total").increment(1);
                tracing::warn!(error = %e, %device, "cannot take a locker's turn in the fleet; going ahead");
                return None;
            }
        }
        if tokio::time::Instant::now() >= give_up {
            metrics::counter!("locker_fleet_turn_failures_total").increment(1);
            tracing::warn!(%device, "a locker's turn in the fleet was not free in time; going ahead");
            return None;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(20));
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
