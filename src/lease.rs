//! The gateways sharing a database, each with a lease (`gateways`, both backends).
//!
//! A gateway takes the row of its instance id (`LOCKER_GATEWAY_ID`) at start and renews it every
//! third of its length. Who may run beside whom:
//! - two live gateways never share an id (the newcomer refuses and names the holder);
//! - a gateway that keeps lockers on its embedded broker, or its door locks in its own process
//!   (edge mode), is *exclusive*: it runs alone on its database, and no other gateway starts
//!   beside it;
//! - gateways on an external broker with PostgreSQL and Redis (fleet mode) run side by side, any
//!   number of them.
//!
//! A newcomer that finds a conflicting row watches it for up to a lease's length: renewed, the
//! newcomer refuses to start; expired (the holder was killed), the newcomer goes ahead. A gateway
//! that finds its row taken (it could not renew it in time) stops. A clean stop marks the row
//! stopped, so its lease is over at once. Rows stay for operators (`GET /v1/gateways`) and are
//! purged a week after their lease ended. Whether a gateway's lease is live is what decides who
//! may take its in-flight work over.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::storage::{Storage, UnitOfWork, in_work, on_pool};

/// How long the row of a gateway whose lease ended is kept.
const KEEP_ENDED: Duration = Duration::from_secs(7 * 24 * 3600);

/// Which broker a gateway's lockers reach it through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerKind {
    /// Its own, in the process.
    Embedded,
    /// An external broker (cluster) shared with other gateways.
    External,
}

impl BrokerKind {
    /// `embedded` or `external`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Embedded => "embedded",
            Self::External => "external",
        }
    }
}

/// Who a gateway is, as its lease shows it.
#[derive(Debug, Clone)]
pub struct Identity {
    /// Its instance id.
    pub id: String,
    /// Host, process id and HTTP address of the process holding it.
    pub process: String,
    /// Its broker.
    pub broker: BrokerKind,
    /// Whether it must run alone on its database (embedded broker, or door locks in process).
    pub exclusive: bool,
}

/// A gateway's row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Member {
    /// Its instance id.
    pub id: String,
    /// Host, process id and HTTP address.
    pub process: String,
    /// `embedded` or `external`.
    pub broker: String,
    /// Whether it runs alone on its database.
    pub exclusive: bool,
    /// Its version.
    pub version: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it last renewed its lease.
    pub renewed_at: DateTime<Utc>,
    /// When its lease ends unless renewed.
    pub expires_at: DateTime<Utc>,
    /// When it stopped cleanly, if it did.
    pub stopped_at: Option<DateTime<Utc>>,
}

impl Member {
    /// `live` (its lease runs), `stopped` (it stopped cleanly) or `expired` (it died, or could not
    /// renew its lease).
    pub fn state(&self, now: DateTime<Utc>) -> &'static str {
        match (self.expires_at > now, self.stopped_at) {
            (true, _) => "live",
            (false, Some(_)) => "stopped",
            (false, None) => "expired",
        }
    }
}

/// Why a gateway may not start.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// A live gateway has this gateway's id.
    #[error(
        "another gateway is running on this database with the id {id:?} ({process}, started \
         {started_at}, last seen {renewed_at}): two gateways with one id would take each other's \
         work, so this one does not start; give each gateway its own LOCKER_GATEWAY_ID, or stop \
         the other one first (a gateway that died gives its lease up after \
         LOCKER_GATEWAY_LEASE_SECS)"
    )]
    SameId {
        /// The id.
        id: String,
        /// The process holding it.
        process: String,
        /// When it started.
        started_at: DateTime<Utc>,
        /// When it last renewed its lease.
        renewed_at: DateTime<Utc>,
    },
    /// One of the two must run alone.
    #[error(
        "another gateway is running on this database ({id:?}: {process}, {broker} broker, started \
         {started_at}, last seen {renewed_at}), and {who} keeps its lockers on an embedded broker \
         or its door locks in its process, so it must run alone: several gateways share one \
         database only on an external MQTT broker with PostgreSQL and Redis (fleet mode, see the \
         README); stop the other one first (a gateway that died gives its lease up after \
         LOCKER_GATEWAY_LEASE_SECS)"
    )]
    Alone {
        /// The other gateway's id.
        id: String,
        /// Its process.
        process: String,
        /// Its broker.
        broker: String,
        /// `this one` or `that one`.
        who: &'static str,
        /// When it started.
        started_at: DateTime<Utc>,
        /// When it last renewed its lease.
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
    me: Arc<Identity>,
    length: Duration,
}

/// What stood in the way of taking the lease.
enum Take {
    Taken,
    Blocked(Member),
}

const COLUMNS: &str =
    "id, process, broker, exclusive, version, started_at, renewed_at, expires_at, stopped_at";

impl Lease {
    /// Takes the lease for `me`, waiting at most its `length` to see whether a gateway in the way
    /// is alive.
    pub async fn acquire(
        storage: &Storage,
        me: Identity,
        length: Duration,
    ) -> Result<Self, LeaseError> {
        let lease = Self {
            storage: storage.clone(),
            me: Arc::new(me),
            length,
        };
        let give_up = tokio::time::Instant::now() + length + Duration::from_secs(1);
        let mut seen: Option<Member> = None;
        loop {
            let other = match lease.try_take().await? {
                Take::Taken => {
                    tracing::info!(id = %lease.me.id, process = %lease.me.process, "gateway lease taken");
                    return Ok(lease);
                }
                Take::Blocked(other) => other,
            };
            let renewed = seen.as_ref().is_some_and(|s| {
                s.id == other.id && s.process == other.process && s.renewed_at != other.renewed_at
            });
            if renewed || tokio::time::Instant::now() > give_up {
                return Err(lease.refusal(other));
            }
            if seen
                .as_ref()
                .is_none_or(|s| s.id != other.id || s.process != other.process)
            {
                tracing::warn!(other = %other.id, process = %other.process, "another gateway is in the way; waiting to see whether it is alive");
                seen = Some(other);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn refusal(&self, other: Member) -> LeaseError {
        if other.id == self.me.id {
            return LeaseError::SameId {
                id: other.id,
                process: other.process,
                started_at: other.started_at,
                renewed_at: other.renewed_at,
            };
        }
        LeaseError::Alone {
            who: if self.me.exclusive {
                "this one"
            } else {
                "that one"
            },
            id: other.id,
            process: other.process,
            broker: other.broker,
            started_at: other.started_at,
            renewed_at: other.renewed_at,
        }
    }

    /// In one transaction (the table locked on PostgreSQL): refuses if a live gateway is in the
    /// way, else inserts this gateway's row or takes over its expired one.
    async fn try_take(&self) -> Result<Take, sqlx::Error> {
        let now = Utc::now();
        let mut work = self.storage.begin().await?;
        if let UnitOfWork::Postgres(tx) = &mut work {
            sqlx::query("LOCK TABLE gateways IN SHARE ROW EXCLUSIVE MODE")
                .execute(&mut **tx)
                .await?;
        }
        let in_the_way = format!(
            "SELECT {COLUMNS} FROM gateways WHERE expires_at > $1
               AND (id = $2 OR (id <> $2 AND (exclusive OR $3)))
             ORDER BY id = $2 DESC LIMIT 1"
        );
        let other: Option<Member> = in_work!(&mut work, |conn| sqlx::query_as(
            sqlx::AssertSqlSafe(in_the_way)
        )
        .bind(now)
        .bind(&self.me.id)
        .bind(self.me.exclusive)
        .fetch_optional(conn)
        .await?);
        if let Some(other) = other {
            return Ok(Take::Blocked(other));
        }
        const TAKE: &str = "INSERT INTO gateways
                 (id, process, broker, exclusive, version, started_at, renewed_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $6, $7)
             ON CONFLICT (id) DO UPDATE SET process = excluded.process,
                 broker = excluded.broker, exclusive = excluded.exclusive,
                 version = excluded.version, started_at = excluded.started_at,
                 renewed_at = excluded.renewed_at, expires_at = excluded.expires_at,
                 stopped_at = NULL";
        const PURGE: &str = "DELETE FROM gateways WHERE expires_at < $1";
        in_work!(&mut work, |conn| {
            sqlx::query(TAKE)
                .bind(&self.me.id)
                .bind(&self.me.process)
                .bind(self.me.broker.as_str())
                .bind(self.me.exclusive)
                .bind(crate::VERSION)
                .bind(now)
                .bind(crate::storage::after(now, self.length))
                .execute(&mut *conn)
                .await?;
            sqlx::query(PURGE)
                .bind(crate::storage::before(now, KEEP_ENDED))
                .execute(&mut *conn)
                .await?;
        });
        work.commit().await?;
        Ok(Take::Taken)
    }

    /// This gateway's instance id.
    pub fn id(&self) -> &str {
        &self.me.id
    }

    /// Renews the lease: `false` if another process holds this gateway's row now.
    pub async fn renew(&self) -> Result<bool, sqlx::Error> {
        const RENEW: &str = "UPDATE gateways SET renewed_at = $3, expires_at = $4
             WHERE id = $1 AND process = $2 AND stopped_at IS NULL";
        let now = Utc::now();
        let renewed = on_pool!(&self.storage, |pool| sqlx::query(RENEW)
            .bind(&self.me.id)
            .bind(&self.me.process)
            .bind(now)
            .bind(crate::storage::after(now, self.length))
            .execute(pool)
            .await?
            .rows_affected());
        Ok(renewed == 1)
    }

    /// Whether this gateway holds its lease now (for `/readyz`).
    pub async fn held(&self) -> Result<bool, sqlx::Error> {
        const HELD: &str = "SELECT count(*) FROM gateways
             WHERE id = $1 AND process = $2 AND expires_at > $3 AND stopped_at IS NULL";
        let n: i64 = on_pool!(&self.storage, |pool| sqlx::query_scalar(HELD)
            .bind(&self.me.id)
            .bind(&self.me.process)
            .bind(Utc::now())
            .fetch_one(pool)
            .await?);
        Ok(n == 1)
    }

    /// Gives the lease up (a clean stop): the row shows the gateway stopped, and its work may be
    /// taken over at once.
    pub async fn release(&self) {
        const RELEASE: &str = "UPDATE gateways SET expires_at = $3, stopped_at = $3
             WHERE id = $1 AND process = $2";
        let released: Result<u64, sqlx::Error> = async {
            Ok(on_pool!(&self.storage, |pool| sqlx::query(RELEASE)
                .bind(&self.me.id)
                .bind(&self.me.process)
                .bind(Utc::now())
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
    /// if another process took this gateway's row meanwhile.
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
                    tracing::error!(id = %self.me.id, "another process took this gateway's lease (it could not renew it in time): stopping");
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

/// Every gateway that shares the database, live or not (kept a week after its lease ended), by id.
pub async fn members(storage: &Storage) -> Result<Vec<Member>, sqlx::Error> {
    let list = format!("SELECT {COLUMNS} FROM gateways ORDER BY id");
    Ok(on_pool!(storage, |pool| sqlx::query_as(
        sqlx::AssertSqlSafe(list.clone())
    )
    .fetch_all(pool)
    .await?))
}

/// This process as a lease names it: host, process id, HTTP address.
pub fn process_name(http: std::net::SocketAddr) -> String {
    format!(
        "{} pid {} http {http}",
        crate::config::host_name(),
        std::process::id()
    )
}
