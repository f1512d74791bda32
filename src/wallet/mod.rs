//! Wallets: an available and a held balance, in minor units, each change written with its ledger
//! entry in one transaction. Concurrent changes are optimistic: read the row's `version`, write
//! `WHERE version = $read`; zero rows means someone else changed it first, and the change is
//! tried again from the start (a bounded number of times, then [`WalletError::Busy`], a 409).
//! The database CHECKs keep both balances non-negative whatever happens.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::money::Currency;
use crate::storage::{Storage, UnitOfWork};

pub mod store;

/// How many times a change is tried before it is refused as busy.
pub const MAX_ATTEMPTS: u32 = 8;

/// What moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MovementKind {
    /// Money in (an operator, or the payment provider).
    TopUp,
    /// Available → held (a rental's deposit).
    Hold,
    /// Held → out (a fee taken from the hold).
    Capture,
    /// Held → available (the rest of a hold).
    Release,
    /// Available → out (a fee beyond the hold, an order).
    Charge,
    /// Out → available (money given back).
    Refund,
    /// An operator's correction, either way.
    Adjustment,
}

impl MovementKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TopUp => "top_up",
            Self::Hold => "hold",
            Self::Capture => "capture",
            Self::Release => "release",
            Self::Charge => "charge",
            Self::Refund => "refund",
            Self::Adjustment => "adjustment",
        }
    }
}

/// One change of a wallet, in minor units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Movement {
    /// What it is.
    pub kind: MovementKind,
    /// Change of the available balance.
    pub available: i64,
    /// Change of the held balance.
    pub held: i64,
    /// What it is for (a rental, a provider event, an operator's note).
    pub reference: Option<String>,
}

impl Movement {
    fn new(kind: MovementKind, available: i64, held: i64) -> Self {
        Self {
            kind,
            available,
            held,
            reference: None,
        }
    }
    /// Money in.
    pub fn top_up(amount: i64) -> Self {
        Self::new(MovementKind::TopUp, amount, 0)
    }
    /// Available → held.
    pub fn hold(amount: i64) -> Self {
        Self::new(MovementKind::Hold, -amount, amount)
    }
    /// Held → out.
    pub fn capture(amount: i64) -> Self {
        Self::new(MovementKind::Capture, 0, -amount)
    }
    /// Held → available.
    pub fn release(amount: i64) -> Self {
        Self::new(MovementKind::Release, amount, -amount)
    }
    /// Available → out.
    pub fn charge(amount: i64) -> Self {
        Self::new(MovementKind::Charge, -amount, 0)
    }
    /// Out → available.
    pub fn refund(amount: i64) -> Self {
        Self::new(MovementKind::Refund, amount, 0)
    }
    /// An operator's correction.
    pub fn adjustment(delta: i64) -> Self {
        Self::new(MovementKind::Adjustment, delta, 0)
    }
    /// With what it is for.
    pub fn for_(mut self, reference: impl Into<String>) -> Self {
        self.reference = Some(reference.into());
        self
    }
}

/// A wallet's balances, in minor units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Balance {
    /// The wallet.
    pub wallet_id: Uuid,
    /// Its owner.
    pub user_id: Uuid,
    /// Spendable.
    pub available: i64,
    /// Held for running rentals.
    pub held: i64,
    /// Owed.
    pub debt: i64,
    /// The optimistic-lock version it was read at.
    pub version: i64,
}

/// One ledger entry, in minor units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    /// Its id.
    pub id: i64,
    /// What moved.
    pub kind: String,
    /// Change of the available balance.
    pub available_delta: i64,
    /// Change of the held balance.
    pub held_delta: i64,
    /// Available balance after it.
    pub available_after: i64,
    /// Held balance after it.
    pub held_after: i64,
    /// What it was for.
    pub reference: Option<String>,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// Why a wallet change did not happen (nothing was written).
#[derive(Debug, thiserror::Error)]
pub enum WalletError {
    /// Not enough available (or held) money for it.
    #[error("not enough money: {needed} needed, {have} there")]
    InsufficientFunds {
        /// Minor units the change needs.
        needed: i64,
        /// Minor units there are.
        have: i64,
    },
    /// Changed by others every time it was tried.
    #[error("the wallet is busy with other changes; try again")]
    Busy,
    /// A movement that moves nothing, or a negative amount.
    #[error("{0}")]
    Invalid(&'static str),
    /// The wallet would hold more than the configured largest balance (`LOCKER_MAX_BALANCE`), or
    /// a sum would leave what minor units hold.
    #[error("the balance would pass the largest balance this gateway keeps, {limit} minor units")]
    BalanceLimit {
        /// The limit, minor units.
        limit: i64,
    },
    /// The work done in the change's transaction refused it (nothing was written).
    #[error("refused: {0}")]
    Aborted(&'static str),
    /// The database failed.
    #[error("storage: {0}")]
    Storage(#[from] sqlx::Error),
}

impl WalletError {
    /// The schema's constraint that refused the write made with the change, if one did.
    pub fn violation(&self) -> Option<crate::storage::Violation> {
        match self {
            Self::Storage(e) => crate::storage::violation(e),
            _ => None,
        }
    }
}

/// Wallets over a storage: each change in its own unit of work, retried when it loses a race.
#[derive(Debug, Clone)]
pub struct Wallets {
    storage: Storage,
    currency: Currency,
}

/// Work done in a change's unit of work, given it (and, for one movement, the ledger entry's id).
pub type Also<'c> = futures_util::future::BoxFuture<'c, Result<(), WalletError>>;

/// Waits a little before a change tries again, spreading racing writers apart.
async fn back_off(attempt: u32) {
    metrics::counter!("locker_wallet_conflicts_total").increment(1);
    let jitter = rand::random::<u64>() % (2 << attempt.min(6));
    tokio::time::sleep(std::time::Duration::from_millis(jitter)).await;
}

impl Wallets {
    /// Wallets in `currency` on `storage` (a PostgreSQL pool converts into one).
    pub fn new(storage: impl Into<Storage>, currency: Currency) -> Self {
        Self::on(storage.into(), currency)
    }

    /// Wallets in `currency` on `storage`.
    pub fn on(storage: Storage, currency: Currency) -> Self {
        Self { storage, currency }
    }

    /// The currency.
    pub fn currency(&self) -> &Currency {
        &self.currency
    }

    /// The user's balances.
    pub async fn balance(&self, user: Uuid) -> Result<Balance, WalletError> {
        // The usual case in one round trip; a user without a wallet gets an empty one made.
        if let Some(balance) = store::find(&self.storage, user).await? {
            return Ok(balance);
        }
        let mut work = self.storage.begin().await?;
        let balance = work.wallet_of(user, &self.currency).await?;
        work.commit().await?;
        Ok(balance)
    }

    /// Applies `movement` to the user's wallet: all of it with its ledger entry, or nothing.
    pub async fn change(&self, user: Uuid, movement: &Movement) -> Result<Balance, WalletError> {
        self.change_with(user, movement, |_, _| Box::pin(async { Ok(()) }))
            .await
    }

    /// Applies `movement` and, in the same unit of work, `also` (given it and the new ledger
    /// entry's id): both, or neither.
    pub async fn change_with<F>(
        &self,
        user: Uuid,
        movement: &Movement,
        also: F,
    ) -> Result<Balance, WalletError>
    where
        F: for<'c> Fn(&'c mut UnitOfWork, i64) -> Also<'c>,
    {
        for attempt in 0..MAX_ATTEMPTS {
            let mut work = self.storage.begin().await?;
            let read = work.wallet_of(user, &self.currency).await?;
            match work.apply(&read, movement).await? {
                Some((balance, ledger_id)) => {
                    also(&mut work, ledger_id).await?;
                    work.commit().await?;
                    return Ok(balance);
                }
                None => {
                    drop(work);
                    back_off(attempt).await;
                }
            }
        }
        Err(WalletError::Busy)
    }

    /// Applies several movements and a change of the debt, computed by `build` from the balance
    /// as read, and, in the same unit of work, `also`: all or nothing, retried when it loses a
    /// race. Movements that move nothing are skipped.
    pub async fn change_many_with<B, F>(
        &self,
        user: Uuid,
        build: B,
        also: F,
    ) -> Result<Balance, WalletError>
    where
        B: Fn(&Balance) -> Result<(Vec<Movement>, i64), WalletError>,
        F: for<'c> Fn(&'c mut UnitOfWork) -> Also<'c>,
    {
        'attempt: for attempt in 0..MAX_ATTEMPTS {
            let mut work = self.storage.begin().await?;
            let read = work.wallet_of(user, &self.currency).await?;
            let (movements, debt_delta) = build(&read)?;
            let mut current = read;
            for movement in movements.iter().filter(|m| m.available != 0 || m.held != 0) {
                match work.apply(&current, movement).await? {
                    Some((balance, _)) => current = balance,
                    None => {
                        drop(work);
                        back_off(attempt).await;
                        continue 'attempt;
                    }
                }
            }
            if debt_delta != 0 {
                if current.debt.checked_add(debt_delta).is_none() {
                    return Err(WalletError::BalanceLimit { limit: i64::MAX });
                }
                let Some(debt) = work.add_debt(&current, debt_delta).await? else {
                    drop(work);
                    back_off(attempt).await;
                    continue 'attempt;
                };
                current.debt = debt;
                current.version += 1;
            }
            also(&mut work).await?;
            work.commit().await?;
            return Ok(current);
        }
        Err(WalletError::Busy)
    }

    /// Tops up, paying any debt first from what came in (a debt is what a rental cost beyond
    /// the hold and the balance).
    pub async fn top_up(
        &self,
        user: Uuid,
        amount: i64,
        reference: &str,
    ) -> Result<Balance, WalletError> {
        self.top_up_with(user, amount, reference, |_| Box::pin(async { Ok(()) }))
            .await
    }

    /// [`Wallets::top_up`] with `also` in the same unit of work.
    pub async fn top_up_with<F>(
        &self,
        user: Uuid,
        amount: i64,
        reference: &str,
        also: F,
    ) -> Result<Balance, WalletError>
    where
        F: for<'c> Fn(&'c mut UnitOfWork) -> Also<'c>,
    {
        if amount <= 0 {
            return Err(WalletError::Invalid("a top-up must be positive"));
        }
        self.change_many_with(
            user,
            |read| {
                let limit = self.currency.max_balance;
                let total = read
                    .available
                    .checked_add(read.held)
                    .and_then(|t| t.checked_add(amount))
                    .filter(|t| *t <= limit)
                    .ok_or(WalletError::BalanceLimit { limit })?;
                let pay = read.debt.min(total - read.held);
                let mut moves = vec![Movement::top_up(amount).for_(reference)];
                if pay > 0 {
                    moves.push(Movement::charge(pay).for_("debt paid"));
                }
                Ok((moves, -pay))
            },
            also,
        )
        .await
    }

    /// The wallet's ledger, newest first, older than `before`, at most `limit`.
    pub async fn ledger(
        &self,
        user: Uuid,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<LedgerEntry>, WalletError> {
        Ok(store::ledger(&self.storage, user, before, limit).await?)
    }
}
