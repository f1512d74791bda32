//! Simulated smart lockers and lock boards for the locker gateway.
//!
//! [`SimLocker`] is the firmware logic of one locker (sessions, counters, replay rules, doors and
//! sensors, fault knobs) without a transport; the MQTT and serial simulators wrap it. Tests use it
//! to play the locker's side of the protocol exactly as firmware must.

#![warn(missing_docs)]

pub mod conform;
pub mod credentials;
pub mod knobs;
pub mod locker;
pub mod mqtt;
pub mod serial;
pub mod updater;

pub use locker::{Faults, RECENT_CAPACITY, Settings, SimLocker};
pub use updater::{UpdateFaults, Updater};
