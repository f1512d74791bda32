//! The protocol's tests, as one binary.

mod downlink_window;
mod garbage;
mod helpers;
mod refusals;
mod resync;
mod roundtrip;
mod strategies;
mod vector_messages;
mod vectors;
