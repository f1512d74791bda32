//! `/v1/orders`: buy products from a vending locker. The charge, the items and the stock taken
//! are one transaction; if the door does not open, the order is cancelled and the money and the
//! stock go back (the problem document names the order).

use axum::extract::State;

use super::json::Path;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::ApiState;
use super::auth::Caller;
use super::error::{ApiError, Problem};
use super::json::Json;
use crate::order::{Order, OrderError, Wanted};

/// One line of an order to place.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Line {
    /// The product.
    pub product_id: Uuid,
    /// How many (1 to 99).
    pub qty: i32,
}

/// An order to place: products from one locker, served from one door.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrder {
    /// The locker.
    pub device_id: String,
    /// What to buy (1 to 32 lines, each product once).
    pub items: Vec<Line>,
}

/// A line of an order, as paid for.
#[derive(Debug, Serialize, ToSchema)]
pub struct ItemView {
    /// The product.
    pub product_id: Uuid,
    /// Its name when bought.
    pub name: String,
    /// How many.
    pub qty: i32,
    /// Its price when bought.
    #[schema(value_type = String)]
    pub unit_price: Decimal,
}

/// An order.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderView {
    /// Its id.
    pub id: Uuid,
    /// The locker.
    pub device_id: String,
    /// The door that holds the goods.
    pub door: i32,
    /// `paid` (waiting for the door), `completed` or `cancelled` (refunded).
    pub state: String,
    /// What was charged.
    #[schema(value_type = String)]
    pub total: Decimal,
    /// Given back by an operator so far.
    #[schema(value_type = String, example = "0.00")]
    pub refunded: Decimal,
    /// Why it was cancelled.
    pub cancel_reason: Option<String>,
    /// Things operators look at (`already_open`).
    pub flags: Vec<String>,
    /// When it was paid.
    pub created_at: DateTime<Utc>,
    /// When the door opened, or it was cancelled.
    pub settled_at: Option<DateTime<Utc>>,
    /// What was bought.
    pub items: Vec<ItemView>,
}

impl From<OrderError> for ApiError {
    fn from(e: OrderError) -> Self {
        use OrderError as E;
        let detail = match &e {
            E::NotOpened(id, _) => format!("{e} (order {id})"),
            _ => e.to_string(),
        };
        match e {
            E::LocksUnavailable(_) => Self::Unavailable(detail),
            E::Invalid(_) => Self::Unprocessable {
                code: "invalid_order",
                detail,
            },
            E::Debt => Self::PaymentRequired {
                code: "unpaid_debt",
                detail,
            },
            E::UnknownDevice => Self::NotFound("locker"),
            E::UnknownProduct(_) => Self::Unprocessable {
                code: "unknown_product",
                detail,
            },
            E::Withdrawn(_) => Self::Unprocessable {
                code: "product_withdrawn",
                detail,
            },
            E::OutOfStock(_) => Self::Conflict {
                code: "out_of_stock",
                detail,
            },
            E::DoorBusy => Self::Conflict {
                code: "door_busy",
                detail,
            },
            E::InsufficientFunds => Self::PaymentRequired {
                code: "insufficient_funds",
                detail,
            },
            E::Busy => Self::Conflict {
                code: "wallet_busy",
                detail,
            },
            E::NotOpened(id, crate::unlock::DoorFailure::Timeout) => Self::OutcomeUnknown {
                detail,
                subject: Some(super::error::Subject {
                    kind: "order",
                    id,
                    state: "paid",
                }),
            },
            E::NotOpened(_, why) => super::rentals::door_failure(&why, detail),
            E::SkuTaken(_) => Self::Conflict {
                code: "sku_taken",
                detail,
            },
            E::NoSuchDoor => Self::Unprocessable {
                code: "no_such_door",
                detail,
            },
            E::DoorRented => Self::Conflict {
                code: "door_rented",
                detail,
            },
            E::NotFound => Self::NotFound("order"),
            E::NotRefundable(_) => Self::Unprocessable {
                code: "not_refundable",
                detail,
            },
            E::AlreadySettled => Self::Conflict {
                code: "order_settled",
                detail,
            },
            E::Unexpected(cause) => Self::unexpected(&cause),
        }
    }
}

/// The view of an order.
pub(super) fn view(state: &ApiState, o: Order) -> OrderView {
    let money = |minor| state.wallets.currency().from_minor(minor);
    OrderView {
        id: o.id,
        device_id: o.device_id,
        door: o.door,
        state: o.state.as_str().to_owned(),
        total: money(o.total),
        refunded: money(o.refunded),
        cancel_reason: o.cancel_reason,
        flags: o.flags,
        created_at: o.created_at,
        settled_at: o.settled_at,
        items: o
            .items
            .into_iter()
            .map(|i| ItemView {
                product_id: i.product_id,
                name: i.name,
                qty: i.qty,
                unit_price: money(i.unit_price),
            })
            .collect(),
    }
}

/// Buys products from a locker: charged from the wallet, taken from the stock of the one door
/// that holds them all, and that door opened. If it does not open, nothing is charged.
#[utoipa::path(post, path = "/v1/orders", tag = "orders", security(("bearer" = [])),
    request_body = NewOrder,
    responses(
        (status = 201, description = "Paid, and the door opened", body = OrderView),
        (status = 402, description = "Not enough money, or an unpaid debt", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such locker", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Out of stock, door busy, or the door jammed / the locker refused (cancelled and refunded)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not a valid order, an unknown or withdrawn product", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Locker offline, or door locks unavailable (refunded, or nothing charged)", body = Problem, content_type = "application/problem+json"),
        (status = 504, description = "`outcome_unknown`: the locker did not answer in time; the order stays `paid` (in `subject`) until the locker says whether the door opened: then it completes, or is cancelled and refunded", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn place(
    State(state): State<ApiState>,
    Caller(user): Caller,
    Json(body): Json<NewOrder>,
) -> Result<(StatusCode, Json<OrderView>), ApiError> {
    let wanted: Vec<Wanted> = body
        .items
        .iter()
        .map(|l| Wanted {
            product_id: l.product_id,
            qty: l.qty,
        })
        .collect();
    let order = state
        .orders
        .place(user.id, &body.device_id, &wanted)
        .await?;
    Ok((StatusCode::CREATED, Json(view(&state, order))))
}

/// One of the caller's orders (another user's is not found).
#[utoipa::path(get, path = "/v1/orders/{id}", tag = "orders", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The order")),
    responses(
        (status = 200, description = "The order", body = OrderView),
        (status = 404, description = "No such order of yours", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get(
    State(state): State<ApiState>,
    Caller(user): Caller,
    Path(id): Path<Uuid>,
) -> Result<Json<OrderView>, ApiError> {
    let order = state
        .orders
        .get(Some(user.id), id)
        .await?
        .ok_or(ApiError::NotFound("order"))?;
    Ok(Json(view(&state, order)))
}
