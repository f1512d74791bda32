//! Passwords: argon2id, with the cost from configuration (production defaults are OWASP's; tests
//! use small ones). Hashing runs on the blocking pool, never on an async worker.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

pub use crate::config::PasswordCost;

/// The argon2id hasher for `cost`.
fn hasher(cost: &PasswordCost) -> Result<Argon2<'static>, argon2::Error> {
    let params = Params::new(cost.memory_kib, cost.iterations, cost.parallelism, None)?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// 16 random bytes.
fn salt() -> Result<SaltString, String> {
    let mut bytes = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
    SaltString::encode_b64(&bytes).map_err(|e| e.to_string())
}

/// Hashes a password (PHC string, salt and parameters included).
pub async fn hash(password: String, cost: PasswordCost) -> Result<String, String> {
    tokio::task::spawn_blocking(move || {
        let salt = salt()?;
        let hasher = hasher(&cost).map_err(|e| e.to_string())?;
        hasher
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Whether `password` matches the stored PHC string (with the parameters stored in it). With no
/// stored hash (no such user), a hash is still computed, so the answer takes as long either way.
pub async fn verify(password: String, stored: Option<String>, cost: PasswordCost) -> bool {
    tokio::task::spawn_blocking(move || match stored {
        Some(stored) => PasswordHash::new(&stored).is_ok_and(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        }),
        None => {
            if let (Ok(salt), Ok(hasher)) = (salt(), hasher(&cost)) {
                let _ = hasher.hash_password(password.as_bytes(), &salt);
            }
            false
        }
    })
    .await
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let stored = hash("correct horse".into(), PasswordCost::TEST)
            .await
            .expect("hashed");
        assert!(stored.starts_with("$argon2id$"));
        assert!(
            verify(
                "correct horse".into(),
                Some(stored.clone()),
                PasswordCost::TEST
            )
            .await
        );
        assert!(!verify("wrong horse".into(), Some(stored), PasswordCost::TEST).await);
        assert!(!verify("anything".into(), None, PasswordCost::TEST).await);
        assert!(!verify("x".into(), Some("not a hash".into()), PasswordCost::TEST).await);
    }
}
