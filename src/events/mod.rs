//! Domain events: written to the outbox in the transaction that causes them (see [`outbox`]),
//! delivered at least once afterwards.

pub mod outbox;

pub use outbox::{Event, append};
