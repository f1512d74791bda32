//! The embedded broker's TLS listener (`LOCKER_MQTTS_*`): where it listens, its certificate and
//! key, and the authority that signs lockers' client certificates, if they present any.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::ConfigError;

/// MQTT over TLS on the embedded broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttsListener {
    /// `LOCKER_MQTTS_ADDR`: where it listens (MQTT 3.1.1 over TLS).
    pub addr: SocketAddr,
    /// `LOCKER_MQTTS_CERT_FILE`: the broker's certificate chain (PEM); read again when it changes.
    pub cert: PathBuf,
    /// `LOCKER_MQTTS_KEY_FILE`: its private key (PEM); read again when it changes.
    pub key: PathBuf,
    /// `LOCKER_MQTTS_CLIENT_CA_FILE`: the authority of lockers' client certificates (PEM). A
    /// locker may then present one, and if it does, the certificate must name (as a DNS
    /// subject alternative name) the client id it logs in with. Unset: no client certificates.
    pub client_ca: Option<PathBuf>,
    /// `LOCKER_MQTTS_CLIENT_CERT`: `optional` (default: a locker may log in with its password
    /// alone) or `required` (every locker presents a certificate). Needs the client CA.
    pub client_cert_required: bool,
}

/// Reads the TLS listener's settings; `None` when `LOCKER_MQTTS_ADDR` is unset. The files must
/// exist and be readable at start (their content is checked when the broker loads them).
pub fn mqtts(
    get: &impl Fn(&'static str) -> Option<String>,
    external_broker: bool,
) -> Result<Option<MqttsListener>, ConfigError> {
    let value = |name| {
        get(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let file = |name: &'static str| -> Result<Option<PathBuf>, ConfigError> {
        let Some(path) = value(name) else {
            return Ok(None);
        };
        std::fs::metadata(&path).map_err(|e| ConfigError::BadValue {
            name,
            value: path.clone(),
            why: format!("cannot read it: {e}"),
        })?;
        Ok(Some(PathBuf::from(path)))
    };
    let client_cert = value("LOCKER_MQTTS_CLIENT_CERT");
    let Some(addr) = value("LOCKER_MQTTS_ADDR") else {
        for name in [
            "LOCKER_MQTTS_CERT_FILE",
            "LOCKER_MQTTS_KEY_FILE",
            "LOCKER_MQTTS_CLIENT_CA_FILE",
        ] {
            if let Some(path) = value(name) {
                return Err(ConfigError::BadValue {
                    name,
                    value: path,
                    why: "set LOCKER_MQTTS_ADDR too (where the TLS listener listens)".into(),
                });
            }
        }
        return Ok(None);
    };
    let addr: SocketAddr = addr.parse().map_err(|_| ConfigError::BadAddress {
        name: "LOCKER_MQTTS_ADDR",
        value: addr.clone(),
    })?;
    if external_broker {
        return Err(ConfigError::BadValue {
            name: "LOCKER_MQTTS_ADDR",
            value: addr.to_string(),
            why: "the embedded broker's TLS listener; with LOCKER_MQTT_BROKER the external broker takes TLS".into(),
        });
    }
    let needed = |name: &'static str| -> Result<PathBuf, ConfigError> {
        file(name)?.ok_or(ConfigError::BadValue {
            name,
            value: String::new(),
            why: "needed with LOCKER_MQTTS_ADDR".into(),
        })
    };
    let client_ca = file("LOCKER_MQTTS_CLIENT_CA_FILE")?;
    let client_cert_required = match client_cert.as_deref() {
        None | Some("optional") => false,
        Some("required") if client_ca.is_some() => true,
        Some("required") => {
            return Err(ConfigError::BadValue {
                name: "LOCKER_MQTTS_CLIENT_CERT",
                value: "required".into(),
                why: "set LOCKER_MQTTS_CLIENT_CA_FILE (who signs the lockers' certificates)".into(),
            });
        }
        Some(other) => {
            return Err(ConfigError::BadChoice {
                name: "LOCKER_MQTTS_CLIENT_CERT",
                value: other.to_owned(),
                choices: "optional, required",
            });
        }
    };
    Ok(Some(MqttsListener {
        addr,
        cert: needed("LOCKER_MQTTS_CERT_FILE")?,
        key: needed("LOCKER_MQTTS_KEY_FILE")?,
        client_ca,
        client_cert_required,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&'static str, String)]) -> impl Fn(&'static str) -> Option<String> {
        let pairs = pairs.to_vec();
        move |name| {
            pairs
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn the_tls_listener_needs_its_address_its_files_and_the_embedded_broker() {
        let file = std::env::temp_dir().join(format!("mqtts-config-{}.pem", std::process::id()));
        std::fs::write(&file, "x").expect("write");
        let path = file.display().to_string();
        let full = [
            ("LOCKER_MQTTS_ADDR", "127.0.0.1:8883".to_owned()),
            ("LOCKER_MQTTS_CERT_FILE", path.clone()),
            ("LOCKER_MQTTS_KEY_FILE", path.clone()),
        ];
        let got = mqtts(&env(&full), false).expect("valid").expect("on");
        assert_eq!(got.addr, "127.0.0.1:8883".parse().unwrap());
        assert!(got.client_ca.is_none() && !got.client_cert_required);
        assert_eq!(mqtts(&env(&[]), false).expect("off"), None);
        let no_key = mqtts(&env(&full[..2]), false).expect_err("no key");
        assert!(
            no_key.to_string().contains("LOCKER_MQTTS_KEY_FILE"),
            "{no_key}"
        );
        let files_alone = mqtts(&env(&full[1..]), false).expect_err("no address");
        assert!(
            files_alone.to_string().contains("LOCKER_MQTTS_ADDR"),
            "{files_alone}"
        );
        assert!(
            mqtts(&env(&full), true).is_err(),
            "not with an external broker"
        );
        let mut missing = full.to_vec();
        missing[1].1 = "/nonexistent/cert.pem".into();
        let missing = mqtts(&env(&missing), false).expect_err("missing file");
        assert!(missing.to_string().contains("cannot read it"), "{missing}");
        let mut required = full.to_vec();
        required.push(("LOCKER_MQTTS_CLIENT_CERT", "required".into()));
        assert!(
            mqtts(&env(&required), false).is_err(),
            "required needs a CA"
        );
        required.push(("LOCKER_MQTTS_CLIENT_CA_FILE", path));
        assert!(
            mqtts(&env(&required), false)
                .expect("valid")
                .expect("on")
                .client_cert_required
        );
        let _ = std::fs::remove_file(&file);
    }
}
