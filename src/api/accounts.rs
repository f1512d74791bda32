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
use uuid::Uuid;

/// A new account. Only these fields: anything else (a `role`, an `id`) is refused.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    /// The login.
    #[schema(min_length = 3, max_length = 254)]
    pub email: String,
    /// 10 to 128 characters.
    #[schema(min_length = 10, max_length = 128)]
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

/// Logs out: the caller's token works no more.
#[utoipa::path(delete, path = "/v1/sessions/current", tag = "accounts", security(("bearer" = [])),
    responses(
        (status = 204, description = "Logged out"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn log_out(
    State(state): State<ApiState>,
    _caller: Caller,
    headers: axum::http::HeaderMap,
) -> Result<StatusCode, ApiError> {
    if let Some(token) = super::auth::bearer(&headers) {
        state.accounts.revoke_token(token).await?;
    }
    Ok(StatusCode::NO_CONTENT)
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

/// Which accounts to find.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FindUsers {
    /// Part of the email, any case (1 to 254 characters).
    #[param(min_length = 1, max_length = 254)]
    pub email: String,
    /// The `next` of the previous page.
    pub after: Option<String>,
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
}

/// A page of accounts, by email.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct UserPage {
    /// The accounts.
    pub items: Vec<User>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next: Option<String>,
}

/// Finds accounts by email, for operators (a top-up needs the user's id).
#[utoipa::path(get, path = "/v1/users", tag = "accounts", security(("bearer" = [])),
    params(FindUsers),
    responses(
        (status = 200, description = "Accounts whose email contains the text", body = UserPage),
        (status = 400, description = "A query parameter that does not parse", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an operator", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An empty search, or a page size out of range", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn find(
    State(state): State<ApiState>,
    _operator: super::auth::Operator,
    super::json::Query(query): super::json::Query<FindUsers>,
) -> Result<Json<UserPage>, ApiError> {
    let limit = super::json::page_size(query.limit)?;
    let text = query.email.trim();
    if text.is_empty() || text.chars().count() > 254 {
        return Err(ApiError::field("email", "1 to 254 characters"));
    }
    let users = state
        .accounts
        .search(text, query.after.as_deref(), limit)
        .await?;
    let next = super::json::next_page(&users, limit, |u| u.email.clone());
    Ok(Json(UserPage { items: users, next }))
}

/// A password change.
#[derive(Debug, serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    /// The password now.
    #[schema(max_length = 128)]
    pub current_password: String,
    /// The new password (10 to 128 characters).
    #[schema(min_length = 10, max_length = 128)]
    pub new_password: String,
}

/// Changes the caller's password; every other session of theirs ends.
#[utoipa::path(put, path = "/v1/me/password", tag = "accounts", security(("bearer" = [])),
    request_body = PasswordChange,
    responses(
        (status = 204, description = "Changed; other sessions ended"),
        (status = 422, description = "The current password is wrong, or the new one breaks the rules", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn change_password(
    State(state): State<ApiState>,
    Caller(user): Caller,
    headers: axum::http::HeaderMap,
    Json(body): Json<PasswordChange>,
) -> Result<StatusCode, ApiError> {
    let keep = super::auth::bearer(&headers).unwrap_or_default();
    state
        .accounts
        .change_password(&user, &body.current_password, &body.new_password, keep)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes the caller's account: the email and password are erased and every session ends; the
/// wallet's ledger is kept (the books). Refused while a rental runs or an order waits for its door.
#[utoipa::path(delete, path = "/v1/me", tag = "accounts", security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 409, description = "`account_busy`: a rental runs or an order waits for its door", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete_me(
    State(state): State<ApiState>,
    Caller(user): Caller,
) -> Result<StatusCode, ApiError> {
    for running in ["pending", "active", "ending"] {
        if !state
            .rentals
            .of_user(user.id, Some(running), None, 1)
            .await?
            .is_empty()
        {
            return Err(ApiError::Conflict {
                code: "account_busy",
                detail: "a rental is running: end it first".into(),
            });
        }
    }
    if !state
        .orders
        .of_user(user.id, Some("paid"), None, 1)
        .await?
        .is_empty()
    {
        return Err(ApiError::Conflict {
            code: "account_busy",
            detail: "an order waits for its door".into(),
        });
    }
    state.accounts.erase(user.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// An operator's new role.
#[derive(Debug, serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleChange {
    /// `admin`, `support`, `technician` or `viewer`.
    pub role: crate::account::Role,
}

/// Changes an operator account's role (customers' accounts are not operators'); an admin cannot
/// change their own, so a fleet always keeps one. Audited as `user.role`.
#[utoipa::path(put, path = "/v1/users/{id}/role", tag = "accounts", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The operator account")),
    request_body = RoleChange,
    responses(
        (status = 200, description = "The account with its new role", body = User),
        (status = 404, description = "`not_found`: no operator account has this id", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`own_role`: an admin cannot change their own role", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn set_role(
    State(state): State<ApiState>,
    super::auth::AccountAdmin(admin): super::auth::AccountAdmin,
    super::json::Path(id): super::json::Path<Uuid>,
    Json(body): Json<RoleChange>,
) -> Result<Json<User>, ApiError> {
    let detail = serde_json::json!({ "role": body.role.as_str() });
    let result = async {
        if id == admin.id {
            return Err(ApiError::Conflict {
                code: "own_role",
                detail: "an admin cannot change their own role: ask another admin".into(),
            });
        }
        state
            .accounts
            .set_operator_role(id, body.role)
            .await?
            .map(Json)
            .ok_or(ApiError::NotFound("operator account"))
    }
    .await;
    super::audit::audited(
        &state,
        &admin,
        ("user.role", &id.to_string()),
        detail,
        result,
    )
    .await
}
