//! Firmware campaigns as operators make and steer them: a target (model, current version, id
//! prefix, or a list), waves, thresholds, a maintenance window; pause, resume, cancel; progress
//! per wave and per locker. The engine that runs them is `rollout`; its statements are in
//! [`super::updates`]. This module owns `firmware_campaigns` and `firmware_updates` with it.

use chrono::{DateTime, NaiveTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::plan::{WaveSize, wave_sizes};
use crate::events::{Append, Event};
use crate::storage::{Storage, in_work, on_pool};

/// Which lockers a campaign updates: those matching every filter given, that announced update
/// support, fit the image's models, do not run its version yet and are in no other update.
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
pub struct Target {
    /// Lockers of this model.
    pub model: Option<String>,
    /// Lockers running this firmware version now.
    pub from_version: Option<String>,
    /// Lockers whose id starts with this.
    pub id_prefix: Option<String>,
    /// These lockers (up to 10,000).
    pub devices: Option<Vec<String>>,
}

/// A campaign to start.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct NewCampaign {
    /// A name for operators (1 to 100 characters).
    pub name: String,
    /// The image to install.
    pub image_id: Uuid,
    /// Which lockers.
    #[serde(default)]
    pub target: Target,
    /// The waves, in order (1 to 100); the last takes the lockers the others left.
    pub waves: Vec<WaveSize>,
    /// The share of a wave installed (percent) before the next starts.
    pub success_threshold: u8,
    /// A wave failing more than this share (percent) stops the campaign by itself.
    pub error_threshold: u8,
    /// Installs only from this local time (`HH:MM`), with `window_end`; neither: any time.
    pub window_start: Option<String>,
    /// Until this local time (`HH:MM`; before `window_start`: across midnight).
    pub window_end: Option<String>,
    /// The window's time zone (IANA name); default the gateway's `LOCKER_TIME_ZONE`.
    pub time_zone: Option<String>,
}

/// A campaign, as operators see it.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Campaign {
    /// Its id.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// The image it installs.
    pub image_id: Uuid,
    /// The image's version.
    pub version: String,
    /// Waves planned.
    pub wave_count: i32,
    /// Waves started so far.
    pub waves_started: i32,
    /// The success threshold, percent.
    pub success_pct: i32,
    /// The error threshold, percent.
    pub error_pct: i32,
    /// The maintenance window's start (local `HH:MM`), if any.
    pub window_start: Option<String>,
    /// Its end.
    pub window_end: Option<String>,
    /// Its time zone.
    pub time_zone: String,
    /// `running`, `paused`, `stopped` (by its error threshold), `cancelled` or `finished`.
    pub state: String,
    /// Why it stopped.
    pub stop_reason: Option<String>,
    /// Who started it.
    pub created_by: Option<Uuid>,
    /// When.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// One wave's progress.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct WaveProgress {
    /// The wave (0 first).
    pub wave: i32,
    /// Lockers in it.
    pub size: i64,
    /// Started (its lockers are offered the image).
    pub started: bool,
    /// Not offered yet.
    pub waiting: i64,
    /// Offered, downloading, downloaded or installing.
    pub in_progress: i64,
    /// Installed and confirmed.
    pub installed: i64,
    /// Failed or rolled back.
    pub failed: i64,
    /// Cancelled before they began.
    pub cancelled: i64,
}

/// One locker's update.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct LockerUpdate {
    /// The update's id (its `update_id` on the wire).
    pub update_id: i64,
    /// The locker.
    pub device_id: String,
    /// Its wave.
    pub wave: i32,
    /// `waiting`, `offered`, `downloading`, `downloaded`, `installing`, `installed`, `failed`,
    /// `rolled_back` or `cancelled`.
    pub state: String,
    /// The next chunk it asked for.
    pub next_chunk: i64,
    /// Chunks in all.
    pub chunks: i64,
    /// Why it failed or was refused.
    pub reason: Option<String>,
    /// The version it ran when the campaign began.
    pub from_version: Option<String>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
}

/// A campaign with its waves and lockers.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CampaignProgress {
    /// The campaign.
    #[serde(flatten)]
    pub campaign: Campaign,
    /// Each wave.
    pub waves: Vec<WaveProgress>,
    /// Each locker.
    pub lockers: Vec<LockerUpdate>,
}

/// Why a campaign was not started or changed.
#[derive(Debug, thiserror::Error)]
pub enum CampaignError {
    /// A field is wrong.
    #[error("{field}: {why}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong.
        why: String,
    },
    /// No such image.
    #[error("no such firmware image")]
    UnknownImage,
    /// No locker matches the target.
    #[error(
        "no locker matches the target (update support announced, a model the image fits, another version, in no other update)"
    )]
    NoLockers,
    /// No such campaign.
    #[error("no such campaign")]
    NotFound,
    /// The campaign is not in a state that allows this.
    #[error("the campaign is {0}")]
    WrongState(String),
    /// The database failed.
    #[error(transparent)]
    Storage(#[from] sqlx::Error),
}

fn invalid(field: &'static str, why: impl Into<String>) -> CampaignError {
    CampaignError::Invalid {
        field,
        why: why.into(),
    }
}

fn parse_time(field: &'static str, text: &str) -> Result<NaiveTime, CampaignError> {
    NaiveTime::parse_from_str(text, "%H:%M").map_err(|_| invalid(field, "a local time HH:MM"))
}

fn check(new: &NewCampaign) -> Result<(), CampaignError> {
    if new.name.trim().is_empty() || new.name.chars().count() > 100 {
        return Err(invalid("name", "1 to 100 characters"));
    }
    if new.waves.is_empty() || new.waves.len() > 100 {
        return Err(invalid("waves", "1 to 100 waves"));
    }
    for wave in &new.waves {
        match *wave {
            WaveSize::Count(0) => return Err(invalid("waves", "a wave of 0 lockers")),
            WaveSize::Percent(p) if p == 0 || p > 100 => {
                return Err(invalid("waves", "a share from 1 to 100 percent"));
            }
            _ => {}
        }
    }
    if new.success_threshold > 100 || new.error_threshold > 100 {
        return Err(invalid("thresholds", "percentages from 0 to 100"));
    }
    match (&new.window_start, &new.window_end) {
        (Some(start), Some(end)) => {
            parse_time("window_start", start)?;
            parse_time("window_end", end)?;
        }
        (None, None) => {}
        _ => {
            return Err(invalid(
                "window",
                "give both window_start and window_end, or neither",
            ));
        }
    }
    if let Some(zone) = &new.time_zone {
        zone.parse::<chrono_tz::Tz>()
            .map_err(|_| invalid("time_zone", "an IANA time zone name"))?;
    }
    if new
        .target
        .devices
        .as_ref()
        .is_some_and(|d| d.len() > 10_000)
    {
        return Err(invalid("target.devices", "at most 10,000 lockers"));
    }
    Ok(())
}

#[derive(sqlx::FromRow)]
struct Candidate {
    id: String,
    model: String,
    firmware: Option<String>,
}

/// Starts a campaign by operator `by`: its lockers chosen, split into waves, in one unit of work
/// with the event `firmware.campaign_created`. The first wave starts at the engine's next step.
pub async fn create(
    storage: &Storage,
    new: &NewCampaign,
    default_zone: &str,
    by: Option<Uuid>,
) -> Result<CampaignProgress, CampaignError> {
    check(new)?;
    let image = super::get(storage, new.image_id)
        .await?
        .ok_or(CampaignError::UnknownImage)?;
    const CANDIDATES: &str = "SELECT d.id, d.model, d.firmware FROM devices d
         WHERE d.revoked_at IS NULL AND d.update_chunk IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM firmware_updates u WHERE u.device_id = d.id
                           AND u.state IN ('waiting', 'offered', 'downloading', 'downloaded',
                                           'installing'))
         ORDER BY d.id";
    let candidates: Vec<Candidate> = on_pool!(storage, |pool| sqlx::query_as(CANDIDATES)
        .fetch_all(pool)
        .await?);
    let t = &new.target;
    let listed: Option<std::collections::HashSet<&str>> = t
        .devices
        .as_ref()
        .map(|d| d.iter().map(String::as_str).collect());
    let chosen: Vec<Candidate> = candidates
        .into_iter()
        .filter(|c| image.models.contains(&c.model))
        .filter(|c| c.firmware.as_deref() != Some(image.version.as_str()))
        .filter(|c| t.model.as_ref().is_none_or(|m| *m == c.model))
        .filter(|c| {
            t.from_version
                .as_ref()
                .is_none_or(|v| c.firmware.as_ref() == Some(v))
        })
        .filter(|c| {
            t.id_prefix
                .as_ref()
                .is_none_or(|p| c.id.starts_with(p.as_str()))
        })
        .filter(|c| listed.as_ref().is_none_or(|l| l.contains(c.id.as_str())))
        .collect();
    if chosen.is_empty() {
        return Err(CampaignError::NoLockers);
    }
    let sizes = wave_sizes(chosen.len(), &new.waves);
    let now = Utc::now();
    let zone = new
        .time_zone
        .clone()
        .unwrap_or_else(|| default_zone.to_owned());
    let waves = serde_json::to_string(&new.waves).map_err(|e| invalid("waves", e.to_string()))?;
    const INSERT: &str = "INSERT INTO firmware_campaigns (name, image_id, waves, wave_count,
            success_pct, error_pct, window_start, window_end, time_zone, created_by, created_at,
            updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) RETURNING id";
    const UPDATE: &str = "INSERT INTO firmware_updates (campaign_id, device_id, wave, from_version,
            updated_at) VALUES ($1, $2, $3, $4, $5)";
    let mut work = storage.begin().await?;
    let id: i64 = in_work!(&mut work, |conn| sqlx::query_scalar(INSERT)
        .bind(new.name.trim())
        .bind(new.image_id)
        .bind(&waves)
        .bind(sizes.len() as i32)
        .bind(i32::from(new.success_threshold))
        .bind(i32::from(new.error_threshold))
        .bind(&new.window_start)
        .bind(&new.window_end)
        .bind(&zone)
        .bind(by)
        .bind(now)
        .fetch_one(conn)
        .await?);
    let mut lockers = chosen.iter();
    for (wave, size) in sizes.iter().enumerate() {
        for c in lockers.by_ref().take(*size) {
            in_work!(&mut work, |conn| sqlx::query(UPDATE)
                .bind(id)
                .bind(&c.id)
                .bind(wave as i32)
                .bind(&c.firmware)
                .bind(now)
                .execute(conn)
                .await?
                .rows_affected());
        }
    }
    let event = Event::new(
        "firmware.campaign_created",
        "firmware_campaign",
        &id.to_string(),
        serde_json::json!({
            "campaign_id": id, "name": new.name.trim(), "image_id": image.id,
            "version": image.version, "lockers": chosen.len(), "waves": sizes,
        }),
    );
    work.append(&event).await?;
    work.commit().await?;
    progress(storage, id).await?.ok_or(CampaignError::NotFound)
}

const COLUMNS: &str = "c.id, c.name, c.image_id, i.version, c.wave_count, c.waves_started,
    c.success_pct, c.error_pct, c.window_start, c.window_end, c.time_zone, c.state, c.stop_reason,
    c.created_by, c.created_at, c.updated_at";

/// Every campaign, newest first.
pub async fn list(storage: &Storage) -> Result<Vec<Campaign>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM firmware_campaigns c JOIN firmware_images i ON i.id = c.image_id
         ORDER BY c.id DESC"
    );
    Ok(on_pool!(storage, |pool| sqlx::query_as(
        sqlx::AssertSqlSafe(sql.clone())
    )
    .fetch_all(pool)
    .await?))
}

/// Campaign `id`.
pub async fn get(storage: &Storage, id: i64) -> Result<Option<Campaign>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM firmware_campaigns c JOIN firmware_images i ON i.id = c.image_id
         WHERE c.id = $1"
    );
    Ok(on_pool!(storage, |pool| sqlx::query_as(
        sqlx::AssertSqlSafe(sql.clone())
    )
    .bind(id)
    .fetch_optional(pool)
    .await?))
}

/// Campaign `id` with each wave's and each locker's progress.
pub async fn progress(storage: &Storage, id: i64) -> Result<Option<CampaignProgress>, sqlx::Error> {
    let Some(campaign) = get(storage, id).await? else {
        return Ok(None);
    };
    const LOCKERS: &str = "SELECT id AS update_id, device_id, wave, state, next_chunk, chunks,
            reason, from_version, updated_at, finished_at
         FROM firmware_updates WHERE campaign_id = $1 ORDER BY wave, device_id";
    let lockers: Vec<LockerUpdate> = on_pool!(storage, |pool| sqlx::query_as(LOCKERS)
        .bind(id)
        .fetch_all(pool)
        .await?);
    let mut waves: Vec<WaveProgress> = (0..campaign.wave_count)
        .map(|wave| WaveProgress {
            wave,
            started: wave < campaign.waves_started,
            ..WaveProgress::default()
        })
        .collect();
    for locker in &lockers {
        let Some(wave) = waves.get_mut(locker.wave as usize) else {
            continue;
        };
        wave.size += 1;
        match locker.state.as_str() {
            "waiting" => wave.waiting += 1,
            "installed" => wave.installed += 1,
            "failed" | "rolled_back" => wave.failed += 1,
            "cancelled" => wave.cancelled += 1,
            _ => wave.in_progress += 1,
        }
    }
    Ok(Some(CampaignProgress {
        campaign,
        waves,
        lockers,
    }))
}

/// What an operator does to a campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Steer {
    /// No new offers or installs until resumed (updates under way finish their download).
    Pause,
    /// Go on.
    Resume,
    /// End it: lockers not installing yet are cancelled.
    Cancel,
}

/// Pauses, resumes or cancels campaign `id`, with its event, in one unit of work.
pub async fn steer(storage: &Storage, id: i64, steer: Steer) -> Result<Campaign, CampaignError> {
    let (from, to, event) = match steer {
        Steer::Pause => ("'running'", "paused", "firmware.campaign_paused"),
        Steer::Resume => ("'paused'", "running", "firmware.campaign_resumed"),
        Steer::Cancel => (
            "'running', 'paused'",
            "cancelled",
            "firmware.campaign_cancelled",
        ),
    };
    let sql = format!(
        "UPDATE firmware_campaigns SET state = $2, updated_at = $3
         WHERE id = $1 AND state IN ({from})"
    );
    let now = Utc::now();
    let mut work = storage.begin().await?;
    let changed = in_work!(&mut work, |conn| sqlx::query(sqlx::AssertSqlSafe(
        sql.clone()
    ))
    .bind(id)
    .bind(to)
    .bind(now)
    .execute(conn)
    .await?
    .rows_affected());
    if changed == 0 {
        drop(work);
        return match get(storage, id).await? {
            Some(c) => Err(CampaignError::WrongState(c.state)),
            None => Err(CampaignError::NotFound),
        };
    }
    if steer == Steer::Cancel {
        super::updates::cancel_waiting(&mut work, id, now).await?;
    }
    let event = Event::new(
        event,
        "firmware_campaign",
        &id.to_string(),
        serde_json::json!({ "campaign_id": id, "state": to }),
    );
    work.append(&event).await?;
    work.commit().await?;
    get(storage, id).await?.ok_or(CampaignError::NotFound)
}
