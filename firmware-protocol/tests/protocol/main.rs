//! The protocol's tests, as one binary.

mod c_guard;
mod c_json;
mod c_library;
mod c_update;
mod downlink_window;
mod exchange_check;
mod exchanges;
mod garbage;
mod helpers;
mod refusals;
mod resync;
mod roundtrip;
mod strategies;
mod vector_messages;
mod vectors;
