//! Authentication and authorization for a broker that asks over HTTP (EMQX's HTTP authenticator
//! and authorizer; any broker with such hooks): `POST /v1/broker/authenticate` for every login
//! and `POST /v1/broker/authorize` for every publish and subscription, shaped as EMQX 5 calls
//! them and answers are read (`{"result": "allow" | "deny", "is_superuser": …}`, status 200).
//! The rules are the embedded broker's: a locker logs in with its device id as username and
//! client id and its current secret (or the previous one in a rotation's grace period), not once
//! revoked; it may publish on its own `up` and `status` topics and subscribe to its own `down`
//! topic, nothing else. The gateways' own broker login (`LOCKER_MQTT_BROKER`) is a superuser.
//! The broker authenticates itself with `Authorization: Bearer {LOCKER_BROKER_HOOK_SECRET}`; a
//! call without it is refused (401; without a secret configured the hooks answer 404) and counts against the caller's rate limit, which calls
//! with it are spared (a broker asks for every locker of the fleet).

use axum::extract::State;
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use utoipa::ToSchema;

use super::ApiState;
use super::error::{ApiError, Problem};
use super::json::Json;
use crate::broker::acl::{TopicAction, locker_may};
use crate::broker::auth::{LoginResult, check_login};

/// The hooks' settings.
#[derive(Clone)]
pub struct BrokerHooks {
    /// What the broker sends as `Authorization: Bearer …`.
    pub secret: String,
    /// The gateways' own login on the broker, a superuser.
    pub gateway_login: Option<(String, String)>,
}

impl std::fmt::Debug for BrokerHooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BrokerHooks(<secret>)")
    }
}

impl BrokerHooks {
    /// Whether `headers` carry the broker's secret (compared in constant time).
    pub fn called_by_broker(&self, headers: &HeaderMap) -> bool {
        headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|given| bool::from(given.as_bytes().ct_eq(self.secret.as_bytes())))
    }
}

/// A login, as EMQX sends it with the body template
/// `{"clientid": "${clientid}", "username": "${username}", "password": "${password}"}`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginCheck {
    /// The client id.
    pub clientid: String,
    /// The username.
    #[serde(default)]
    pub username: String,
    /// The password, in clear (the hook must be reached over TLS or a private network).
    #[serde(default)]
    pub password: String,
}

/// A publish or subscription, as EMQX sends it with the body template
/// `{"clientid": "${clientid}", "username": "${username}", "topic": "${topic}", "action": "${action}"}`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct TopicCheck {
    /// The client id.
    pub clientid: String,
    /// The username.
    #[serde(default)]
    pub username: String,
    /// The topic (or subscription filter).
    pub topic: String,
    /// `publish` or `subscribe` (anything else is denied).
    pub action: String,
}

/// The decision, as EMQX reads it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Decision {
    /// `allow` or `deny`.
    pub result: &'static str,
    /// For a login: the gateways' own user is a superuser (not asked about topics).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_superuser: Option<bool>,
}

fn decision(allowed: bool, is_superuser: Option<bool>) -> Json<Decision> {
    Json(Decision {
        result: if allowed { "allow" } else { "deny" },
        is_superuser,
    })
}

fn hooks(state: &ApiState, headers: &HeaderMap) -> Result<BrokerHooks, ApiError> {
    // Off: as if they were not here.
    let hooks = state.broker_hooks.clone().ok_or(ApiError::NotFound(
        "broker hook (LOCKER_BROKER_HOOK_SECRET is not set)",
    ))?;
    if !hooks.called_by_broker(headers) {
        metrics::counter!("locker_broker_hook_calls_total", "result" => "unauthorized")
            .increment(1);
        return Err(ApiError::Unauthorized(
            "the broker hooks want Authorization: Bearer and the hook secret",
        ));
    }
    Ok(hooks)
}

/// Whether a client may log in (EMQX's HTTP authenticator).
#[utoipa::path(post, path = "/v1/broker/authenticate", tag = "broker",
    security(("broker_hook" = [])),
    request_body = LoginCheck,
    responses(
        (status = 200, description = "The decision", body = Decision),
        (status = 400, description = "Not a login check", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not the broker's secret", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: the hooks are off (no LOCKER_BROKER_HOOK_SECRET)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`unavailable`: the device registry cannot be read", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn authenticate(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Json(check): Json<LoginCheck>,
) -> Result<Json<Decision>, ApiError> {
    let hooks = hooks(&state, &headers)?;
    if let Some((user, password)) = &hooks.gateway_login
        && check.username == *user
    {
        let admitted = bool::from(check.password.as_bytes().ct_eq(password.as_bytes()));
        let result = if admitted { "gateway" } else { "bad_password" };
        metrics::counter!("locker_broker_hook_calls_total", "result" => result).increment(1);
        return Ok(decision(admitted, Some(admitted)));
    }
    let result = check_login(
        &state.registry,
        &check.clientid,
        &check.username,
        &check.password,
    )
    .await;
    metrics::counter!("locker_broker_hook_calls_total", "result" => result.kind()).increment(1);
    if result == LoginResult::Unavailable {
        return Err(ApiError::Unavailable(
            "the device registry cannot be read".to_owned(),
        ));
    }
    Ok(decision(result == LoginResult::Admitted, Some(false)))
}

/// Whether a client may publish on a topic or subscribe to a filter (EMQX's HTTP authorizer).
#[utoipa::path(post, path = "/v1/broker/authorize", tag = "broker",
    security(("broker_hook" = [])),
    request_body = TopicCheck,
    responses(
        (status = 200, description = "The decision", body = Decision),
        (status = 400, description = "Not a topic check", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not the broker's secret", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: the hooks are off (no LOCKER_BROKER_HOOK_SECRET)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`unavailable`: the device registry cannot be read", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn authorize(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Json(check): Json<TopicCheck>,
) -> Result<Json<Decision>, ApiError> {
    let hooks = hooks(&state, &headers)?;
    if hooks
        .gateway_login
        .as_ref()
        .is_some_and(|(user, _)| *user == check.username)
    {
        return Ok(decision(true, None));
    }
    let action = match check.action.as_str() {
        "publish" => Some(TopicAction::Publish),
        "subscribe" => Some(TopicAction::Subscribe),
        _ => None,
    };
    let device = firmware_protocol::DeviceId::new(&check.username)
        .filter(|_| check.clientid == check.username);
    let allowed = match (device, action) {
        (Some(device), Some(action)) => {
            // Revoked since it logged in: nothing more.
            let live = matches!(
                state.registry.credentials(&device).await,
                Ok(Some(credentials)) if !credentials.revoked
            );
            live && locker_may(&device, action, &check.topic)
        }
        _ => false,
    };
    let result = if allowed {
        "topic_allowed"
    } else {
        "topic_denied"
    };
    metrics::counter!("locker_broker_hook_calls_total", "result" => result).increment(1);
    Ok(decision(allowed, None))
}
