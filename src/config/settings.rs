//! Plain settings types the configuration is made of, each used by the module it configures
//! (which re-exports it): configuration stands below every module and imports none of them.

use std::net::IpAddr;
use std::time::Duration;

/// The cost of hashing a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordCost {
    /// Memory in KiB (`LOCKER_ARGON2_MEMORY_KIB`, default 19456).
    pub memory_kib: u32,
    /// Passes (`LOCKER_ARGON2_ITERATIONS`, default 2).
    pub iterations: u32,
    /// Lanes (`LOCKER_ARGON2_PARALLELISM`, default 1).
    pub parallelism: u32,
}

impl Default for PasswordCost {
    fn default() -> Self {
        Self {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
        }
    }
}

impl PasswordCost {
    /// Small and fast, for tests only.
    pub const TEST: Self = Self {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };
}

/// How a worker backs off a failing item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerPolicy {
    /// The wait after the first failure; doubled after each further one.
    pub first_retry: Duration,
    /// The longest wait while the item is not stuck yet.
    pub max_retry: Duration,
    /// Failures in a row after which the item is stuck.
    pub flag_after: u32,
    /// The wait between tries of a stuck item.
    pub stuck_retry: Duration,
}

impl Default for WorkerPolicy {
    fn default() -> Self {
        Self {
            first_retry: Duration::from_secs(2),
            max_retry: Duration::from_secs(300),
            flag_after: 5,
            stuck_retry: Duration::from_secs(3600),
        }
    }
}

/// Rate limits of the HTTP API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitSettings {
    /// Requests per minute per client IP (`LOCKER_RATE_LIMIT_PER_IP`, default 600).
    pub per_ip_per_minute: u32,
    /// Requests per minute per user (`LOCKER_RATE_LIMIT_PER_USER`, default 300).
    pub per_user_per_minute: u32,
    /// Peers whose `X-Forwarded-For` is believed (`LOCKER_TRUSTED_PROXIES`, comma-separated).
    pub trusted_proxies: Vec<IpAddr>,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            per_ip_per_minute: 600,
            per_user_per_minute: 300,
            trusted_proxies: Vec::new(),
        }
    }
}

/// Rules for rentals and orders (the door lock, jams).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RentalSettings {
    /// Most rentals one user may have running (`LOCKER_MAX_ACTIVE_RENTALS`, default 3).
    pub max_active: i64,
    /// How long a door's lock lasts; covers the unlock's deadline and open window
    /// (`LOCKER_DOOR_LOCK_TTL_MS`, default 30000).
    pub lock_ttl: Duration,
    /// Jams in a row after which a door is out of service (`LOCKER_JAMS_OUT_OF_SERVICE`, 3).
    pub jams_out_of_service: i32,
}

impl Default for RentalSettings {
    fn default() -> Self {
        Self {
            max_active: 3,
            lock_ttl: Duration::from_secs(30),
            jams_out_of_service: 3,
        }
    }
}

/// Who keeps the external broker's clients and their topic rights.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BrokerRights {
    /// The operator (a password file and an ACL file on the broker; README).
    #[default]
    Operator,
    /// The gateways, through Mosquitto's dynamic-security plugin: every locker a client of its
    /// own, with a role allowing only its own topics, in step with the registry.
    Dynsec,
}

/// The key lockers' MQTT passwords are sealed with in the database (`LOCKER_SECRETS_KEY`, 32
/// bytes as 64 hex digits). Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretsKey([u8; 32]);

impl SecretsKey {
    /// The key written as 64 hex digits; `None` if it is not.
    pub fn from_hex(text: &str) -> Option<Self> {
        let mut key = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut key).ok()?;
        Some(Self(key))
    }

    /// The key's bytes.
    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for SecretsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretsKey(<redacted>)")
    }
}

/// TLS to an external broker (`mqtts://`): whom to trust, and what to show if it asks.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct BrokerTls {
    /// PEM certificates of the authorities to trust (`LOCKER_MQTT_CA_FILE`); `None`: the
    /// system's store.
    pub ca: Option<Vec<u8>>,
    /// A client certificate chain and its private key, PEM (`LOCKER_MQTT_CLIENT_CERT`,
    /// `LOCKER_MQTT_CLIENT_KEY`), for a broker that wants one (AWS IoT Core does).
    pub client: Option<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for BrokerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerTls")
            .field("ca", &self.ca.as_ref().map(|_| "file"))
            .field(
                "client",
                &self.client.as_ref().map(|_| "certificate and key"),
            )
            .finish()
    }
}

/// Where and as whom to reach an external broker: `mqtt://user:password@host:port`, or
/// `mqtts://…` over TLS.
#[derive(Clone, PartialEq, Eq)]
pub struct ExternalBroker {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Login, if the broker wants one.
    pub credentials: Option<(String, String)>,
    /// TLS, for `mqtts://`.
    pub tls: Option<BrokerTls>,
}

impl std::fmt::Debug for ExternalBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}",
            if self.tls.is_some() {
                "mqtts://"
            } else {
                "mqtt://"
            }
        )?;
        if let Some((user, _)) = &self.credentials {
            write!(f, "{user}:***@")?;
        }
        write!(f, "{}:{}", self.host, self.port)
    }
}

impl ExternalBroker {
    /// Parses `mqtt://[user[:password]@]host[:port]` (port 1883 by default) or `mqtts://…`
    /// (TLS, port 8883 by default; its files are set by [`ExternalBroker::tls`]).
    pub fn parse(url: &str) -> Option<Self> {
        let (rest, tls) = match url.strip_prefix("mqtts://") {
            Some(rest) => (rest, Some(BrokerTls::default())),
            None => (url.strip_prefix("mqtt://")?, None),
        };
        let rest = rest.trim_end_matches('/');
        let (credentials, hostport) = match rest.rsplit_once('@') {
            Some((userinfo, hostport)) => {
                let (user, pass) = userinfo.split_once(':').unwrap_or((userinfo, ""));
                (Some((user.to_owned(), pass.to_owned())), hostport)
            }
            None => (None, rest),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((host, port)) => (host, port.parse().ok()?),
            None => (hostport, if tls.is_some() { 8883 } else { 1883 }),
        };
        if host.is_empty() {
            return None;
        }
        Some(Self {
            host: host.to_owned(),
            port,
            credentials,
            tls,
        })
    }
}

/// Largest request body accepted by default (bytes); `LOCKER_HTTP_BODY_LIMIT` changes it.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;
