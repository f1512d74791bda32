//! `/v1/alarms`: the alarms operators handle, filtered and paged; acknowledged and resolved by a
//! technician, support or an admin (audited as `alarm.acknowledge` and `alarm.resolve`).

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::ApiState;
use super::auth::{DoorServicer, Operator};
use super::error::{ApiError, Problem};
use super::json::{Json, Path, Query, page_size};
use crate::alarm::{self, Alarm, AlarmError, Filter};

impl From<AlarmError> for ApiError {
    fn from(e: AlarmError) -> Self {
        match e {
            AlarmError::NotFound => ApiError::NotFound("alarm"),
            AlarmError::Resolved => ApiError::Conflict {
                code: "alarm_resolved",
                detail: e.to_string(),
            },
            AlarmError::Storage(e) => e.into(),
        }
    }
}

/// Filters and paging.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListAlarms {
    /// Only `open`, `acknowledged` or `resolved`.
    pub state: Option<String>,
    /// Only `critical`, `major` or `minor`.
    pub severity: Option<String>,
    /// Only this locker's.
    pub device_id: Option<String>,
    /// Only `forced_open`, `door_ajar`, `tamper`, `power_loss` or `jammed`.
    pub kind: Option<String>,
    /// The `next` of the previous page.
    pub before: Option<i64>,
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<u32>,
}

/// A page of alarms, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlarmPage {
    /// The alarms.
    pub items: Vec<Alarm>,
    /// Pass as `before` for the next page; absent on the last page.
    pub next: Option<i64>,
}

/// Checks a filter's value against the names it may take.
fn one_of(
    field: &'static str,
    value: Option<String>,
    names: &[&str],
) -> Result<Option<String>, ApiError> {
    match value {
        Some(v) if !names.contains(&v.as_str()) => {
            Err(ApiError::field(field, "not one of the listed values"))
        }
        other => Ok(other),
    }
}

/// Alarms, newest first, by state, severity, locker and kind.
#[utoipa::path(get, path = "/v1/alarms", tag = "alarms", security(("bearer" = [])),
    params(ListAlarms),
    responses((status = 200, description = "A page of alarms", body = AlarmPage)))]
pub async fn list(
    State(state): State<ApiState>,
    _operator: Operator,
    Query(query): Query<ListAlarms>,
) -> Result<Json<AlarmPage>, ApiError> {
    let limit = page_size(query.limit)?;
    let filter = Filter {
        state: one_of("state", query.state, &["open", "acknowledged", "resolved"])?,
        severity: one_of("severity", query.severity, &["critical", "major", "minor"])?,
        device_id: query.device_id,
        kind: one_of(
            "kind",
            query.kind,
            &["forced_open", "door_ajar", "tamper", "power_loss", "jammed"],
        )?,
        before: query.before,
        limit,
    };
    let items = alarm::list(&state.storage, &filter).await?;
    let next = (items.len() as i64 == limit)
        .then(|| items.last().map(|a| a.id))
        .flatten();
    Ok(Json(AlarmPage { items, next }))
}

/// Acknowledges an alarm: someone is on it. An alarm acknowledged already stays as it was.
#[utoipa::path(post, path = "/v1/alarms/{id}/acknowledge", tag = "alarms", security(("bearer" = [])),
    params(("id" = i64, Path, description = "The alarm")),
    responses(
        (status = 200, description = "The alarm, acknowledged", body = Alarm),
        (status = 404, description = "`not_found`: no such alarm", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`alarm_resolved`: it is resolved already", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn acknowledge(
    State(state): State<ApiState>,
    DoorServicer(operator): DoorServicer,
    Path(id): Path<i64>,
) -> Result<Json<Alarm>, ApiError> {
    let result = alarm::acknowledge(&state.storage, id, operator.id)
        .await
        .map(Json)
        .map_err(ApiError::from);
    let target = id.to_string();
    super::audit::audited(
        &state,
        &operator,
        ("alarm.acknowledge", &target),
        serde_json::json!({}),
        result,
    )
    .await
}

/// What was done about an alarm.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Resolution {
    /// 1 to 500 characters: what was found and done.
    #[schema(min_length = 1, max_length = 500)]
    pub resolution: String,
}

/// Resolves an alarm (open or acknowledged), saying what was done.
#[utoipa::path(post, path = "/v1/alarms/{id}/resolve", tag = "alarms", security(("bearer" = [])),
    params(("id" = i64, Path, description = "The alarm")),
    request_body = Resolution,
    responses(
        (status = 200, description = "The alarm, resolved", body = Alarm),
        (status = 404, description = "`not_found`: no such alarm", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`alarm_resolved`: it is resolved already", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn resolve(
    State(state): State<ApiState>,
    DoorServicer(operator): DoorServicer,
    Path(id): Path<i64>,
    Json(body): Json<Resolution>,
) -> Result<Json<Alarm>, ApiError> {
    let text = body.resolution.trim().to_owned();
    let detail = serde_json::json!({ "resolution": text });
    let result = async {
        if text.is_empty() || text.chars().count() > 500 {
            return Err(ApiError::field("resolution", "1 to 500 characters"));
        }
        Ok(Json(
            alarm::resolve(&state.storage, id, operator.id, &text).await?,
        ))
    }
    .await;
    let target = id.to_string();
    super::audit::audited(
        &state,
        &operator,
        ("alarm.resolve", &target),
        detail,
        result,
    )
    .await
}
