//! Why the gateway did not start.

use crate::broker::BrokerError;

/// Why the gateway did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configured mode cannot run (fleet without one of its servers, edge with them).
    #[error(transparent)]
    Mode(#[from] crate::config::ModeError),
    /// The database cannot be opened or its schema migrated.
    #[error(transparent)]
    Storage(#[from] crate::storage::OpenError),
    /// The database failed at start.
    #[error("{backend}: {source}")]
    Database {
        /// `postgresql` or `sqlite`.
        backend: &'static str,
        /// What failed.
        source: sqlx::Error,
    },
    /// The broker could not start.
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// Redis is unreachable.
    #[error("Redis at {url}: {source}")]
    Redis {
        /// The URL, password redacted.
        url: String,
        /// What failed.
        source: redis::RedisError,
    },
    /// The external broker cannot carry a fleet (no shared subscriptions), or cannot be reached.
    #[error(transparent)]
    SharedSubscriptions(#[from] crate::mqtt::SharedSubscriptionError),
    /// The broker's dynamic-security plugin did not take the gateways' rights.
    #[error("the broker's dynamic security (LOCKER_BROKER_RIGHTS=dynsec): {0}")]
    BrokerRights(#[from] crate::background::broker_rights::RightsError),
    /// Another gateway runs on this database.
    #[error(transparent)]
    Lease(#[from] crate::lease::LeaseError),
    /// The HTTP listen address is taken or not ours.
    #[error("cannot listen for HTTP on {addr} (set LOCKER_HTTP_ADDR to change it): {source}")]
    Http {
        /// The address.
        addr: std::net::SocketAddr,
        /// What failed.
        source: std::io::Error,
    },
}
