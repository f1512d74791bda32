//! Commands in storage. Every change is one statement or one unit of work, fenced on the
//! command's current state, so concurrent answers (a duplicate, a late ack, a resend's ack) apply
//! at most once.

use chrono::{DateTime, Utc};
use firmware_protocol::{DeviceId, DeviceKey, RefuseReason};

use crate::events::Append;
use crate::storage::{Storage, UnitOfWork, in_work, on_pool};

mod answers;
pub use answers::*;

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
    /// The locker has no such door (it has doors 1 to the number given).
    #[error("the locker has no door {door}: its doors are 1 to {count}")]
    NoSuchDoor {
        /// The door asked for.
        door: u16,
        /// The locker's doors.
        count: u16,
    },
    /// The database failed.
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

/// A stored state by its name; `None` for a name the schema does not allow, or a refusal without
/// a reason any locker gives.
fn state_named(state: &str, refusal: Option<&str>) -> Option<CommandState> {
    Some(match state {
        "pending" => CommandState::Pending,
        "sent" => CommandState::Sent,
        "executed" => CommandState::Executed,
        "refused" => CommandState::Refused(refusal.and_then(RefuseReason::from_name)?),
        "expired" => CommandState::Expired,
        "cancelled" => CommandState::Cancelled,
        "unknown" => CommandState::Unknown,
        _ => return None,
    })
}

/// A command's state, refusal and door result as both backends return them.
pub type ProgressRow = (String, Option<String>, Option<String>);

/// The progress a stored row says; a state the schema does not allow is an error (never taken
/// for `unknown`).
pub fn progress_of((state, refusal, door): ProgressRow) -> Result<Progress, sqlx::Error> {
    let Some(state) = state_named(&state, refusal.as_deref()) else {
        return Err(sqlx::Error::Decode(
            format!("a command in the state {state:?}, which no command may be in").into(),
        ));
    };
    Ok(Progress {
        state,
        door: door.as_deref().and_then(DoorResult::parse),
    })
}

/// The locker's uptime (ms) at `now`, from the last one it reported (`ms` measured at `at`).
fn uptime_at(ms: Option<i64>, at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Option<u64> {
    let since = now.signed_duration_since(at?).num_milliseconds();
    u64::try_from(ms?.saturating_add(since)).ok()
}

/// What reserving a command reads back: its id, the device's session and counter, its tag key,
/// its last reported uptime and when.
type ReservedRow = (i64, i64, i64, Vec<u8>, Option<i64>, Option<DateTime<Utc>>);

/// Stores a command for a device that is online, taking the next downlink counter of its current
/// session, atomically (on PostgreSQL in one statement, one round trip); also returns the
/// device's current tag key, read with it, so a rotation cannot slip between the key and the
/// counter.
/// `gateway` is the gateway whose request waits for it: only once its lease expired do the others
/// take the command over.
pub async fn reserve(
    storage: &Storage,
    device: &DeviceId,
    (kind, door, body): (&str, Option<u16>, &serde_json::Value),
    origin: &super::Origin,
    gateway: Option<&str>,
) -> Result<Reserved, StoreError> {
    const INSERT: &str = "INSERT INTO commands (device_id, kind, door, body, session, counter,
                              requested_by, reason, created_at, gateway)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id";
    let now = Utc::now();
    let row: Option<ReservedRow> = match storage {
        Storage::Postgres(pool) => {
            // The counter taken (the device's piece) and the command stored in one statement.
            static RESERVE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
                format!(
                    "WITH d AS ({}), c AS (
                         INSERT INTO commands (device_id, kind, door, body, session, counter,
                                               requested_by, reason, created_at, gateway)
                         SELECT id, $2, $3, $4, session, down_counter, $5, $6, $7, $8 FROM d
                         RETURNING id
                     )
                     SELECT c.id, d.session, d.down_counter, d.tag_key, d.uptime_ms, d.uptime_at
                     FROM c, d",
                    crate::device::counters::take_for_command_piece("$1", "$3::int")
                )
            });
            sqlx::query_as(RESERVE.as_str())
                .bind(device.as_str())
                .bind(kind)
                .bind(door.map(i32::from))
                .bind(body)
                .bind(origin.requested_by)
                .bind(&origin.reason)
                .bind(now)
                .bind(gateway)
                .fetch_optional(pool)
                .await?
        }
        Storage::Sqlite(_) => {
            let mut work = storage.begin().await?;
            let taken = crate::device::counters::take_for_command(&mut work, device, door).await?;
            match taken {
                None => None,
                Some((session, counter, key, uptime_ms, uptime_at)) => {
                    let id: i64 = in_work!(&mut work, |conn| sqlx::query_scalar(INSERT)
                        .bind(device.as_str())
                        .bind(kind)
                        .bind(door.map(i32::from))
                        .bind(body)
                        .bind(session)
                        .bind(counter)
                        .bind(origin.requested_by)
                        .bind(&origin.reason)
                        .bind(now)
                        .bind(gateway)
                        .fetch_one(conn)
                        .await?);
                    work.commit().await?;
                    Some((id, session, counter, key, uptime_ms, uptime_at))
                }
            }
        }
    };
    let Some((id, session, counter, key, uptime_ms, uptime_since)) = row else {
        // Why not: a revoked device is as unknown as a missing one.
        return Err(match door_check(storage, device, door).await? {
            Ok(()) => StoreError::Offline,
            Err(e) => e,
        });
    };
    let invalid = |what: &str| StoreError::Database(sqlx::Error::Protocol(what.into()));
    let key = <[u8; 32]>::try_from(key.as_slice())
        .map(DeviceKey::from_bytes)
        .map_err(|_| invalid("stored tag key has the wrong length"))?;
    Ok(Reserved {
        id,
        key,
        locker_uptime_ms: uptime_at(uptime_ms, uptime_since, now),
        session: u32::try_from(session).map_err(|_| invalid("session out of range"))?,
        counter: u32::try_from(counter).map_err(|_| invalid("counter out of range"))?,
    })
}

/// Whether `device` is a known, unrevoked locker with `door` (if given) among its doors:
/// `Err` says which is not so. Nothing is written.
pub async fn door_check(
    storage: &Storage,
    device: &DeviceId,
    door: Option<u16>,
) -> Result<Result<(), StoreError>, sqlx::Error> {
    const DOORS: &str = "SELECT door_count FROM devices WHERE id = $1 AND revoked_at IS NULL";
    let count: Option<i32> = on_pool!(storage, |pool| sqlx::query_scalar(DOORS)
        .bind(device.as_str())
        .fetch_optional(pool)
        .await?);
    let Some(count) = count else {
        return Ok(Err(StoreError::UnknownDevice));
    };
    let count = u16::try_from(count).unwrap_or(0);
    Ok(match door {
        Some(door) if !(1..=count).contains(&door) => Err(StoreError::NoSuchDoor { door, count }),
        _ => Ok(()),
    })
}

/// Records one (re)send: the first one stores the sealed payload and moves `pending` to `sent`.
pub async fn mark_sent(storage: &Storage, id: i64, payload: &str) -> Result<(), sqlx::Error> {
    const SENT: &str =
        "UPDATE commands SET state = CASE WHEN state = 'pending' THEN 'sent' ELSE state END,
                payload = coalesce(payload, $2), attempts = attempts + 1,
                sent_at = coalesce(sent_at, $3)
         WHERE id = $1";
    let now = Utc::now();
    on_pool!(storage, |pool| sqlx::query(SENT)
        .bind(id)
        .bind(payload)
        .bind(now)
        .execute(pool)
        .await?
        .rows_affected());
    Ok(())
}

/// A command's progress as the books have it (`None`: no such command): what any gateway
/// recorded, whichever one the locker's answer reached.
pub async fn progress(storage: &Storage, id: i64) -> Result<Option<Progress>, sqlx::Error> {
    const READ: &str = "SELECT state, refusal, door_result FROM commands WHERE id = $1";
    let row: Option<ProgressRow> = on_pool!(storage, |pool| sqlx::query_as(READ)
        .bind(id)
        .fetch_optional(pool)
        .await?);
    row.map(progress_of).transpose()
}

/// No answer came: the outcome is unknown (it may still be settled by asking the locker).
pub async fn mark_unknown(storage: &Storage, id: i64) -> Result<(), sqlx::Error> {
    const UNKNOWN: &str =
        "UPDATE commands SET state = 'unknown' WHERE id = $1 AND state IN ('pending', 'sent')";
    on_pool!(storage, |pool| sqlx::query(UNKNOWN)
        .bind(id)
        .execute(pool)
        .await?
        .rows_affected());
    Ok(())
}

/// The device's current session and whether it is online.
pub async fn current_session(
    storage: &Storage,
    device: &DeviceId,
) -> Result<Option<u32>, sqlx::Error> {
    const SESSION: &str = "SELECT session FROM devices WHERE id = $1 AND online";
    let session: Option<Option<i64>> = on_pool!(storage, |pool| sqlx::query_scalar(SESSION)
        .bind(device.as_str())
        .fetch_optional(pool)
        .await?);
    Ok(session.flatten().and_then(|s| u32::try_from(s).ok()))
}

/// Takes the next downlink counter of the device's `session` (for a query), if that is still its
/// session.
pub async fn next_counter(
    storage: &Storage,
    device: &DeviceId,
    session: u32,
) -> Result<Option<u32>, sqlx::Error> {
    reserve_counters(storage, device, session, 1).await
}

/// Takes the next `n` downlink counters of the device's `session` at once, if that is still its
/// session: returns the first (the others follow it). Whoever takes them holds the device's
/// turn until everything queued before is sent (`Downlinks::turn`).
pub async fn reserve_counters(
    storage: &Storage,
    device: &DeviceId,
    session: u32,
    n: u32,
) -> Result<Option<u32>, sqlx::Error> {
    crate::device::counters::take(storage, device, session, n).await
}

/// The next downlink counter of the device's `session`, taken in `work` (queued commands going
/// out together), if that is still its session.
pub(crate) async fn next_counter_in(
    work: &mut UnitOfWork,
    device: &DeviceId,
    session: u32,
) -> Result<Option<u32>, sqlx::Error> {
    crate::device::counters::take_in(work, device, session).await
}

/// Whether the device has commands whose outcome is unknown.
pub async fn has_unknown(storage: &Storage, device: &DeviceId) -> Result<bool, sqlx::Error> {
    const UNKNOWN: &str =
        "SELECT EXISTS (SELECT 1 FROM commands WHERE device_id = $1 AND state = 'unknown')";
    Ok(on_pool!(storage, |pool| sqlx::query_scalar(UNKNOWN)
        .bind(device.as_str())
        .fetch_one(pool)
        .await?))
}

/// At start of gateway `me`: no one waits any more for the commands that were pending or sent by
/// this gateway's previous run, or by a gateway whose lease has expired (it died or stopped); their
/// outcome is unknown until the lockers are asked. A live gateway's commands are left to it.
/// Returns the online devices with unknown commands not yet surfaced (those orphaned now among
/// them), with their session.
pub async fn orphans_at_start(
    storage: &Storage,
    me: &str,
) -> Result<Vec<(DeviceId, u32)>, sqlx::Error> {
    const TO_ASK: &str = "SELECT d.id, d.session FROM devices d
         WHERE d.online AND d.session IS NOT NULL
           AND EXISTS (SELECT 1 FROM commands c WHERE c.device_id = d.id AND c.state = 'unknown'
                       AND c.surfaced_at IS NULL)";
    let mut work = storage.begin().await?;
    orphan(&mut work, me, true).await?;
    let rows: Vec<(String, i64)> = in_work!(&mut work, |conn| sqlx::query_as(TO_ASK)
        .fetch_all(conn)
        .await?);
    work.commit().await?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, session)| Some((DeviceId::new(&id)?, u32::try_from(session).ok()?)))
        .collect())
}

/// Takes over the commands in flight of gateways whose lease expired (not `me`'s): marked unknown,
/// to be asked about by the housekeeping's next pass. Returns how many.
pub async fn orphans_of_expired_gateways(storage: &Storage, me: &str) -> Result<u64, sqlx::Error> {
    let mut work = storage.begin().await?;
    let taken = orphan(&mut work, me, false).await?;
    work.commit().await?;
    Ok(taken)
}

/// Marks unknown the commands in flight whose gateway's lease is over (and, with `mine`, those of
/// `me`'s previous run and those no gateway owns).
async fn orphan(work: &mut UnitOfWork, me: &str, mine: bool) -> Result<u64, sqlx::Error> {
    const ORPHANED: &str = "UPDATE commands SET state = 'unknown'
         WHERE state IN ('pending', 'sent')
           AND (CASE WHEN gateway IS NULL OR gateway = $1 THEN $2
                     ELSE NOT EXISTS (SELECT 1 FROM gateways g
                                      WHERE g.id = commands.gateway AND g.expires_at > $3) END)";
    let taken = in_work!(work, |conn| sqlx::query(ORPHANED)
        .bind(me)
        .bind(mine)
        .bind(Utc::now())
        .execute(conn)
        .await?
        .rows_affected());
    if taken > 0 {
        metrics::counter!("locker_commands_orphaned_total").increment(taken);
    }
    Ok(taken)
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
    storage: &Storage,
    device: &DeviceId,
    after: std::time::Duration,
) -> Result<Option<u64>, sqlx::Error> {
    const UPTIME: &str = "SELECT uptime_ms, uptime_at FROM devices WHERE id = $1";
    let found: Option<(Option<i64>, Option<DateTime<Utc>>)> =
        on_pool!(storage, |pool| sqlx::query_as(UPTIME)
            .bind(device.as_str())
            .fetch_optional(pool)
            .await?);
    Ok(found
        .and_then(|(ms, at)| uptime_at(ms, at, Utc::now()))
        .map(|now| deadline_in_locker_clock(now, after)))
}

/// Tells operators about commands unknown for longer than `after` that no report settled.
pub async fn surface_stale_unknown(
    storage: &Storage,
    after: std::time::Duration,
) -> Result<usize, sqlx::Error> {
    const STALE: &str = "UPDATE commands SET surfaced_at = $1
         WHERE state = 'unknown' AND surfaced_at IS NULL AND coalesce(sent_at, created_at) < $2
         RETURNING id, device_id, door";
    let now = Utc::now();
    let before = crate::storage::before(now, after);
    let mut work = storage.begin().await?;
    let rows: Vec<(i64, String, Option<i32>)> = in_work!(&mut work, |conn| sqlx::query_as(STALE)
        .bind(now)
        .bind(before)
        .fetch_all(conn)
        .await?);
    for (id, device, door) in &rows {
        let event = crate::events::Event::new(
            "command.unknown",
            "device",
            device,
            serde_json::json!({ "device_id": device, "command_id": id, "door": door, "reason": "no_report" }),
        );
        work.append(&event).await?;
    }
    work.commit().await?;
    Ok(rows.len())
}

/// Records what a door did after an unlock, unless something was recorded first (a late door
/// event or jam alarm wins); returns what stands.
pub async fn record_door_result(
    storage: &Storage,
    id: i64,
    result: DoorResult,
) -> Result<Option<DoorResult>, sqlx::Error> {
    const RESULT: &str = "UPDATE commands SET door_result = coalesce(door_result, $2),
                door_at = coalesce(door_at, $3)
         WHERE id = $1 RETURNING door_result";
    let now = Utc::now();
    let stored: Option<Option<String>> = on_pool!(storage, |pool| sqlx::query_scalar(RESULT)
        .bind(id)
        .bind(result.as_str())
        .bind(now)
        .fetch_optional(pool)
        .await?);
    Ok(stored.flatten().as_deref().and_then(DoorResult::parse))
}

/// A locker began a new `session` (in the unit of work that records it): commands sent in an
/// earlier session and never answered are not resent; their outcome is unknown until the locker
/// is asked.
pub async fn earlier_sessions_unknown(
    work: &mut UnitOfWork,
    device: &DeviceId,
    session: u32,
) -> Result<u64, sqlx::Error> {
    const UNKNOWN: &str = "UPDATE commands SET state = 'unknown'
         WHERE device_id = $1 AND state IN ('pending', 'sent') AND session <> $2";
    Ok(in_work!(work, |conn| sqlx::query(UNKNOWN)
        .bind(device.as_str())
        .bind(i64::from(session))
        .execute(conn)
        .await?
        .rows_affected()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_state_no_command_may_be_in_is_an_error_not_unknown() {
        let row = |state: &str| (state.to_owned(), None, Some("opened".to_owned()));
        let executed = progress_of(row("executed")).expect("a state");
        assert_eq!(executed.state, CommandState::Executed);
        assert_eq!(executed.door, Some(DoorResult::Opened));
        assert_eq!(
            progress_of(row("unknown")).expect("a state").state,
            CommandState::Unknown
        );
        assert!(progress_of(row("exploded")).is_err());
        let refused = |reason: Option<&str>| {
            progress_of(("refused".to_owned(), reason.map(str::to_owned), None))
        };
        assert_eq!(
            refused(Some("busy")).expect("a state").state,
            CommandState::Refused(RefuseReason::Busy)
        );
        assert!(refused(Some("exploded")).is_err());
        assert!(refused(None).is_err());
    }
}
