//! `GET /v1/rentals`: the caller's own rentals, newest first, a page at a time, by state.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::ApiState;
use super::auth::Caller;
use super::error::{ApiError, Problem};
use super::json::{Json, Query, next_page, page_size, state_filter};
use super::rentals::RentalView;

/// Filters and paging.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListRentals {
    /// Only rentals in this state: `pending`, `active`, `ending`, `ended` or `cancelled`.
    #[param(pattern = "^(pending|active|ending|ended|cancelled)$")]
    pub state: Option<String>,
    /// The `next` of the previous page.
    pub before: Option<Uuid>,
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
}

/// A page of rentals, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct RentalPage {
    /// The rentals.
    pub items: Vec<RentalView>,
    /// Pass as `before` for the next page; absent on the last page.
    pub next: Option<Uuid>,
}

/// The caller's rentals, newest first.
#[utoipa::path(get, path = "/v1/rentals", tag = "rentals", security(("bearer" = [])),
    params(ListRentals),
    responses(
        (status = 200, description = "A page of the caller's rentals", body = RentalPage),
        (status = 400, description = "A query parameter that does not parse", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An unknown state, or a page size out of range", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(
    State(state): State<ApiState>,
    Caller(user): Caller,
    Query(query): Query<ListRentals>,
) -> Result<Json<RentalPage>, ApiError> {
    let limit = page_size(query.limit)?;
    state_filter(
        query.state.as_deref(),
        &crate::rental::RentalState::ALL.map(crate::rental::RentalState::as_str),
    )?;
    let rentals = state
        .rentals
        .of_user(user.id, query.state.as_deref(), query.before, limit)
        .await?;
    let next = next_page(&rentals, limit, |r| r.id);
    let items = rentals
        .into_iter()
        .map(|r| super::rentals::view(&state, r))
        .collect();
    Ok(Json(RentalPage { items, next }))
}
