//! A gateway's identity in a fleet: its instance id (`LOCKER_GATEWAY_ID`, default the host name)
//! and the shared-subscription group the fleet's gateways share lockers' uplinks in
//! (`LOCKER_SHARED_GROUP`).

use super::ConfigError;
use super::settings::{BrokerRights, BrokerTls, ExternalBroker, SecretsKey};

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

/// `LOCKER_BROKER_RIGHTS` and `LOCKER_SECRETS_KEY`, read with `get`; dynamic security needs an
/// external broker (`external`) and the key.
pub fn broker_rights(
    get: &impl Fn(&'static str) -> Option<String>,
    external: bool,
) -> Result<(BrokerRights, Option<SecretsKey>), ConfigError> {
    let secrets_key = match get("LOCKER_SECRETS_KEY").filter(|v| !v.is_empty()) {
        None => None,
        Some(value) => Some(SecretsKey::from_hex(&value).ok_or(ConfigError::BadChoice {
            name: "LOCKER_SECRETS_KEY",
            value: "<redacted>".to_owned(),
            choices: "64 hex digits (32 random bytes: openssl rand -hex 32)",
        })?),
    };
    let broker_rights = match get("LOCKER_BROKER_RIGHTS").as_deref().map(str::trim) {
        None | Some("") | Some("operator") => BrokerRights::Operator,
        Some("dynsec") if !external || secrets_key.is_none() => {
            return Err(ConfigError::Needs {
                name: "LOCKER_BROKER_RIGHTS",
                value: "dynsec".to_owned(),
                needs: "LOCKER_MQTT_BROKER (a Mosquitto with the dynamic-security plugin, as its admin user) and LOCKER_SECRETS_KEY (to seal the lockers' passwords it is told)",
            });
        }
        Some("dynsec") => BrokerRights::Dynsec,
        Some(other) => {
            return Err(ConfigError::BadChoice {
                name: "LOCKER_BROKER_RIGHTS",
                value: other.to_owned(),
                choices: "operator or dynsec",
            });
        }
    };
    Ok((broker_rights, secrets_key))
}

/// The TLS files of an `mqtts://` broker (`LOCKER_MQTT_CA_FILE`, `LOCKER_MQTT_CLIENT_CERT`,
/// `LOCKER_MQTT_CLIENT_KEY`), read and checked now so that a wrong one stops the start with its
/// name; refused for a plaintext `mqtt://` broker, where they would do nothing.
pub fn broker_tls(
    get: &impl Fn(&'static str) -> Option<String>,
    broker: Option<ExternalBroker>,
) -> Result<Option<ExternalBroker>, ConfigError> {
    let read = |name: &'static str, what: &'static str| -> Result<Option<Vec<u8>>, ConfigError> {
        let Some(path) = get(name).filter(|p| !p.is_empty()) else {
            return Ok(None);
        };
        let bad = |why: String| ConfigError::BadValue {
            name,
            value: path.clone(),
            why,
        };
        let pem = std::fs::read(&path).map_err(|e| bad(format!("cannot read it: {e}")))?;
        let found = match what {
            "key" => rustls_pemfile::private_key(&mut &pem[..])
                .ok()
                .flatten()
                .is_some(),
            _ => rustls_pemfile::certs(&mut &pem[..]).any(|c| c.is_ok()),
        };
        if !found {
            return Err(bad(format!("no PEM {what} in it")));
        }
        Ok(Some(pem))
    };
    let ca = read("LOCKER_MQTT_CA_FILE", "certificate")?;
    let cert = read("LOCKER_MQTT_CLIENT_CERT", "certificate")?;
    let key = read("LOCKER_MQTT_CLIENT_KEY", "key")?;
    let client = match (cert, key) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (None, None) => None,
        _ => {
            return Err(ConfigError::Needs {
                name: "LOCKER_MQTT_CLIENT_CERT",
                value: "(or LOCKER_MQTT_CLIENT_KEY) alone".to_owned(),
                needs: "both a client certificate and its key",
            });
        }
    };
    let Some(mut broker) = broker else {
        if ca.is_some() || client.is_some() {
            return Err(ConfigError::Needs {
                name: "LOCKER_MQTT_CA_FILE",
                value: "(or a client certificate) without LOCKER_MQTT_BROKER".to_owned(),
                needs: "an mqtts:// LOCKER_MQTT_BROKER: TLS files do nothing with the embedded broker",
            });
        }
        return Ok(None);
    };
    match &mut broker.tls {
        Some(tls) => *tls = BrokerTls { ca, client },
        None if ca.is_some() || client.is_some() => {
            return Err(ConfigError::Needs {
                name: "LOCKER_MQTT_CA_FILE",
                value: "(or a client certificate) with mqtt://".to_owned(),
                needs: "an mqtts:// LOCKER_MQTT_BROKER: TLS files do nothing on a plaintext connection",
            });
        }
        None => {}
    }
    Ok(Some(broker))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_files_are_read_checked_and_only_for_mqtts() {
        let dir = std::env::temp_dir().join(format!("tls-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let not_pem = dir.join("not.pem");
        std::fs::write(&not_pem, "not a certificate").expect("file");
        let path = not_pem.display().to_string();
        let env = |name: &'static str, value: String| {
            move |asked: &'static str| (asked == name).then(|| value.clone())
        };
        let tls = ExternalBroker::parse("mqtts://gw:pw@broker").expect("url");
        assert_eq!(tls.port, 8883, "the TLS port by default");
        let plain = ExternalBroker::parse("mqtt://gw:pw@broker").expect("url");
        let bad = broker_tls(&env("LOCKER_MQTT_CA_FILE", path.clone()), Some(tls.clone()))
            .expect_err("not PEM");
        assert!(bad.to_string().contains("no PEM certificate"), "{bad}");
        let missing = broker_tls(
            &env("LOCKER_MQTT_CA_FILE", "/nonexistent.pem".into()),
            Some(tls.clone()),
        )
        .expect_err("missing");
        assert!(missing.to_string().contains("cannot read it"), "{missing}");
        let alone = broker_tls(
            &env("LOCKER_MQTT_CLIENT_CERT", path.clone()),
            Some(tls.clone()),
        );
        assert!(alone.is_err(), "a certificate without its key");
        let on_plain = broker_tls(
            &env("LOCKER_MQTT_CLIENT_KEY", path.clone()),
            Some(plain.clone()),
        );
        assert!(on_plain.is_err());
        assert!(
            broker_tls(&env("LOCKER_MQTT_CA_FILE", path), None).is_err(),
            "no broker"
        );
        assert_eq!(
            broker_tls(&|_| None, Some(plain.clone())).expect("plain"),
            Some(plain)
        );
        assert_eq!(
            broker_tls(&|_| None, Some(tls.clone())).expect("system CAs"),
            Some(tls)
        );
        assert_eq!(broker_tls(&|_| None, None).expect("embedded"), None);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn dynamic_security_needs_an_external_broker_and_the_key() {
        let key = "ab".repeat(32);
        let env = |rights: &'static str, key: Option<String>| {
            move |name: &'static str| match name {
                "LOCKER_BROKER_RIGHTS" => Some(rights.to_owned()),
                "LOCKER_SECRETS_KEY" => key.clone(),
                _ => None,
            }
        };
        let (rights, sealed) =
            broker_rights(&env("dynsec", Some(key.clone())), true).expect("valid");
        assert_eq!(rights, BrokerRights::Dynsec);
        assert!(sealed.is_some());
        let no_key = broker_rights(&env("dynsec", None), true).expect_err("needs the key");
        assert!(
            no_key.to_string().contains("LOCKER_SECRETS_KEY"),
            "{no_key}"
        );
        assert!(
            broker_rights(&env("dynsec", Some(key.clone())), false).is_err(),
            "needs a broker"
        );
        let bad = broker_rights(&env("operator", Some("12".into())), false).expect_err("bad key");
        assert!(
            !bad.to_string().contains("12"),
            "the key is never printed: {bad}"
        );
        assert!(broker_rights(&env("emqx", None), true).is_err());
        assert_eq!(
            broker_rights(&env("operator", None), false)
                .expect("valid")
                .0,
            BrokerRights::Operator
        );
    }

    #[test]
    fn names_fit_client_ids_and_topic_filters() {
        assert_eq!(name("X", " gw-1.eu_west ".into()).unwrap(), "gw-1.eu_west");
        for bad in ["", "a/b", "a+b", "#", "a b", &"x".repeat(65), "é"] {
            assert!(name("X", bad.into()).is_err(), "{bad:?} must be refused");
        }
        assert!(name("X", host_name()).is_ok() || host_name().contains(|c: char| !c.is_ascii()));
    }
}
