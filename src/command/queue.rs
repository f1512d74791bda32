//! Commands queued for a locker that is offline: kept in the gateway (lockers use clean sessions,
//! so the broker keeps nothing), delivered in the locker's next session, or expired. A queued
//! command carries its deadline in the locker's own clock, so it is never executed after its time
//! to live, even if it is delivered late.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use firmware_protocol::{CommandId, DeviceId, DeviceKey, Direction, Envelope, Header};

use super::Command;
use super::outlet::Outlet;
use super::store;

use crate::storage::{Notice, Storage, UnitOfWork, in_work, on_pool};
use crate::worker::{Items, Stuck};

/// One stored command, for the operator's list.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Listed {
    /// Its id.
    pub id: i64,
    /// The locker.
    pub device_id: String,
    /// `unlock` or `configure`.
    pub kind: String,
    /// The door, for an unlock.
    pub door: Option<i32>,
    /// Its state.
    pub state: String,
    /// Whether it was queued.
    pub queued: bool,
    /// Its time to live ends at.
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
    /// When it was created.
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// The PostgreSQL channel on which a queued command is announced (payload: the device id), so the
/// gateway delivers it at once if the locker is online, whoever queued it (the CLI, another
/// process). On SQLite the gateway looks for queued commands every [`EDGE_POLL`] instead.
pub const COMMANDS_QUEUED_CHANNEL: &str = "commands_queued";

/// How often the edge-mode gateway looks for commands queued by another process (the CLI).
pub const EDGE_POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// Stores a queued command (state `pending`, no session yet) that lives until `ttl` from now,
/// and announces it on [`COMMANDS_QUEUED_CHANNEL`].
pub async fn enqueue(
    storage: &Storage,
    device: &DeviceId,
    command: &Command,
    ttl: std::time::Duration,
) -> Result<i64, store::StoreError> {
    const QUEUE: &str = "INSERT INTO commands (device_id, kind, door, body, queued, expires_at,
                              created_at)
         VALUES ($1, $2, $3, $4, true, $5, $6) RETURNING id";
    let (kind, door, body) = command.stored();
    store::door_check(storage, device, door).await??;
    let now = Utc::now();
    let expires_at = crate::storage::after(now, ttl);
    let mut work = storage.begin().await?;
    let id = in_work!(&mut work, |conn| sqlx::query_scalar(QUEUE)
        .bind(device.as_str())
        .bind(kind)
        .bind(door.map(i32::from))
        .bind(&body)
        .bind(expires_at)
        .bind(now)
        .fetch_one(conn)
        .await?);
    if let UnitOfWork::Postgres(tx) = &mut work {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(COMMANDS_QUEUED_CHANNEL)
            .bind(device.as_str())
            .execute(&mut **tx)
            .await?;
    }
    work.commit().await?;
    Ok(id)
}

/// Sends the device's queued commands in its current `session`, oldest first. Each is recorded as
/// sent (with its session, counter and sealed envelope) before anything is published.
pub async fn deliver(
    storage: &Storage,
    downlinks: &dyn Outlet,
    device: DeviceId,
    session: u32,
    key: &DeviceKey,
) -> Result<usize, sqlx::Error> {
    const SENT: &str = "UPDATE commands SET state = 'sent', session = $2, counter = $3,
                payload = $4, attempts = attempts + 1, sent_at = $5
         WHERE id = $1";
    // The locker's turn until every counter taken here is queued, in order.
    let _turn = downlinks.turns().turn(&device).await;
    let now = Utc::now();
    let mut work = storage.begin().await?;
    let rows: Vec<(i64, String, serde_json::Value, DateTime<Utc>)> =
        in_work!(&mut work, |conn, dialect| {
            sqlx::query_as(dialect.pick(
                "SELECT id, kind, body, expires_at FROM commands
                 WHERE device_id = $1 AND state = 'pending' AND queued AND expires_at > $2
                 ORDER BY id FOR UPDATE SKIP LOCKED",
                "SELECT id, kind, body, expires_at FROM commands
                 WHERE device_id = $1 AND state = 'pending' AND queued AND expires_at > $2
                 ORDER BY id",
            ))
            .bind(device.as_str())
            .bind(now)
            .fetch_all(conn)
            .await?
        });
    let mut outgoing = Vec::new();
    for (id, kind, body, expires_at) in rows {
        let (Some(command), Some(command_id)) = (
            Command::from_stored(&kind, &body),
            CommandId::new(id as u64),
        ) else {
            never_deliverable(&mut work, &device, id, "its stored body cannot be read").await?;
            continue;
        };
        let Some(counter) = store::next_counter_in(&mut work, &device, session).await? else {
            break; // the session ended meanwhile: the next one delivers
        };
        let left = (expires_at - now).to_std().unwrap_or_default();
        let expires_at_ms = store::locker_deadline(storage, &device, left).await?;
        let envelope = Envelope {
            header: Header {
                direction: Direction::Down,
                device_id: device,
                session,
                counter,
            },
            message: command.message(command_id, expires_at_ms),
        };
        // Sealed for the locker's transport; queued after the commit below.
        let Ok(payload) = downlinks.seal(&envelope, key) else {
            never_deliverable(&mut work, &device, id, "it cannot be sealed").await?;
            continue;
        };
        in_work!(&mut work, |conn| sqlx::query(SENT)
            .bind(id)
            .bind(i64::from(session))
            .bind(i64::from(counter))
            .bind(payload.stored())
            .bind(now)
            .execute(conn)
            .await?
            .rows_affected());
        outgoing.push((payload, left));
    }
    work.commit().await?;
    for (payload, left) in &outgoing {
        // On MQTT 5 the broker drops it too once its time to live has passed.
        downlinks.redeliver(&device, payload, Some(*left));
    }
    Ok(outgoing.len())
}

/// A queued command that can never be sent (trying again cannot help): logged and counted,
/// expired in this unit of work, and flagged for operators at once (the stuck list and a
/// `worker.item_stuck` event, written with it); the others go out.
async fn never_deliverable(
    work: &mut UnitOfWork,
    device: &DeviceId,
    id: i64,
    why: &str,
) -> Result<(), sqlx::Error> {
    metrics::counter!("locker_worker_item_failures_total", "worker" => "queue_delivery")
        .increment(1);
    metrics::counter!("locker_worker_items_flagged_total", "worker" => "queue_delivery")
        .increment(1);
    tracing::error!(%device, command = id, why, "a queued command can never be sent: expired and flagged; the others go out");
    in_work!(&mut *work, |conn| sqlx::query(
        "UPDATE commands SET state = 'expired' WHERE id = $1"
    )
    .bind(id)
    .execute(conn)
    .await?
    .rows_affected());
    let now = Utc::now();
    let stuck = Stuck {
        worker: "queue_delivery".to_owned(),
        item: format!("command {id}"),
        failures: 1,
        last_error: format!("{why} (locker {device}); the command was expired, never sent"),
        first_failed_at: now,
        last_failed_at: now,
    };
    crate::worker::stuck::flag_in(work, &stuck, true).await
}

/// Marks queued commands whose time to live has passed as expired. Returns how many.
pub async fn expire(storage: &Storage) -> Result<u64, sqlx::Error> {
    const EXPIRE: &str = "UPDATE commands SET state = 'expired'
         WHERE state = 'pending' AND queued AND expires_at <= $1";
    let now = Utc::now();
    Ok(on_pool!(storage, |pool| sqlx::query(EXPIRE)
        .bind(now)
        .execute(pool)
        .await?
        .rows_affected()))
}

/// Cancels a queued command that has not been sent. Returns whether it was cancelled.
pub async fn cancel(storage: &Storage, id: i64) -> Result<bool, sqlx::Error> {
    const CANCEL: &str =
        "UPDATE commands SET state = 'cancelled' WHERE id = $1 AND state = 'pending' AND queued";
    Ok(on_pool!(storage, |pool| sqlx::query(CANCEL)
        .bind(id)
        .execute(pool)
        .await?
        .rows_affected())
        > 0)
}

/// Commands, newest first, optionally of one device and in one state.
pub async fn list(
    storage: &Storage,
    device: Option<&str>,
    state: Option<&str>,
    limit: i64,
) -> Result<Vec<Listed>, sqlx::Error> {
    const LIST: &str =
        "SELECT id, device_id, kind, door, state, queued, expires_at, created_at FROM commands
         WHERE ($1 IS NULL OR device_id = $1) AND ($2 IS NULL OR state = $2)
         ORDER BY id DESC LIMIT $3";
    Ok(on_pool!(storage, |pool| sqlx::query_as(LIST)
        .bind(device)
        .bind(state)
        .bind(limit)
        .fetch_all(pool)
        .await?))
}

/// Delivers the queued commands of `device` if it is online.
pub async fn deliver_if_online(
    storage: &Storage,
    downlinks: &dyn Outlet,
    device: DeviceId,
) -> Result<usize, sqlx::Error> {
    let Some(session) = store::current_session(storage, &device).await? else {
        return Ok(0);
    };
    let Some(credentials) = crate::device::DeviceRegistry::new(storage.clone())
        .credentials(&device)
        .await
        .map_err(|e| match e {
            crate::device::RegistryError::Database(e) => e,
            other => sqlx::Error::Protocol(other.to_string()),
        })?
    else {
        return Ok(0);
    };
    deliver(
        storage,
        downlinks,
        device,
        session,
        &credentials.current.tag_key,
    )
    .await
}

/// Delivers queued commands announced by other processes (the CLI), until `stop`: as they are
/// announced, and, whenever announcements may have been missed (at every (re)connection of the
/// PostgreSQL listener; every [`EDGE_POLL`] on SQLite, where nothing is announced), whatever
/// online locker has queued commands waiting.
pub async fn watch(
    storage: Storage,
    downlinks: Arc<dyn Outlet>,
    items: Items,
    stop: impl std::future::Future<Output = ()>,
) {
    let (tx, mut rx) = tokio::sync::mpsc::channel(256);
    let handle = async {
        while let Some(notice) = rx.recv().await {
            let delivered = match notice {
                Notice::Listening => deliver_all_waiting(&storage, &*downlinks, &items).await,
                Notice::Payload(device) => match DeviceId::new(&device) {
                    Some(device) => {
                        let item = format!("device {device}");
                        items
                            .attempt(&item, deliver_if_online(&storage, &*downlinks, device))
                            .await;
                        Ok(())
                    }
                    None => Ok(()),
                },
            };
            if let Err(e) = delivered {
                tracing::warn!(error = %e, "cannot deliver queued commands");
            }
        }
    };
    tokio::select! {
        _ = stop => {}
        _ = storage.notices(COMMANDS_QUEUED_CHANNEL, EDGE_POLL, tx) => {}
        _ = handle => {}
    }
}

/// Delivers the queued commands of every online locker that has some waiting. A locker whose
/// delivery fails never stops the others: `items` logs, counts, backs it off and flags it.
async fn deliver_all_waiting(
    storage: &Storage,
    downlinks: &dyn Outlet,
    items: &Items,
) -> Result<(), sqlx::Error> {
    const WAITING: &str = "SELECT DISTINCT c.device_id FROM commands c
         JOIN devices d ON d.id = c.device_id
         WHERE c.state = 'pending' AND c.queued AND d.online";
    let waiting: Vec<String> = on_pool!(storage, |pool| sqlx::query_scalar(WAITING)
        .fetch_all(pool)
        .await?);
    for device in waiting.iter().filter_map(|id| DeviceId::new(id)) {
        let item = format!("device {device}");
        items
            .attempt(&item, deliver_if_online(storage, downlinks, device))
            .await;
    }
    Ok(())
}
