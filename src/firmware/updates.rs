//! The statements the rollout engine runs on campaigns and each locker's update: waves started,
//! campaigns stopped or finished, offers and installs due, chunks asked for, reports recorded,
//! with their `firmware.*` events. Every change is conditional on the state it expects, so the
//! engines of several gateways may run at once.

use chrono::{DateTime, Utc};
use firmware_protocol::{DeviceId, UpdateFailure, UpdateStatus};
use uuid::Uuid;

use super::plan::WaveTally;
use crate::events::{Append, Event};
use crate::storage::{Storage, UnitOfWork, in_work, on_pool};

/// The states of an update under way on its locker.
const ACTIVE: &str = "'offered', 'downloading', 'downloaded', 'installing'";

/// A running campaign, as the engine needs it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Running {
    /// Its id.
    pub id: i64,
    /// Its image.
    pub image_id: Uuid,
    /// Waves planned.
    pub wave_count: i32,
    /// Waves started.
    pub waves_started: i32,
    /// Success threshold, percent.
    pub success_pct: i32,
    /// Error threshold, percent.
    pub error_pct: i32,
    /// Maintenance window start (local `HH:MM`).
    pub window_start: Option<String>,
    /// Its end.
    pub window_end: Option<String>,
    /// Its zone.
    pub time_zone: String,
}

/// Campaigns running now.
pub async fn running(storage: &Storage) -> Result<Vec<Running>, sqlx::Error> {
    const SQL: &str = "SELECT id, image_id, wave_count, waves_started, success_pct, error_pct,
            window_start, window_end, time_zone
         FROM firmware_campaigns WHERE state = 'running' ORDER BY id";
    Ok(on_pool!(storage, |pool| sqlx::query_as(SQL)
        .fetch_all(pool)
        .await?))
}

/// The tally of each started wave of `campaign`, in order.
pub async fn tallies(storage: &Storage, campaign: &Running) -> Result<Vec<WaveTally>, sqlx::Error> {
    const SQL: &str = "SELECT wave, COUNT(*),
            SUM(CASE WHEN state = 'installed' THEN 1 ELSE 0 END),
            SUM(CASE WHEN state IN ('failed', 'rolled_back') THEN 1 ELSE 0 END)
         FROM firmware_updates WHERE campaign_id = $1 AND wave < $2 AND state <> 'cancelled'
         GROUP BY wave ORDER BY wave";
    let rows: Vec<(i32, i64, i64, i64)> = on_pool!(storage, |pool| sqlx::query_as(SQL)
        .bind(campaign.id)
        .bind(campaign.waves_started)
        .fetch_all(pool)
        .await?);
    let mut tallies = vec![WaveTally::default(); campaign.waves_started.max(0) as usize];
    for (wave, size, installed, failed) in rows {
        if let Some(t) = tallies.get_mut(wave as usize) {
            *t = WaveTally {
                size: size as usize,
                installed: installed as usize,
                failed: failed as usize,
            };
        }
    }
    Ok(tallies)
}

fn campaign_event(kind: &str, id: i64, data: serde_json::Value) -> Event {
    Event::new(kind, "firmware_campaign", &id.to_string(), data)
}

/// Starts wave `wave` of `campaign` (if no other engine did): its lockers may be offered the
/// image from now on. Whether this call started it.
pub async fn start_wave(storage: &Storage, campaign: i64, wave: i32) -> Result<bool, sqlx::Error> {
    const SQL: &str = "UPDATE firmware_campaigns SET waves_started = $2 + 1, updated_at = $3
         WHERE id = $1 AND waves_started = $2 AND state = 'running'";
    let mut work = storage.begin().await?;
    let started = in_work!(&mut work, |conn| sqlx::query(SQL)
        .bind(campaign)
        .bind(wave)
        .bind(Utc::now())
        .execute(conn)
        .await?
        .rows_affected())
        == 1;
    if started {
        let data = serde_json::json!({ "campaign_id": campaign, "wave": wave });
        work.append(&campaign_event("firmware.wave_started", campaign, data))
            .await?;
        work.commit().await?;
    }
    Ok(started)
}

/// Ends a running campaign: `stopped` by its error threshold (with why; lockers not installing
/// yet are cancelled) or `finished`. Whether this call ended it.
pub async fn end(
    storage: &Storage,
    campaign: i64,
    stopped: Option<String>,
) -> Result<bool, sqlx::Error> {
    const SQL: &str = "UPDATE firmware_campaigns SET state = $2, stop_reason = $3, updated_at = $4
         WHERE id = $1 AND state = 'running'";
    let now = Utc::now();
    let (state, kind) = match stopped {
        Some(_) => ("stopped", "firmware.campaign_stopped"),
        None => ("finished", "firmware.campaign_finished"),
    };
    let mut work = storage.begin().await?;
    let ended = in_work!(&mut work, |conn| sqlx::query(SQL)
        .bind(campaign)
        .bind(state)
        .bind(&stopped)
        .bind(now)
        .execute(conn)
        .await?
        .rows_affected())
        == 1;
    if ended {
        if stopped.is_some() {
            cancel_waiting(&mut work, campaign, now).await?;
        }
        let data =
            serde_json::json!({ "campaign_id": campaign, "state": state, "reason": stopped });
        work.append(&campaign_event(kind, campaign, data)).await?;
        work.commit().await?;
    }
    Ok(ended)
}

/// Cancels the updates of `campaign` not installing yet (a locker holding a downloaded image
/// drops it when offered another update), in `work`.
pub(super) async fn cancel_waiting(
    work: &mut UnitOfWork,
    campaign: i64,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    const SQL: &str = "UPDATE firmware_updates SET state = 'cancelled', updated_at = $2,
            finished_at = $2
         WHERE campaign_id = $1
           AND state IN ('waiting', 'offered', 'downloading', 'downloaded')";
    in_work!(work, |conn| sqlx::query(SQL)
        .bind(campaign)
        .bind(now)
        .execute(conn)
        .await?
        .rows_affected());
    Ok(())
}

/// A locker due an offer (its first, or again: a locker that went quiet resumes when offered the
/// same update).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DueOffer {
    /// The update.
    pub update_id: i64,
    /// The locker.
    pub device_id: String,
    /// Its session now.
    pub session: i64,
    /// The largest chunk its hello announced.
    pub update_chunk: i32,
}

/// Up to `limit` lockers of `campaign`'s started waves to offer the image now: online, waiting
/// (never offered, or refused `busy` before `retry_before`), or offered and quiet since
/// `quiet_before`.
pub async fn due_offers(
    storage: &Storage,
    campaign: &Running,
    retry_before: DateTime<Utc>,
    quiet_before: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<DueOffer>, sqlx::Error> {
    const SQL: &str = "SELECT u.id AS update_id, u.device_id, d.session, d.update_chunk
         FROM firmware_updates u JOIN devices d ON d.id = u.device_id
         WHERE u.campaign_id = $1 AND u.wave < $2 AND d.online AND d.session IS NOT NULL
           AND d.update_chunk IS NOT NULL
           AND ((u.state = 'waiting' AND (u.offered_at IS NULL OR u.offered_at < $3))
             OR (u.state IN ('offered', 'downloading') AND u.updated_at < $4))
         ORDER BY u.id LIMIT $5";
    Ok(on_pool!(storage, |pool| sqlx::query_as(SQL)
        .bind(campaign.id)
        .bind(campaign.waves_started)
        .bind(retry_before)
        .bind(quiet_before)
        .bind(limit)
        .fetch_all(pool)
        .await?))
}

/// Records that update `id` is offered in chunks of `chunk_size` (`chunks` in all). Whether it
/// still wanted an offer (and no other update of the locker is under way).
pub async fn offered(
    storage: &Storage,
    id: i64,
    chunk_size: u16,
    chunks: u32,
) -> Result<bool, sqlx::Error> {
    const SQL: &str = "UPDATE firmware_updates
         SET state = CASE WHEN state = 'waiting' THEN 'offered' ELSE state END,
             chunk_size = $2, chunks = $3, offered_at = $4, updated_at = $4
         WHERE id = $1 AND state IN ('waiting', 'offered', 'downloading')";
    let result = on_pool!(storage, |pool| sqlx::query(SQL)
        .bind(id)
        .bind(i32::from(chunk_size))
        .bind(i64::from(chunks))
        .bind(Utc::now())
        .execute(pool)
        .await
        .map(|done| done.rows_affected()));
    match result {
        Ok(rows) => Ok(rows == 1),
        // Another update of this locker is under way (the unique index): not now.
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(false),
        Err(e) => Err(e),
    }
}

/// A locker whose image is downloaded, due its install.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DueInstall {
    /// The update.
    pub update_id: i64,
    /// The locker.
    pub device_id: String,
    /// Its session now.
    pub session: i64,
}

/// Up to `limit` downloaded updates of `campaign` whose locker is online with no command in
/// flight.
pub async fn due_installs(
    storage: &Storage,
    campaign: i64,
    limit: i64,
) -> Result<Vec<DueInstall>, sqlx::Error> {
    const SQL: &str = "SELECT u.id AS update_id, u.device_id, d.session
         FROM firmware_updates u JOIN devices d ON d.id = u.device_id
         WHERE u.campaign_id = $1 AND u.state = 'downloaded' AND d.online
           AND d.session IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM commands c WHERE c.device_id = u.device_id
                           AND c.state IN ('pending', 'sent'))
         ORDER BY u.id LIMIT $2";
    Ok(on_pool!(storage, |pool| sqlx::query_as(SQL)
        .bind(campaign)
        .bind(limit)
        .fetch_all(pool)
        .await?))
}

/// Fails the updates of `campaign` installing since before `before` whose locker never reported
/// (bricked, or gone), with `firmware.update_finished` (`no_report`): its wave can settle. How
/// many.
pub async fn installs_overdue(
    storage: &Storage,
    campaign: i64,
    before: DateTime<Utc>,
) -> Result<usize, sqlx::Error> {
    const SQL: &str = "UPDATE firmware_updates SET state = 'failed', reason = 'no_report',
            updated_at = $3, finished_at = $3
         WHERE campaign_id = $1 AND state = 'installing' AND updated_at < $2
         RETURNING id, device_id";
    let now = Utc::now();
    let mut work = storage.begin().await?;
    let failed: Vec<(i64, String)> = in_work!(&mut work, |conn| sqlx::query_as(SQL)
        .bind(campaign)
        .bind(before)
        .bind(now)
        .fetch_all(conn)
        .await?);
    for (id, device) in &failed {
        let event = Event::new(
            "firmware.update_finished",
            "firmware_update",
            &id.to_string(),
            serde_json::json!({
                "update_id": id, "campaign_id": campaign, "device_id": device,
                "result": "failed", "reason": "no_report",
            }),
        );
        work.append(&event).await?;
    }
    work.commit().await?;
    Ok(failed.len())
}

/// Marks update `id` installing (from downloaded). Whether it was downloaded.
pub async fn installing(storage: &Storage, id: i64) -> Result<bool, sqlx::Error> {
    const SQL: &str = "UPDATE firmware_updates SET state = 'installing', updated_at = $2
         WHERE id = $1 AND state = 'downloaded'";
    Ok(on_pool!(storage, |pool| sqlx::query(SQL)
        .bind(id)
        .bind(Utc::now())
        .execute(pool)
        .await?
        .rows_affected())
        == 1)
}

/// What serving a chunk needs.
#[derive(Debug, Clone, Copy, sqlx::FromRow)]
pub struct Serving {
    /// The campaign (its image).
    pub campaign_id: i64,
    /// Bytes per chunk, as offered.
    pub chunk_size: i32,
}

/// Locker `device` asks for chunk `index` of update `id`: its progress recorded. `None` if the
/// update is not under way on that locker (cancelled, ended, another locker's).
pub async fn chunk_asked(
    storage: &Storage,
    id: i64,
    device: &DeviceId,
    index: u32,
) -> Result<Option<Serving>, sqlx::Error> {
    const SQL: &str = "UPDATE firmware_updates SET state = 'downloading', next_chunk = $3,
            updated_at = $4
         WHERE id = $1 AND device_id = $2 AND state IN ('offered', 'downloading')
           AND chunk_size > 0
         RETURNING campaign_id, chunk_size";
    Ok(on_pool!(storage, |pool| sqlx::query_as(SQL)
        .bind(id)
        .bind(device.as_str())
        .bind(i64::from(index))
        .bind(Utc::now())
        .fetch_optional(pool)
        .await?))
}

/// The state a report leaves an update in, and why.
fn after(status: UpdateStatus) -> (&'static str, Option<&'static str>) {
    let reason = |r: UpdateFailure| match r {
        UpdateFailure::BadSignature => "bad_signature",
        UpdateFailure::BadHash => "bad_hash",
        UpdateFailure::TooLarge => "too_large",
        UpdateFailure::Busy => "busy",
        UpdateFailure::FlashError => "flash_error",
        UpdateFailure::UnknownUpdate => "unknown_update",
    };
    match status {
        // Not now: offered again after a while.
        UpdateStatus::Refused(UpdateFailure::Busy) => ("waiting", Some("busy")),
        UpdateStatus::Refused(r) | UpdateStatus::Failed(r) => ("failed", Some(reason(r))),
        UpdateStatus::Downloaded => ("downloaded", None),
        UpdateStatus::Installing => ("installing", None),
        UpdateStatus::Installed => ("installed", None),
        UpdateStatus::RolledBack => ("rolled_back", None),
    }
}

/// Records locker `device`'s report on update `id`, with the event `firmware.update_finished`
/// when it ended; the state it is in now, or `None` if the update is not under way on it.
pub async fn reported(
    storage: &Storage,
    id: i64,
    device: &DeviceId,
    status: UpdateStatus,
) -> Result<Option<&'static str>, sqlx::Error> {
    let (state, reason) = after(status);
    let finished = status.is_final() || state == "failed";
    let sql = format!(
        "UPDATE firmware_updates SET state = $3, reason = $4, updated_at = $5,
            finished_at = CASE WHEN $6 THEN $5 ELSE finished_at END
         WHERE id = $1 AND device_id = $2 AND state IN ({ACTIVE})
         RETURNING campaign_id"
    );
    let now = Utc::now();
    let mut work = storage.begin().await?;
    let campaign: Option<i64> = in_work!(&mut work, |conn| sqlx::query_scalar(
        sqlx::AssertSqlSafe(sql.clone())
    )
    .bind(id)
    .bind(device.as_str())
    .bind(state)
    .bind(reason)
    .bind(now)
    .bind(finished)
    .fetch_optional(conn)
    .await?);
    let Some(campaign) = campaign else {
        return Ok(None);
    };
    if finished {
        let event = Event::new(
            "firmware.update_finished",
            "firmware_update",
            &id.to_string(),
            serde_json::json!({
                "update_id": id, "campaign_id": campaign, "device_id": device.as_str(),
                "result": state, "reason": reason,
            }),
        );
        work.append(&event).await?;
    }
    work.commit().await?;
    Ok(Some(state))
}

/// The update under way on a locker.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Active {
    /// The update.
    pub update_id: i64,
    /// Its campaign (the image).
    pub campaign_id: i64,
    /// Bytes per chunk, as offered (0: not offered yet).
    pub chunk_size: i32,
    /// Where it stands.
    pub state: String,
}

/// The update under way on `device`, if any.
pub async fn active_for(
    storage: &Storage,
    device: &DeviceId,
) -> Result<Option<Active>, sqlx::Error> {
    let sql = format!(
        "SELECT id AS update_id, campaign_id, chunk_size, state FROM firmware_updates
         WHERE device_id = $1 AND state IN ({ACTIVE})"
    );
    Ok(on_pool!(storage, |pool| sqlx::query_as(
        sqlx::AssertSqlSafe(sql.clone())
    )
    .bind(device.as_str())
    .fetch_optional(pool)
    .await?))
}

/// Whether `device` is installing an image now (from `install` until its report): commands to it
/// are refused.
pub async fn is_installing(storage: &Storage, device: &DeviceId) -> Result<bool, sqlx::Error> {
    const SQL: &str =
        "SELECT COUNT(*) FROM firmware_updates WHERE device_id = $1 AND state = 'installing'";
    let n: i64 = on_pool!(storage, |pool| sqlx::query_scalar(SQL)
        .bind(device.as_str())
        .fetch_one(pool)
        .await?);
    Ok(n > 0)
}
