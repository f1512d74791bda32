//! The `locker-gateway` binary: parses the command line, sets up logging, loads the configuration,
//! and runs the gateway or an administrative subcommand.

use std::process::ExitCode;

use clap::Parser;
use locker_gateway::app::App;
use locker_gateway::cli::{
    Cli, Command, init_logging, run_admin_command, run_command_command, run_device_command,
    run_firmware_command, shutdown_signal,
};
use locker_gateway::device::DeviceRegistry;
use locker_gateway::storage::Storage;
use locker_gateway::{Config, banner};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref(), |name| std::env::var(name).ok()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("locker-gateway: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(config.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("locker-gateway: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => serve(config).await,
            Command::Migrate => database(&config)
                .await
                .map(|_| "database is up to date".to_owned()),
            Command::Device(command) => {
                let storage = existing_database(&config).await?;
                run_device_command(
                    &DeviceRegistry::new(storage).sealing(config.secrets_key.clone()),
                    command,
                )
                .await
            }
            Command::Command(command) => {
                let storage = existing_database(&config).await?;
                run_command_command(&storage, command).await
            }
            Command::Firmware(command) => {
                let storage = existing_database(&config).await?;
                let zone = config.time_zone.name();
                run_firmware_command(&storage, &config.firmware, zone, command).await
            }
            Command::Provision {
                id,
                doors,
                model,
                json,
            } => {
                let storage = existing_database(&config).await?;
                let add = locker_gateway::cli::DeviceCommand::Add {
                    id,
                    doors,
                    model,
                    json,
                };
                run_device_command(
                    &DeviceRegistry::new(storage).sealing(config.secrets_key.clone()),
                    add,
                )
                .await
            }
            Command::Backup { file } => {
                let storage = existing_database(&config).await?;
                storage.backup(&file).await?;
                Ok(format!("backup written to {}", file.display()))
            }
            Command::Healthcheck => locker_gateway::cli::healthcheck(config.http_addr).await,
            Command::Admin(command) => {
                let storage = existing_database(&config).await?;
                let accounts = locker_gateway::account::Accounts::on(
                    storage,
                    config.password_cost,
                    config.token_ttl,
                );
                run_admin_command(&accounts, command, std::io::stdin().lock()).await
            }
        }
    });
    match result {
        Ok(output) => {
            if !output.is_empty() {
                println!("{output}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("locker-gateway: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The storage the configuration names (PostgreSQL in fleet mode, the SQLite file in edge mode).
async fn database(config: &Config) -> Result<Storage, String> {
    let target = locker_gateway::app::storage_target(config).map_err(|e| e.to_string())?;
    Storage::open(&target, 2).await.map_err(|e| e.to_string())
}

/// The database an administrative command works on, which must exist: PostgreSQL if
/// `DATABASE_URL` is set, else edge mode's SQLite file, which only the gateway (or `migrate`)
/// makes. Says on standard error which one it uses.
async fn existing_database(config: &Config) -> Result<Storage, String> {
    match &config.database_url {
        Some(url) => eprintln!(
            "locker-gateway: using PostgreSQL at {}",
            locker_gateway::config::redact_url(url)
        ),
        // Fleet mode named without its database: the storage says what is missing.
        None if config.mode == Some(locker_gateway::config::Mode::Fleet) => {}
        None => {
            let path = config.sqlite_path();
            let shown = std::path::absolute(&path).unwrap_or(path.clone());
            if !path.exists() {
                return Err(format!(
                    "no gateway database at {}: run this where the gateway keeps its data (or set \
                     LOCKER_DATA_DIR to that directory; DATABASE_URL in fleet mode); the gateway \
                     makes the file when it first starts, `locker-gateway migrate` makes an empty \
                     one",
                    shown.display()
                ));
            }
            eprintln!(
                "locker-gateway: using the SQLite database {}",
                shown.display()
            );
        }
    }
    database(config).await
}

async fn serve(config: Config) -> Result<String, String> {
    // Listen for signals before anything starts, so a SIGTERM during start-up is a clean stop too.
    let stop = shutdown_signal();
    tracing::info!("{}", banner());
    tracing::info!("configuration (passwords masked):\n{config}");
    let app = App::build(&config).await.map_err(|e| e.to_string())?;
    tracing::info!("gateway running; Ctrl-C to stop");
    app.run_until_stopped(stop).await;
    Ok(String::new())
}
