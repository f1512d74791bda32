//! Who is calling: `Authorization: Bearer <token>`. [`Caller`] is any logged-in account;
//! [`Operator`] any operator, and [`DoorServicer`], [`Manager`], [`Treasurer`], [`Revoker`] and
//! [`AccountAdmin`] an operator whose role may do that (403 for others, audited). No or bad token: 401 with `WWW-Authenticate`.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts as RequestParts;

use super::ApiState;
use super::error::ApiError;
use crate::account::{Capability, User};

/// The logged-in account making the request.
#[derive(Debug, Clone)]
pub struct Caller(pub User);

/// The bearer token of the request, as sent.
pub fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
}

impl FromRequestParts<ApiState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut RequestParts,
        state: &ApiState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(&parts.headers).ok_or(ApiError::Unauthorized(
            "send a bearer token: Authorization: Bearer <token>",
        ))?;
        match state.accounts.authenticate(token).await? {
            Some(user) => {
                state.limits.check_user(user.id)?;
                if let Some(fleet) = &state.fleet_limits {
                    fleet.check_user(user.id).await?;
                }
                Ok(Caller(user))
            }
            None => Err(ApiError::Unauthorized(
                "the token is not valid or has expired",
            )),
        }
    }
}

/// An operator whose role may do `capability`; else 403 `forbidden`, and the refused attempt is
/// audited.
async fn operator_who_may(
    parts: &mut RequestParts,
    state: &ApiState,
    capability: Capability,
) -> Result<User, ApiError> {
    let Caller(user) = Caller::from_request_parts(parts, state).await?;
    if user.role.may(capability) {
        return Ok(user);
    }
    // A refused attempt at an operator action is audited too.
    let route = parts
        .extensions
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| parts.uri.path().to_owned(), |p| p.as_str().to_owned());
    let action = format!("{} {route}", parts.method);
    let target = parts.uri.path().to_owned();
    if let Err(e) = crate::audit::record(
        &state.storage,
        Some(&user),
        &action,
        Some(&target),
        crate::audit::Outcome::Refused,
        serde_json::json!({ "error": "forbidden", "role": user.role.as_str() }),
    )
    .await
    {
        metrics::counter!("locker_audit_write_failures_total").increment(1);
        tracing::error!(error = %e, %action, "cannot write the audit log");
    }
    Err(ApiError::Forbidden)
}

/// Extractors for operators by what they may do ([`Capability`]): each is the user behind the
/// request once their role allows it.
macro_rules! operators {
    ($($(#[$doc:meta])* $name:ident => $capability:expr;)*) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $name(pub User);

        impl FromRequestParts<ApiState> for $name {
            type Rejection = ApiError;

            async fn from_request_parts(
                parts: &mut RequestParts,
                state: &ApiState,
            ) -> Result<Self, Self::Rejection> {
                operator_who_may(parts, state, $capability).await.map($name)
            }
        }
    )*};
}

operators! {
    /// Any operator (viewer and up): reads the fleet, the books and the audit log.
    Operator => Capability::Read;
    /// A technician, support or admin: maintenance unlocks and door service.
    DoorServicer => Capability::DoorService;
    /// Support or an admin: lockers, plans, products and stock, customers' rentals.
    Manager => Capability::Manage;
    /// An admin: top-ups and refunds.
    Treasurer => Capability::Money;
    /// An admin: revokes a locker's credentials.
    Revoker => Capability::Revoke;
    /// An admin: operator accounts and their roles.
    AccountAdmin => Capability::Accounts;
}
