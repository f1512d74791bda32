//! Who a locker is ([`DeviceId`]) and the keys it proves it with ([`DeviceSecret`], [`DeviceKey`]).

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// Longest device id, in bytes.
pub const MAX_DEVICE_ID_LEN: usize = 32;

/// A locker's (or lock board's) id: 1 to 32 characters from `A–Z a–z 0–9 _ -`, so it can stand
/// in an MQTT topic, a client id and a URL as it is. Stored inline: copying one never allocates.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceId {
    len: u8,
    bytes: [u8; MAX_DEVICE_ID_LEN],
}

impl DeviceId {
    /// The id, if `id` is 1 to 32 allowed characters.
    pub fn new(id: &str) -> Option<Self> {
        Self::from_bytes(id.as_bytes())
    }

    /// The id for raw bytes, if they are 1 to 32 allowed characters.
    pub fn from_bytes(id: &[u8]) -> Option<Self> {
        let allowed = |b: &u8| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-';
        if id.is_empty() || id.len() > MAX_DEVICE_ID_LEN || !id.iter().all(allowed) {
            return None;
        }
        let mut bytes = [0; MAX_DEVICE_ID_LEN];
        bytes[..id.len()].copy_from_slice(id);
        Some(Self {
            len: id.len() as u8,
            bytes,
        })
    }

    /// The id's bytes (ASCII).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        // Only ASCII is ever stored, so this never falls back.
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }
}

impl std::fmt::Display for DeviceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for DeviceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DeviceId({:?})", self.as_str())
    }
}

impl std::str::FromStr for DeviceId {
    type Err = crate::DecodeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s).ok_or(crate::DecodeError::InvalidDeviceId)
    }
}

impl serde::Serialize for DeviceId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for DeviceId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::new(&text).ok_or_else(|| serde::de::Error::custom("invalid device id"))
    }
}

/// The 32 random bytes a locker receives at provisioning. Everything else is derived from it:
/// the MQTT password ([`DeviceSecret::mqtt_password`]) and the tag key ([`DeviceSecret::tag_key`]).
#[derive(Clone, PartialEq, Eq)]
pub struct DeviceSecret([u8; 32]);

impl DeviceSecret {
    /// Wraps 32 secret bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Parses 64 hex digits.
    pub fn from_hex(hex_text: &str) -> Option<Self> {
        let mut bytes = [0; 32];
        hex::decode_to_slice(hex_text, &mut bytes).ok()?;
        Some(Self(bytes))
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The MQTT password: the secret as 64 lowercase hex digits.
    pub fn mqtt_password(&self) -> String {
        hex::encode(self.0)
    }

    /// SHA-256 of the 32 secret bytes: what the gateway stores to check the MQTT password.
    pub fn digest(&self) -> [u8; 32] {
        Sha256::digest(self.0).into()
    }

    /// The key the envelope's tag is made with:
    /// `HMAC-SHA256(key = secret, message = "locker-gateway/tag-key/v1")`.
    pub fn tag_key(&self) -> DeviceKey {
        let mut mac = new_mac(&self.0);
        mac.update(TAG_KEY_LABEL);
        DeviceKey::from_bytes(mac.finalize().into_bytes().into())
    }
}

impl std::fmt::Debug for DeviceSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeviceSecret(<redacted>)")
    }
}

/// The label hashed into the tag key, so the key differs from anything else made of the secret.
pub const TAG_KEY_LABEL: &[u8] = b"locker-gateway/tag-key/v1";

pub(crate) type HmacSha256 = Hmac<Sha256>;

pub(crate) fn new_mac(key: &[u8]) -> HmacSha256 {
    match HmacSha256::new_from_slice(key) {
        Ok(mac) => mac,
        // HMAC takes keys of any length; the error type exists for other MACs.
        Err(_) => unreachable!("HMAC-SHA256 accepts keys of every length"),
    }
}

/// A device's 256-bit tag key, with the keyed HMAC state prepared once so that each message costs
/// only its own hashing.
#[derive(Clone)]
pub struct DeviceKey {
    bytes: [u8; 32],
    mac: HmacSha256,
}

impl DeviceKey {
    /// The key for 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self {
            bytes,
            mac: new_mac(&bytes),
        }
    }

    /// The raw key bytes (to store them).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.bytes
    }

    pub(crate) fn mac(&self) -> HmacSha256 {
        self.mac.clone()
    }
}

impl PartialEq for DeviceKey {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for DeviceKey {}

impl std::fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeviceKey(<redacted>)")
    }
}
