//! What became of a command: why a locker refused it ([`RefuseReason`]), and what the door of an
//! executed unlock did ([`DoorOutcome`], reported in a `state_report` by protocol version 2).

use serde::{Deserialize, Serialize};

use crate::message::CommandId;

/// Why a locker refused a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefuseReason {
    /// The door number is outside `1..=door_count`.
    NoSuchDoor = 1,
    /// The door (or the relay driver) is busy with another pulse.
    Busy = 2,
    /// Its `expires_at_ms` has passed.
    Expired = 3,
    /// The tag did not verify.
    BadTag = 4,
    /// The counter is not above the last one accepted and the command is not an exact repeat.
    StaleCounter = 5,
    /// The locker does not support this command or setting.
    Unsupported = 6,
    /// The envelope names another session than the current one.
    WrongSession = 7,
    /// The body could not be decoded.
    Malformed = 8,
}

impl RefuseReason {
    /// Every reason, in code order.
    pub const ALL: [RefuseReason; 8] = [
        Self::NoSuchDoor,
        Self::Busy,
        Self::Expired,
        Self::BadTag,
        Self::StaleCounter,
        Self::Unsupported,
        Self::WrongSession,
        Self::Malformed,
    ];

    /// The reason's byte on the wire.
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// The reason for a wire byte.
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.code() == code)
    }

    /// The reason's name in JSON (`no_such_door`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            Self::NoSuchDoor => "no_such_door",
            Self::Busy => "busy",
            Self::Expired => "expired",
            Self::BadTag => "bad_tag",
            Self::StaleCounter => "stale_counter",
            Self::Unsupported => "unsupported",
            Self::WrongSession => "wrong_session",
            Self::Malformed => "malformed",
        }
    }

    /// The reason for a JSON name; `None` for a name no reason has.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.name() == name)
    }
}

/// What a door did after an executed unlock, as the locker's sensor saw it by the end of
/// `open_window_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DoorOutcome {
    /// It opened (the locker sent `door_event opened` naming the command).
    Opened = 1,
    /// It was open already when the relay was pulsed (no opening event).
    AlreadyOpen = 2,
    /// It stayed closed (the locker sent `alarm jammed`).
    NotOpened = 3,
}

impl DoorOutcome {
    /// Every outcome, in code order.
    pub const ALL: [DoorOutcome; 3] = [Self::Opened, Self::AlreadyOpen, Self::NotOpened];

    /// The outcome's byte on the wire.
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// The outcome for a wire byte.
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.code() == code)
    }
}

/// One entry of a `state_report`'s `door_results`: what the door of an executed unlock did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnlockDoor {
    /// The unlock.
    pub command_id: CommandId,
    /// What its door did.
    pub door: DoorOutcome,
}
