//! Rentals: a customer rents a door, pays from a wallet, comes back, picks up. This module holds
//! the price plans and the fee; the rental lifecycle builds on them.

pub mod alarm;
pub mod fee;
pub mod plan;
pub mod service;
mod state;

pub use fee::{Terms, fee};
pub use service::{DoorFailure, Rental, RentalError, RentalSettings, Rentals};
pub use state::RentalState;

/// An UPDATE of `rentals` adding the flag bound as `$flag` (once) to the rows `$where` selects,
/// for each dialect (`TEXT[]` in PostgreSQL, a JSON array in SQLite): expands to
/// `(postgresql, sqlite)` statements for `Dialect::pick`.
macro_rules! add_flag_sql {
    ($flag:literal, $where:literal) => {
        (
            concat!(
                "UPDATE rentals SET flags = array_append(flags, ",
                $flag,
                ") WHERE NOT ",
                $flag,
                " = ANY(flags) AND ",
                $where
            ),
            concat!(
                "UPDATE rentals SET flags = json_insert(flags, '$[#]', ",
                $flag,
                ") WHERE NOT EXISTS (SELECT 1 FROM json_each(flags) WHERE value = ",
                $flag,
                ") AND ",
                $where
            ),
        )
    };
}
pub(crate) use add_flag_sql;
