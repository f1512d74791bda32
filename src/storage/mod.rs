//! Where the gateway's state lives, behind one interface at the unit-of-work level: PostgreSQL in
//! fleet mode (any number of gateways), one SQLite file in edge mode (a single gateway). A
//! service begins a [`UnitOfWork`] on the [`Storage`], calls store methods on it (each domain
//! adds its own, in its own module: `wallet::store`, ...) and commits; it never names a database.
//! A store method's statement is written once where the dialects agree (the crate's `on_pool!`
//! and `in_work!` expand it for both) and once per backend where they differ, with the same
//! guarantees either way (CHECKs, the ledger and the outbox in the same transaction).
//!
//! SQLite is opened in WAL mode with a busy timeout, and every unit of work begins with
//! `BEGIN IMMEDIATE`: writers queue for the one write lock at the start instead of failing with
//! "database is locked" when two of them try to upgrade a read at once. SQLite keeps times as
//! text, compared as text: a time that is ever compared must be written by the gateway (bound,
//! one format), never by a column `DEFAULT`, whose format differs.

mod notices;
pub use notices::Notice;

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, Postgres, Sqlite, SqlitePool, Transaction};

/// Runs one statement, written once, on whichever backend a [`Storage`] is: `$run` is expanded
/// for each, with `$pool` a `&PgPool` in one and a `&SqlitePool` in the other (so the SQL must
/// read the same in both dialects; bind the clock rather than calling `now()`). Both expansions
/// must have one type: end with values, not a backend's query result.
///
/// Where the dialects differ in a word or two (`FOR UPDATE`, `greatest`), name a second
/// identifier: it is the [`Dialect`] being expanded, and `dialect.pick(pg, sqlite)` chooses.
macro_rules! on_pool {
    ($storage:expr, |$pool:ident| $run:expr) => {
        match $storage {
            $crate::storage::Storage::Postgres($pool) => $run,
            $crate::storage::Storage::Sqlite($pool) => $run,
        }
    };
    ($storage:expr, |$pool:ident, $dialect:ident| $run:expr) => {
        match $storage {
            $crate::storage::Storage::Postgres($pool) => {
                let $dialect = $crate::storage::Dialect::Postgres;
                $run
            }
            $crate::storage::Storage::Sqlite($pool) => {
                let $dialect = $crate::storage::Dialect::Sqlite;
                $run
            }
        }
    };
}
pub(crate) use on_pool;

/// [`on_pool`] inside a [`UnitOfWork`]: `$conn` is the transaction's connection.
macro_rules! in_work {
    ($work:expr, |$conn:ident| $run:expr) => {
        match $work {
            $crate::storage::UnitOfWork::Postgres(tx) => {
                let $conn = &mut **tx;
                $run
            }
            $crate::storage::UnitOfWork::Sqlite(tx) => {
                let $conn = &mut **tx;
                $run
            }
        }
    };
    ($work:expr, |$conn:ident, $dialect:ident| $run:expr) => {
        match $work {
            $crate::storage::UnitOfWork::Postgres(tx) => {
                let $conn = &mut **tx;
                let $dialect = $crate::storage::Dialect::Postgres;
                $run
            }
            $crate::storage::UnitOfWork::Sqlite(tx) => {
                let $conn = &mut **tx;
                let $dialect = $crate::storage::Dialect::Sqlite;
                $run
            }
        }
    };
}
pub(crate) use in_work;

/// The SQLite schema (`migrations/sqlite`), applied when the file is opened.
pub static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// How long a SQLite writer waits for the write lock before it gives up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections to the SQLite file (readers share them; writers take turns for the write lock).
const SQLITE_CONNECTIONS: u32 = 4;

/// A database: PostgreSQL or SQLite.
#[derive(Debug, Clone)]
pub enum Storage {
    /// Fleet mode.
    Postgres(PgPool),
    /// Edge mode.
    Sqlite(SqlitePool),
}

/// One transaction on a [`Storage`]: everything done through it is committed together, or not
/// at all (dropped without [`UnitOfWork::commit`]: rolled back).
#[derive(Debug)]
pub enum UnitOfWork {
    /// On PostgreSQL.
    Postgres(Transaction<'static, Postgres>),
    /// On SQLite.
    Sqlite(Transaction<'static, Sqlite>),
}

/// The time `span` before `now`, or the earliest time there is if that is before it: the cutoff
/// of "older than `span`", bound as the clock is (see the module's note on times).
pub fn before(now: DateTime<Utc>, span: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(span)
        .ok()
        .and_then(|span| now.checked_sub_signed(span))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// The time `span` after `now`, or the latest time there is if that is beyond it.
pub fn after(now: DateTime<Utc>, span: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(span)
        .ok()
        .and_then(|span| now.checked_add_signed(span))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Which SQL dialect a statement is being written for (see the crate's `on_pool!`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// PostgreSQL's.
    Postgres,
    /// SQLite's.
    Sqlite,
}

impl Dialect {
    /// `pg` for PostgreSQL, `sqlite` for SQLite.
    pub fn pick<T>(self, pg: T, sqlite: T) -> T {
        match self {
            Self::Postgres => pg,
            Self::Sqlite => sqlite,
        }
    }
}

impl From<PgPool> for Storage {
    fn from(pool: PgPool) -> Self {
        Self::Postgres(pool)
    }
}

/// Where the storage is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// PostgreSQL (fleet mode).
    Postgres {
        /// Its URL (made if the server has no such database).
        url: String,
        /// The URL as it may be shown (password hidden).
        shown: String,
    },
    /// One SQLite file (edge mode).
    Sqlite {
        /// The data directory (made if missing).
        dir: std::path::PathBuf,
        /// The file in it (made if missing).
        file: std::path::PathBuf,
    },
}

/// Why the storage could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// PostgreSQL is unreachable or its schema could not be migrated.
    #[error("PostgreSQL at {url}: {source}")]
    Postgres {
        /// The URL, password redacted.
        url: String,
        /// What failed.
        source: sqlx::Error,
    },
    /// The data directory cannot be made.
    #[error("cannot make the data directory {path} (set LOCKER_DATA_DIR to change it): {source}")]
    DataDir {
        /// The directory.
        path: std::path::PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The SQLite file cannot be opened or its schema migrated.
    #[error("SQLite file {path} (set LOCKER_DATA_DIR to change where it is): {source}")]
    Sqlite {
        /// The file.
        path: std::path::PathBuf,
        /// What failed.
        source: sqlx::Error,
    },
}

impl Storage {
    /// Opens (creating it if needed) the SQLite file at `path` and brings its schema up to date.
    pub async fn open_sqlite(path: &Path) -> Result<Self, sqlx::Error> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(SQLITE_CONNECTIONS)
            .connect_with(options)
            .await?;
        let applied: Option<i64> =
            sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success")
                .fetch_one(&pool)
                .await
                .unwrap_or(None);
        crate::db::schema_not_newer(&SQLITE_MIGRATOR, applied)?;
        SQLITE_MIGRATOR.run(&pool).await?;
        Ok(Self::Sqlite(pool))
    }

    /// The storage at `target`, schema brought up to date: PostgreSQL with `max_connections`
    /// (the database made if the server has none of that name), or the SQLite file (its
    /// directory and file made if missing).
    pub async fn open(target: &Target, max_connections: u32) -> Result<Self, OpenError> {
        match target {
            Target::Postgres { url, shown } => crate::db::connect(url, max_connections)
                .await
                .map(Self::Postgres)
                .map_err(|source| OpenError::Postgres {
                    url: shown.clone(),
                    source,
                }),
            Target::Sqlite { dir, file } => {
                std::fs::create_dir_all(dir).map_err(|source| OpenError::DataDir {
                    path: dir.clone(),
                    source,
                })?;
                Self::open_sqlite(file)
                    .await
                    .map_err(|source| OpenError::Sqlite {
                        path: file.clone(),
                        source,
                    })
            }
        }
    }

    /// Whether the database answers a trivial query.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        on_pool!(self, |pool| sqlx::query_scalar::<_, i32>("SELECT 1")
            .fetch_one(pool)
            .await
            .map(drop))
    }

    /// The pool's connections: (open, idle, most).
    pub fn connections(&self) -> (u32, usize, u32) {
        on_pool!(self, |pool| (
            pool.size(),
            pool.num_idle(),
            pool.options().get_max_connections()
        ))
    }

    /// Closes every connection (at shutdown).
    pub async fn close(&self) {
        match self {
            Self::Postgres(pool) => pool.close().await,
            Self::Sqlite(pool) => pool.close().await,
        }
    }

    /// Writes a consistent copy of edge mode's SQLite database to `to` (a new file), while the
    /// gateway runs: SQLite's `VACUUM INTO` reads one snapshot (readers never block the WAL's
    /// writer). Restoring is copying the file back as `gateway.sqlite` with the gateway stopped.
    /// PostgreSQL is backed up with its own tools (`pg_dump`).
    pub async fn backup(&self, to: &std::path::Path) -> Result<(), String> {
        let Self::Sqlite(pool) = self else {
            return Err(
                "in fleet mode back up PostgreSQL with its own tools (pg_dump, or the \
                 provider's snapshots)"
                    .into(),
            );
        };
        if to.exists() {
            return Err(format!("{} exists already; name a new file", to.display()));
        }
        let target = to
            .to_str()
            .ok_or_else(|| format!("{} is not a UTF-8 path", to.display()))?;
        if target.chars().any(char::is_control) {
            return Err("the backup's path has a control character".into());
        }
        let sql = format!("VACUUM INTO '{}'", target.replace('\'', "''"));
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(pool)
            .await
            .map_err(|e| format!("cannot write the backup to {}: {e}", to.display()))?;
        Ok(())
    }

    /// `postgresql` or `sqlite`.
    pub fn backend(&self) -> &'static str {
        match self {
            Self::Postgres(_) => "postgresql",
            Self::Sqlite(_) => "sqlite",
        }
    }

    /// Begins a unit of work.
    pub async fn begin(&self) -> Result<UnitOfWork, sqlx::Error> {
        Ok(match self {
            Self::Postgres(pool) => UnitOfWork::Postgres(pool.begin().await?),
            Self::Sqlite(pool) => UnitOfWork::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await?),
        })
    }
}

impl UnitOfWork {
    /// Commits everything done through it.
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Self::Postgres(tx) => tx.commit().await,
            Self::Sqlite(tx) => tx.commit().await,
        }
    }
}

/// A failure only an operator can act on (the database failed, an invariant broke), with its
/// cause kept for the logs (`Display` and `source()` are the cause's).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct Unexpected(Box<dyn std::error::Error + Send + Sync + 'static>);

impl Unexpected {
    /// An unexpected failure caused by `cause` (an error, or a sentence for a broken invariant).
    pub fn new(cause: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>) -> Self {
        Self(cause.into())
    }
}

impl From<sqlx::Error> for Unexpected {
    fn from(e: sqlx::Error) -> Self {
        Self::new(e)
    }
}

/// A constraint of the schema that refused a write: read here, in one place, for every store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Violation {
    /// A unique index (one running rental per door, one paid order per door, an event id
    /// applied once, a SKU taken).
    Unique,
    /// A CHECK (a value the schema does not allow).
    Check,
}

/// Which constraint refused `e`, if a constraint did.
pub fn violation(e: &sqlx::Error) -> Option<Violation> {
    let sqlx::Error::Database(e) = e else {
        return None;
    };
    if e.is_unique_violation() {
        Some(Violation::Unique)
    } else if e.is_check_violation() {
        Some(Violation::Check)
    } else {
        None
    }
}
