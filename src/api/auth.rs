//! Who is calling: `Authorization: Bearer <token>`. [`Caller`] is any logged-in account;
//! [`Operator`] an admin (403 for others). No or bad token: 401 with `WWW-Authenticate`.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts as RequestParts;

use super::ApiState;
use super::error::ApiError;
use crate::account::{Role, User};

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

/// An operator (admin) making the request.
#[derive(Debug, Clone)]
pub struct Operator(pub User);

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

impl FromRequestParts<ApiState> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut RequestParts,
        state: &ApiState,
    ) -> Result<Self, Self::Rejection> {
        let Caller(user) = Caller::from_request_parts(parts, state).await?;
        if user.role == Role::Admin {
            return Ok(Operator(user));
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
            serde_json::json!({ "error": "forbidden" }),
        )
        .await
        {
            metrics::counter!("locker_audit_write_failures_total").increment(1);
            tracing::error!(error = %e, %action, "cannot write the audit log");
        }
        Err(ApiError::Forbidden)
    }
}
