//! The gateway's integration tests, as one binary. They use a real PostgreSQL (a fresh database per
//! test through `#[sqlx::test]`, from `DATABASE_URL`) and the real embedded broker on a free port.

#[path = "../support/basics.rs"]
mod basics;
#[path = "../support/gateway_process.rs"]
mod gateway_process;
#[path = "../support/mosquitto_server.rs"]
mod mosquitto_server;

mod accounts;
mod admin_cli;
mod amounts;
mod answers_elsewhere;
mod api;
mod architecture;
mod asyncapi;
mod audit;
mod broker;
mod broker_hooks;
mod broker_retained;
mod broker_tls;
mod c_board;
mod c_build;
mod c_locker;
mod cache;
mod command_helpers;
mod commands;
mod conform_mqtt;
mod contract;
mod crashes;
mod customer_lists;
mod device_settings;
mod devices_api;
mod doors_checked;
mod dynsec;
mod fleet;
mod fleet_serial;
mod fleet_versions;
mod helpers;
mod http_limits;
mod idempotency;
mod lease;
mod link;
mod locks;
mod metrics;
mod mosquitto;
mod mosquitto_tls;
mod mqtt5;
mod openapi_fuzz;
mod orders;
mod outbox;
mod pickup_truth;
mod plans;
mod process;
mod registry;
mod rental_limits;
mod rentals;
mod rentals_after;
mod replay;
mod restart;
mod schema;
mod serial;
mod serial_answers;
mod serial_memory;
mod settlement;
mod shutdown;
mod stock;
mod stores_books;
mod stores_catalog;
mod stores_commands;
mod stores_device;
mod stores_money;
mod test_broker;
mod text_input;
mod wallets;
mod wallets_api;
mod workers;
