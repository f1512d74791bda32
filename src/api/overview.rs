//! `GET /v1/overview`: the fleet at a glance, for the console's first page: lockers online and
//! offline, open alarms by severity, commands that ended unknown or failed in the last 24 hours,
//! rentals running, the gateways sharing the database.

use axum::extract::State;
use chrono::Utc;
use serde::Serialize;
use utoipa::ToSchema;

use super::ApiState;
use super::auth::Operator;
use super::error::ApiError;
use super::json::Json;
use crate::storage::on_pool;

/// Lockers by presence.
#[derive(Debug, Serialize, ToSchema)]
pub struct LockerCounts {
    /// Online now.
    pub online: i64,
    /// Offline (revoked lockers not counted).
    pub offline: i64,
}

/// Alarms not yet handled, by severity.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlarmCounts {
    /// Open or acknowledged, critical.
    pub critical: i64,
    /// Open or acknowledged, major.
    pub major: i64,
    /// Open or acknowledged, minor.
    pub minor: i64,
}

/// Commands of the last 24 hours that need a look.
#[derive(Debug, Serialize, ToSchema)]
pub struct CommandCounts {
    /// Their outcome is not known (settled by asking, and the locker did not know).
    pub unknown: i64,
    /// Refused by the locker, or expired before they could be sent.
    pub failed: i64,
}

/// The fleet at a glance.
#[derive(Debug, Serialize, ToSchema)]
pub struct Overview {
    /// Lockers online and offline.
    pub lockers: LockerCounts,
    /// Alarms not yet resolved, by severity.
    pub alarms: AlarmCounts,
    /// Commands of the last 24 hours that ended unknown or failed.
    pub commands_last_24h: CommandCounts,
    /// Rentals running (pending, active or ending).
    pub rentals_running: i64,
    /// Gateways holding a lease on this database.
    pub gateways: i64,
}

/// The fleet at a glance.
#[utoipa::path(get, path = "/v1/overview", tag = "overview", security(("bearer" = [])),
    responses((status = 200, description = "Counts across the fleet", body = Overview)))]
pub async fn overview(
    State(state): State<ApiState>,
    _operator: Operator,
) -> Result<Json<Overview>, ApiError> {
    Ok(Json(counts(&state.storage).await?))
}

/// The counts of the overview, read from the books.
pub async fn counts(storage: &crate::storage::Storage) -> Result<Overview, sqlx::Error> {
    const LOCKERS: &str = "SELECT
            COALESCE(SUM(CASE WHEN online THEN 1 ELSE 0 END), 0),
            COALESCE(SUM(CASE WHEN online THEN 0 ELSE 1 END), 0)
         FROM devices WHERE revoked_at IS NULL";
    const ALARMS: &str = "SELECT
            COALESCE(SUM(CASE WHEN severity = 'critical' THEN 1 ELSE 0 END), 0),
            COALESCE(SUM(CASE WHEN severity = 'major' THEN 1 ELSE 0 END), 0),
            COALESCE(SUM(CASE WHEN severity = 'minor' THEN 1 ELSE 0 END), 0)
         FROM alarms WHERE state <> 'resolved'";
    const COMMANDS: &str = "SELECT
            COALESCE(SUM(CASE WHEN state = 'unknown' THEN 1 ELSE 0 END), 0),
            COALESCE(SUM(CASE WHEN state IN ('refused', 'expired') THEN 1 ELSE 0 END), 0)
         FROM commands WHERE created_at > $1 AND state IN ('unknown', 'refused', 'expired')";
    const RENTALS: &str =
        "SELECT count(*) FROM rentals WHERE state IN ('pending', 'active', 'ending')";
    const GATEWAYS: &str = "SELECT count(*) FROM gateways WHERE expires_at > $1";
    let (now, since) = (Utc::now(), Utc::now() - chrono::Duration::hours(24));
    let (online, offline): (i64, i64) = on_pool!(storage, |pool| sqlx::query_as(LOCKERS)
        .fetch_one(pool)
        .await?);
    let (critical, major, minor): (i64, i64, i64) =
        on_pool!(storage, |pool| sqlx::query_as(ALARMS)
            .fetch_one(pool)
            .await?);
    let (unknown, failed): (i64, i64) = on_pool!(storage, |pool| sqlx::query_as(COMMANDS)
        .bind(since)
        .fetch_one(pool)
        .await?);
    let rentals_running: i64 = on_pool!(storage, |pool| sqlx::query_scalar(RENTALS)
        .fetch_one(pool)
        .await?);
    let gateways: i64 = on_pool!(storage, |pool| sqlx::query_scalar(GATEWAYS)
        .bind(now)
        .fetch_one(pool)
        .await?);
    Ok(Overview {
        lockers: LockerCounts { online, offline },
        alarms: AlarmCounts {
            critical,
            major,
            minor,
        },
        commands_last_24h: CommandCounts { unknown, failed },
        rentals_running,
        gateways,
    })
}
