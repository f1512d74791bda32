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
