//! Commands in PostgreSQL. Every change is one statement or one transaction, fenced on the
//! command's current state, so concurrent answers (a duplicate, a late ack, a resend's ack) apply
//! at most once.

use firmware_protocol::{Ack, CommandResult, DeviceId, DeviceKey, RefuseReason};
use sqlx::{PgPool, Row};

use super::{CommandState, DoorResult, Progress};

/// Why a command could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The device is not online in a known session.
    #[error("device is offline")]
    Offline,
    /// No such device.
    #[error("no such device")]
    UnknownDevice,
    /// PostgreSQL failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// A stored command, with the session and counter it goes out with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reserved {
    /// The command id.
    pub id: i64,
    /// The locker's session.
    pub session: u32,
    /// The downlink counter in that session.
    pub counter: u32,
    /// The locker's uptime now (ms), estimated from the last uptime it reported.
    pub locker_uptime_ms: Option<u64>,
    /// The device's current tag key, to seal the command with.
    pub key: DeviceKey,
}

fn reason_name(reason: RefuseReason) -> String {
    serde_json::to_value(reason)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{reason:?}"))
}

fn reason_from(name: &str) -> Option<RefuseReason> {
    serde_json::from_value(serde_json::Value::String(name.to_owned())).ok()
}

fn progress(state: &str, refusal: Option<&str>, door: Option<&str>) -> Progress {
    let state = match state {
        "pending" => CommandState::Pending,
        "sent" => CommandState::Sent,
        "executed" => CommandState::Executed,
        "refused" => CommandState::Refused(
            refusal
                .and_then(reason_from)
                .unwrap_or(RefuseReason::Unsupported),
        ),
        "expired" => CommandState::Expired,
        "cancelled" => CommandState::Cancelled,
        _ => CommandState::Unknown,
    };
    Progress {
        state,
        door: door.and_then(DoorResult::parse),
    }
}

fn progress_of(row: &sqlx::postgres::PgRow) -> Result<Progress, sqlx::Error> {
    let state: String = row.try_get("state")?;
    let refusal: Option<String> = row.try_get("refusal")?;
    let door: Option<String> = row.try_get("door_result")?;
    Ok(progress(&state, refusal.as_deref(), door.as_deref()))
}

/// Stores a command for a device that is online, taking the next downlink counter of its current
/// session, in one statement (one round trip, atomic); also returns the device's current tag key,
/// read in the same statement, so a rotation cannot slip between the key and the counter.
pub async fn reserve(
    pool: &PgPool,
    device: &DeviceId,
    (kind, door, body): (&str, Option<u16>, &serde_json::Value),
    origin: &super::Origin,
) -> Result<Reserved, StoreError> {
    let row = sqlx::query(
        "WITH d AS (
             UPDATE devices SET down_counter = down_counter + 1
             WHERE id = $1 AND online AND session IS NOT NULL AND revoked_at IS NULL
             RETURNING id, session, down_counter, tag_key,
                       uptime_ms + (extract(epoch FROM (now() - uptime_at)) * 1000)::bigint AS uptime_now
         ), c AS (
             INSERT INTO commands (device_id, kind, door, body, session, counter, requested_by, reason)
             SELECT id, $2, $3, $4, session, down_counter, $5, $6 FROM d
             RETURNING id
         )
         SELECT c.id, d.session, d.down_counter, d.tag_key, d.uptime_now FROM c, d",
    )
    .bind(device.as_str())
    .bind(kind)
    .bind(door.map(i32::from))
    .bind(body)
    .bind(origin.requested_by)
    .bind(&origin.reason)
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else {
        // Why not: a revoked device is as unknown as a missing one.
        let active: Option<bool> =
            sqlx::query_scalar("SELECT revoked_at IS NULL FROM devices WHERE id = $1")
                .bind(device.as_str())
                .fetch_optional(pool)
                .await?;
        return Err(match active {
            Some(true) => StoreError::Offline,
            _ => StoreError::UnknownDevice,
        });
    };
    let id: i64 = row.try_get("id")?;
    let session: i64 = row.try_get("session")?;
    let counter: i64 = row.try_get("down_counter")?;
    let uptime_now: Option<i64> = row.try_get("uptime_now")?;
    let key: Vec<u8> = row.try_get("tag_key")?;
    let invalid = |what: &str| StoreError::Database(sqlx::Error::Protocol(what.into()));
    let key = <[u8; 32]>::try_from(key.as_slice())
        .map(DeviceKey::from_bytes)
        .map_err(|_| invalid("stored tag key has the wrong length"))?;
    Ok(Reserved {
        id,
        key,
        locker_uptime_ms: uptime_now.and_then(|ms| u64::try_from(ms).ok()),
        session: u32::try_from(session).map_err(|_| invalid("session out of range"))?,
        counter: u32::try_from(counter).map_err(|_| invalid("counter out of range"))?,
    })
}

/// Records one (re)send: the first one stores the sealed payload and moves `pending` to `sent`.
pub async fn mark_sent(pool: &PgPool, id: i64, payload: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE commands SET state = CASE WHEN state = 'pending' THEN 'sent' ELSE state END,
                payload = coalesce(payload, $2), attempts = attempts + 1,
                sent_at = coalesce(sent_at, now())
         WHERE id = $1",
    )
    .bind(id)
    .bind(payload)
    .execute(pool)
    .await?;
    Ok(())
}

/// No answer came: the outcome is unknown (it may still be settled by asking the locker).
pub async fn mark_unknown(pool: &PgPool, id: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE commands SET state = 'unknown' WHERE id = $1 AND state IN ('pending', 'sent')",
    )
    .bind(id)
    .execute(pool)
    .await?;
    Ok(())
}

/// The device's current session and whether it is online.
pub async fn current_session(pool: &PgPool, device: &DeviceId) -> Result<Option<u32>, sqlx::Error> {
    let session: Option<Option<i64>> =
        sqlx::query_scalar("SELECT session FROM devices WHERE id = $1 AND online")
            .bind(device.as_str())
            .fetch_optional(pool)
            .await?;
    Ok(session.flatten().and_then(|s| u32::try_from(s).ok()))
}

/// In what order a locker's uplinks reach the gateway, which decides what the door table says
/// when an `ack` arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// Everything as it happens, in the locker's order (MQTT): when an `ack` arrives, every door
    /// event sent before it has been recorded, so the table is the door as the pulse found it.
    AsItHappens,
    /// Answers at once, door events and alarms when polled (a serial board): when an `ack`
    /// arrives, door events from before the pulse may still wait in the board, so the table may
    /// be stale. Whether the door was open already is decided by the board's next report of
    /// its doors instead ([`open_before_report`]).
    EventsWhenPolled,
}

/// Records a locker's answer. The first answer settles the command; the same answer again is
/// counted as a duplicate; a different one is kept as a conflict and flagged, never applied.
/// An executed unlock of a door the table says is open is `already_open` if the table can be
/// trusted at this point ([`Arrival`]). Returns the command's progress, or `None` if the device
/// has no such command.
pub async fn record_ack(
    conn: &mut sqlx::PgConnection,
    device: &DeviceId,
    ack: &Ack,
    arrival: Arrival,
) -> Result<Option<(i64, Progress)>, sqlx::Error> {
    let id = ack.command_id.get() as i64;
    let (state, refusal) = match ack.result {
        CommandResult::Executed => ("executed", None),
        CommandResult::Refused(reason) => ("refused", Some(reason_name(reason))),
    };
    // The usual case, in one statement: the first answer to a command awaiting one.
    let first = sqlx::query(
        "UPDATE commands c SET state = $3, refusal = $4, answered_at = now(), settled_by = 'ack',
                door_result = CASE
                    WHEN $3 = 'executed' AND c.kind = 'unlock' AND c.door_result IS NULL AND $5
                         AND EXISTS (SELECT 1 FROM doors d WHERE d.device_id = c.device_id
                                     AND d.door = c.door AND d.sensor = 'open')
                    THEN 'already_open' ELSE c.door_result END
         WHERE id = $1 AND device_id = $2 AND state IN ('pending', 'sent', 'unknown')
         RETURNING state, refusal, door_result",
    )
    .bind(id)
    .bind(device.as_str())
    .bind(state)
    .bind(&refusal)
    .bind(arrival == Arrival::AsItHappens)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(row) = first {
        return Ok(Some((id, progress_of(&row)?)));
    }
    // Already answered (a duplicate or a conflict), or no such command.
    let row = sqlx::query(
        "SELECT state, refusal, door_result FROM commands WHERE id = $1 AND device_id = $2 FOR UPDATE",
    )
    .bind(id)
    .bind(device.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let current: String = row.try_get("state")?;
    let current_refusal: Option<String> = row.try_get("refusal")?;
    // (The statement above settles any command still awaiting an answer, so this one was
    // answered before.)
    let row = if current == state && current_refusal == refusal {
        sqlx::query(
            "UPDATE commands SET duplicates = duplicates + 1 WHERE id = $1
             RETURNING state, refusal, door_result",
        )
        .bind(id)
        .fetch_one(&mut *conn)
        .await?
    } else {
        let conflict = match &refusal {
            Some(reason) => format!("{state}:{reason}"),
            None => state.to_owned(),
        };
        tracing::warn!(command = id, %device, first = %current, second = %conflict, "conflicting answers to a command; the first one stands");
        metrics::counter!("locker_command_conflicts_total").increment(1);
        sqlx::query(
            "UPDATE commands SET conflict = $2 WHERE id = $1 RETURNING state, refusal, door_result",
        )
        .bind(id)
        .bind(conflict)
        .fetch_one(&mut *conn)
        .await?
    };
    Ok(Some((id, progress_of(&row)?)))
}

/// A report of the locker's doors that says a door is open: an executed unlock of that door
/// answered before it, still without a door result, found the door open already, because a pulse
/// that opens a door is reported by a `door_event` before any later report of the doors. The
/// caller passes only reports that come after the events before them: heartbeats (a serial board
/// sends one only when nothing is queued) and, over MQTT, state reports. Only unlocks answered
/// within the last minute are considered (an open window is at most 60 s).
pub async fn open_before_report(
    conn: &mut sqlx::PgConnection,
    device: &DeviceId,
    doors: &[firmware_protocol::DoorStatus],
) -> Result<Vec<(i64, Progress)>, sqlx::Error> {
    let open: Vec<i32> = doors
        .iter()
        .zip(1..)
        .filter(|(d, _)| d.sensor == firmware_protocol::DoorSensor::Open)
        .map(|(_, n)| n)
        .collect();
    if open.is_empty() {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(
        "UPDATE commands SET door_result = 'already_open', door_at = now()
         WHERE device_id = $1 AND kind = 'unlock' AND state = 'executed' AND door_result IS NULL
           AND door = ANY($2) AND answered_at > now() - interval '60 seconds'
         RETURNING id, state, refusal, door_result",
    )
    .bind(device.as_str())
    .bind(&open)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| Ok((row.try_get("id")?, progress_of(row)?)))
        .collect()
}

/// A door opened because of command `id`: records it once.
pub async fn record_opened(
    conn: &mut sqlx::PgConnection,
    device: &DeviceId,
    id: i64,
) -> Result<Option<(i64, Progress)>, sqlx::Error> {
    let row = sqlx::query(
        "UPDATE commands SET door_result = coalesce(door_result, 'opened'),
                door_at = coalesce(door_at, now())
         WHERE id = $1 AND device_id = $2 AND kind = 'unlock'
         RETURNING state, refusal, door_result",
    )
    .bind(id)
    .bind(device.as_str())
    .fetch_optional(conn)
    .await?;
    row.map(|row| Ok((id, progress_of(&row)?))).transpose()
}

/// A door did not open after its pulse: the most recent unlock of that door without a door result
/// is jammed. Recorded once; a later ack never changes it.
pub async fn record_jam(
    conn: &mut sqlx::PgConnection,
    device: &DeviceId,
    door: u16,
) -> Result<Option<(i64, Progress)>, sqlx::Error> {
    let row = sqlx::query(
        "UPDATE commands SET door_result = 'jammed', door_at = now()
         WHERE id = (SELECT id FROM commands
                     WHERE device_id = $1 AND door = $2 AND kind = 'unlock' AND door_result IS NULL
                       AND state IN ('sent', 'executed', 'unknown')
                     ORDER BY id DESC LIMIT 1 FOR UPDATE)
         RETURNING id, state, refusal, door_result",
    )
    .bind(device.as_str())
    .bind(i32::from(door))
    .fetch_optional(conn)
    .await?;
    row.map(|row| Ok((row.try_get("id")?, progress_of(&row)?)))
        .transpose()
}

/// Takes the next downlink counter of the device's `session` (for a query), if that is still its
/// session.
pub async fn next_counter(
    pool: &PgPool,
    device: &DeviceId,
    session: u32,
) -> Result<Option<u32>, sqlx::Error> {
    reserve_counters(pool, device, session, 1).await
}

/// Takes the next `n` downlink counters of the device's `session` at once, if that is still its
/// session: returns the first (the others follow it). Whoever takes them holds the device's
/// turn until everything queued before is sent (`Downlinks::turn`).
pub async fn reserve_counters(
    pool: &PgPool,
    device: &DeviceId,
    session: u32,
    n: u32,
) -> Result<Option<u32>, sqlx::Error> {
    let last: Option<i64> = sqlx::query_scalar(
        "UPDATE devices SET down_counter = down_counter + $3 WHERE id = $1 AND session = $2
         RETURNING down_counter",
    )
    .bind(device.as_str())
    .bind(i64::from(session))
    .bind(i64::from(n.max(1)))
    .fetch_optional(pool)
    .await?;
    Ok(last
        .map(|last| last - i64::from(n.max(1)) + 1)
        .and_then(|first| u32::try_from(first).ok()))
}

/// Whether the device has commands whose outcome is unknown.
pub async fn has_unknown(pool: &PgPool, device: &DeviceId) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM commands WHERE device_id = $1 AND state = 'unknown')",
    )
    .bind(device.as_str())
    .fetch_one(pool)
    .await
}

/// Settles the device's unknown commands from a `StateReport`: each one the locker remembers takes
/// the result it reports; each one it does not know stays unknown and is surfaced once, as a
/// `command.unknown` event for operators. Returns the commands settled, with their progress.
pub async fn settle_from_report(
    conn: &mut sqlx::PgConnection,
    device: &DeviceId,
    recent: &[Ack],
) -> Result<Vec<(i64, Progress)>, sqlx::Error> {
    let unknown: Vec<(i64, Option<i32>)> = sqlx::query_as(
        "SELECT id, door FROM commands WHERE device_id = $1 AND state = 'unknown' ORDER BY id FOR UPDATE",
    )
    .bind(device.as_str())
    .fetch_all(&mut *conn)
    .await?;
    let mut settled = Vec::new();
    for (id, door) in unknown {
        let known = recent.iter().find(|a| a.command_id.get() as i64 == id);
        match known {
            Some(ack) => {
                let (state, refusal) = match ack.result {
                    CommandResult::Executed => ("executed", None),
                    CommandResult::Refused(reason) => ("refused", Some(reason_name(reason))),
                };
                let row = sqlx::query(
                    "UPDATE commands SET state = $2, refusal = $3, answered_at = now(),
                            settled_by = 'state_report'
                     WHERE id = $1 RETURNING state, refusal, door_result",
                )
                .bind(id)
                .bind(state)
                .bind(refusal)
                .fetch_one(&mut *conn)
                .await?;
                settled.push((id, progress_of(&row)?));
            }
            None => {
                let surfaced = sqlx::query(
                    "UPDATE commands SET surfaced_at = now() WHERE id = $1 AND surfaced_at IS NULL",
                )
                .bind(id)
                .execute(&mut *conn)
                .await?
                .rows_affected()
                    > 0;
                if surfaced {
                    let event = crate::events::Event::new(
                        "command.unknown",
                        "device",
                        device.as_str(),
                        serde_json::json!({ "device_id": device.as_str(), "command_id": id, "door": door, "reason": "forgotten" }),
                    );
                    crate::events::append(conn, &event).await?;
                }
            }
        }
    }
    Ok(settled)
}

/// At start: no one waits any more for commands that were pending or sent when the gateway
/// stopped; their outcome is unknown until the lockers are asked. Returns the devices concerned
/// that are online, with their session.
pub async fn orphans_at_start(pool: &PgPool) -> Result<Vec<(DeviceId, u32)>, sqlx::Error> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "WITH orphaned AS (
             UPDATE commands SET state = 'unknown' WHERE state IN ('pending', 'sent')
             RETURNING device_id)
         SELECT DISTINCT d.id, d.session FROM devices d
         WHERE d.online AND d.session IS NOT NULL
           AND (d.id IN (SELECT device_id FROM orphaned)
                OR EXISTS (SELECT 1 FROM commands c WHERE c.device_id = d.id AND c.state = 'unknown'
                           AND c.surfaced_at IS NULL))",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, session)| Some((DeviceId::new(&id)?, u32::try_from(session).ok()?)))
        .collect())
}

/// A deadline `after` from now in the locker's clock, given its uptime now: less a margin for its
/// clock running fast.
pub fn deadline_in_locker_clock(uptime_now_ms: u64, after: std::time::Duration) -> u64 {
    let after = after.as_millis() as u64;
    let margin = 200 + after / 100;
    (uptime_now_ms + after.saturating_sub(margin)).max(1)
}

/// The locker's uptime (ms) `after` from now, estimated from the last uptime it reported, less a
/// margin for its clock running fast; `None` if it never reported one.
pub async fn locker_deadline(
    pool: &PgPool,
    device: &DeviceId,
    after: std::time::Duration,
) -> Result<Option<u64>, sqlx::Error> {
    let estimate: Option<Option<i64>> = sqlx::query_scalar(
        "SELECT uptime_ms + (extract(epoch FROM (now() - uptime_at)) * 1000)::bigint
         FROM devices WHERE id = $1",
    )
    .bind(device.as_str())
    .fetch_optional(pool)
    .await?;
    Ok(estimate
        .flatten()
        .and_then(|ms| u64::try_from(ms).ok())
        .map(|now| deadline_in_locker_clock(now, after)))
}

/// Tells operators about commands unknown for longer than `after_secs` that no report settled.
pub async fn surface_stale_unknown(pool: &PgPool, after_secs: f64) -> Result<usize, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let rows: Vec<(i64, String, Option<i32>)> = sqlx::query_as(
        "UPDATE commands SET surfaced_at = now()
         WHERE state = 'unknown' AND surfaced_at IS NULL
           AND coalesce(sent_at, created_at) < now() - make_interval(secs => $1)
         RETURNING id, device_id, door",
    )
    .bind(after_secs)
    .fetch_all(&mut *tx)
    .await?;
    for (id, device, door) in &rows {
        let event = crate::events::Event::new(
            "command.unknown",
            "device",
            device,
            serde_json::json!({ "device_id": device, "command_id": id, "door": door, "reason": "no_report" }),
        );
        crate::events::append(&mut tx, &event).await?;
    }
    tx.commit().await?;
    Ok(rows.len())
}

/// Records what a door did after an unlock, unless something was recorded first (a late door
/// event or jam alarm wins); returns what stands.
pub async fn record_door_result(
    pool: &PgPool,
    id: i64,
    result: DoorResult,
) -> Result<Option<DoorResult>, sqlx::Error> {
    let stored: Option<String> = sqlx::query_scalar(
        "UPDATE commands SET door_result = coalesce(door_result, $2), door_at = coalesce(door_at, now())
         WHERE id = $1 RETURNING door_result",
    )
    .bind(id)
    .bind(result.as_str())
    .fetch_optional(pool)
    .await?
    .flatten();
    Ok(stored.as_deref().and_then(DoorResult::parse))
}
