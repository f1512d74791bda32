//! Operators on customers' orders: a refund of part or all of a completed order's total, with a
//! reason, audited (admins: it moves money).

use axum::extract::State;
use uuid::Uuid;

use super::ApiState;
use super::error::{ApiError, Problem};
use super::json::{Json, Path};
use super::orders::{OrderView, view};
use super::rental_admin::Refund;

/// Gives back part or all of a completed order's total to the buyer's wallet.
#[utoipa::path(post, path = "/v1/admin/orders/{id}/refund", tag = "orders", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The order")),
    request_body = Refund,
    responses(
        (status = 200, description = "Refunded", body = OrderView),
        (status = 404, description = "No such order", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`not_refundable`: not completed, or more than its total left to refund; `invalid_amount`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn refund(
    State(state): State<ApiState>,
    super::auth::Treasurer(operator): super::auth::Treasurer,
    Path(id): Path<Uuid>,
    Json(body): Json<Refund>,
) -> Result<Json<OrderView>, ApiError> {
    let result = async {
        if let Some(reason) = &body.reason {
            ApiError::check_length("reason", reason, 1, 200)?;
        }
        let order = state
            .orders
            .get(None, id)
            .await?
            .ok_or(ApiError::NotFound("order"))?;
        let amount = match &body.amount {
            Some(amount) => amount.checked(state.wallets.currency(), "amount", 1)?,
            None => order.total - order.refunded,
        };
        let refunded = state.orders.refund(id, amount).await?;
        Ok(view(&state, refunded))
    }
    .await;
    let detail = serde_json::json!({
        "amount": body.amount.as_ref().map(|a| a.to_string()), "reason": body.reason,
    });
    let target = id.to_string();
    super::audit::audited(&state, &operator, ("order.refund", &target), detail, result)
        .await
        .map(Json)
}
