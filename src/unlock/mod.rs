//! What an unlock came to, for whatever sold the door behind it (a rental, a vending order): the
//! one table that turns a command's result, or the record of one, into "opened", "failed" (and
//! what that says about the door) or "not known yet"; and the marks a failed unlock leaves on a
//! door. A jammed door is an answer; a timeout is not (the locker is asked later).

use chrono::{DateTime, Utc};
use firmware_protocol::{DeviceId, RefuseReason};

use crate::command::store::progress_of;
use crate::command::{CommandError, CommandState, DoorResult, Outcome, Progress};
use crate::storage::UnitOfWork;

mod maintenance;
pub mod occupant;
mod reconcile;
mod sale;
mod sell;
pub use maintenance::maintenance_unlock;
pub use reconcile::{Sales, recover_interrupted, settle_waiting};
pub(crate) use sale::bind_sale_filter;
pub use sale::{SALE_FILTER_SQL, SaleFilter, SaleRow, SettlingRow, attach, attach_sent};
pub use sell::open;

/// Why a door did not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DoorFailure {
    /// The relay pulsed but the door did not open.
    #[error("jammed")]
    Jammed,
    /// The locker refused, for this reason.
    #[error("refused: {}", .0.name())]
    Refused(RefuseReason),
    /// The locker is offline.
    #[error("the locker is offline")]
    Offline,
    /// No answer in time.
    #[error("no answer in time")]
    Timeout,
    /// Too many commands in flight.
    #[error("the gateway is overloaded")]
    Overloaded,
}

impl DoorFailure {
    /// The stored reason of a sale cancelled by it.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Jammed => "jammed",
            Self::Refused(_) => "refused",
            Self::Offline => "offline",
            Self::Timeout => "timeout",
            Self::Overloaded => "overloaded",
        }
    }
}

/// What a failed unlock says about the door.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DoorAfter {
    /// Nothing: the door was never tried (offline, overloaded, refused for a passing reason).
    Free,
    /// It jammed: suspect, and out of service after too many jams in a row.
    Jammed,
    /// Nobody knows what it did: suspect until a person looks.
    Suspect,
    /// The locker says it does not exist.
    OutOfService,
}

/// How a sale (a rental, an order) is settled once its unlock's outcome is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    /// The door opened: the rental runs, the order is completed.
    Opened {
        /// It was open before the unlock.
        already_open: bool,
    },
    /// The door did not open: the sale is cancelled and its money given back.
    Cancelled {
        /// The stored reason.
        reason: &'static str,
        /// What that says about the door.
        door: DoorAfter,
    },
}

/// What an unlock came to.
#[derive(Debug)]
pub enum Verdict {
    /// The door opened (or was already open).
    Opened {
        /// The unlock.
        command: i64,
        /// It was open before the unlock.
        already_open: bool,
    },
    /// The door did not open.
    Failed {
        /// The unlock, if one was executed.
        command: Option<i64>,
        /// Why.
        failure: DoorFailure,
        /// What that says about the door.
        door: DoorAfter,
    },
    /// No answer: the locker is being asked; settle later from the record.
    Unknown {
        /// The unlock.
        command: i64,
    },
    /// The gateway could not send it (storage failed, the command was invalid).
    Broken(CommandError),
}

/// The verdict on an unlock just sent.
pub fn verdict(sent: Result<Outcome, CommandError>) -> Verdict {
    match sent {
        Ok(outcome) => match outcome.door {
            Some(DoorResult::Opened) => Verdict::Opened {
                command: outcome.command_id,
                already_open: false,
            },
            Some(DoorResult::AlreadyOpen) => Verdict::Opened {
                command: outcome.command_id,
                already_open: true,
            },
            // Executed, but the door did not open within the window (or never said so).
            Some(DoorResult::Jammed) | None => Verdict::Failed {
                command: Some(outcome.command_id),
                failure: DoorFailure::Jammed,
                door: DoorAfter::Jammed,
            },
        },
        Err(CommandError::Refused(reason)) => Verdict::Failed {
            command: None,
            door: if reason == RefuseReason::NoSuchDoor {
                DoorAfter::OutOfService
            } else {
                DoorAfter::Free
            },
            failure: DoorFailure::Refused(reason),
        },
        // A door the locker does not have: nothing was sent, and the door is not rented again.
        Err(CommandError::NoSuchDoor { .. }) => Verdict::Failed {
            command: None,
            failure: DoorFailure::Refused(RefuseReason::NoSuchDoor),
            door: DoorAfter::OutOfService,
        },
        // A locker installing firmware is unavailable as an offline one is: nothing was sent.
        Err(CommandError::DeviceOffline | CommandError::UnknownDevice | CommandError::Updating) => {
            Verdict::Failed {
                command: None,
                failure: DoorFailure::Offline,
                door: DoorAfter::Free,
            }
        }
        Err(CommandError::Timeout { command_id }) => Verdict::Unknown {
            command: command_id,
        },
        Err(CommandError::Overloaded) => Verdict::Failed {
            command: None,
            failure: DoorFailure::Overloaded,
            door: DoorAfter::Free,
        },
        Err(e @ (CommandError::Invalid(_) | CommandError::Unexpected(_))) => Verdict::Broken(e),
    }
}

/// A recorded unlock, as the reconcilers read it back.
#[derive(Debug, Clone, Copy)]
pub struct Record {
    /// The command.
    pub command: i64,
    /// Its state and what the door did, if it said.
    pub progress: Progress,
    /// The locker was asked and could not say (surfaced to operators).
    pub surfaced: bool,
    /// The open window after its answer has passed.
    pub window_passed: bool,
}

/// The verdict on a recorded unlock, once its outcome is known (`None`: not yet).
pub fn settled(record: Record) -> Option<Verdict> {
    use CommandState as S;
    let command = record.command;
    let jammed = Verdict::Failed {
        command: Some(command),
        failure: DoorFailure::Jammed,
        door: DoorAfter::Jammed,
    };
    Some(match (record.progress.state, record.progress.door) {
        (S::Executed, Some(DoorResult::Opened)) => Verdict::Opened {
            command,
            already_open: false,
        },
        (S::Executed, Some(DoorResult::AlreadyOpen)) => Verdict::Opened {
            command,
            already_open: true,
        },
        (S::Executed, Some(DoorResult::Jammed)) => jammed,
        (S::Executed, None) if record.window_passed => jammed,
        (S::Refused(reason), _) => Verdict::Failed {
            command: Some(command),
            door: if reason == RefuseReason::NoSuchDoor {
                DoorAfter::OutOfService
            } else {
                DoorAfter::Free
            },
            failure: DoorFailure::Refused(reason),
        },
        (S::Unknown, _) if record.surfaced => Verdict::Failed {
            command: Some(command),
            failure: DoorFailure::Timeout,
            door: DoorAfter::Suspect,
        },
        // Executed within the open window, unknown and still being asked, or not answered yet.
        (S::Pending | S::Sent | S::Executed | S::Unknown, _) => return None,
        // A sale's unlock is sent at once, never queued, so it neither expires nor is cancelled
        // unsent; were one found so, nothing says what the door did: leave it to an operator.
        (S::Expired | S::Cancelled, _) => return None,
    })
}

/// The columns a [`RecordRow`] reads, from `commands c`, as a literal (for `concat!`).
macro_rules! record_columns {
    () => {
        "c.id AS command, c.state, c.door_result, c.refusal,
         c.surfaced_at IS NOT NULL AS surfaced, c.answered_at"
    };
}
pub(crate) use record_columns;

/// The columns a [`RecordRow`] reads, from `commands c`.
pub const RECORD_COLUMNS: &str = record_columns!();

/// A recorded unlock as selected with [`RECORD_COLUMNS`].
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RecordRow {
    /// The command.
    pub command: i64,
    /// Its state.
    pub state: String,
    /// What the door did, if it said.
    pub door_result: Option<String>,
    /// Why it was refused.
    pub refusal: Option<String>,
    /// The locker was asked and could not say.
    pub surfaced: bool,
    /// When it answered.
    pub answered_at: Option<DateTime<Utc>>,
}

impl RecordRow {
    /// The verdict on this unlock (`Ok(None)`: not known yet), its open window being
    /// `open_window`; an error if the stored row says what no command may say.
    pub fn settled(
        &self,
        open_window: std::time::Duration,
    ) -> Result<Option<Verdict>, sqlx::Error> {
        Ok(settled(self.record(open_window)?))
    }

    /// As a [`Record`].
    pub fn record(&self, open_window: std::time::Duration) -> Result<Record, sqlx::Error> {
        let progress = progress_of((
            self.state.clone(),
            self.refusal.clone(),
            self.door_result.clone(),
        ))?;
        Ok(Record {
            command: self.command,
            progress,
            surfaced: self.surfaced,
            window_passed: self
                .answered_at
                .is_some_and(|at| crate::storage::after(at, open_window) < Utc::now()),
        })
    }
}

/// Writes what a failed unlock says about the door (in the caller's unit of work).
pub async fn mark_door(
    work: &mut UnitOfWork,
    device: &DeviceId,
    door: u16,
    after: DoorAfter,
    jams_limit: i32,
) -> Result<(), sqlx::Error> {
    use crate::device::doors;
    match after {
        DoorAfter::Free => Ok(()),
        DoorAfter::Jammed => doors::jammed(work, device, door, jams_limit).await,
        DoorAfter::Suspect => doors::suspect(work, device, door).await,
        DoorAfter::OutOfService => doors::out_of_service(work, device, door).await,
    }
}

/// Writes that the door opened: its run of jams is over.
pub async fn mark_opened(
    work: &mut UnitOfWork,
    device: &DeviceId,
    door: u16,
) -> Result<(), sqlx::Error> {
    crate::device::doors::opened(work, device, door).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(state: CommandState, door: Option<DoorResult>) -> Record {
        Record {
            command: 7,
            progress: Progress { state, door },
            surfaced: false,
            window_passed: false,
        }
    }

    #[test]
    fn a_recorded_unlock_is_settled_only_once_its_outcome_is_known() {
        use CommandState as S;
        assert!(matches!(
            settled(record(S::Executed, Some(DoorResult::Opened))),
            Some(Verdict::Opened {
                command: 7,
                already_open: false
            })
        ));
        assert!(matches!(
            settled(record(S::Executed, Some(DoorResult::Jammed))),
            Some(Verdict::Failed {
                door: DoorAfter::Jammed,
                ..
            })
        ));
        assert!(settled(record(S::Executed, None)).is_none());
        let window_passed = Record {
            window_passed: true,
            ..record(S::Executed, None)
        };
        assert!(matches!(
            settled(window_passed),
            Some(Verdict::Failed {
                failure: DoorFailure::Jammed,
                ..
            })
        ));
        assert!(settled(record(S::Sent, None)).is_none());
        assert!(settled(record(S::Unknown, None)).is_none());
        let asked = Record {
            surfaced: true,
            ..record(S::Unknown, None)
        };
        assert!(matches!(
            settled(asked),
            Some(Verdict::Failed {
                failure: DoorFailure::Timeout,
                door: DoorAfter::Suspect,
                ..
            })
        ));
        assert!(matches!(
            settled(record(S::Refused(RefuseReason::NoSuchDoor), None)),
            Some(Verdict::Failed {
                door: DoorAfter::OutOfService,
                ..
            })
        ));
        assert!(matches!(
            settled(record(S::Refused(RefuseReason::Busy), None)),
            Some(Verdict::Failed {
                door: DoorAfter::Free,
                failure: DoorFailure::Refused(RefuseReason::Busy),
                ..
            })
        ));
    }

    #[test]
    fn a_stored_row_no_command_may_be_in_is_an_error() {
        let row = RecordRow {
            command: 1,
            state: "exploded".into(),
            door_result: None,
            refusal: None,
            surfaced: false,
            answered_at: None,
        };
        assert!(row.settled(std::time::Duration::from_secs(5)).is_err());
    }

    #[test]
    fn a_timeout_is_not_a_failure() {
        assert!(matches!(
            verdict(Err(CommandError::Timeout { command_id: 3 })),
            Verdict::Unknown { command: 3 }
        ));
        assert!(matches!(
            verdict(Err(CommandError::DeviceOffline)),
            Verdict::Failed {
                failure: DoorFailure::Offline,
                door: DoorAfter::Free,
                command: None
            }
        ));
    }
}
