//! One gateway per database, until several can share one: the running gateway holds a lease in
//! the database (`gateway_lease`, both backends) and renews it every third of its length. A
//! second gateway started on the same database watches the lease for up to its length: if the
//! holder renews it, the newcomer refuses to start and names the holder; if it expires (the
//! holder was killed), the newcomer takes it over. A gateway that finds its lease taken (it could
//! not renew it in time) stops. A clean stop gives the lease up at once.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::storage::{Storage, on_pool};

/// The lease's row.
const NAME: &str = "gateway";

/// Why the lease was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// Another gateway holds it and renews it.
    #[error(
        "another gateway is running on this database ({holder}, started {started_at}, last seen \
         {renewed_at}): two gateways on one database would answer customers from each other's \
         memory and bill wrongly, so this one does not start; stop the other one first (a \
         gateway that died gives its lease up after LOCKER_GATEWAY_LEASE_SECS)"
    )]
    Held {
        /// Who holds it (host, process, HTTP address).
        holder: String,
        /// When it started.
        started_at: DateTime<Utc>,
        /// When it last renewed the lease.
        renewed_at: DateTime<Utc>,
    },
    /// The database failed.
    #[error("cannot take the gateway lease: {0}")]
    Storage(#[from] sqlx::Error),
}

/// The lease this gateway holds.
#[derive(Debug, Clone)]
pub struct Lease {
    storage: Storage,
    holder: String,
    length: Duration,
}

type Row = (String, DateTime<Utc>, DateTime<Utc>, DateTime<Utc>);

impl Lease {
    /// Takes the lease for `holder`, waiting at most its `length` to see whether the gateway
    /// holding it is alive.
    pub async fn acquire(
        storage: &Storage,
        holder: String,
        length: Duration,
    ) -> Result<Self, LeaseError> {
        let lease = Self {
            storage: storage.clone(),
            holder,
            length,
        };
        let give_up = tokio::time::Instant::now() + length + Duration::from_secs(1);
        let mut seen: Option<(String, DateTime<Utc>)> = None;
        loop {
            if lease.try_take().await? {
                tracing::info!(holder = %lease.holder, "gateway lease taken");
                return Ok(lease);
            }
            if let Some((holder, started_at, renewed_at, _)) = lease.read().await? {
                let renewed = seen
                    .as_ref()
                    .is_some_and(|(h, r)| *h == holder && *r != renewed_at);
                if renewed || tokio::time::Instant::now() > give_up {
                    return Err(LeaseError::Held {
                        holder,
                        started_at,
                        renewed_at,
                    });
                }
                if seen.as_ref().is_none_or(|(h, _)| *h != holder) {
                    tracing::warn!(%holder, "another gateway holds the lease; waiting to see whether it is alive");
                    seen = Some((holder, renewed_at));
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Inserts the lease, or takes over an expired one.
    async fn try_take(&self) -> Result<bool, sqlx::Error> {
        const TAKE: &str =
            "INSERT INTO gateway_lease (name, holder, started_at, renewed_at, expires_at)
             VALUES ($1, $2, $3, $3, $4)
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder,
                 started_at = excluded.started_at, renewed_at = excluded.renewed_at,
                 expires_at = excluded.expires_at
             WHERE gateway_lease.expires_at < excluded.renewed_at
             RETURNING holder";
        let now = Utc::now();
        let taken: Option<String> = on_pool!(&self.storage, |pool| sqlx::query_scalar(TAKE)
            .bind(NAME)
            .bind(&self.holder)
            .bind(now)
            .bind(crate::storage::after(now, self.length))
            .fetch_optional(pool)
            .await?);
        Ok(taken.is_some())
    }

    async fn read(&self) -> Result<Option<Row>, sqlx::Error> {
        const READ: &str =
            "SELECT holder, started_at, renewed_at, expires_at FROM gateway_lease WHERE name = $1";
        Ok(on_pool!(&self.storage, |pool| sqlx::query_as(READ)
            .bind(NAME)
            .fetch_optional(pool)
            .await?))
    }

    /// Renews the lease: `false` if another gateway holds it now.
    pub async fn renew(&self) -> Result<bool, sqlx::Error> {
        const RENEW: &str = "UPDATE gateway_lease SET renewed_at = $3, expires_at = $4
             WHERE name = $1 AND holder = $2";
        let now = Utc::now();
        let renewed = on_pool!(&self.storage, |pool| sqlx::query(RENEW)
            .bind(NAME)
            .bind(&self.holder)
            .bind(now)
            .bind(crate::storage::after(now, self.length))
            .execute(pool)
            .await?
            .rows_affected());
        Ok(renewed == 1)
    }

    /// Gives the lease up (a clean stop): the next gateway starts at once.
    pub async fn release(&self) {
        const RELEASE: &str = "DELETE FROM gateway_lease WHERE name = $1 AND holder = $2";
        let released: Result<u64, sqlx::Error> = async {
            Ok(on_pool!(&self.storage, |pool| sqlx::query(RELEASE)
                .bind(NAME)
                .bind(&self.holder)
                .execute(pool)
                .await?
                .rows_affected()))
        }
        .await;
        if let Err(e) = released {
            tracing::warn!(error = %e, "cannot give the gateway lease up; it expires by itself");
        }
    }

    /// Renews every third of the lease until `shutdown`; cancels `lost` (the gateway must stop)
    /// if another gateway took the lease meanwhile.
    pub async fn keep(self, shutdown: CancellationToken, lost: CancellationToken) {
        let every = self.length / 3;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            match self.renew().await {
                Ok(true) => {}
                Ok(false) => {
                    metrics::counter!("locker_gateway_lease_lost_total").increment(1);
                    tracing::error!(holder = %self.holder, "another gateway took this gateway's lease (it could not renew it in time): stopping");
                    lost.cancel();
                    return;
                }
                Err(e) => {
                    metrics::counter!("locker_worker_errors_total", "worker" => "gateway_lease")
                        .increment(1);
                    tracing::warn!(error = %e, "cannot renew the gateway lease; trying again");
                }
            }
        }
    }
}

/// This gateway's name in the lease: host, process id, HTTP address.
pub fn holder_name(http: std::net::SocketAddr) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".to_owned());
    format!("{host} pid {} http {http}", std::process::id())
}
