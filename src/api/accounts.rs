//! `/v1/accounts` (register), `/v1/sessions` (log in), `/v1/me`.

use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;

use super::ApiState;
use super::auth::Caller;
use super::error::{ApiError, Problem};
use super::json::Json;
use crate::account::{Role, Session, User};
use axum::extract::State;

/// A new account. Only these fields: anything else (a `role`, an `id`) is refused.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    /// The login.
    pub email: String,
    /// 10 to 128 characters.
    pub password: String,
}

/// Email and password.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    /// The login.
    pub email: String,
    /// The password.
    pub password: String,
}

/// Register: makes a customer account (role `user`).
#[utoipa::path(post, path = "/v1/accounts", tag = "accounts", request_body = Registration,
    responses(
        (status = 201, description = "Made", body = User),
        (status = 409, description = "The email is taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn register(
    State(state): State<ApiState>,
    Json(body): Json<Registration>,
) -> Result<(StatusCode, Json<User>), ApiError> {
    let user = state
        .accounts
        .register(&body.email, &body.password, Role::User)
        .await?;
    Ok((StatusCode::CREATED, Json(user)))
}

/// Log in: a bearer token that expires.
#[utoipa::path(post, path = "/v1/sessions", tag = "accounts", request_body = Login,
    responses(
        (status = 200, description = "Logged in", body = Session),
        (status = 401, description = "Wrong email or password", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn log_in(
    State(state): State<ApiState>,
    Json(body): Json<Login>,
) -> Result<Json<Session>, ApiError> {
    Ok(Json(
        state.accounts.log_in(&body.email, &body.password).await?,
    ))
}

/// The calling account.
#[utoipa::path(get, path = "/v1/me", tag = "accounts", security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller", body = User),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn me(Caller(user): Caller) -> Json<User> {
    Json(user)
}
