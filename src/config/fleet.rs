//! A gateway's identity in a fleet: its instance id (`LOCKER_GATEWAY_ID`, default the host name)
//! and the shared-subscription group the fleet's gateways share lockers' uplinks in
//! (`LOCKER_SHARED_GROUP`).

use super::ConfigError;

/// The shared-subscription group when `LOCKER_SHARED_GROUP` is not set.
pub const DEFAULT_SHARED_GROUP: &str = "locker-gateways";

/// This machine's host name (`unknown-host` if it has none).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".to_owned())
}

/// A name that goes into MQTT client ids and topic filters: 1 to 64 letters, digits, `.`, `_`,
/// `-` (no `/`, `+`, `#`, spaces).
pub fn name(variable: &'static str, value: String) -> Result<String, ConfigError> {
    let trimmed = value.trim();
    let fits = !trimmed.is_empty()
        && trimmed.len() <= 64
        && trimmed
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if fits {
        Ok(trimmed.to_owned())
    } else {
        Err(ConfigError::BadChoice {
            name: variable,
            value,
            choices: "1 to 64 letters, digits, '.', '_' or '-' (it goes into MQTT client ids and topic filters)",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_client_ids_and_topic_filters() {
        assert_eq!(name("X", " gw-1.eu_west ".into()).unwrap(), "gw-1.eu_west");
        for bad in ["", "a/b", "a+b", "#", "a b", &"x".repeat(65), "é"] {
            assert!(name("X", bad.into()).is_err(), "{bad:?} must be refused");
        }
        assert!(name("X", host_name()).is_ok() || host_name().contains(|c: char| !c.is_ascii()));
    }
}
