//! The configuration's own tests.

use super::*;
use std::collections::HashMap;

fn from(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::from_lookup(|name| map.get(name).cloned())
}

#[test]
fn defaults_listen_where_lockers_expect_a_broker() {
    let config = from(&[]).expect("defaults are valid");
    assert_eq!(config.mqtt_addr.to_string(), "0.0.0.0:1883");
    assert_eq!(config.database_url, None);
    assert_eq!(config.external_broker, None);
}

#[test]
fn a_wrong_value_is_named_in_the_error() {
    let err = from(&[("LOCKER_MQTT_ADDR", "localhost")]).expect_err("refused");
    assert_eq!(
        err.to_string(),
        "LOCKER_MQTT_ADDR=\"localhost\" is not a socket address such as 127.0.0.1:8080"
    );
    let err = from(&[("DATABASE_URL", "mysql://u:secret@h/db")]).expect_err("refused");
    assert!(
        err.to_string()
            .starts_with("DATABASE_URL=mysql://u:***@h/db"),
        "{err}"
    );
}

#[test]
fn numbers_are_checked_against_their_range() {
    let err = from(&[("LOCKER_HEARTBEAT_SECS", "0")]).expect_err("refused");
    assert_eq!(
        err.to_string(),
        "LOCKER_HEARTBEAT_SECS=\"0\" is not a whole number from 1 to 3600"
    );
    let config = from(&[("LOCKER_HEARTBEAT_SECS", "5")]).expect("valid");
    assert_eq!(config.heartbeat, Duration::from_secs(5));
}

#[test]
fn passwords_never_reach_the_output() {
    let config = from(&[
        ("DATABASE_URL", "postgres://app:hunter2@db:5432/lockers"),
        ("REDIS_URL", "redis://:hunter2@cache:6379"),
    ])
    .expect("valid");
    for text in [format!("{config}"), format!("{config:?}")] {
        assert!(!text.contains("hunter2"), "{text}");
        assert!(
            text.contains("postgres://app:***@db:5432/lockers"),
            "{text}"
        );
    }
}

#[test]
fn vendor_keys_time_zone_and_webhook_settings_are_read_and_checked() {
    // RFC 8032 TEST 1's public key, and TEST 2's retired at the end of 2026.
    let one = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
    let two = "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c";
    let keys = format!("acme={one}, acme-old={two}@2026-12-31");
    let config = from(&[
        ("LOCKER_FIRMWARE_KEYS", keys.as_str()),
        ("LOCKER_FIRMWARE_MAX_BYTES", "262144"),
        ("LOCKER_TIME_ZONE", "Europe/Berlin"),
        ("LOCKER_WEBHOOK_ATTEMPTS", "3"),
    ])
    .expect("valid");
    assert_eq!(config.firmware.keys.len(), 2);
    assert_eq!(config.firmware.keys[0].name, "acme");
    assert_eq!(config.firmware.keys[0].retire_after, None);
    assert_eq!(
        config.firmware.keys[1].retire_after,
        chrono::NaiveDate::from_ymd_opt(2026, 12, 31)
    );
    assert_eq!(config.firmware.max_bytes, 262_144);
    assert_eq!(config.time_zone.name(), "Europe/Berlin");
    assert_eq!(config.webhooks.max_attempts, 3);
    for bad in [
        format!("acme={}", &one[..62]),
        format!("acme={one},acme={two}"),
        format!("ac me={one}"),
        format!("acme={one}@31.12.2026"),
        "acme".to_owned(),
    ] {
        let err = from(&[("LOCKER_FIRMWARE_KEYS", bad.as_str())]).expect_err("refused");
        assert_eq!(err.name(), "LOCKER_FIRMWARE_KEYS", "{bad}");
    }
    let err = from(&[("LOCKER_TIME_ZONE", "Mars/Olympus")]).expect_err("refused");
    assert_eq!(err.name(), "LOCKER_TIME_ZONE");
}
