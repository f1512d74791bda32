//! Settings of how operators run the fleet: the money's currency, the time zone "today" is
//! counted in, how webhooks are delivered, whose firmware is accepted.

use std::time::Duration;

use super::ConfigError;

/// How webhook deliveries are tried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookPolicy {
    /// The wait after the first failed attempt; doubled after each further one.
    pub first_retry: Duration,
    /// The longest wait between attempts.
    pub max_retry: Duration,
    /// `LOCKER_WEBHOOK_ATTEMPTS` (default 15, about a day): attempts after which a delivery is
    /// `failed` (replayed by an operator once the endpoint is fixed).
    pub max_attempts: u32,
    /// `LOCKER_WEBHOOK_TIMEOUT_SECS` (default 10): how long one attempt may take.
    pub timeout: Duration,
}

impl Default for WebhookPolicy {
    fn default() -> Self {
        Self {
            first_retry: Duration::from_secs(10),
            max_retry: Duration::from_secs(3600),
            max_attempts: 15,
            timeout: Duration::from_secs(10),
        }
    }
}

/// A number setting: its name, default, least and greatest value.
pub(super) type Number<'a> = &'a dyn Fn(&'static str, u64, u64, u64) -> Result<u64, ConfigError>;

/// `LOCKER_WEBHOOK_ATTEMPTS` and `LOCKER_WEBHOOK_TIMEOUT_SECS`.
pub(super) fn webhooks(number: Number<'_>) -> Result<WebhookPolicy, ConfigError> {
    Ok(WebhookPolicy {
        max_attempts: number("LOCKER_WEBHOOK_ATTEMPTS", 15, 1, 100)? as u32,
        timeout: Duration::from_secs(number("LOCKER_WEBHOOK_TIMEOUT_SECS", 10, 1, 120)?),
        ..WebhookPolicy::default()
    })
}

/// `LOCKER_TIME_ZONE`: an IANA name such as `Europe/Berlin` (default `UTC`).
pub(super) fn time_zone(
    get: &impl Fn(&'static str) -> Option<String>,
) -> Result<chrono_tz::Tz, ConfigError> {
    match get("LOCKER_TIME_ZONE").filter(|v| !v.trim().is_empty()) {
        None => Ok(chrono_tz::UTC),
        Some(name) => name.trim().parse().map_err(|_| ConfigError::BadValue {
            name: "LOCKER_TIME_ZONE",
            value: name.clone(),
            why: "not an IANA time zone name such as Europe/Berlin or UTC".to_owned(),
        }),
    }
}

/// `LOCKER_CURRENCY` (ISO 4217, default EUR), `LOCKER_CURRENCY_EXPONENT` (default 2),
/// `LOCKER_MAX_AMOUNT` and `LOCKER_MAX_BALANCE`.
pub(super) fn currency(
    get: &impl Fn(&'static str) -> Option<String>,
    number: Number<'_>,
) -> Result<crate::money::Currency, ConfigError> {
    let code = match get("LOCKER_CURRENCY") {
        None => "EUR".to_owned(),
        Some(code) if code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase()) => code,
        Some(other) => {
            return Err(ConfigError::BadChoice {
                name: "LOCKER_CURRENCY",
                value: other,
                choices: "three capital letters (ISO 4217), such as EUR",
            });
        }
    };
    let exponent = number("LOCKER_CURRENCY_EXPONENT", 2, 0, 4)? as u32;
    let mut currency = crate::money::Currency::new(&code, exponent);
    let unbounded = crate::money::Currency {
        max_amount: i64::MAX,
        ..currency.clone()
    };
    let bound = |name: &'static str, default: i64| match get(name) {
        None => Ok(default),
        Some(value) => match unbounded.parse_outside(value.trim()) {
            Ok(minor) if minor > 0 => Ok(minor),
            _ => Err(ConfigError::BadChoice {
                name,
                value,
                choices: "an amount more than zero such as 10000.00",
            }),
        },
    };
    currency.max_amount = bound("LOCKER_MAX_AMOUNT", currency.max_amount)?;
    currency.max_balance = bound("LOCKER_MAX_BALANCE", currency.max_balance)?;
    Ok(currency)
}

/// A vendor's firmware signing key.
#[derive(Clone, PartialEq, Eq)]
pub struct VendorKey {
    /// Its name (1 to 32 of `A-Z a-z 0-9 . _ -`), recorded with each image it signed.
    pub name: String,
    /// The Ed25519 public key.
    pub key: [u8; 32],
    /// After this day (UTC) images it signs are refused at upload (a rotated key).
    pub retire_after: Option<chrono::NaiveDate>,
}

impl std::fmt::Debug for VendorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.name, hex::encode(self.key))
    }
}

/// Firmware images: who may sign them, how large they may be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirmwareSettings {
    /// `LOCKER_FIRMWARE_KEYS`: `name=<64 hex digits>[@YYYY-MM-DD],...` (none: no image is
    /// accepted).
    pub keys: Vec<VendorKey>,
    /// `LOCKER_FIRMWARE_MAX_BYTES` (default 1 MiB): the largest image.
    pub max_bytes: usize,
    /// `LOCKER_FIRMWARE_INSTALL_SECS` (default 900): a locker told to install that has not
    /// reported within this is counted failed (`no_report`), so its wave can settle.
    pub install_timeout: std::time::Duration,
}

impl Default for FirmwareSettings {
    fn default() -> Self {
        Self {
            keys: Vec::new(),
            max_bytes: 1024 * 1024,
            install_timeout: std::time::Duration::from_secs(900),
        }
    }
}

/// `LOCKER_FIRMWARE_KEYS`, `LOCKER_FIRMWARE_MAX_BYTES` and `LOCKER_FIRMWARE_INSTALL_SECS`.
pub(super) fn firmware(
    get: &impl Fn(&'static str) -> Option<String>,
    number: Number<'_>,
) -> Result<FirmwareSettings, ConfigError> {
    let text = get("LOCKER_FIRMWARE_KEYS").unwrap_or_default();
    let bad = |why: &str| ConfigError::BadValue {
        name: "LOCKER_FIRMWARE_KEYS",
        value: text.clone(),
        why: why.to_owned(),
    };
    let mut keys: Vec<VendorKey> = Vec::new();
    for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (name, rest) = item
            .split_once('=')
            .ok_or_else(|| bad("each key is name=<64 hex digits>[@YYYY-MM-DD]"))?;
        let (hex_key, retire) = match rest.split_once('@') {
            Some((key, date)) => (key, Some(date)),
            None => (rest, None),
        };
        let named = !name.is_empty()
            && name.len() <= 32
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !named || keys.iter().any(|k| k.name == name) {
            return Err(bad(
                "a key's name is 1 to 32 of A-Z a-z 0-9 . _ -, each once",
            ));
        }
        let key: [u8; 32] = hex::decode(hex_key)
            .ok()
            .and_then(|k| k.try_into().ok())
            .filter(|k: &[u8; 32]| firmware_protocol::image::check_key(k).is_ok())
            .ok_or_else(|| bad("a key is 64 hex digits of an Ed25519 public key"))?;
        let retire_after = match retire {
            None => None,
            Some(date) => Some(
                chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d")
                    .map_err(|_| bad("a retirement date is YYYY-MM-DD"))?,
            ),
        };
        keys.push(VendorKey {
            name: name.to_owned(),
            key,
            retire_after,
        });
    }
    Ok(FirmwareSettings {
        keys,
        max_bytes: number(
            "LOCKER_FIRMWARE_MAX_BYTES",
            1024 * 1024,
            1024,
            16 * 1024 * 1024,
        )? as usize,
        install_timeout: std::time::Duration::from_secs(number(
            "LOCKER_FIRMWARE_INSTALL_SECS",
            900,
            1,
            7 * 24 * 3600,
        )?),
    })
}
