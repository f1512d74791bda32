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
    MIGRATOR.run(&pool).await?;
    Ok(pool)
}
