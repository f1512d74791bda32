//! What doors are doing, from heartbeats, state reports and door events, recorded in the uplink's
//! transaction; and the alarms that follow from it.

use firmware_protocol::{
    Alarm, AlarmKind, DeviceId, DoorCause, DoorEvent, DoorMotion, DoorSensor, DoorStatus, Uplink,
};
use serde_json::json;
use sqlx::PgConnection;

use crate::events::{Event, append};

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

fn alarm_kind(kind: AlarmKind) -> &'static str {
    match kind {
        AlarmKind::ForcedOpen => "forced_open",
        AlarmKind::DoorAjar => "door_ajar",
        AlarmKind::Tamper => "tamper",
        AlarmKind::PowerLoss => "power_loss",
        AlarmKind::Jammed => "jammed",
    }
}

async fn store_doors(
    conn: &mut PgConnection,
    device: &DeviceId,
    doors: &[DoorStatus],
) -> Result<(), sqlx::Error> {
    let numbers: Vec<i32> = (1..=doors.len() as i32).collect();
    let sensors: Vec<&str> = doors.iter().map(|d| sensor_name(d.sensor)).collect();
    let locked: Vec<bool> = doors.iter().map(|d| d.locked).collect();
    let occupied: Vec<Option<bool>> = doors.iter().map(|d| d.occupied).collect();
    // A sensor that fails to answer keeps its last state through two failed reads.
    sqlx::query(
        "UPDATE doors d SET
                sensor = CASE WHEN s.sensor <> 'unknown' THEN s.sensor
                              WHEN d.sensor_misses + 1 >= 3 THEN 'unknown'
                              ELSE d.sensor END,
                sensor_misses = CASE WHEN s.sensor = 'unknown'
                                     THEN least(d.sensor_misses + 1, 1000) ELSE 0 END,
                locked = s.locked, occupied = s.occupied, state_at = now()
         FROM unnest($2::int[], $3::text[], $4::bool[], $5::bool[]) AS s(door, sensor, locked, occupied)
         WHERE d.device_id = $1 AND d.door = s.door",
    )
    .bind(device.as_str())
    .bind(&numbers)
    .bind(&sensors)
    .bind(&locked)
    .bind(&occupied)
    .execute(conn)
    .await?;
    Ok(())
}

async fn alarm_event(
    conn: &mut PgConnection,
    device: &DeviceId,
    kind: AlarmKind,
    door: Option<u16>,
    data: serde_json::Value,
) -> Result<(), sqlx::Error> {
    let name = alarm_kind(kind);
    let mut payload = json!({ "device_id": device.as_str(), "kind": name, "door": door });
    if let (Some(out), Some(extra)) = (payload.as_object_mut(), data.as_object()) {
        out.extend(extra.clone());
    }
    let event = Event::new(&format!("alarm.{name}"), "device", device.as_str(), payload);
    append(conn, &event).await?;
    // A break-in or tampering during a rental is for operators to look at.
    if matches!(kind, AlarmKind::ForcedOpen | AlarmKind::Tamper) {
        let flag = format!("alarm.{name}");
        sqlx::query(
            "UPDATE rentals SET flags = array_append(flags, $3)
             WHERE device_id = $1 AND ($2::int IS NULL OR door = $2)
               AND state IN ('pending', 'active', 'ending') AND NOT $3 = ANY(flags)",
        )
        .bind(device.as_str())
        .bind(door.map(i32::from))
        .bind(flag)
        .execute(conn)
        .await?;
    }
    Ok(())
}

async fn door_event(
    conn: &mut PgConnection,
    device: &DeviceId,
    session: u32,
    event: &DoorEvent,
) -> Result<(), sqlx::Error> {
    let sensor = match event.state {
        DoorMotion::Opened => "open",
        DoorMotion::Closed => "closed",
    };
    let uncommanded_open =
        event.state == DoorMotion::Opened && event.cause == DoorCause::Uncommanded;
    // Raise one alarm per uncommanded opening, even if the locker raises its own too.
    let raise: Option<bool> = sqlx::query_scalar(
        "UPDATE doors d SET sensor = $3, state_at = now(),
                locked = CASE WHEN $4 THEN false ELSE d.locked END,
                uncommanded_open_at = CASE WHEN $4 THEN now() ELSE d.uncommanded_open_at END
         FROM (SELECT uncommanded_open_at AS at FROM doors
               WHERE device_id = $1 AND door = $2 FOR UPDATE) before
         WHERE d.device_id = $1 AND d.door = $2
         RETURNING $4 AND (before.at IS NULL OR before.at < now() - make_interval(secs => $5))",
    )
    .bind(device.as_str())
    .bind(i32::from(event.door))
    .bind(sensor)
    .bind(uncommanded_open)
    .bind(SAME_OPENING_SECS as f64)
    .fetch_optional(&mut *conn)
    .await?;
    if raise == Some(true) {
        let data =
            json!({ "source": "door_sensor", "uptime_ms": event.uptime_ms, "session": session });
        alarm_event(conn, device, AlarmKind::ForcedOpen, Some(event.door), data).await?;
    }
    if event.state == DoorMotion::Closed {
        // The door shut (its lock engages): what rentals and orders wait for.
        let data = json!({ "device_id": device.as_str(), "door": event.door, "uptime_ms": event.uptime_ms });
        append(
            conn,
            &Event::new("device.locked", "device", device.as_str(), data),
        )
        .await?;
    }
    Ok(())
}

async fn alarm(
    conn: &mut PgConnection,
    device: &DeviceId,
    session: u32,
    alarm: &Alarm,
) -> Result<(), sqlx::Error> {
    if let (AlarmKind::ForcedOpen, Some(door)) = (alarm.kind, alarm.door) {
        // Already raised for this opening from the door sensor's event?
        let recent: Option<bool> = sqlx::query_scalar(
            "SELECT uncommanded_open_at > now() - make_interval(secs => $3)
             FROM doors WHERE device_id = $1 AND door = $2",
        )
        .bind(device.as_str())
        .bind(i32::from(door))
        .bind(SAME_OPENING_SECS as f64)
        .fetch_optional(&mut *conn)
        .await?
        .flatten();
        if recent == Some(true) {
            return Ok(());
        }
    }
    let data = json!({ "source": "locker", "uptime_ms": alarm.uptime_ms, "session": session });
    alarm_event(conn, device, alarm.kind, alarm.door, data).await
}

/// Records what `message` says about doors, and the alarms it raises, in the caller's transaction.
pub async fn record(
    conn: &mut PgConnection,
    device: &DeviceId,
    session: u32,
    message: &Uplink,
) -> Result<(), sqlx::Error> {
    match message {
        Uplink::Heartbeat(heartbeat) => store_doors(conn, device, &heartbeat.doors).await,
        Uplink::StateReport(report) => store_doors(conn, device, &report.doors).await,
        Uplink::DoorEvent(event) => door_event(conn, device, session, event).await,
        Uplink::Alarm(a) => alarm(conn, device, session, a).await,
        Uplink::Hello(_) | Uplink::Ack(_) | Uplink::Pong => Ok(()),
    }
}

/// A read of the device's doors that got no answer at all (a serial board silent to a poll):
/// each door's sensor keeps its last state through two such reads and is `unknown` on the third.
pub async fn unanswered_read(pool: &sqlx::PgPool, device: &DeviceId) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE doors SET
                sensor = CASE WHEN sensor_misses + 1 >= 3 THEN 'unknown' ELSE sensor END,
                sensor_misses = least(sensor_misses + 1, 1000)
         WHERE device_id = $1",
    )
    .bind(device.as_str())
    .execute(pool)
    .await?;
    Ok(())
}
