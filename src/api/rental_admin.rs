//! Operators on customers' rentals: end one (charged as if picked up now), cancel one (no fee,
//! the hold released), refund part or all of a fee; each with a reason, audited.

use axum::extract::State;
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::ApiState;
use super::amount::Amount;
use super::error::{ApiError, Problem};
use super::json::{Json, OptionalJson, Path};
use super::rentals::{RentalView, view};
use crate::rental::{Rental, RentalError};

/// A refund of part or all of a rental's fee.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Refund {
    /// The amount (at most the fee not yet refunded), as a string; the whole rest if absent.
    pub amount: Option<Amount>,
    /// Why (kept in the audit log; 1 to 200 characters).
    #[schema(min_length = 1, max_length = 200)]
    pub reason: Option<String>,
}

/// Why an operator ends or cancels a rental (the body is optional).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OperatorReason {
    /// Why (1 to 200 characters); kept in the audit log.
    #[schema(min_length = 1, max_length = 200)]
    pub reason: Option<String>,
}

/// Answers an operator's action on a rental, audited with how it ended and why.
async fn operator_action(
    state: &ApiState,
    operator: &crate::account::User,
    (action, id): (&str, Uuid),
    reason: Option<String>,
    result: Result<Rental, RentalError>,
) -> Result<Json<RentalView>, ApiError> {
    let result = result
        .map(|rental| view(state, rental))
        .map_err(ApiError::from);
    let target = id.to_string();
    let detail = serde_json::json!({ "reason": reason });
    super::audit::audited(state, operator, (action, &target), detail, result)
        .await
        .map(Json)
}

/// The optional reason of an end or a cancel, checked.
fn reason(body: OptionalJson<OperatorReason>) -> Result<Option<String>, ApiError> {
    match body.0.and_then(|body| body.reason) {
        None => Ok(None),
        Some(reason) => {
            let reason = reason.trim().to_owned();
            ApiError::check_length("reason", &reason, 1, 200)?;
            Ok(Some(reason))
        }
    }
}

/// An operator ends any running rental, without opening the door; charged as if picked up now.
#[utoipa::path(post, path = "/v1/admin/rentals/{id}/end", tag = "rentals", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The rental")),
    request_body(content = Option<OperatorReason>, description = "Optional: why"),
    responses(
        (status = 200, description = "Ended", body = RentalView),
        (status = 404, description = "No such rental", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not running", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn admin_end(
    State(state): State<ApiState>,
    super::auth::Manager(operator): super::auth::Manager,
    Path(id): Path<Uuid>,
    body: OptionalJson<OperatorReason>,
) -> Result<Json<RentalView>, ApiError> {
    let reason = reason(body)?;
    let result = state.rentals.end_by_operator(id).await;
    operator_action(&state, &operator, ("rental.end", id), reason, result).await
}

/// An operator cancels any running rental: no fee, the hold released.
#[utoipa::path(post, path = "/v1/admin/rentals/{id}/cancel", tag = "rentals", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The rental")),
    request_body(content = Option<OperatorReason>, description = "Optional: why"),
    responses(
        (status = 200, description = "Cancelled", body = RentalView),
        (status = 404, description = "No such rental", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not running", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn admin_cancel(
    State(state): State<ApiState>,
    super::auth::Manager(operator): super::auth::Manager,
    Path(id): Path<Uuid>,
    body: OptionalJson<OperatorReason>,
) -> Result<Json<RentalView>, ApiError> {
    let reason = reason(body)?;
    let result = state.rentals.cancel_by_operator(id).await;
    operator_action(&state, &operator, ("rental.cancel", id), reason, result).await
}

/// An operator refunds part or all of an ended rental's fee.
#[utoipa::path(post, path = "/v1/admin/rentals/{id}/refund", tag = "rentals", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The rental")),
    request_body = Refund,
    responses(
        (status = 200, description = "Refunded", body = RentalView),
        (status = 404, description = "No such rental", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "More than the fee left, or not ended", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn admin_refund(
    State(state): State<ApiState>,
    super::auth::Treasurer(operator): super::auth::Treasurer,
    Path(id): Path<Uuid>,
    Json(body): Json<Refund>,
) -> Result<Json<RentalView>, ApiError> {
    let result = async {
        if let Some(reason) = &body.reason {
            ApiError::check_length("reason", reason, 1, 200)?;
        }
        let rental = state.rentals.any(id).await?;
        let amount = match &body.amount {
            Some(amount) => amount.checked(state.wallets.currency(), "amount", 1)?,
            None => rental.fee.unwrap_or(0) - rental.refunded,
        };
        let refunded = state.rentals.refund(id, amount).await?;
        Ok(view(&state, refunded))
    }
    .await;
    let detail = serde_json::json!({
        "amount": body.amount.as_ref().map(|a| a.to_string()), "reason": body.reason,
    });
    let target = id.to_string();
    super::audit::audited(
        &state,
        &operator,
        ("rental.refund", &target),
        detail,
        result,
    )
    .await
    .map(Json)
}
