//! Every message a locker and the gateway exchange, with every field's type and range pinned.
//!
//! Downlinks ([`Downlink`]) go from the gateway to a locker, uplinks ([`Uplink`]) from a locker to
//! the gateway. Times measured on the locker are its uptime in milliseconds: lockers usually have
//! no real-time clock, so the gateway stamps wall-clock time on receipt.
//!
//! Each message has two body encodings, a compact binary one (serial lines, [`crate::binary`]) and
//! a JSON one (MQTT, [`crate::json`]); both go through [`Payload::validate`] on the way in and out.

use serde::{Deserialize, Serialize};

use crate::error::InvalidMessage;
pub use crate::message_type::{Direction, MessageType};
pub use crate::outcome::{DoorOutcome, RefuseReason, UnlockDoor};
pub use crate::update::{
    Chunk, ChunkRequest, Install, UpdateFailure, UpdateOffer, UpdateReport, UpdateStatus,
};

/// Largest door number a locker may have; doors are numbered `1..=door_count`.
pub const MAX_DOORS: u16 = 512;
/// Longest `firmware` or `serial_no` text, in bytes of printable ASCII.
pub const MAX_TEXT_LEN: usize = 32;
/// Fewest command outcomes a locker must remember (and report in [`StateReport::recent`]).
pub const MIN_RECENT: usize = 16;
/// Most command outcomes a [`StateReport`] may carry.
pub const MAX_RECENT: usize = 32;
/// Largest integer carried in a 64-bit field: 2^53 − 1, so that JSON parsers that read numbers as
/// IEEE doubles (cJSON, JavaScript) read every value exactly.
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// A command's id, assigned by the gateway: `1..=2^53 − 1`, unique for the gateway's whole life
/// (a database sequence), never reused in another session.
///
/// The id names the command in [`Ack`], [`DoorEvent`] and [`StateReport`]. The envelope's
/// `counter` is separate: it is the anti-replay sequence of one session. A command sent in a
/// session is bound to exactly one counter value; a resend in the same session repeats both id and
/// counter (the envelope is byte for byte the same), and a command is never sent into a new
/// session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u64")]
pub struct CommandId(u64);

impl CommandId {
    /// The id, if `value` is in `1..=MAX_SAFE_INTEGER`.
    pub const fn new(value: u64) -> Option<Self> {
        if value >= 1 && value <= MAX_SAFE_INTEGER {
            Some(Self(value))
        } else {
            None
        }
    }

    /// The id as a number.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl TryFrom<u64> for CommandId {
    type Error = InvalidMessage;
    fn try_from(value: u64) -> Result<Self, Self::Error> {
        Self::new(value).ok_or(InvalidMessage::OutOfRange("command_id"))
    }
}

impl From<CommandId> for u64 {
    fn from(id: CommandId) -> u64 {
        id.0
    }
}

impl std::fmt::Display for CommandId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Open the lock of one door (pulse its relay).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unlock {
    /// The command's id (see [`CommandId`]).
    pub command_id: CommandId,
    /// `1..=door_count`.
    pub door: u16,
    /// The locker refuses the command with [`RefuseReason::Expired`] when its uptime is past this
    /// value (ms). `None`: no expiry. The gateway computes it from the uptime the locker last
    /// reported; `Some(0)` is invalid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<u64>,
}

/// Ask the locker for its door states and recent command outcomes; answered by [`StateReport`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryState {
    /// Any value; echoed in the [`StateReport`].
    pub query_id: u32,
}

/// Change the locker's settings. Answered by an [`Ack`] like any command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Configure {
    /// The command's id (see [`CommandId`]).
    pub command_id: CommandId,
    /// Seconds between [`Heartbeat`]s on MQTT, `5..=3600`.
    pub heartbeat_secs: u16,
    /// How long after a pulse an opening counts as commanded (ms), `1000..=60000`.
    pub open_window_ms: u16,
    /// How long the relay is energised per unlock (ms), `50..=5000`.
    pub pulse_ms: u16,
    /// Seconds a door may stay open before an [`AlarmKind::DoorAjar`], `0` (off) or `10..=3600`.
    pub ajar_alarm_secs: u16,
    /// As in [`Unlock::expires_at_ms`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<u64>,
}

/// Serial bus only: the gateway's turn-taking poll. A board in session answers with its oldest
/// undelivered [`DoorEvent`] or [`Alarm`], or else a [`Heartbeat`]; a board with no session (or
/// another one) answers with [`Hello`]. PROTOCOL.md §5.3 has the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Poll {
    /// The counter of the last queued uplink (a [`DoorEvent`] or an [`Alarm`]) the gateway has
    /// received from this board in this session, `0` if none yet. The board's uplink in flight is
    /// delivered once this reaches its counter; answers to requests (`Ack`, `StateReport`, `Pong`,
    /// `Heartbeat`) never move it, so a queued uplink whose answer was lost is never taken as
    /// delivered because a later answer got through.
    pub ack_counter: u32,
}

/// What the gateway sends to a locker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Downlink {
    /// Pulse a door's lock.
    Unlock(Unlock),
    /// Ask for door states and recent outcomes.
    QueryState(QueryState),
    /// Change settings.
    Configure(Configure),
    /// Liveness check; answered by [`Uplink::Pong`].
    Ping,
    /// Serial bus turn-taking.
    Poll(Poll),
    /// Offer a firmware image; answered by a [`ChunkRequest`] or an [`UpdateReport`].
    UpdateOffer(UpdateOffer),
    /// One piece of an offered image, answering a [`ChunkRequest`].
    Chunk(Chunk),
    /// Install a downloaded image now; answered by an [`UpdateReport`].
    Install(Install),
}

/// Sent on every connect (MQTT) and in answer to a poll from a board with no session (serial).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The protocol version the firmware speaks, from [`crate::OLDEST_PROTOCOL_VERSION`] to
    /// [`crate::PROTOCOL_VERSION`]: 2 when it keeps an anti-replay window for downlinks (so
    /// several gateways may command it at once), 1 when it accepts only a counter above the last.
    pub protocol_version: u8,
    /// Firmware version, printable ASCII, `1..=32` bytes.
    pub firmware: String,
    /// Hardware serial number, printable ASCII, `1..=32` bytes.
    pub serial_no: String,
    /// Number of doors, `1..=MAX_DOORS`.
    pub door_count: u16,
    /// The session this connection uses; equal to the envelope's `session`, never `0`.
    pub session: u32,
    /// Locker uptime (ms), `0..=2^53 − 1`.
    pub uptime_ms: u64,
    /// The locker takes firmware updates (PROTOCOL.md §11) in chunks of at most this many bytes,
    /// [`crate::update::MIN_CHUNK`] to [`crate::update::MAX_CHUNK`]; `None`: it takes no updates
    /// and is never offered one. Appended to the binary body (absent or `0`: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_chunk: Option<u16>,
}

/// What a door's sensor says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DoorSensor {
    /// The door is open.
    Open,
    /// The door is closed.
    Closed,
    /// The sensor is not answering. Never guessed as open or closed.
    Unknown,
}

/// One door's state; in a list, the first entry is door 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoorStatus {
    /// What the door sensor says.
    pub sensor: DoorSensor,
    /// The lock's bolt is engaged.
    pub locked: bool,
    /// The item sensor: `Some(true)` something is inside, `None` no item sensor fitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occupied: Option<bool>,
}

/// Periodic status (MQTT: every `heartbeat_secs`; serial: in answer to a poll).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// Locker uptime (ms) when the heartbeat was sent.
    pub uptime_ms: u64,
    /// One entry per door, door 1 first; exactly `door_count` entries.
    pub doors: Vec<DoorStatus>,
    /// Radio signal strength in dBm, `-127..=127`; `None` on wired lockers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i8>,
}

/// What the locker did with a command: only that, not what the door did afterwards (that is a
/// [`DoorEvent`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "result", content = "reason", rename_all = "snake_case")]
pub enum CommandResult {
    /// The relay was pulsed (Unlock) or the settings applied (Configure).
    Executed,
    /// Nothing was done, for this reason.
    Refused(RefuseReason),
}

/// A locker's answer to a command. Also one entry of [`StateReport::recent`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// The command answered.
    pub command_id: CommandId,
    #[serde(flatten)]
    /// What the locker did with it.
    pub result: CommandResult,
}

/// What a door's sensor saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DoorMotion {
    /// The sensor saw the door open.
    Opened,
    /// The sensor saw the door close.
    Closed,
}

/// Why a door moved, as far as the locker knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "cause", content = "command_id", rename_all = "snake_case")]
pub enum DoorCause {
    /// Within `open_window_ms` after this command's pulse.
    Commanded(CommandId),
    /// With no pulse behind it (for an opening: possibly forced).
    Uncommanded,
}

/// A door sensor change, sent when it happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoorEvent {
    /// The door, `1..=door_count`.
    pub door: u16,
    /// Opened or closed.
    pub state: DoorMotion,
    #[serde(flatten)]
    /// A command's pulse, or none.
    pub cause: DoorCause,
    /// Locker uptime (ms) when the sensor changed.
    pub uptime_ms: u64,
}

/// Kinds of alarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlarmKind {
    /// A door opened while locked and with no pulse.
    ForcedOpen = 1,
    /// A door stayed open longer than `ajar_alarm_secs`.
    DoorAjar = 2,
    /// The cabinet's tamper switch tripped.
    Tamper = 3,
    /// Mains power lost (running on battery).
    PowerLoss = 4,
    /// A pulsed door did not open within `open_window_ms`.
    Jammed = 5,
}

impl AlarmKind {
    /// Every kind, in code order.
    pub const ALL: [AlarmKind; 5] = [
        Self::ForcedOpen,
        Self::DoorAjar,
        Self::Tamper,
        Self::PowerLoss,
        Self::Jammed,
    ];

    /// The kind's byte on the wire.
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// The kind for a wire byte.
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.code() == code)
    }
}

/// Something an operator should look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alarm {
    /// What happened.
    pub kind: AlarmKind,
    /// The door concerned; `None` for the whole cabinet (tamper, power).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub door: Option<u16>,
    /// Locker uptime (ms) when it was raised.
    pub uptime_ms: u64,
}

/// The answer to [`QueryState`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateReport {
    /// The [`QueryState::query_id`] answered.
    pub query_id: u32,
    /// One entry per door, door 1 first.
    pub doors: Vec<DoorStatus>,
    /// Outcomes of the locker's last commands since it booted (kept across reconnects), oldest
    /// first, at most [`MAX_RECENT`]; a locker keeps at least [`MIN_RECENT`].
    pub recent: Vec<Ack>,
    /// Protocol version 2: what the doors of the executed unlocks among `recent` did once their
    /// open window passed (oldest first, at most [`MAX_RECENT`]), even if a door's event was
    /// lost. Empty from a version 1 locker (and then left out of both bodies).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub door_results: Vec<UnlockDoor>,
}

/// What a locker sends to the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Uplink {
    /// First message of a session.
    Hello(Hello),
    /// Periodic door states.
    Heartbeat(Heartbeat),
    /// What the locker did with a command.
    Ack(Ack),
    /// A door sensor changed.
    DoorEvent(DoorEvent),
    /// Something an operator should look at.
    Alarm(Alarm),
    /// The answer to a state query.
    StateReport(StateReport),
    /// The answer to [`Downlink::Ping`].
    Pong,
    /// The next piece of an offered image the locker wants.
    ChunkRequest(ChunkRequest),
    /// Where an update stands on the locker.
    UpdateReport(UpdateReport),
}

/// The messages of one direction: what an envelope can carry.
pub trait Payload: Sized + Clone + PartialEq + std::fmt::Debug {
    /// The direction every message of this type travels.
    const DIRECTION: Direction;

    /// This message's type.
    fn message_type(&self) -> MessageType;

    /// Checks every field's range.
    fn validate(&self) -> Result<(), InvalidMessage>;

    /// Appends the binary body to `out` (see [`crate::binary`]). Does not validate.
    fn write_binary(&self, out: &mut Vec<u8>);

    /// Reads a binary body of type `ty` and validates it.
    fn read_binary(ty: MessageType, body: &[u8]) -> Result<Self, crate::DecodeError>;

    /// Appends the JSON body to `out` (see [`crate::json`]). Does not validate.
    fn write_json(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error>;

    /// Reads a JSON body of type `ty` and validates it.
    fn read_json(ty: MessageType, body: &[u8]) -> Result<Self, crate::DecodeError>;

    /// The session a `Hello` announces, which must match its envelope's.
    fn announced_session(&self) -> Option<u32> {
        None
    }
}
