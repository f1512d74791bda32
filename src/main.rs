//! The `locker-gateway` binary: parses the command line, sets up logging, loads the configuration,
//! and runs the gateway or an administrative subcommand.

use std::process::ExitCode;

use clap::Parser;
use locker_gateway::app::App;
use locker_gateway::cli::{Cli, Command, run_device_command};
use locker_gateway::config::redact_url;
use locker_gateway::device::DeviceRegistry;
use locker_gateway::{Config, banner};

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new("info,rumqttd=warn,sqlx=warn")
            }),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("locker-gateway: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
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
                let pool = database(&config).await?;
                run_device_command(&DeviceRegistry::new(pool), command).await
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

async fn database(config: &Config) -> Result<sqlx::PgPool, String> {
    let url = config
        .database_url
        .as_deref()
        .ok_or("DATABASE_URL is not set")?;
    locker_gateway::db::connect(url, 2)
        .await
        .map_err(|e| format!("PostgreSQL at {}: {e}", redact_url(url)))
}

async fn serve(config: Config) -> Result<String, String> {
    eprintln!("{}\nconfiguration:\n{config}", banner());
    let app = App::build(&config).await.map_err(|e| e.to_string())?;
    tracing::info!("gateway running; Ctrl-C to stop");
    app.run_until_stopped(shutdown_signal()).await;
    Ok(String::new())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for SIGTERM; Ctrl-C only");
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
