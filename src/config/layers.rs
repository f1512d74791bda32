//! Where settings come from: defaults in code, then a TOML file (`--config` or `LOCKER_CONFIG`),
//! then environment variables, the last one winning. In the file a setting is its variable's
//! name in lower case without `LOCKER_` (`LOCKER_HTTP_ADDR` → `http_addr`, `DATABASE_URL` →
//! `database_url`). An unknown key in the file, or a wrong value anywhere, stops the gateway
//! with a message naming the file or the variable, and the value (passwords masked).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::{Config, ConfigError};

/// Every setting, by its environment variable.
pub const SETTINGS: &[&str] = &[
    "LOCKER_HTTP_ADDR",
    "LOCKER_HTTP_BODY_LIMIT",
    "LOCKER_MQTT_ADDR",
    "LOCKER_MQTT5_ADDR",
    "LOCKER_MQTTS_ADDR",
    "LOCKER_MQTTS_CERT_FILE",
    "LOCKER_MQTTS_KEY_FILE",
    "LOCKER_MQTTS_CLIENT_CA_FILE",
    "LOCKER_MQTTS_CLIENT_CERT",
    "LOCKER_MQTT_BROKER",
    "DATABASE_URL",
    "REDIS_URL",
    "LOCKER_MODE",
    "LOCKER_HEARTBEAT_SECS",
    "LOCKER_OUTBOX_POLL_MS",
    "LOCKER_ROLLOUT_TICK_MS",
    "LOCKER_COMMAND_DEADLINE_MS",
    "LOCKER_QUERY_AGAIN_SECS",
    "LOCKER_SURFACE_UNKNOWN_SECS",
    "LOCKER_COMMANDS_IN_FLIGHT",
    "LOCKER_TOKEN_TTL_SECS",
    "LOCKER_HTTP_HEADER_TIMEOUT_SECS",
    "LOCKER_HTTP_BODY_TIMEOUT_SECS",
    "LOCKER_HTTP_MAX_CONNECTIONS",
    "LOCKER_ARGON2_MEMORY_KIB",
    "LOCKER_ARGON2_ITERATIONS",
    "LOCKER_ARGON2_PARALLELISM",
    "LOCKER_RATE_LIMIT_PER_IP",
    "LOCKER_RATE_LIMIT_PER_USER",
    "LOCKER_TRUSTED_PROXIES",
    "LOCKER_LOG_FORMAT",
    "LOCKER_CURRENCY",
    "LOCKER_CURRENCY_EXPONENT",
    "LOCKER_MAX_AMOUNT",
    "LOCKER_MAX_BALANCE",
    "LOCKER_PAYMENT_WEBHOOK_SECRET",
    "LOCKER_REDIS_PREFIX",
    "LOCKER_MAX_ACTIVE_RENTALS",
    "LOCKER_DATA_DIR",
    "LOCKER_DOOR_LOCK_TTL_MS",
    "LOCKER_JAMS_OUT_OF_SERVICE",
    "LOCKER_SHUTDOWN_SECS",
    "LOCKER_CACHE_TTL_SECS",
    "LOCKER_SERIAL_BUSES",
    "LOCKER_SERIAL_TIMEOUT_MS",
    "LOCKER_SERIAL_GAP_MS",
    "LOCKER_SERIAL_RETRIES",
    "LOCKER_SERIAL_POLL_MS",
    "LOCKER_SERIAL_OFFLINE_POLLS",
    "LOCKER_WORKER_RETRY_SECS",
    "LOCKER_GATEWAY_LEASE_SECS",
    "LOCKER_GATEWAY_ID",
    "LOCKER_SHARED_GROUP",
    "LOCKER_BROKER_RIGHTS",
    "LOCKER_SECRETS_KEY",
    "LOCKER_BROKER_HOOK_SECRET",
    "LOCKER_MQTT_CA_FILE",
    "LOCKER_MQTT_CLIENT_CERT",
    "LOCKER_MQTT_CLIENT_KEY",
    "LOCKER_WORKER_STUCK_AFTER",
    "LOCKER_WEBHOOK_ATTEMPTS",
    "LOCKER_WEBHOOK_TIMEOUT_SECS",
    "LOCKER_TIME_ZONE",
    "LOCKER_FIRMWARE_KEYS",
    "LOCKER_FIRMWARE_MAX_BYTES",
    "LOCKER_FIRMWARE_INSTALL_SECS",
];

/// A setting's key in the file.
pub fn file_key(variable: &str) -> String {
    variable
        .strip_prefix("LOCKER_")
        .unwrap_or(variable)
        .to_ascii_lowercase()
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read the configuration file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not TOML.
    #[error("the configuration file {path} is not valid TOML: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Where and why.
        message: String,
    },
    /// A key the gateway does not know (a typo would otherwise be ignored silently).
    #[error("the configuration file {path} has an unknown setting `{key}`")]
    UnknownKey {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
    },
    /// A key whose value is a table or an array.
    #[error("the configuration file {path}: `{key}` must be a string, a number or a boolean")]
    NotAValue {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
    },
    /// A wrong value, with where it came from.
    #[error("{origin}: {error}")]
    Invalid {
        /// `environment variable X`, or `file F, setting k`.
        origin: String,
        /// What is wrong.
        error: ConfigError,
    },
}

/// The settings of a TOML file, by environment variable name.
fn read_file(path: &Path) -> Result<HashMap<&'static str, String>, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.to_owned(),
        source,
    })?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| LoadError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
    let mut settings = HashMap::new();
    for (key, value) in table {
        let Some(variable) = SETTINGS.iter().find(|v| file_key(v) == key) else {
            return Err(LoadError::UnknownKey {
                path: path.to_owned(),
                key,
            });
        };
        let value = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(n) => n.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Float(f) => f.to_string(),
            _ => {
                return Err(LoadError::NotAValue {
                    path: path.to_owned(),
                    key,
                });
            }
        };
        settings.insert(*variable, value);
    }
    Ok(settings)
}

impl Config {
    /// Loads the configuration: defaults, then `file` (if any), then `env` (the process
    /// environment in the binary; a map in tests).
    pub fn load(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, LoadError> {
        let from_file = match file {
            Some(path) => read_file(path)?,
            None => HashMap::new(),
        };
        let get = |name: &str| env(name).or_else(|| from_file.get(name).cloned());
        Config::from_lookup(get).map_err(|error| {
            let name = error.name();
            let origin = match (env(name), file) {
                (Some(_), _) | (None, None) => format!("environment variable {name}"),
                (None, Some(path)) => {
                    format!("{}, setting `{}`", path.display(), file_key(name))
                }
            };
            LoadError::Invalid { origin, error }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(contents: &str) -> tempfile_like::File {
        tempfile_like::File::new(contents)
    }

    /// A file in the temporary directory, removed when dropped.
    mod tempfile_like {
        pub struct File(pub std::path::PathBuf);
        impl File {
            pub fn new(contents: &str) -> Self {
                let path = std::env::temp_dir().join(format!(
                    "locker-config-{}-{}.toml",
                    std::process::id(),
                    rand::random::<u64>()
                ));
                std::fs::write(&path, contents).expect("written");
                Self(path)
            }
        }
        impl Drop for File {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }
    }

    #[test]
    fn every_setting_read_is_listed_and_every_listed_setting_is_read() {
        let asked = std::sync::Mutex::new(Vec::new());
        Config::from_lookup(|name| {
            asked.lock().expect("lock").push(name.to_owned());
            None
        })
        .expect("defaults");
        let mut asked = asked.into_inner().expect("lock");
        asked.sort();
        asked.dedup();
        let mut listed: Vec<String> = SETTINGS.iter().map(|s| s.to_string()).collect();
        listed.sort();
        assert_eq!(asked, listed);
    }

    #[test]
    fn the_file_overrides_defaults_and_the_environment_overrides_the_file() {
        let f = file("http_addr = \"127.0.0.1:9999\"\nheartbeat_secs = 30\n");
        let config = Config::load(Some(&f.0), |_| None).expect("valid");
        assert_eq!(config.http_addr.to_string(), "127.0.0.1:9999");
        assert_eq!(config.heartbeat.as_secs(), 30);
        let env = |name: &str| (name == "LOCKER_HEARTBEAT_SECS").then(|| "45".to_owned());
        let config = Config::load(Some(&f.0), env).expect("valid");
        assert_eq!(config.heartbeat.as_secs(), 45);
        assert_eq!(config.http_addr.to_string(), "127.0.0.1:9999");
    }

    #[test]
    fn the_mode_follows_what_is_configured_and_fleet_needs_both_servers() {
        use crate::config::{Mode, ModeError};
        let mode = |vars: &[(&str, &str)]| {
            let vars: Vec<(String, String)> = vars
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            Config::load(None, |name| {
                vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
            })
            .expect("valid")
            .mode()
        };
        let db = ("DATABASE_URL", "postgres://postgres@127.0.0.1/x");
        let redis = ("REDIS_URL", "redis://127.0.0.1:6379");
        assert_eq!(mode(&[]), Ok(Mode::Edge));
        assert_eq!(mode(&[db, redis]), Ok(Mode::Fleet));
        assert_eq!(mode(&[db]), Err(ModeError::FleetWithout("REDIS_URL")));
        assert_eq!(mode(&[redis]), Err(ModeError::FleetWithout("DATABASE_URL")));
        let fleet = ("LOCKER_MODE", "fleet");
        let edge = ("LOCKER_MODE", "edge");
        assert_eq!(mode(&[fleet]), Err(ModeError::FleetWithout("DATABASE_URL")));
        assert_eq!(mode(&[edge]), Ok(Mode::Edge));
        assert_eq!(mode(&[edge, db]), Err(ModeError::EdgeWithServers));
        assert_eq!(mode(&[fleet, db, redis]), Ok(Mode::Fleet));
    }

    #[test]
    fn serial_timing_applies_to_every_bus_unless_a_bus_sets_its_own() {
        let config = Config::load(None, |name| match name {
            "LOCKER_SERIAL_GAP_MS" => Some("10".to_owned()),
            "LOCKER_SERIAL_BUSES" => {
                Some("/dev/ttyUSB0=1:cab-1;/dev/ttyUSB1?gap_ms=80&retries=5=1:cab-2".to_owned())
            }
            _ => None,
        })
        .expect("valid");
        let buses = &config.serial_buses;
        assert_eq!(buses[0].gap, std::time::Duration::from_millis(10));
        assert_eq!(buses[0].retries, 2);
        assert_eq!(buses[1].gap, std::time::Duration::from_millis(80));
        assert_eq!(buses[1].retries, 5);
        let err = Config::load(None, |name| {
            (name == "LOCKER_SERIAL_BUSES").then(|| "/dev/ttyUSB0?gap=1=1:cab-1".to_owned())
        })
        .expect_err("unknown option")
        .to_string();
        assert!(
            err.contains("LOCKER_SERIAL_BUSES") && err.contains("unknown option `gap`"),
            "{err}"
        );
    }

    #[test]
    fn errors_name_the_file_or_the_variable_and_the_value() {
        let f = file("heartbeat_secs = \"soon\"\n");
        let err = Config::load(Some(&f.0), |_| None)
            .expect_err("invalid")
            .to_string();
        assert!(err.contains(&f.0.display().to_string()), "{err}");
        assert!(
            err.contains("`heartbeat_secs`") && err.contains("soon"),
            "{err}"
        );
        let env = |name: &str| (name == "LOCKER_HEARTBEAT_SECS").then(|| "later".to_owned());
        let err = Config::load(Some(&f.0), env)
            .expect_err("invalid")
            .to_string();
        assert!(
            err.starts_with("environment variable LOCKER_HEARTBEAT_SECS"),
            "{err}"
        );
        assert!(err.contains("later"), "{err}");
        let typo = file("heartbeet_secs = 5\n");
        let err = Config::load(Some(&typo.0), |_| None)
            .expect_err("unknown")
            .to_string();
        assert!(err.contains("unknown setting `heartbeet_secs`"), "{err}");
        let broken = file("http_addr = \n");
        let err = Config::load(Some(&broken.0), |_| None)
            .expect_err("toml")
            .to_string();
        assert!(err.contains("not valid TOML"), "{err}");
        let missing = std::path::Path::new("/nonexistent/locker.toml");
        let err = Config::load(Some(missing), |_| None)
            .expect_err("missing")
            .to_string();
        assert!(err.contains("/nonexistent/locker.toml"), "{err}");
    }

    #[test]
    fn secrets_in_the_file_are_never_printed() {
        let f =
            file("database_url = \"postgres://app:hunter2@db/lockers\"\nredis_url = \"nope\"\n");
        let err = Config::load(Some(&f.0), |_| None)
            .expect_err("bad redis")
            .to_string();
        assert!(err.contains("redis_url"), "{err}");
        let f = file("database_url = \"postgres://app:hunter2@db/lockers\"\n");
        let config = Config::load(Some(&f.0), |_| None).expect("valid");
        assert!(!format!("{config}").contains("hunter2"));
        assert!(!format!("{config:?}").contains("hunter2"));
    }
}
