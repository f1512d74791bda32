//! The command line: `serve` (the default) runs the gateway; `device …` provisions, revokes and
//! rotates devices; `command …` queues and cancels commands; `firmware …` uploads images;
//! `migrate` brings the database schema up to date.

use std::time::Duration;

use clap::{Parser, Subcommand};
use firmware_protocol::DeviceId;

use crate::device::{DeviceRegistry, NewDevice, Provisioned};

mod campaigns;
mod commands;
mod firmware;

pub use commands::{CommandCommand, run_command_command};
pub use firmware::{FirmwareCommand, run_firmware_command};

/// The locker gateway.
#[derive(Debug, Parser)]
#[command(name = "locker-gateway", version, about)]
pub struct Cli {
    /// A TOML configuration file (settings as in README, environment variables override it).
    #[arg(long, global = true, env = "LOCKER_CONFIG")]
    pub config: Option<std::path::PathBuf>,
    /// What to do; `serve` when left out.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway (broker, device link, background workers).
    Serve,
    /// Apply the database migrations and exit.
    Migrate,
    /// Manage devices (fleet mode: DATABASE_URL; edge mode: the gateway's SQLite file under
    /// LOCKER_DATA_DIR, which must exist).
    #[command(subcommand)]
    Device(DeviceCommand),
    /// List and cancel commands (fleet mode: DATABASE_URL; edge mode: the gateway's SQLite file
    /// under LOCKER_DATA_DIR, which must exist).
    #[command(subcommand)]
    Command(CommandCommand),
    /// Manage operator accounts (fleet mode: DATABASE_URL; edge mode: the gateway's SQLite file
    /// under LOCKER_DATA_DIR, which must exist).
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Upload and list firmware images (fleet mode: DATABASE_URL; edge mode: the gateway's SQLite
    /// file under LOCKER_DATA_DIR, which must exist).
    #[command(subcommand)]
    Firmware(FirmwareCommand),
    /// Register a device and print its credentials (shown once); same as `device add`.
    Provision {
        /// Device id: 1 to 32 of A-Z a-z 0-9 _ -.
        id: String,
        /// Number of doors.
        #[arg(long, default_value_t = 12)]
        doors: u16,
        /// Model name.
        #[arg(long, default_value = "generic")]
        model: String,
        /// Print one JSON line instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Write a consistent copy of edge mode's SQLite database to FILE while the gateway runs
    /// (restore: stop the gateway, copy FILE to LOCKER_DATA_DIR/gateway.sqlite, start it). In
    /// fleet mode use pg_dump.
    Backup {
        /// The new file to write.
        file: std::path::PathBuf,
    },
    /// Ask a running gateway whether it is ready (GET /readyz on LOCKER_HTTP_ADDR); exit 0 if it
    /// is, 1 if not. For container health checks.
    Healthcheck,
}

/// Operator accounts.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create an operator account; the password is read from the first line of standard input,
    /// so it never appears in the shell's history or the process list.
    Create {
        /// The operator's email (the login).
        #[arg(long)]
        email: String,
        /// What the operator may do: admin (everything), support (no money movements, no
        /// revocation), technician (maintenance unlocks and door service) or viewer (read only).
        #[arg(long, default_value = "admin", value_parser = ["admin", "support", "technician", "viewer"])]
        role: String,
    },
}

/// Runs one admin subcommand, reading the password from `input`.
pub async fn run_admin_command(
    accounts: &crate::account::Accounts,
    command: AdminCommand,
    mut input: impl std::io::BufRead,
) -> Result<String, String> {
    match command {
        AdminCommand::Create { email, role } => {
            let role = crate::account::Role::from_name(&role)
                .filter(|r| r.is_operator())
                .ok_or_else(|| {
                    format!("--role {role}: one of admin, support, technician, viewer")
                })?;
            let mut password = String::new();
            input
                .read_line(&mut password)
                .map_err(|e| format!("cannot read the password from standard input: {e}"))?;
            let password = password.trim_end_matches(['\r', '\n']);
            let user = accounts
                .register(&email, password, role)
                .await
                .map_err(|e| e.to_string())?;
            Ok(format!(
                "operator {} created (id {}, role {})",
                user.email,
                user.id,
                user.role.as_str()
            ))
        }
    }
}

/// Device administration.
#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// Register a device and print its credentials (shown once).
    Add {
        /// Device id: 1 to 32 of A-Z a-z 0-9 _ -.
        id: String,
        /// Number of doors.
        #[arg(long, default_value_t = 12)]
        doors: u16,
        /// Model name.
        #[arg(long, default_value = "generic")]
        model: String,
        /// Print one JSON line (the simulator's credentials file format) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Register COUNT devices named PREFIX followed by their number (from 1, zero-padded) in one
    /// transaction and print one JSON credentials line each (the simulator's credentials file
    /// format).
    AddMany {
        /// Name prefix.
        #[arg(long, default_value = "sim-")]
        prefix: String,
        /// How many.
        #[arg(long)]
        count: u32,
        /// Doors per device.
        #[arg(long, default_value_t = 12)]
        doors: u16,
        /// Model name.
        #[arg(long, default_value = "simulated")]
        model: String,
    },
    /// Revoke a device: its next login is refused and a live session is dropped.
    Revoke {
        /// Device id.
        id: String,
    },
    /// Issue a new secret; the old one keeps working for the grace period.
    Rotate {
        /// Device id.
        id: String,
        /// Hours the old secret stays valid.
        #[arg(long, default_value_t = 168)]
        grace_hours: u64,
        /// Print one JSON line instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List devices.
    List,
}

fn device_id(id: &str) -> Result<DeviceId, String> {
    DeviceId::new(id)
        .ok_or_else(|| format!("invalid device id {id:?}: use 1 to 32 of A-Z a-z 0-9 _ -"))
}

fn show(provisioned: &Provisioned, json: bool) -> String {
    if json {
        return provisioned.to_json().to_string();
    }
    let v = provisioned.to_json();
    format!(
        "device      {}\nmqtt user   {}\nmqtt pass   {}\ntag key     {}\n\nStore these now: the gateway keeps only a digest of the secret and cannot show it again.",
        v["device_id"].as_str().unwrap_or_default(),
        v["mqtt_username"].as_str().unwrap_or_default(),
        v["mqtt_password"].as_str().unwrap_or_default(),
        v["tag_key"].as_str().unwrap_or_default(),
    )
}

/// Runs one device subcommand and returns what to print.
pub async fn run_device_command(
    registry: &DeviceRegistry,
    command: DeviceCommand,
) -> Result<String, String> {
    match command {
        DeviceCommand::Add {
            id,
            doors,
            model,
            json,
        } => {
            let new = NewDevice {
                id: device_id(&id)?,
                model,
                door_count: doors,
            };
            let provisioned = registry.provision(new).await.map_err(|e| e.to_string())?;
            Ok(show(&provisioned, json))
        }
        DeviceCommand::AddMany {
            prefix,
            count,
            doors,
            model,
        } => {
            let width = count.to_string().len().max(4);
            let devices = (1..=count)
                .map(|n| {
                    Ok(NewDevice {
                        id: device_id(&format!("{prefix}{n:0width$}"))?,
                        model: model.clone(),
                        door_count: doors,
                    })
                })
                .collect::<Result<Vec<_>, String>>()?;
            let provisioned = registry
                .provision_batch(devices)
                .await
                .map_err(|e| e.to_string())?;
            Ok(provisioned
                .iter()
                .map(|p| p.to_json().to_string())
                .collect::<Vec<_>>()
                .join("\n"))
        }
        DeviceCommand::Revoke { id } => {
            registry
                .revoke(device_id(&id)?)
                .await
                .map_err(|e| e.to_string())?;
            Ok(format!("device {id} revoked"))
        }
        DeviceCommand::Rotate {
            id,
            grace_hours,
            json,
        } => {
            let grace = Duration::from_secs(grace_hours.saturating_mul(3600));
            let provisioned = registry
                .rotate(device_id(&id)?, grace)
                .await
                .map_err(|e| e.to_string())?;
            Ok(show(&provisioned, json))
        }
        DeviceCommand::List => {
            let devices = registry.list().await.map_err(|e| e.to_string())?;
            let mut out = format!(
                "{:<32} {:<12} {:>5} {:<8} {}",
                "ID", "MODEL", "DOORS", "STATE", "LAST SEEN"
            );
            for d in devices {
                let state = match (d.revoked_at.is_some(), d.online) {
                    (true, _) => "revoked",
                    (false, true) => "online",
                    (false, false) => "offline",
                };
                let seen = d
                    .last_seen_at
                    .map_or_else(|| "never".to_owned(), |t| t.to_rfc3339());
                out.push_str(&format!(
                    "\n{:<32} {:<12} {:>5} {:<8} {}",
                    d.id, d.model, d.door_count, state, seen
                ));
            }
            Ok(out)
        }
    }
}

/// Asks the gateway listening on `addr` for `/readyz`; `Ok` with the answer if it is ready.
pub async fn healthcheck(addr: std::net::SocketAddr) -> Result<String, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = if addr.ip().is_unspecified() {
        std::net::SocketAddr::from(([127, 0, 0, 1], addr.port()))
    } else {
        addr
    };
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream
            .write_all(
                format!("GET /readyz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await?;
        let mut answer = Vec::new();
        stream.take(64 * 1024).read_to_end(&mut answer).await?;
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&answer).into_owned())
    };
    let answer = tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .map_err(|_| format!("no answer from {addr} within 5 s"))?
        .map_err(|e| format!("cannot reach the gateway at {addr} (LOCKER_HTTP_ADDR): {e}"))?;
    let status = answer.lines().next().unwrap_or("").to_owned();
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.trim().to_owned())
        .unwrap_or_default();
    if status.split_whitespace().nth(1) == Some("200") {
        Ok(format!("ready: {body}"))
    } else {
        Err(format!("not ready ({status}): {body}"))
    }
}

/// Logs to standard error through `tracing`, filtered by `RUST_LOG` (`info` by default, the
/// broker's and the database driver's own logs from `warn`), as text or JSON lines; colours only
/// for a person at a terminal, never in a file or a log collector.
pub fn init_logging(format: crate::config::LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rumqttd=warn,sqlx=warn"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        crate::config::LogFormat::Text => logs.init(),
        crate::config::LogFormat::Json => logs.json().init(),
    }
}

/// A future that resolves on SIGINT or SIGTERM; the handlers are installed when this is called.
#[cfg(unix)]
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
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
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}
