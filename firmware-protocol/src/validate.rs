//! Range checks of every message, applied by both decoders on the way in and by `seal_*` on the
//! way out.

use crate::error::InvalidMessage;
use crate::message::*;

fn check(ok: bool, field: &'static str) -> Result<(), InvalidMessage> {
    if ok {
        Ok(())
    } else {
        Err(InvalidMessage::OutOfRange(field))
    }
}

fn check_door(door: u16) -> Result<(), InvalidMessage> {
    check((1..=MAX_DOORS).contains(&door), "door")
}

fn check_uptime(ms: u64, field: &'static str) -> Result<(), InvalidMessage> {
    check(ms <= MAX_SAFE_INTEGER, field)
}

fn check_expiry(expiry: Option<u64>) -> Result<(), InvalidMessage> {
    match expiry {
        None => Ok(()),
        Some(ms) => check((1..=MAX_SAFE_INTEGER).contains(&ms), "expires_at_ms"),
    }
}

pub(crate) fn check_text(text: &str, field: &'static str) -> Result<(), InvalidMessage> {
    check(
        !text.is_empty()
            && text.len() <= MAX_TEXT_LEN
            && text.bytes().all(|b| (0x20..=0x7e).contains(&b)),
        field,
    )
}

fn check_doors(doors: &[DoorStatus]) -> Result<(), InvalidMessage> {
    check(
        !doors.is_empty() && doors.len() <= usize::from(MAX_DOORS),
        "doors",
    )
}

impl Downlink {
    /// Checks every field's range.
    pub fn validate(&self) -> Result<(), InvalidMessage> {
        match self {
            Self::Unlock(m) => {
                check_door(m.door)?;
                check_expiry(m.expires_at_ms)
            }
            Self::QueryState(_) | Self::Ping | Self::Poll(_) => Ok(()),
            Self::UpdateOffer(m) => crate::update::validate_offer(m),
            Self::Chunk(m) => crate::update::validate_chunk(m),
            Self::Install(m) => check(m.update_id != 0, "update_id"),
            Self::Configure(m) => {
                check((5..=3600).contains(&m.heartbeat_secs), "heartbeat_secs")?;
                check((1000..=60000).contains(&m.open_window_ms), "open_window_ms")?;
                check((50..=5000).contains(&m.pulse_ms), "pulse_ms")?;
                check(
                    m.ajar_alarm_secs == 0 || (10..=3600).contains(&m.ajar_alarm_secs),
                    "ajar_alarm_secs",
                )?;
                check_expiry(m.expires_at_ms)
            }
        }
    }

    /// The command id, for the two messages that are commands (`Unlock`, `Configure`).
    pub fn command_id(&self) -> Option<CommandId> {
        match self {
            Self::Unlock(m) => Some(m.command_id),
            Self::Configure(m) => Some(m.command_id),
            _ => None,
        }
    }

    /// Whether `answer` can be a serial board's answer to this request (PROTOCOL.md §5.3): a
    /// command is answered by the `ack` naming its id, a `query_state` by the `state_report`
    /// naming its query, a `ping` by a `pong`, a `poll` by what the board kept for it (a door
    /// event, an alarm) or a heartbeat; and a board without a session answers anything with
    /// its `hello`. Anything else answers some other request (one the gateway gave up on) and
    /// must not be taken for this one's answer.
    pub fn answered_by(&self, answer: &Uplink) -> bool {
        match (self, answer) {
            (_, Uplink::Hello(_)) => true,
            (Self::Unlock(_) | Self::Configure(_), Uplink::Ack(ack)) => {
                self.command_id() == Some(ack.command_id)
            }
            (Self::QueryState(query), Uplink::StateReport(report)) => {
                query.query_id == report.query_id
            }
            (Self::Ping, Uplink::Pong) => true,
            (Self::Poll(_), Uplink::Heartbeat(_) | Uplink::DoorEvent(_) | Uplink::Alarm(_)) => true,
            (Self::UpdateOffer(_) | Self::Chunk(_), Uplink::ChunkRequest(request)) => {
                self.update_id() == Some(request.update_id)
            }
            (
                Self::UpdateOffer(_) | Self::Chunk(_) | Self::Install(_),
                Uplink::UpdateReport(report),
            ) => self.update_id() == Some(report.update_id),
            _ => false,
        }
    }

    /// This message's type.
    pub fn message_type(&self) -> MessageType {
        match self {
            Self::Unlock(_) => MessageType::Unlock,
            Self::QueryState(_) => MessageType::QueryState,
            Self::Configure(_) => MessageType::Configure,
            Self::Ping => MessageType::Ping,
            Self::Poll(_) => MessageType::Poll,
            Self::UpdateOffer(_) => MessageType::UpdateOffer,
            Self::Chunk(_) => MessageType::Chunk,
            Self::Install(_) => MessageType::Install,
        }
    }

    /// The update id, for the three messages of an update (`update_offer`, `chunk`, `install`).
    pub fn update_id(&self) -> Option<u32> {
        match self {
            Self::UpdateOffer(m) => Some(m.update_id),
            Self::Chunk(m) => Some(m.update_id),
            Self::Install(m) => Some(m.update_id),
            _ => None,
        }
    }
}

impl Uplink {
    /// Checks every field's range.
    pub fn validate(&self) -> Result<(), InvalidMessage> {
        match self {
            Self::Hello(m) => {
                check(
                    (crate::OLDEST_PROTOCOL_VERSION..=crate::PROTOCOL_VERSION)
                        .contains(&m.protocol_version),
                    "protocol_version",
                )?;
                check_text(&m.firmware, "firmware")?;
                check_text(&m.serial_no, "serial_no")?;
                check((1..=MAX_DOORS).contains(&m.door_count), "door_count")?;
                check(m.session != 0, "session")?;
                check(
                    m.max_chunk.is_none_or(|n| {
                        (crate::update::MIN_CHUNK..=crate::update::MAX_CHUNK).contains(&n)
                    }),
                    "max_chunk",
                )?;
                check_uptime(m.uptime_ms, "uptime_ms")
            }
            Self::Heartbeat(m) => {
                check_uptime(m.uptime_ms, "uptime_ms")?;
                check_doors(&m.doors)?;
                check(m.signal != Some(i8::MIN), "signal")
            }
            Self::Ack(_) | Self::Pong => Ok(()),
            Self::ChunkRequest(m) => check(m.update_id != 0, "update_id"),
            Self::UpdateReport(m) => crate::update::validate_report(m),
            Self::DoorEvent(m) => {
                check_door(m.door)?;
                check_uptime(m.uptime_ms, "uptime_ms")
            }
            Self::Alarm(m) => {
                if let Some(door) = m.door {
                    check_door(door)?;
                }
                check_uptime(m.uptime_ms, "uptime_ms")
            }
            Self::StateReport(m) => {
                check_doors(&m.doors)?;
                check(m.recent.len() <= MAX_RECENT, "recent")?;
                check(m.door_results.len() <= MAX_RECENT, "door_results")
            }
        }
    }

    /// This message's type.
    pub fn message_type(&self) -> MessageType {
        match self {
            Self::Hello(_) => MessageType::Hello,
            Self::Heartbeat(_) => MessageType::Heartbeat,
            Self::Ack(_) => MessageType::Ack,
            Self::DoorEvent(_) => MessageType::DoorEvent,
            Self::Alarm(_) => MessageType::Alarm,
            Self::StateReport(_) => MessageType::StateReport,
            Self::Pong => MessageType::Pong,
            Self::ChunkRequest(_) => MessageType::ChunkRequest,
            Self::UpdateReport(_) => MessageType::UpdateReport,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_answered_only_by_its_own_answer() {
        let id = |n| CommandId::new(n).expect("id");
        let unlock = Downlink::Unlock(Unlock {
            command_id: id(7),
            door: 1,
            expires_at_ms: None,
        });
        let ack = |n| {
            Uplink::Ack(Ack {
                command_id: id(n),
                result: CommandResult::Executed,
            })
        };
        let heartbeat = Uplink::Heartbeat(Heartbeat {
            uptime_ms: 1,
            doors: Vec::new(),
            signal: None,
        });
        assert!(unlock.answered_by(&ack(7)));
        assert!(!unlock.answered_by(&ack(6)), "an older command's ack");
        assert!(!unlock.answered_by(&heartbeat), "a poll's answer");
        let poll = Downlink::Poll(Poll { ack_counter: 0 });
        assert!(poll.answered_by(&heartbeat));
        assert!(
            !poll.answered_by(&ack(7)),
            "a command's ack answers no poll"
        );
        let query = Downlink::QueryState(QueryState { query_id: 3 });
        assert!(!query.answered_by(&heartbeat));
        assert!(!Downlink::Ping.answered_by(&heartbeat));
        assert!(Downlink::Ping.answered_by(&Uplink::Pong));
    }
}
