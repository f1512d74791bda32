//! `/livez` (the process answers) and `/readyz` (its dependencies answer, and it is not stopping).

use std::time::Duration;

use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::ApiState;
use super::error::ApiError;
use super::json::Json;

/// How long each readiness check may take.
const CHECK_WITHIN: Duration = Duration::from_secs(2);

/// The process is up.
#[derive(Debug, Serialize, ToSchema)]
pub struct Liveness {
    /// Always `alive`.
    pub status: String,
    /// The gateway's version.
    pub version: String,
}

/// Every dependency answered.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// Always `ready`.
    pub status: String,
    /// PostgreSQL (fleet mode): `ok`, or `not_configured`.
    pub postgres: String,
    /// The SQLite file (edge mode): `ok`, or `not_configured`.
    pub sqlite: String,
    /// Redis: `ok`, or `not_configured`.
    pub redis: String,
    /// The MQTT broker (embedded listeners running, the gateway's subscription in place): `ok`.
    pub broker: String,
    /// This gateway's instance id (`LOCKER_GATEWAY_ID`).
    pub gateway: String,
    /// This gateway's lease among the gateways on its database (`GET /v1/gateways`): `held`.
    pub lease: String,
}

/// Liveness: answers while the process runs; checks nothing else.
#[utoipa::path(get, path = "/livez", tag = "health",
    responses((status = 200, description = "The process is up", body = Liveness)))]
pub async fn livez() -> Json<Liveness> {
    Json(Liveness {
        status: "alive".into(),
        version: crate::VERSION.into(),
    })
}

async fn database(state: &ApiState) -> Result<(), String> {
    let backend = state.storage.backend();
    match tokio::time::timeout(CHECK_WITHIN, state.storage.ping()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("{backend}: {e}")),
        Err(_) => Err(format!("{backend}: no answer in 2 s")),
    }
}

/// `ok` for the database in use, `not_configured` for the other.
fn database_state(state: &ApiState, backend: &str) -> &'static str {
    if state.storage.backend() == backend {
        "ok"
    } else {
        "not_configured"
    }
}

async fn redis(state: &ApiState) -> Result<&'static str, String> {
    let Some(redis) = &state.redis else {
        return Ok("not_configured");
    };
    let mut conn = redis.clone();
    let cmd = redis::cmd("PING");
    let ping = cmd.query_async::<String>(&mut conn);
    match tokio::time::timeout(CHECK_WITHIN, ping).await {
        Ok(Ok(_)) => Ok("ok"),
        Ok(Err(e)) => Err(format!("redis: {e}")),
        Err(_) => Err("redis: no answer in 2 s".into()),
    }
}

async fn lease(state: &ApiState) -> Result<(), String> {
    match tokio::time::timeout(CHECK_WITHIN, state.lease.held()).await {
        Ok(Ok(true)) => Ok(()),
        Ok(Ok(false)) => Err(format!(
            "lease: gateway {} does not hold its lease (another process took it, or it expired)",
            state.lease.id()
        )),
        Ok(Err(e)) => Err(format!("lease: {e}")),
        Err(_) => Err("lease: no answer in 2 s".into()),
    }
}

fn broker(state: &ApiState) -> Result<(), String> {
    if let Some(listeners) = &state.broker_listeners
        && !listeners.all_running()
    {
        return Err("broker: a listener of the embedded broker has stopped".into());
    }
    if !*state.mqtt_ready.borrow() {
        return Err("broker: the gateway is not subscribed to the lockers' topics".into());
    }
    Ok(())
}

/// Readiness: PostgreSQL, Redis (if configured) and the broker answer, the gateway holds its
/// lease, and it is not stopping. A 503 problem document names what failed.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses(
        (status = 200, description = "Ready to serve", body = Readiness),
        (status = 503, description = "A dependency failed, or the gateway is stopping",
         body = super::error::Problem, content_type = "application/problem+json"),
    ))]
pub async fn readyz(State(state): State<ApiState>) -> Result<Json<Readiness>, ApiError> {
    let (database, redis, lease) = tokio::join!(database(&state), redis(&state), lease(&state));
    let broker = broker(&state);
    let failures = [
        database.err(),
        redis.as_ref().err().cloned(),
        broker.err(),
        lease.err(),
    ];
    let mut failing: Vec<String> = failures.into_iter().flatten().collect();
    if state.is_draining() {
        failing.insert(0, "the gateway is stopping".into());
    }
    if !failing.is_empty() {
        return Err(ApiError::Unavailable(format!(
            "not ready: {}",
            failing.join("; ")
        )));
    }
    Ok(Json(Readiness {
        status: "ready".into(),
        postgres: database_state(&state, "postgresql").into(),
        sqlite: database_state(&state, "sqlite").into(),
        redis: redis.unwrap_or("ok").into(),
        broker: "ok".into(),
        gateway: state.lease.id().to_owned(),
        lease: "held".into(),
    }))
}
