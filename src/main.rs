//! The `locker-gateway` binary: parses the command line, sets up logging, loads the configuration,
//! and runs the gateway or an administrative subcommand.

use std::process::ExitCode;

use clap::Parser;
use locker_gateway::app::App;
use locker_gateway::cli::{
    Cli, Command, run_admin_command, run_command_command, run_device_command,
};
use locker_gateway::config::LogFormat;
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
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rumqttd=warn,sqlx=warn"));
    // Colours only for a person at a terminal, never in a file or a log collector.
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match config.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
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
                run_device_command(&DeviceRegistry::new(storage), command).await
            }
            Command::Command(command) => {
                let storage = existing_database(&config).await?;
                run_command_command(&storage, command).await
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
                run_device_command(&DeviceRegistry::new(storage), add).await
            }
            Command::Backup { file } => {
                let storage = existing_database(&config).await?;
                storage.backup(&file).await?;
                Ok(format!("backup written to {}", file.display()))
            }
            Command::Healthcheck => locker_gateway::cli::healthcheck(config.http_addr).await,
            Command::Demo {
                lockers,
                close_after_secs,
                reset,
            } => {
                if reset {
                    reset_demo(&config)?;
                }
                let stop = shutdown_signal();
                let close_after = (close_after_secs > 0)
                    .then(|| std::time::Duration::from_secs(close_after_secs));
                locker_gateway::demo::run(&config, (lockers, close_after), stop).await
            }
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

/// `demo --reset`: deletes edge mode's SQLite file (and its journal files).
fn reset_demo(config: &Config) -> Result<(), String> {
    if config.database_url.is_some() {
        return Err(
            "demo --reset only deletes edge mode's SQLite file; in fleet mode drop and create \
             the database yourself"
                .into(),
        );
    }
    let path = config.sqlite_path();
    for suffix in ["", "-wal", "-shm"] {
        let file = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
        match std::fs::remove_file(&file) {
            Ok(()) => eprintln!("locker-gateway: deleted {}", file.display()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot delete {}: {e}", file.display())),
        }
    }
    Ok(())
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

/// A future that resolves on SIGINT or SIGTERM; the handlers are installed when this is called.
#[cfg(unix)]
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let interrupt = signal(SignalKind::interrupt());
    let terminate = signal(SignalKind::terminate());
    async move {
        match (interrupt, terminate) {
            (Ok(mut interrupt), Ok(mut terminate)) => {
                tokio::select! {
                    _ = interrupt.recv() => {}
                    _ = terminate.recv() => {}
                }
            }
            (interrupt, terminate) => {
                tracing::warn!(
                    ?interrupt,
                    ?terminate,
                    "cannot listen for signals; Ctrl-C only"
                );
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
}

/// A future that resolves on Ctrl-C.
#[cfg(not(unix))]
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}
