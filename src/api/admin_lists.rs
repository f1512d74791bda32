//! `GET /v1/admin/rentals` and `GET /v1/admin/orders`: every rental or order, for operators, by
//! locker, user, state and time, newest first, a page at a time.

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use super::ApiState;
use super::auth::Operator;
use super::error::{ApiError, Problem};
use super::json::{Json, Query, next_page, page_size, state_filter};
use super::order_list::OrderPage;
use super::rental_list::RentalPage;
use crate::unlock::SaleFilter;

/// Filters and paging.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FindSales {
    /// At this locker.
    #[param(max_length = 32)]
    pub device_id: Option<String>,
    /// This user's.
    pub user_id: Option<Uuid>,
    /// In this state.
    pub state: Option<String>,
    /// Asked for at or after this time (RFC 3339).
    pub since: Option<DateTime<Utc>>,
    /// Asked for before this time (RFC 3339).
    pub until: Option<DateTime<Utc>>,
    /// The `next` of the previous page.
    pub before: Option<Uuid>,
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
}

impl FindSales {
    fn filter(&self) -> SaleFilter<'_> {
        SaleFilter {
            user: self.user_id,
            device: self.device_id.as_deref(),
            state: self.state.as_deref(),
            since: self.since,
            until: self.until,
            before: self.before,
        }
    }
}

/// Every rental the filters name, newest first.
#[utoipa::path(get, path = "/v1/admin/rentals", tag = "rentals", security(("bearer" = [])),
    params(FindSales),
    responses(
        (status = 200, description = "A page of rentals", body = RentalPage),
        (status = 403, description = "Not an operator", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn rentals(
    State(state): State<ApiState>,
    _operator: Operator,
    Query(query): Query<FindSales>,
) -> Result<Json<RentalPage>, ApiError> {
    let limit = page_size(query.limit)?;
    state_filter(
        query.state.as_deref(),
        &crate::rental::RentalState::ALL.map(crate::rental::RentalState::as_str),
    )?;
    let rentals = state.rentals.find(&query.filter(), limit).await?;
    let next = next_page(&rentals, limit, |r| r.id);
    let items = rentals
        .into_iter()
        .map(|r| super::rentals::view(&state, r))
        .collect();
    Ok(Json(RentalPage { items, next }))
}

/// Every order the filters name, newest first.
#[utoipa::path(get, path = "/v1/admin/orders", tag = "orders", security(("bearer" = [])),
    params(FindSales),
    responses(
        (status = 200, description = "A page of orders", body = OrderPage),
        (status = 403, description = "Not an operator", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn orders(
    State(state): State<ApiState>,
    _operator: Operator,
    Query(query): Query<FindSales>,
) -> Result<Json<OrderPage>, ApiError> {
    let limit = page_size(query.limit)?;
    state_filter(
        query.state.as_deref(),
        &crate::order::OrderState::ALL.map(crate::order::OrderState::as_str),
    )?;
    let orders = state.orders.find(&query.filter(), limit).await?;
    let next = next_page(&orders, limit, |o| o.id);
    let items = orders
        .into_iter()
        .map(|o| super::orders::view(&state, o))
        .collect();
    Ok(Json(OrderPage { items, next }))
}
