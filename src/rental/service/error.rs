//! Why a rental operation did not happen, and why a door did not open.

use uuid::Uuid;

use crate::storage::Unexpected;
use crate::unlock::DoorFailure;
use crate::wallet::WalletError;

/// Why a rental did not start. When a rental was created and then cancelled, the variant carries
/// its id; its hold was released.
#[derive(Debug, thiserror::Error)]
pub enum RentalError {
    /// No Redis, or Redis does not answer: no door is rented without its lock.
    #[error("rentals are unavailable: door locks cannot be taken ({0})")]
    LocksUnavailable(String),
    /// The user has the most running rentals allowed.
    #[error("you already have {0} running rentals")]
    TooManyActive(i64),
    /// The user owes money.
    #[error("an unpaid debt blocks new rentals; top up first")]
    Debt,
    /// No such locker.
    #[error("no such locker")]
    UnknownDevice,
    /// The locker has no door of that number.
    #[error("the locker has no such door")]
    NoSuchDoor,
    /// None of the locker's doors is of that size class.
    #[error("the locker has no door of this size")]
    NoSuchSize,
    /// No plan for the door's size.
    #[error("no price plan for this door size")]
    NoPlan,
    /// Every matching door is taken, out of service or open.
    #[error("no free door")]
    NoFreeDoor,
    /// Not enough money for the deposit.
    #[error("not enough money for the deposit")]
    InsufficientFunds,
    /// The door of a new rental did not open (jammed, refused, offline, overloaded): the rental
    /// was cancelled and its hold released. For a timeout the rental waits (`pending`) for the
    /// locker's report instead.
    #[error("{}", not_started(.1))]
    NotStarted(Uuid, DoorFailure),
    /// During a rental (a pickup, a reopen) the locker did not answer in time: whether the door
    /// opened is not known yet, and the locker is being asked. After a pickup the rental stays
    /// `ending`: if the door opened, it ends as of that moment; if not, it runs on and the wait is
    /// not billed.
    #[error(
        "the locker did not answer in time; whether the door opened is not known yet and the \
         locker is being asked (the rental is {state}{})",
        if *.state == crate::rental::RentalState::Ending {
            ": if the door opened it ends as of that moment, else it runs on and the wait is not billed"
        } else {
            ""
        }
    )]
    OutcomeUnknown {
        /// The rental.
        id: Uuid,
        /// Its state now.
        state: crate::rental::RentalState,
    },
    /// The wallet kept changing under us.
    #[error("the wallet is busy; try again")]
    Busy,
    /// No such rental of this user.
    #[error("no such rental")]
    NotFound,
    /// Another gateway settled this rental first.
    #[error("the rental was settled meanwhile")]
    AlreadySettled,
    /// A refund that cannot be made.
    #[error("cannot refund: {0}")]
    NotRefundable(String),
    /// The rental is not running (ended, cancelled, or already ending).
    #[error("the rental is {0}, not active")]
    NotActive(crate::rental::RentalState),
    /// Someone else is opening this door right now.
    #[error("the door is being opened by another request; try again")]
    DoorBusy,
    /// During a rental, the door did not open; the rental continues and nothing was charged.
    #[error("the door did not open ({1}); the rental continues and nothing was charged")]
    NotOpened(Uuid, DoorFailure),
    /// The database failed, or an invariant broke (the cause kept).
    #[error("unexpected: {0}")]
    Unexpected(#[source] Unexpected),
}

fn not_started(failure: &DoorFailure) -> String {
    match failure {
        DoorFailure::Timeout => "the locker did not answer in time; it is being asked what \
                                 happened: if the door opened the rental runs, else it is \
                                 cancelled and nothing is charged"
            .into(),
        DoorFailure::Jammed => "the door did not open (jammed); nothing was charged".into(),
        DoorFailure::Refused(reason) => {
            format!(
                "the locker refused to open the door ({}); nothing was charged",
                reason.name()
            )
        }
        DoorFailure::Offline => "the locker is offline; nothing was charged".into(),
        DoorFailure::Overloaded => "too many commands in flight; nothing was charged".into(),
    }
}

impl From<crate::storage::Unexpected> for RentalError {
    fn from(e: crate::storage::Unexpected) -> Self {
        Self::Unexpected(e)
    }
}

impl From<sqlx::Error> for RentalError {
    fn from(e: sqlx::Error) -> Self {
        Self::Unexpected(e.into())
    }
}

impl From<WalletError> for RentalError {
    fn from(e: WalletError) -> Self {
        match e {
            WalletError::InsufficientFunds { .. } => Self::InsufficientFunds,
            WalletError::Busy => Self::Busy,
            other => Self::Unexpected(Unexpected::new(other)),
        }
    }
}
