//! `simulator conform`: the conformance tool's command line (see `simulator::conform`).

use std::time::Duration;

use firmware_protocol::{DeviceId, DeviceSecret};
use simulator::conform::{Reboot, Target, run_mqtt, run_serial};

/// Play a scripted gateway against a device under test and run the protocol's cases.
#[derive(Debug, clap::Args)]
pub struct ConformOptions {
    /// The serial port the lock board under test is on (for example /dev/ttyUSB0).
    #[arg(
        long,
        required_unless_present = "mqtt",
        conflicts_with = "mqtt",
        requires = "address"
    )]
    serial: Option<String>,
    /// The board's bus address (with --serial).
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=247))]
    address: Option<u8>,
    /// The MQTT broker (HOST:PORT, plain TCP) the locker under test connects to; the tool logs
    /// in beside it as the gateway would. A local Mosquitto with anonymous access will do.
    #[arg(long)]
    mqtt: Option<String>,
    /// The tool's login on the broker (an account that may publish on the locker's down topic
    /// and read its up and status topics); none: anonymous.
    #[arg(long, requires = "mqtt")]
    user: Option<String>,
    /// Its password (or the environment's LOCKER_CONFORM_PASSWORD).
    #[arg(
        long,
        env = "LOCKER_CONFORM_PASSWORD",
        hide_env_values = true,
        requires = "user"
    )]
    password: Option<String>,
    /// The board's device id.
    #[arg(long)]
    device: String,
    /// The board's provisioning secret, 64 hex digits (or the environment's
    /// LOCKER_DEVICE_SECRET, kept out of the process list).
    #[arg(long, env = "LOCKER_DEVICE_SECRET", hide_env_values = true)]
    secret: String,
    /// A door the tool may unlock: closed at the start, and opening when pulsed.
    #[arg(long, default_value_t = 1)]
    door: u16,
    /// How long an answer may take, in milliseconds (the gateway's default wait is 200).
    #[arg(long, default_value_t = 200)]
    wait_ms: u64,
    /// A shell command that power-cycles the device (a bench relay, say) and returns when it is
    /// powered again; without it the reboot case is not run.
    #[arg(long)]
    reboot_cmd: Option<String>,
}

/// Runs the cases and prints the report; the exit code says how it went (0 all passed, 1 a case
/// failed, 2 some cases could not run).
pub async fn conform(options: ConformOptions) -> Result<u8, String> {
    let device_id = DeviceId::new(&options.device)
        .ok_or_else(|| format!("--device: {:?} is not a device id", options.device))?;
    let secret =
        DeviceSecret::from_hex(options.secret.trim()).ok_or("--secret: not 64 hex digits")?;
    let reboot = options.reboot_cmd.map(|cmd| -> Reboot {
        Box::new(move || {
            let cmd = cmd.clone();
            Box::pin(async move {
                let status = tokio::process::Command::new("sh")
                    .args(["-c", &cmd])
                    .status()
                    .await
                    .map_err(|e| format!("--reboot-cmd cannot run: {e}"))?;
                if status.success() {
                    Ok(())
                } else {
                    Err(format!("--reboot-cmd failed: {status}"))
                }
            })
        })
    });
    let target = Target {
        device_id,
        key: secret.tag_key(),
        door: options.door,
        wait: Duration::from_millis(options.wait_ms),
        reboot,
    };
    let report = match (options.serial, options.address, options.mqtt) {
        (Some(path), Some(address), _) => run_serial(&path, address, target).await?,
        (_, _, Some(broker)) => {
            let login = options
                .user
                .map(|u| (u, options.password.unwrap_or_default()));
            run_mqtt(&broker, login, target).await?
        }
        _ => return Err("give --serial PATH --address N, or --mqtt HOST:PORT".into()),
    };
    print!("{}", report.to_text());
    Ok(report.exit_code())
}
