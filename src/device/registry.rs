//! The device registry: provisioning, revocation, rotation, and the credentials the broker and
//! the uplink verifier check against.

use chrono::{DateTime, Utc};
use firmware_protocol::{DeviceId, DeviceKey, DeviceSecret};
use serde_json::json;

use super::broker_passwords::SealingKey;
use super::credentials::{StoredSecret, generate_secret};
use crate::events::Append;
use crate::events::Event;
use crate::storage::{Storage, UnitOfWork, in_work, on_pool};

/// The PostgreSQL channel on which credential changes (revocation, rotation) are announced, with
/// the device id as payload, so every gateway process drops or re-reads what it cached. (In edge
/// mode there is one process; its watcher reads the revoked devices instead.)
pub const DEVICE_CHANGES_CHANNEL: &str = "device_changes";

/// What an operator gives to register a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDevice {
    /// The device id the locker will log in with.
    pub id: DeviceId,
    /// Free-form model name.
    pub model: String,
    /// Number of doors, `1..=512`.
    pub door_count: u16,
}

/// A device's fresh credentials, shown once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provisioned {
    /// The device.
    pub device_id: DeviceId,
    /// Its secret: the MQTT password is its hex form, the tag key is derived from it.
    pub secret: DeviceSecret,
}

impl Provisioned {
    /// One JSON object with everything a locker (or the simulator) needs; the credentials file
    /// format of the simulator is one of these per line.
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "device_id": self.device_id.as_str(),
            "mqtt_username": self.device_id.as_str(),
            "mqtt_password": self.secret.mqtt_password(),
            "secret": hex::encode(self.secret.as_bytes()),
            "tag_key": hex::encode(self.secret.tag_key().as_bytes()),
        })
    }
}

/// What the broker and the uplink verifier need to know about a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceCredentials {
    /// The current secret.
    pub current: StoredSecret,
    /// The previous secret, while its grace period after a rotation lasts.
    pub previous: Option<StoredSecret>,
    /// Revoked devices are refused everything.
    pub revoked: bool,
}

impl DeviceCredentials {
    /// Whether `password` logs this device in.
    pub fn admits(&self, password: &[u8]) -> bool {
        !self.revoked
            && (self.current.matches_password(password)
                || self
                    .previous
                    .as_ref()
                    .is_some_and(|p| p.matches_password(password)))
    }

    /// The keys an uplink's tag may be made with: the current one, then the previous one.
    pub fn tag_keys(&self) -> impl Iterator<Item = &DeviceKey> {
        std::iter::once(&self.current.tag_key).chain(self.previous.as_ref().map(|p| &p.tag_key))
    }
}

/// One line of the device list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceSummary {
    /// The device.
    pub id: String,
    /// Its model.
    pub model: String,
    /// Its door count.
    pub door_count: i32,
    /// Whether it is online.
    pub online: bool,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
    /// When it last sent anything.
    pub last_seen_at: Option<DateTime<Utc>>,
}

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// A device with this id exists.
    #[error("device {0} already exists")]
    AlreadyExists(String),
    /// No device with this id.
    #[error("device {0} does not exist")]
    NotFound(String),
    /// The device is revoked; revocation is final.
    #[error("device {0} is revoked")]
    Revoked(String),
    /// A value outside its range.
    #[error("{0}")]
    Invalid(&'static str),
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

/// The registry over the gateway's storage.
#[derive(Debug, Clone)]
pub struct DeviceRegistry {
    storage: Storage,
    /// Seals each new secret's MQTT password for a broker that must be told it.
    sealing: Option<std::sync::Arc<SealingKey>>,
}

fn key_from(bytes: &[u8]) -> Option<DeviceKey> {
    <[u8; 32]>::try_from(bytes).ok().map(DeviceKey::from_bytes)
}

fn stored(digest: Option<Vec<u8>>, key: Option<Vec<u8>>) -> Option<StoredSecret> {
    Some(StoredSecret {
        digest: <[u8; 32]>::try_from(digest?.as_slice()).ok()?,
        tag_key: key_from(&key?)?,
    })
}

/// Tells every gateway process, when the unit of work commits, that the device's credentials
/// changed (see [`DEVICE_CHANGES_CHANNEL`]); nothing to tell on SQLite, where the one process's
/// watcher reads the table.
async fn announce_change(work: &mut UnitOfWork, id: &DeviceId) -> Result<(), sqlx::Error> {
    if let UnitOfWork::Postgres(tx) = work {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(DEVICE_CHANGES_CHANNEL)
            .bind(id.as_str())
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Locks the device's row for the rest of the unit of work (SQLite's is locked whole); returns
/// when it was revoked, if it was.
async fn lock_device(
    work: &mut UnitOfWork,
    id: &DeviceId,
) -> Result<Option<DateTime<Utc>>, RegistryError> {
    let found: Option<(Option<DateTime<Utc>>,)> = in_work!(work, |conn, dialect| {
        sqlx::query_as(dialect.pick(
            "SELECT revoked_at FROM devices WHERE id = $1 FOR UPDATE",
            "SELECT revoked_at FROM devices WHERE id = $1",
        ))
        .bind(id.as_str())
        .fetch_optional(conn)
        .await?
    });
    let (revoked_at,) = found.ok_or_else(|| RegistryError::NotFound(id.to_string()))?;
    Ok(revoked_at)
}

/// Inserts one device, its doors and its `device.provisioned` event in the caller's unit of work.
async fn insert_device(
    work: &mut UnitOfWork,
    new: NewDevice,
) -> Result<Provisioned, RegistryError> {
    if !(1..=firmware_protocol::MAX_DOORS).contains(&new.door_count) {
        return Err(RegistryError::Invalid("door count must be 1 to 512"));
    }
    if new.model.is_empty() || new.model.len() > 64 {
        return Err(RegistryError::Invalid("model must be 1 to 64 characters"));
    }
    let secret = generate_secret();
    let stored = StoredSecret::of(&secret);
    const DEVICE: &str = "INSERT INTO devices (id, model, door_count, secret_sha256, tag_key)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING";
    const DOORS: &str =
        "WITH RECURSIVE n (door) AS (SELECT 1 UNION ALL SELECT door + 1 FROM n WHERE door < $2)
         INSERT INTO doors (device_id, door) SELECT $1, door FROM n";
    let inserted = in_work!(&mut *work, |conn| {
        let inserted = sqlx::query(DEVICE)
            .bind(new.id.as_str())
            .bind(&new.model)
            .bind(i32::from(new.door_count))
            .bind(&stored.digest[..])
            .bind(&stored.tag_key.as_bytes()[..])
            .execute(&mut *conn)
            .await?
            .rows_affected();
        if inserted == 1 {
            sqlx::query(DOORS)
                .bind(new.id.as_str())
                .bind(i32::from(new.door_count))
                .execute(conn)
                .await?;
        }
        inserted
    });
    if inserted == 0 {
        return Err(RegistryError::AlreadyExists(new.id.to_string()));
    }
    let event = Event::new(
        "device.provisioned",
        "device",
        new.id.as_str(),
        json!({ "device_id": new.id.as_str(), "model": new.model, "door_count": new.door_count }),
    );
    work.append(&event).await?;
    Ok(Provisioned {
        device_id: new.id,
        secret,
    })
}

impl DeviceRegistry {
    /// A registry on `storage` (a PostgreSQL pool converts into one).
    pub fn new(storage: impl Into<Storage>) -> Self {
        Self {
            storage: storage.into(),
            sealing: None,
        }
    }

    /// From now on each new secret's MQTT password is also kept sealed with `key`
    /// ([`super::broker_passwords`]), for a broker the gateways must tell it.
    pub fn sealing(mut self, key: Option<SealingKey>) -> Self {
        self.sealing = key.map(std::sync::Arc::new);
        self
    }

    /// Keeps the password of `secret` sealed for `device`, if a key is set.
    async fn seal(
        &self,
        work: &mut UnitOfWork,
        device: &DeviceId,
        secret: &DeviceSecret,
    ) -> Result<(), sqlx::Error> {
        if let Some(key) = &self.sealing {
            let sealed = super::broker_passwords::seal(key, device, &secret.mqtt_password());
            super::broker_passwords::keep(work, device, &sealed).await?;
        }
        Ok(())
    }

    /// Where devices are kept.
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// Registers a device with a fresh secret, and its doors; emits `device.provisioned`.
    pub async fn provision(&self, new: NewDevice) -> Result<Provisioned, RegistryError> {
        let mut work = self.storage.begin().await?;
        let provisioned = insert_device(&mut work, new).await?;
        self.seal(&mut work, &provisioned.device_id, &provisioned.secret)
            .await?;
        announce_change(&mut work, &provisioned.device_id).await?;
        work.commit().await?;
        metrics::counter!("locker_devices_provisioned_total").increment(1);
        Ok(provisioned)
    }

    /// Registers many devices in one unit of work (all or none), each with a fresh secret and a
    /// `device.provisioned` event. For fleets and load tests.
    pub async fn provision_batch(
        &self,
        devices: Vec<NewDevice>,
    ) -> Result<Vec<Provisioned>, RegistryError> {
        self.provision_sized(devices.into_iter().map(|d| (d, Vec::new())).collect())
            .await
    }

    /// [`DeviceRegistry::provision_batch`], each device with its doors' size classes: one for
    /// every door, or one per door (door 1 first); none leaves the default.
    pub async fn provision_sized(
        &self,
        devices: Vec<(NewDevice, Vec<String>)>,
    ) -> Result<Vec<Provisioned>, RegistryError> {
        const SIZE: &str = "UPDATE doors SET size_class = $3
             WHERE device_id = $1 AND ($2 = 0 OR door = $2)";
        let mut work = self.storage.begin().await?;
        let mut out = Vec::with_capacity(devices.len());
        for (new, sizes) in devices {
            let provisioned = insert_device(&mut work, new).await?;
            self.seal(&mut work, &provisioned.device_id, &provisioned.secret)
                .await?;
            let every = sizes.len() == 1;
            for (i, size) in sizes.iter().enumerate() {
                let door = if every { 0 } else { i as i32 + 1 };
                in_work!(&mut work, |conn| sqlx::query(SIZE)
                    .bind(provisioned.device_id.as_str())
                    .bind(door)
                    .bind(size)
                    .execute(conn)
                    .await?
                    .rows_affected());
            }
            announce_change(&mut work, &provisioned.device_id).await?;
            out.push(provisioned);
        }
        work.commit().await?;
        metrics::counter!("locker_devices_provisioned_total").increment(out.len() as u64);
        Ok(out)
    }

    /// Revokes a device: its next login is refused and every gateway drops its live session.
    /// Emits `device.revoked`. Revoking twice is not an error.
    pub async fn revoke(&self, id: DeviceId) -> Result<(), RegistryError> {
        const REVOKE: &str = "UPDATE devices SET revoked_at = $2, online = false,
                 presence_changed_at = CASE WHEN online THEN $2 ELSE presence_changed_at END
                 WHERE id = $1";
        let mut work = self.storage.begin().await?;
        if lock_device(&mut work, &id).await?.is_none() {
            let now = Utc::now();
            in_work!(&mut work, |conn| {
                sqlx::query(REVOKE)
                    .bind(id.as_str())
                    .bind(now)
                    .execute(conn)
                    .await?
                    .rows_affected()
            });
            let event = Event::new(
                "device.revoked",
                "device",
                id.as_str(),
                json!({ "device_id": id.as_str() }),
            );
            work.append(&event).await?;
        }
        announce_change(&mut work, &id).await?;
        work.commit().await?;
        Ok(())
    }

    /// Issues a new secret; the old one stays valid for `grace` (or until the locker logs in with
    /// the new one).
    pub async fn rotate(
        &self,
        id: DeviceId,
        grace: std::time::Duration,
    ) -> Result<Provisioned, RegistryError> {
        const ROTATE: &str = "UPDATE devices SET previous_secret_sha256 = secret_sha256,
                    previous_tag_key = tag_key, previous_valid_until = $2, secret_sha256 = $3,
                    tag_key = $4
             WHERE id = $1";
        let secret = generate_secret();
        let stored = StoredSecret::of(&secret);
        let until = chrono::Duration::from_std(grace)
            .ok()
            .and_then(|grace| Utc::now().checked_add_signed(grace))
            .ok_or(RegistryError::Invalid("grace period too long"))?;
        let mut work = self.storage.begin().await?;
        if lock_device(&mut work, &id).await?.is_some() {
            return Err(RegistryError::Revoked(id.to_string()));
        }
        in_work!(&mut work, |conn| {
            sqlx::query(ROTATE)
                .bind(id.as_str())
                .bind(until)
                .bind(&stored.digest[..])
                .bind(&stored.tag_key.as_bytes()[..])
                .execute(conn)
                .await?
                .rows_affected()
        });
        self.seal(&mut work, &id, &secret).await?;
        announce_change(&mut work, &id).await?;
        work.commit().await?;
        Ok(Provisioned {
            device_id: id,
            secret,
        })
    }

    /// Ends a rotation's grace period early: the locker has logged in with its new secret.
    pub async fn retire_previous_secret(&self, id: DeviceId) -> Result<(), RegistryError> {
        const RETIRE: &str =
            "UPDATE devices SET previous_secret_sha256 = NULL, previous_tag_key = NULL,
                    previous_valid_until = NULL
             WHERE id = $1 AND previous_secret_sha256 IS NOT NULL";
        on_pool!(&self.storage, |pool| {
            sqlx::query(RETIRE)
                .bind(id.as_str())
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(())
    }

    /// The device's credentials, or `None` if there is no such device.
    pub async fn credentials(
        &self,
        id: &DeviceId,
    ) -> Result<Option<DeviceCredentials>, RegistryError> {
        type Row = (Vec<u8>, Vec<u8>, bool, Option<Vec<u8>>, Option<Vec<u8>>);
        const CREDENTIALS: &str = "SELECT secret_sha256, tag_key, revoked_at IS NOT NULL,
                    CASE WHEN previous_valid_until > $2 THEN previous_secret_sha256 END,
                    CASE WHEN previous_valid_until > $2 THEN previous_tag_key END
             FROM devices WHERE id = $1";
        let now = Utc::now();
        let row: Option<Row> = on_pool!(&self.storage, |pool| {
            sqlx::query_as(CREDENTIALS)
                .bind(id.as_str())
                .bind(now)
                .fetch_optional(pool)
                .await?
        });
        let Some((digest, key, revoked, prev_digest, prev_key)) = row else {
            return Ok(None);
        };
        let current = stored(Some(digest), Some(key))
            .ok_or(RegistryError::Invalid("stored secret has the wrong length"))?;
        Ok(Some(DeviceCredentials {
            current,
            previous: stored(prev_digest, prev_key),
            revoked,
        }))
    }

    /// Every device, by id.
    pub async fn list(&self) -> Result<Vec<DeviceSummary>, RegistryError> {
        type Row = (
            String,
            String,
            i32,
            bool,
            Option<DateTime<Utc>>,
            Option<DateTime<Utc>>,
        );
        const LIST: &str = "SELECT id, model, door_count, online, revoked_at, last_seen_at FROM devices ORDER BY id";
        let rows: Vec<Row> = on_pool!(&self.storage, |pool| sqlx::query_as(LIST)
            .fetch_all(pool)
            .await?);
        Ok(rows
            .into_iter()
            .map(
                |(id, model, door_count, online, revoked_at, last_seen_at)| DeviceSummary {
                    id,
                    model,
                    door_count,
                    online,
                    revoked_at,
                    last_seen_at,
                },
            )
            .collect())
    }
}
