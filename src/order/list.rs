//! A customer's own orders, newest first, a page at a time.

use uuid::Uuid;

use super::{Order, OrderError, Orders};
use crate::storage::on_pool;
use crate::unlock::{SALE_FILTER_SQL, bind_sale_filter};

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
        let sql = format!("SELECT id FROM orders {SALE_FILTER_SQL}");
        let ids: Vec<Uuid> = on_pool!(&self.storage, |pool| bind_sale_filter!(
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql.as_str())),
            filter,
            limit
        )
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
