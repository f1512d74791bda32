//! A locker's answers, recorded: acks (first, duplicate, conflicting), door events and jam alarms
//! naming a command, reports of the doors, state reports settling commands of unknown outcome.
//! Each is fenced on the command's current state, so concurrent answers apply at most once.

use chrono::Utc;
use firmware_protocol::{Ack, CommandResult, DeviceId, UnlockDoor};

use super::{ProgressRow, progress_of};
use crate::command::Progress;
use crate::events::Append;
use crate::storage::{UnitOfWork, in_work};

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

/// Where an uplink stands among its locker's: its counter, and the highest counter below it that
/// has not been recorded yet and may still arrive (0: everything sent before it is recorded).
/// Several gateways record one locker's uplinks out of order, so what the door table says when
/// an answer is recorded is trusted only if nothing sent before the answer is still on its way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// The uplink's session.
    pub session: u32,
    /// The uplink's counter.
    pub counter: u32,
    /// The latest counter below it not recorded yet (0 if none).
    pub gap: u32,
}

impl Position {
    /// An uplink whose predecessors are all recorded (one gateway, in order).
    pub fn in_order(session: u32, counter: u32) -> Self {
        Self {
            session,
            counter,
            gap: 0,
        }
    }
}

/// Records a locker's answer. The first answer settles the command; the same answer again is
/// counted as a duplicate; a different one is kept as a conflict and flagged, never applied.
/// An executed unlock of a door the table says is open is `already_open` if the table can be
/// trusted at this point ([`Arrival`], and the ack's [`Position`]: everything sent before it
/// recorded, the door's state from before it). Returns the command's progress, or `None` if the
/// device has no such command.
pub async fn record_ack(
    work: &mut UnitOfWork,
    device: &DeviceId,
    ack: &Ack,
    arrival: Arrival,
    at: Position,
) -> Result<Option<(i64, Progress)>, sqlx::Error> {
    // The usual case, in one statement: the first answer to a command awaiting one.
    const FIRST: &str = "UPDATE commands AS c SET state = $3, refusal = $4, answered_at = $6,
                settled_by = 'ack', answer_counter = $8,
                door_result = CASE
                    WHEN $3 = 'executed' AND c.kind = 'unlock' AND c.door_result IS NULL AND $5
                         AND EXISTS (SELECT 1 FROM doors d WHERE d.device_id = c.device_id
                                     AND d.door = c.door AND d.sensor = 'open'
                                     AND NOT (coalesce(d.state_session, -1) = $7
                                              AND coalesce(d.state_counter, 0) > $8))
                    THEN 'already_open' ELSE c.door_result END
         WHERE id = $1 AND device_id = $2 AND state IN ('pending', 'sent', 'unknown')
         RETURNING state, refusal, door_result";
    const DUPLICATE: &str = "UPDATE commands SET duplicates = duplicates + 1 WHERE id = $1
             RETURNING state, refusal, door_result";
    const CONFLICT: &str =
        "UPDATE commands SET conflict = $2 WHERE id = $1 RETURNING state, refusal, door_result";
    let id = ack.command_id.get() as i64;
    let (state, refusal) = match ack.result {
        CommandResult::Executed => ("executed", None),
        CommandResult::Refused(reason) => ("refused", Some(reason.name())),
    };
    let now = Utc::now();
    let first: Option<ProgressRow> = in_work!(&mut *work, |conn| sqlx::query_as(FIRST)
        .bind(id)
        .bind(device.as_str())
        .bind(state)
        .bind(refusal)
        .bind(arrival == Arrival::AsItHappens && at.gap == 0)
        .bind(now)
        .bind(i64::from(at.session))
        .bind(i64::from(at.counter))
        .fetch_optional(conn)
        .await?);
    if let Some(row) = first {
        return Ok(Some((id, progress_of(row)?)));
    }
    // Already answered (a duplicate or a conflict), or no such command.
    let current: Option<(String, Option<String>)> = in_work!(&mut *work, |conn, dialect| {
        sqlx::query_as(dialect.pick(
            "SELECT state, refusal FROM commands WHERE id = $1 AND device_id = $2 FOR UPDATE",
            "SELECT state, refusal FROM commands WHERE id = $1 AND device_id = $2",
        ))
        .bind(id)
        .bind(device.as_str())
        .fetch_optional(conn)
        .await?
    });
    let Some((current, current_refusal)) = current else {
        return Ok(None);
    };
    // (The statement above settles any command still awaiting an answer, so this one was
    // answered before.)
    let row: ProgressRow = if current == state && current_refusal.as_deref() == refusal {
        in_work!(work, |conn| sqlx::query_as(DUPLICATE)
            .bind(id)
            .fetch_one(conn)
            .await?)
    } else {
        let conflict = match &refusal {
            Some(reason) => format!("{state}:{reason}"),
            None => state.to_owned(),
        };
        tracing::warn!(command = id, %device, first = %current, second = %conflict, "conflicting answers to a command; the first one stands");
        metrics::counter!("locker_command_conflicts_total").increment(1);
        in_work!(work, |conn| sqlx::query_as(CONFLICT)
            .bind(id)
            .bind(&conflict)
            .fetch_one(conn)
            .await?)
    };
    Ok(Some((id, progress_of(row)?)))
}

/// A report of the locker's doors that says a door is open: an executed unlock of that door
/// answered before it, still without a door result, found the door open already, because a pulse
/// that opens a door is reported by a `door_event` before any later report of the doors. The
/// caller passes only reports that come after the events before them: heartbeats (a serial board
/// sends one only when nothing is queued) and, over MQTT, state reports, at their [`Position`]:
/// only unlocks answered before the report with everything in between recorded (none of the
/// locker's uplinks between them still on its way through another gateway). Only unlocks
/// answered within the last minute are considered (an open window is at most 60 s).
pub async fn open_before_report(
    work: &mut UnitOfWork,
    device: &DeviceId,
    doors: &[firmware_protocol::DoorStatus],
    at: Position,
) -> Result<Vec<(i64, Progress)>, sqlx::Error> {
    /// The statement, written once; `$doors` lists the open doors (JSON array `$2`).
    macro_rules! already_open_sql {
        ($doors:literal) => {
            concat!(
                "UPDATE commands SET door_result = 'already_open', door_at = $3
                 WHERE device_id = $1 AND kind = 'unlock' AND state = 'executed'
                   AND door_result IS NULL AND answered_at > $4
                   AND (answer_counter IS NULL
                        OR (session = $5 AND answer_counter < $6 AND answer_counter >= $7))
                   AND door IN (",
                $doors,
                ") RETURNING id, state, refusal, door_result"
            )
        };
    }
    let open: Vec<i32> = doors
        .iter()
        .zip(1..)
        .filter(|(d, _)| d.sensor == firmware_protocol::DoorSensor::Open)
        .map(|(_, n)| n)
        .collect();
    if open.is_empty() {
        return Ok(Vec::new());
    }
    let open = serde_json::json!(open);
    let now = Utc::now();
    let rows: Vec<(i64, String, Option<String>, Option<String>)> =
        in_work!(work, |conn, dialect| {
            sqlx::query_as(dialect.pick(
                already_open_sql!("SELECT value::int FROM jsonb_array_elements_text($2)"),
                already_open_sql!("SELECT value FROM json_each($2)"),
            ))
            .bind(device.as_str())
            .bind(&open)
            .bind(now)
            .bind(now - chrono::Duration::seconds(60))
            .bind(i64::from(at.session))
            .bind(i64::from(at.counter))
            .bind(i64::from(at.gap))
            .fetch_all(conn)
            .await?
        });
    rows.into_iter()
        .map(|(id, state, refusal, door)| Ok((id, progress_of((state, refusal, door))?)))
        .collect()
}

/// A door opened because of command `id`: records it once.
pub async fn record_opened(
    work: &mut UnitOfWork,
    device: &DeviceId,
    id: i64,
) -> Result<Option<(i64, Progress)>, sqlx::Error> {
    const OPENED: &str = "UPDATE commands SET door_result = coalesce(door_result, 'opened'),
                door_at = coalesce(door_at, $3)
         WHERE id = $1 AND device_id = $2 AND kind = 'unlock'
         RETURNING state, refusal, door_result";
    let now = Utc::now();
    let row: Option<ProgressRow> = in_work!(work, |conn| sqlx::query_as(OPENED)
        .bind(id)
        .bind(device.as_str())
        .bind(now)
        .fetch_optional(conn)
        .await?);
    row.map(|row| Ok((id, progress_of(row)?))).transpose()
}

/// A door did not open after its pulse: the most recent unlock of that door without a door result
/// is jammed. Recorded once; a later ack never changes it.
pub async fn record_jam(
    work: &mut UnitOfWork,
    device: &DeviceId,
    door: u16,
) -> Result<Option<(i64, Progress)>, sqlx::Error> {
    /// The statement, written once; `$lock` locks the row found, where the dialect can.
    macro_rules! jam_sql {
        ($lock:literal) => {
            concat!(
                "UPDATE commands SET door_result = 'jammed', door_at = $3
                 WHERE id = (SELECT id FROM commands
                             WHERE device_id = $1 AND door = $2 AND kind = 'unlock'
                               AND door_result IS NULL AND state IN ('sent', 'executed', 'unknown')
                             ORDER BY id DESC LIMIT 1",
                $lock,
                ") RETURNING id, state, refusal, door_result"
            )
        };
    }
    let now = Utc::now();
    let row: Option<(i64, String, Option<String>, Option<String>)> =
        in_work!(work, |conn, dialect| {
            sqlx::query_as(dialect.pick(jam_sql!(" FOR UPDATE"), jam_sql!("")))
                .bind(device.as_str())
                .bind(i32::from(door))
                .bind(now)
                .fetch_optional(conn)
                .await?
        });
    row.map(|(id, state, refusal, door)| Ok((id, progress_of((state, refusal, door))?)))
        .transpose()
}

/// Settles the device's unknown commands from a `StateReport`: each one the locker remembers takes
/// the result it reports; each one it does not know stays unknown and is surfaced once, as a
/// `command.unknown` event for operators. Returns the commands settled, with their progress.
pub async fn settle_from_report(
    work: &mut UnitOfWork,
    device: &DeviceId,
    recent: &[Ack],
) -> Result<Vec<(i64, Progress)>, sqlx::Error> {
    const SETTLE: &str = "UPDATE commands SET state = $2, refusal = $3, answered_at = $4,
                settled_by = 'state_report'
         WHERE id = $1 RETURNING state, refusal, door_result";
    const SURFACE: &str =
        "UPDATE commands SET surfaced_at = $2 WHERE id = $1 AND surfaced_at IS NULL";
    let now = Utc::now();
    let unknown: Vec<(i64, Option<i32>)> = in_work!(&mut *work, |conn, dialect| {
        sqlx::query_as(dialect.pick(
            "SELECT id, door FROM commands WHERE device_id = $1 AND state = 'unknown' ORDER BY id FOR UPDATE",
            "SELECT id, door FROM commands WHERE device_id = $1 AND state = 'unknown' ORDER BY id",
        ))
        .bind(device.as_str())
        .fetch_all(conn)
        .await?
    });
    let mut settled = Vec::new();
    for (id, door) in unknown {
        let known = recent.iter().find(|a| a.command_id.get() as i64 == id);
        match known {
            Some(ack) => {
                let (state, refusal) = match ack.result {
                    CommandResult::Executed => ("executed", None),
                    CommandResult::Refused(reason) => ("refused", Some(reason.name())),
                };
                let row: ProgressRow = in_work!(&mut *work, |conn| sqlx::query_as(SETTLE)
                    .bind(id)
                    .bind(state)
                    .bind(refusal)
                    .bind(now)
                    .fetch_one(conn)
                    .await?);
                settled.push((id, progress_of(row)?));
            }
            None => {
                let surfaced = in_work!(&mut *work, |conn| sqlx::query(SURFACE)
                    .bind(id)
                    .bind(now)
                    .execute(conn)
                    .await?
                    .rows_affected())
                    > 0;
                if surfaced {
                    let event = crate::events::Event::new(
                        "command.unknown",
                        "device",
                        device.as_str(),
                        serde_json::json!({ "device_id": device.as_str(), "command_id": id, "door": door, "reason": "forgotten" }),
                    );
                    work.append(&event).await?;
                }
            }
        }
    }
    Ok(settled)
}

/// Protocol version 2: what the doors of executed unlocks did, as a locker's `state_report`
/// tells it (`door_results`), so that a door whose own event was lost (with a gateway that died)
/// is still known. Recorded once: a result already recorded (from the door's event) stands.
pub async fn record_door_results(
    work: &mut UnitOfWork,
    device: &DeviceId,
    results: &[UnlockDoor],
) -> Result<Vec<(i64, Progress)>, sqlx::Error> {
    const RESULT: &str = "UPDATE commands SET door_result = $3, door_at = $4
         WHERE id = $1 AND device_id = $2 AND kind = 'unlock' AND door_result IS NULL
           AND state IN ('sent', 'executed', 'unknown')
         RETURNING state, refusal, door_result";
    let now = Utc::now();
    let mut recorded = Vec::new();
    for result in results {
        let id = result.command_id.get() as i64;
        let door = crate::command::DoorResult::reported(result.door);
        let row: Option<ProgressRow> = in_work!(&mut *work, |conn| sqlx::query_as(RESULT)
            .bind(id)
            .bind(device.as_str())
            .bind(door.as_str())
            .bind(now)
            .fetch_optional(conn)
            .await?);
        if let Some(row) = row {
            recorded.push((id, progress_of(row)?));
        }
    }
    Ok(recorded)
}
