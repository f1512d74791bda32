//! What a simulated locker over MQTT is told: its settings ([`LockerConfig`]), the knobs that
//! make it misbehave ([`Knob`]), what it reports ([`Happening`]) and a fleet's counters.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use firmware_protocol::DeviceKey;

use super::{Credentials, Reports};

/// Counters shared by a fleet of simulated lockers.
#[derive(Debug, Default)]
pub struct FleetStats {
    pub(super) connected: AtomicU64,
    pub(super) connects: AtomicU64,
    pub(super) sent: AtomicU64,
    pub(super) received: AtomicU64,
}

impl FleetStats {
    /// Lockers connected now (CONNACK received, Hello sent).
    pub fn connected(&self) -> u64 {
        self.connected.load(Ordering::Relaxed)
    }

    /// Connections made so far (each with a new session).
    pub fn connects(&self) -> u64 {
        self.connects.load(Ordering::Relaxed)
    }

    /// Uplinks published.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Downlinks received.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }
}

/// How one simulated locker behaves.
#[derive(Debug, Clone)]
pub struct LockerConfig {
    /// The broker.
    pub broker: SocketAddr,
    /// Who it is.
    pub credentials: Credentials,
    /// Its doors.
    pub doors: u16,
    /// Heartbeat interval.
    pub heartbeat: Duration,
    /// MQTT keep-alive.
    pub keep_alive: Duration,
    /// Wait before reconnecting after a lost connection.
    pub reconnect_after: Duration,
    /// How long the locker takes to answer a command (a slow door mechanism); changeable later
    /// with [`Knob::AckDelay`].
    pub ack_delay: Duration,
    /// A person who closes each door this long after a command opened it (`None`: doors stay
    /// open until [`Knob::CloseDoor`]).
    pub close_after: Option<Duration>,
    /// Counters to update, shared with other lockers.
    pub stats: Arc<FleetStats>,
    /// The protocol version its firmware speaks and announces in `hello`: 2 (a downlink window;
    /// several gateways may command it at once) or 1 (a counter above the last).
    pub protocol: u8,
    /// The firmware version its `hello` announces (`None`: the simulator's own, `sim-<version>`).
    pub firmware: Option<String>,
    /// Its firmware updater, with its trusted vendor keys and fault knobs (`None`: it takes no
    /// updates and announces no `max_chunk`).
    pub updater: Option<crate::updater::Updater>,
}

impl LockerConfig {
    /// Defaults: 12 doors, heartbeat 60 s, keep-alive 30 s, reconnect after 1 s, answers at once,
    /// the newest protocol version.
    pub fn new(broker: SocketAddr, credentials: Credentials) -> Self {
        Self {
            broker,
            credentials,
            doors: 12,
            heartbeat: Duration::from_secs(60),
            keep_alive: Duration::from_secs(30),
            reconnect_after: Duration::from_secs(1),
            ack_delay: Duration::ZERO,
            close_after: None,
            stats: Arc::default(),
            protocol: firmware_protocol::PROTOCOL_VERSION,
            firmware: None,
            updater: None,
        }
    }
}

/// Things a test or the demo makes a locker do.
#[derive(Debug, Clone)]
pub enum Knob {
    /// Close the connection politely (MQTT DISCONNECT: no last will) and stay away.
    Disconnect,
    /// Lose the connection abruptly (the broker fires the last will) and stay away.
    Drop,
    /// Connect again, with a new session.
    Reconnect,
    /// Publish these bytes on the `up` topic as they are.
    SendRaw(Vec<u8>),
    /// Tag uplinks with this key from now on (a wrong key, for tests).
    UseKey(DeviceKey),
    /// Send a heartbeat now.
    Heartbeat,
    /// A user closes a door.
    CloseDoor(u16),
    /// Someone forces a door open.
    ForceOpen(u16),
    /// Lose the next this many acks (the commands are still executed).
    DropAcks(u32),
    /// This door's lock pulses but the door never opens.
    Jam(u16),
    /// Power cycle: the connection is lost (will fired), RAM is gone (session, counters,
    /// remembered outcomes), and it connects again with a new session.
    Reboot,
    /// Send every ack this much later.
    AckDelay(Duration),
    /// Send every uplink twice (the same bytes).
    Duplicate(bool),
    /// How to answer `query_state`.
    StateReports(Reports),
    /// Turn the updater's fault knobs (a locker without an updater ignores it).
    UpdateFaults(crate::updater::UpdateFaults),
}

/// What a simulated locker reports about itself.
#[derive(Debug, Clone, PartialEq)]
pub enum Happening {
    /// Connected and sent `Hello` for this session.
    Connected {
        /// The new session.
        session: u32,
    },
    /// The connection ended.
    Disconnected,
    /// A sealed uplink was published (its JSON payload).
    Sent(String),
    /// A downlink arrived (raw payload).
    Received(Vec<u8>),
}
