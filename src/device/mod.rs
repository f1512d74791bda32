//! Devices: who a locker is (registry, credentials) and how it logs in to the broker.

pub mod auth;
pub mod credentials;
pub mod directory;
pub mod registry;
pub mod revocation;

pub use auth::RegistryAuthenticator;
pub use registry::{DeviceCredentials, DeviceRegistry, NewDevice, Provisioned, RegistryError};
