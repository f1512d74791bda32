//! PostgreSQL: the pool and the migrations.

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

/// The migrations in `migrations/`, compiled in.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Connects to `url` (creating the database if the server has none of that name) and brings the
/// schema up to date.
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    use sqlx::migrate::MigrateDatabase;
    if !sqlx::Postgres::database_exists(url).await? {
        tracing::info!("creating the database");
        sqlx::Postgres::create_database(url).await?;
    }
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(std::time::Duration::from_secs(5))
        .connect(url)
        .await?;
    let applied: Option<i64> =
        sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(&pool)
            .await
            .unwrap_or(None);
    schema_not_newer(&MIGRATOR, applied)?;
    MIGRATOR.run(&pool).await?;
    Ok(pool)
}

/// Refuses a database whose schema is newer than this gateway knows (`applied`: the newest
/// migration recorded in it): a newer release migrated it, and this older one would read and
/// write tables it does not understand. During a rolling upgrade the newer release migrates
/// first; migrations only add (columns with defaults, tables), so gateways of the previous
/// release keep working on the newer schema, but never the other way round.
pub fn schema_not_newer(
    migrator: &sqlx::migrate::Migrator,
    applied: Option<i64>,
) -> Result<(), sqlx::Error> {
    let known = migrator.iter().map(|m| m.version).max().unwrap_or(0);
    match applied {
        Some(applied) if applied > known => Err(sqlx::Error::Configuration(
            format!(
                "the database's schema is at version {applied}, newer than this gateway ({}) \
                 knows (its newest is {known}): a newer release migrated it; run that release or \
                 a newer one on this database, never an older one",
                crate::VERSION
            )
            .into(),
        )),
        _ => Ok(()),
    }
}

/// What a [`listen`] loop reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// (Re)connected and listening: notifications may have been missed, reload what matters.
    Listening,
    /// One notification's payload.
    Payload(String),
}

/// LISTENs on `channel` and forwards what arrives to `tx`, reconnecting with backoff whenever the
/// connection is lost, until `tx` is closed. Every (re)connection is reported first, so the
/// receiver can catch up on what it may have missed.
pub async fn listen(pool: PgPool, channel: &'static str, tx: tokio::sync::mpsc::Sender<Notice>) {
    let mut backoff = std::time::Duration::from_millis(100);
    loop {
        let connected = async {
            let mut listener = sqlx::postgres::PgListener::connect_with(&pool).await?;
            listener.listen(channel).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        let mut listener = match connected.await {
            Ok(listener) => listener,
            Err(e) => {
                tracing::warn!(error = %e, channel, "cannot LISTEN; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(std::time::Duration::from_secs(10));
                continue;
            }
        };
        backoff = std::time::Duration::from_millis(100);
        if tx.send(Notice::Listening).await.is_err() {
            return;
        }
        loop {
            match listener.recv().await {
                Ok(n) => {
                    if tx
                        .send(Notice::Payload(n.payload().to_owned()))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, channel, "LISTEN connection lost; reconnecting");
                    break;
                }
            }
        }
    }
}
