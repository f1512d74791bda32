//! `/v1/admin/stuck`: what the background workers could not get through, for operators.

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::ApiState;
use super::auth::Operator;
use super::error::{ApiError, Problem};
use super::json::Json;

/// An item a background worker failed on again and again: it is retried hourly, and was announced
/// as a `worker.item_stuck` event when it got stuck.
#[derive(Debug, Serialize, ToSchema)]
pub struct StuckItem {
    /// The worker (`rental_reconciler`, `order_reconciler`, `command_housekeeping`,
    /// `queue_delivery`, `outbox_publisher`).
    pub worker: String,
    /// The item (`rental {id}`, `order {id}`, `device {id}`, `command {id}`, `outbox`).
    pub item: String,
    /// Failures in a row.
    pub failures: u32,
    /// The last failure.
    pub last_error: String,
    /// The first failure of this row of failures.
    pub first_failed_at: DateTime<Utc>,
    /// The last failure.
    pub last_failed_at: DateTime<Utc>,
}

/// The stuck items of the background workers, oldest failure first (at most 1000): what they
/// failed on again and again, kept in the database until it goes through.
#[utoipa::path(get, path = "/v1/admin/stuck", tag = "operations", security(("bearer" = [])),
    responses(
        (status = 200, description = "Stuck items", body = Vec<StuckItem>),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an operator", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn stuck(
    State(state): State<ApiState>,
    _operator: Operator,
) -> Result<Json<Vec<StuckItem>>, ApiError> {
    let items = crate::worker::stuck::list(&state.storage)
        .await?
        .into_iter()
        .map(|s| StuckItem {
            worker: s.worker,
            item: s.item,
            failures: s.failures,
            last_error: s.last_error,
            first_failed_at: s.first_failed_at,
            last_failed_at: s.last_failed_at,
        })
        .collect();
    Ok(Json(items))
}
