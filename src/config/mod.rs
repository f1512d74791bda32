//! The gateway's configuration: one typed struct, defaults in code, overridden by environment
//! variables, validated at start with a message naming each wrong setting.

use std::net::SocketAddr;
use std::time::Duration;

mod fleet;
mod layers;
mod mode;
mod mqtts;
mod operations;
pub mod serial;
mod settings;
mod show;

pub use fleet::host_name;

pub use layers::{LoadError, SETTINGS, file_key};
pub use mode::{Mode, ModeError};
pub use mqtts::MqttsListener;
pub use operations::{FirmwareSettings, VendorKey, WebhookPolicy};
pub use settings::{
    BrokerRights, BrokerTls, DEFAULT_BODY_LIMIT, ExternalBroker, LimitSettings, PasswordCost,
    RentalSettings, SecretsKey, WorkerPolicy,
};
pub use show::redact_url;

/// Where the embedded broker listens by default: the standard MQTT port on every interface, where
/// lockers in the field expect it. If another broker holds it, the gateway stops with a message
/// naming the port and `LOCKER_MQTT_ADDR` (`scripts/run.sh` uses 127.0.0.1:11883).
pub const DEFAULT_MQTT_ADDR: &str = "0.0.0.0:1883";
/// Where the HTTP API listens by default.
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:8080";
/// The name of edge mode's SQLite file in the data directory.
pub const SQLITE_FILE: &str = "gateway.sqlite";

/// Everything the gateway needs to know at start.
#[derive(Clone, PartialEq, Eq)]
pub struct Config {
    /// `LOCKER_HTTP_ADDR`: the HTTP API's listen address.
    pub http_addr: SocketAddr,
    /// `LOCKER_MQTT_ADDR`: the embedded MQTT broker's listen address (MQTT 3.1.1).
    pub mqtt_addr: SocketAddr,
    /// `LOCKER_MQTT5_ADDR`: a second listener for MQTT 5; unset for none.
    pub mqtt5_addr: Option<SocketAddr>,
    /// `LOCKER_MQTTS_*`: the embedded broker's TLS listener; unset for none.
    pub mqtts: Option<MqttsListener>,
    /// `LOCKER_MQTT_BROKER`: an external broker (`mqtt://user:password@host:port`) to use instead
    /// of the embedded one; unset for the embedded broker.
    pub external_broker: Option<ExternalBroker>,
    /// `LOCKER_MODE`: `edge` (one gateway: SQLite and in-process door locks) or `fleet`
    /// (PostgreSQL and Redis, any number of gateways); unset: decided by what is configured
    /// (see [`Config::mode`]).
    pub mode: Option<Mode>,
    /// `LOCKER_DATA_DIR`: where edge mode keeps its SQLite file, `gateway.sqlite` (default
    /// `data`, relative to the working directory; made if missing).
    pub data_dir: std::path::PathBuf,
    /// `DATABASE_URL`: PostgreSQL; unset for none.
    pub database_url: Option<String>,
    /// `REDIS_URL`: Redis; unset for none.
    pub redis_url: Option<String>,
    /// `LOCKER_HEARTBEAT_SECS`: the heartbeat interval lockers use (default 60); a locker silent for
    /// three intervals is marked offline.
    pub heartbeat: Duration,
    /// `LOCKER_OUTBOX_POLL_MS`: how often the outbox publisher looks for new events (default 200).
    pub outbox_poll: Duration,
    /// `LOCKER_ROLLOUT_TICK_MS`: how often the firmware rollout engine steps its campaigns
    /// (default 1000).
    pub rollout_tick: Duration,
    /// `LOCKER_COMMAND_DEADLINE_MS`: how long a command waits for the locker's answer (default
    /// 10000).
    pub command_deadline: Duration,
    /// `LOCKER_QUERY_AGAIN_SECS`: how long to wait for a locker's state report about commands of
    /// unknown outcome before asking again (default 15).
    pub query_again: Duration,
    /// `LOCKER_SURFACE_UNKNOWN_SECS`: how long a command may stay unknown before operators are
    /// told (default 120).
    pub surface_unknown: Duration,
    /// `LOCKER_COMMANDS_IN_FLIGHT`: most commands awaiting answers at once (default 5000).
    pub commands_in_flight: usize,
    /// `LOCKER_HTTP_BODY_LIMIT`: largest HTTP request body in bytes (default 65536).
    pub http_body_limit: usize,
    /// `LOCKER_HTTP_HEADER_TIMEOUT_SECS`, `LOCKER_HTTP_BODY_TIMEOUT_SECS`,
    /// `LOCKER_HTTP_MAX_CONNECTIONS`: see [`HttpServer`].
    pub http_server: HttpServer,
    /// `LOCKER_TOKEN_TTL_SECS`: how long a login's bearer token works (default 43200, 12 hours).
    pub token_ttl: Duration,
    /// `LOCKER_ARGON2_MEMORY_KIB`, `LOCKER_ARGON2_ITERATIONS`, `LOCKER_ARGON2_PARALLELISM`: the
    /// cost of hashing a password (defaults 19456, 2, 1).
    pub password_cost: PasswordCost,
    /// `LOCKER_RATE_LIMIT_PER_IP`, `LOCKER_RATE_LIMIT_PER_USER` (requests per minute, defaults
    /// 600 and 300) and `LOCKER_TRUSTED_PROXIES` (comma-separated addresses whose
    /// `X-Forwarded-For` is believed; default none).
    pub rate_limits: LimitSettings,
    /// `LOCKER_LOG_FORMAT`: `text` (default) or `json`.
    pub log_format: LogFormat,
    /// `LOCKER_CURRENCY` (default `EUR`) and `LOCKER_CURRENCY_EXPONENT` (its minor-unit
    /// digits, default 2); `LOCKER_MAX_AMOUNT` (largest amount accepted in one piece, default
    /// 10000) and `LOCKER_MAX_BALANCE` (largest wallet balance, default 1000000).
    pub currency: crate::money::Currency,
    /// `LOCKER_PAYMENT_WEBHOOK_SECRET`: the payment provider's webhook signing secret; unset, the
    /// webhook answers 503.
    pub payment_webhook_secret: Option<String>,
    /// `LOCKER_REDIS_PREFIX`: prefix of every Redis key (default `locker:`).
    pub redis_prefix: String,
    /// `LOCKER_MAX_ACTIVE_RENTALS` (default 3), `LOCKER_DOOR_LOCK_TTL_MS` (default 30000),
    /// `LOCKER_JAMS_OUT_OF_SERVICE` (default 3).
    pub rentals: RentalSettings,
    /// `LOCKER_SHUTDOWN_SECS`: at SIGTERM, how long requests and unlocks in flight may take to
    /// finish before the gateway stops anyway (default 30).
    pub shutdown_grace: Duration,
    /// `LOCKER_CACHE_TTL_SECS`: how long read-mostly data (price plans, products) stays in the
    /// Redis cache; 0 turns the cache off (default 60).
    pub cache_ttl: Duration,
    /// `LOCKER_SERIAL_BUSES`: lock boards on serial buses, as
    /// `/dev/ttyUSB0@9600,8N1=1:cab-1-b1,2:cab-1-b2;/dev/ttyUSB1=1:cab-2-b1` (default none), with
    /// `LOCKER_SERIAL_TIMEOUT_MS` (200), `LOCKER_SERIAL_GAP_MS` (50), `LOCKER_SERIAL_RETRIES` (2),
    /// `LOCKER_SERIAL_POLL_MS` (1000) and `LOCKER_SERIAL_OFFLINE_POLLS` (3) for every bus.
    pub serial_buses: Vec<serial::BusSettings>,
    /// `LOCKER_GATEWAY_LEASE_SECS` (default 15): the one-gateway-per-database lease; a gateway
    /// killed without stopping blocks its successor at most this long.
    pub gateway_lease: Duration,
    /// `LOCKER_GATEWAY_ID` (default: the host name): this gateway's instance id, unique among
    /// the live gateways on one database; it names the gateway's lease, its MQTT client ids and
    /// the commands it sends.
    pub gateway_id: String,
    /// `LOCKER_SHARED_GROUP` (default `locker-gateways`): with an external broker, the gateways
    /// share the lockers' uplinks through `$share/{group}/…` subscriptions.
    pub shared_group: String,
    /// `LOCKER_WORKER_RETRY_SECS` (default 2): how long a background worker leaves an item that
    /// failed before it tries again (doubled after each failure, at most 5 minutes);
    /// `LOCKER_WORKER_STUCK_AFTER` (default 5): failures in a row after which the item is
    /// flagged for operators and tried hourly.
    pub worker_policy: WorkerPolicy,
    /// `LOCKER_BROKER_RIGHTS`: who keeps an external broker's clients and topic rights:
    /// `operator` (default: a password file and an ACL file) or `dynsec` (the gateways, through
    /// Mosquitto's dynamic-security plugin; needs `LOCKER_MQTT_BROKER` with the plugin's admin
    /// user and `LOCKER_SECRETS_KEY`).
    pub broker_rights: BrokerRights,
    /// `LOCKER_SECRETS_KEY` (64 hex digits; default none): seals each locker's MQTT password in
    /// the database when it is provisioned or rotated, so that the gateways can tell a broker
    /// that needs it (`LOCKER_BROKER_RIGHTS=dynsec`). Set it wherever devices are provisioned.
    pub secrets_key: Option<SecretsKey>,
    /// `LOCKER_BROKER_HOOK_SECRET` (default none: the hooks answer 503): what a broker asking
    /// over HTTP (EMQX's HTTP authenticator and authorizer) sends as `Authorization: Bearer`.
    pub broker_hook_secret: Option<String>,
    /// `LOCKER_WEBHOOK_ATTEMPTS`, `LOCKER_WEBHOOK_TIMEOUT_SECS`: how webhook deliveries are tried.
    pub webhooks: WebhookPolicy,
    /// `LOCKER_TIME_ZONE` (IANA name, default `UTC`): where "today" begins, for the console's
    /// money taken today.
    pub time_zone: chrono_tz::Tz,
    /// `LOCKER_FIRMWARE_KEYS`, `LOCKER_FIRMWARE_MAX_BYTES`, `LOCKER_FIRMWARE_INSTALL_SECS`: the
    /// vendors' signing keys, the largest image, how long an install may take.
    pub firmware: FirmwareSettings,
}

/// How the HTTP server treats slow and idle clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpServer {
    /// `LOCKER_HTTP_HEADER_TIMEOUT_SECS` (default 10): a request head must arrive within this; a
    /// keep-alive connection idle this long is closed.
    pub header_timeout: Duration,
    /// `LOCKER_HTTP_BODY_TIMEOUT_SECS` (default 15): a request body must arrive within this
    /// (else 408).
    pub body_timeout: Duration,
    /// `LOCKER_HTTP_MAX_CONNECTIONS` (default 1024): connections open at once; more wait.
    pub max_connections: usize,
}

impl Default for HttpServer {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(15),
            max_connections: 1024,
        }
    }
}

/// A setting that could not be used.
#[allow(missing_docs)] // each variant is described by its `#[error]` text
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{name}={value:?} is not a socket address such as 127.0.0.1:8080")]
    BadAddress { name: &'static str, value: String },
    #[error("{name}={value:?} is not a whole number from {min} to {max}")]
    BadNumber {
        name: &'static str,
        value: String,
        min: u64,
        max: u64,
    },
    #[error("{name}={value:?} is not a comma-separated list of IP addresses")]
    BadAddressList { name: &'static str, value: String },
    #[error("{name}={value:?} is not one of {choices}")]
    BadChoice {
        name: &'static str,
        value: String,
        choices: &'static str,
    },
    #[error("{name}={value} is not a {scheme}:// URL")]
    BadUrl {
        name: &'static str,
        value: String,
        scheme: &'static str,
    },
    #[error("{name}={value:?}: {why}")]
    BadValue {
        name: &'static str,
        value: String,
        why: String,
    },
    #[error("{name}={value} needs {needs}")]
    Needs {
        name: &'static str,
        value: String,
        needs: &'static str,
    },
}

impl ConfigError {
    /// The setting (its environment variable) that is wrong.
    pub fn name(&self) -> &'static str {
        match self {
            Self::BadAddress { name, .. }
            | Self::BadNumber { name, .. }
            | Self::BadAddressList { name, .. }
            | Self::BadUrl { name, .. }
            | Self::BadChoice { name, .. }
            | Self::Needs { name, .. }
            | Self::BadValue { name, .. } => name,
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line (for log collectors).
    Json,
}

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration from any name → value lookup (tests pass a map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let addr = |name: &'static str, default: &str| {
            let value = get(name).unwrap_or_else(|| default.to_owned());
            value
                .parse::<SocketAddr>()
                .map_err(|_| ConfigError::BadAddress { name, value })
        };
        let url = |name: &'static str, schemes: &[&'static str]| match get(name) {
            None => Ok(None),
            Some(value) if value.is_empty() => Ok(None),
            Some(value)
                if schemes
                    .iter()
                    .any(|s| value.starts_with(&format!("{s}://"))) =>
            {
                Ok(Some(value))
            }
            Some(value) => Err(ConfigError::BadUrl {
                name,
                value: redact_url(&value),
                scheme: schemes[0],
            }),
        };
        let optional_addr = |name: &'static str| match get(name) {
            None => Ok(None),
            Some(value) if value.is_empty() => Ok(None),
            Some(value) => value
                .parse::<SocketAddr>()
                .map(Some)
                .map_err(|_| ConfigError::BadAddress { name, value }),
        };
        let number = |name: &'static str, default: u64, min: u64, max: u64| match get(name) {
            None => Ok(default),
            Some(value) => match value.trim().parse::<u64>() {
                Ok(n) if (min..=max).contains(&n) => Ok(n),
                _ => Err(ConfigError::BadNumber {
                    name,
                    value,
                    min,
                    max,
                }),
            },
        };
        let external_broker = match get("LOCKER_MQTT_BROKER") {
            None => None,
            Some(value) if value.is_empty() => None,
            Some(value) => {
                Some(
                    ExternalBroker::parse(&value).ok_or_else(|| ConfigError::BadUrl {
                        name: "LOCKER_MQTT_BROKER",
                        value: redact_url(&value),
                        scheme: "mqtt or mqtts",
                    })?,
                )
            }
        };
        let external_broker = fleet::broker_tls(&get, external_broker)?;
        let (broker_rights, secrets_key) = fleet::broker_rights(&get, external_broker.is_some())?;
        Ok(Self {
            mqtts: mqtts::mqtts(&get, external_broker.is_some())?,
            broker_rights,
            secrets_key,
            broker_hook_secret: get("LOCKER_BROKER_HOOK_SECRET").filter(|s| !s.is_empty()),
            external_broker,
            heartbeat: Duration::from_secs(number("LOCKER_HEARTBEAT_SECS", 60, 1, 3600)?),
            outbox_poll: Duration::from_millis(number("LOCKER_OUTBOX_POLL_MS", 200, 10, 60_000)?),
            rollout_tick: Duration::from_millis(number(
                "LOCKER_ROLLOUT_TICK_MS",
                1000,
                20,
                60_000,
            )?),
            query_again: Duration::from_secs(number("LOCKER_QUERY_AGAIN_SECS", 15, 1, 3600)?),
            commands_in_flight: number("LOCKER_COMMANDS_IN_FLIGHT", 5_000, 1, 1_000_000)? as usize,
            token_ttl: Duration::from_secs(number("LOCKER_TOKEN_TTL_SECS", 43_200, 60, 2_592_000)?),
            password_cost: PasswordCost {
                memory_kib: number("LOCKER_ARGON2_MEMORY_KIB", 19 * 1024, 8, 1024 * 1024)? as u32,
                iterations: number("LOCKER_ARGON2_ITERATIONS", 2, 1, 10)? as u32,
                parallelism: number("LOCKER_ARGON2_PARALLELISM", 1, 1, 16)? as u32,
            },
            currency: operations::currency(&get, &number)?,
            webhooks: operations::webhooks(&number)?,
            time_zone: operations::time_zone(&get)?,
            firmware: operations::firmware(&get, &number)?,
            payment_webhook_secret: get("LOCKER_PAYMENT_WEBHOOK_SECRET").filter(|s| !s.is_empty()),
            shutdown_grace: Duration::from_secs(number("LOCKER_SHUTDOWN_SECS", 30, 1, 600)?),
            cache_ttl: Duration::from_secs(number("LOCKER_CACHE_TTL_SECS", 60, 0, 86_400)?),
            serial_buses: {
                // Every bus's defaults; a bus's own `?options` override them.
                let mut defaults = serial::BusSettings::new("");
                defaults.timeout =
                    Duration::from_millis(number("LOCKER_SERIAL_TIMEOUT_MS", 200, 10, 10_000)?);
                defaults.gap =
                    Duration::from_millis(number("LOCKER_SERIAL_GAP_MS", 50, 0, 10_000)?);
                defaults.retries = number("LOCKER_SERIAL_RETRIES", 2, 0, 10)? as u32;
                defaults.poll_every =
                    Duration::from_millis(number("LOCKER_SERIAL_POLL_MS", 1000, 10, 600_000)?);
                defaults.offline_after = number("LOCKER_SERIAL_OFFLINE_POLLS", 3, 1, 100)? as u32;
                let text = get("LOCKER_SERIAL_BUSES").unwrap_or_default();
                serial::parse_buses_with(&text, &defaults).map_err(|e| ConfigError::BadValue {
                    name: "LOCKER_SERIAL_BUSES",
                    value: text.clone(),
                    why: e.to_string(),
                })?
            },
            gateway_lease: Duration::from_secs(number("LOCKER_GATEWAY_LEASE_SECS", 15, 1, 600)?),
            gateway_id: fleet::name(
                "LOCKER_GATEWAY_ID",
                get("LOCKER_GATEWAY_ID").unwrap_or_else(fleet::host_name),
            )?,
            shared_group: fleet::name(
                "LOCKER_SHARED_GROUP",
                get("LOCKER_SHARED_GROUP")
                    .unwrap_or_else(|| fleet::DEFAULT_SHARED_GROUP.to_owned()),
            )?,
            worker_policy: WorkerPolicy {
                first_retry: Duration::from_secs(number("LOCKER_WORKER_RETRY_SECS", 2, 0, 3600)?),
                flag_after: number("LOCKER_WORKER_STUCK_AFTER", 5, 1, 1000)? as u32,
                ..Default::default()
            },
            redis_prefix: get("LOCKER_REDIS_PREFIX").unwrap_or_else(|| "locker:".to_owned()),
            rentals: RentalSettings {
                max_active: number("LOCKER_MAX_ACTIVE_RENTALS", 3, 1, 1000)? as i64,
                lock_ttl: Duration::from_millis(number(
                    "LOCKER_DOOR_LOCK_TTL_MS",
                    30_000,
                    1_000,
                    600_000,
                )?),
                jams_out_of_service: number("LOCKER_JAMS_OUT_OF_SERVICE", 3, 1, 100)? as i32,
            },
            log_format: match get("LOCKER_LOG_FORMAT").as_deref() {
                None | Some("text") => LogFormat::Text,
                Some("json") => LogFormat::Json,
                Some(other) => {
                    return Err(ConfigError::BadChoice {
                        name: "LOCKER_LOG_FORMAT",
                        value: other.to_owned(),
                        choices: "text, json",
                    });
                }
            },
            rate_limits: LimitSettings {
                per_ip_per_minute: number("LOCKER_RATE_LIMIT_PER_IP", 600, 1, 1_000_000)? as u32,
                per_user_per_minute: number("LOCKER_RATE_LIMIT_PER_USER", 300, 1, 1_000_000)?
                    as u32,
                trusted_proxies: match get("LOCKER_TRUSTED_PROXIES") {
                    None => Vec::new(),
                    Some(value) => value
                        .split(',')
                        .map(str::trim)
                        .filter(|a| !a.is_empty())
                        .map(|a| a.parse())
                        .collect::<Result<_, _>>()
                        .map_err(|_| ConfigError::BadAddressList {
                            name: "LOCKER_TRUSTED_PROXIES",
                            value: value.clone(),
                        })?,
                },
            },
            http_body_limit: number(
                "LOCKER_HTTP_BODY_LIMIT",
                DEFAULT_BODY_LIMIT as u64,
                1024,
                16 * 1024 * 1024,
            )? as usize,
            surface_unknown: Duration::from_secs(number(
                "LOCKER_SURFACE_UNKNOWN_SECS",
                120,
                1,
                86_400,
            )?),
            command_deadline: Duration::from_millis(number(
                "LOCKER_COMMAND_DEADLINE_MS",
                10_000,
                100,
                600_000,
            )?),
            http_server: HttpServer {
                header_timeout: Duration::from_secs(number(
                    "LOCKER_HTTP_HEADER_TIMEOUT_SECS",
                    10,
                    1,
                    3600,
                )?),
                body_timeout: Duration::from_secs(number(
                    "LOCKER_HTTP_BODY_TIMEOUT_SECS",
                    15,
                    1,
                    3600,
                )?),
                max_connections: number("LOCKER_HTTP_MAX_CONNECTIONS", 1024, 1, 1_000_000)?
                    as usize,
            },
            http_addr: addr("LOCKER_HTTP_ADDR", DEFAULT_HTTP_ADDR)?,
            mqtt_addr: addr("LOCKER_MQTT_ADDR", DEFAULT_MQTT_ADDR)?,
            mqtt5_addr: optional_addr("LOCKER_MQTT5_ADDR")?,
            mode: match get("LOCKER_MODE").as_deref().map(str::trim) {
                None | Some("") => None,
                Some("edge") => Some(Mode::Edge),
                Some("fleet") => Some(Mode::Fleet),
                Some(other) => {
                    return Err(ConfigError::BadChoice {
                        name: "LOCKER_MODE",
                        value: other.to_owned(),
                        choices: "edge, fleet",
                    });
                }
            },
            data_dir: match get("LOCKER_DATA_DIR").as_deref().map(str::trim) {
                None | Some("") => std::path::PathBuf::from("data"),
                Some(dir) => std::path::PathBuf::from(dir),
            },
            database_url: url("DATABASE_URL", &["postgres", "postgresql"])?,
            redis_url: url("REDIS_URL", &["redis", "rediss"])?,
        })
    }

    /// Edge mode's SQLite file: [`SQLITE_FILE`] in `LOCKER_DATA_DIR`.
    pub fn sqlite_path(&self) -> std::path::PathBuf {
        self.data_dir.join(SQLITE_FILE)
    }
}

#[cfg(test)]
mod tests;
