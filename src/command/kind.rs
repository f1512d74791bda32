//! What a command asks a locker to do, as stored and as sent.

use firmware_protocol::{CommandId, Configure, Downlink, InvalidMessage, Unlock};
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

/// A setting outside what the protocol allows: the field, and its allowed values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{field} must be {allowed}")]
pub struct OutOfRange {
    /// The setting.
    pub field: &'static str,
    /// Its allowed values, in words.
    pub allowed: &'static str,
}

impl Command {
    /// New settings for a locker, checked as the protocol checks a `configure`
    /// (`Downlink::validate`), so that an operator's request and the wire cannot disagree.
    pub fn configure(
        heartbeat_secs: u16,
        open_window_ms: u16,
        pulse_ms: u16,
        ajar_alarm_secs: u16,
    ) -> Result<Self, OutOfRange> {
        let command = Command::Configure {
            heartbeat_secs,
            open_window_ms,
            pulse_ms,
            ajar_alarm_secs,
        };
        let probe = command.message(CommandId::new(1).expect("1 is a command id"), None);
        match probe.validate() {
            Ok(()) => Ok(command),
            Err(InvalidMessage::OutOfRange(field)) => Err(OutOfRange {
                field,
                allowed: match field {
                    "heartbeat_secs" => "5 to 3600",
                    "open_window_ms" => "1000 to 60000",
                    "pulse_ms" => "50 to 5000",
                    "ajar_alarm_secs" => "0 (off) or 10 to 3600",
                    _ => "within the protocol's range",
                },
            }),
        }
    }

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

#[cfg(test)]
mod tests {
    use super::Command;

    #[test]
    fn settings_are_checked_as_the_protocol_checks_them() {
        assert!(Command::configure(60, 10_000, 300, 120).is_ok());
        assert!(Command::configure(5, 1000, 50, 0).is_ok());
        assert!(Command::configure(3600, 60_000, 5000, 3600).is_ok());
        let refused = |c: Result<Command, super::OutOfRange>| c.expect_err("refused").field;
        assert_eq!(
            refused(Command::configure(4, 10_000, 300, 120)),
            "heartbeat_secs"
        );
        assert_eq!(
            refused(Command::configure(60, 60_001, 300, 120)),
            "open_window_ms"
        );
        assert_eq!(refused(Command::configure(60, 10_000, 49, 120)), "pulse_ms");
        assert_eq!(
            refused(Command::configure(60, 10_000, 300, 9)),
            "ajar_alarm_secs"
        );
    }
}
