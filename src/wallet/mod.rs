//! Wallets: an available and a held balance, in minor units, each change written with its ledger
//! entry in one transaction. Concurrent changes are optimistic: read the row's `version`, write
//! `WHERE version = $read`; zero rows means someone else changed it first, and the change is
//! tried again from the start (a bounded number of times, then [`WalletError::Busy`], a 409).
//! The database CHECKs keep both balances non-negative whatever happens.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool, Row};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::events::{Event, append};
use crate::money::Currency;

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
    /// The work done in the change's transaction refused it (nothing was written).
    #[error("refused: {0}")]
    Aborted(&'static str),
    /// PostgreSQL failed.
    #[error("storage: {0}")]
    Storage(#[from] sqlx::Error),
}

fn balance(row: &sqlx::postgres::PgRow) -> Result<Balance, sqlx::Error> {
    Ok(Balance {
        wallet_id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        available: row.try_get("available")?,
        held: row.try_get("held")?,
        debt: row.try_get("debt")?,
        version: row.try_get("version")?,
    })
}

/// The user's wallet, made empty if they have none.
pub async fn wallet_of(
    conn: &mut PgConnection,
    user: Uuid,
    currency: &Currency,
) -> Result<Balance, sqlx::Error> {
    const READ: &str =
        "SELECT id, user_id, available, held, debt, version FROM wallets WHERE user_id = $1";
    // Read first: the wallet exists but once, and a write per read would cost every change.
    if let Some(row) = sqlx::query(READ)
        .bind(user)
        .fetch_optional(&mut *conn)
        .await?
    {
        return balance(&row);
    }
    sqlx::query(
        "INSERT INTO wallets (id, user_id, currency) VALUES ($1, $2, $3) ON CONFLICT (user_id) DO NOTHING",
    )
    .bind(Uuid::now_v7())
    .bind(user)
    .bind(&currency.code)
    .execute(&mut *conn)
    .await?;
    let row = sqlx::query(READ).bind(user).fetch_one(&mut *conn).await?;
    balance(&row)
}

/// Applies `movement` to the wallet as read in `read`, in the caller's transaction: `Ok(None)`
/// if the wallet changed since (the caller starts again), else the new balance and the ledger
/// entry's id. The balance change, its ledger entry and its event are written together.
pub async fn apply(
    conn: &mut PgConnection,
    read: &Balance,
    movement: &Movement,
) -> Result<Option<(Balance, i64)>, WalletError> {
    if movement.available == 0 && movement.held == 0 {
        return Err(WalletError::Invalid("a movement must move money"));
    }
    let available = read.available + movement.available;
    let held = read.held + movement.held;
    if available < 0 {
        return Err(WalletError::InsufficientFunds {
            needed: -movement.available,
            have: read.available,
        });
    }
    if held < 0 {
        return Err(WalletError::InsufficientFunds {
            needed: -movement.held,
            have: read.held,
        });
    }
    let updated = sqlx::query(
        "UPDATE wallets SET available = $2, held = $3, version = version + 1, updated_at = now()
         WHERE id = $1 AND version = $4",
    )
    .bind(read.wallet_id)
    .bind(available)
    .bind(held)
    .bind(read.version)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if updated == 0 {
        return Ok(None);
    }
    let ledger_id: i64 = sqlx::query_scalar(
        "INSERT INTO ledger (wallet_id, kind, available_delta, held_delta, available_after,
                             held_after, reference)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(read.wallet_id)
    .bind(movement.kind.as_str())
    .bind(movement.available)
    .bind(movement.held)
    .bind(available)
    .bind(held)
    .bind(&movement.reference)
    .fetch_one(&mut *conn)
    .await?;
    let event_type = match movement.kind {
        MovementKind::TopUp => Some("wallet.topped_up"),
        MovementKind::Capture | MovementKind::Charge => Some("payment.captured"),
        MovementKind::Refund => Some("payment.refunded"),
        _ => None,
    };
    if let Some(event_type) = event_type {
        let amount = movement.available.abs().max(movement.held.abs());
        let data = serde_json::json!({
            "wallet_id": read.wallet_id, "user_id": read.user_id, "amount_minor": amount,
            "kind": movement.kind.as_str(), "reference": movement.reference, "ledger_id": ledger_id,
        });
        append(
            conn,
            &Event::new(event_type, "wallet", &read.wallet_id.to_string(), data),
        )
        .await?;
    }
    Ok(Some((
        Balance {
            available,
            held,
            version: read.version + 1,
            ..*read
        },
        ledger_id,
    )))
}

/// Wallets over a pool: each change in its own transaction, retried when it loses a race.
#[derive(Debug, Clone)]
pub struct Wallets {
    pool: PgPool,
    currency: Currency,
}

impl Wallets {
    /// Wallets in `currency`.
    pub fn new(pool: PgPool, currency: Currency) -> Self {
        Self { pool, currency }
    }

    /// The currency.
    pub fn currency(&self) -> &Currency {
        &self.currency
    }

    /// The user's balances.
    pub async fn balance(&self, user: Uuid) -> Result<Balance, WalletError> {
        let mut conn = self.pool.acquire().await?;
        Ok(wallet_of(&mut conn, user, &self.currency).await?)
    }

    /// Applies `movement` to the user's wallet: all of it with its ledger entry, or nothing.
    pub async fn change(&self, user: Uuid, movement: &Movement) -> Result<Balance, WalletError> {
        self.change_with(user, movement, |_, _| Box::pin(async { Ok(()) }))
            .await
    }

    /// Applies `movement` and, in the same transaction, `also` (given the connection and the new
    /// ledger entry's id): both, or neither.
    pub async fn change_with<F>(
        &self,
        user: Uuid,
        movement: &Movement,
        also: F,
    ) -> Result<Balance, WalletError>
    where
        F: for<'c> Fn(
            &'c mut PgConnection,
            i64,
        ) -> futures_util::future::BoxFuture<'c, Result<(), WalletError>>,
    {
        for attempt in 0..MAX_ATTEMPTS {
            let mut tx = self.pool.begin().await?;
            let read = wallet_of(&mut tx, user, &self.currency).await?;
            match apply(&mut tx, &read, movement).await? {
                Some((balance, ledger_id)) => {
                    also(&mut tx, ledger_id).await?;
                    tx.commit().await?;
                    return Ok(balance);
                }
                None => {
                    drop(tx);
                    metrics::counter!("locker_wallet_conflicts_total").increment(1);
                    // Spread the retries of racing writers apart.
                    let jitter = rand::random::<u64>() % (2 << attempt.min(6));
                    tokio::time::sleep(std::time::Duration::from_millis(jitter)).await;
                }
            }
        }
        Err(WalletError::Busy)
    }

    /// Applies several movements and a change of the debt, computed by `build` from the balance
    /// as read, and, in the same transaction, `also`: all or nothing, retried when it loses a
    /// race. Movements that move nothing are skipped.
    pub async fn change_many_with<B, F>(
        &self,
        user: Uuid,
        build: B,
        also: F,
    ) -> Result<Balance, WalletError>
    where
        B: Fn(&Balance) -> (Vec<Movement>, i64),
        F: for<'c> Fn(
            &'c mut PgConnection,
        ) -> futures_util::future::BoxFuture<'c, Result<(), WalletError>>,
    {
        'attempt: for attempt in 0..MAX_ATTEMPTS {
            let mut tx = self.pool.begin().await?;
            let read = wallet_of(&mut tx, user, &self.currency).await?;
            let (movements, debt_delta) = build(&read);
            let mut current = read;
            for movement in movements.iter().filter(|m| m.available != 0 || m.held != 0) {
                match apply(&mut tx, &current, movement).await? {
                    Some((balance, _)) => current = balance,
                    None => {
                        drop(tx);
                        metrics::counter!("locker_wallet_conflicts_total").increment(1);
                        let jitter = rand::random::<u64>() % (2 << attempt.min(6));
                        tokio::time::sleep(std::time::Duration::from_millis(jitter)).await;
                        continue 'attempt;
                    }
                }
            }
            if debt_delta != 0 {
                let debt: Option<i64> = sqlx::query_scalar(
                    "UPDATE wallets SET debt = debt + $2, version = version + 1, updated_at = now()
                     WHERE id = $1 AND version = $3 RETURNING debt",
                )
                .bind(current.wallet_id)
                .bind(debt_delta)
                .bind(current.version)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(debt) = debt else {
                    drop(tx);
                    continue 'attempt;
                };
                current.debt = debt;
                current.version += 1;
            }
            also(&mut tx).await?;
            tx.commit().await?;
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

    /// [`Wallets::top_up`] with `also` in the same transaction.
    pub async fn top_up_with<F>(
        &self,
        user: Uuid,
        amount: i64,
        reference: &str,
        also: F,
    ) -> Result<Balance, WalletError>
    where
        F: for<'c> Fn(
            &'c mut PgConnection,
        ) -> futures_util::future::BoxFuture<'c, Result<(), WalletError>>,
    {
        if amount <= 0 {
            return Err(WalletError::Invalid("a top-up must be positive"));
        }
        self.change_many_with(
            user,
            |read| {
                let pay = read.debt.min(read.available + amount);
                let mut moves = vec![Movement::top_up(amount).for_(reference)];
                if pay > 0 {
                    moves.push(Movement::charge(pay).for_("debt paid"));
                }
                (moves, -pay)
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
        let rows = sqlx::query(
            "SELECT l.id, l.kind, l.available_delta, l.held_delta, l.available_after,
                    l.held_after, l.reference, l.created_at
             FROM ledger l JOIN wallets w ON w.id = l.wallet_id
             WHERE w.user_id = $1 AND ($2::bigint IS NULL OR l.id < $2)
             ORDER BY l.id DESC LIMIT $3",
        )
        .bind(user)
        .bind(before)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(LedgerEntry {
                    id: row.try_get("id")?,
                    kind: row.try_get("kind")?,
                    available_delta: row.try_get("available_delta")?,
                    held_delta: row.try_get("held_delta")?,
                    available_after: row.try_get("available_after")?,
                    held_after: row.try_get("held_after")?,
                    reference: row.try_get("reference")?,
                    created_at: row.try_get("created_at")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(WalletError::from)
    }
}
