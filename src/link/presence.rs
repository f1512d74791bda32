//! Presence and replay state in PostgreSQL: each write is one transaction together with its
//! presence-log row and its outbox event, and each one is fenced on the device's session and
//! counter, so a replay that got past one gateway's memory (another gateway, a restart) is still
//! refused by the database.

use chrono::{DateTime, Utc};
use firmware_protocol::session::REMEMBERED_SESSIONS;
use firmware_protocol::{DeviceId, Hello, Uplink, UplinkGuard};
use serde_json::json;
use sqlx::{PgConnection, PgPool, Row};

use crate::events::{Event, append};

/// Why a device went offline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfflineReason {
    /// Its last will arrived, naming its current session.
    LastWill,
    /// No uplink for three heartbeat intervals.
    HeartbeatTimeout,
    /// A serial board did not answer several polls in a row.
    NoAnswer,
}

impl OfflineReason {
    /// A stable label, stored in the presence log and sent in the event.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LastWill => "last_will",
            Self::HeartbeatTimeout => "heartbeat_timeout",
            Self::NoAnswer => "no_answer",
        }
    }
}

/// The device's replay state as stored: current session and counter, and earlier sessions.
pub async fn load_guard(pool: &PgPool, device: &DeviceId) -> Result<UplinkGuard, sqlx::Error> {
    let current = sqlx::query("SELECT session, up_counter FROM devices WHERE id = $1")
        .bind(device.as_str())
        .fetch_optional(pool)
        .await?
        .and_then(|row| {
            let session: Option<i64> = row.try_get("session").ok()?;
            let counter: Option<i64> = row.try_get("up_counter").ok()?;
            Some((u32::try_from(session?).ok()?, u32::try_from(counter?).ok()?))
        });
    let mut retired: Vec<i64> = sqlx::query_scalar(
        "SELECT session FROM device_sessions WHERE device_id = $1 ORDER BY started_at DESC, session LIMIT $2",
    )
    .bind(device.as_str())
    .bind(REMEMBERED_SESSIONS as i64 + 1)
    .fetch_all(pool)
    .await?;
    retired.reverse();
    let retired = retired
        .into_iter()
        .filter_map(|s| u32::try_from(s).ok())
        .filter(|s| Some(*s) != current.map(|(c, _)| c));
    Ok(UplinkGuard::restore(current, retired))
}

async fn log(
    conn: &mut PgConnection,
    device: &DeviceId,
    online: bool,
    session: Option<u32>,
    reason: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO presence_log (device_id, online, session, reason) VALUES ($1, $2, $3, $4)",
    )
    .bind(device.as_str())
    .bind(online)
    .bind(session.map(i64::from))
    .bind(reason)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

fn presence_event(device: &DeviceId, online: bool, session: Option<u32>, reason: &str) -> Event {
    Event::new(
        if online {
            "device.online"
        } else {
            "device.offline"
        },
        "device",
        device.as_str(),
        json!({ "device_id": device.as_str(), "session": session, "reason": reason }),
    )
}

/// A verified `Hello`: a new session begins. Records the session (refusing one used before, which
/// is a replay), the device's firmware, and marks it online. Returns `false` if the database
/// refused the session as used before.
pub async fn hello(
    pool: &PgPool,
    device: &DeviceId,
    hello: &Hello,
    counter: u32,
    received_at: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let was_online: Option<bool> =
        sqlx::query_scalar("SELECT online FROM devices WHERE id = $1 FOR UPDATE")
            .bind(device.as_str())
            .fetch_optional(&mut *tx)
            .await?;
    let Some(_) = was_online else {
        return Ok(false);
    };
    let fresh = sqlx::query(
        "INSERT INTO device_sessions (device_id, session, started_at) VALUES ($1, $2, $3)
         ON CONFLICT DO NOTHING",
    )
    .bind(device.as_str())
    .bind(i64::from(hello.session))
    .bind(received_at)
    .execute(&mut *tx)
    .await?;
    if fresh.rows_affected() == 0 {
        // A session used before: only a re-announcement of the current session (asked for with a
        // ping, after its first hello was lost) with a newer counter is accepted.
        let Some(was_online) = advance(
            &mut tx,
            device,
            hello.session,
            counter,
            received_at,
            Some(hello.uptime_ms),
        )
        .await?
        else {
            return Ok(false);
        };
        back_online(&mut tx, device, hello.session, was_online, "hello_again").await?;
        tx.commit().await?;
        return Ok(true);
    }
    sqlx::query(
        "UPDATE devices SET online = true, session = $2, up_counter = $3, firmware = $4,
                serial_no = $5, last_seen_at = $6, presence_changed_at = $6, down_counter = 0,
                uptime_ms = $7, uptime_at = $6
         WHERE id = $1",
    )
    .bind(device.as_str())
    .bind(i64::from(hello.session))
    .bind(i64::from(counter))
    .bind(&hello.firmware)
    .bind(&hello.serial_no)
    .bind(received_at)
    .bind(i64::try_from(hello.uptime_ms).unwrap_or(i64::MAX))
    .execute(&mut *tx)
    .await?;
    // Commands sent in an earlier session and never answered are not resent: their outcome is
    // unknown until the locker is asked.
    sqlx::query(
        "UPDATE commands SET state = 'unknown'
         WHERE device_id = $1 AND state IN ('pending', 'sent') AND session <> $2",
    )
    .bind(device.as_str())
    .bind(i64::from(hello.session))
    .execute(&mut *tx)
    .await?;
    log(&mut tx, device, true, Some(hello.session), "hello").await?;
    append(
        &mut tx,
        &presence_event(device, true, Some(hello.session), "hello"),
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// Moves the stored counter of the device's current session forward, updating last-seen and
/// bringing it online, and the locker's clock if `uptime_ms` tells it better. (An uptime received
/// at `received_at` says the locker's clock then was at least that: it may have waited in a
/// queue. Of all such lower bounds the highest is the closest, so a late message never drags the
/// estimate back and makes commands expire early.) `None` if the database refuses (another
/// session, or a counter not above the stored one: a replay that got past a gateway's memory),
/// else whether it was online before.
async fn advance(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    device: &DeviceId,
    session: u32,
    counter: u32,
    received_at: DateTime<Utc>,
    uptime_ms: Option<u64>,
) -> Result<Option<bool>, sqlx::Error> {
    let row = sqlx::query(
        "UPDATE devices d SET up_counter = $3, last_seen_at = $4, online = true,
                presence_changed_at = CASE WHEN d.online THEN d.presence_changed_at ELSE $4 END,
                uptime_ms = CASE WHEN before.closer THEN $5 ELSE d.uptime_ms END,
                uptime_at = CASE WHEN before.closer THEN $4 ELSE d.uptime_at END
         FROM (SELECT online,
                      $5::bigint IS NOT NULL AND (uptime_ms IS NULL OR uptime_at IS NULL
                        OR $5::bigint - (extract(epoch FROM $4::timestamptz) * 1000)::bigint
                           > uptime_ms - (extract(epoch FROM uptime_at) * 1000)::bigint) AS closer
               FROM devices WHERE id = $1 FOR UPDATE) before
         WHERE d.id = $1 AND d.session = $2 AND coalesce(d.up_counter, 0) < $3
           AND d.revoked_at IS NULL
         RETURNING before.online AS was_online",
    )
    .bind(device.as_str())
    .bind(i64::from(session))
    .bind(i64::from(counter))
    .bind(received_at)
    .bind(uptime_ms.map(|ms| i64::try_from(ms).unwrap_or(i64::MAX)))
    .fetch_optional(&mut **tx)
    .await?;
    row.map(|row| row.try_get("was_online")).transpose()
}

/// Records the device coming back online in `session`, if `was_online` says it was not.
async fn back_online(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    device: &DeviceId,
    session: u32,
    was_online: bool,
    reason: &str,
) -> Result<(), sqlx::Error> {
    if !was_online {
        log(tx, device, true, Some(session), reason).await?;
        append(tx, &presence_event(device, true, Some(session), reason)).await?;
    }
    Ok(())
}

/// Any other verified uplink: moves the stored counter forward (fenced: refused if another
/// gateway already accepted this counter), updates last-seen, brings the device back online if a
/// heartbeat timeout had marked it offline, and records what it says about doors and alarms, in
/// the caller's transaction. Returns `false` (and writes nothing) if the database refused the
/// counter.
pub async fn uplink(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    device: &DeviceId,
    session: u32,
    counter: u32,
    message: &Uplink,
    received_at: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    // The locker's clock, for deadlines it enforces itself (`expires_at_ms`).
    let uptime = match message {
        Uplink::Heartbeat(m) => Some(m.uptime_ms),
        Uplink::DoorEvent(m) => Some(m.uptime_ms),
        Uplink::Alarm(m) => Some(m.uptime_ms),
        _ => None,
    };
    let Some(was_online) = advance(tx, device, session, counter, received_at, uptime).await? else {
        return Ok(false);
    };
    back_online(tx, device, session, was_online, "uplink_resumed").await?;
    super::doors::record(tx, device, session, message).await?;
    Ok(true)
}

/// A last will naming `session`: the device goes offline only if that is still its current
/// session (a late will from an older connection changes nothing). Returns whether it changed.
pub async fn last_will(
    pool: &PgPool,
    device: &DeviceId,
    session: u32,
) -> Result<bool, sqlx::Error> {
    went_offline(pool, device, session, OfflineReason::LastWill).await
}

/// The device is offline for `reason` if `session` is still its current session. Returns whether
/// it changed.
pub async fn went_offline(
    pool: &PgPool,
    device: &DeviceId,
    session: u32,
    reason: OfflineReason,
) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let changed = sqlx::query(
        "UPDATE devices SET online = false, presence_changed_at = now()
         WHERE id = $1 AND online AND session = $2",
    )
    .bind(device.as_str())
    .bind(i64::from(session))
    .execute(&mut *tx)
    .await?
    .rows_affected()
        > 0;
    if changed {
        let reason = reason.as_str();
        log(&mut tx, device, false, Some(session), reason).await?;
        append(
            &mut tx,
            &presence_event(device, false, Some(session), reason),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(changed)
}

/// Marks offline every online device silent for longer than `timeout`. Returns how many.
pub async fn sweep(pool: &PgPool, timeout: std::time::Duration) -> Result<usize, sqlx::Error> {
    let timeout = chrono::Duration::from_std(timeout).unwrap_or(chrono::Duration::MAX);
    let mut tx = pool.begin().await?;
    let rows = sqlx::query(
        "UPDATE devices SET online = false, presence_changed_at = now()
         WHERE id IN (SELECT id FROM devices WHERE online AND last_seen_at < now() - $1
                      ORDER BY id FOR UPDATE SKIP LOCKED LIMIT 1000)
         RETURNING id, session",
    )
    .bind(timeout)
    .fetch_all(&mut *tx)
    .await?;
    let reason = OfflineReason::HeartbeatTimeout.as_str();
    for row in &rows {
        let id: String = row.try_get("id")?;
        let session: Option<i64> = row.try_get("session")?;
        let Some(device) = DeviceId::new(&id) else {
            continue;
        };
        let session = session.and_then(|s| u32::try_from(s).ok());
        log(&mut tx, &device, false, session, reason).await?;
        append(&mut tx, &presence_event(&device, false, session, reason)).await?;
    }
    tx.commit().await?;
    Ok(rows.len())
}
