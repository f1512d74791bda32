//! What operators do to any rental: end it (charged as if picked up now), cancel it (no fee),
//! refund part or all of its fee.

use chrono::Utc;
use serde_json::json;
use uuid::Uuid;

use super::{Rental, RentalError, Rentals};
use crate::events::Append;
use crate::events::Event;
use crate::rental::RentalState;
use crate::storage::{UnitOfWork, in_work};
use crate::wallet::{Movement, WalletError};

impl Rentals {
    /// An operator ends a rental (without opening the door): charged as if picked up now.
    pub async fn end_by_operator(&self, id: Uuid) -> Result<Rental, RentalError> {
        let rental = self.any(id).await?;
        if !matches!(rental.state, RentalState::Active | RentalState::Ending) {
            return Err(RentalError::NotActive(rental.state));
        }
        self.finish(&rental, Utc::now()).await?;
        self.any(id).await
    }

    /// An operator cancels a running rental: no fee, the hold released.
    pub async fn cancel_by_operator(&self, id: Uuid) -> Result<Rental, RentalError> {
        let rental = self.any(id).await?;
        if !rental.state.is_running() {
            return Err(RentalError::NotActive(rental.state));
        }
        let deposit = rental.deposit_held;
        let result = if deposit > 0 {
            let release =
                Movement::release(deposit).for_(format!("rental {id} cancelled by operator"));
            self.wallets
                .change_with(rental.user_id, &release, |work, _| {
                    Box::pin(async move { cancel_rental(work, id).await })
                })
                .await
                .map(drop)
        } else {
            let mut work = self.storage.begin().await?;
            let done = cancel_rental(&mut work, id).await;
            if done.is_ok() {
                work.commit().await?;
            }
            done
        };
        match result {
            // Cancelled meanwhile by someone else (its hold already released).
            Err(WalletError::Invalid(_) | WalletError::InsufficientFunds { .. }) => {
                Err(RentalError::NotActive(RentalState::Cancelled))
            }
            other => other.map_err(RentalError::from),
        }?;
        self.any(id).await
    }

    /// An operator refunds part or all of an ended rental's fee (never more than was charged).
    pub async fn refund(&self, id: Uuid, amount: i64) -> Result<Rental, RentalError> {
        let rental = self.any(id).await?;
        if amount <= 0 {
            return Err(RentalError::NotRefundable(
                "the amount must be positive".into(),
            ));
        }
        let refund = Movement::refund(amount).for_(format!("rental {id} refund"));
        let result = self
            .wallets
            .change_with(rental.user_id, &refund, |work, _| {
                Box::pin(async move {
                    const REFUND: &str = "UPDATE rentals SET refunded = refunded + $2
                         WHERE id = $1 AND state = 'ended' AND refunded + $2 <= coalesce(fee, 0)";
                    let changed = in_work!(work, |conn| sqlx::query(REFUND)
                        .bind(id)
                        .bind(amount)
                        .execute(conn)
                        .await?
                        .rows_affected());
                    if changed == 0 {
                        return Err(WalletError::Invalid("more than the fee left to refund"));
                    }
                    Ok(())
                })
            })
            .await;
        match result {
            Err(WalletError::Invalid(why)) => Err(RentalError::NotRefundable(why.into())),
            other => other.map(drop).map_err(RentalError::from),
        }?;
        self.any(id).await
    }
}

/// Cancels a running rental by an operator's decision (no fee).
async fn cancel_rental(work: &mut UnitOfWork, id: Uuid) -> Result<(), WalletError> {
    const CANCEL: &str = "UPDATE rentals SET state = 'cancelled', ended_at = $2, fee = 0,
                cancel_reason = 'operator'
         WHERE id = $1 AND state IN ('pending', 'active', 'ending')";
    let now = Utc::now();
    let changed = in_work!(&mut *work, |conn| sqlx::query(CANCEL)
        .bind(id)
        .bind(now)
        .execute(conn)
        .await?
        .rows_affected());
    if changed == 0 {
        return Err(WalletError::Invalid("the rental is not running"));
    }
    let data = json!({ "rental_id": id, "reason": "operator" });
    work.append(&Event::new(
        "rental.cancelled",
        "rental",
        &id.to_string(),
        data,
    ))
    .await?;
    Ok(())
}
