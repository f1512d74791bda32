//! `GET /v1/overview`: the fleet at a glance, for the console's first page: lockers online and
//! offline, open alarms by severity, commands that ended unknown or failed in the last 24 hours,
//! rentals running and overdue, money taken today (in `LOCKER_TIME_ZONE`), the gateways sharing
//! the database.

use axum::extract::State;
use chrono::{DateTime, TimeZone, Utc};
use rust_decimal::Decimal;
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
    /// Active rentals past their plan's `max_minutes` (charged the overdue price).
    pub rentals_overdue: i64,
    /// Money taken since midnight in the configured time zone.
    pub money_today: MoneyToday,
    /// Gateways holding a lease on this database.
    pub gateways: i64,
}

/// Money taken since the start of today.
#[derive(Debug, Serialize, ToSchema)]
pub struct MoneyToday {
    /// Midnight in `time_zone`, as a UTC time.
    pub since: DateTime<Utc>,
    /// `LOCKER_TIME_ZONE`.
    pub time_zone: String,
    /// Fees taken (captured from holds) and orders charged.
    #[schema(value_type = String, example = "120.50")]
    pub taken: Decimal,
    /// Given back (refunds).
    #[schema(value_type = String, example = "4.00")]
    pub refunded: Decimal,
    /// Taken less refunded.
    #[schema(value_type = String, example = "116.50")]
    pub net: Decimal,
}

/// The start of today in `zone`, as a UTC time (the earliest midnight on a day that has two).
pub fn start_of_today(zone: chrono_tz::Tz, now: DateTime<Utc>) -> DateTime<Utc> {
    let today = now.with_timezone(&zone).date_naive();
    // A day whose midnight does not exist (a gap at 00:00) starts at the first hour that does.
    (0..24)
        .filter_map(|hour| today.and_hms_opt(hour, 0, 0))
        .find_map(|t| zone.from_local_datetime(&t).earliest())
        .map_or(now, |t| t.with_timezone(&Utc))
}

/// The fleet at a glance.
#[utoipa::path(get, path = "/v1/overview", tag = "overview", security(("bearer" = [])),
    responses((status = 200, description = "Counts across the fleet", body = Overview)))]
pub async fn overview(
    State(state): State<ApiState>,
    _operator: Operator,
) -> Result<Json<Overview>, ApiError> {
    Ok(Json(
        counts(&state.storage, state.wallets.currency(), state.time_zone).await?,
    ))
}

/// The counts of the overview, read from the books; money in `currency`, "today" in `zone`.
pub async fn counts(
    storage: &crate::storage::Storage,
    currency: &crate::money::Currency,
    zone: chrono_tz::Tz,
) -> Result<Overview, sqlx::Error> {
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
    // Money out of wallets (captures and charges) and back into them (refunds) since $1.
    const MONEY: &str = "SELECT
            CAST(COALESCE(SUM(CASE WHEN kind IN ('capture', 'charge')
                         THEN -(available_delta + held_delta) ELSE 0 END), 0) AS BIGINT),
            CAST(COALESCE(SUM(CASE WHEN kind = 'refund'
                         THEN available_delta + held_delta ELSE 0 END), 0) AS BIGINT)
         FROM ledger WHERE created_at >= $1 AND kind IN ('capture', 'charge', 'refund')";
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
    let since = start_of_today(zone, now);
    let (taken, refunded): (i64, i64) = on_pool!(storage, |pool| sqlx::query_as(MONEY)
        .bind(since)
        .fetch_one(pool)
        .await?);
    // Each rental's own terms say when it is overdue (JSON: `max_minutes`).
    let rentals_overdue: i64 = on_pool!(storage, |pool, dialect| {
        let sql = format!(
            "SELECT count(*) FROM rentals WHERE state = 'active' AND started_at IS NOT NULL
               AND {}",
            dialect.pick(
                "started_at + make_interval(mins => (terms->>'max_minutes')::int) < $1",
                "CAST(strftime('%s', started_at) AS INTEGER)
                   + json_extract(terms, '$.max_minutes') * 60
                   < CAST(strftime('%s', $1) AS INTEGER)",
            )
        );
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(now)
            .fetch_one(pool)
            .await?
    });
    let money = |minor: i64| currency.from_minor(minor);
    Ok(Overview {
        money_today: MoneyToday {
            since,
            time_zone: zone.name().to_owned(),
            taken: money(taken),
            refunded: money(refunded),
            net: money(taken - refunded),
        },
        rentals_overdue,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0)
            .single()
            .expect("a time")
    }

    #[test]
    fn today_starts_at_local_midnight_even_on_a_day_without_one() {
        let berlin: chrono_tz::Tz = "Europe/Berlin".parse().expect("zone");
        // 23:30 in Berlin (summer time): today began at 22:00 UTC the day before.
        assert_eq!(
            start_of_today(berlin, at(2026, 7, 1, 21, 30)),
            at(2026, 6, 30, 22, 0)
        );
        // 00:30 the next day there.
        assert_eq!(
            start_of_today(berlin, at(2026, 7, 1, 22, 30)),
            at(2026, 7, 1, 22, 0)
        );
        // São Paulo, 2018-11-04: clocks jumped from 00:00 to 01:00 (-03 to -02); the day began
        // at 01:00 local, 03:00 UTC.
        let sao: chrono_tz::Tz = "America/Sao_Paulo".parse().expect("zone");
        assert_eq!(
            start_of_today(sao, at(2018, 11, 4, 15, 0)),
            at(2018, 11, 4, 3, 0)
        );
        assert_eq!(
            start_of_today(chrono_tz::UTC, at(2026, 12, 5, 18, 0)),
            at(2026, 12, 5, 0, 0)
        );
    }
}
