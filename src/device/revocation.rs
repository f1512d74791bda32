//! Keeps the broker's [`Revocations`] in step with the registry, across gateway processes: a
//! revocation (by the CLI, the API or another gateway) is announced with `NOTIFY`; this watcher
//! marks the device revoked, which refuses its next packet in either direction, and nudges its
//! `down` topic so a live session is dropped at once rather than at its next keep-alive.

use firmware_protocol::{DeviceId, Topic};
use sqlx::PgPool;

use super::registry::DEVICE_CHANGES_CHANNEL;
use crate::broker::Revocations;
use crate::bus::BusTx;
use crate::db::{Notice, listen};

/// Marks every device already revoked in the registry.
pub async fn load_revoked(pool: &PgPool, revocations: &Revocations) -> Result<usize, sqlx::Error> {
    let ids: Vec<String> =
        sqlx::query_scalar("SELECT id FROM devices WHERE revoked_at IS NOT NULL")
            .fetch_all(pool)
            .await?;
    let count = ids.len();
    for id in ids.iter().filter_map(|id| DeviceId::new(id)) {
        revocations.revoke(id);
    }
    Ok(count)
}

async fn is_revoked(pool: &PgPool, id: &DeviceId) -> Result<bool, sqlx::Error> {
    let revoked: Option<bool> =
        sqlx::query_scalar("SELECT revoked_at IS NOT NULL FROM devices WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(pool)
            .await?;
    Ok(revoked.unwrap_or(false))
}

/// Applies one change notification.
pub async fn apply_change(
    pool: &PgPool,
    revocations: &Revocations,
    link: &mut BusTx,
    device: &str,
) -> Result<(), sqlx::Error> {
    let Some(id) = DeviceId::new(device) else {
        return Ok(());
    };
    if is_revoked(pool, &id).await? {
        revocations.revoke(id);
        // The write to the revoked connection fails in the ACL, which drops it.
        if let Err(e) = link
            .publish(Topic::down(id).to_string(), Vec::new(), None)
            .await
        {
            tracing::warn!(error = %e, %id, "could not nudge a revoked device's session");
        }
        tracing::info!(%id, "device revoked: its session is dropped");
    }
    Ok(())
}

/// Listens for device changes until `stop` resolves; after every (re)connection of the listener
/// it reloads the revoked devices it may have missed.
pub async fn watch(
    pool: PgPool,
    revocations: Revocations,
    mut link: BusTx,
    stop: impl std::future::Future<Output = ()>,
) {
    let (tx, mut rx) = tokio::sync::mpsc::channel(256);
    let handle = async {
        while let Some(notice) = rx.recv().await {
            let applied = match notice {
                Notice::Listening => load_revoked(&pool, &revocations).await.map(drop),
                Notice::Payload(device) => {
                    apply_change(&pool, &revocations, &mut link, &device).await
                }
            };
            if let Err(e) = applied {
                tracing::warn!(error = %e, "could not apply a device change");
            }
        }
    };
    tokio::select! {
        _ = stop => {}
        _ = listen(pool.clone(), DEVICE_CHANGES_CHANNEL, tx) => {}
        _ = handle => {}
    }
}
