//! Operator accounts and their roles, changed by an admin.

use uuid::Uuid;

use super::{AccountError, Accounts, Role, User, UserRow};
use crate::storage::on_pool;

impl Accounts {
    /// Gives the operator account `id` the operator role `role`; `None` when no operator account
    /// has that id (a customer's account is never made an operator's this way).
    pub async fn set_operator_role(
        &self,
        id: Uuid,
        role: Role,
    ) -> Result<Option<User>, AccountError> {
        if !role.is_operator() {
            return Err(AccountError::Invalid {
                field: "role",
                message: "one of admin, support, technician, viewer",
            });
        }
        const SET: &str = "UPDATE users SET operator_role = $2 WHERE id = $1 AND role = 'admin'
             RETURNING id, email, role, operator_role, created_at";
        let row: Option<UserRow> = on_pool!(&self.storage, |pool| {
            sqlx::query_as(SET)
                .bind(id)
                .bind(role.columns().1)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(User::from))
    }
}
