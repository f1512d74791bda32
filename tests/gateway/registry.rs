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

/// The registry's contract, on either storage: a device and its doors once, refusals that write
/// nothing, a rotation's grace period, revocation recorded once and final.
async fn the_registry_keeps_its_contract(storage: locker_gateway::storage::Storage) {
    use locker_gateway::device::DeviceRegistry;
    use locker_gateway::device::directory::{self, DeviceSearch};
    let registry = DeviceRegistry::new(storage.clone());
    let new = |id: &str, doors| NewDevice {
        id: device(id),
        model: "m".into(),
        door_count: doors,
    };
    let old = registry
        .provision(new("lk-1", 12))
        .await
        .expect("provisioned");
    let again = registry.provision(new("lk-1", 4)).await;
    assert!(matches!(again, Err(RegistryError::AlreadyExists(_))));
    let zero = registry.provision(new("lk-2", 0)).await;
    assert!(matches!(zero, Err(RegistryError::Invalid(_))));
    // A batch is all or nothing.
    let batch = registry
        .provision_batch(vec![new("lk-3", 2), new("lk-1", 2)])
        .await;
    assert!(matches!(batch, Err(RegistryError::AlreadyExists(_))));
    let detail = directory::get(&storage, "lk-1")
        .await
        .expect("storage")
        .expect("device");
    assert_eq!(detail.doors.len(), 12);
    assert_eq!(detail.doors[11].door, 12);
    assert_eq!(detail.doors[0].sensor, "unknown");
    assert!(
        directory::get(&storage, "lk-3")
            .await
            .expect("storage")
            .is_none()
    );
    let found = directory::search(
        &storage,
        &DeviceSearch {
            prefix: Some("lk-".into()),
            online: Some(false),
            limit: 10,
            ..DeviceSearch::default()
        },
    )
    .await
    .expect("search");
    assert_eq!(found.len(), 1);
    let credentials = || async {
        registry
            .credentials(&device("lk-1"))
            .await
            .expect("storage")
            .expect("device")
    };
    // A rotation: both secrets admitted during the grace period, only the new one after.
    let new_secret = registry
        .rotate(device("lk-1"), Duration::from_secs(3600))
        .await
        .expect("rotated");
    let creds = credentials().await;
    assert!(creds.admits(old.secret.mqtt_password().as_bytes()));
    assert!(creds.admits(new_secret.secret.mqtt_password().as_bytes()));
    assert_eq!(creds.tag_keys().count(), 2);
    registry
        .retire_previous_secret(device("lk-1"))
        .await
        .expect("retired");
    let creds = credentials().await;
    assert!(!creds.admits(old.secret.mqtt_password().as_bytes()));
    assert!(creds.admits(new_secret.secret.mqtt_password().as_bytes()));
    // A grace period that has passed admits the new secret only.
    let newest = registry
        .rotate(device("lk-1"), Duration::ZERO)
        .await
        .expect("rotated");
    let creds = credentials().await;
    assert!(!creds.admits(new_secret.secret.mqtt_password().as_bytes()));
    assert!(creds.admits(newest.secret.mqtt_password().as_bytes()));
    // Revocation: once, final, and refused by the credentials.
    registry.revoke(device("lk-1")).await.expect("revoked");
    registry
        .revoke(device("lk-1"))
        .await
        .expect("twice is fine");
    let rotate = registry.rotate(device("lk-1"), Duration::ZERO).await;
    assert!(matches!(rotate, Err(RegistryError::Revoked(_))));
    let creds = credentials().await;
    assert!(!creds.admits(newest.secret.mqtt_password().as_bytes()));
    assert!(matches!(
        registry.revoke(device("nope")).await,
        Err(RegistryError::NotFound(_))
    ));
    assert!(
        registry
            .credentials(&device("nope"))
            .await
            .expect("storage")
            .is_none()
    );
    let list = registry.list().await.expect("list");
    assert_eq!(list.len(), 1);
    assert!(list[0].revoked_at.is_some());
    assert_eq!(
        crate::helpers::outbox_events(&storage).await,
        vec![
            ("device.provisioned".into(), "lk-1".into()),
            ("device.revoked".into(), "lk-1".into()),
        ]
    );
}

#[sqlx::test]
async fn the_registry_keeps_its_contract_on_postgresql(pool: PgPool) {
    the_registry_keeps_its_contract(pool.into()).await;
}

#[tokio::test]
async fn the_registry_keeps_its_contract_on_sqlite() {
    let (storage, _dir) = crate::helpers::sqlite().await;
    the_registry_keeps_its_contract(storage).await;
}
