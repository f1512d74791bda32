//! Firmware images operators upload for lockers: bounded in size, signed by a vendor's Ed25519
//! key (`LOCKER_FIRMWARE_KEYS`), checked at upload over the image's manifest (its size, SHA-256
//! and version: `firmware_protocol::image`), kept whole with their hash and signature so that the
//! gateway can offer them and a locker can check them again. An image signed by a key past its
//! retirement date is refused. How a campaign of updates proceeds (waves, thresholds, maintenance
//! windows) is decided by the pure functions of [`plan`]; campaigns are made and steered in
//! [`campaign`], and the rollout engine's statements are in [`updates`]. This module owns
//! `firmware_images`, `firmware_campaigns` and `firmware_updates`.

pub mod campaign;
pub mod plan;
pub mod updates;

use chrono::{DateTime, Utc};
use firmware_protocol::image::{self, ImageError};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::config::FirmwareSettings;
use crate::events::{Append, Event};
use crate::storage::{Storage, in_work, on_pool};

/// An image as operators see it (not its bytes).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Image {
    /// Its id.
    pub id: Uuid,
    /// Its version, as lockers announce it in `hello`.
    pub version: String,
    /// The models it fits.
    pub models: Vec<String>,
    /// Its size in bytes.
    pub size: i64,
    /// Its SHA-256, hex.
    pub sha256: String,
    /// The vendor's signature of its manifest, hex.
    pub signature: String,
    /// The name of the key that signed it.
    pub key_name: String,
    /// Who uploaded it.
    pub uploaded_by: Option<Uuid>,
    /// When.
    pub uploaded_at: DateTime<Utc>,
}

/// An image to upload.
#[derive(Debug, Clone)]
pub struct NewImage<'a> {
    /// Its version (1 to 32 printable ASCII characters).
    pub version: &'a str,
    /// The models it fits (1 to 16, each 1 to 32 of `A-Z a-z 0-9 . _ -`).
    pub models: Vec<String>,
    /// The image.
    pub bytes: &'a [u8],
    /// The vendor's signature of its manifest (64 bytes).
    pub signature: &'a [u8],
}

/// Why an image was not taken (nothing was stored).
#[derive(Debug, thiserror::Error)]
pub enum FirmwareError {
    /// A field is wrong.
    #[error("{field}: {why}")]
    Invalid {
        /// Which.
        field: &'static str,
        /// Why.
        why: String,
    },
    /// Larger than `LOCKER_FIRMWARE_MAX_BYTES`.
    #[error("the image is larger than {0} bytes")]
    TooLarge(usize),
    /// No configured key's signature holds for it.
    #[error("the signature does not hold for this image and version under any vendor key")]
    BadSignature,
    /// Only a key past its retirement date signed it.
    #[error("signed by key {0}, retired")]
    RetiredKey(String),
    /// An image of this version exists.
    #[error("an image of version {0} exists")]
    VersionTaken(String),
    /// No such image.
    #[error("no such image")]
    NotFound,
    /// The database failed.
    #[error("storage: {0}")]
    Storage(#[from] sqlx::Error),
}

/// Which configured key signed the image (its SHA-256 `sha256`) as its version with its
/// signature, checked today.
fn signer<'k>(
    settings: &'k FirmwareSettings,
    new: &NewImage<'_>,
    sha256: &[u8; 32],
    today: chrono::NaiveDate,
) -> Result<&'k crate::config::VendorKey, FirmwareError> {
    let manifest =
        image::manifest(new.version, new.bytes.len() as u64, sha256).map_err(|e| match e {
            ImageError::BadVersion => FirmwareError::Invalid {
                field: "version",
                why: e.to_string(),
            },
            other => FirmwareError::Invalid {
                field: "image",
                why: other.to_string(),
            },
        })?;
    let key = settings
        .keys
        .iter()
        .find(|k| image::verify(&k.key, &manifest, new.signature).is_ok())
        .ok_or(FirmwareError::BadSignature)?;
    match key.retire_after {
        Some(last) if today > last => Err(FirmwareError::RetiredKey(key.name.clone())),
        _ => Ok(key),
    }
}

fn check_models(models: &[String]) -> Result<(), FirmwareError> {
    let named = |m: &String| {
        !m.is_empty()
            && m.len() <= 32
            && m.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    };
    if models.is_empty() || models.len() > 16 || !models.iter().all(named) {
        return Err(FirmwareError::Invalid {
            field: "models",
            why: "1 to 16 models, each 1 to 32 of A-Z a-z 0-9 . _ -".into(),
        });
    }
    Ok(())
}

/// Checks and stores an image uploaded by operator `by` (`None`: from the command line).
pub async fn upload(
    storage: &Storage,
    settings: &FirmwareSettings,
    new: &NewImage<'_>,
    by: Option<Uuid>,
) -> Result<Image, FirmwareError> {
    if new.bytes.len() > settings.max_bytes {
        return Err(FirmwareError::TooLarge(settings.max_bytes));
    }
    if new.bytes.is_empty() {
        return Err(FirmwareError::Invalid {
            field: "image",
            why: "empty".into(),
        });
    }
    check_models(&new.models)?;
    let sha256 = image::digest(new.bytes);
    let key = signer(settings, new, &sha256, Utc::now().date_naive())?;
    const INSERT: &str = "INSERT INTO firmware_images (id, version, models, size, sha256,
            signature, key_name, image, uploaded_by, uploaded_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (version) DO NOTHING";
    let stored = Image {
        id: Uuid::now_v7(),
        version: new.version.to_owned(),
        models: new.models.clone(),
        size: new.bytes.len() as i64,
        sha256: hex::encode(sha256),
        signature: hex::encode(new.signature),
        key_name: key.name.clone(),
        uploaded_by: by,
        uploaded_at: Utc::now(),
    };
    // The image and its `firmware.uploaded` event in one unit of work.
    let mut work = storage.begin().await?;
    let inserted = in_work!(&mut work, |conn| sqlx::query(INSERT)
        .bind(stored.id)
        .bind(&stored.version)
        .bind(stored.models.join(" "))
        .bind(stored.size)
        .bind(sha256.to_vec())
        .bind(new.signature)
        .bind(&stored.key_name)
        .bind(new.bytes)
        .bind(stored.uploaded_by)
        .bind(stored.uploaded_at)
        .execute(conn)
        .await?
        .rows_affected());
    if inserted == 0 {
        return Err(FirmwareError::VersionTaken(stored.version));
    }
    let event = Event::new(
        "firmware.uploaded",
        "firmware",
        &stored.id.to_string(),
        serde_json::json!({
            "image_id": stored.id, "version": stored.version, "models": stored.models,
            "size": stored.size, "sha256": stored.sha256, "key_name": stored.key_name,
        }),
    );
    work.append(&event).await?;
    work.commit().await?;
    Ok(stored)
}

/// An image's row without its bytes.
#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    version: String,
    models: String,
    size: i64,
    sha256: Vec<u8>,
    signature: Vec<u8>,
    key_name: String,
    uploaded_by: Option<Uuid>,
    uploaded_at: DateTime<Utc>,
}

impl From<Row> for Image {
    fn from(row: Row) -> Self {
        Self {
            id: row.id,
            version: row.version,
            models: row.models.split(' ').map(str::to_owned).collect(),
            size: row.size,
            sha256: hex::encode(row.sha256),
            signature: hex::encode(row.signature),
            key_name: row.key_name,
            uploaded_by: row.uploaded_by,
            uploaded_at: row.uploaded_at,
        }
    }
}

const COLUMNS: &str =
    "id, version, models, size, sha256, signature, key_name, uploaded_by, uploaded_at";

/// Every image, newest first.
pub async fn list(storage: &Storage) -> Result<Vec<Image>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM firmware_images ORDER BY uploaded_at DESC, id");
    let rows: Vec<Row> = on_pool!(storage, |pool| sqlx::query_as(sqlx::AssertSqlSafe(
        sql.clone()
    ))
    .fetch_all(pool)
    .await?);
    Ok(rows.into_iter().map(Image::from).collect())
}

/// Image `id`, if there is one.
pub async fn get(storage: &Storage, id: Uuid) -> Result<Option<Image>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM firmware_images WHERE id = $1");
    let row: Option<Row> = on_pool!(storage, |pool| sqlx::query_as(sqlx::AssertSqlSafe(
        sql.clone()
    ))
    .bind(id)
    .fetch_optional(pool)
    .await?);
    Ok(row.map(Image::from))
}

/// The bytes and the signed facts of image `id` (what an offer carries), if there is one.
pub async fn image_bytes(storage: &Storage, id: Uuid) -> Result<Option<StoredImage>, sqlx::Error> {
    const SQL: &str = "SELECT version, sha256, signature, image FROM firmware_images WHERE id = $1";
    #[derive(sqlx::FromRow)]
    struct Stored {
        version: String,
        sha256: Vec<u8>,
        signature: Vec<u8>,
        image: Vec<u8>,
    }
    let row: Option<Stored> = on_pool!(storage, |pool| {
        sqlx::query_as(SQL).bind(id).fetch_optional(pool).await?
    });
    Ok(row.and_then(|row| {
        Some(StoredImage {
            version: row.version,
            sha256: row.sha256.try_into().ok()?,
            signature: row.signature.try_into().ok()?,
            bytes: row.image,
        })
    }))
}

/// An image as the gateway offers it.
#[derive(Debug, Clone)]
pub struct StoredImage {
    /// Its version.
    pub version: String,
    /// Its SHA-256.
    pub sha256: [u8; 32],
    /// The vendor's signature of its manifest.
    pub signature: [u8; 64],
    /// The image.
    pub bytes: Vec<u8>,
}
