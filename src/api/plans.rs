//! `/v1/plans`: price plans by door size class. Anyone logged in reads them; operators publish.

use axum::extract::State;
use axum::http::StatusCode;
use rust_decimal::Decimal;

use super::amount::Amount;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::ApiState;
use super::auth::{Caller, Manager};
use super::error::{ApiError, Problem};
use super::json::Json;
use crate::rental::Terms;
use crate::rental::plan::{self, Plan};

/// A plan to publish; it replaces the active plan of its size class for new rentals.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPlan {
    /// A name for people (1 to 64 characters).
    #[schema(min_length = 1, max_length = 64)]
    pub name: String,
    /// The door size class (`s`, `m`, `l`, ...; 1 to 16 characters).
    #[schema(min_length = 1, max_length = 16)]
    pub size_class: String,
    /// Held at the start.
    pub deposit: Amount,
    /// Free minutes at the start.
    pub free_minutes: u32,
    /// Billing unit, minutes (at least 1).
    pub unit_minutes: u32,
    /// Price of each started unit.
    pub price_per_unit: Amount,
    /// Most charged per 24 hours from the start.
    pub cap_per_24h: Amount,
    /// Minutes before the rental is overdue (at least 1).
    pub max_minutes: u32,
    /// Price of each started unit once overdue.
    pub overdue_price_per_unit: Amount,
}

/// A plan.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlanView {
    /// Its id.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// ISO 4217 code.
    pub currency: String,
    /// The door size class.
    pub size_class: String,
    /// Held at the start.
    #[schema(value_type = String)]
    pub deposit: Decimal,
    /// Free minutes at the start.
    pub free_minutes: u32,
    /// Billing unit, minutes.
    pub unit_minutes: u32,
    /// Price of each started unit.
    #[schema(value_type = String)]
    pub price_per_unit: Decimal,
    /// Most charged per 24 hours from the start.
    #[schema(value_type = String)]
    pub cap_per_24h: Decimal,
    /// Minutes before overdue.
    pub max_minutes: u32,
    /// Price of each started overdue unit.
    #[schema(value_type = String)]
    pub overdue_price_per_unit: Decimal,
}

fn view(state: &ApiState, plan: Plan) -> PlanView {
    let money = |minor| state.wallets.currency().from_minor(minor);
    PlanView {
        id: plan.id,
        name: plan.name,
        currency: plan.currency,
        size_class: plan.size_class,
        deposit: money(plan.terms.deposit),
        free_minutes: plan.terms.free_minutes,
        unit_minutes: plan.terms.unit_minutes,
        price_per_unit: money(plan.terms.price_per_unit),
        cap_per_24h: money(plan.terms.cap_per_24h),
        max_minutes: plan.terms.max_minutes,
        overdue_price_per_unit: money(plan.terms.overdue_price_per_unit),
    }
}

fn validate(state: &ApiState, body: &NewPlan) -> Result<Plan, ApiError> {
    let currency = state.wallets.currency();
    let mut amount_errors = Vec::new();
    let mut amount = |field: &str, value: &Amount| {
        value.minor(currency, field, 0).unwrap_or_else(|e| {
            amount_errors.push(e);
            0
        })
    };
    let terms = Terms {
        deposit: amount("deposit", &body.deposit),
        free_minutes: body.free_minutes,
        unit_minutes: body.unit_minutes,
        price_per_unit: amount("price_per_unit", &body.price_per_unit),
        cap_per_24h: amount("cap_per_24h", &body.cap_per_24h),
        max_minutes: body.max_minutes,
        overdue_price_per_unit: amount("overdue_price_per_unit", &body.overdue_price_per_unit),
    };
    let mut errors = Vec::new();
    if !(1..=64).contains(&body.name.chars().count()) {
        errors.push(("name".into(), "1 to 64 characters".into()));
    }
    if !(1..=16).contains(&body.size_class.len()) {
        errors.push(("size_class".into(), "1 to 16 characters".into()));
    }
    for (field, value) in [
        ("unit_minutes", body.unit_minutes),
        ("max_minutes", body.max_minutes),
    ] {
        if value == 0 || value > i32::MAX as u32 {
            errors.push((field.into(), "must be at least 1".into()));
        }
    }
    if body.free_minutes > i32::MAX as u32 {
        errors.push(("free_minutes".into(), "too large".into()));
    }
    let others = errors
        .into_iter()
        .map(|(field, message)| super::FieldError { field, message });
    if !amount_errors.is_empty() {
        // One document with every wrong field, coded by the amounts.
        return Err(ApiError::InvalidAmount(
            amount_errors.into_iter().chain(others).collect(),
        ));
    }
    let others: Vec<_> = others.collect();
    if !others.is_empty() {
        return Err(ApiError::Validation(others));
    }
    Ok(Plan {
        id: Uuid::now_v7(),
        name: body.name.clone(),
        currency: currency.code.clone(),
        size_class: body.size_class.clone(),
        terms,
    })
}

/// Publishes a plan for a size class.
#[utoipa::path(post, path = "/v1/plans", tag = "plans", security(("bearer" = [])),
    request_body = NewPlan,
    responses(
        (status = 201, description = "Published", body = PlanView),
        (status = 403, description = "Not an operator", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn publish(
    State(state): State<ApiState>,
    operator: Manager,
    Json(body): Json<NewPlan>,
) -> Result<(StatusCode, Json<PlanView>), ApiError> {
    let result: Result<_, ApiError> = async {
        let new = validate(&state, &body)?;
        let plan = plan::publish(&state.storage, &new).await?;
        state
            .cache
            .invalidate(&plan::cache_key(&plan.size_class))
            .await;
        Ok((StatusCode::CREATED, Json(view(&state, plan))))
    }
    .await;
    let detail = serde_json::json!({ "name": body.name });
    super::audit::audited(
        &state,
        &operator.0,
        ("plan.publish", &body.size_class),
        detail,
        result,
    )
    .await
}

/// The active plans, by size class.
#[utoipa::path(get, path = "/v1/plans", tag = "plans", security(("bearer" = [])),
    responses(
        (status = 200, description = "The active plans", body = Vec<PlanView>),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(
    State(state): State<ApiState>,
    _caller: Caller,
) -> Result<Json<Vec<PlanView>>, ApiError> {
    let plans = plan::active(&state.storage).await?;
    Ok(Json(plans.into_iter().map(|p| view(&state, p)).collect()))
}
