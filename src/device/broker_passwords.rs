//! A sealed copy of each locker's MQTT password, for a broker that must be told the password
//! itself (Mosquitto's dynamic-security plugin keeps one password per client, and the gateways
//! create or restore those clients). The gateway otherwise keeps only the secret's SHA-256, from
//! which the password cannot be had back; the copy is sealed with ChaCha20-Poly1305 under the
//! operator's `LOCKER_SECRETS_KEY`, the device id bound in as associated data (a copy moved to
//! another device's row does not open). Without the key nothing is sealed.

use firmware_protocol::DeviceId;

use crate::storage::{Storage, UnitOfWork, in_work, on_pool};

pub use crate::config::SecretsKey as SealingKey;

/// `password` sealed for `device` with `key` (see [`crate::sealing`]).
pub fn seal(key: &SealingKey, device: &DeviceId, password: &str) -> Vec<u8> {
    crate::sealing::seal(key, device.as_str().as_bytes(), password.as_bytes())
}

/// The password sealed for `device`; `None` if `sealed` was not sealed with `key` for it.
pub fn open(key: &SealingKey, device: &DeviceId, sealed: &[u8]) -> Option<String> {
    let plain = crate::sealing::open(key, device.as_str().as_bytes(), sealed)?;
    String::from_utf8(plain).ok()
}

/// Keeps `sealed` as the device's sealed password, in `work`.
pub async fn keep(
    work: &mut UnitOfWork,
    device: &DeviceId,
    sealed: &[u8],
) -> Result<(), sqlx::Error> {
    const KEEP: &str = "UPDATE devices SET mqtt_password_sealed = $2 WHERE id = $1";
    in_work!(work, |conn| sqlx::query(KEEP)
        .bind(device.as_str())
        .bind(sealed)
        .execute(conn)
        .await?
        .rows_affected());
    Ok(())
}

/// What a broker must know of one locker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerAccount {
    /// The locker (its username and client id on the broker).
    pub device: DeviceId,
    /// Revoked: its client is disabled.
    pub revoked: bool,
    /// Its sealed password (`None`: provisioned before a key was configured).
    pub sealed: Option<Vec<u8>>,
    /// Rotated lately: its previous secret is still in its grace period.
    pub rotated: bool,
}

type Row = (String, bool, Option<Vec<u8>>, bool);

fn account((id, revoked, sealed, rotated): Row) -> Option<BrokerAccount> {
    Some(BrokerAccount {
        device: DeviceId::new(&id)?,
        revoked,
        sealed,
        rotated,
    })
}

/// Every locker's account, by id.
pub async fn all(storage: &Storage) -> Result<Vec<BrokerAccount>, sqlx::Error> {
    const ALL: &str = "SELECT id, revoked_at IS NOT NULL, mqtt_password_sealed,
                previous_secret_sha256 IS NOT NULL
         FROM devices ORDER BY id";
    let rows: Vec<Row> = on_pool!(storage, |pool| sqlx::query_as(ALL).fetch_all(pool).await?);
    Ok(rows.into_iter().filter_map(account).collect())
}

/// One locker's account; `None` if there is no such device.
pub async fn one(
    storage: &Storage,
    device: &DeviceId,
) -> Result<Option<BrokerAccount>, sqlx::Error> {
    const ONE: &str = "SELECT id, revoked_at IS NOT NULL, mqtt_password_sealed,
                previous_secret_sha256 IS NOT NULL
         FROM devices WHERE id = $1";
    let row: Option<Row> = on_pool!(storage, |pool| sqlx::query_as(ONE)
        .bind(device.as_str())
        .fetch_optional(pool)
        .await?);
    Ok(row.and_then(account))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_password_opens_only_with_its_key_and_for_its_device() {
        let key = SealingKey::from_hex(&"ab".repeat(32)).expect("key");
        let lk1 = DeviceId::new("lk-1").expect("id");
        let lk2 = DeviceId::new("lk-2").expect("id");
        let sealed = seal(&key, &lk1, "00ff");
        assert_eq!(open(&key, &lk1, &sealed).as_deref(), Some("00ff"));
        assert_ne!(sealed, seal(&key, &lk1, "00ff"), "a fresh nonce each time");
        assert_eq!(open(&key, &lk2, &sealed), None, "bound to its device");
        let other = SealingKey::from_hex(&"cd".repeat(32)).expect("key");
        assert_eq!(open(&other, &lk1, &sealed), None);
        let mut tampered = sealed.clone();
        tampered[20] ^= 1;
        assert_eq!(open(&key, &lk1, &tampered), None);
        assert_eq!(open(&key, &lk1, &sealed[..5]), None);
        assert!(SealingKey::from_hex("00").is_none());
        assert!(SealingKey::from_hex(&"zz".repeat(32)).is_none());
        assert_eq!(format!("{key:?}"), "SecretsKey(<redacted>)");
    }
}
