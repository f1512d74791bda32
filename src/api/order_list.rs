//! `GET /v1/orders`: the caller's own orders, newest first, a page at a time, by state.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::ApiState;
use super::auth::Caller;
use super::error::{ApiError, Problem};
use super::json::{Json, Query, next_page, page_size, state_filter};
use super::orders::OrderView;

/// Filters and paging.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListOrders {
    /// Only orders in this state: `paid`, `completed` or `cancelled`.
    #[param(pattern = "^(paid|completed|cancelled)$")]
    pub state: Option<String>,
    /// The `next` of the previous page.
    pub before: Option<Uuid>,
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
}

/// A page of orders, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderPage {
    /// The orders.
    pub items: Vec<OrderView>,
    /// Pass as `before` for the next page; absent on the last page.
    pub next: Option<Uuid>,
}

/// The caller's orders, newest first.
#[utoipa::path(get, path = "/v1/orders", tag = "orders", security(("bearer" = [])),
    params(ListOrders),
    responses(
        (status = 200, description = "A page of the caller's orders", body = OrderPage),
        (status = 400, description = "A query parameter that does not parse", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An unknown state, or a page size out of range", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(
    State(state): State<ApiState>,
    Caller(user): Caller,
    Query(query): Query<ListOrders>,
) -> Result<Json<OrderPage>, ApiError> {
    let limit = page_size(query.limit)?;
    state_filter(
        query.state.as_deref(),
        &crate::order::OrderState::ALL.map(crate::order::OrderState::as_str),
    )?;
    let orders = state
        .orders
        .of_user(user.id, query.state.as_deref(), query.before, limit)
        .await?;
    let next = next_page(&orders, limit, |o| o.id);
    let items = orders
        .into_iter()
        .map(|o| super::orders::view(&state, o))
        .collect();
    Ok(Json(OrderPage { items, next }))
}
