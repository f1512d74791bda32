//! Message types (their byte codes and JSON names) and directions.

/// Which way a message travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Gateway to locker.
    Down = 1,
    /// Locker to gateway.
    Up = 2,
}

impl Direction {
    /// The direction's byte in the envelope.
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// The direction for an envelope byte.
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Self::Down),
            2 => Some(Self::Up),
            _ => None,
        }
    }

    /// `"down"` or `"up"`, as in the JSON envelope.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Down => "down",
            Self::Up => "up",
        }
    }

    /// The direction for its JSON name.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "down" => Some(Self::Down),
            "up" => Some(Self::Up),
            _ => None,
        }
    }
}

/// Every message type, with its byte code and its JSON name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// [`Downlink::Unlock`](crate::Downlink::Unlock).
    Unlock = 0x01,
    /// [`Downlink::QueryState`](crate::Downlink::QueryState).
    QueryState = 0x02,
    /// [`Downlink::Configure`](crate::Downlink::Configure).
    Configure = 0x03,
    /// [`Downlink::Ping`](crate::Downlink::Ping).
    Ping = 0x04,
    /// [`Downlink::Poll`](crate::Downlink::Poll).
    Poll = 0x05,
    /// [`Downlink::UpdateOffer`](crate::Downlink::UpdateOffer).
    UpdateOffer = 0x06,
    /// [`Downlink::Chunk`](crate::Downlink::Chunk).
    Chunk = 0x07,
    /// [`Downlink::Install`](crate::Downlink::Install).
    Install = 0x08,
    /// [`Uplink::Hello`](crate::Uplink::Hello).
    Hello = 0x81,
    /// [`Uplink::Heartbeat`](crate::Uplink::Heartbeat).
    Heartbeat = 0x82,
    /// [`Uplink::Ack`](crate::Uplink::Ack).
    Ack = 0x83,
    /// [`Uplink::DoorEvent`](crate::Uplink::DoorEvent).
    DoorEvent = 0x84,
    /// [`Uplink::Alarm`](crate::Uplink::Alarm).
    Alarm = 0x85,
    /// [`Uplink::StateReport`](crate::Uplink::StateReport).
    StateReport = 0x86,
    /// [`Uplink::Pong`](crate::Uplink::Pong).
    Pong = 0x87,
    /// [`Uplink::ChunkRequest`](crate::Uplink::ChunkRequest).
    ChunkRequest = 0x88,
    /// [`Uplink::UpdateReport`](crate::Uplink::UpdateReport).
    UpdateReport = 0x89,
}

impl MessageType {
    /// Every type, downlinks first.
    pub const ALL: [MessageType; 17] = [
        Self::Unlock,
        Self::QueryState,
        Self::Configure,
        Self::Ping,
        Self::Poll,
        Self::UpdateOffer,
        Self::Chunk,
        Self::Install,
        Self::Hello,
        Self::Heartbeat,
        Self::Ack,
        Self::DoorEvent,
        Self::Alarm,
        Self::StateReport,
        Self::Pong,
        Self::ChunkRequest,
        Self::UpdateReport,
    ];

    /// Whether a serial board keeps an uplink of this type in its queue until a `poll` fetches
    /// it (`door_event`, `alarm`; PROTOCOL.md §5.3); every other uplink answers a request.
    pub const fn waits_for_poll(self) -> bool {
        matches!(self, Self::DoorEvent | Self::Alarm)
    }

    /// The type's byte in the envelope; uplink codes have the high bit set.
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// The type for an envelope byte.
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.code() == code)
    }

    /// The type's name in the JSON envelope.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Unlock => "unlock",
            Self::QueryState => "query_state",
            Self::Configure => "configure",
            Self::Ping => "ping",
            Self::Poll => "poll",
            Self::UpdateOffer => "update_offer",
            Self::Chunk => "chunk",
            Self::Install => "install",
            Self::Hello => "hello",
            Self::Heartbeat => "heartbeat",
            Self::Ack => "ack",
            Self::DoorEvent => "door_event",
            Self::Alarm => "alarm",
            Self::StateReport => "state_report",
            Self::Pong => "pong",
            Self::ChunkRequest => "chunk_request",
            Self::UpdateReport => "update_report",
        }
    }

    /// The type for its JSON name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Which way messages of this type travel.
    pub const fn direction(self) -> Direction {
        if self.code() & 0x80 == 0 {
            Direction::Down
        } else {
            Direction::Up
        }
    }
}
