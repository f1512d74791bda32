//! What a simulated bus is told: its boards ([`BoardConfig`]), the knobs that make the line and
//! the boards misbehave ([`SerialKnob`]), and what a board did ([`BoardEvent`]).

use std::time::Duration;

use firmware_protocol::{DeviceId, DeviceKey};

/// One board on the bus.
#[derive(Debug, Clone)]
pub struct BoardConfig {
    /// Its bus address, 1..=247.
    pub address: u8,
    /// Its device id in the gateway's registry.
    pub device_id: DeviceId,
    /// Its tag key.
    pub key: DeviceKey,
    /// Doors it drives.
    pub doors: u16,
}

/// Ways to make the bus misbehave, or to act on a board.
#[derive(Debug, Clone)]
pub enum SerialKnob {
    /// Flip one random bit in this share of the bytes the boards send (0.0 to 1.0).
    FlipRate(f64),
    /// Drop this share of the bytes the boards send.
    DropRate(f64),
    /// The board at this address stops answering (or starts again).
    Dead(u8, bool),
    /// The board at this address answers this much later.
    Slow(u8, Duration),
    /// The board at this address answers as if it were at another address (`None`: its own).
    AnswerAs(u8, Option<u8>),
    /// Power-cycle the board at this address: RAM (session, counters, outcomes) is gone.
    Reboot(u8),
    /// The board at this address takes firmware updates with this updater (its `hello`
    /// announces `max_chunk` from its next session on; its faults apply).
    Updater(u8, Box<crate::updater::Updater>),
    /// Someone closes a door of the board at this address.
    CloseDoor(u8, u16),
    /// This door of the board at this address jams (pulses but never opens).
    Jam(u8, u16),
    /// The board at this address loses power right after it executes its next command: the
    /// relay pulsed, the answer is never sent, and RAM (session, outcomes) is gone.
    PowerCutAfterNextCommand(u8),
    /// The board at this address answers its next command, then its next `n` answers are lost
    /// on the line (it acts on the requests; nothing reaches the gateway): a burst of noise
    /// right after a command.
    LoseAnswersAfterNextCommand(u8, u32),
    /// This door's sensor of the board at this address stops answering (reported `unknown`).
    DeadSensor(u8, u16),
    /// Every board's doors are closed this long after they open (a person taking their goods).
    CloseAfter(Duration),
    /// The line's speed in baud: each answer waits as long as the request and the answer take on
    /// a real line at that speed (10 bits a byte). 0: no wait (the default).
    Baud(u32),
    /// Every board stops reading the line for this long (asleep, or powered up late): the
    /// gateway's requests pile up in the line's buffer, and are then answered one after another,
    /// a backlog of answers to requests the gateway gave up on.
    Stall(Duration),
    /// Unplug the adapter for this long, then plug it in again: the port disappears (the
    /// gateway's reads fail) and comes back at the same path.
    Replug(Duration),
}

/// What a board did, for tests to watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BoardEvent {
    /// It executed an unlock of this door (the relay pulsed).
    Unlocked {
        /// The board.
        address: u8,
        /// The door.
        door: u16,
    },
}
