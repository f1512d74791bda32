//! The wallet's statements, for each backend, as methods of the unit of work: read (creating an
//! empty wallet), apply a movement with its ledger entry and event, change the debt, list the
//! ledger. The checks that decide whether a movement may happen are done once, here, before
//! either backend writes; the databases' CHECKs stand behind them.

use uuid::Uuid;

use super::{Balance, LedgerEntry, Movement, MovementKind, WalletError};
use crate::events::Append;
use crate::events::Event;
use crate::money::Currency;
use crate::storage::{Storage, UnitOfWork, in_work, on_pool};

/// A wallet row as both backends return it.
#[derive(sqlx::FromRow)]
struct WalletRow {
    id: Uuid,
    user_id: Uuid,
    available: i64,
    held: i64,
    debt: i64,
    version: i64,
}

impl From<WalletRow> for Balance {
    fn from(row: WalletRow) -> Self {
        Self {
            wallet_id: row.id,
            user_id: row.user_id,
            available: row.available,
            held: row.held,
            debt: row.debt,
            version: row.version,
        }
    }
}

/// A ledger row as both backends return it.
#[derive(sqlx::FromRow)]
struct LedgerRow {
    id: i64,
    kind: String,
    available_delta: i64,
    held_delta: i64,
    available_after: i64,
    held_after: i64,
    reference: Option<String>,
    created_at: chrono::DateTime<chrono::Utc>,
}

const READ: &str =
    "SELECT id, user_id, available, held, debt, version FROM wallets WHERE user_id = $1";
const CREATE: &str = "INSERT INTO wallets (id, user_id, currency) VALUES ($1, $2, $3) ON CONFLICT (user_id) DO NOTHING";

/// The balance after `movement`, or why it may not happen.
fn after(read: &Balance, movement: &Movement) -> Result<(i64, i64), WalletError> {
    if movement.available == 0 && movement.held == 0 {
        return Err(WalletError::Invalid("a movement must move money"));
    }
    let overflow = WalletError::BalanceLimit { limit: i64::MAX };
    let available = read
        .available
        .checked_add(movement.available)
        .ok_or(overflow)?;
    let held = read
        .held
        .checked_add(movement.held)
        .ok_or(WalletError::BalanceLimit { limit: i64::MAX })?;
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
    Ok((available, held))
}

/// The event a movement announces, if any.
fn event_of(read: &Balance, movement: &Movement, ledger_id: i64) -> Option<Event> {
    let event_type = match movement.kind {
        MovementKind::TopUp => "wallet.topped_up",
        MovementKind::Capture | MovementKind::Charge => "payment.captured",
        MovementKind::Refund => "payment.refunded",
        _ => return None,
    };
    let amount = movement.available.abs().max(movement.held.abs());
    let data = serde_json::json!({
        "wallet_id": read.wallet_id, "user_id": read.user_id, "amount_minor": amount,
        "kind": movement.kind.as_str(), "reference": movement.reference, "ledger_id": ledger_id,
    });
    Some(Event::new(
        event_type,
        "wallet",
        &read.wallet_id.to_string(),
        data,
    ))
}

impl UnitOfWork {
    /// The user's wallet, made empty if they have none.
    pub async fn wallet_of(
        &mut self,
        user: Uuid,
        currency: &Currency,
    ) -> Result<Balance, sqlx::Error> {
        // Read first: the wallet exists but once, and a write per read would cost every change.
        let found: Option<WalletRow> = in_work!(self, |conn| {
            sqlx::query_as(READ).bind(user).fetch_optional(conn).await?
        });
        if let Some(row) = found {
            return Ok(row.into());
        }
        let id = Uuid::now_v7();
        let row: WalletRow = in_work!(self, |conn| {
            sqlx::query(CREATE)
                .bind(id)
                .bind(user)
                .bind(&currency.code)
                .execute(&mut *conn)
                .await?;
            sqlx::query_as(READ).bind(user).fetch_one(conn).await?
        });
        Ok(row.into())
    }

    /// Applies `movement` to the wallet as read in `read`: `Ok(None)` if the wallet changed since
    /// (the caller starts again), else the new balance and the ledger entry's id. The balance
    /// change, its ledger entry and its event are written together.
    pub async fn apply(
        &mut self,
        read: &Balance,
        movement: &Movement,
    ) -> Result<Option<(Balance, i64)>, WalletError> {
        let (available, held) = after(read, movement)?;
        const UPDATE: &str =
            "UPDATE wallets SET available = $2, held = $3, version = version + 1, updated_at = $5
             WHERE id = $1 AND version = $4";
        const LEDGER: &str =
            "INSERT INTO ledger (wallet_id, kind, available_delta, held_delta, available_after,
                             held_after, reference, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id";
        let now = chrono::Utc::now();
        let updated = in_work!(self, |conn| {
            sqlx::query(UPDATE)
                .bind(read.wallet_id)
                .bind(available)
                .bind(held)
                .bind(read.version)
                .bind(now)
                .execute(conn)
                .await?
                .rows_affected()
        });
        if updated == 0 {
            return Ok(None);
        }
        let kind = movement.kind.as_str();
        let ledger_id: i64 = in_work!(self, |conn| {
            sqlx::query_scalar(LEDGER)
                .bind(read.wallet_id)
                .bind(kind)
                .bind(movement.available)
                .bind(movement.held)
                .bind(available)
                .bind(held)
                .bind(&movement.reference)
                .bind(now)
                .fetch_one(conn)
                .await?
        });
        if let Some(event) = event_of(read, movement, ledger_id) {
            self.append(&event).await?;
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

    /// Adds `delta` to the wallet's debt if it is still at `read`'s version: the new debt, or
    /// `None` if it changed since.
    pub async fn add_debt(
        &mut self,
        read: &Balance,
        delta: i64,
    ) -> Result<Option<i64>, sqlx::Error> {
        const DEBT: &str =
            "UPDATE wallets SET debt = debt + $2, version = version + 1, updated_at = $4
             WHERE id = $1 AND version = $3 RETURNING debt";
        let now = chrono::Utc::now();
        Ok(in_work!(self, |conn| {
            sqlx::query_scalar(DEBT)
                .bind(read.wallet_id)
                .bind(delta)
                .bind(read.version)
                .bind(now)
                .fetch_optional(conn)
                .await?
        }))
    }
}

impl UnitOfWork {
    /// Records that the payment provider's event `event_id` was applied as the top-up referenced
    /// `payment {event_id}` in this unit of work. A second record of one event is refused by the
    /// database (a unique violation): that is how two deliveries at once apply it once.
    pub async fn record_payment(&mut self, event_id: &str, amount: i64) -> Result<(), sqlx::Error> {
        const RECORD: &str =
            "INSERT INTO payment_events (provider, event_id, wallet_id, amount, ledger_id)
             SELECT 'webhook', $1, wallet_id, $2, id FROM ledger
             WHERE reference = 'payment ' || $1 AND kind = 'top_up'
             ORDER BY id DESC LIMIT 1";
        in_work!(self, |conn| {
            sqlx::query(RECORD)
                .bind(event_id)
                .bind(amount)
                .execute(conn)
                .await?
                .rows_affected()
        });
        Ok(())
    }
}

/// The user's wallet if they have one, read outside any unit of work (one round trip).
pub async fn find(storage: &Storage, user: Uuid) -> Result<Option<Balance>, sqlx::Error> {
    let row: Option<WalletRow> = on_pool!(storage, |pool| {
        sqlx::query_as(READ).bind(user).fetch_optional(pool).await?
    });
    Ok(row.map(Balance::from))
}

/// Whether the payment provider's event `event_id` was applied already.
pub async fn payment_seen(storage: &Storage, event_id: &str) -> Result<bool, sqlx::Error> {
    const SEEN: &str = "SELECT 1 FROM payment_events WHERE provider = 'webhook' AND event_id = $1";
    let seen: Option<i32> = on_pool!(storage, |pool| {
        sqlx::query_scalar(SEEN)
            .bind(event_id)
            .fetch_optional(pool)
            .await?
    });
    Ok(seen.is_some())
}

/// The wallet's ledger, newest first, older than `before`, at most `limit`.
pub async fn ledger(
    storage: &Storage,
    user: Uuid,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<LedgerEntry>, sqlx::Error> {
    const LEDGER: &str = "SELECT l.id, l.kind, l.available_delta, l.held_delta, l.available_after,
                l.held_after, l.reference, l.created_at
         FROM ledger l JOIN wallets w ON w.id = l.wallet_id
         WHERE w.user_id = $1 AND l.id < coalesce($2, 9223372036854775807)
         ORDER BY l.id DESC LIMIT $3";
    let rows: Vec<LedgerRow> = on_pool!(storage, |pool| {
        sqlx::query_as(LEDGER)
            .bind(user)
            .bind(before)
            .bind(limit)
            .fetch_all(pool)
            .await?
    });
    Ok(rows
        .into_iter()
        .map(|r| LedgerEntry {
            id: r.id,
            kind: r.kind,
            available_delta: r.available_delta,
            held_delta: r.held_delta,
            available_after: r.available_after,
            held_after: r.held_after,
            reference: r.reference,
            created_at: r.created_at,
        })
        .collect())
}
