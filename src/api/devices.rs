//! Operator endpoints for devices: provision, list and search, one device with its doors,
//! revoke, rotate, command history, cancel, maintenance unlock. Every action is audited.

use std::time::Duration;

use axum::extract::State;

use super::json::Path;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use firmware_protocol::DeviceId;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::ApiState;
use super::audit::audited;
use super::auth::{DoorServicer, Manager, Operator, Revoker};
use super::error::{ApiError, Problem};
use super::json::{Json, Query, page_size};
use crate::account::User;
use crate::command::Origin;
use crate::command::history::{self, CommandView};
use crate::device::directory::{self, DeviceDetail, DeviceSearch, DeviceView, Order, Transport};
use crate::device::{NewDevice, Provisioned};

/// A device to provision. Only these fields.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDeviceBody {
    /// 1 to 32 of `A-Z a-z 0-9 _ -`.
    #[schema(pattern = "^[A-Za-z0-9_-]{1,32}$")]
    pub id: String,
    /// Its model (default `generic`).
    pub model: Option<String>,
    /// 1 to 512.
    #[schema(minimum = 1, maximum = 512)]
    pub door_count: u16,
}

/// A device's credentials. Shown once: the gateway keeps only a digest of the secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceCredentialsView {
    /// The device id: also its MQTT client id and username.
    pub device_id: String,
    /// The secret (64 hex digits): the MQTT password, and what the tag key is derived from
    /// (PROTOCOL.md §3). Store it in the locker; it cannot be shown again.
    pub secret: String,
    /// After a rotation: until when the previous secret still works.
    pub previous_valid_until: Option<DateTime<Utc>>,
}

impl DeviceCredentialsView {
    fn of(provisioned: &Provisioned, previous_valid_until: Option<DateTime<Utc>>) -> Self {
        Self {
            device_id: provisioned.device_id.to_string(),
            secret: provisioned.secret.mqtt_password(),
            previous_valid_until,
        }
    }
}

/// Search, filters and paging for the device list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListDevices {
    /// Ids starting with this.
    pub prefix: Option<String>,
    /// Ids containing this (any case, 1 to 32 characters; on PostgreSQL a trigram index serves
    /// fragments of three characters or more). Overrides `prefix`.
    pub q: Option<String>,
    /// Only devices with an alarm not yet resolved (`true`), or without one (`false`).
    pub open_alarms: Option<bool>,
    /// Only online (`true`) or offline (`false`) devices.
    pub online: Option<bool>,
    /// Only this model.
    pub model: Option<String>,
    /// Only lockers on `mqtt`, or lock boards on a `serial` line.
    pub transport: Option<String>,
    /// Only lock boards on a serial line held by this gateway (its `LOCKER_GATEWAY_ID`).
    pub serial_gateway: Option<String>,
    /// `id` (default; page with `after`) or `last_seen` (most recently seen first, never seen
    /// last; page with `offset`).
    pub sort: Option<String>,
    /// The `next` of the previous page (sorted by id).
    pub after: Option<String>,
    /// The `next_offset` of the previous page (sorted by last seen), at most 100000.
    pub offset: Option<u32>,
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<u32>,
}

/// A page of devices.
#[derive(Debug, Serialize, ToSchema)]
pub struct DevicePage {
    /// The devices, by id.
    pub items: Vec<DeviceView>,
    /// Pass as `after` for the next page (sorted by id); absent on the last page.
    pub next: Option<String>,
    /// Pass as `offset` for the next page (sorted by last seen); absent on the last page.
    pub next_offset: Option<u32>,
}

/// A list's `transport` filter.
fn transport(value: Option<&str>) -> Result<Option<Transport>, ApiError> {
    match value {
        None => Ok(None),
        Some("mqtt") => Ok(Some(Transport::Mqtt)),
        Some("serial") => Ok(Some(Transport::Serial)),
        Some(_) => Err(ApiError::field("transport", "mqtt or serial")),
    }
}

/// A list's `sort`.
fn order(value: Option<&str>) -> Result<Order, ApiError> {
    match value {
        None | Some("id") => Ok(Order::Id),
        Some("last_seen") => Ok(Order::LastSeen),
        Some(_) => Err(ApiError::field("sort", "id or last_seen")),
    }
}

/// A rotation.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateBody {
    /// How long the previous secret keeps working, in seconds (default 86400, at most 30 days).
    pub grace_secs: Option<u64>,
}

/// Paging for a device's commands.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListCommands {
    /// Only in this state (`pending` for queued commands not yet sent).
    pub state: Option<String>,
    /// The `next` of the previous page.
    pub before: Option<i64>,
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<u32>,
}

/// A page of commands, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct CommandPage {
    /// The commands.
    pub items: Vec<CommandView>,
    /// Pass as `before` for the next page; absent on the last page.
    pub next: Option<i64>,
}

/// A cancelled command.
#[derive(Debug, Serialize, ToSchema)]
pub struct Cancelled {
    /// Its id.
    pub command_id: i64,
}

/// A maintenance unlock: why.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceUnlock {
    /// Why the door is opened (1 to 200 characters); kept with the command and in the audit log.
    #[schema(min_length = 1, max_length = 200)]
    pub reason: String,
}

/// What an unlock did.
#[derive(Debug, Serialize, ToSchema)]
pub struct UnlockResult {
    /// The command.
    pub command_id: i64,
    /// What the door did: `opened`, `already_open`, `jammed`; absent if its sensor did not say.
    pub door: Option<String>,
}

pub(super) fn device_id(id: &str) -> Result<DeviceId, ApiError> {
    DeviceId::new(id).ok_or(ApiError::NotFound("device"))
}

/// Who asks for an operator's command and why: the reason (already trimmed) must be 1 to 200
/// characters; it is kept with the command and in the audit log.
pub(super) fn origin(operator: &User, reason: &str) -> Result<Origin, ApiError> {
    if reason.is_empty() || reason.chars().count() > 200 {
        return Err(ApiError::field("reason", "1 to 200 characters"));
    }
    Ok(Origin {
        requested_by: Some(operator.id),
        reason: Some(reason.to_owned()),
    })
}

/// Provisions a device: its credentials are in the answer, once.
#[utoipa::path(post, path = "/v1/devices", tag = "devices", security(("bearer" = [])),
    request_body = NewDeviceBody,
    responses(
        (status = 201, description = "Provisioned", body = DeviceCredentialsView),
        (status = 409, description = "The id is taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn provision(
    State(state): State<ApiState>,
    operator: Manager,
    Json(body): Json<NewDeviceBody>,
) -> Result<(StatusCode, Json<DeviceCredentialsView>), ApiError> {
    let result = async {
        let id = DeviceId::new(&body.id)
            .ok_or_else(|| ApiError::field("id", "1 to 32 of A-Z a-z 0-9 _ -"))?;
        if !(1..=512).contains(&body.door_count) {
            return Err(ApiError::field("door_count", "must be 1 to 512"));
        }
        let model = body.model.clone().unwrap_or_else(|| "generic".into());
        if model.is_empty() || model.len() > 64 {
            return Err(ApiError::field("model", "1 to 64 characters"));
        }
        let provisioned = state
            .registry
            .provision(NewDevice {
                id,
                model,
                door_count: body.door_count,
            })
            .await?;
        Ok((
            StatusCode::CREATED,
            Json(DeviceCredentialsView::of(&provisioned, None)),
        ))
    }
    .await;
    let detail = serde_json::json!({ "door_count": body.door_count, "model": body.model });
    audited(
        &state,
        &operator.0,
        ("device.provision", &body.id),
        detail,
        result,
    )
    .await
}

/// Lists devices: search by id prefix or fragment, filter by presence, model and open alarms,
/// page by id.
#[utoipa::path(get, path = "/v1/devices", tag = "devices", security(("bearer" = [])),
    params(ListDevices),
    responses(
        (status = 200, description = "A page of devices", body = DevicePage),
        (status = 403, description = "Not an operator", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(
    State(state): State<ApiState>,
    _operator: Operator,
    Query(query): Query<ListDevices>,
) -> Result<Json<DevicePage>, ApiError> {
    let limit = page_size(query.limit)?;
    let offset = query.offset.unwrap_or(0);
    if offset > 100_000 {
        return Err(ApiError::field("offset", "at most 100000"));
    }
    let order = order(query.sort.as_deref())?;
    let items = directory::search(
        &state.storage,
        &DeviceSearch {
            prefix: query.prefix,
            fragment: match query.q.as_deref().map(str::trim) {
                Some(q) if q.is_empty() || q.chars().count() > 32 => {
                    return Err(ApiError::field("q", "1 to 32 characters"));
                }
                q => q.map(str::to_owned),
            },
            open_alarms: query.open_alarms,
            online: query.online,
            model: query.model,
            transport: transport(query.transport.as_deref())?,
            serial_gateway: query.serial_gateway,
            order,
            after: query.after,
            offset: i64::from(offset),
            limit,
        },
    )
    .await?;
    let full = items.len() as i64 == limit;
    let next = (full && order == Order::Id)
        .then(|| items.last().map(|d| d.id.clone()))
        .flatten();
    let next_offset = (full && order == Order::LastSeen).then(|| offset + limit as u32);
    Ok(Json(DevicePage {
        items,
        next,
        next_offset,
    }))
}

/// One device with its doors' states.
#[utoipa::path(get, path = "/v1/devices/{id}", tag = "devices", security(("bearer" = [])),
    params(("id" = String, Path, description = "The device id")),
    responses(
        (status = 200, description = "The device", body = DeviceDetail),
        (status = 404, description = "No such device", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get(
    State(state): State<ApiState>,
    _operator: Operator,
    Path(id): Path<String>,
) -> Result<Json<DeviceDetail>, ApiError> {
    let id = device_id(&id)?;
    directory::get(&state.storage, id.as_str())
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound("device"))
}

/// Revokes a device: its session is dropped and it can never log in again.
#[utoipa::path(post, path = "/v1/devices/{id}/revoke", tag = "devices", security(("bearer" = [])),
    params(("id" = String, Path, description = "The device id")),
    responses(
        (status = 200, description = "Revoked (revoking again changes nothing)", body = DeviceView),
        (status = 404, description = "No such device", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn revoke(
    State(state): State<ApiState>,
    operator: Revoker,
    Path(id): Path<String>,
) -> Result<Json<DeviceView>, ApiError> {
    let result = async {
        let id = device_id(&id)?;
        if directory::get(&state.storage, id.as_str()).await?.is_none() {
            return Err(ApiError::NotFound("device"));
        }
        state.registry.revoke(id).await?;
        directory::get(&state.storage, id.as_str())
            .await?
            .map(|d| Json(d.device))
            .ok_or(ApiError::NotFound("device"))
    }
    .await;
    audited(
        &state,
        &operator.0,
        ("device.revoke", &id),
        serde_json::json!({}),
        result,
    )
    .await
}

/// Issues a new secret; the previous one keeps working for the grace period.
#[utoipa::path(post, path = "/v1/devices/{id}/rotate", tag = "devices", security(("bearer" = [])),
    params(("id" = String, Path, description = "The device id")),
    request_body = RotateBody,
    responses(
        (status = 200, description = "The new credentials, shown once", body = DeviceCredentialsView),
        (status = 404, description = "No such device", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The device is revoked", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn rotate(
    State(state): State<ApiState>,
    operator: Manager,
    Path(id): Path<String>,
    Json(body): Json<RotateBody>,
) -> Result<Json<DeviceCredentialsView>, ApiError> {
    let grace_secs = body.grace_secs.unwrap_or(86_400);
    let result = async {
        let id = device_id(&id)?;
        if grace_secs > 30 * 86_400 {
            return Err(ApiError::field("grace_secs", "at most 30 days"));
        }
        let provisioned = state
            .registry
            .rotate(id, Duration::from_secs(grace_secs))
            .await?;
        let until = Utc::now() + chrono::Duration::seconds(grace_secs as i64);
        Ok(Json(DeviceCredentialsView::of(&provisioned, Some(until))))
    }
    .await;
    let detail = serde_json::json!({ "grace_secs": grace_secs });
    audited(&state, &operator.0, ("device.rotate", &id), detail, result).await
}

/// A device's commands, newest first; `state=pending` for the queued ones not yet sent.
#[utoipa::path(get, path = "/v1/devices/{id}/commands", tag = "devices", security(("bearer" = [])),
    params(("id" = String, Path, description = "The device id"), ListCommands),
    responses(
        (status = 200, description = "A page of commands", body = CommandPage),
        (status = 404, description = "No such device", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn commands(
    State(state): State<ApiState>,
    _operator: Operator,
    Path(id): Path<String>,
    Query(query): Query<ListCommands>,
) -> Result<Json<CommandPage>, ApiError> {
    let id = device_id(&id)?;
    let limit = page_size(query.limit)?;
    if directory::get(&state.storage, id.as_str()).await?.is_none() {
        return Err(ApiError::NotFound("device"));
    }
    let items = history::list(
        &state.storage,
        id.as_str(),
        query.state.as_deref(),
        query.before,
        limit,
    )
    .await?;
    let next = (items.len() as i64 == limit)
        .then(|| items.last().map(|c| c.id))
        .flatten();
    Ok(Json(CommandPage { items, next }))
}

/// Cancels a queued command that has not been sent yet.
#[utoipa::path(post, path = "/v1/devices/{id}/commands/{command_id}/cancel", tag = "devices",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The device id"),
           ("command_id" = i64, Path, description = "The command id")),
    responses(
        (status = 200, description = "Cancelled", body = Cancelled),
        (status = 404, description = "No such command on this device", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already sent or settled", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn cancel(
    State(state): State<ApiState>,
    operator: DoorServicer,
    Path((id, command_id)): Path<(String, i64)>,
) -> Result<Json<Cancelled>, ApiError> {
    let result = async {
        let device = device_id(&id)?;
        if !history::belongs_to(&state.storage, command_id, device.as_str()).await? {
            return Err(ApiError::NotFound("command"));
        }
        if state.commands.cancel(command_id).await? {
            Ok(Json(Cancelled { command_id }))
        } else {
            Err(ApiError::Conflict {
                code: "not_cancellable",
                detail: "the command was already sent or settled".into(),
            })
        }
    }
    .await;
    let target = format!("{id}/{command_id}");
    audited(
        &state,
        &operator.0,
        ("command.cancel", &target),
        serde_json::json!({}),
        result,
    )
    .await
}

/// A maintenance unlock: opens a door now, recorded with who and why.
#[utoipa::path(post, path = "/v1/devices/{id}/doors/{door}/unlock", tag = "devices",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The device id"),
           ("door" = u16, Path, description = "The door")),
    request_body = MaintenanceUnlock,
    responses(
        (status = 200, description = "Executed", body = UnlockResult),
        (status = 404, description = "No such device", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The locker is offline", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Refused by the locker, invalid, or a door the locker does not have (`no_such_door`: nothing stored or sent)", body = Problem, content_type = "application/problem+json"),
        (status = 504, description = "No answer in time", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn unlock(
    State(state): State<ApiState>,
    operator: DoorServicer,
    Path((id, door)): Path<(String, u16)>,
    Json(body): Json<MaintenanceUnlock>,
) -> Result<Json<UnlockResult>, ApiError> {
    let reason = body.reason.trim().to_owned();
    let result = async {
        let device = device_id(&id)?;
        let origin = origin(&operator.0, &reason)?;
        let outcome = crate::unlock::maintenance_unlock(
            &state.commands,
            &state.storage,
            (device, door),
            &origin,
            state.jams_out_of_service,
        )
        .await?;
        Ok(Json(UnlockResult {
            command_id: outcome.command_id,
            door: outcome.door.map(|d| d.as_str().to_owned()),
        }))
    }
    .await;
    let detail = serde_json::json!({ "door": door, "reason": reason });
    audited(&state, &operator.0, ("door.unlock", &id), detail, result).await
}
