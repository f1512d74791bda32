//! The gateway's integration tests, as one binary. They use a real PostgreSQL (a fresh database per
//! test through `#[sqlx::test]`, from `DATABASE_URL`) and the real embedded broker on a free port.

mod accounts;
mod amounts;
mod api;
mod asyncapi;
mod audit;
mod broker;
mod cache;
mod command_helpers;
mod commands;
mod contract;
mod crashes;
mod devices_api;
mod helpers;
mod idempotency;
mod link;
mod locks;
mod metrics;
mod mosquitto;
mod mqtt5;
mod orders;
mod outbox;
mod plans;
mod process;
mod registry;
mod rental_limits;
mod rentals;
mod rentals_after;
mod restart;
mod serial;
mod settlement;
mod shutdown;
mod wallets;
mod wallets_api;
mod workers;
