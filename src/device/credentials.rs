//! Device secrets: generated at provisioning, stored only as a SHA-256 digest, compared in constant
//! time. Argon2 is for human passwords; a reconnect storm of thousands of lockers needs a check that
//! costs microseconds, and a 256-bit random secret needs no stretching.

use firmware_protocol::{DeviceKey, DeviceSecret};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A new random 256-bit device secret.
pub fn generate_secret() -> DeviceSecret {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    DeviceSecret::from_bytes(bytes)
}

/// What the gateway keeps of a secret: its digest and the tag key derived from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSecret {
    /// SHA-256 of the 32 secret bytes.
    pub digest: [u8; 32],
    /// The envelope tag key.
    pub tag_key: DeviceKey,
}

impl StoredSecret {
    /// What to store for `secret`.
    pub fn of(secret: &DeviceSecret) -> Self {
        Self {
            digest: secret.digest(),
            tag_key: secret.tag_key(),
        }
    }

    /// Whether an MQTT password (64 hex digits) is this secret. Constant time in the password's
    /// content; anything that is not 64 hex digits is refused without hashing.
    pub fn matches_password(&self, password: &[u8]) -> bool {
        let mut secret = [0u8; 32];
        if password.len() != 64 || hex::decode_to_slice(password, &mut secret).is_err() {
            return false;
        }
        let digest: [u8; 32] = Sha256::digest(secret).into();
        digest.ct_eq(&self.digest).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_the_secret_in_hex() {
        let secret = generate_secret();
        let stored = StoredSecret::of(&secret);
        assert!(stored.matches_password(secret.mqtt_password().as_bytes()));
        assert!(stored.matches_password(secret.mqtt_password().to_uppercase().as_bytes()));
        let other = generate_secret();
        assert!(!stored.matches_password(other.mqtt_password().as_bytes()));
        assert!(!stored.matches_password(b""));
        assert!(!stored.matches_password(&[b'z'; 64]));
        assert!(!stored.matches_password(&secret.as_bytes()[..]));
    }

    #[test]
    fn secrets_are_random() {
        assert_ne!(generate_secret(), generate_secret());
    }
}
