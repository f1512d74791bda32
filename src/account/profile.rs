//! What a customer does to their own account: change the password (every other session ends)
//! and delete the account (personal data erased; the wallet and its ledger are kept, as the books
//! must be).

use uuid::Uuid;

use super::{AccountError, Accounts, User, UserRow, digest, password, validate};
use crate::storage::{in_work, on_pool};

impl Accounts {
    /// Changes `user`'s password if `current` is right; every token but `keep` stops working.
    pub async fn change_password(
        &self,
        user: &User,
        current: &str,
        new: &str,
        keep: &str,
    ) -> Result<(), AccountError> {
        const FIND: &str = "SELECT id, email, role, operator_role, created_at, password_hash FROM users WHERE id = $1";
        let row: Option<UserRow> = on_pool!(&self.storage, |pool| {
            sqlx::query_as(FIND)
                .bind(user.id)
                .fetch_optional(pool)
                .await?
        });
        let stored = row.and_then(|r| r.password_hash);
        if !password::verify(current.to_owned(), stored, self.cost).await {
            return Err(AccountError::Invalid {
                field: "current_password",
                message: "not the account's password",
            });
        }
        validate(&user.email, new).map_err(|e| match e {
            AccountError::Invalid { message, .. } => AccountError::Invalid {
                field: "new_password",
                message,
            },
            other => other,
        })?;
        let hash = password::hash(new.to_owned(), self.cost)
            .await
            .map_err(AccountError::Hash)?;
        const SET: &str = "UPDATE users SET password_hash = $2 WHERE id = $1";
        const OTHERS: &str = "DELETE FROM api_tokens WHERE user_id = $1 AND token_sha256 <> $2";
        let mut work = self.storage.begin().await?;
        in_work!(&mut work, |conn| sqlx::query(SET)
            .bind(user.id)
            .bind(&hash)
            .execute(&mut *conn)
            .await?
            .rows_affected());
        in_work!(&mut work, |conn| sqlx::query(OTHERS)
            .bind(user.id)
            .bind(digest(keep))
            .execute(conn)
            .await?
            .rows_affected());
        work.commit().await?;
        Ok(())
    }

    /// Erases `user`'s personal data: the email becomes `deleted-{id}@deleted.invalid`, the
    /// password can never match, every token ends. The wallet and its ledger stay (the books);
    /// the caller checks nothing is running first.
    pub async fn erase(&self, user: Uuid) -> Result<(), AccountError> {
        const ERASE: &str = "UPDATE users SET email = $2, password_hash = $3 WHERE id = $1";
        const TOKENS: &str = "DELETE FROM api_tokens WHERE user_id = $1";
        let mut work = self.storage.begin().await?;
        in_work!(&mut work, |conn| sqlx::query(ERASE)
            .bind(user)
            .bind(format!("deleted-{user}@deleted.invalid"))
            .bind("erased")
            .execute(&mut *conn)
            .await?
            .rows_affected());
        in_work!(&mut work, |conn| sqlx::query(TOKENS)
            .bind(user)
            .execute(conn)
            .await?
            .rows_affected());
        work.commit().await?;
        Ok(())
    }
}
