//! Each firmware a locker announced in its `hello`, with when it was first and last seen
//! (`device_firmware`): the history an update leaves, written in the hello's unit of work.

use chrono::{DateTime, Utc};
use firmware_protocol::DeviceId;
use serde::Serialize;
use utoipa::ToSchema;

use crate::storage::{Storage, UnitOfWork, in_work, on_pool};

/// One firmware a locker ran.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct FirmwareSeen {
    /// The version its hello announced.
    pub firmware: String,
    /// The first hello with it.
    pub first_seen_at: DateTime<Utc>,
    /// The last hello with it.
    pub last_seen_at: DateTime<Utc>,
}

/// Records, in `work`, that `device` said hello with `firmware` at `at`.
pub async fn seen(
    work: &mut UnitOfWork,
    device: &DeviceId,
    firmware: &str,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    const SEEN: &str =
        "INSERT INTO device_firmware (device_id, firmware, first_seen_at, last_seen_at)
         VALUES ($1, $2, $3, $3)
         ON CONFLICT (device_id, firmware) DO UPDATE SET last_seen_at = $3";
    in_work!(work, |conn| sqlx::query(SEEN)
        .bind(device.as_str())
        .bind(firmware)
        .bind(at)
        .execute(conn)
        .await?
        .rows_affected());
    Ok(())
}

/// The firmware `device` has run, the latest first.
pub async fn history(storage: &Storage, device: &str) -> Result<Vec<FirmwareSeen>, sqlx::Error> {
    const HISTORY: &str = "SELECT firmware, first_seen_at, last_seen_at FROM device_firmware
         WHERE device_id = $1 ORDER BY last_seen_at DESC, firmware";
    Ok(on_pool!(storage, |pool| sqlx::query_as(HISTORY)
        .bind(device)
        .fetch_all(pool)
        .await?))
}
