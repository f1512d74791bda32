//! Operators change a locker's settings: a `configure` command (PROTOCOL.md §2.1), checked
//! against the ranges the protocol allows before anything is stored or sent, then sent, answered
//! and recorded like any command (its history, its outcome), and audited.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ApiState;
use super::audit::audited;
use super::auth::Manager;
use super::devices::{device_id, origin};
use super::error::{ApiError, Problem};
use super::json::{Json, Path};
use crate::command::Command;

/// A locker's new settings, and why.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsBody {
    /// Seconds between heartbeats (MQTT): 5 to 3600.
    #[schema(minimum = 5, maximum = 3600)]
    pub heartbeat_secs: u16,
    /// How long after a pulse an opening counts as commanded, and after which an unopened door
    /// is jammed (ms): 1000 to 60000.
    #[schema(minimum = 1000, maximum = 60000)]
    pub open_window_ms: u16,
    /// How long the lock's relay is energised (ms): 50 to 5000.
    #[schema(minimum = 50, maximum = 5000)]
    pub pulse_ms: u16,
    /// A door open longer than this raises `door_ajar` (s): 0 (off) or 10 to 3600.
    #[schema(maximum = 3600)]
    pub ajar_alarm_secs: u16,
    /// Why (1 to 200 characters); kept with the command and in the audit log.
    #[schema(min_length = 1, max_length = 200)]
    pub reason: String,
}

/// What the locker did with its new settings.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConfigureResult {
    /// The command.
    pub command_id: i64,
    /// `executed`: the locker applied them (and keeps them across reboots).
    pub result: &'static str,
}

/// Changes a locker's settings now: sent as a `configure` command, answered and recorded like an
/// unlock, with who and why.
#[utoipa::path(post, path = "/v1/devices/{id}/configure", tag = "devices",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The device id")),
    request_body = SettingsBody,
    responses(
        (status = 200, description = "Applied by the locker", body = ConfigureResult),
        (status = 404, description = "No such device", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The locker is offline", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A setting outside the protocol's range (`validation_failed`, naming the field; nothing stored or sent), or refused by the locker", body = Problem, content_type = "application/problem+json"),
        (status = 504, description = "No answer in time", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn configure(
    State(state): State<ApiState>,
    operator: Manager,
    Path(id): Path<String>,
    Json(body): Json<SettingsBody>,
) -> Result<Json<ConfigureResult>, ApiError> {
    let reason = body.reason.trim().to_owned();
    let result = async {
        let device = device_id(&id)?;
        let origin = origin(&operator.0, &reason)?;
        let command = Command::configure(
            body.heartbeat_secs,
            body.open_window_ms,
            body.pulse_ms,
            body.ajar_alarm_secs,
        )
        .map_err(|e| ApiError::field(e.field, e.allowed))?;
        let outcome = state.commands.send_with(device, command, &origin).await?;
        Ok(Json(ConfigureResult {
            command_id: outcome.command_id,
            result: "executed",
        }))
    }
    .await;
    let detail = serde_json::json!({
        "heartbeat_secs": body.heartbeat_secs, "open_window_ms": body.open_window_ms,
        "pulse_ms": body.pulse_ms, "ajar_alarm_secs": body.ajar_alarm_secs, "reason": reason,
    });
    audited(
        &state,
        &operator.0,
        ("device.configure", &id),
        detail,
        result,
    )
    .await
}
