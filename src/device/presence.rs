//! Presence and replay state: each write is one unit of work together with its presence-log row
//! and its outbox event, and each one is fenced on the device's session and
//! counter, so a replay that got past one gateway's memory (another gateway, a restart) is still
//! refused by the database.

use crate::events::Append;
use crate::events::Event;
use crate::storage::{Storage, UnitOfWork, in_work, on_pool};
use chrono::{DateTime, Utc};
use firmware_protocol::session::REMEMBERED_SESSIONS;
use firmware_protocol::{DeviceId, Hello, ReplayWindow, Uplink, UplinkGuard};
use serde_json::json;

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
pub async fn load_guard(storage: &Storage, device: &DeviceId) -> Result<UplinkGuard, sqlx::Error> {
    const CURRENT: &str = "SELECT session, up_counter, up_window FROM devices WHERE id = $1";
    const RETIRED: &str = "SELECT session FROM device_sessions WHERE device_id = $1
         ORDER BY started_at DESC, session LIMIT $2";
    type Current = Option<(Option<i64>, Option<i64>, i64)>;
    let (current, mut retired): (Current, Vec<i64>) = on_pool!(storage, |pool| {
        let current = sqlx::query_as(CURRENT)
            .bind(device.as_str())
            .fetch_optional(pool)
            .await?;
        let retired = sqlx::query_scalar(RETIRED)
            .bind(device.as_str())
            .bind(REMEMBERED_SESSIONS as i64 + 1)
            .fetch_all(pool)
            .await?;
        (current, retired)
    });
    let current = current.and_then(|(session, counter, window)| {
        let window = ReplayWindow::restore(u32::try_from(counter?).ok()?, window as u64);
        Some((u32::try_from(session?).ok()?, window))
    });
    retired.reverse();
    let retired = retired
        .into_iter()
        .filter_map(|s| u32::try_from(s).ok())
        .filter(|s| Some(*s) != current.map(|(c, _)| c));
    Ok(UplinkGuard::restore(current, retired))
}

/// Logs a presence change and announces it, in `work`.
async fn log(
    work: &mut UnitOfWork,
    device: &DeviceId,
    online: bool,
    session: Option<u32>,
    reason: &str,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    const LOG: &str = "INSERT INTO presence_log (device_id, online, session, reason, at) VALUES ($1, $2, $3, $4, $5)";
    in_work!(&mut *work, |conn| {
        sqlx::query(LOG)
            .bind(device.as_str())
            .bind(online)
            .bind(session.map(i64::from))
            .bind(reason)
            .bind(at)
            .execute(conn)
            .await?
            .rows_affected()
    });
    work.append(&presence_event(device, online, session, reason))
        .await
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

/// Locks the rows of `devices` (any order, repeats allowed) for the unit of work, in one order
/// (by id): units of work of several gateways that each write uplinks of several lockers then
/// never wait for each other in a circle (a deadlock, which PostgreSQL breaks after a second by
/// failing one of them). On SQLite the unit of work holds the whole file already.
pub async fn lock_in_order(
    work: &mut UnitOfWork,
    devices: &[&DeviceId],
) -> Result<(), sqlx::Error> {
    const LOCK: &str = "SELECT id FROM devices WHERE id = ANY($1) ORDER BY id FOR UPDATE";
    if let UnitOfWork::Postgres(tx) = work {
        let mut ids: Vec<&str> = devices.iter().map(|d| d.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.len() > 1 {
            sqlx::query(LOCK).bind(&ids).execute(&mut **tx).await?;
        }
    }
    Ok(())
}

/// What recording a hello came to.
#[derive(Debug)]
pub enum HelloRecorded {
    /// The database refused the session as used before (a replay): nothing written.
    Refused,
    /// The current session announced again (asked for after its first hello was lost):
    /// recorded and committed.
    Again,
    /// A new session, recorded in this unit of work, not yet committed: the caller adds what
    /// the new session means to others (commands of earlier sessions), then commits.
    New(UnitOfWork),
}

/// A verified `Hello`: a new session begins. Records the session (refusing one used before, which
/// is a replay), the device's firmware, and marks it online.
pub async fn hello(
    storage: &Storage,
    device: &DeviceId,
    hello: &Hello,
    counter: u32,
    received_at: DateTime<Utc>,
) -> Result<HelloRecorded, sqlx::Error> {
    const SESSION: &str = "INSERT INTO device_sessions (device_id, session, started_at)
         VALUES ($1, $2, $3) ON CONFLICT DO NOTHING";
    const ONLINE: &str = "UPDATE devices SET online = true, session = $2, up_counter = $3,
                up_window = -1,
                firmware = $4, serial_no = $5, last_seen_at = $6, presence_changed_at = $6,
                down_counter = 0, uptime_ms = $7, uptime_at = $6, protocol_version = $8,
                update_chunk = $9
         WHERE id = $1";
    let mut work = storage.begin().await?;
    if read_device(&mut work, device).await?.is_none() {
        return Ok(HelloRecorded::Refused);
    }
    let fresh = in_work!(&mut work, |conn| {
        sqlx::query(SESSION)
            .bind(device.as_str())
            .bind(i64::from(hello.session))
            .bind(received_at)
            .execute(conn)
            .await?
            .rows_affected()
    });
    if fresh == 0 {
        // A session used before: only a re-announcement of the current session (asked for with a
        // ping, after its first hello was lost) with a newer counter is accepted.
        let Some((was_online, _)) = advance(
            &mut work,
            device,
            hello.session,
            counter,
            received_at,
            Some(hello.uptime_ms),
        )
        .await?
        else {
            return Ok(HelloRecorded::Refused);
        };
        if !was_online {
            let session = Some(hello.session);
            log(&mut work, device, true, session, "hello_again", received_at).await?;
        }
        work.commit().await?;
        return Ok(HelloRecorded::Again);
    }
    in_work!(&mut work, |conn| {
        sqlx::query(ONLINE)
            .bind(device.as_str())
            .bind(i64::from(hello.session))
            .bind(i64::from(counter))
            .bind(&hello.firmware)
            .bind(&hello.serial_no)
            .bind(received_at)
            .bind(i64::try_from(hello.uptime_ms).unwrap_or(i64::MAX))
            .bind(i16::from(hello.protocol_version))
            .bind(hello.max_chunk.map(i32::from))
            .execute(conn)
            .await?
            .rows_affected()
    });
    log(
        &mut work,
        device,
        true,
        Some(hello.session),
        "hello",
        received_at,
    )
    .await?;
    super::firmware::seen(&mut work, device, &hello.firmware, received_at).await?;
    Ok(HelloRecorded::New(work))
}

/// The device's row as an uplink needs it: online, uptime and when it was measured. Locked for
/// the unit of work on PostgreSQL (SQLite's unit of work holds the whole file).
async fn read_device(
    work: &mut UnitOfWork,
    device: &DeviceId,
) -> Result<Option<(bool, Option<i64>, Option<DateTime<Utc>>)>, sqlx::Error> {
    Ok(in_work!(work, |conn, dialect| {
        sqlx::query_as(dialect.pick(
            "SELECT online, uptime_ms, uptime_at FROM devices WHERE id = $1 FOR UPDATE",
            "SELECT online, uptime_ms, uptime_at FROM devices WHERE id = $1",
        ))
        .bind(device.as_str())
        .fetch_optional(conn)
        .await?
    }))
}

/// Whether an uptime of `uptime_ms` received at `received_at` places the locker's clock better
/// than the stored one. (An uptime received at `received_at` says the locker's clock then was at
/// least that: it may have waited in a queue. Of all such lower bounds the highest is the
/// closest, so a late message never drags the estimate back and makes commands expire early.)
fn closer(
    uptime_ms: u64,
    received_at: DateTime<Utc>,
    stored: Option<(i64, DateTime<Utc>)>,
) -> bool {
    let Some((stored_ms, stored_at)) = stored else {
        return true;
    };
    let boot = |ms: i64, at: DateTime<Utc>| i128::from(ms) - i128::from(at.timestamp_millis());
    boot(i64::try_from(uptime_ms).unwrap_or(i64::MAX), received_at) > boot(stored_ms, stored_at)
}

/// Takes an uplink's counter into the stored anti-replay window of the device's current session
/// (in one statement: check and update together), updating last-seen and bringing it online, and
/// the locker's clock if `uptime_ms` tells it better (see [`closer`]). `None` if the database
/// refuses (another session, or a counter seen before or older than the window: a replay that got
/// past a gateway's memory, or an uplink another gateway recorded), else whether it was online
/// before and the session's window after it. Counters may arrive in any order (several
/// gateways); each is taken once.
async fn advance(
    work: &mut UnitOfWork,
    device: &DeviceId,
    session: u32,
    counter: u32,
    received_at: DateTime<Utc>,
    uptime_ms: Option<u64>,
) -> Result<Option<(bool, ReplayWindow)>, sqlx::Error> {
    // `ahead`: how far the counter is above the highest; `behind`: below it. Shifts are guarded
    // (a shift by 64 or more is not a shift in either database).
    const ADVANCE: &str = "UPDATE devices SET
                up_window = CASE
                    WHEN $3 > coalesce(up_counter, 0) THEN CASE
                        WHEN $3 - coalesce(up_counter, 0) >= 64 THEN 1
                        ELSE (up_window << CAST($3 - coalesce(up_counter, 0) AS INTEGER)) | 1 END
                    ELSE up_window | (CAST(1 AS BIGINT) << CAST(coalesce(up_counter, 0) - $3 AS INTEGER))
                END,
                up_counter = CASE WHEN $3 > coalesce(up_counter, 0) THEN $3 ELSE up_counter END,
                last_seen_at = CASE WHEN last_seen_at > $4 THEN last_seen_at ELSE $4 END,
                online = true,
                presence_changed_at = CASE WHEN online THEN presence_changed_at ELSE $4 END,
                uptime_ms = CASE WHEN $6 THEN $5 ELSE uptime_ms END,
                uptime_at = CASE WHEN $6 THEN $4 ELSE uptime_at END
         WHERE id = $1 AND session = $2 AND revoked_at IS NULL AND $3 > 0
           AND ($3 > coalesce(up_counter, 0)
                OR (coalesce(up_counter, 0) - $3 < 64
                    AND (up_window & (CAST(1 AS BIGINT) << CAST(coalesce(up_counter, 0) - $3 AS INTEGER))) = 0))
         RETURNING up_counter, up_window";
    let Some((was_online, stored_ms, stored_at)) = read_device(work, device).await? else {
        return Ok(None);
    };
    let closer = uptime_ms.is_some_and(|ms| closer(ms, received_at, stored_ms.zip(stored_at)));
    let advanced: Option<(Option<i64>, i64)> = in_work!(work, |conn| {
        sqlx::query_as(ADVANCE)
            .bind(device.as_str())
            .bind(i64::from(session))
            .bind(i64::from(counter))
            .bind(received_at)
            .bind(uptime_ms.map(|ms| i64::try_from(ms).unwrap_or(i64::MAX)))
            .bind(closer)
            .fetch_optional(conn)
            .await?
    });
    Ok(advanced.map(|(highest, bits)| {
        let highest = highest.and_then(|h| u32::try_from(h).ok()).unwrap_or(0);
        (was_online, ReplayWindow::restore(highest, bits as u64))
    }))
}

/// Any other verified uplink: moves the stored counter forward (fenced: refused if another
/// gateway already accepted this counter), updates last-seen, brings the device back online if a
/// heartbeat timeout had marked it offline, and records what it says about doors and alarms, in
/// the caller's unit of work. Returns `false` (and writes nothing) if the database refused the
/// counter.
pub async fn uplink(
    work: &mut UnitOfWork,
    device: &DeviceId,
    session: u32,
    counter: u32,
    message: &Uplink,
    received_at: DateTime<Utc>,
) -> Result<Uplinked, sqlx::Error> {
    // The locker's clock, for deadlines it enforces itself (`expires_at_ms`).
    let uptime = match message {
        Uplink::Heartbeat(m) => Some(m.uptime_ms),
        Uplink::DoorEvent(m) => Some(m.uptime_ms),
        Uplink::Alarm(m) => Some(m.uptime_ms),
        _ => None,
    };
    let Some((was_online, window)) =
        advance(work, device, session, counter, received_at, uptime).await?
    else {
        return Ok(Uplinked::Fenced);
    };
    if !was_online {
        log(
            work,
            device,
            true,
            Some(session),
            "uplink_resumed",
            received_at,
        )
        .await?;
    }
    let raised = super::door_events::record(work, device, (session, counter), message).await?;
    Ok(Uplinked::Fresh { raised, window })
}

/// What recording an uplink came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uplinked {
    /// Its session or counter was accepted before: nothing written.
    Fenced,
    /// Recorded, with the alarm it raised, if any.
    Fresh {
        /// The alarm.
        raised: Option<super::door_events::Raised>,
        /// The session's uplink window after it (which counters before it are still to come).
        window: ReplayWindow,
    },
}

/// A last will naming `session`: the device goes offline only if that is still its current
/// session (a late will from an older connection changes nothing). Returns whether it changed.
pub async fn last_will(
    storage: &Storage,
    device: &DeviceId,
    session: u32,
) -> Result<bool, sqlx::Error> {
    went_offline(storage, device, session, OfflineReason::LastWill).await
}

/// The device is offline for `reason` if `session` is still its current session. Returns whether
/// it changed.
pub async fn went_offline(
    storage: &Storage,
    device: &DeviceId,
    session: u32,
    reason: OfflineReason,
) -> Result<bool, sqlx::Error> {
    const OFFLINE: &str = "UPDATE devices SET online = false, presence_changed_at = $3
         WHERE id = $1 AND online AND session = $2";
    let now = Utc::now();
    let mut work = storage.begin().await?;
    let changed = in_work!(&mut work, |conn| {
        sqlx::query(OFFLINE)
            .bind(device.as_str())
            .bind(i64::from(session))
            .bind(now)
            .execute(conn)
            .await?
            .rows_affected()
    }) > 0;
    if changed {
        log(
            &mut work,
            device,
            false,
            Some(session),
            reason.as_str(),
            now,
        )
        .await?;
    }
    work.commit().await?;
    Ok(changed)
}

/// Marks offline every online device silent for longer than `timeout`. Returns how many.
pub async fn sweep(storage: &Storage, timeout: std::time::Duration) -> Result<usize, sqlx::Error> {
    let now = Utc::now();
    let silent_since = crate::storage::before(now, timeout);
    let mut work = storage.begin().await?;
    let rows: Vec<(String, Option<i64>)> = in_work!(&mut work, |conn, dialect| {
        sqlx::query_as(dialect.pick(
            "UPDATE devices SET online = false, presence_changed_at = $2
             WHERE id IN (SELECT id FROM devices WHERE online AND last_seen_at < $1
                          ORDER BY id FOR UPDATE SKIP LOCKED LIMIT 1000)
             RETURNING id, session",
            "UPDATE devices SET online = false, presence_changed_at = $2
             WHERE id IN (SELECT id FROM devices WHERE online AND last_seen_at < $1
                          ORDER BY id LIMIT 1000)
             RETURNING id, session",
        ))
        .bind(silent_since)
        .bind(now)
        .fetch_all(conn)
        .await?
    });
    let reason = OfflineReason::HeartbeatTimeout.as_str();
    for (id, session) in &rows {
        let Some(device) = DeviceId::new(id) else {
            continue;
        };
        let session = session.and_then(|s| u32::try_from(s).ok());
        log(&mut work, &device, false, session, reason, now).await?;
    }
    work.commit().await?;
    Ok(rows.len())
}
