//! The device registry: provisioning, rotation, revocation, and the events they emit.

use std::time::Duration;

use locker_gateway::device::{NewDevice, RegistryError};
use sqlx::{PgPool, Row};

use crate::helpers::{device, start_broker};

async fn events(pool: &PgPool) -> Vec<(String, String)> {
    sqlx::query("SELECT event_type, aggregate_id FROM outbox ORDER BY seq")
        .fetch_all(pool)
        .await
        .expect("outbox")
        .iter()
        .map(|r| (r.get("event_type"), r.get("aggregate_id")))
        .collect()
}

#[sqlx::test]
async fn provisioning_stores_a_digest_never_the_secret(pool: PgPool) {
    let broker = start_broker(pool.clone()).await;
    let creds = broker.provision("lk-1", 12).await;
    let row =
        sqlx::query("SELECT secret_sha256, tag_key, door_count FROM devices WHERE id = 'lk-1'")
            .fetch_one(&pool)
            .await
            .expect("row");
    let digest: Vec<u8> = row.get("secret_sha256");
    let key: Vec<u8> = row.get("tag_key");
    assert_eq!(digest, creds.secret.digest().to_vec());
    assert_eq!(key, creds.secret.tag_key().as_bytes().to_vec());
    assert_ne!(digest, creds.secret.as_bytes().to_vec());
    let doors: i64 = sqlx::query_scalar("SELECT count(*) FROM doors WHERE device_id = 'lk-1'")
        .fetch_one(&pool)
        .await
        .expect("doors");
    assert_eq!(doors, 12);
    assert_eq!(
        events(&pool).await,
        vec![("device.provisioned".into(), "lk-1".into())]
    );
    let json = creds.to_json();
    assert_eq!(json["mqtt_password"], creds.secret.mqtt_password());
}

#[sqlx::test]
async fn duplicates_and_bad_values_are_refused(pool: PgPool) {
    let broker = start_broker(pool.clone()).await;
    broker.provision("lk-1", 4).await;
    let again = broker
        .registry
        .provision(NewDevice {
            id: device("lk-1"),
            model: "m".into(),
            door_count: 4,
        })
        .await;
    assert!(matches!(again, Err(RegistryError::AlreadyExists(_))));
    let zero = broker
        .registry
        .provision(NewDevice {
            id: device("lk-2"),
            model: "m".into(),
            door_count: 0,
        })
        .await;
    assert!(matches!(zero, Err(RegistryError::Invalid(_))));
    let missing = broker.registry.revoke(device("nope")).await;
    assert!(matches!(missing, Err(RegistryError::NotFound(_))));
    // Nothing half-written: one device, one event.
    assert_eq!(events(&pool).await.len(), 1);
}

#[sqlx::test]
async fn rotation_keeps_the_old_secret_until_the_new_one_is_used(pool: PgPool) {
    let broker = start_broker(pool.clone()).await;
    let old = broker.provision("lk-1", 4).await;
    let new = broker
        .registry
        .rotate(device("lk-1"), Duration::from_secs(3600))
        .await
        .expect("rotated");
    assert_ne!(old.secret, new.secret);
    let creds = broker
        .registry
        .credentials(&device("lk-1"))
        .await
        .expect("db")
        .expect("device");
    assert!(creds.admits(old.secret.mqtt_password().as_bytes()));
    assert!(creds.admits(new.secret.mqtt_password().as_bytes()));
    assert_eq!(creds.tag_keys().count(), 2);
    // The old secret still logs in during the grace period...
    broker
        .connect_as("lk-1", &old.secret.mqtt_password())
        .await
        .expect("old secret, in grace");
    // ...until the locker logs in with the new one.
    broker
        .connect_as("lk-1", &new.secret.mqtt_password())
        .await
        .expect("new secret");
    assert!(
        broker
            .connect_as("lk-1", &old.secret.mqtt_password())
            .await
            .is_err()
    );
    // A zero grace period retires the old secret at once.
    let newer = broker
        .registry
        .rotate(device("lk-1"), Duration::ZERO)
        .await
        .expect("rotated");
    assert!(
        broker
            .connect_as("lk-1", &new.secret.mqtt_password())
            .await
            .is_err()
    );
    broker
        .connect_as("lk-1", &newer.secret.mqtt_password())
        .await
        .expect("newest secret");
}

#[sqlx::test]
async fn revocation_is_recorded_once_and_is_final(pool: PgPool) {
    let broker = start_broker(pool.clone()).await;
    broker.provision("lk-1", 4).await;
    broker
        .registry
        .revoke(device("lk-1"))
        .await
        .expect("revoked");
    broker
        .registry
        .revoke(device("lk-1"))
        .await
        .expect("revoking twice is fine");
    assert_eq!(
        events(&pool).await,
        vec![
            ("device.provisioned".into(), "lk-1".into()),
            ("device.revoked".into(), "lk-1".into()),
        ]
    );
    let rotate = broker.registry.rotate(device("lk-1"), Duration::ZERO).await;
    assert!(matches!(rotate, Err(RegistryError::Revoked(_))));
    let list = broker.registry.list().await.expect("list");
    assert!(list[0].revoked_at.is_some());
}
