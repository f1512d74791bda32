//! Commands queued for a locker that is offline: kept in the gateway (lockers use clean sessions,
//! so the broker keeps nothing), delivered in the locker's next session, or expired. A queued
//! command carries its deadline in the locker's own clock, so it is never executed after its time
//! to live, even if it is delivered late.

use firmware_protocol::{CommandId, DeviceId, DeviceKey, Direction, Envelope, Header};
use sqlx::{PgPool, Row};

use super::service::Command;
use super::store;
use crate::db::{Notice, listen};
use crate::link::downlink::Downlinks;

/// One stored command, for the operator's list.
#[derive(Debug, Clone, PartialEq)]
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
/// process).
pub const COMMANDS_QUEUED_CHANNEL: &str = "commands_queued";

/// Stores a queued command (state `pending`, no session yet) that lives until `expires_at`, and
/// announces it on [`COMMANDS_QUEUED_CHANNEL`].
pub async fn enqueue(
    pool: &PgPool,
    device: &DeviceId,
    command: &Command,
    ttl: std::time::Duration,
) -> Result<i64, store::StoreError> {
    let (kind, door, body) = command.stored();
    let exists: Option<bool> =
        sqlx::query_scalar("SELECT true FROM devices WHERE id = $1 AND revoked_at IS NULL")
            .bind(device.as_str())
            .fetch_optional(pool)
            .await?;
    if exists.is_none() {
        return Err(store::StoreError::UnknownDevice);
    }
    let ttl = chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX);
    let mut tx = pool.begin().await?;
    let id = sqlx::query_scalar(
        "INSERT INTO commands (device_id, kind, door, body, queued, expires_at)
         VALUES ($1, $2, $3, $4, true, now() + $5) RETURNING id",
    )
    .bind(device.as_str())
    .bind(kind)
    .bind(door.map(i32::from))
    .bind(&body)
    .bind(ttl)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(COMMANDS_QUEUED_CHANNEL)
        .bind(device.as_str())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(id)
}

/// Sends the device's queued commands in its current `session`, oldest first. Each is recorded as
/// sent (with its session, counter and sealed envelope) before anything is published.
pub async fn deliver(
    pool: &PgPool,
    downlinks: &Downlinks,
    device: DeviceId,
    session: u32,
    key: &DeviceKey,
) -> Result<usize, sqlx::Error> {
    // The locker's turn until every counter taken here is queued, in order.
    let _turn = downlinks.turn(&device).await;
    let mut tx = pool.begin().await?;
    let rows = sqlx::query(
        "SELECT id, kind, body, floor(extract(epoch FROM (expires_at - now())) * 1000)::bigint AS left_ms
         FROM commands
         WHERE device_id = $1 AND state = 'pending' AND queued AND expires_at > now()
         ORDER BY id FOR UPDATE SKIP LOCKED",
    )
    .bind(device.as_str())
    .fetch_all(&mut *tx)
    .await?;
    let mut outgoing = Vec::new();
    for row in rows {
        let id: i64 = row.try_get("id")?;
        let kind: String = row.try_get("kind")?;
        let body: serde_json::Value = row.try_get("body")?;
        let left_ms: i64 = row.try_get("left_ms")?;
        let (Some(command), Some(command_id)) = (
            Command::from_stored(&kind, &body),
            CommandId::new(id as u64),
        ) else {
            continue;
        };
        let counter: Option<i64> = sqlx::query_scalar(
            "UPDATE devices SET down_counter = down_counter + 1 WHERE id = $1 AND session = $2
             RETURNING down_counter",
        )
        .bind(device.as_str())
        .bind(i64::from(session))
        .fetch_optional(&mut *tx)
        .await?;
        let Some(counter) = counter.and_then(|c| u32::try_from(c).ok()) else {
            break; // the session ended meanwhile: the next one delivers
        };
        let left = std::time::Duration::from_millis(u64::try_from(left_ms).unwrap_or(0));
        let expires_at_ms = store::locker_deadline(pool, &device, left).await?;
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
            continue;
        };
        sqlx::query(
            "UPDATE commands SET state = 'sent', session = $2, counter = $3, payload = $4,
                    attempts = attempts + 1, sent_at = now()
             WHERE id = $1",
        )
        .bind(id)
        .bind(i64::from(session))
        .bind(i64::from(counter))
        .bind(&payload)
        .execute(&mut *tx)
        .await?;
        outgoing.push((payload, left));
    }
    tx.commit().await?;
    for (payload, left) in &outgoing {
        // On MQTT 5 the broker drops it too once its time to live has passed.
        downlinks.redeliver(&device, payload, Some(*left));
    }
    Ok(outgoing.len())
}

/// Marks queued commands whose time to live has passed as expired. Returns how many.
pub async fn expire(pool: &PgPool) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE commands SET state = 'expired' WHERE state = 'pending' AND queued AND expires_at <= now()",
    )
    .execute(pool)
    .await?
    .rows_affected())
}

/// Cancels a queued command that has not been sent. Returns whether it was cancelled.
pub async fn cancel(pool: &PgPool, id: i64) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE commands SET state = 'cancelled' WHERE id = $1 AND state = 'pending' AND queued",
    )
    .bind(id)
    .execute(pool)
    .await?
    .rows_affected()
        > 0)
}

/// Commands, newest first, optionally of one device and in one state.
pub async fn list(
    pool: &PgPool,
    device: Option<&str>,
    state: Option<&str>,
    limit: i64,
) -> Result<Vec<Listed>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, device_id, kind, door, state, queued, expires_at, created_at FROM commands
         WHERE ($1::text IS NULL OR device_id = $1) AND ($2::text IS NULL OR state = $2)
         ORDER BY id DESC LIMIT $3",
    )
    .bind(device)
    .bind(state)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Listed {
                id: r.try_get("id")?,
                device_id: r.try_get("device_id")?,
                kind: r.try_get("kind")?,
                door: r.try_get("door")?,
                state: r.try_get("state")?,
                queued: r.try_get("queued")?,
                expires_at: r.try_get("expires_at")?,
                created_at: r.try_get("created_at")?,
            })
        })
        .collect()
}

/// Delivers the queued commands of `device` if it is online.
pub async fn deliver_if_online(
    pool: &PgPool,
    downlinks: &Downlinks,
    device: DeviceId,
) -> Result<usize, sqlx::Error> {
    let Some(session) = store::current_session(pool, &device).await? else {
        return Ok(0);
    };
    let Some(credentials) = crate::device::DeviceRegistry::new(pool.clone())
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
        pool,
        downlinks,
        device,
        session,
        &credentials.current.tag_key,
    )
    .await
}

/// Delivers queued commands announced by other processes (the CLI), until `stop`; at every
/// (re)connection of the listener, also whatever online locker has queued commands waiting.
pub async fn watch(
    pool: PgPool,
    downlinks: Downlinks,
    stop: impl std::future::Future<Output = ()>,
) {
    let (tx, mut rx) = tokio::sync::mpsc::channel(256);
    let handle = async {
        while let Some(notice) = rx.recv().await {
            let delivered = match notice {
                Notice::Listening => deliver_all_waiting(&pool, &downlinks).await,
                Notice::Payload(device) => match DeviceId::new(&device) {
                    Some(device) => deliver_if_online(&pool, &downlinks, device).await.map(drop),
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
        _ = listen(pool.clone(), COMMANDS_QUEUED_CHANNEL, tx) => {}
        _ = handle => {}
    }
}

/// Delivers the queued commands of every online locker that has some waiting.
async fn deliver_all_waiting(pool: &PgPool, downlinks: &Downlinks) -> Result<(), sqlx::Error> {
    let waiting: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT c.device_id FROM commands c JOIN devices d ON d.id = c.device_id
         WHERE c.state = 'pending' AND c.queued AND d.online",
    )
    .fetch_all(pool)
    .await?;
    for device in waiting.iter().filter_map(|id| DeviceId::new(id)) {
        deliver_if_online(pool, downlinks, device).await?;
    }
    Ok(())
}
