//! Writing a batch of verified uplinks in one unit of work: each one's counter, presence, doors
//! and what it says about commands.

use firmware_protocol::{DeviceId, Uplink};

use crate::command::store as commands;
use crate::device::presence;
use crate::storage::{Storage, UnitOfWork};

use super::{NotWritten, Verified, Written};

/// Writes verified uplinks (no hellos) in one unit of work: each one's counter, presence, doors
/// and what it says about commands, announcing the answers to the other gateways if `announce`.
/// All or nothing.
pub(super) async fn write(
    storage: &Storage,
    batch: &[Verified],
    announce: bool,
) -> Result<Vec<Written>, sqlx::Error> {
    let mut tx = storage.begin().await?;
    // Every locker's row first, in one order for every gateway: another gateway's batch holding
    // some of them waits or is waited for, never both.
    let devices: Vec<&DeviceId> = batch.iter().map(|v| &v.device).collect();
    presence::lock_in_order(&mut tx, &devices).await?;
    let mut out = Vec::with_capacity(batch.len());
    for accepted in batch {
        let header = accepted.envelope.header;
        let message = &accepted.envelope.message;
        let uplinked = presence::uplink(
            &mut tx,
            &accepted.device,
            header.session,
            header.counter,
            message,
            accepted.received_at,
        )
        .await?;
        out.push(match uplinked {
            presence::Uplinked::Fenced => Err(NotWritten::Fenced),
            presence::Uplinked::Fresh { raised, window } => {
                if let Some(raised) = raised {
                    crate::rental::alarm::flag(&mut tx, &accepted.device, raised).await?;
                    let (kind, door) = (raised.kind, raised.door);
                    crate::alarm::raise(
                        &mut tx,
                        &accepted.device,
                        kind,
                        door,
                        accepted.received_at,
                    )
                    .await?;
                }
                // Where it stands among the locker's uplinks recorded so far: the latest counter
                // before it still on its way, if any.
                let at = commands::Position {
                    session: header.session,
                    counter: header.counter,
                    gap: window.latest_gap_below(header.counter),
                };
                Ok(
                    settle_commands(&mut tx, &accepted.device, at, message, accepted.arrival)
                        .await?,
                )
            }
        });
    }
    // Announced to every gateway, in the same transaction: a request waiting on another one
    // learns its answer at once (`command::answered`). A gateway that runs alone tells its own
    // waiters after the commit, and spares every commit PostgreSQL's lock on its notify queue.
    if announce {
        let answered: Vec<i64> = out
            .iter()
            .filter_map(|written| written.as_ref().ok())
            .flat_map(|settled| settled.iter().map(|(id, _)| *id))
            .collect();
        crate::command::answered::announce(&mut tx, &answered).await?;
    }
    tx.commit().await?;
    Ok(out)
}

/// Records what an uplink says about commands (answers, door results, a state report) in the
/// uplink's transaction; returns the commands whose progress changed, to tell their waiters after
/// the commit.
async fn settle_commands(
    conn: &mut UnitOfWork,
    device: &DeviceId,
    at: commands::Position,
    message: &Uplink,
    arrival: commands::Arrival,
) -> Result<Vec<(i64, crate::command::Progress)>, sqlx::Error> {
    let recorded = match message {
        Uplink::Ack(ack) => commands::record_ack(conn, device, ack, arrival, at).await?,
        Uplink::DoorEvent(firmware_protocol::DoorEvent {
            state: firmware_protocol::DoorMotion::Opened,
            cause: firmware_protocol::DoorCause::Commanded(id),
            ..
        }) => commands::record_opened(conn, device, id.get() as i64).await?,
        Uplink::Alarm(firmware_protocol::Alarm {
            kind: firmware_protocol::AlarmKind::Jammed,
            door: Some(door),
            ..
        }) => commands::record_jam(conn, device, *door).await?,
        Uplink::StateReport(report) => {
            let mut settled = commands::settle_from_report(conn, device, &report.recent).await?;
            // What the doors of its unlocks did (protocol version 2), events lost or not.
            settled
                .extend(commands::record_door_results(conn, device, &report.door_results).await?);
            // A serial board answers a query at once, ahead of the events it keeps for a poll.
            if arrival == commands::Arrival::AsItHappens && any_open(&report.doors) {
                settled
                    .extend(commands::open_before_report(conn, device, &report.doors, at).await?);
            }
            return Ok(settled);
        }
        // Sent over a serial line only when the board has nothing queued: always after the
        // events that came before it.
        Uplink::Heartbeat(heartbeat) if any_open(&heartbeat.doors) => {
            return commands::open_before_report(conn, device, &heartbeat.doors, at).await;
        }
        _ => return Ok(Vec::new()),
    };
    if recorded.is_none() && matches!(message, Uplink::Ack(_)) {
        tracing::warn!(%device, "an answer names no command of this device");
    }
    Ok(recorded.into_iter().collect())
}

fn any_open(doors: &[firmware_protocol::DoorStatus]) -> bool {
    doors
        .iter()
        .any(|d| d.sensor == firmware_protocol::DoorSensor::Open)
}
