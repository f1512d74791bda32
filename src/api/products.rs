//! `/v1/products` and what lockers hold: operators keep the catalog and say which door holds
//! what; customers see the products on sale and a locker's availability (read through the cache).

use axum::extract::State;

use super::json::Path;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use super::amount::Amount;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::ApiState;
use super::auth::{Caller, Manager, Operator};
use super::error::{ApiError, Problem};
use super::json::{Json, Query};
use crate::order::{Product, StockLine};

/// A product to add.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProduct {
    /// The operator's code (letters, digits, `.`, `_`, `-`; 1 to 64), unique.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub sku: String,
    /// What customers see (1 to 200 characters).
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// The price, as a string.
    pub price: Amount,
}

/// Changes to a product; absent fields stay as they are. Paid orders keep their prices.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductChange {
    /// A new name.
    pub name: Option<String>,
    /// A new price, as a string.
    pub price: Option<Amount>,
    /// `false` withdraws it from sale.
    pub active: Option<bool>,
}

/// A product.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProductView {
    /// Its id.
    pub id: Uuid,
    /// The operator's code.
    pub sku: String,
    /// Its name.
    pub name: String,
    /// Its price.
    #[schema(value_type = String)]
    pub price: Decimal,
    /// On sale.
    pub active: bool,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// Which products to list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ProductFilter {
    /// Also withdrawn products (operators only).
    #[serde(default)]
    pub all: bool,
}

/// What one door is to hold (replacing what it held).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DoorStock {
    /// Products and quantities (0 to 100,000 each; an empty list empties the door).
    pub items: Vec<StockItem>,
}

/// A product and how many.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StockItem {
    /// The product.
    pub product_id: Uuid,
    /// How many.
    pub qty: i32,
}

/// How many of a product a door holds.
#[derive(Debug, Serialize, ToSchema)]
pub struct StockView {
    /// The door.
    pub door: i32,
    /// The product.
    pub product_id: Uuid,
    /// How many.
    pub qty: i32,
}

/// A product on offer at a locker.
#[derive(Debug, Serialize, ToSchema)]
pub struct OfferView {
    /// The product.
    pub product_id: Uuid,
    /// Its name.
    pub name: String,
    /// Its price.
    #[schema(value_type = String)]
    pub price: Decimal,
    /// How many behind usable doors.
    pub in_stock: i64,
    /// The most one order can buy (an order is served from one door).
    pub most_per_order: i32,
}

/// What a locker has free. May be a few seconds old: a rental or an order never relies on it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AvailabilityView {
    /// The locker.
    pub device_id: String,
    /// Free doors for rent by size class.
    pub doors_free: BTreeMap<String, i64>,
    /// Products in stock.
    pub products: Vec<OfferView>,
}

fn view(state: &ApiState, p: Product) -> ProductView {
    ProductView {
        id: p.id,
        sku: p.sku,
        name: p.name,
        price: state.wallets.currency().from_minor(p.price),
        active: p.active,
        updated_at: p.updated_at,
    }
}

fn stock_view(lines: Vec<StockLine>) -> Vec<StockView> {
    lines
        .into_iter()
        .map(|l| StockView {
            door: l.door,
            product_id: l.product_id,
            qty: l.qty,
        })
        .collect()
}

fn price(state: &ApiState, amount: &Amount) -> Result<i64, ApiError> {
    amount.checked(state.wallets.currency(), "price", 0)
}

fn check_name(name: &str) -> Result<(), ApiError> {
    if (1..=200).contains(&name.chars().count()) {
        Ok(())
    } else {
        Err(ApiError::field("name", "1 to 200 characters"))
    }
}

/// Adds a product to the catalog.
#[utoipa::path(post, path = "/v1/products", tag = "products", security(("bearer" = [])),
    request_body = NewProduct,
    responses(
        (status = 201, description = "Added", body = ProductView),
        (status = 403, description = "Not an operator", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The SKU exists", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create(
    State(state): State<ApiState>,
    Manager(operator): Manager,
    Json(body): Json<NewProduct>,
) -> Result<(StatusCode, Json<ProductView>), ApiError> {
    let result = async {
        let minor = price(&state, &body.price)?;
        check_name(&body.name)?;
        let valid_sku = (1..=64).contains(&body.sku.len())
            && body
                .sku
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !valid_sku {
            return Err(ApiError::field(
                "sku",
                "1 to 64 letters, digits, '.', '_' or '-'",
            ));
        }
        let product = state.catalog.create(&body.sku, &body.name, minor).await?;
        Ok((StatusCode::CREATED, Json(view(&state, product))))
    }
    .await;
    let detail = serde_json::json!({ "name": body.name, "price": body.price.to_string() });
    super::audit::audited(
        &state,
        &operator,
        ("product.create", &body.sku),
        detail,
        result,
    )
    .await
}

/// Changes a product's name or price, or withdraws it from sale.
#[utoipa::path(patch, path = "/v1/products/{id}", tag = "products", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The product")),
    request_body = ProductChange,
    responses(
        (status = 200, description = "Changed", body = ProductView),
        (status = 403, description = "Not an operator", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, or no such product", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn update(
    State(state): State<ApiState>,
    Manager(operator): Manager,
    Path(id): Path<Uuid>,
    Json(body): Json<ProductChange>,
) -> Result<Json<ProductView>, ApiError> {
    let result = async {
        let minor = body.price.as_ref().map(|p| price(&state, p)).transpose()?;
        if let Some(name) = &body.name {
            check_name(name)?;
        }
        let product = state
            .catalog
            .update(id, body.name.as_deref(), minor, body.active)
            .await?;
        Ok(Json(view(&state, product)))
    }
    .await;
    let detail = serde_json::json!({
        "name": body.name, "price": body.price.as_ref().map(|p| p.to_string()), "active": body.active,
    });
    let target = id.to_string();
    super::audit::audited(
        &state,
        &operator,
        ("product.update", &target),
        detail,
        result,
    )
    .await
}

/// The products on sale (operators: `all=true` adds withdrawn ones).
#[utoipa::path(get, path = "/v1/products", tag = "products", security(("bearer" = [])),
    params(ProductFilter),
    responses(
        (status = 200, description = "The products", body = Vec<ProductView>),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`all` asked for by a customer", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(
    State(state): State<ApiState>,
    Caller(user): Caller,
    Query(filter): Query<ProductFilter>,
) -> Result<Json<Vec<ProductView>>, ApiError> {
    if filter.all && !user.role.is_operator() {
        return Err(ApiError::Forbidden);
    }
    let products = state.catalog.list(filter.all).await?;
    Ok(Json(
        products.into_iter().map(|p| view(&state, p)).collect(),
    ))
}

/// Sets what one door of a locker holds (replacing what it held). Refused while the door is
/// rented or an order waits for it.
#[utoipa::path(put, path = "/v1/devices/{id}/doors/{door}/stock", tag = "products", security(("bearer" = [])),
    params(("id" = String, Path, description = "The locker"), ("door" = i32, Path, description = "The door")),
    request_body = DoorStock,
    responses(
        (status = 200, description = "What the door holds now", body = Vec<StockView>),
        (status = 403, description = "Not an operator", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such locker", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The door is rented, or an order waits for it", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid items, or a door the locker does not have (`no_such_door`)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn set_stock(
    State(state): State<ApiState>,
    Manager(operator): Manager,
    Path((device, door)): Path<(String, i32)>,
    Json(body): Json<DoorStock>,
) -> Result<Json<Vec<StockView>>, ApiError> {
    let result = async {
        if body.items.len() > 256 {
            return Err(ApiError::field("items", "at most 256 products in one door"));
        }
        if let Some(i) = body
            .items
            .iter()
            .position(|l| !(0..=100_000).contains(&l.qty))
        {
            return Err(ApiError::field(&format!("items[{i}].qty"), "0 to 100,000"));
        }
        let lines: Vec<(Uuid, i32)> = body.items.iter().map(|l| (l.product_id, l.qty)).collect();
        let stock = state.catalog.set_door_stock(&device, door, &lines).await?;
        Ok(Json(stock_view(stock)))
    }
    .await;
    let target = format!("{device}/{door}");
    let detail = serde_json::json!({ "items": body.items });
    super::audit::audited(&state, &operator, ("stock.set", &target), detail, result).await
}

/// What every door of a locker holds.
#[utoipa::path(get, path = "/v1/devices/{id}/stock", tag = "products", security(("bearer" = [])),
    params(("id" = String, Path, description = "The locker")),
    responses(
        (status = 200, description = "Stock by door", body = Vec<StockView>),
        (status = 403, description = "Not an operator", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn stock(
    State(state): State<ApiState>,
    _operator: Operator,
    Path(device): Path<String>,
) -> Result<Json<Vec<StockView>>, ApiError> {
    let stock = state.catalog.stock(&device, None).await?;
    Ok(Json(stock_view(stock)))
}

/// What a locker has free: doors for rent by size, products in stock. Read through the cache (a
/// few seconds old at most).
#[utoipa::path(get, path = "/v1/devices/{id}/availability", tag = "products", security(("bearer" = [])),
    params(("id" = String, Path, description = "The locker")),
    responses(
        (status = 200, description = "What is free", body = AvailabilityView),
        (status = 404, description = "No such locker", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn availability(
    State(state): State<ApiState>,
    _caller: Caller,
    Path(device): Path<String>,
) -> Result<Json<AvailabilityView>, ApiError> {
    let available = state
        .catalog
        .availability(&device)
        .await?
        .ok_or(ApiError::NotFound("locker"))?;
    let money = |minor| state.wallets.currency().from_minor(minor);
    Ok(Json(AvailabilityView {
        device_id: device,
        doors_free: available.doors_free,
        products: available
            .products
            .into_iter()
            .map(|o| OfferView {
                product_id: o.product_id,
                name: o.name,
                price: money(o.price),
                in_stock: o.in_stock,
                most_per_order: o.most_per_order,
            })
            .collect(),
    }))
}
