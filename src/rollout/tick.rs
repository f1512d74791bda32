//! The engine's loop, and whether a campaign's maintenance window is open.

use std::time::Duration;

use chrono::Utc;

use super::Rollout;
use crate::firmware::plan::Window;
use crate::firmware::updates::Running;

/// Whether `campaign`'s maintenance window is open now (no window: always).
pub(super) fn window_open(campaign: &Running) -> bool {
    let (Some(start), Some(end)) = (&campaign.window_start, &campaign.window_end) else {
        return true;
    };
    let parse = |t: &str| chrono::NaiveTime::parse_from_str(t, "%H:%M").ok();
    let (Some(start), Some(end)) = (parse(start), parse(end)) else {
        return false;
    };
    let zone: chrono_tz::Tz = campaign.time_zone.parse().unwrap_or(chrono_tz::UTC);
    Window { start, end }.is_open(&zone, Utc::now())
}

/// Runs the engine every `tick` until `shutdown`.
pub async fn run(rollout: Rollout, tick: Duration, shutdown: tokio_util::sync::CancellationToken) {
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = interval.tick() => {
                if let Err(e) = rollout.step().await {
                    tracing::error!(error = %e, "the firmware rollout step failed");
                }
            }
        }
    }
}
