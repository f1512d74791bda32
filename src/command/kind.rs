//! What a command asks a locker to do, as stored and as sent.

use firmware_protocol::{CommandId, Configure, Downlink, Unlock};
use serde_json::json;

/// What to ask a locker to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Open a door's lock.
    Unlock {
        /// The door.
        door: u16,
    },
    /// Change the locker's settings.
    Configure {
        /// Seconds between heartbeats.
        heartbeat_secs: u16,
        /// The open window (ms).
        open_window_ms: u16,
        /// Relay pulse length (ms).
        pulse_ms: u16,
        /// Door-ajar alarm after this many seconds; 0 = off.
        ajar_alarm_secs: u16,
    },
}

impl Command {
    /// The stored kind, door and body.
    pub fn stored(&self) -> (&'static str, Option<u16>, serde_json::Value) {
        match self {
            Command::Unlock { door } => ("unlock", Some(*door), json!({ "door": door })),
            Command::Configure {
                heartbeat_secs,
                open_window_ms,
                pulse_ms,
                ajar_alarm_secs,
            } => (
                "configure",
                None,
                json!({
                    "heartbeat_secs": heartbeat_secs, "open_window_ms": open_window_ms,
                    "pulse_ms": pulse_ms, "ajar_alarm_secs": ajar_alarm_secs,
                }),
            ),
        }
    }

    /// The command from its stored kind and body.
    pub fn from_stored(kind: &str, body: &serde_json::Value) -> Option<Self> {
        let field = |name: &str| body[name].as_u64().and_then(|v| u16::try_from(v).ok());
        match kind {
            "unlock" => Some(Command::Unlock {
                door: field("door")?,
            }),
            "configure" => Some(Command::Configure {
                heartbeat_secs: field("heartbeat_secs")?,
                open_window_ms: field("open_window_ms")?,
                pulse_ms: field("pulse_ms")?,
                ajar_alarm_secs: field("ajar_alarm_secs")?,
            }),
            _ => None,
        }
    }

    /// The downlink message, with its id and the locker-uptime deadline.
    pub fn message(&self, command_id: CommandId, expires_at_ms: Option<u64>) -> Downlink {
        match *self {
            Command::Unlock { door } => Downlink::Unlock(Unlock {
                command_id,
                door,
                expires_at_ms,
            }),
            Command::Configure {
                heartbeat_secs,
                open_window_ms,
                pulse_ms,
                ajar_alarm_secs,
            } => Downlink::Configure(Configure {
                command_id,
                heartbeat_secs,
                open_window_ms,
                pulse_ms,
                ajar_alarm_secs,
                expires_at_ms,
            }),
        }
    }
}
