//! The MQTT side: topic layout, QoS, and the presence payload.
//!
//! | topic | who publishes | QoS | retained | payload |
//! |---|---|---|---|---|
//! | `lockers/{device_id}/up` | the locker | 1 | no | JSON envelope, direction `up` |
//! | `lockers/{device_id}/down` | the gateway | 1 | no | JSON envelope, direction `down` |
//! | `lockers/{device_id}/status` | the locker (and its last will) | 1 | yes | [`Presence`] |
//!
//! A locker subscribes to its own `down` topic only, connects with a clean session and its device
//! id as client id, and sets its last will to `{"online":false}` on its own `status` topic.

use serde::{Deserialize, Serialize};

use crate::identity::DeviceId;

/// The first level of every locker topic.
pub const TOPIC_ROOT: &str = "lockers";

/// MQTT quality of service levels used by the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Qos {
    /// QoS 0 (not used by lockers).
    AtMostOnce = 0,
    /// QoS 1: every locker topic.
    AtLeastOnce = 1,
}

/// Which of a locker's topics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TopicKind {
    /// Locker to gateway.
    Up,
    /// Gateway to locker.
    Down,
    /// Presence, retained; the locker's last will.
    Status,
}

impl TopicKind {
    /// The topic's last level.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Up => "up",
            Self::Down => "down",
            Self::Status => "status",
        }
    }

    /// The QoS to publish and subscribe with.
    pub const fn qos(self) -> Qos {
        Qos::AtLeastOnce
    }

    /// Whether messages on this topic are published retained.
    pub const fn retained(self) -> bool {
        matches!(self, Self::Status)
    }
}

/// One locker topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Topic {
    /// The locker the topic belongs to.
    pub device_id: DeviceId,
    /// Which of its topics.
    pub kind: TopicKind,
}

/// Why a topic is not a locker topic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    #[error("topic is not of the form lockers/{{device_id}}/up|down|status")]
    /// Not `lockers/{device_id}/up|down|status`.
    NotALockerTopic,
    #[error("topic names an invalid device id")]
    /// The device id level is not a valid device id.
    InvalidDeviceId,
}

impl Topic {
    /// `lockers/{device_id}/up`.
    pub fn up(device_id: DeviceId) -> Self {
        Self {
            device_id,
            kind: TopicKind::Up,
        }
    }

    /// `lockers/{device_id}/down`.
    pub fn down(device_id: DeviceId) -> Self {
        Self {
            device_id,
            kind: TopicKind::Down,
        }
    }

    /// `lockers/{device_id}/status`.
    pub fn status(device_id: DeviceId) -> Self {
        Self {
            device_id,
            kind: TopicKind::Status,
        }
    }

    /// Reads a topic name. Wildcards and anything outside the layout are refused.
    pub fn parse(topic: &str) -> Result<Self, TopicError> {
        let mut levels = topic.split('/');
        let (Some(TOPIC_ROOT), Some(id), Some(kind), None) =
            (levels.next(), levels.next(), levels.next(), levels.next())
        else {
            return Err(TopicError::NotALockerTopic);
        };
        let kind = match kind {
            "up" => TopicKind::Up,
            "down" => TopicKind::Down,
            "status" => TopicKind::Status,
            _ => return Err(TopicError::NotALockerTopic),
        };
        let device_id = DeviceId::new(id).ok_or(TopicError::InvalidDeviceId)?;
        Ok(Self { device_id, kind })
    }

    /// The topic filter the gateway subscribes to for every locker's messages of `kind`.
    pub fn filter_all(kind: TopicKind) -> String {
        format!("{TOPIC_ROOT}/+/{}", kind.name())
    }
}

impl std::fmt::Display for Topic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{TOPIC_ROOT}/{}/{}", self.device_id, self.kind.name())
    }
}

/// The retained payload on `lockers/{device_id}/status`: `{"online":true,"session":N}` after
/// connecting, `{"online":false,"session":N}` as the last will. The locker chooses the session of a
/// connection *before* connecting, so its will can name it: a will that arrives late from an older
/// connection names an older session and is ignored. Not tagged (a last will is fixed at connect
/// time); the broker lets a locker set only its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Presence {
    /// Whether the locker is connected.
    pub online: bool,
    /// The session of the connection this is about; absent from firmware that does not know it,
    /// in which case the gateway trusts only its own heartbeat timeout for going offline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<u32>,
}

impl Presence {
    /// Reads a status payload (unknown fields ignored).
    pub fn parse(payload: &[u8]) -> Result<Self, crate::DecodeError> {
        if payload.len() > 1024 {
            return Err(crate::DecodeError::TooLong(payload.len()));
        }
        Ok(serde_json::from_slice(payload)?)
    }

    /// The payload bytes.
    pub fn to_json(&self) -> String {
        match self.session {
            Some(session) => format!("{{\"online\":{},\"session\":{session}}}", self.online),
            None => format!("{{\"online\":{}}}", self.online),
        }
    }
}
