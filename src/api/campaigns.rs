//! `/v1/firmware/campaigns`: firmware campaigns. An admin starts one (an image, a target, waves,
//! thresholds, a maintenance window) and pauses, resumes or cancels it (each audited as
//! `firmware.campaign_*`); any operator follows its progress per wave and per locker. The rollout
//! engine carries it out (`rollout`).

use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use super::ApiState;
use super::audit::audited;
use super::auth::{FirmwareAdmin, Operator};
use super::error::{ApiError, Problem};
use super::json::{Json, Path};
use crate::firmware::campaign::{
    self, Campaign, CampaignError, CampaignProgress, NewCampaign, Steer,
};

impl From<CampaignError> for ApiError {
    fn from(e: CampaignError) -> Self {
        let detail = e.to_string();
        match e {
            CampaignError::Invalid { field, why } => ApiError::field(field, why),
            CampaignError::UnknownImage => ApiError::NotFound("firmware image"),
            CampaignError::NotFound => ApiError::NotFound("campaign"),
            CampaignError::NoLockers => ApiError::Unprocessable {
                code: "no_lockers",
                detail,
            },
            CampaignError::WrongState(_) => ApiError::Conflict {
                code: "campaign_state",
                detail,
            },
            CampaignError::Storage(e) => e.into(),
        }
    }
}

/// Every campaign.
#[derive(Debug, Serialize, ToSchema)]
pub struct CampaignList {
    /// Newest first.
    pub items: Vec<Campaign>,
}

/// Starts a campaign: its lockers chosen and split into waves; the first wave starts at once.
#[utoipa::path(post, path = "/v1/firmware/campaigns", tag = "firmware", security(("bearer" = [])),
    request_body = NewCampaign,
    responses(
        (status = 201, description = "Started, with its waves and lockers", body = CampaignProgress),
        (status = 404, description = "`not_found`: no such image", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`no_lockers`: no locker matches the target; `validation_failed`: a bad name, waves, threshold, window or time zone", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create(
    State(state): State<ApiState>,
    FirmwareAdmin(operator): FirmwareAdmin,
    Json(new): Json<NewCampaign>,
) -> Result<(StatusCode, Json<CampaignProgress>), ApiError> {
    let detail = serde_json::json!({ "name": new.name, "image_id": new.image_id });
    let result = async {
        let zone = state.time_zone.name();
        let started = campaign::create(&state.storage, &new, zone, Some(operator.id)).await?;
        Ok((StatusCode::CREATED, Json(started)))
    }
    .await;
    audited(
        &state,
        &operator,
        ("firmware.campaign_create", &new.name),
        detail,
        result,
    )
    .await
}

/// Every campaign, newest first.
#[utoipa::path(get, path = "/v1/firmware/campaigns", tag = "firmware", security(("bearer" = [])),
    responses((status = 200, description = "The campaigns", body = CampaignList)))]
pub async fn list(
    State(state): State<ApiState>,
    _operator: Operator,
) -> Result<Json<CampaignList>, ApiError> {
    Ok(Json(CampaignList {
        items: campaign::list(&state.storage).await?,
    }))
}

/// A campaign with each wave's and each locker's progress.
#[utoipa::path(get, path = "/v1/firmware/campaigns/{id}", tag = "firmware", security(("bearer" = [])),
    params(("id" = i64, Path, description = "The campaign")),
    responses(
        (status = 200, description = "The campaign", body = CampaignProgress),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get(
    State(state): State<ApiState>,
    _operator: Operator,
    Path(id): Path<i64>,
) -> Result<Json<CampaignProgress>, ApiError> {
    campaign::progress(&state.storage, id)
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound("campaign"))
}

async fn steer(
    state: &ApiState,
    operator: &crate::account::User,
    id: i64,
    how: Steer,
    action: &str,
) -> Result<Json<Campaign>, ApiError> {
    let result = campaign::steer(&state.storage, id, how)
        .await
        .map(Json)
        .map_err(ApiError::from);
    let detail = serde_json::json!({ "campaign_id": id });
    audited(state, operator, (action, &id.to_string()), detail, result).await
}

/// Pauses a running campaign: no new offers or installs (downloads under way go on).
#[utoipa::path(post, path = "/v1/firmware/campaigns/{id}/pause", tag = "firmware", security(("bearer" = [])),
    params(("id" = i64, Path, description = "The campaign")),
    responses(
        (status = 200, description = "Paused", body = Campaign),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`campaign_state`: it is not running", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn pause(
    State(state): State<ApiState>,
    FirmwareAdmin(operator): FirmwareAdmin,
    Path(id): Path<i64>,
) -> Result<Json<Campaign>, ApiError> {
    steer(
        &state,
        &operator,
        id,
        Steer::Pause,
        "firmware.campaign_pause",
    )
    .await
}

/// Resumes a paused campaign.
#[utoipa::path(post, path = "/v1/firmware/campaigns/{id}/resume", tag = "firmware", security(("bearer" = [])),
    params(("id" = i64, Path, description = "The campaign")),
    responses(
        (status = 200, description = "Running again", body = Campaign),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`campaign_state`: it is not paused", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn resume(
    State(state): State<ApiState>,
    FirmwareAdmin(operator): FirmwareAdmin,
    Path(id): Path<i64>,
) -> Result<Json<Campaign>, ApiError> {
    steer(
        &state,
        &operator,
        id,
        Steer::Resume,
        "firmware.campaign_resume",
    )
    .await
}

/// Cancels a campaign: lockers not installing yet are cancelled (a locker installing finishes).
#[utoipa::path(post, path = "/v1/firmware/campaigns/{id}/cancel", tag = "firmware", security(("bearer" = [])),
    params(("id" = i64, Path, description = "The campaign")),
    responses(
        (status = 200, description = "Cancelled", body = Campaign),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`campaign_state`: it already ended", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn cancel(
    State(state): State<ApiState>,
    FirmwareAdmin(operator): FirmwareAdmin,
    Path(id): Path<i64>,
) -> Result<Json<Campaign>, ApiError> {
    steer(
        &state,
        &operator,
        id,
        Steer::Cancel,
        "firmware.campaign_cancel",
    )
    .await
}
