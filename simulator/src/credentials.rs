//! The credentials a simulated locker logs in and tags its messages with, as the gateway's
//! `device add --json` prints them.

use firmware_protocol::{DeviceId, DeviceKey, DeviceSecret};

/// A locker's credentials, as `locker-gateway device add --json` prints them (one JSON object per
/// line of a credentials file).
#[derive(Debug, Clone)]
pub struct Credentials {
    /// The device id (also the MQTT username and client id).
    pub device_id: DeviceId,
    /// The MQTT password.
    pub password: String,
    /// The envelope tag key.
    pub tag_key: DeviceKey,
}

/// Why credentials could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// A line is not a credentials object.
    #[error("{path}:{line}: {reason}")]
    Line {
        /// The file.
        path: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

impl Credentials {
    /// Credentials from a device secret.
    pub fn from_secret(device_id: DeviceId, secret: &DeviceSecret) -> Self {
        Self {
            device_id,
            password: secret.mqtt_password(),
            tag_key: secret.tag_key(),
        }
    }

    /// Parses one JSON object with `device_id` and `secret` (hex).
    pub fn parse(json: &str) -> Result<Self, String> {
        let value: serde_json::Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
        let id = value["device_id"].as_str().ok_or("no device_id")?;
        let device_id = DeviceId::new(id).ok_or("invalid device_id")?;
        let secret = value["secret"]
            .as_str()
            .and_then(DeviceSecret::from_hex)
            .ok_or("no valid secret (64 hex digits)")?;
        Ok(Self::from_secret(device_id, &secret))
    }

    /// Reads a credentials file: one JSON object per line, blank lines ignored.
    pub fn read_file(path: &str) -> Result<Vec<Self>, CredentialsError> {
        let text = std::fs::read_to_string(path).map_err(|source| CredentialsError::Io {
            path: path.to_owned(),
            source,
        })?;
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| {
                Self::parse(l).map_err(|reason| CredentialsError::Line {
                    path: path.to_owned(),
                    line: i + 1,
                    reason,
                })
            })
            .collect()
    }
}
