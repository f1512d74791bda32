//! Why an order did not happen, or did not complete.

use uuid::Uuid;

use crate::storage::Unexpected;
use crate::unlock::DoorFailure;
use crate::wallet::WalletError;

/// Why an order was refused (nothing written), or cancelled after its door failed (the variant
/// carries its id; the money and the stock went back).
#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    /// No Redis: no door is opened without its lock.
    #[error("orders are unavailable: door locks cannot be taken ({0})")]
    LocksUnavailable(String),
    /// Not an order: no items, too many, a product twice, a quantity out of range.
    #[error("{0}")]
    Invalid(String),
    /// The user owes money.
    #[error("an unpaid debt blocks new orders; top up first")]
    Debt,
    /// No such locker.
    #[error("no such locker")]
    UnknownDevice,
    /// No such product.
    #[error("no such product: {0}")]
    UnknownProduct(Uuid),
    /// The product is no longer sold.
    #[error("product {0} is no longer sold")]
    Withdrawn(Uuid),
    /// Not enough of an item behind one usable door.
    #[error("out of stock: {0}")]
    OutOfStock(String),
    /// Another order or rental is opening the door right now.
    #[error("the door with these items is busy; try again")]
    DoorBusy,
    /// Not enough money.
    #[error("not enough money for this order")]
    InsufficientFunds,
    /// The wallet kept changing under us.
    #[error("the wallet is busy; try again")]
    Busy,
    /// The door did not open: cancelled and refunded (for a timeout: the locker is being asked,
    /// and the order is refunded if the door did not open).
    #[error("{}", not_opened(.1))]
    NotOpened(Uuid, DoorFailure),
    /// A product with this SKU exists.
    #[error("a product with SKU {0} exists")]
    SkuTaken(String),
    /// No such door on the locker.
    #[error("no such door")]
    NoSuchDoor,
    /// The door is rented: its content is the renter's.
    #[error("the door is rented; its stock cannot change")]
    DoorRented,
    /// No such order.
    #[error("no such order")]
    NotFound,
    /// A refund that cannot be: the order is not completed, or more than its total would be
    /// given back.
    #[error("not refundable: {0}")]
    NotRefundable(String),
    /// Settled meanwhile (by another gateway's reconciler).
    #[error("the order was settled meanwhile")]
    AlreadySettled,
    /// The database failed, or an invariant broke (the cause kept).
    #[error("unexpected: {0}")]
    Unexpected(#[source] Unexpected),
}

fn not_opened(failure: &DoorFailure) -> String {
    match failure {
        DoorFailure::Timeout => "the locker did not answer in time; it is being asked what \
                                 happened: if the door did not open the order is cancelled and \
                                 refunded"
            .into(),
        other => format!("the door did not open ({other}); the order is cancelled and refunded"),
    }
}

impl From<crate::storage::Unexpected> for OrderError {
    fn from(e: crate::storage::Unexpected) -> Self {
        Self::Unexpected(e)
    }
}

impl From<sqlx::Error> for OrderError {
    fn from(e: sqlx::Error) -> Self {
        Self::Unexpected(e.into())
    }
}

impl From<WalletError> for OrderError {
    fn from(e: WalletError) -> Self {
        match e {
            WalletError::InsufficientFunds { .. } => Self::InsufficientFunds,
            WalletError::Busy => Self::Busy,
            WalletError::Storage(sqlx::Error::RowNotFound) => Self::AlreadySettled,
            other => Self::Unexpected(Unexpected::new(other)),
        }
    }
}
