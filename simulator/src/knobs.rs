//! A simulated locker's settings and fault knobs.

use std::collections::BTreeSet;

/// Settings a `configure` command changes; the protocol's defaults before any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Seconds between heartbeats.
    pub heartbeat_secs: u16,
    /// How long after a pulse an opening counts as commanded (ms).
    pub open_window_ms: u16,
    /// How long the relay is energised (ms).
    pub pulse_ms: u16,
    /// Seconds open before a `door_ajar` alarm; 0 = off.
    pub ajar_alarm_secs: u16,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            heartbeat_secs: 60,
            open_window_ms: 10_000,
            pulse_ms: 300,
            ajar_alarm_secs: 120,
        }
    }
}

/// Fault knobs: ways the simulated hardware misbehaves on purpose.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Faults {
    /// Doors whose lock pulses but which never open (`alarm jammed` follows the ack).
    pub jammed_doors: BTreeSet<u16>,
    /// Doors whose sensor does not answer (reported `unknown`).
    pub dead_sensors: BTreeSet<u16>,
    /// Doors that are busy: unlocks are refused with `busy`.
    pub busy_doors: BTreeSet<u16>,
    /// Acks to lose (the command is still handled): the next this many are never sent.
    pub drop_acks: u32,
}
