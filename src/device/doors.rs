//! The doors' marks, as the sales leave them (the device module owns the `doors` table): a jam,
//! a door nobody knows the state of (suspect), a door the locker says it does not have (out of
//! service), a door that opened (its run of jams over). Each is written in the caller's unit of
//! work, with the sale that learned it.

use firmware_protocol::DeviceId;

use crate::storage::{UnitOfWork, in_work};

async fn mark(
    work: &mut UnitOfWork,
    sql: &'static str,
    (device, door): (&DeviceId, u16),
    jams_limit: i32,
) -> Result<(), sqlx::Error> {
    in_work!(work, |conn| sqlx::query(sql)
        .bind(device.as_str())
        .bind(i32::from(door))
        .bind(jams_limit)
        .execute(conn)
        .await?
        .rows_affected());
    Ok(())
}

/// The door did not open when its relay pulsed: suspect, one more jam in a row, and out of
/// service from `jams_limit` jams in a row.
pub async fn jammed(
    work: &mut UnitOfWork,
    device: &DeviceId,
    door: u16,
    jams_limit: i32,
) -> Result<(), sqlx::Error> {
    const JAMMED: &str = "UPDATE doors SET suspect = true, jams_in_row = jams_in_row + 1,
                out_of_service = out_of_service OR jams_in_row + 1 >= $3
         WHERE device_id = $1 AND door = $2";
    mark(work, JAMMED, (device, door), jams_limit).await
}

/// Nobody knows what the door did: suspect until a person looks.
pub async fn suspect(
    work: &mut UnitOfWork,
    device: &DeviceId,
    door: u16,
) -> Result<(), sqlx::Error> {
    const SUSPECT: &str =
        "UPDATE doors SET suspect = true WHERE device_id = $1 AND door = $2 AND $3 >= 0";
    mark(work, SUSPECT, (device, door), 0).await
}

/// The locker says it does not have this door.
pub async fn out_of_service(
    work: &mut UnitOfWork,
    device: &DeviceId,
    door: u16,
) -> Result<(), sqlx::Error> {
    const OUT: &str =
        "UPDATE doors SET out_of_service = true WHERE device_id = $1 AND door = $2 AND $3 >= 0";
    mark(work, OUT, (device, door), 0).await
}

/// The door opened: its run of jams is over.
pub async fn opened(
    work: &mut UnitOfWork,
    device: &DeviceId,
    door: u16,
) -> Result<(), sqlx::Error> {
    const OPENED: &str = "UPDATE doors SET jams_in_row = 0
         WHERE device_id = $1 AND door = $2 AND jams_in_row <> 0 AND $3 >= 0";
    mark(work, OPENED, (device, door), 0).await
}

/// An operator looked at the door and puts it back in service: no longer suspect or out of
/// service, its run of jams forgotten. Whether the door exists.
pub async fn back_in_service(
    storage: &crate::storage::Storage,
    device: &DeviceId,
    door: u16,
) -> Result<bool, sqlx::Error> {
    const SERVICE: &str = "UPDATE doors SET suspect = false, out_of_service = false,
                jams_in_row = 0
         WHERE device_id = $1 AND door = $2";
    let changed = crate::storage::on_pool!(storage, |pool| sqlx::query(SERVICE)
        .bind(device.as_str())
        .bind(i32::from(door))
        .execute(pool)
        .await?
        .rows_affected());
    Ok(changed > 0)
}

/// [`opened`] as a piece of a larger PostgreSQL statement (one round trip on a hot path): the
/// door is `$device`/`$door` there (placeholders), and it is written only `when` holds.
pub fn opened_piece(device: &str, door: &str, when: &str) -> String {
    format!(
        "UPDATE doors SET jams_in_row = 0
         WHERE device_id = {device} AND door = {door} AND jams_in_row <> 0 AND {when}"
    )
}
