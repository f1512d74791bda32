//! Secrets the gateway must be able to read back (a locker's MQTT password for a broker that must
//! be told it, a webhook's signing key) are kept in the database sealed with the operator's
//! `LOCKER_SECRETS_KEY`: ChaCha20-Poly1305 with a random nonce, and associated data that binds
//! the copy to its row (a copy moved to another row does not open).

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};

use crate::config::SecretsKey;

/// Nonce bytes before the ciphertext.
const NONCE: usize = 12;

/// `plain` sealed with `key` for the row `aad` names: a random nonce, then the ciphertext and
/// its tag.
pub fn seal(key: &SecretsKey, aad: &[u8], plain: &[u8]) -> Vec<u8> {
    let cipher = ChaCha20Poly1305::new(key.bytes().into());
    let nonce: [u8; NONCE] = rand::random();
    let mut out = nonce.to_vec();
    // Encryption fails only for messages beyond 256 GiB.
    out.extend(
        cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plain, aad })
            .unwrap_or_default(),
    );
    out
}

/// What `sealed` holds; `None` if it was not sealed with `key` for the row `aad` names.
pub fn open(key: &SecretsKey, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    if sealed.len() <= NONCE {
        return None;
    }
    let (nonce, ciphertext) = sealed.split_at(NONCE);
    let cipher = ChaCha20Poly1305::new(key.bytes().into());
    cipher
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_only_with_its_key_for_its_row() {
        let key = SecretsKey::from_hex(&"11".repeat(32)).expect("key");
        let other = SecretsKey::from_hex(&"22".repeat(32)).expect("key");
        let sealed = seal(&key, b"row-1", b"whsec_abc");
        assert_ne!(&sealed[12..], b"whsec_abc");
        assert_eq!(
            open(&key, b"row-1", &sealed).as_deref(),
            Some(&b"whsec_abc"[..])
        );
        assert_eq!(open(&key, b"row-2", &sealed), None);
        assert_eq!(open(&other, b"row-1", &sealed), None);
        assert_eq!(open(&key, b"row-1", &sealed[..12]), None);
        assert_ne!(
            seal(&key, b"row-1", b"x"),
            seal(&key, b"row-1", b"x"),
            "a fresh nonce each"
        );
    }
}
