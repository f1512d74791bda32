//! The command line: `serve` (the default) runs the gateway; `device …` provisions, revokes and
//! rotates devices; `migrate` brings the database schema up to date.

use std::time::Duration;

use clap::{Parser, Subcommand};
use firmware_protocol::DeviceId;

use crate::device::{DeviceRegistry, NewDevice, Provisioned};

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

/// Command administration.
#[derive(Debug, Subcommand)]
pub enum CommandCommand {
    /// List commands, newest first.
    List {
        /// Only this device's.
        #[arg(long)]
        device: Option<String>,
        /// Only in this state (pending, sent, executed, refused, expired, cancelled, unknown).
        #[arg(long)]
        state: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Queue an unlock for a locker: the running gateway sends it at once if the locker is online,
    /// else in its next session, unless its time to live passes first.
    Unlock {
        /// The device.
        device: String,
        /// The door.
        #[arg(long)]
        door: u16,
        /// Seconds the command may wait.
        #[arg(long, default_value_t = 600)]
        ttl_secs: u64,
    },
    /// Queue new settings for a locker (a `configure` command), checked against the protocol's
    /// ranges: sent as an unlock is, its answer recorded.
    Configure {
        /// The device.
        device: String,
        /// Seconds between heartbeats (MQTT): 5 to 3600.
        #[arg(long)]
        heartbeat_secs: u16,
        /// How long after a pulse an opening counts as commanded (ms): 1000 to 60000.
        #[arg(long)]
        open_window_ms: u16,
        /// How long the lock's relay is energised (ms): 50 to 5000.
        #[arg(long)]
        pulse_ms: u16,
        /// Door-ajar alarm after this many seconds: 0 (off) or 10 to 3600.
        #[arg(long)]
        ajar_alarm_secs: u16,
        /// Seconds the command may wait.
        #[arg(long, default_value_t = 600)]
        ttl_secs: u64,
    },
    /// Cancel a queued command that has not been sent yet.
    Cancel {
        /// The command id.
        id: i64,
    },
}

/// Queues `command` for `device`, to wait at most `ttl_secs`; what to print.
async fn enqueue(
    storage: &crate::storage::Storage,
    device: &str,
    command: &crate::command::Command,
    ttl_secs: u64,
) -> Result<String, String> {
    let device = device_id(device)?;
    let ttl = Duration::from_secs(ttl_secs);
    let id = crate::command::queue::enqueue(storage, &device, command, ttl)
        .await
        .map_err(|e| e.to_string())?;
    Ok(format!("command {id} queued"))
}

/// Runs one command subcommand and returns what to print.
pub async fn run_command_command(
    storage: &crate::storage::Storage,
    command: CommandCommand,
) -> Result<String, String> {
    use crate::command::queue;
    match command {
        CommandCommand::List {
            device,
            state,
            limit,
        } => {
            let rows = queue::list(storage, device.as_deref(), state.as_deref(), limit)
                .await
                .map_err(|e| e.to_string())?;
            let mut out = format!(
                "{:>8} {:<32} {:<9} {:>4} {:<9} {:<6} {}",
                "ID", "DEVICE", "KIND", "DOOR", "STATE", "QUEUED", "EXPIRES"
            );
            for r in rows {
                let door = r.door.map_or_else(|| "-".to_owned(), |d| d.to_string());
                let expires = r
                    .expires_at
                    .map_or_else(|| "-".to_owned(), |t| t.to_rfc3339());
                out.push_str(&format!(
                    "\n{:>8} {:<32} {:<9} {:>4} {:<9} {:<6} {}",
                    r.id, r.device_id, r.kind, door, r.state, r.queued, expires
                ));
            }
            Ok(out)
        }
        CommandCommand::Unlock {
            device,
            door,
            ttl_secs,
        } => {
            let command = crate::command::Command::Unlock { door };
            enqueue(storage, &device, &command, ttl_secs).await
        }
        CommandCommand::Configure {
            device,
            heartbeat_secs,
            open_window_ms,
            pulse_ms,
            ajar_alarm_secs,
            ttl_secs,
        } => {
            let command = crate::command::Command::configure(
                heartbeat_secs,
                open_window_ms,
                pulse_ms,
                ajar_alarm_secs,
            )
            .map_err(|e| e.to_string())?;
            enqueue(storage, &device, &command, ttl_secs).await
        }
        CommandCommand::Cancel { id } => match queue::cancel(storage, id).await {
            Ok(true) => Ok(format!("command {id} cancelled")),
            Ok(false) => Err(format!(
                "command {id} is not a queued command waiting to be sent"
            )),
            Err(e) => Err(e.to_string()),
        },
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
