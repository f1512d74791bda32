//! `/v1/audit`: the operators' audit log, for admins.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::ApiState;
use super::auth::Operator;
use super::error::{ApiError, Problem};
use super::json::{Json, Query, page_size};
use crate::account::User;
use crate::audit::{self, Entry, Filter, Outcome};

/// Records an operator's action with how it ended (`ok`, `refused` for a 4xx, `failed` for a
/// 5xx, with the error's code in the detail), and passes the result on. A failure to write the
/// audit log is logged and counted.
pub async fn audited<T>(
    state: &ApiState,
    operator: &User,
    (action, target): (&str, &str),
    mut detail: serde_json::Value,
    result: Result<T, ApiError>,
) -> Result<T, ApiError> {
    let outcome = match &result {
        Ok(_) => Outcome::Ok,
        Err(e) => {
            if let Some(map) = detail.as_object_mut() {
                map.insert("error".into(), e.code().into());
            }
            if e.status().is_server_error() {
                Outcome::Failed
            } else {
                Outcome::Refused
            }
        }
    };
    if let Err(e) = audit::record(
        &state.storage,
        Some(operator),
        action,
        Some(target),
        outcome,
        detail,
    )
    .await
    {
        metrics::counter!("locker_audit_write_failures_total").increment(1);
        tracing::error!(error = %e, action, target, "cannot write the audit log");
    }
    result
}

/// Filters and paging.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListAudit {
    /// Only this account's actions.
    pub actor_id: Option<Uuid>,
    /// Only this action (`device.provision`, `door.unlock`, ...).
    pub action: Option<String>,
    /// Only `ok`, `refused` or `failed`.
    pub outcome: Option<String>,
    /// Only by the account with this email (any case).
    pub actor_email: Option<String>,
    /// Only at or after this time (RFC 3339).
    pub from: Option<chrono::DateTime<chrono::Utc>>,
    /// Only before this time (RFC 3339).
    pub to: Option<chrono::DateTime<chrono::Utc>>,
    /// The `next` of the previous page.
    pub before: Option<i64>,
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<u32>,
}

/// A page of entries, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    /// The entries.
    pub items: Vec<Entry>,
    /// Pass as `before` for the next page; absent on the last page.
    pub next: Option<i64>,
}

/// The audit log, newest first.
#[utoipa::path(get, path = "/v1/audit", tag = "audit", security(("bearer" = [])),
    params(ListAudit),
    responses(
        (status = 200, description = "A page of entries", body = AuditPage),
        (status = 403, description = "Not an operator", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(
    State(state): State<ApiState>,
    _operator: Operator,
    Query(query): Query<ListAudit>,
) -> Result<Json<AuditPage>, ApiError> {
    let limit = page_size(query.limit)?;
    let items = audit::list(
        &state.storage,
        &Filter {
            actor_id: query.actor_id,
            action: query.action,
            outcome: query.outcome,
            before: query.before,
            actor_email: query.actor_email,
            from: query.from,
            to: query.to,
            limit,
        },
    )
    .await?;
    let next = (items.len() as i64 == limit)
        .then(|| items.last().map(|e| e.id))
        .flatten();
    Ok(Json(AuditPage { items, next }))
}
