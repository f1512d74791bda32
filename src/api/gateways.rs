//! `GET /v1/gateways`: the gateways sharing this database and their leases, for operators.

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::ApiState;
use super::auth::Operator;
use super::error::{ApiError, Problem};
use super::json::Json;

/// A gateway of the fleet, as its lease shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Gateway {
    /// Its instance id (`LOCKER_GATEWAY_ID`).
    pub id: String,
    /// `live` (its lease runs), `stopped` (it stopped cleanly) or `expired` (it died or could not
    /// renew its lease; its in-flight work is taken over by the others).
    pub state: String,
    /// Whether this is the gateway answering.
    pub this_gateway: bool,
    /// Host, process id and HTTP address of the process holding the lease.
    pub process: String,
    /// `embedded` (it runs alone) or `external` (a fleet on a shared broker).
    pub broker: String,
    /// Its version.
    pub version: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it last renewed its lease.
    pub renewed_at: DateTime<Utc>,
    /// When its lease ends unless renewed.
    pub lease_expires_at: DateTime<Utc>,
    /// When it stopped cleanly, if it did.
    pub stopped_at: Option<DateTime<Utc>>,
}

/// The gateways sharing this database, by id: live ones and those whose lease ended in the last
/// week.
#[utoipa::path(get, path = "/v1/gateways", tag = "operations", security(("bearer" = [])),
    responses(
        (status = 200, description = "The gateways", body = Vec<Gateway>),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an operator", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(
    State(state): State<ApiState>,
    _operator: Operator,
) -> Result<Json<Vec<Gateway>>, ApiError> {
    let now = Utc::now();
    let members = crate::lease::members(&state.storage).await?;
    Ok(Json(
        members
            .into_iter()
            .map(|m| Gateway {
                state: m.state(now).to_owned(),
                this_gateway: m.id == state.lease.id(),
                id: m.id,
                process: m.process,
                broker: m.broker,
                version: m.version,
                started_at: m.started_at,
                renewed_at: m.renewed_at,
                lease_expires_at: m.expires_at,
                stopped_at: m.stopped_at,
            })
            .collect(),
    ))
}
