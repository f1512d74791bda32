//! Revoked devices, as the transports need them to keep their sessions in step: which devices are
//! revoked, whether one is, and the PostgreSQL channel on which a change is announced
//! ([`DEVICE_CHANGES_CHANNEL`]). The watcher that drops live sessions is the broker's
//! (`broker::revocation`).

use firmware_protocol::DeviceId;

pub use super::registry::DEVICE_CHANGES_CHANNEL;
use crate::storage::{Storage, on_pool};

/// The revoked devices.
pub async fn revoked(storage: &Storage) -> Result<Vec<DeviceId>, sqlx::Error> {
    const REVOKED: &str = "SELECT id FROM devices WHERE revoked_at IS NOT NULL";
    let ids: Vec<String> = on_pool!(storage, |pool| sqlx::query_scalar(REVOKED)
        .fetch_all(pool)
        .await?);
    Ok(ids.iter().filter_map(|id| DeviceId::new(id)).collect())
}

/// Whether `id` is revoked (an unknown device is not).
pub async fn is_revoked(storage: &Storage, id: &DeviceId) -> Result<bool, sqlx::Error> {
    const REVOKED: &str = "SELECT revoked_at IS NOT NULL FROM devices WHERE id = $1";
    let revoked: Option<bool> = on_pool!(storage, |pool| sqlx::query_scalar(REVOKED)
        .bind(id.as_str())
        .fetch_optional(pool)
        .await?);
    Ok(revoked.unwrap_or(false))
}
