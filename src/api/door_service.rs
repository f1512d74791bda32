//! `POST /v1/devices/{id}/doors/{door}/service`: a person looked at a door and puts it back in
//! service (no longer suspect or out of service); technicians, support and admins; audited as
//! `door.service` with the reason.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;

use super::ApiState;
use super::auth::DoorServicer;
use super::devices::device_id;
use super::error::{ApiError, Problem};
use super::json::{Json, Path};

/// Why the door goes back in service.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DoorService {
    /// What was found and done (1 to 200 characters); kept in the audit log.
    #[schema(min_length = 1, max_length = 200)]
    pub reason: String,
}

/// Puts a door back in service after a person looked at it.
#[utoipa::path(post, path = "/v1/devices/{id}/doors/{door}/service", tag = "devices",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The device id"),
           ("door" = u16, Path, description = "The door")),
    request_body = DoorService,
    responses(
        (status = 204, description = "In service: rentals and orders may use it again"),
        (status = 404, description = "`not_found`: no such locker or door", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn back_in_service(
    State(state): State<ApiState>,
    DoorServicer(operator): DoorServicer,
    Path((id, door)): Path<(String, u16)>,
    Json(body): Json<DoorService>,
) -> Result<StatusCode, ApiError> {
    let reason = body.reason.trim().to_owned();
    let detail = serde_json::json!({ "door": door, "reason": reason });
    let result = async {
        if reason.is_empty() || reason.chars().count() > 200 {
            return Err(ApiError::field("reason", "1 to 200 characters"));
        }
        let device = device_id(&id)?;
        if crate::device::doors::back_in_service(&state.storage, &device, door).await? {
            Ok(StatusCode::NO_CONTENT)
        } else {
            Err(ApiError::NotFound("door"))
        }
    }
    .await;
    super::audit::audited(&state, &operator, ("door.service", &id), detail, result).await
}
