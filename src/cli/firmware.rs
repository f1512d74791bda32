//! `firmware …`: upload a signed firmware image from a file, list the images (the same checks as
//! `POST /v1/firmware`: the vendors' keys of `LOCKER_FIRMWARE_KEYS`, `LOCKER_FIRMWARE_MAX_BYTES`).

use clap::Subcommand;

use crate::config::FirmwareSettings;
use crate::firmware::{self, NewImage};
use crate::storage::Storage;

/// Firmware images.
#[derive(Debug, Subcommand)]
pub enum FirmwareCommand {
    /// Check a vendor-signed image against LOCKER_FIRMWARE_KEYS and store it.
    Upload {
        /// The image file.
        #[arg(long)]
        file: std::path::PathBuf,
        /// Its version, as lockers announce it (1 to 32 printable ASCII characters).
        #[arg(long)]
        version: String,
        /// The models it fits, comma-separated.
        #[arg(long)]
        models: String,
        /// The vendor's Ed25519 signature of its manifest (PROTOCOL.md §11), 128 hex digits.
        #[arg(long)]
        signature: String,
    },
    /// List the images, newest first.
    List,
    /// Firmware campaigns: start, list, show, pause, resume, cancel.
    Campaign {
        /// What to do.
        #[command(subcommand)]
        command: super::campaigns::CampaignCommand,
    },
}

/// Runs one firmware subcommand and returns what to print.
pub async fn run_firmware_command(
    storage: &Storage,
    settings: &FirmwareSettings,
    zone: &str,
    command: FirmwareCommand,
) -> Result<String, String> {
    match command {
        FirmwareCommand::Campaign { command } => {
            super::campaigns::run_campaign_command(storage, zone, command).await
        }
        FirmwareCommand::Upload {
            file,
            version,
            models,
            signature,
        } => {
            // Refuse a file larger than allowed before reading it whole.
            let size = std::fs::metadata(&file)
                .map_err(|e| format!("cannot read {}: {e}", file.display()))?
                .len();
            if size > settings.max_bytes as u64 {
                return Err(format!(
                    "{} is {size} bytes; LOCKER_FIRMWARE_MAX_BYTES is {}",
                    file.display(),
                    settings.max_bytes
                ));
            }
            let bytes =
                std::fs::read(&file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            let signature = hex::decode(signature.trim())
                .ok()
                .filter(|s| s.len() == 64)
                .ok_or("--signature: 128 hex digits")?;
            let new = NewImage {
                version: version.trim(),
                models: models
                    .split(',')
                    .map(|m| m.trim().to_owned())
                    .filter(|m| !m.is_empty())
                    .collect(),
                bytes: &bytes,
                signature: &signature,
            };
            let image = firmware::upload(storage, settings, &new, None)
                .await
                .map_err(|e| e.to_string())?;
            Ok(format!(
                "firmware {} stored (id {}, {} bytes, sha256 {}, signed by {})",
                image.version, image.id, image.size, image.sha256, image.key_name
            ))
        }
        FirmwareCommand::List => {
            let images = firmware::list(storage).await.map_err(|e| e.to_string())?;
            let mut out = format!(
                "{:<32} {:>9} {:<20} {:<64} {}",
                "VERSION", "BYTES", "KEY", "SHA256", "MODELS"
            );
            for i in images {
                out.push_str(&format!(
                    "\n{:<32} {:>9} {:<20} {:<64} {}",
                    i.version,
                    i.size,
                    i.key_name,
                    i.sha256,
                    i.models.join(",")
                ));
            }
            Ok(out)
        }
    }
}
