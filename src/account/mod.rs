//! Accounts: people who use the API. Customers register themselves (role `user`); operators
//! (roles `admin`, `support`, `technician`, `viewer`: [`Role`]) are made with
//! `locker-gateway admin create`. A login gives a bearer token that
//! expires; only the token's SHA-256 is stored.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::storage::{Storage, on_pool};
use utoipa::ToSchema;
use uuid::Uuid;

mod operators;
pub mod password;
mod profile;
mod role;

pub use password::PasswordCost;
pub use role::{Capability, Role};

/// Whether a user with this id exists.
pub async fn exists(storage: &Storage, id: Uuid) -> Result<bool, sqlx::Error> {
    const EXISTS: &str = "SELECT true FROM users WHERE id = $1";
    let found: Option<bool> = on_pool!(storage, |pool| sqlx::query_scalar(EXISTS)
        .bind(id)
        .fetch_optional(pool)
        .await?);
    Ok(found.is_some())
}

/// An account, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct User {
    /// Its id.
    pub id: Uuid,
    /// Its email address (the login).
    pub email: String,
    /// What it may do.
    pub role: Role,
    /// When it was made.
    pub created_at: DateTime<Utc>,
}

/// A bearer token and whose it is.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Session {
    /// Send as `Authorization: Bearer <token>`. Shown once.
    pub token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// When the token stops working.
    pub expires_at: DateTime<Utc>,
    /// The account.
    pub user: User,
}

/// Why an account operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// An account with this email exists.
    #[error("an account with this email already exists")]
    EmailTaken,
    /// The email or password does not meet the rules.
    #[error("{field}: {message}")]
    Invalid {
        /// Which field.
        field: &'static str,
        /// What is wrong.
        message: &'static str,
    },
    /// Wrong email or password (which one is not said).
    #[error("wrong email or password")]
    InvalidCredentials,
    /// Hashing failed.
    #[error("password hashing: {0}")]
    Hash(String),
    /// PostgreSQL failed.
    #[error("storage: {0}")]
    Storage(#[from] sqlx::Error),
}

/// Shortest and longest passwords accepted.
pub const PASSWORD_LENGTH: std::ops::RangeInclusive<usize> = 10..=128;

fn validate(email: &str, password: &str) -> Result<(), AccountError> {
    let email_ok = (3..=254).contains(&email.len())
        && email.split_once('@').is_some_and(|(user, domain)| {
            !user.is_empty() && !domain.is_empty() && !domain.contains('@')
        })
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if !email_ok {
        return Err(AccountError::Invalid {
            field: "email",
            message: "not an email address",
        });
    }
    if !PASSWORD_LENGTH.contains(&password.chars().count()) {
        return Err(AccountError::Invalid {
            field: "password",
            message: "must be 10 to 128 characters",
        });
    }
    Ok(())
}

/// A user row as both backends return it (with the password hash when asked for).
#[derive(sqlx::FromRow)]
struct UserRow {
    id: Uuid,
    email: String,
    role: String,
    #[sqlx(default)]
    operator_role: Option<String>,
    created_at: DateTime<Utc>,
    #[sqlx(default)]
    password_hash: Option<String>,
}

impl From<UserRow> for User {
    fn from(row: UserRow) -> Self {
        Self {
            id: row.id,
            email: row.email,
            role: Role::parse(&row.role, row.operator_role.as_deref()),
            created_at: row.created_at,
        }
    }
}

fn digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Accounts and their tokens.
#[derive(Debug, Clone)]
pub struct Accounts {
    storage: Storage,
    cost: PasswordCost,
    token_ttl: std::time::Duration,
}

impl Accounts {
    /// Accounts in `pool`, hashing passwords at `cost`, tokens valid for `token_ttl`.
    pub fn new(
        storage: impl Into<Storage>,
        cost: PasswordCost,
        token_ttl: std::time::Duration,
    ) -> Self {
        Self::on(storage.into(), cost, token_ttl)
    }

    /// Accounts on `storage` (see [`Accounts::new`]).
    pub fn on(storage: Storage, cost: PasswordCost, token_ttl: std::time::Duration) -> Self {
        Self {
            storage,
            cost,
            token_ttl,
        }
    }

    /// Makes an account.
    pub async fn register(
        &self,
        email: &str,
        password: &str,
        role: Role,
    ) -> Result<User, AccountError> {
        let email = email.trim();
        validate(email, password)?;
        let hash = password::hash(password.to_owned(), self.cost)
            .await
            .map_err(AccountError::Hash)?;
        const INSERT: &str = "INSERT INTO users (id, email, password_hash, role, operator_role)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT DO NOTHING RETURNING id, email, role, operator_role, created_at";
        let id = Uuid::now_v7();
        let row: Option<UserRow> = on_pool!(&self.storage, |pool| {
            sqlx::query_as(INSERT)
                .bind(id)
                .bind(email)
                .bind(hash)
                .bind(role.columns().0)
                .bind(role.columns().1)
                .fetch_optional(pool)
                .await?
        });
        row.map(User::from).ok_or(AccountError::EmailTaken)
    }

    /// Checks an email and password and gives a new token.
    pub async fn log_in(&self, email: &str, password: &str) -> Result<Session, AccountError> {
        const FIND: &str = "SELECT id, email, role, operator_role, created_at, password_hash FROM users WHERE lower(email) = lower($1)";
        let email = email.trim();
        let row: Option<UserRow> = on_pool!(&self.storage, |pool| {
            sqlx::query_as(FIND)
                .bind(email)
                .fetch_optional(pool)
                .await?
        });
        let stored = row.as_ref().and_then(|r| r.password_hash.clone());
        if !password::verify(password.to_owned(), stored, self.cost).await {
            return Err(AccountError::InvalidCredentials);
        }
        let Some(user) = row.map(User::from) else {
            return Err(AccountError::InvalidCredentials);
        };
        let mut secret = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut secret);
        let token = format!("lgw_{}", hex::encode(secret));
        let expires_at = Utc::now()
            + chrono::Duration::from_std(self.token_ttl).unwrap_or(chrono::Duration::hours(12));
        const TOKEN: &str =
            "INSERT INTO api_tokens (token_sha256, user_id, expires_at) VALUES ($1, $2, $3)";
        on_pool!(&self.storage, |pool| {
            sqlx::query(TOKEN)
                .bind(digest(&token))
                .bind(user.id)
                .bind(expires_at)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(Session {
            token,
            token_type: "Bearer".into(),
            expires_at,
            user,
        })
    }

    /// Whose token this is, if it is valid and not expired.
    pub async fn authenticate(&self, token: &str) -> Result<Option<User>, AccountError> {
        if !token.starts_with("lgw_") || token.len() != 68 {
            return Ok(None);
        }
        // The clock is bound, not read by the database: one statement for both backends.
        const FIND: &str =
            "SELECT u.id, u.email, u.role, u.operator_role, u.created_at FROM api_tokens t
             JOIN users u ON u.id = t.user_id
             WHERE t.token_sha256 = $1 AND t.expires_at > $2";
        let (digest, now) = (digest(token), Utc::now());
        let row: Option<UserRow> = on_pool!(&self.storage, |pool| {
            sqlx::query_as(FIND)
                .bind(digest)
                .bind(now)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(User::from))
    }

    /// The account `id`, if there is one.
    pub async fn get(&self, id: Uuid) -> Result<Option<User>, sqlx::Error> {
        const ONE: &str =
            "SELECT id, email, role, operator_role, created_at FROM users WHERE id = $1";
        let row: Option<UserRow> = on_pool!(&self.storage, |pool| sqlx::query_as(ONE)
            .bind(id)
            .fetch_optional(pool)
            .await?);
        Ok(row.map(User::from))
    }

    /// Accounts whose email contains `text` (case-insensitive), by email, after `after`, at most
    /// `limit`.
    pub async fn search(
        &self,
        text: &str,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<User>, sqlx::Error> {
        const SEARCH: &str = "SELECT id, email, role, operator_role, created_at FROM users
             WHERE lower(email) LIKE $1 ESCAPE '\\' AND ($2 IS NULL OR email > $2)
             ORDER BY email LIMIT $3";
        let escaped: String = text
            .to_lowercase()
            .chars()
            .flat_map(|c| match c {
                '%' | '_' | '\\' => vec!['\\', c],
                c => vec![c],
            })
            .collect();
        let pattern = format!("%{escaped}%");
        let rows: Vec<UserRow> = on_pool!(&self.storage, |pool| {
            sqlx::query_as(SEARCH)
                .bind(&pattern)
                .bind(after)
                .bind(limit)
                .fetch_all(pool)
                .await?
        });
        Ok(rows.into_iter().map(User::from).collect())
    }

    /// Revokes a token (a logout): it works no more. Whether it was a valid token.
    pub async fn revoke_token(&self, token: &str) -> Result<bool, sqlx::Error> {
        const REVOKE: &str = "DELETE FROM api_tokens WHERE token_sha256 = $1";
        let digest = digest(token);
        let revoked = on_pool!(&self.storage, |pool| {
            sqlx::query(REVOKE)
                .bind(digest)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(revoked > 0)
    }

    /// Where the accounts are kept.
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// Forgets expired tokens. Returns how many.
    pub async fn purge_expired_tokens(&self) -> Result<u64, sqlx::Error> {
        const PURGE: &str = "DELETE FROM api_tokens WHERE expires_at <= $1";
        let now = Utc::now();
        Ok(on_pool!(&self.storage, |pool| {
            sqlx::query(PURGE)
                .bind(now)
                .execute(pool)
                .await?
                .rows_affected()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_and_passwords_are_checked() {
        assert!(validate("a@b", "0123456789").is_ok());
        for email in ["", "ab", "no-at", "@b", "a@", "a b@c", "a@b@c"] {
            assert!(validate(email, "0123456789").is_err(), "{email}");
        }
        assert!(validate("a@b", "short").is_err());
        assert!(validate("a@b", &"x".repeat(129)).is_err());
    }
}
