//! The part of a sale after its money was taken, for its request: the door's unlock sent, and
//! the sale settled by what it came to, in the one way for rentals and orders alike: opened, it
//! stands; not opened, it is cancelled and its money given back (the door marked as the failure
//! says); not known yet, it waits for the locker's report ([`super::settle_waiting`]) and the
//! request says so.

use firmware_protocol::DeviceId;

use super::{DoorAfter, DoorFailure, SaleRow, Sales, Settlement, Verdict, verdict};
use crate::command::{Command, CommandService, Origin};
use crate::storage::Unexpected;

/// Unlocks the door of `sale` (at `target`), its unlock's reason `"{KIND} {id}"`, and settles the
/// sale by what the unlock came to: what the kind's settlement gives, or why the door did not
/// open ([`Sales::not_opened`]; a timeout once the unlock is attached for the reconciler).
pub async fn open<S: Sales>(
    sales: &S,
    commands: &CommandService,
    sale: &SaleRow,
    target: (DeviceId, u16),
) -> Result<S::Settled, S::Error> {
    let (device, door) = target;
    let origin = Origin {
        requested_by: Some(sale.user_id),
        reason: Some(format!("{} {}", S::KIND, sale.id)),
    };
    let sent = commands
        .send_with(device, Command::Unlock { door }, &origin)
        .await;
    crate::pause::point(S::UNLOCKED).await;
    let (settlement, command, error) = match verdict(sent) {
        Verdict::Opened {
            command,
            already_open,
        } => (Settlement::Opened { already_open }, Some(command), None),
        Verdict::Failed {
            command,
            failure,
            door: after,
        } => (
            Settlement::Cancelled {
                reason: failure.reason(),
                door: after,
            },
            command,
            Some(S::not_opened(sale.id, failure)),
        ),
        Verdict::Unknown { command } => {
            // Settled by the locker's report in the background (`settle_waiting`): opened, or
            // cancelled with the money given back.
            super::attach(sales.storage(), S::ATTACH, sale.id, command).await?;
            return Err(S::not_opened(sale.id, DoorFailure::Timeout));
        }
        Verdict::Broken(cause) => (
            Settlement::Cancelled {
                reason: "failed",
                door: DoorAfter::Free,
            },
            None,
            Some(S::Error::from(Unexpected::new(cause))),
        ),
    };
    let settled = sales.settle(sale, target, command, settlement).await?;
    match error {
        Some(error) => Err(error),
        None => Ok(settled),
    }
}
