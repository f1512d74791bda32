//! `command …`: list the commands, queue an unlock or new settings for a locker, cancel a queued
//! command.

use std::time::Duration;

use clap::Subcommand;

use super::device_id;

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
