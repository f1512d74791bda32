//! Alarms during a rental: a break-in or tampering at a rented door is for operators to look at,
//! so the running rentals of that door (or of the whole locker, when it did not say which door)
//! are flagged `alarm.{kind}`, in the unit of work that records the alarm.

use firmware_protocol::{AlarmKind, DeviceId};

use crate::device::door_events::{Raised, alarm_kind};
use crate::storage::{UnitOfWork, in_work};

/// Flags the running rentals concerned by `raised`, if it is a break-in or tampering.
pub async fn flag(
    work: &mut UnitOfWork,
    device: &DeviceId,
    raised: Raised,
) -> Result<(), sqlx::Error> {
    if !matches!(raised.kind, AlarmKind::ForcedOpen | AlarmKind::Tamper) {
        return Ok(());
    }
    let flag = format!("alarm.{}", alarm_kind(raised.kind));
    let (pg, sqlite) = crate::rental::add_flag_sql!(
        "$3",
        "device_id = $1 AND ($2 IS NULL OR door = $2) AND state IN ('pending', 'active', 'ending')"
    );
    in_work!(work, |conn, dialect| {
        sqlx::query(dialect.pick(pg, sqlite))
            .bind(device.as_str())
            .bind(raised.door.map(i32::from))
            .bind(&flag)
            .execute(conn)
            .await?
            .rows_affected()
    });
    Ok(())
}
