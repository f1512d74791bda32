//! What doors are doing, from heartbeats, state reports and door events, recorded in the uplink's
//! unit of work; and the alarms that follow from it.

use chrono::{DateTime, Utc};
use firmware_protocol::{
    Alarm, AlarmKind, DeviceId, DoorCause, DoorEvent, DoorMotion, DoorSensor, DoorStatus, Uplink,
};
use serde_json::json;

use crate::events::Append;
use crate::events::Event;
use crate::storage::{Storage, UnitOfWork, in_work, on_pool};

/// An uncommanded opening and the locker's own forced-open alarm for it are one alarm, if they
/// come within this long of each other.
const SAME_OPENING_SECS: i64 = 60;

fn sensor_name(sensor: DoorSensor) -> &'static str {
    match sensor {
        DoorSensor::Open => "open",
        DoorSensor::Closed => "closed",
        DoorSensor::Unknown => "unknown",
    }
}

/// An alarm an uplink raised (its event is written): what else must follow it (a running
/// rental of its door flagged for operators) is the caller's to do, in the same unit of work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Raised {
    /// What kind.
    pub kind: AlarmKind,
    /// Which door, if the locker said.
    pub door: Option<u16>,
}

/// An alarm kind's stable name (`alarm.{name}` events, flags).
pub fn alarm_kind(kind: AlarmKind) -> &'static str {
    match kind {
        AlarmKind::ForcedOpen => "forced_open",
        AlarmKind::DoorAjar => "door_ajar",
        AlarmKind::Tamper => "tamper",
        AlarmKind::PowerLoss => "power_loss",
        AlarmKind::Jammed => "jammed",
    }
}

/// The door update a heartbeat or state report makes, written once; `$from` names the reported
/// doors (`s`: door, sensor, locked, occupied) as each dialect unpacks the JSON array `$2`.
macro_rules! store_doors_sql {
    ($from:literal) => {
        concat!(
            // A sensor that fails to answer keeps its last state through two failed reads.
            "UPDATE doors AS d SET
                sensor = CASE WHEN s.sensor <> 'unknown' THEN s.sensor
                              WHEN d.sensor_misses + 1 >= 3 THEN 'unknown'
                              ELSE d.sensor END,
                sensor_misses = CASE WHEN s.sensor <> 'unknown' THEN 0
                                     WHEN d.sensor_misses >= 1000 THEN 1000
                                     ELSE d.sensor_misses + 1 END,
                locked = s.locked, occupied = s.occupied, state_at = $3,
                state_session = $4, state_counter = $5
             FROM ",
            $from,
            // Only a newer uplink's report: one recorded late (out of order, through another
            // gateway) leaves the newer state alone.
            " WHERE d.device_id = $1 AND d.door = s.door
                AND (coalesce(d.state_session, -1) <> $4 OR coalesce(d.state_counter, 0) < $5)"
        )
    };
}

async fn store_doors(
    work: &mut UnitOfWork,
    device: &DeviceId,
    (session, counter): (u32, u32),
    doors: &[DoorStatus],
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let reported: Vec<serde_json::Value> = doors
        .iter()
        .enumerate()
        .map(|(i, d)| {
            json!({ "door": i + 1, "sensor": sensor_name(d.sensor), "locked": d.locked,
                    "occupied": d.occupied })
        })
        .collect();
    let reported = serde_json::Value::Array(reported);
    in_work!(work, |conn, dialect| {
        sqlx::query(dialect.pick(
            store_doors_sql!(
                "jsonb_to_recordset($2) AS s (door int, sensor text, locked bool, occupied bool)"
            ),
            store_doors_sql!(
                "(SELECT value ->> 'door' AS door, value ->> 'sensor' AS sensor,
                         value ->> 'locked' AS locked, value ->> 'occupied' AS occupied
                  FROM json_each($2)) AS s"
            ),
        ))
        .bind(device.as_str())
        .bind(&reported)
        .bind(now)
        .bind(i64::from(session))
        .bind(i64::from(counter))
        .execute(conn)
        .await?
        .rows_affected()
    });
    Ok(())
}

async fn alarm_event(
    work: &mut UnitOfWork,
    device: &DeviceId,
    kind: AlarmKind,
    door: Option<u16>,
    data: serde_json::Value,
) -> Result<Raised, sqlx::Error> {
    let name = alarm_kind(kind);
    let mut payload = json!({ "device_id": device.as_str(), "kind": name, "door": door });
    if let (Some(out), Some(extra)) = (payload.as_object_mut(), data.as_object()) {
        out.extend(extra.clone());
    }
    let event = Event::new(&format!("alarm.{name}"), "device", device.as_str(), payload);
    work.append(&event).await?;
    Ok(Raised { kind, door })
}

/// When the door last opened without a command, if it ever did (the row locked for the unit of
/// work on PostgreSQL; SQLite's unit of work holds the whole file).
async fn last_uncommanded_open(
    work: &mut UnitOfWork,
    device: &DeviceId,
    door: u16,
) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    let at: Option<Option<DateTime<Utc>>> = in_work!(work, |conn, dialect| {
        sqlx::query_scalar(dialect.pick(
            "SELECT uncommanded_open_at FROM doors WHERE device_id = $1 AND door = $2 FOR UPDATE",
            "SELECT uncommanded_open_at FROM doors WHERE device_id = $1 AND door = $2",
        ))
        .bind(device.as_str())
        .bind(i32::from(door))
        .fetch_optional(conn)
        .await?
    });
    Ok(at.flatten())
}

/// Whether an uncommanded opening at `at` is the same opening as one seen at `before`.
fn same_opening(before: Option<DateTime<Utc>>, at: DateTime<Utc>) -> bool {
    before.is_some_and(|before| before > at - chrono::Duration::seconds(SAME_OPENING_SECS))
}

async fn door_event(
    work: &mut UnitOfWork,
    device: &DeviceId,
    (session, counter): (u32, u32),
    event: &DoorEvent,
    now: DateTime<Utc>,
) -> Result<Option<Raised>, sqlx::Error> {
    // The door's state only from a newer uplink than the one it came from (an older event
    // recorded late leaves it); the opening itself is noted (and alarmed) whatever the order.
    const UPDATE: &str = "UPDATE doors SET
                sensor = CASE WHEN coalesce(state_session, -1) <> $6
                                   OR coalesce(state_counter, 0) < $7 THEN $3 ELSE sensor END,
                state_at = CASE WHEN coalesce(state_session, -1) <> $6
                                     OR coalesce(state_counter, 0) < $7 THEN $5 ELSE state_at END,
                locked = CASE WHEN $4 AND (coalesce(state_session, -1) <> $6
                                           OR coalesce(state_counter, 0) < $7)
                              THEN false ELSE locked END,
                uncommanded_open_at = CASE WHEN $4 THEN $5 ELSE uncommanded_open_at END,
                state_session = CASE WHEN coalesce(state_session, -1) <> $6
                                          OR coalesce(state_counter, 0) < $7 THEN $6
                                     ELSE state_session END,
                state_counter = CASE WHEN coalesce(state_session, -1) <> $6
                                          OR coalesce(state_counter, 0) < $7 THEN $7
                                     ELSE state_counter END
         WHERE device_id = $1 AND door = $2";
    let sensor = match event.state {
        DoorMotion::Opened => "open",
        DoorMotion::Closed => "closed",
    };
    let uncommanded_open =
        event.state == DoorMotion::Opened && event.cause == DoorCause::Uncommanded;
    // Raise one alarm per uncommanded opening, even if the locker raises its own too.
    let before = last_uncommanded_open(work, device, event.door).await?;
    let updated = in_work!(&mut *work, |conn| {
        sqlx::query(UPDATE)
            .bind(device.as_str())
            .bind(i32::from(event.door))
            .bind(sensor)
            .bind(uncommanded_open)
            .bind(now)
            .bind(i64::from(session))
            .bind(i64::from(counter))
            .execute(conn)
            .await?
            .rows_affected()
    });
    let mut raised = None;
    if updated > 0 && uncommanded_open && !same_opening(before, now) {
        let data =
            json!({ "source": "door_sensor", "uptime_ms": event.uptime_ms, "session": session });
        let door = Some(event.door);
        raised = Some(alarm_event(work, device, AlarmKind::ForcedOpen, door, data).await?);
    }
    if event.state == DoorMotion::Closed {
        // The door shut (its lock engages): what rentals and orders wait for.
        let data = json!({ "device_id": device.as_str(), "door": event.door, "uptime_ms": event.uptime_ms });
        work.append(&Event::new(
            "device.locked",
            "device",
            device.as_str(),
            data,
        ))
        .await?;
    }
    Ok(raised)
}

async fn alarm(
    work: &mut UnitOfWork,
    device: &DeviceId,
    session: u32,
    alarm: &Alarm,
    now: DateTime<Utc>,
) -> Result<Option<Raised>, sqlx::Error> {
    if let (AlarmKind::ForcedOpen, Some(door)) = (alarm.kind, alarm.door) {
        // Already raised for this opening from the door sensor's event?
        if same_opening(last_uncommanded_open(work, device, door).await?, now) {
            return Ok(None);
        }
    }
    let data = json!({ "source": "locker", "uptime_ms": alarm.uptime_ms, "session": session });
    Ok(Some(
        alarm_event(work, device, alarm.kind, alarm.door, data).await?,
    ))
}

/// Records what `message` (uplink `counter` of `session`) says about doors, and the alarm it
/// raises (returned), in the caller's unit of work. A door's state is taken only from an uplink
/// newer than the one it came from.
pub async fn record(
    work: &mut UnitOfWork,
    device: &DeviceId,
    (session, counter): (u32, u32),
    message: &Uplink,
) -> Result<Option<Raised>, sqlx::Error> {
    let now = Utc::now();
    let uplink = (session, counter);
    match message {
        Uplink::Heartbeat(heartbeat) => store_doors(work, device, uplink, &heartbeat.doors, now)
            .await
            .map(|()| None),
        Uplink::StateReport(report) => store_doors(work, device, uplink, &report.doors, now)
            .await
            .map(|()| None),
        Uplink::DoorEvent(event) => door_event(work, device, uplink, event, now).await,
        Uplink::Alarm(a) => alarm(work, device, session, a, now).await,
        Uplink::Hello(_)
        | Uplink::Ack(_)
        | Uplink::Pong
        | Uplink::ChunkRequest(_)
        | Uplink::UpdateReport(_) => Ok(None),
    }
}

/// A read of the device's doors that got no answer at all (a serial board silent to a poll):
/// each door's sensor keeps its last state through two such reads and is `unknown` on the third.
pub async fn unanswered_read(storage: &Storage, device: &DeviceId) -> Result<(), sqlx::Error> {
    const MISSED: &str = "UPDATE doors SET
                sensor = CASE WHEN sensor_misses + 1 >= 3 THEN 'unknown' ELSE sensor END,
                sensor_misses = CASE WHEN sensor_misses >= 1000 THEN 1000 ELSE sensor_misses + 1 END
         WHERE device_id = $1";
    on_pool!(storage, |pool| {
        sqlx::query(MISSED)
            .bind(device.as_str())
            .execute(pool)
            .await?
            .rows_affected()
    });
    Ok(())
}
