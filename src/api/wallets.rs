//! Wallets over HTTP: a customer's balance and ledger; operators' top-ups; the payment
//! provider's webhook (the integration point for real payments: signed, idempotent on the
//! provider's event id). Amounts are decimal strings in the configured currency.

use axum::extract::State;

use super::json::Path;
use axum::http::HeaderMap;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use rust_decimal::Decimal;

use super::amount::Amount;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::ApiState;
use super::auth::{Caller, Treasurer};
use super::error::{ApiError, Problem};
use super::json::{Json, Query, parse};
use crate::wallet::{Balance, LedgerEntry, WalletError};

/// The header carrying the webhook's signature: `sha256=` and the lowercase hex HMAC-SHA256 of
/// the raw body with the shared secret.
pub const SIGNATURE_HEADER: &str = "x-payment-signature";

/// A wallet's balances.
#[derive(Debug, Serialize, ToSchema)]
pub struct WalletView {
    /// ISO 4217 code.
    pub currency: String,
    /// Spendable.
    #[schema(value_type = String, example = "12.50")]
    pub available: Decimal,
    /// Held for running rentals.
    #[schema(value_type = String, example = "5.00")]
    pub held: Decimal,
    /// Owed (blocks new rentals until paid).
    #[schema(value_type = String, example = "0.00")]
    pub debt: Decimal,
}

/// One movement.
#[derive(Debug, Serialize, ToSchema)]
pub struct LedgerView {
    /// Its id.
    pub id: i64,
    /// `top_up`, `hold`, `capture`, `release`, `charge`, `refund`, `adjustment`.
    pub kind: String,
    /// Change of the available balance.
    #[schema(value_type = String)]
    pub available_delta: Decimal,
    /// Change of the held balance.
    #[schema(value_type = String)]
    pub held_delta: Decimal,
    /// Available after it.
    #[schema(value_type = String)]
    pub available_after: Decimal,
    /// Held after it.
    #[schema(value_type = String)]
    pub held_after: Decimal,
    /// What it was for.
    pub reference: Option<String>,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// A page of the ledger, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct LedgerPage {
    /// The entries.
    pub items: Vec<LedgerView>,
    /// Pass as `before` for the next page; absent on the last page.
    pub next: Option<i64>,
}

/// Paging.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListLedger {
    /// The `next` of the previous page.
    pub before: Option<i64>,
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<u32>,
}

/// An operator's top-up.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TopUp {
    /// A positive amount with at most the currency's decimals, as a string (`"20.00"`).
    pub amount: Amount,
    /// A note kept in the ledger (a receipt number; 1 to 200 characters).
    #[schema(min_length = 1, max_length = 200)]
    pub reference: Option<String>,
}

/// A payment provider's event: money received for a user.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PaymentEvent {
    /// The provider's id for the event; the same id is applied once (1 to 200 characters).
    #[schema(min_length = 1, max_length = 200)]
    pub event_id: String,
    /// The user who paid.
    pub user_id: Uuid,
    /// The amount, as a string.
    pub amount: Amount,
    /// Must be the gateway's currency.
    pub currency: String,
}

/// What became of a payment event.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentReceipt {
    /// The provider's id.
    pub event_id: String,
    /// `false` if this event was applied before (nothing done now).
    pub applied: bool,
}

impl From<WalletError> for ApiError {
    fn from(e: WalletError) -> Self {
        match e {
            WalletError::InsufficientFunds { .. } => Self::PaymentRequired {
                code: "insufficient_funds",
                detail: e.to_string(),
            },
            WalletError::Busy => Self::Conflict {
                code: "wallet_busy",
                detail: e.to_string(),
            },
            WalletError::Invalid(message) => Self::Unprocessable {
                code: "invalid_amount",
                detail: message.to_owned(),
            },
            WalletError::BalanceLimit { .. } => Self::Unprocessable {
                code: "balance_limit",
                detail: e.to_string(),
            },
            WalletError::Aborted(why) => Self::Conflict {
                code: "refused",
                detail: why.into(),
            },
            WalletError::Storage(e) => e.into(),
        }
    }
}

fn view(state: &ApiState, balance: &Balance) -> WalletView {
    let currency = state.wallets.currency();
    WalletView {
        currency: currency.code.clone(),
        available: currency.from_minor(balance.available),
        held: currency.from_minor(balance.held),
        debt: currency.from_minor(balance.debt),
    }
}

fn amount(state: &ApiState, field: &str, amount: &Amount) -> Result<i64, ApiError> {
    amount.checked(state.wallets.currency(), field, 1)
}

/// The caller's wallet.
#[utoipa::path(get, path = "/v1/wallet", tag = "wallet", security(("bearer" = [])),
    responses(
        (status = 200, description = "Balances", body = WalletView),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn mine(
    State(state): State<ApiState>,
    Caller(user): Caller,
) -> Result<Json<WalletView>, ApiError> {
    let balance = state.wallets.balance(user.id).await?;
    Ok(Json(view(&state, &balance)))
}

/// The caller's ledger, newest first.
#[utoipa::path(get, path = "/v1/wallet/ledger", tag = "wallet", security(("bearer" = [])),
    params(ListLedger),
    responses(
        (status = 200, description = "A page of movements", body = LedgerPage),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn ledger(
    State(state): State<ApiState>,
    Caller(user): Caller,
    Query(query): Query<ListLedger>,
) -> Result<Json<LedgerPage>, ApiError> {
    let limit = super::json::page_size(query.limit)?;
    let entries = state.wallets.ledger(user.id, query.before, limit).await?;
    let currency = state.wallets.currency();
    let money = |minor| currency.from_minor(minor);
    let next = (entries.len() as i64 == limit)
        .then(|| entries.last().map(|e| e.id))
        .flatten();
    let items = entries
        .into_iter()
        .map(|e: LedgerEntry| LedgerView {
            id: e.id,
            kind: e.kind,
            available_delta: money(e.available_delta),
            held_delta: money(e.held_delta),
            available_after: money(e.available_after),
            held_after: money(e.held_after),
            reference: e.reference,
            created_at: e.created_at,
        })
        .collect();
    Ok(Json(LedgerPage { items, next }))
}

/// An operator tops up a user's wallet.
#[utoipa::path(post, path = "/v1/wallets/{user_id}/top-ups", tag = "wallet",
    security(("bearer" = [])),
    params(("user_id" = Uuid, Path, description = "The user")),
    request_body = TopUp,
    responses(
        (status = 200, description = "The new balances", body = WalletView),
        (status = 404, description = "No such user", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The wallet was busy; try again", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid amount", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn top_up(
    State(state): State<ApiState>,
    operator: Treasurer,
    Path(user_id): Path<Uuid>,
    Json(body): Json<TopUp>,
) -> Result<Json<WalletView>, ApiError> {
    let result = async {
        let minor = amount(&state, "amount", &body.amount)?;
        if let Some(reference) = &body.reference {
            ApiError::check_length("reference", reference, 1, 200)?;
        }
        if !crate::account::exists(&state.storage, user_id).await? {
            return Err(ApiError::NotFound("user"));
        }
        let reference = body
            .reference
            .clone()
            .unwrap_or_else(|| format!("top-up by {}", operator.0.email));
        // The default names the operator, whose email may be longer than the ledger keeps.
        let reference: String = reference.chars().take(200).collect();
        let balance = state.wallets.top_up(user_id, minor, &reference).await?;
        Ok(Json(view(&state, &balance)))
    }
    .await;
    let detail =
        serde_json::json!({ "amount": body.amount.to_string(), "reference": body.reference });
    let target = user_id.to_string();
    super::audit::audited(
        &state,
        &operator.0,
        ("wallet.top_up", &target),
        detail,
        result,
    )
    .await
}

fn signature_ok(secret: &str, headers: &HeaderMap, body: &[u8]) -> bool {
    let Some(hex_signature) = headers
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("sha256="))
    else {
        return false;
    };
    let Ok(signature) = hex::decode(hex_signature.trim()) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&signature).is_ok()
}

/// The payment provider's webhook: money received. Signed (`X-Payment-Signature:
/// sha256=<hex HMAC-SHA256 of the body>`), applied once per `event_id`.
#[utoipa::path(post, path = "/v1/payments/webhook", tag = "wallet",
    request_body = PaymentEvent,
    responses(
        (status = 200, description = "Applied, or applied before", body = PaymentReceipt),
        (status = 401, description = "Bad or missing signature", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such user", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid event", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "No webhook secret configured", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn webhook(
    State(state): State<ApiState>,
    headers: HeaderMap,
    super::json::RawBody(body): super::json::RawBody,
) -> Result<Json<PaymentReceipt>, ApiError> {
    let Some(secret) = &state.payment_webhook_secret else {
        return Err(ApiError::Unavailable(
            "payments are not configured (LOCKER_PAYMENT_WEBHOOK_SECRET)".into(),
        ));
    };
    if !signature_ok(secret, &headers, &body) {
        metrics::counter!("locker_payment_webhooks_refused_total").increment(1);
        return Err(ApiError::Unauthorized("bad or missing payment signature"));
    }
    let event: PaymentEvent = parse(&body)?;
    if event.event_id.is_empty() || event.event_id.len() > 200 {
        return Err(ApiError::field("event_id", "1 to 200 characters"));
    }
    if event.currency != state.wallets.currency().code {
        return Err(ApiError::field("currency", "not the gateway's currency"));
    }
    let minor = amount(&state, "amount", &event.amount)?;
    if !crate::account::exists(&state.storage, event.user_id).await? {
        return Err(ApiError::NotFound("user"));
    }
    if crate::wallet::store::payment_seen(&state.storage, &event.event_id).await? {
        return Ok(Json(PaymentReceipt {
            event_id: event.event_id,
            applied: false,
        }));
    }
    let reference = format!("payment {}", event.event_id);
    let event_id = event.event_id.clone();
    let applied = state
        .wallets
        .top_up_with(event.user_id, minor, &reference, move |work| {
            let event_id = event_id.clone();
            Box::pin(async move { Ok(work.record_payment(&event_id, minor).await?) })
        })
        .await;
    match applied {
        Ok(_) => Ok(Json(PaymentReceipt {
            event_id: event.event_id,
            applied: true,
        })),
        // The same event delivered twice at once: the other delivery applied it.
        Err(e) if e.violation() == Some(crate::storage::Violation::Unique) => {
            Ok(Json(PaymentReceipt {
                event_id: event.event_id,
                applied: false,
            }))
        }
        Err(e) => Err(e.into()),
    }
}
