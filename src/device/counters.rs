//! A locker's downlink counters and the marks commands leave on its row (the device module owns
//! `devices`): the command store takes counters through these, in its own unit of work or, on
//! the hot path, as a piece of its one PostgreSQL statement.

use chrono::{DateTime, Utc};
use firmware_protocol::DeviceId;

use crate::storage::{Storage, UnitOfWork, in_work, on_pool};

/// What taking a command's counter reads with it: the session, the counter, the tag key, and
/// the locker's last reported uptime and when it was measured.
pub type Taken = (i64, i64, Vec<u8>, Option<i64>, Option<DateTime<Utc>>);

/// Takes the next downlink counter of an online, unrevoked locker for a command (to door `door`,
/// which it must have, if given), in `work`: `None` if the locker cannot take a command now.
pub async fn take_for_command(
    work: &mut UnitOfWork,
    device: &DeviceId,
    door: Option<u16>,
) -> Result<Option<Taken>, sqlx::Error> {
    const TAKE: &str = "UPDATE devices SET down_counter = down_counter + 1
         WHERE id = $1 AND online AND session IS NOT NULL AND revoked_at IS NULL
           AND ($2 IS NULL OR $2 BETWEEN 1 AND door_count)
         RETURNING session, down_counter, tag_key, uptime_ms, uptime_at";
    Ok(in_work!(work, |conn| sqlx::query_as(TAKE)
        .bind(device.as_str())
        .bind(door.map(i32::from))
        .fetch_optional(conn)
        .await?))
}

/// [`take_for_command`] as a piece of a larger PostgreSQL statement (one round trip on the hot
/// path): the locker is `device` and the door `door` there (placeholders, the door an `int` or
/// NULL); it returns `id` and then the columns of [`Taken`].
pub fn take_for_command_piece(device: &str, door: &str) -> String {
    format!(
        "UPDATE devices SET down_counter = down_counter + 1
         WHERE id = {device} AND online AND session IS NOT NULL AND revoked_at IS NULL
           AND ({door} IS NULL OR {door} BETWEEN 1 AND door_count)
         RETURNING id, session, down_counter, tag_key, uptime_ms, uptime_at"
    )
}

/// Takes the next `n` downlink counters of the locker's `session` at once, if that is still its
/// session: returns the first (the others follow it).
pub async fn take(
    storage: &Storage,
    device: &DeviceId,
    session: u32,
    n: u32,
) -> Result<Option<u32>, sqlx::Error> {
    const TAKE: &str =
        "UPDATE devices SET down_counter = down_counter + $3 WHERE id = $1 AND session = $2
         RETURNING down_counter";
    let n = i64::from(n.max(1));
    let last: Option<i64> = on_pool!(storage, |pool| sqlx::query_scalar(TAKE)
        .bind(device.as_str())
        .bind(i64::from(session))
        .bind(n)
        .fetch_optional(pool)
        .await?);
    Ok(last
        .map(|last| last - n + 1)
        .and_then(|first| u32::try_from(first).ok()))
}

/// The next downlink counter of the locker's `session`, taken in `work`, if that is still its
/// session.
pub async fn take_in(
    work: &mut UnitOfWork,
    device: &DeviceId,
    session: u32,
) -> Result<Option<u32>, sqlx::Error> {
    const TAKE: &str =
        "UPDATE devices SET down_counter = down_counter + 1 WHERE id = $1 AND session = $2
         RETURNING down_counter";
    let counter: Option<i64> = in_work!(work, |conn| sqlx::query_scalar(TAKE)
        .bind(device.as_str())
        .bind(i64::from(session))
        .fetch_optional(conn)
        .await?);
    Ok(counter.and_then(|c| u32::try_from(c).ok()))
}

/// Notes that the locker was asked about its commands of unknown outcome at `at`.
pub async fn state_asked(
    storage: &Storage,
    device: &DeviceId,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    const ASKED: &str = "UPDATE devices SET state_asked_at = $2 WHERE id = $1";
    on_pool!(storage, |pool| sqlx::query(ASKED)
        .bind(device.as_str())
        .bind(at)
        .execute(pool)
        .await?
        .rows_affected());
    Ok(())
}

/// What sending to a locker depends on, as the books say: the protocol version it announced in
/// its last `hello` (1 for a locker never heard from), and, for a lock board, the gateway whose
/// serial line it hangs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownlinkFacts {
    /// The protocol version of its last `hello`.
    pub protocol_version: u8,
    /// The gateway holding its serial line (`None`: a locker on MQTT).
    pub serial_gateway: Option<String>,
}

/// [`DownlinkFacts`] of `device`; `None` for an unknown device.
pub async fn downlink_facts(
    storage: &Storage,
    device: &DeviceId,
) -> Result<Option<DownlinkFacts>, sqlx::Error> {
    const READ: &str = "SELECT protocol_version, serial_gateway FROM devices WHERE id = $1";
    let row: Option<(i16, Option<String>)> = on_pool!(storage, |pool| sqlx::query_as(READ)
        .bind(device.as_str())
        .fetch_optional(pool)
        .await?);
    Ok(row.map(|(version, serial_gateway)| DownlinkFacts {
        protocol_version: u8::try_from(version).unwrap_or(1),
        serial_gateway,
    }))
}
