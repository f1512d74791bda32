//! Rentals: a customer rents a door, pays from a wallet, comes back, picks up. This module holds
//! the price plans and the fee; the rental lifecycle builds on them.

pub mod fee;
pub mod plan;
pub mod service;

pub use fee::{Terms, fee};
pub use service::{DoorFailure, Rental, RentalError, RentalSettings, Rentals};
