//! `/v1/rentals`: rent a door, see a rental. A failed unlock cancels the rental and charges
//! nothing; the problem document says why and names the rental.

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
use super::error::{ApiError, Problem, Subject};
use super::json::Json;
use crate::rental::{Rental, RentalError};

/// A rental to start: a locker, and a size or a door (else any free door with a plan).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRental {
    /// The locker.
    pub device_id: String,
    /// A door size class (`s`, `m`, `l`, ...; 1 to 16 characters, as a plan's).
    #[schema(min_length = 1, max_length = 16)]
    pub size: Option<String>,
    /// A particular door.
    pub door: Option<u16>,
}

/// A rental.
#[derive(Debug, Serialize, ToSchema)]
pub struct RentalView {
    /// Its id.
    pub id: Uuid,
    /// The locker.
    pub device_id: String,
    /// The door.
    pub door: i32,
    /// `pending`, `active`, `ending`, `ended` or `cancelled`.
    pub state: String,
    /// The deposit held at the start (after the end: see `bill` for what became of it).
    #[schema(value_type = String)]
    pub deposit_held: Decimal,
    /// The fee charged at the end.
    #[schema(value_type = Option<String>)]
    pub fee: Option<Decimal>,
    /// How much of the fee was refunded.
    #[schema(value_type = String)]
    pub refunded: Decimal,
    /// When the door opened at the start (billing starts).
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub ended_at: Option<DateTime<Utc>>,
    /// Why it was cancelled.
    pub cancel_reason: Option<String>,
    /// Things operators look at (`already_open`).
    pub flags: Vec<String>,
    /// When it was asked for.
    pub created_at: DateTime<Utc>,
    /// After the end: the fee, how it was made and where the deposit went.
    pub bill: Option<super::rental_bill::BillView>,
}

impl From<RentalError> for ApiError {
    fn from(e: RentalError) -> Self {
        use RentalError as E;
        let detail = match &e {
            E::NotStarted(id, crate::unlock::DoorFailure::Timeout) => {
                format!("{e} (rental {id} pending)")
            }
            E::NotStarted(id, _) => format!("{e} (rental {id} cancelled)"),
            _ => e.to_string(),
        };
        match e {
            E::LocksUnavailable(_) => Self::Unavailable(detail),
            E::TooManyActive(_) => Self::Conflict {
                code: "too_many_rentals",
                detail,
            },
            E::Debt => Self::PaymentRequired {
                code: "unpaid_debt",
                detail,
            },
            E::UnknownDevice => Self::NotFound("locker"),
            E::NoSuchDoor => Self::Unprocessable {
                code: "no_such_door",
                detail,
            },
            E::NoSuchSize => Self::Unprocessable {
                code: "no_such_size",
                detail,
            },
            E::NoPlan => Self::Unprocessable {
                code: "no_plan",
                detail,
            },
            E::NoFreeDoor => Self::Conflict {
                code: "no_free_door",
                detail,
            },
            E::InsufficientFunds => Self::PaymentRequired {
                code: "insufficient_funds",
                detail,
            },
            E::NotStarted(id, crate::unlock::DoorFailure::Timeout) => Self::OutcomeUnknown {
                detail,
                subject: Some(Subject {
                    kind: "rental",
                    id,
                    state: "pending",
                }),
            },
            E::OutcomeUnknown { id, state } => Self::OutcomeUnknown {
                detail,
                subject: Some(Subject {
                    kind: "rental",
                    id,
                    state: state.as_str(),
                }),
            },
            E::Busy => Self::Conflict {
                code: "wallet_busy",
                detail,
            },
            E::NotFound => Self::NotFound("rental"),
            E::AlreadySettled => Self::Conflict {
                code: "rental_settled",
                detail,
            },
            E::NotRefundable(_) => Self::Unprocessable {
                code: "not_refundable",
                detail,
            },
            E::NotActive(_) => Self::Conflict {
                code: "rental_not_active",
                detail,
            },
            E::DoorBusy => Self::Conflict {
                code: "door_busy",
                detail,
            },
            E::NotStarted(_, why) | E::NotOpened(_, why) => door_failure(&why, detail),
            E::Unexpected(cause) => Self::unexpected(&cause),
        }
    }
}

/// A door that did not open (for a rental or an order), as a problem: a jam or a refusal is a
/// conflict, an offline or overloaded gateway a 503, no answer a 504.
pub(super) fn door_failure(why: &crate::unlock::DoorFailure, detail: String) -> ApiError {
    use crate::unlock::DoorFailure as F;
    match why {
        F::Jammed => ApiError::Conflict {
            code: "door_jammed",
            detail,
        },
        F::Refused(_) => ApiError::Conflict {
            code: "refused_by_device",
            detail,
        },
        F::Offline => ApiError::DeviceUnavailable {
            code: "device_offline",
            detail,
        },
        F::Overloaded => ApiError::DeviceUnavailable {
            code: "overloaded",
            detail,
        },
        F::Timeout => ApiError::OutcomeUnknown {
            detail,
            subject: None,
        },
    }
}

/// The view of a rental.
pub(super) fn view(state: &ApiState, r: Rental) -> RentalView {
    let money = |minor| state.wallets.currency().from_minor(minor);
    let bill = super::rental_bill::bill(state.wallets.currency(), &r);
    RentalView {
        bill,
        id: r.id,
        device_id: r.device_id,
        door: r.door,
        state: r.state.as_str().to_owned(),
        deposit_held: money(r.deposit_held),
        fee: r.fee.map(money),
        refunded: money(r.refunded),
        started_at: r.started_at,
        ended_at: r.ended_at,
        cancel_reason: r.cancel_reason,
        flags: r.flags,
        created_at: r.created_at,
    }
}

/// Rents a door and opens it. The deposit of the door's plan is held from the wallet.
#[utoipa::path(post, path = "/v1/rentals", tag = "rentals", security(("bearer" = [])),
    request_body = NewRental,
    responses(
        (status = 201, description = "The door opened; the rental runs", body = RentalView),
        (status = 402, description = "Not enough money, or an unpaid debt", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such locker", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "No free door, too many rentals, or the door jammed / the locker refused (cancelled, nothing charged)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "No plan for the size, no such door (`no_such_door`) or no door of that size (`no_such_size`) on the locker", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Locker offline, or door locks unavailable (nothing charged)", body = Problem, content_type = "application/problem+json"),
        (status = 504, description = "`outcome_unknown`: the locker did not answer in time; the rental is `pending` (in `subject`) until the locker says whether the door opened: then it runs, or is cancelled with nothing charged", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn start(
    State(state): State<ApiState>,
    Caller(user): Caller,
    Json(body): Json<NewRental>,
) -> Result<(StatusCode, Json<RentalView>), ApiError> {
    if let Some(size) = &body.size {
        ApiError::check_length("size", size, 1, 16)?;
    }
    let rental = state
        .rentals
        .start(user.id, &body.device_id, body.size.as_deref(), body.door)
        .await?;
    Ok((StatusCode::CREATED, Json(view(&state, rental))))
}

/// One of the caller's rentals (another user's is not found).
#[utoipa::path(get, path = "/v1/rentals/{id}", tag = "rentals", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The rental")),
    responses(
        (status = 200, description = "The rental", body = RentalView),
        (status = 404, description = "No such rental of yours", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get(
    State(state): State<ApiState>,
    Caller(user): Caller,
    Path(id): Path<Uuid>,
) -> Result<Json<RentalView>, ApiError> {
    let rental = state
        .rentals
        .get(user.id, id)
        .await?
        .ok_or(ApiError::NotFound("rental"))?;
    Ok(Json(view(&state, rental)))
}

/// Opens the door of a running rental again (to add or take something); no charge.
#[utoipa::path(post, path = "/v1/rentals/{id}/open", tag = "rentals", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The rental")),
    responses(
        (status = 200, description = "The door opened", body = RentalView),
        (status = 404, description = "No such rental of yours", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not active, door busy, jammed or refused (the rental continues)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Locker offline (the rental continues)", body = Problem, content_type = "application/problem+json"),
        (status = 504, description = "`outcome_unknown`: the locker did not answer in time; whether the door opened is not known yet (the rental runs on)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn reopen(
    State(state): State<ApiState>,
    Caller(user): Caller,
    Path(id): Path<Uuid>,
) -> Result<Json<RentalView>, ApiError> {
    let rental = state.rentals.reopen(user.id, id).await?;
    Ok(Json(view(&state, rental)))
}

/// Ends a rental: the door opens for pickup, the fee is taken (from the hold, then the balance;
/// what is missing becomes a debt) and the rest released. Pickup is never refused over money.
#[utoipa::path(post, path = "/v1/rentals/{id}/end", tag = "rentals", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The rental")),
    responses(
        (status = 200, description = "Ended; the fee is in the answer", body = RentalView),
        (status = 404, description = "No such rental of yours", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not active, door busy, jammed or refused (the rental continues, nothing charged)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Locker offline (the rental continues, nothing charged)", body = Problem, content_type = "application/problem+json"),
        (status = 504, description = "`outcome_unknown`: the locker did not answer in time; the rental is `ending` (in `subject`) until the locker says whether the door opened: if it did, the rental ends as of that unlock; if not, it runs on and the wait is not billed", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn end(
    State(state): State<ApiState>,
    Caller(user): Caller,
    Path(id): Path<Uuid>,
) -> Result<Json<RentalView>, ApiError> {
    let rental = state.rentals.end(user.id, id).await?;
    Ok(Json(view(&state, rental)))
}
