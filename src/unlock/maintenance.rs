//! An operator's maintenance unlock: sent with who and why, and what the door did written on the
//! door as a sale's unlock writes it: a door that did not open within the window is suspect, one
//! more jam in its run (out of service at the limit), and a door that opened ends its run. A
//! technician who finds a jammed door therefore sees it marked, as customers' doors are.

use firmware_protocol::DeviceId;

use super::{DoorAfter, Verdict, mark_door, mark_opened, verdict};
use crate::command::{Command, CommandError, CommandService, Origin, Outcome};
use crate::storage::Storage;

/// Opens `door` of `device` for maintenance by `origin`; marks the door by what it did (`jams_limit`
/// jams in a row put it out of service). The answer is the command's, whatever became of the
/// marks: a mark that cannot be written is logged and counted, never turned into a failure of
/// an unlock that was executed.
pub async fn maintenance_unlock(
    commands: &CommandService,
    storage: &Storage,
    (device, door): (DeviceId, u16),
    origin: &Origin,
    jams_limit: i32,
) -> Result<Outcome, CommandError> {
    let outcome = commands
        .send_with(device, Command::Unlock { door }, origin)
        .await?;
    let marked = async {
        let mut work = storage.begin().await?;
        match verdict(Ok(outcome)) {
            Verdict::Opened { .. } => mark_opened(&mut work, &device, door).await?,
            Verdict::Failed { door: after, .. } => {
                mark_door(&mut work, &device, door, after, jams_limit).await?
            }
            Verdict::Unknown { .. } | Verdict::Broken(_) => {
                mark_door(&mut work, &device, door, DoorAfter::Suspect, jams_limit).await?
            }
        }
        work.commit().await
    }
    .await;
    if let Err(e) = marked {
        metrics::counter!("locker_door_mark_failures_total").increment(1);
        tracing::error!(%device, door, error = %e, "cannot mark the door after a maintenance unlock");
    }
    Ok(outcome)
}
