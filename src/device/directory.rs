//! The read side of the registry, for operators: find devices, one device with its doors.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgPool, Row};
use utoipa::ToSchema;

/// A device as operators see it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeviceView {
    /// The device id.
    pub id: String,
    /// Its model.
    pub model: String,
    /// How many doors it has.
    pub door_count: i32,
    /// Connected now.
    pub online: bool,
    /// When it was revoked, if it was (revocation is final).
    pub revoked_at: Option<DateTime<Utc>>,
    /// When it last sent anything.
    pub last_seen_at: Option<DateTime<Utc>>,
    /// Firmware version from its last hello.
    pub firmware: Option<String>,
    /// Serial number from its last hello.
    pub serial_no: Option<String>,
    /// When it was provisioned.
    pub created_at: DateTime<Utc>,
}

/// What one door's sensors last said.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DoorView {
    /// The door number.
    pub door: i32,
    /// Its size class.
    pub size_class: String,
    /// `open`, `closed` or `unknown` (never guessed).
    pub sensor: String,
    /// Whether the lock is engaged, if the locker says.
    pub locked: Option<bool>,
    /// Whether something is inside, if the locker has that sensor.
    pub occupied: Option<bool>,
    /// When the locker last said so.
    pub state_at: Option<DateTime<Utc>>,
}

/// One device with its doors.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeviceDetail {
    /// The device.
    pub device: DeviceView,
    /// Its doors, door 1 first.
    pub doors: Vec<DoorView>,
}

/// Which devices to list.
#[derive(Debug, Clone, Default)]
pub struct DeviceSearch {
    /// Ids starting with this.
    pub prefix: Option<String>,
    /// Only online (`true`) or offline (`false`) ones.
    pub online: Option<bool>,
    /// Only this model.
    pub model: Option<String>,
    /// Ids after this one (the next page).
    pub after: Option<String>,
    /// At most this many.
    pub limit: i64,
}

const COLUMNS: &str =
    "id, model, door_count, online, revoked_at, last_seen_at, firmware, serial_no, created_at";

fn view(row: &sqlx::postgres::PgRow) -> Result<DeviceView, sqlx::Error> {
    Ok(DeviceView {
        id: row.try_get("id")?,
        model: row.try_get("model")?,
        door_count: row.try_get("door_count")?,
        online: row.try_get("online")?,
        revoked_at: row.try_get("revoked_at")?,
        last_seen_at: row.try_get("last_seen_at")?,
        firmware: row.try_get("firmware")?,
        serial_no: row.try_get("serial_no")?,
        created_at: row.try_get("created_at")?,
    })
}

/// Devices matching `search`, by id.
pub async fn search(pool: &PgPool, search: &DeviceSearch) -> Result<Vec<DeviceView>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM devices
         WHERE ($1::text IS NULL OR starts_with(id, $1)) AND ($2::bool IS NULL OR online = $2)
           AND ($3::text IS NULL OR model = $3) AND ($4::text IS NULL OR id > $4)
         ORDER BY id LIMIT $5"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(&search.prefix)
        .bind(search.online)
        .bind(&search.model)
        .bind(&search.after)
        .bind(search.limit)
        .fetch_all(pool)
        .await?;
    rows.iter().map(view).collect()
}

/// One device with its doors.
pub async fn get(pool: &PgPool, id: &str) -> Result<Option<DeviceDetail>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM devices WHERE id = $1");
    let Some(row) = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(pool)
        .await?
    else {
        return Ok(None);
    };
    let doors = sqlx::query(
        "SELECT door, size_class, sensor, locked, occupied, state_at FROM doors
         WHERE device_id = $1 ORDER BY door",
    )
    .bind(id)
    .fetch_all(pool)
    .await?
    .iter()
    .map(|row| {
        Ok(DoorView {
            door: row.try_get("door")?,
            size_class: row.try_get("size_class")?,
            sensor: row.try_get("sensor")?,
            locked: row.try_get("locked")?,
            occupied: row.try_get("occupied")?,
            state_at: row.try_get("state_at")?,
        })
    })
    .collect::<Result<_, sqlx::Error>>()?;
    Ok(Some(DeviceDetail {
        device: view(&row)?,
        doors,
    }))
}
