//! `firmware campaign …`: start, list, show, pause, resume and cancel firmware campaigns from the
//! command line, with the same checks as `/v1/firmware/campaigns`. A running gateway's rollout
//! engine carries a campaign out.

use clap::Subcommand;
use uuid::Uuid;

use crate::firmware::campaign::{self, NewCampaign, Steer, Target};
use crate::firmware::plan::WaveSize;
use crate::storage::Storage;

/// Firmware campaigns.
// Parsed once per process from the command line: the large variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum CampaignCommand {
    /// Start a campaign of an image.
    Start {
        /// A name for operators.
        #[arg(long)]
        name: String,
        /// The image's id (`firmware list`).
        #[arg(long)]
        image: Uuid,
        /// The waves, comma-separated: a count (`10`) or a share (`25%`).
        #[arg(long, default_value = "100%")]
        waves: String,
        /// Percent of a wave installed before the next starts.
        #[arg(long, default_value_t = 100)]
        success: u8,
        /// A wave failing more than this percent stops the campaign.
        #[arg(long, default_value_t = 0)]
        error: u8,
        /// Only lockers of this model.
        #[arg(long)]
        model: Option<String>,
        /// Only lockers running this version.
        #[arg(long)]
        from_version: Option<String>,
        /// Only lockers whose id starts with this.
        #[arg(long)]
        id_prefix: Option<String>,
        /// Only these lockers, comma-separated.
        #[arg(long)]
        devices: Option<String>,
        /// Installs only in this daily window, local time: `HH:MM-HH:MM`.
        #[arg(long)]
        window: Option<String>,
        /// The window's time zone (IANA name; default LOCKER_TIME_ZONE).
        #[arg(long)]
        time_zone: Option<String>,
    },
    /// List the campaigns, newest first.
    List,
    /// One campaign's waves and lockers.
    Show {
        /// The campaign.
        id: i64,
    },
    /// Pause a running campaign.
    Pause {
        /// The campaign.
        id: i64,
    },
    /// Resume a paused campaign.
    Resume {
        /// The campaign.
        id: i64,
    },
    /// Cancel a campaign.
    Cancel {
        /// The campaign.
        id: i64,
    },
}

/// `10,25%,100%` as waves.
fn waves(text: &str) -> Result<Vec<WaveSize>, String> {
    text.split(',')
        .map(|w| {
            let w = w.trim();
            match w.strip_suffix('%') {
                Some(p) => p.parse().map(WaveSize::Percent),
                None => w.parse().map(WaveSize::Count),
            }
            .map_err(|_| format!("--waves: `{w}` is neither a count nor a percentage"))
        })
        .collect()
}

/// Runs one campaign subcommand and returns what to print.
pub async fn run_campaign_command(
    storage: &Storage,
    zone: &str,
    command: CampaignCommand,
) -> Result<String, String> {
    let steer = |id, how| async move {
        campaign::steer(storage, id, how)
            .await
            .map(|c| format!("campaign {} is {}", c.id, c.state))
            .map_err(|e| e.to_string())
    };
    match command {
        CampaignCommand::Start {
            name,
            image,
            waves: wave_text,
            success,
            error,
            model,
            from_version,
            id_prefix,
            devices,
            window,
            time_zone,
        } => {
            let (window_start, window_end) = match window.as_deref().map(|w| w.split_once('-')) {
                None => (None, None),
                Some(Some((start, end))) => (Some(start.to_owned()), Some(end.to_owned())),
                Some(None) => return Err("--window: HH:MM-HH:MM".into()),
            };
            let new = NewCampaign {
                name,
                image_id: image,
                target: Target {
                    model,
                    from_version,
                    id_prefix,
                    devices: devices.map(|d| d.split(',').map(|d| d.trim().to_owned()).collect()),
                },
                waves: waves(&wave_text)?,
                success_threshold: success,
                error_threshold: error,
                window_start,
                window_end,
                time_zone,
            };
            let started = campaign::create(storage, &new, zone, None)
                .await
                .map_err(|e| e.to_string())?;
            let sizes: Vec<String> = started.waves.iter().map(|w| w.size.to_string()).collect();
            Ok(format!(
                "campaign {} started: firmware {} to {} lockers in waves of {}",
                started.campaign.id,
                started.campaign.version,
                started.lockers.len(),
                sizes.join(", ")
            ))
        }
        CampaignCommand::List => {
            let campaigns = campaign::list(storage).await.map_err(|e| e.to_string())?;
            let mut out = format!(
                "{:>6} {:<10} {:<16} {:>7} {}",
                "ID", "STATE", "VERSION", "WAVES", "NAME"
            );
            for c in campaigns {
                out.push_str(&format!(
                    "\n{:>6} {:<10} {:<16} {:>3}/{:<3} {}",
                    c.id, c.state, c.version, c.waves_started, c.wave_count, c.name
                ));
            }
            Ok(out)
        }
        CampaignCommand::Show { id } => {
            let p = campaign::progress(storage, id)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("no campaign {id}"))?;
            let c = &p.campaign;
            let mut out = format!(
                "campaign {} ({}): {}, firmware {}",
                c.id, c.name, c.state, c.version
            );
            if let Some(reason) = &c.stop_reason {
                out.push_str(&format!(" ({reason})"));
            }
            for w in &p.waves {
                out.push_str(&format!(
                    "\nwave {}: {} lockers{}, {} installed, {} failed, {} under way, {} waiting",
                    w.wave + 1,
                    w.size,
                    if w.started { "" } else { " (not started)" },
                    w.installed,
                    w.failed,
                    w.in_progress,
                    w.waiting
                ));
            }
            for l in &p.lockers {
                out.push_str(&format!(
                    "\n  {:<32} wave {} {:<12} chunk {}/{} {}",
                    l.device_id,
                    l.wave + 1,
                    l.state,
                    l.next_chunk,
                    l.chunks,
                    l.reason.as_deref().unwrap_or("")
                ));
            }
            Ok(out)
        }
        CampaignCommand::Pause { id } => steer(id, Steer::Pause).await,
        CampaignCommand::Resume { id } => steer(id, Steer::Resume).await,
        CampaignCommand::Cancel { id } => steer(id, Steer::Cancel).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waves_are_counts_and_shares() {
        assert_eq!(
            waves("10, 25%,100%"),
            Ok(vec![
                WaveSize::Count(10),
                WaveSize::Percent(25),
                WaveSize::Percent(100)
            ])
        );
        assert!(waves("ten").is_err());
        assert!(waves("5%%").is_err());
    }
}
