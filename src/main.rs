//! The `locker-gateway` binary: loads the configuration and starts the gateway.

use std::process::ExitCode;

use locker_gateway::{Config, banner};

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("locker-gateway: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    println!("{}", banner());
    println!("configuration:\n{config}");
    tracing::info!(
        "no broker, API or storage yet at this stage of the project: configuration checked, exiting"
    );
    ExitCode::SUCCESS
}
