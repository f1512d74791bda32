//! The fleet's proof, as processes: three gateway binaries on one PostgreSQL, one Redis and a
//! Mosquitto of the test's own, about twenty simulated lockers (protocol versions 1 and 2),
//! customers and an operator speaking HTTP to any gateway, and `kill -9` in the middle of a storm
//! of rentals. Every API answer is kept and checked against the final rows.
//!
//! Its own test binary; its tests run one at a time (each runs three gateways): see
//! [`one_at_a_time`].

#[path = "../support/basics.rs"]
#[allow(dead_code)]
mod basics;
#[path = "../support/gateway_process.rs"]
#[allow(dead_code)]
mod gateway_process;
#[path = "../support/mosquitto_server.rs"]
#[allow(dead_code)]
mod mosquitto_server;

mod answers;
mod harness;
mod proof;
mod storm;
mod upgrade;

/// The tests of this binary run one at a time: each holds this for its whole run.
pub async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static ONE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    ONE.lock().await
}
