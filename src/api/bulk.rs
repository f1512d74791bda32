//! Commands to a selection of lockers at once (`/v1/bulk/…`): a maintenance unlock of one door
//! number, new settings, or revocation, sent to each locker (several at a time) with one result
//! per locker, in the order asked. Each locker's action is audited on its own, as the single
//! operation would be, marked `bulk`. A bulk unlock never opens a rented or stocked door unless
//! the request says `override_occupied`, which the audit log records with what the door held.

use axum::extract::State;
use firmware_protocol::DeviceId;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::ApiState;
use super::audit::audited;
use super::auth::{DoorServicer, Manager, Revoker};
use super::devices::{device_id, origin};
use super::error::{ApiError, Problem};
use super::json::Json;
use crate::account::User;
use crate::command::Command;
use crate::device::directory;
use crate::unlock::occupant::{self, Occupant};

/// At most this many lockers in one request.
pub const MAX_LOCKERS: usize = 200;
/// Lockers commanded at the same time.
const AT_ONCE: usize = 16;

/// A maintenance unlock of one door number at each locker.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkUnlock {
    /// The lockers (1 to 200 ids, each once).
    #[schema(min_items = 1, max_items = 200)]
    pub devices: Vec<String>,
    /// The door to open at each.
    pub door: u16,
    /// Why (1 to 200 characters); kept with each command and in the audit log.
    #[schema(min_length = 1, max_length = 200)]
    pub reason: String,
    /// Open the door even where it is rented or stocked (default `false`: such a door is left
    /// shut, `door_occupied`). Recorded in the audit log.
    #[serde(default)]
    pub override_occupied: bool,
}

/// New settings for each locker (the ranges of `POST /v1/devices/{id}/configure`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkConfigure {
    /// The lockers (1 to 200 ids, each once).
    #[schema(min_items = 1, max_items = 200)]
    pub devices: Vec<String>,
    /// Seconds between heartbeats (MQTT): 5 to 3600.
    pub heartbeat_secs: u16,
    /// The open window (ms): 1000 to 60000.
    pub open_window_ms: u16,
    /// The relay pulse (ms): 50 to 5000.
    pub pulse_ms: u16,
    /// `door_ajar` after this many seconds open: 0 (off) or 10 to 3600.
    pub ajar_alarm_secs: u16,
    /// Why (1 to 200 characters).
    #[schema(min_length = 1, max_length = 200)]
    pub reason: String,
}

/// Revocation of each locker's credentials (final).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkRevoke {
    /// The lockers (1 to 200 ids, each once).
    #[schema(min_items = 1, max_items = 200)]
    pub devices: Vec<String>,
    /// Why (1 to 200 characters); kept in the audit log.
    #[schema(min_length = 1, max_length = 200)]
    pub reason: String,
}

/// What happened at one locker.
#[derive(Debug, Serialize, ToSchema)]
pub struct LockerResult {
    /// The locker.
    pub device_id: String,
    /// Whether it was done (executed by the locker; for a revocation, recorded).
    pub ok: bool,
    /// The command sent, when one was sent and answered.
    pub command_id: Option<i64>,
    /// For an unlock: what the door did (`opened`, `already_open`), if its sensor said.
    pub door: Option<String>,
    /// Why not: the problem document the single operation would have answered
    /// (`device_offline`, `door_occupied`, `outcome_unknown`: not known yet, ...).
    pub problem: Option<Problem>,
}

/// One result per locker, in the order asked.
#[derive(Debug, Serialize, ToSchema)]
pub struct BulkResults {
    /// How many were done.
    pub done: usize,
    /// How many were not (or are not known yet).
    pub failed: usize,
    /// Each locker's result.
    pub results: Vec<LockerResult>,
}

impl BulkResults {
    fn of(results: Vec<LockerResult>) -> Self {
        let done = results.iter().filter(|r| r.ok).count();
        Self {
            done,
            failed: results.len() - done,
            results,
        }
    }
}

/// Checks the selection before anything is sent: 1 to [`MAX_LOCKERS`] well-formed ids, each once.
fn selection(devices: &[String]) -> Result<(), ApiError> {
    if devices.is_empty() || devices.len() > MAX_LOCKERS {
        return Err(ApiError::field("devices", "1 to 200 locker ids"));
    }
    let mut seen = std::collections::HashSet::with_capacity(devices.len());
    for (i, id) in devices.iter().enumerate() {
        if DeviceId::new(id).is_none() {
            return Err(ApiError::field(
                &format!("devices[{i}]"),
                "1 to 32 of A-Z a-z 0-9 _ -",
            ));
        }
        if !seen.insert(id.as_str()) {
            return Err(ApiError::field(&format!("devices[{i}]"), "named twice"));
        }
    }
    Ok(())
}

/// One locker's action audited as the single operation would be (`action` on `device`), and
/// its result.
async fn audited_result(
    (state, operator): (&ApiState, &User),
    (action, device): (&str, &str),
    detail: serde_json::Value,
    answer: Result<(Option<i64>, Option<String>), ApiError>,
) -> LockerResult {
    match audited(state, operator, (action, device), detail, answer).await {
        Ok((command_id, door)) => LockerResult {
            device_id: device.to_owned(),
            ok: true,
            command_id,
            door,
            problem: None,
        },
        Err(e) => LockerResult {
            device_id: device.to_owned(),
            ok: false,
            command_id: None,
            door: None,
            problem: Some(e.problem()),
        },
    }
}

/// Runs `one` for each locker, [`AT_ONCE`] at a time, results in the order asked.
async fn each<F, Fut>(devices: &[String], one: F) -> BulkResults
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = LockerResult>,
{
    let results = futures_util::stream::iter(devices.iter().cloned().map(one))
        .buffered(AT_ONCE)
        .collect()
        .await;
    BulkResults::of(results)
}

/// Opens door `door` at each locker (a maintenance unlock each), leaving rented and stocked doors
/// shut unless `override_occupied`.
#[utoipa::path(post, path = "/v1/bulk/unlock", tag = "bulk", security(("bearer" = [])),
    request_body = BulkUnlock,
    responses(
        (status = 200, description = "One result per locker (each may have failed: see `ok` and `problem`; `door_occupied` for a rented or stocked door left shut)", body = BulkResults),
        (status = 422, description = "`validation_failed`: no lockers, more than 200, an id twice or malformed, or no reason; nothing sent", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn unlock(
    State(state): State<ApiState>,
    DoorServicer(operator): DoorServicer,
    Json(body): Json<BulkUnlock>,
) -> Result<Json<BulkResults>, ApiError> {
    let reason = body.reason.trim().to_owned();
    selection(&body.devices)?;
    let origin = origin(&operator, &reason)?;
    let door = body.door;
    let results = each(&body.devices, |id| {
        let (state, operator, origin, reason) = (&state, &operator, &origin, &reason);
        async move {
            let found = async {
                let device = device_id(&id)?;
                let held = occupant::of_door(&state.storage, device.as_str(), door).await?;
                Ok::<_, ApiError>((device, held))
            }
            .await;
            let held = found.as_ref().ok().and_then(|(_, held)| *held);
            let detail = json!({
                "door": door, "reason": reason, "bulk": true,
                "occupied": held.map(Occupant::as_str),
                "override_occupied": body.override_occupied,
            });
            let answer = async {
                let (device, held) = found?;
                if let Some(held) = held.filter(|_| !body.override_occupied) {
                    return Err(ApiError::Conflict {
                        code: "door_occupied",
                        detail: format!(
                            "door {door} is {}; left shut (send override_occupied to open it)",
                            held.as_str()
                        ),
                    });
                }
                let sent = crate::unlock::maintenance_unlock(
                    &state.commands,
                    &state.storage,
                    (device, door),
                    origin,
                    state.jams_out_of_service,
                )
                .await?;
                Ok((
                    Some(sent.command_id),
                    sent.door.map(|d| d.as_str().to_owned()),
                ))
            }
            .await;
            audited_result((state, operator), ("door.unlock", &id), detail, answer).await
        }
    })
    .await;
    Ok(Json(results))
}

/// Sends the same settings to each locker.
#[utoipa::path(post, path = "/v1/bulk/configure", tag = "bulk", security(("bearer" = [])),
    request_body = BulkConfigure,
    responses(
        (status = 200, description = "One result per locker (see `ok` and `problem`)", body = BulkResults),
        (status = 422, description = "`validation_failed`: a setting out of range, a bad selection or no reason; nothing sent", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn configure(
    State(state): State<ApiState>,
    Manager(operator): Manager,
    Json(body): Json<BulkConfigure>,
) -> Result<Json<BulkResults>, ApiError> {
    let reason = body.reason.trim().to_owned();
    selection(&body.devices)?;
    let origin = origin(&operator, &reason)?;
    let command = Command::configure(
        body.heartbeat_secs,
        body.open_window_ms,
        body.pulse_ms,
        body.ajar_alarm_secs,
    )
    .map_err(|e| ApiError::field(e.field, e.allowed))?;
    let detail = json!({
        "heartbeat_secs": body.heartbeat_secs, "open_window_ms": body.open_window_ms,
        "pulse_ms": body.pulse_ms, "ajar_alarm_secs": body.ajar_alarm_secs, "reason": reason,
        "bulk": true,
    });
    let results = each(&body.devices, |id| {
        let (state, operator, origin, command, detail) =
            (&state, &operator, &origin, &command, &detail);
        async move {
            let answer = async {
                let sent = state
                    .commands
                    .send_with(device_id(&id)?, command.clone(), origin)
                    .await?;
                Ok((Some(sent.command_id), None))
            }
            .await;
            audited_result(
                (state, operator),
                ("device.configure", &id),
                detail.clone(),
                answer,
            )
            .await
        }
    })
    .await;
    Ok(Json(results))
}

/// Revokes each locker's credentials (final: its session is dropped, it never logs in again).
#[utoipa::path(post, path = "/v1/bulk/revoke", tag = "bulk", security(("bearer" = [])),
    request_body = BulkRevoke,
    responses(
        (status = 200, description = "One result per locker (`not_found` for an unknown id)", body = BulkResults),
        (status = 422, description = "`validation_failed`: a bad selection or no reason; nothing revoked", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn revoke(
    State(state): State<ApiState>,
    Revoker(operator): Revoker,
    Json(body): Json<BulkRevoke>,
) -> Result<Json<BulkResults>, ApiError> {
    let reason = body.reason.trim().to_owned();
    selection(&body.devices)?;
    origin(&operator, &reason)?;
    let detail = json!({ "reason": reason, "bulk": true });
    let results = each(&body.devices, |id| {
        let (state, operator, detail) = (&state, &operator, &detail);
        async move {
            let answer = async {
                let device = device_id(&id)?;
                if directory::get(&state.storage, device.as_str())
                    .await?
                    .is_none()
                {
                    return Err(ApiError::NotFound("device"));
                }
                state.registry.revoke(device).await?;
                Ok((None, None))
            }
            .await;
            audited_result(
                (state, operator),
                ("device.revoke", &id),
                detail.clone(),
                answer,
            )
            .await
        }
    })
    .await;
    Ok(Json(results))
}
