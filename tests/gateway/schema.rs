//! Rolling upgrades: a gateway refuses a database whose schema a newer release migrated, and
//! names both versions (an older binary would read and write tables it does not understand).

use sqlx::PgPool;

/// Records a migration newer than any this gateway knows, as a newer release would have.
const FUTURE: &str = "INSERT INTO _sqlx_migrations
        (version, description, installed_on, success, checksum, execution_time)
     VALUES (99991231000000, 'from a newer release', CURRENT_TIMESTAMP, true, $1, 0)";

fn assert_names_both(said: &str) {
    assert!(
        said.contains("99991231000000")
            && said.contains("newer than this gateway")
            && said.contains("20261205"),
        "{said}"
    );
}

#[sqlx::test]
async fn a_gateway_refuses_a_postgresql_schema_newer_than_it_knows(pool: PgPool) {
    let url = crate::process::database_url(&pool);
    // Its own schema: fine, again and again.
    locker_gateway::db::connect(&url, 2)
        .await
        .expect("the schema it knows")
        .close()
        .await;
    sqlx::query(FUTURE)
        .bind(vec![0u8])
        .execute(&pool)
        .await
        .expect("recorded");
    let refused = locker_gateway::db::connect(&url, 2).await;
    let Err(e) = refused else {
        panic!("a schema newer than the gateway knows was accepted")
    };
    assert_names_both(&e.to_string());
}

#[tokio::test]
async fn a_gateway_refuses_a_sqlite_schema_newer_than_it_knows() {
    let (storage, dir) = crate::helpers::sqlite().await;
    let locker_gateway::storage::Storage::Sqlite(pool) = &storage else {
        panic!("a SQLite storage")
    };
    sqlx::query(FUTURE)
        .bind(vec![0u8])
        .execute(pool)
        .await
        .expect("recorded");
    storage.close().await;
    let file = dir.path().join(locker_gateway::config::SQLITE_FILE);
    let refused = locker_gateway::storage::Storage::open_sqlite(&file).await;
    let Err(e) = refused else {
        panic!("a schema newer than the gateway knows was accepted")
    };
    assert_names_both(&e.to_string());
}
