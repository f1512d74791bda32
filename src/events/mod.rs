//! Domain events: written to the outbox in the transaction that causes them (see [`outbox`]),
//! delivered at least once afterwards.

pub mod outbox;
pub mod publisher;

pub use outbox::{Event, append};
pub use publisher::{Outcome, Publisher};
