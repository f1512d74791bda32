//! A customer's own orders, newest first, a page at a time.

use uuid::Uuid;

use super::{Order, OrderError, Orders};
use crate::storage::on_pool;

impl Orders {
    /// A page of the user's orders, newest first, in `state` if given, older than `before`, at
    /// most `limit`.
    pub async fn of_user(
        &self,
        user: Uuid,
        state: Option<&str>,
        before: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<Order>, OrderError> {
        let filter = crate::unlock::SaleFilter {
            user: Some(user),
            state,
            before,
            ..Default::default()
        };
        self.find(&filter, limit).await
    }

    /// A page of the orders `filter` names (the same fields as a rental's), newest first, at
    /// most `limit` (for operators).
    pub async fn find(
        &self,
        filter: &crate::unlock::SaleFilter<'_>,
        limit: i64,
    ) -> Result<Vec<Order>, OrderError> {
        const IDS: &str = "SELECT id FROM orders
             WHERE ($1 IS NULL OR user_id = $1) AND ($2 IS NULL OR device_id = $2)
               AND ($3 IS NULL OR state = $3) AND ($4 IS NULL OR created_at >= $4)
               AND ($5 IS NULL OR created_at < $5) AND ($6 IS NULL OR id < $6)
             ORDER BY id DESC LIMIT $7";
        let ids: Vec<Uuid> = on_pool!(&self.storage, |pool| sqlx::query_scalar(IDS)
            .bind(filter.user)
            .bind(filter.device)
            .bind(filter.state)
            .bind(filter.since)
            .bind(filter.until)
            .bind(filter.before)
            .bind(limit)
            .fetch_all(pool)
            .await?);
        let mut orders = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(order) = self.get(filter.user, id).await? {
                orders.push(order);
            }
        }
        Ok(orders)
    }
}
