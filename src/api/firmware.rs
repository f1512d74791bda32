//! `/v1/firmware`: firmware images for the fleet. An admin uploads an image as the request body
//! (`application/octet-stream`, at most `LOCKER_FIRMWARE_MAX_BYTES`) with its version, the
//! models it fits and the vendor's signature in the query; it is checked against the configured
//! vendor keys and stored whole (audited as `firmware.upload`). Any operator lists the images and
//! reads a locker's firmware history.

use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::ApiState;
use super::audit::audited;
use super::auth::{FirmwareAdmin, Operator};
use super::error::{ApiError, Problem};
use super::json::{Json, Path, Query};
use crate::device::firmware::{self as history, FirmwareSeen};
use crate::firmware::{self, FirmwareError, Image, NewImage};

impl From<FirmwareError> for ApiError {
    fn from(e: FirmwareError) -> Self {
        let detail = e.to_string();
        match e {
            FirmwareError::Invalid { field, why } => ApiError::field(field, why),
            FirmwareError::TooLarge(_) => ApiError::PayloadTooLarge,
            FirmwareError::BadSignature | FirmwareError::RetiredKey(_) => ApiError::Unprocessable {
                code: "bad_signature",
                detail,
            },
            FirmwareError::VersionTaken(_) => ApiError::Conflict {
                code: "version_exists",
                detail,
            },
            FirmwareError::NotFound => ApiError::NotFound("firmware image"),
            FirmwareError::Storage(e) => e.into(),
        }
    }
}

/// What an uploaded image is.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Upload {
    /// Its version, as lockers announce it (1 to 32 printable ASCII characters).
    pub version: String,
    /// The models it fits, comma-separated (1 to 16).
    pub models: String,
    /// The vendor's Ed25519 signature of the image's manifest (PROTOCOL.md §11), 128 hex digits.
    pub signature: String,
}

/// Every image.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImageList {
    /// Newest first.
    pub items: Vec<Image>,
}

/// A locker's firmware history.
#[derive(Debug, Serialize, ToSchema)]
pub struct FirmwareHistory {
    /// The firmware it runs now (its last hello), if it said hello.
    pub current: Option<String>,
    /// Every firmware it announced, the latest first.
    pub items: Vec<FirmwareSeen>,
}

/// Uploads a firmware image: checked against the vendors' keys, stored with its hash.
#[utoipa::path(post, path = "/v1/firmware", tag = "firmware", security(("bearer" = [])),
    params(Upload),
    request_body(content = Vec<u8>, content_type = "application/octet-stream",
        description = "The image, byte for byte"),
    responses(
        (status = 201, description = "Stored", body = Image),
        (status = 409, description = "`version_exists`: an image of this version exists", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`payload_too_large`: larger than LOCKER_FIRMWARE_MAX_BYTES", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`bad_signature`: no vendor key's signature holds for this image and version, or only a retired key's; `validation_failed`: a bad version, models or signature", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn upload(
    State(state): State<ApiState>,
    FirmwareAdmin(operator): FirmwareAdmin,
    Query(query): Query<Upload>,
    body: Body,
) -> Result<(StatusCode, Json<Image>), ApiError> {
    let detail = serde_json::json!({ "version": query.version, "models": query.models });
    let result = async {
        let max = state.firmware.max_bytes;
        // Read up to one byte more than allowed: more is a 413, whatever the API's body limit.
        let bytes = axum::body::to_bytes(body, max + 1)
            .await
            .map_err(|_| ApiError::PayloadTooLarge)?;
        let signature = hex::decode(query.signature.trim())
            .ok()
            .filter(|s| s.len() == 64)
            .ok_or_else(|| ApiError::field("signature", "128 hex digits"))?;
        let models = query
            .models
            .split(',')
            .map(|m| m.trim().to_owned())
            .filter(|m| !m.is_empty())
            .collect();
        let new = NewImage {
            version: query.version.trim(),
            models,
            bytes: &bytes,
            signature: &signature,
        };
        let image =
            firmware::upload(&state.storage, &state.firmware, &new, Some(operator.id)).await?;
        Ok((StatusCode::CREATED, Json(image)))
    }
    .await;
    audited(
        &state,
        &operator,
        ("firmware.upload", &query.version),
        detail,
        result,
    )
    .await
}

/// Every firmware image (not their bytes).
#[utoipa::path(get, path = "/v1/firmware", tag = "firmware", security(("bearer" = [])),
    responses((status = 200, description = "The images", body = ImageList)))]
pub async fn list(
    State(state): State<ApiState>,
    _operator: Operator,
) -> Result<Json<ImageList>, ApiError> {
    Ok(Json(ImageList {
        items: firmware::list(&state.storage).await?,
    }))
}

/// One firmware image (not its bytes).
#[utoipa::path(get, path = "/v1/firmware/{id}", tag = "firmware", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The image")),
    responses(
        (status = 200, description = "The image", body = Image),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get(
    State(state): State<ApiState>,
    _operator: Operator,
    Path(id): Path<Uuid>,
) -> Result<Json<Image>, ApiError> {
    firmware::get(&state.storage, id)
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound("firmware image"))
}

/// The firmware a locker runs, and every firmware it announced before.
#[utoipa::path(get, path = "/v1/devices/{id}/firmware", tag = "firmware", security(("bearer" = [])),
    params(("id" = String, Path, description = "The device id")),
    responses(
        (status = 200, description = "Its firmware history", body = FirmwareHistory),
        (status = 404, description = "No such device", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn device_history(
    State(state): State<ApiState>,
    _operator: Operator,
    Path(id): Path<String>,
) -> Result<Json<FirmwareHistory>, ApiError> {
    let device = crate::device::directory::get(&state.storage, &id)
        .await?
        .ok_or(ApiError::NotFound("device"))?;
    Ok(Json(FirmwareHistory {
        current: device.device.firmware,
        items: history::history(&state.storage, &id).await?,
    }))
}
