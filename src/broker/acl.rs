//! Per-locker topic access control for the embedded broker.
//!
//! `rumqttd` has no ACLs, but it clones the listener's `Protocol` value for every connection and
//! reads every packet through it. [`LockerAcl`] wraps the real codec (`V4` or `V5`), learns the
//! connection's device from its CONNECT, and refuses (the broker then drops the connection) any
//! packet outside that locker's own topics:
//!
//! * CONNECT: the client id must be a valid device id, the session clean, and a last will (if any)
//!   must go to the locker's own `status` topic;
//! * PUBLISH: only `lockers/{id}/up` and `lockers/{id}/status`;
//! * SUBSCRIBE: only `lockers/{id}/down` (no wildcards, no other locker's topics);
//! * anything at all, in either direction, once the device is revoked.
//!
//! Nothing a locker sends is retained: its `status` and last will are passed on unretained.
//!
//! The gateway's in-process link does not go through a `Protocol`, so it is not restricted.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use bytes::BytesMut;
use firmware_protocol::{DeviceId, Topic, TopicKind};
use rumqttd::protocol::{Error, Packet, Protocol};

/// What a client asks to do on a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicAction {
    /// Publish on it.
    Publish,
    /// Subscribe to it (a filter).
    Subscribe,
}

/// Whether a locker may do `action` on `topic`, by the rules this module enforces: publish only
/// on its own `up` and `status` topics, subscribe only to its own `down` topic (no wildcards).
/// The same rules for a broker that asks over HTTP (`api::broker_hooks`).
pub fn locker_may(device: &DeviceId, action: TopicAction, topic: &str) -> bool {
    let allowed: &[TopicKind] = match action {
        TopicAction::Publish => &[TopicKind::Up, TopicKind::Status],
        TopicAction::Subscribe => &[TopicKind::Down],
    };
    Topic::parse(topic).is_ok_and(|t| t.device_id == *device && allowed.contains(&t.kind))
}

/// Devices revoked while connected: their sessions are dropped at their next packet. Shared by all
/// connections; the lock is never held across an `.await`.
#[derive(Debug, Clone, Default)]
pub struct Revocations(Arc<RwLock<HashSet<DeviceId>>>);

impl Revocations {
    /// Marks `device` revoked.
    pub fn revoke(&self, device: DeviceId) {
        if let Ok(mut set) = self.0.write() {
            set.insert(device);
        }
    }

    /// Whether `device` is revoked. A poisoned lock counts as revoked (fail closed).
    pub fn contains(&self, device: &DeviceId) -> bool {
        self.0.read().map_or(true, |set| set.contains(device))
    }
}

/// Why a packet was refused, for logs and the `locker_broker_refused_total` counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The client id is not a device id.
    BadClientId,
    /// A persistent session was asked for.
    NotCleanSession,
    /// The last will goes elsewhere than the locker's status topic.
    ForeignWill,
    /// A publish outside the locker's own `up` and `status` topics.
    ForeignPublish,
    /// A subscription other than the locker's own `down` topic.
    ForeignSubscribe,
    /// A packet before CONNECT.
    NotConnected,
    /// The device was revoked.
    Revoked,
}

impl Refusal {
    /// A stable label.
    pub fn kind(self) -> &'static str {
        match self {
            Self::BadClientId => "bad_client_id",
            Self::NotCleanSession => "not_clean_session",
            Self::ForeignWill => "foreign_will",
            Self::ForeignPublish => "foreign_publish",
            Self::ForeignSubscribe => "foreign_subscribe",
            Self::NotConnected => "not_connected",
            Self::Revoked => "revoked",
        }
    }
}

/// A `Protocol` that enforces one locker's topics; see the module docs.
#[derive(Debug, Clone)]
pub struct LockerAcl<P> {
    inner: P,
    revocations: Revocations,
    device: Option<DeviceId>,
    /// MQTT 3.1.1 has no publish properties: rumqttd 0.20's v4 writer panics on a publish that
    /// carries some (an MQTT 5 message expiry set by the gateway), so they are dropped here.
    drops_properties: bool,
}

impl<P> LockerAcl<P> {
    /// Wraps `inner` (a fresh value per listener; the broker clones it per connection).
    pub fn new(inner: P, revocations: Revocations) -> Self {
        Self {
            inner,
            revocations,
            device: None,
            drops_properties: false,
        }
    }

    /// For an MQTT 3.1.1 listener: publishes are written without their MQTT 5 properties.
    pub fn without_properties(self) -> Self {
        Self {
            drops_properties: true,
            ..self
        }
    }

    fn own_topic(&self, device: DeviceId, topic: &[u8], action: TopicAction) -> bool {
        std::str::from_utf8(topic).is_ok_and(|t| locker_may(&device, action, t))
    }

    /// Decides on one incoming packet; on CONNECT, remembers the device.
    pub fn check(&mut self, packet: &Packet) -> Result<(), Refusal> {
        if let Packet::Connect(connect, _, will, _, _) = packet {
            let device = DeviceId::new(&connect.client_id).ok_or(Refusal::BadClientId)?;
            if !connect.clean_session {
                return Err(Refusal::NotCleanSession);
            }
            if let Some(will) = will
                && !(self.own_topic(device, &will.topic, TopicAction::Publish)
                    && will.topic.ends_with(b"/status"))
            {
                return Err(Refusal::ForeignWill);
            }
            if self.revocations.contains(&device) {
                return Err(Refusal::Revoked);
            }
            self.device = Some(device);
            return Ok(());
        }
        let device = self.device.ok_or(Refusal::NotConnected)?;
        if self.revocations.contains(&device) {
            return Err(Refusal::Revoked);
        }
        match packet {
            Packet::Publish(publish, _)
                if !self.own_topic(device, &publish.topic, TopicAction::Publish) =>
            {
                return Err(Refusal::ForeignPublish);
            }
            Packet::Subscribe(subscribe, _) => {
                let own = subscribe
                    .filters
                    .iter()
                    .all(|f| self.own_topic(device, f.path.as_bytes(), TopicAction::Subscribe));
                if !own || subscribe.filters.is_empty() {
                    return Err(Refusal::ForeignSubscribe);
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// What a locker sends is passed on as it comes and kept for nobody: presence lives in the
/// database, and the broker's retained store (one message per locker, pinning the buffer it was
/// read into, matched against every new subscription) would only grow. So a retained publish
/// (the locker's `status`) is passed on unretained, and its last will, held for as long as it is
/// connected, is unretained and copied out of the connection's read buffer.
fn kept_for_nobody(packet: Packet) -> Packet {
    match packet {
        Packet::Publish(mut publish, properties) if publish.retain => {
            publish.retain = false;
            Packet::Publish(publish, properties)
        }
        Packet::Connect(connect, properties, Some(mut will), will_properties, login) => {
            will.retain = false;
            will.topic = bytes::Bytes::copy_from_slice(&will.topic);
            will.message = bytes::Bytes::copy_from_slice(&will.message);
            Packet::Connect(connect, properties, Some(will), will_properties, login)
        }
        other => other,
    }
}

impl<P: Protocol> Protocol for LockerAcl<P> {
    fn read_mut(&mut self, stream: &mut BytesMut, max_size: usize) -> Result<Packet, Error> {
        let packet = self.inner.read_mut(stream, max_size)?;
        match self.check(&packet) {
            Ok(()) => Ok(kept_for_nobody(packet)),
            Err(refusal) => {
                tracing::warn!(
                    device = ?self.device,
                    refusal = refusal.kind(),
                    "broker refused a packet; dropping the connection"
                );
                metrics::counter!("locker_broker_refused_total", "reason" => refusal.kind())
                    .increment(1);
                Err(Error::InvalidProtocol)
            }
        }
    }

    fn write(&self, packet: Packet, write: &mut BytesMut) -> Result<usize, Error> {
        if let Some(device) = &self.device
            && self.revocations.contains(device)
        {
            return Err(Error::InvalidProtocol);
        }
        let packet = match packet {
            Packet::Publish(publish, Some(_)) if self.drops_properties => {
                Packet::Publish(publish, None)
            }
            other => other,
        };
        self.inner.write(packet, write)
    }
}
