//! The locker gateway: connects smart lockers (over MQTT and RS-485 serial lines) to the business
//! of renting doors, holding money and keeping orders.
//!
//! This is the library the `locker-gateway` binary is a thin shell around; integration tests use
//! it directly. The wire protocol lives in the `firmware-protocol` crate.

#![warn(missing_docs)]

pub mod account;
pub mod alarm;
pub mod api;
pub mod app;
pub mod audit;
pub mod background;
pub mod broker;
pub mod cache;
pub mod cli;
pub mod command;
pub mod config;
pub mod db;
pub mod device;
pub mod events;
pub mod firmware;
pub mod lease;
pub mod link;
pub mod lock;
pub mod money;
pub mod mqtt;
pub mod order;
pub mod pause;
pub mod rental;
pub mod rollout;
pub mod sealing;
pub mod serial;
pub mod storage;
pub mod unlock;
pub mod uplink;
pub mod wallet;
pub mod webhook;
pub mod worker;

pub use config::Config;

/// The gateway's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// One line naming the gateway and the protocol it speaks.
pub fn banner() -> String {
    format!(
        "locker-gateway {VERSION}, locker protocol v{}-v{}",
        firmware_protocol::OLDEST_PROTOCOL_VERSION,
        firmware_protocol::PROTOCOL_VERSION
    )
}
