//! An operator gives back part or all of a completed order's total (the goods were taken; the
//! stock stays as it is): the wallet's refund, its ledger entry and the order's refunded amount
//! in one unit of work, never more than was paid.

use uuid::Uuid;

use super::{Order, OrderError, Orders};
use crate::storage::in_work;
use crate::wallet::{Movement, WalletError};

impl Orders {
    /// Refunds `amount` (minor units, more than zero) of completed order `id`.
    pub async fn refund(&self, id: Uuid, amount: i64) -> Result<Order, OrderError> {
        let order = self.get(None, id).await?.ok_or(OrderError::NotFound)?;
        if amount <= 0 {
            return Err(OrderError::NotRefundable(
                "the amount must be positive".into(),
            ));
        }
        let refund = Movement::refund(amount).for_(format!("order {id} refund"));
        let result = self
            .wallets
            .change_with(order.user_id, &refund, |work, _| {
                Box::pin(async move {
                    const REFUND: &str = "UPDATE orders SET refunded = refunded + $2
                         WHERE id = $1 AND state = 'completed' AND refunded + $2 <= total";
                    let changed = in_work!(work, |conn| sqlx::query(REFUND)
                        .bind(id)
                        .bind(amount)
                        .execute(conn)
                        .await?
                        .rows_affected());
                    if changed == 0 {
                        return Err(WalletError::Invalid(
                            "not a completed order, or more than its total left to refund",
                        ));
                    }
                    Ok(())
                })
            })
            .await;
        match result {
            Err(WalletError::Invalid(why)) => Err(OrderError::NotRefundable(why.into())),
            other => other.map(drop).map_err(OrderError::from),
        }?;
        self.get(None, id).await?.ok_or(OrderError::NotFound)
    }
}
