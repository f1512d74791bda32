//! Keeps the broker's [`Revocations`] in step with the registry, across gateway processes: a
//! revocation (by the CLI, the API or another gateway) is announced with `NOTIFY`; this watcher
//! marks the device revoked, which refuses its next packet in either direction, and nudges its
//! `down` topic so a live session is dropped at once rather than at its next keep-alive. On
//! SQLite (edge mode: one gateway, but the CLI may revoke from another process) the watcher reads
//! the revoked devices every [`EDGE_POLL`] instead.

use firmware_protocol::{DeviceId, Topic};
use std::time::Duration;

use sqlx::PgPool;

use super::Revocations;
use crate::db::{Notice, listen};
use crate::device::revocation::{DEVICE_CHANGES_CHANNEL, is_revoked, revoked};
use crate::mqtt::MqttTx;
use crate::storage::Storage;

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
    pool: &PgPool,
    revocations: &Revocations,
    link: &mut MqttTx,
    device: &str,
) -> Result<(), sqlx::Error> {
    let Some(id) = DeviceId::new(device) else {
        return Ok(());
    };
    if is_revoked(&Storage::Postgres(pool.clone()), &id).await? {
        drop_session(revocations, link, id).await;
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

/// Follows device changes until `stop` resolves: on PostgreSQL by listening (after every
/// (re)connection of the listener it reloads the revoked devices it may have missed), on SQLite
/// by reading the revoked devices every [`EDGE_POLL`].
pub async fn watch(
    storage: Storage,
    revocations: Revocations,
    link: MqttTx,
    stop: impl std::future::Future<Output = ()>,
) {
    match storage {
        Storage::Postgres(pool) => listen_for_changes(pool, revocations, link, stop).await,
        Storage::Sqlite(_) => {
            tokio::select! {
                _ = stop => {}
                _ = poll_revoked(&storage, &revocations, link) => {}
            }
        }
    }
}

/// Edge mode: drops the session of every device revoked since the last look.
async fn poll_revoked(storage: &Storage, revocations: &Revocations, mut link: MqttTx) {
    let mut interval = tokio::time::interval(EDGE_POLL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        match revoked(storage).await {
            Ok(ids) => {
                for id in ids {
                    if !revocations.contains(&id) {
                        drop_session(revocations, &mut link, id).await;
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the revoked devices"),
        }
    }
}

async fn listen_for_changes(
    pool: PgPool,
    revocations: Revocations,
    mut link: MqttTx,
    stop: impl std::future::Future<Output = ()>,
) {
    let storage = Storage::Postgres(pool.clone());
    let (tx, mut rx) = tokio::sync::mpsc::channel(256);
    let handle = async {
        while let Some(notice) = rx.recv().await {
            let applied = match notice {
                Notice::Listening => load_revoked(&storage, &revocations).await.map(drop),
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
