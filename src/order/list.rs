//! A customer's own orders, newest first, a page at a time.

use uuid::Uuid;

use super::{Order, OrderError, Orders};
use crate::storage::on_pool;

impl Orders {
    /// A page of the user's orders, newest first, in `state` if given, older than `before` (an
    /// order id: ids grow with time), at most `limit`.
    pub async fn of_user(
        &self,
        user: Uuid,
        state: Option<&str>,
        before: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<Order>, OrderError> {
        const IDS: &str = "SELECT id FROM orders
             WHERE user_id = $1 AND ($2 IS NULL OR state = $2) AND ($3 IS NULL OR id < $3)
             ORDER BY id DESC LIMIT $4";
        let ids: Vec<Uuid> = on_pool!(&self.storage, |pool| sqlx::query_scalar(IDS)
            .bind(user)
            .bind(state)
            .bind(before)
            .bind(limit)
            .fetch_all(pool)
            .await?);
        let mut orders = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(order) = self.get(Some(user), id).await? {
                orders.push(order);
            }
        }
        Ok(orders)
    }
}
