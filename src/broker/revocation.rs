//! Keeps the broker's [`Revocations`] in step with the registry, across gateway processes: a
//! revocation (by the CLI, the API or another gateway) is announced with `NOTIFY`; this watcher
//! marks the device revoked, which refuses its next packet in either direction, and nudges its
//! `down` topic so a live session is dropped at once rather than at its next keep-alive. On
//! SQLite (edge mode: one gateway, but the CLI may revoke from another process) the watcher reads
//! the revoked devices every [`EDGE_POLL`] instead.

use firmware_protocol::{DeviceId, Topic};
use std::time::Duration;

use super::Revocations;
use crate::device::revocation::{DEVICE_CHANGES_CHANNEL, is_revoked, revoked};
use crate::mqtt::MqttTx;
use crate::storage::{Notice, Storage};

/// How often the edge-mode watcher reads the revoked devices.
pub const EDGE_POLL: Duration = Duration::from_secs(1);

/// Marks every device already revoked in the registry.
pub async fn load_revoked(
    storage: &Storage,
    revocations: &Revocations,
) -> Result<usize, sqlx::Error> {
    let ids = revoked(storage).await?;
    let count = ids.len();
    for id in ids {
        revocations.revoke(id);
    }
    Ok(count)
}

/// Applies one change notification.
pub async fn apply_change(
    storage: &Storage,
    revocations: &Revocations,
    link: &mut MqttTx,
    device: &str,
) -> Result<(), sqlx::Error> {
    let Some(id) = DeviceId::new(device) else {
        return Ok(());
    };
    if is_revoked(storage, &id).await? {
        drop_session(revocations, link, id).await;
    }
    Ok(())
}

/// Drops the session of every device revoked that was not known to be (revoked while
/// announcements could not be heard, or by a process that announces nothing).
async fn catch_up(
    storage: &Storage,
    revocations: &Revocations,
    link: &mut MqttTx,
) -> Result<(), sqlx::Error> {
    for id in revoked(storage).await? {
        if !revocations.contains(&id) {
            drop_session(revocations, link, id).await;
        }
    }
    Ok(())
}

/// Marks `id` revoked and drops its live session.
async fn drop_session(revocations: &Revocations, link: &mut MqttTx, id: DeviceId) {
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

/// Follows device changes until `stop` resolves: each announced change (a `NOTIFY` on
/// PostgreSQL) is applied, and whenever announcements may have been missed (at every
/// (re)connection of the listener; every [`EDGE_POLL`] on SQLite, where nothing is announced)
/// every revoked device not known to be so has its session dropped.
pub async fn watch(
    storage: Storage,
    revocations: Revocations,
    mut link: MqttTx,
    stop: impl std::future::Future<Output = ()>,
) {
    let (tx, mut rx) = tokio::sync::mpsc::channel(256);
    let handle = async {
        while let Some(notice) = rx.recv().await {
            let applied = match notice {
                Notice::Listening => catch_up(&storage, &revocations, &mut link).await,
                Notice::Payload(device) => {
                    apply_change(&storage, &revocations, &mut link, &device).await
                }
            };
            if let Err(e) = applied {
                tracing::warn!(error = %e, "could not apply a device change");
            }
        }
    };
    tokio::select! {
        _ = stop => {}
        _ = storage.notices(DEVICE_CHANGES_CHANNEL, EDGE_POLL, tx) => {}
        _ = handle => {}
    }
}
