//! Alarms operators handle: each alarm a locker raises (or the gateway raises for it, as for a
//! door opened with no command) is recorded with its severity and goes open → acknowledged (by
//! whom) → resolved (by whom, and how). The same kind raised again at the same door before it is
//! resolved counts on the one alarm. This module owns the `alarms` table.

use chrono::{DateTime, Utc};
use firmware_protocol::{AlarmKind, DeviceId};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::device::door_events::alarm_kind;
use crate::storage::{Storage, UnitOfWork, in_work, on_pool};

/// How urgent an alarm is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// A door forced open, the cabinet tampered with: someone should go now.
    Critical,
    /// A door that does not open when pulsed, power lost: customers are affected.
    Major,
    /// A door left open.
    Minor,
}

impl Severity {
    /// The severity of an alarm of `kind`.
    pub fn of(kind: AlarmKind) -> Self {
        match kind {
            AlarmKind::ForcedOpen | AlarmKind::Tamper => Severity::Critical,
            AlarmKind::Jammed | AlarmKind::PowerLoss => Severity::Major,
            AlarmKind::DoorAjar => Severity::Minor,
        }
    }

    /// Its stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Major => "major",
            Severity::Minor => "minor",
        }
    }
}

/// One alarm.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Alarm {
    /// Its id.
    pub id: i64,
    /// The locker.
    pub device_id: String,
    /// The door; absent for the whole cabinet.
    pub door: Option<i32>,
    /// `forced_open`, `door_ajar`, `tamper`, `power_loss` or `jammed`.
    pub kind: String,
    /// `critical` (forced open, tamper), `major` (jammed, power loss) or `minor` (door ajar).
    pub severity: String,
    /// `open`, `acknowledged` or `resolved`.
    pub state: String,
    /// When it was first raised.
    pub raised_at: DateTime<Utc>,
    /// When it was last raised again.
    pub last_raised_at: DateTime<Utc>,
    /// How often it was raised before it was resolved.
    pub times: i32,
    /// Who acknowledged it.
    pub acknowledged_by: Option<Uuid>,
    /// When.
    pub acknowledged_at: Option<DateTime<Utc>>,
    /// Who resolved it.
    pub resolved_by: Option<Uuid>,
    /// When.
    pub resolved_at: Option<DateTime<Utc>>,
    /// What was done about it.
    pub resolution: Option<String>,
}

/// Why an alarm could not be handled.
#[derive(Debug, thiserror::Error)]
pub enum AlarmError {
    /// No alarm has this id.
    #[error("no such alarm")]
    NotFound,
    /// It is resolved already: nothing more to do.
    #[error("the alarm is resolved already")]
    Resolved,
    /// The database failed.
    #[error("storage: {0}")]
    Storage(#[from] sqlx::Error),
}

/// Records an alarm in the unit of work that records what raised it: a new open alarm, or one
/// more time on the alarm of this kind at this door not yet resolved.
pub async fn raise(
    work: &mut UnitOfWork,
    device: &DeviceId,
    kind: AlarmKind,
    door: Option<u16>,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    const AGAIN: &str = "UPDATE alarms SET times = times + 1, last_raised_at = $4
         WHERE device_id = $1 AND COALESCE(door, 0) = COALESCE($2, 0) AND kind = $3
           AND state <> 'resolved'";
    const NEW: &str =
        "INSERT INTO alarms (device_id, door, kind, severity, raised_at, last_raised_at)
         VALUES ($1, $2, $3, $5, $4, $4)";
    let door = door.map(i32::from);
    let name = alarm_kind(kind);
    // The locker's row is locked by the caller's unit of work (PostgreSQL; SQLite's holds the
    // file), so no other gateway raises the same alarm in between.
    let again = in_work!(&mut *work, |conn| {
        sqlx::query(AGAIN)
            .bind(device.as_str())
            .bind(door)
            .bind(name)
            .bind(at)
            .execute(conn)
            .await?
            .rows_affected()
    });
    if again == 0 {
        in_work!(work, |conn| {
            sqlx::query(NEW)
                .bind(device.as_str())
                .bind(door)
                .bind(name)
                .bind(at)
                .bind(Severity::of(kind).as_str())
                .execute(conn)
                .await?
                .rows_affected()
        });
    }
    Ok(())
}

/// Which alarms to read.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only in this state.
    pub state: Option<String>,
    /// Only of this severity.
    pub severity: Option<String>,
    /// Only of this locker.
    pub device_id: Option<String>,
    /// Only of this kind.
    pub kind: Option<String>,
    /// Only older than this id (the page before).
    pub before: Option<i64>,
    /// At most this many.
    pub limit: i64,
}

/// Alarms, newest first.
pub async fn list(storage: &Storage, filter: &Filter) -> Result<Vec<Alarm>, sqlx::Error> {
    const LIST: &str = "SELECT id, device_id, door, kind, severity, state, raised_at,
            last_raised_at, times, acknowledged_by, acknowledged_at, resolved_by, resolved_at,
            resolution
         FROM alarms
         WHERE ($1 IS NULL OR state = $1) AND ($2 IS NULL OR severity = $2)
           AND ($3 IS NULL OR device_id = $3) AND ($4 IS NULL OR kind = $4)
           AND ($5 IS NULL OR id < $5)
         ORDER BY id DESC LIMIT $6";
    Ok(on_pool!(storage, |pool| {
        sqlx::query_as(LIST)
            .bind(&filter.state)
            .bind(&filter.severity)
            .bind(&filter.device_id)
            .bind(&filter.kind)
            .bind(filter.before)
            .bind(filter.limit)
            .fetch_all(pool)
            .await?
    }))
}

/// Acknowledges alarm `id` for operator `by`: an open alarm becomes acknowledged; one already
/// acknowledged stays as it is (the first operator's name kept).
pub async fn acknowledge(storage: &Storage, id: i64, by: Uuid) -> Result<Alarm, AlarmError> {
    const ACK: &str = "UPDATE alarms SET state = 'acknowledged', acknowledged_by = $2,
         acknowledged_at = $3 WHERE id = $1 AND state = 'open'";
    on_pool!(storage, |pool| sqlx::query(ACK)
        .bind(id)
        .bind(by)
        .bind(Utc::now())
        .execute(pool)
        .await?
        .rows_affected());
    match get(storage, id).await? {
        None => Err(AlarmError::NotFound),
        Some(alarm) if alarm.state == "resolved" => Err(AlarmError::Resolved),
        Some(alarm) => Ok(alarm),
    }
}

/// Resolves alarm `id` (open or acknowledged) for operator `by`, saying what was done.
pub async fn resolve(
    storage: &Storage,
    id: i64,
    by: Uuid,
    resolution: &str,
) -> Result<Alarm, AlarmError> {
    const RESOLVE: &str = "UPDATE alarms SET state = 'resolved', resolved_by = $2,
         resolved_at = $3, resolution = $4 WHERE id = $1 AND state <> 'resolved'";
    let changed = on_pool!(storage, |pool| sqlx::query(RESOLVE)
        .bind(id)
        .bind(by)
        .bind(Utc::now())
        .bind(resolution)
        .execute(pool)
        .await?
        .rows_affected());
    match get(storage, id).await? {
        None => Err(AlarmError::NotFound),
        Some(_) if changed == 0 => Err(AlarmError::Resolved),
        Some(alarm) => Ok(alarm),
    }
}

/// One alarm.
pub async fn get(storage: &Storage, id: i64) -> Result<Option<Alarm>, sqlx::Error> {
    const ONE: &str = "SELECT id, device_id, door, kind, severity, state, raised_at,
            last_raised_at, times, acknowledged_by, acknowledged_at, resolved_by, resolved_at,
            resolution
         FROM alarms WHERE id = $1";
    Ok(on_pool!(storage, |pool| sqlx::query_as(ONE)
        .bind(id)
        .fetch_optional(pool)
        .await?))
}
