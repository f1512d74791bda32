//! `/v1/webhooks`: operators subscribe HTTPS endpoints to event types (support and admins), read
//! each endpoint's delivery log (any operator) and replay a delivery. The signing secret is shown
//! once, when the endpoint is subscribed. Every change is audited (`webhook.create`,
//! `webhook.delete`, `webhook.replay`).

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::ApiState;
use super::audit::audited;
use super::auth::{Manager, Operator};
use super::error::{ApiError, Problem};
use super::json::{Json, Path, Query, page_size, state_filter};
use crate::webhook::{self, Delivery, DeliveryFilter, Endpoint, NewEndpoint, WebhookError};

impl From<WebhookError> for ApiError {
    fn from(e: WebhookError) -> Self {
        match e {
            WebhookError::NotFound => ApiError::NotFound("webhook"),
            WebhookError::Storage(e) => e.into(),
        }
    }
}

/// An endpoint to subscribe.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    /// Where deliveries are POSTed: `https://…` (plain `http://` only to the loopback address).
    #[schema(max_length = 500)]
    pub url: String,
    /// What it receives (1 to 20): event types (`rental.ended`), families (`alarm.*`,
    /// `rental.*`, `order.*`, `device.*`, ...) or `*`; see `/v1/asyncapi.json` for the types.
    #[schema(min_items = 1, max_items = 20)]
    pub event_types: Vec<String>,
    /// What it is for (at most 200 characters).
    #[serde(default)]
    #[schema(max_length = 200)]
    pub description: String,
}

/// A subscribed endpoint with its signing secret, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedWebhook {
    /// The endpoint.
    pub webhook: Endpoint,
    /// The HMAC-SHA256 key of the `locker-signature` header (`t=<unix seconds>,v1=<hex of
    /// HMAC(secret, "<t>.<raw body>")>`). Keep it at the receiver; it is not shown again.
    pub secret: String,
}

/// Every subscribed endpoint.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookList {
    /// Oldest first.
    pub items: Vec<Endpoint>,
}

/// Filters and paging of a delivery log.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListDeliveries {
    /// Only `pending`, `delivered` or `failed`.
    pub state: Option<String>,
    /// The `next` of the previous page.
    pub before: Option<i64>,
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<u32>,
}

/// A page of an endpoint's deliveries, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryPage {
    /// The deliveries.
    pub items: Vec<Delivery>,
    /// Pass as `before` for the next page; absent on the last page.
    pub next: Option<i64>,
}

/// A new signing secret: 32 random bytes, hex, after `whsec_`.
fn new_secret() -> String {
    format!("whsec_{}", hex::encode(rand::random::<[u8; 32]>()))
}

/// Subscribes an endpoint to event types; the answer holds its signing secret, once.
#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks", security(("bearer" = [])),
    request_body = NewWebhook,
    responses(
        (status = 201, description = "Subscribed: every later event of those types is delivered to it", body = CreatedWebhook),
        (status = 422, description = "`validation_failed`: not an https URL, an unknown event type, none or more than 20", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create(
    State(state): State<ApiState>,
    Manager(operator): Manager,
    Json(body): Json<NewWebhook>,
) -> Result<(StatusCode, Json<CreatedWebhook>), ApiError> {
    let url = body.url.trim().to_owned();
    let detail = serde_json::json!({ "url": url, "event_types": body.event_types });
    let result = async {
        webhook::check_url(&url).map_err(|why| ApiError::field("url", why))?;
        if body.event_types.is_empty() || body.event_types.len() > 20 {
            return Err(ApiError::field("event_types", "1 to 20 event types"));
        }
        for (i, pattern) in body.event_types.iter().enumerate() {
            if !webhook::is_pattern(pattern) {
                return Err(ApiError::field(
                    &format!("event_types[{i}]"),
                    "an event type, a family such as alarm.*, or *",
                ));
            }
        }
        ApiError::check_length("description", &body.description, 0, 200)?;
        let new = NewEndpoint {
            url: url.clone(),
            event_types: body.event_types.clone(),
            description: body.description.trim().to_owned(),
            created_by: operator.id,
        };
        let secret = new_secret();
        let webhook =
            webhook::create(&state.storage, &new, &secret, state.secrets_key.as_ref()).await?;
        Ok((
            StatusCode::CREATED,
            Json(CreatedWebhook { webhook, secret }),
        ))
    }
    .await;
    audited(&state, &operator, ("webhook.create", &url), detail, result).await
}

/// Every subscribed endpoint (never their secrets).
#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks", security(("bearer" = [])),
    responses((status = 200, description = "The endpoints", body = WebhookList)))]
pub async fn list(
    State(state): State<ApiState>,
    _operator: Operator,
) -> Result<Json<WebhookList>, ApiError> {
    Ok(Json(WebhookList {
        items: webhook::list(&state.storage).await?,
    }))
}

/// Unsubscribes an endpoint; its delivery log goes with it.
#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "webhooks", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The endpoint")),
    responses(
        (status = 204, description = "Unsubscribed: nothing more is delivered to it"),
        (status = 404, description = "`not_found`: no such endpoint", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete(
    State(state): State<ApiState>,
    Manager(operator): Manager,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    let result = async {
        if webhook::remove(&state.storage, id).await? {
            Ok(StatusCode::NO_CONTENT)
        } else {
            Err(ApiError::NotFound("webhook"))
        }
    }
    .await;
    let target = id.to_string();
    audited(
        &state,
        &operator,
        ("webhook.delete", &target),
        serde_json::json!({}),
        result,
    )
    .await
}

/// An endpoint's delivery log, newest first: each event, its state, attempts and last answer.
#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", tag = "webhooks",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The endpoint"), ListDeliveries),
    responses(
        (status = 200, description = "A page of deliveries", body = DeliveryPage),
        (status = 404, description = "`not_found`: no such endpoint", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn deliveries(
    State(state): State<ApiState>,
    _operator: Operator,
    Path(id): Path<Uuid>,
    Query(query): Query<ListDeliveries>,
) -> Result<Json<DeliveryPage>, ApiError> {
    let limit = page_size(query.limit)?;
    state_filter(query.state.as_deref(), &["pending", "delivered", "failed"])?;
    let filter = DeliveryFilter {
        state: query.state,
        before: query.before,
        limit,
    };
    let items = webhook::deliveries(&state.storage, id, &filter).await?;
    let next = (items.len() as i64 == limit)
        .then(|| items.last().map(|d| d.id))
        .flatten();
    Ok(Json(DeliveryPage { items, next }))
}

/// Sends a delivery again now (delivered, failed or waiting for its next attempt alike).
#[utoipa::path(post, path = "/v1/webhooks/{id}/deliveries/{delivery}/replay", tag = "webhooks",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The endpoint"),
           ("delivery" = i64, Path, description = "The delivery")),
    responses(
        (status = 200, description = "Pending again: attempted at once", body = Delivery),
        (status = 404, description = "`not_found`: no such endpoint or delivery", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn replay(
    State(state): State<ApiState>,
    Manager(operator): Manager,
    Path((id, delivery)): Path<(Uuid, i64)>,
) -> Result<Json<Delivery>, ApiError> {
    let result = async { Ok(Json(webhook::replay(&state.storage, id, delivery).await?)) }.await;
    let target = format!("{id}/{delivery}");
    audited(
        &state,
        &operator,
        ("webhook.replay", &target),
        serde_json::json!({}),
        result,
    )
    .await
}
