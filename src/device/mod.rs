//! Devices: who a locker is (registry, credentials, directory) and which are revoked. How a
//! locker logs in to the embedded broker is the broker's (`broker::auth`).

pub mod broker_passwords;
pub mod counters;
pub mod credentials;
pub mod directory;
pub mod door_events;
pub mod doors;
pub mod firmware;
pub mod lines;
pub mod presence;
pub mod registry;
pub mod revocation;

pub use registry::{DeviceCredentials, DeviceRegistry, NewDevice, Provisioned, RegistryError};
