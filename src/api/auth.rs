//! Who is calling: `Authorization: Bearer <token>`. [`Caller`] is any logged-in account;
//! [`Operator`] any operator, and [`DoorServicer`], [`Manager`], [`Treasurer`], [`Revoker`] and
//! [`AccountAdmin`] an operator whose role may do that (403 for others, audited). No or bad token: 401 with `WWW-Authenticate`.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts as RequestParts;

use super::ApiState;
use super::console::session::{CSRF_HEADER, SESSION_COOKIE, csrf_of, same};
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
        // A bearer token, or the console's session cookie (then a state-changing request must
        // carry the session's CSRF token).
        let (token, by_cookie) = match bearer(&parts.headers) {
            Some(token) => (token.to_owned(), false),
            None => match super::console::session::cookie(&parts.headers, SESSION_COOKIE) {
                Some(token) => (token.to_owned(), true),
                None => {
                    return Err(ApiError::Unauthorized(
                        "send a bearer token: Authorization: Bearer <token>",
                    ));
                }
            },
        };
        if by_cookie && !parts.method.is_safe() {
            let sent = parts
                .headers
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            if !same(sent, &csrf_of(&token)) {
                return Err(ApiError::CsrfFailed);
            }
        }
        let token = token.as_str();
        match state.accounts.authenticate(token).await? {
            // The console is for operators only.
            Some(user) if by_cookie && !user.role.is_operator() => Err(ApiError::Unauthorized(
                "the console is for operator accounts",
            )),
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
    /// An admin: firmware images.
    FirmwareAdmin => Capability::Firmware;
}
