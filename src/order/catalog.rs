//! What lockers sell: products with a price, what each door holds, and a locker's availability
//! (free doors by size, products in stock) for apps to show. The product list and availability
//! are read through the cache and invalidated on every write that changes them; orders never
//! rely on the cache (they read stock and prices from PostgreSQL in their transaction).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::storage::{Storage, Violation, in_work, on_pool};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::OrderError;
use crate::cache::Cache;

/// How long a locker's availability may be cached (also bounds how stale it can be if an
/// invalidation is lost).
pub const AVAILABILITY_TTL: Duration = Duration::from_secs(5);

const PRODUCTS_KEY: &str = "products:active";

pub use crate::cache::availability_key;

/// A product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Product {
    /// Its id.
    pub id: Uuid,
    /// The operator's code for it.
    pub sku: String,
    /// What customers see.
    pub name: String,
    /// Price, minor units.
    pub price: i64,
    /// Sold (withdrawn products are not).
    pub active: bool,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// How many of a product a door holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockLine {
    /// The door.
    pub door: i32,
    /// The product.
    pub product_id: Uuid,
    /// How many.
    pub qty: i32,
}

/// A product on offer at a locker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Offered {
    /// The product.
    pub product_id: Uuid,
    /// Its name.
    pub name: String,
    /// Its price, minor units.
    pub price: i64,
    /// How many behind usable doors.
    pub in_stock: i64,
    /// The most one order can buy (one order is served from one door).
    pub most_per_order: i32,
}

/// What a locker has free, for apps to show (never relied on by a rental or an order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Availability {
    /// Free doors for rent, by size class.
    pub doors_free: BTreeMap<String, i64>,
    /// Products in stock.
    pub products: Vec<Offered>,
}

/// Products, stock, availability.
#[derive(Debug, Clone)]
pub struct Catalog {
    storage: Storage,
    products: Cache,
    availability: Cache,
}

/// Why writing a product failed, as the catalog says it.
fn product_error(e: sqlx::Error, sku: Option<&str>) -> OrderError {
    match crate::storage::violation(&e) {
        Some(Violation::Unique) => OrderError::SkuTaken(sku.unwrap_or_default().to_owned()),
        Some(Violation::Check) => OrderError::Invalid(format!("not a valid product: {e}")),
        None => e.into(),
    }
}

impl Catalog {
    /// The catalog over `storage` (a PostgreSQL pool converts into one), cached in `cache`.
    pub fn new(storage: impl Into<Storage>, cache: Cache) -> Self {
        Self {
            storage: storage.into(),
            availability: cache.with_ttl(AVAILABILITY_TTL),
            products: cache,
        }
    }

    /// Adds a product.
    pub async fn create(&self, sku: &str, name: &str, price: i64) -> Result<Product, OrderError> {
        const CREATE: &str = "INSERT INTO products (id, sku, name, price, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $5) RETURNING id, sku, name, price, active, updated_at";
        let now = Utc::now();
        let created: Result<Product, sqlx::Error> = on_pool!(&self.storage, |pool| {
            sqlx::query_as(CREATE)
                .bind(Uuid::now_v7())
                .bind(sku)
                .bind(name)
                .bind(price)
                .bind(now)
                .fetch_one(pool)
                .await
        });
        let product = created.map_err(|e| product_error(e, Some(sku)))?;
        self.products.invalidate(PRODUCTS_KEY).await;
        Ok(product)
    }

    /// Changes a product's name, price or whether it is sold; orders already paid keep theirs.
    pub async fn update(
        &self,
        id: Uuid,
        name: Option<&str>,
        price: Option<i64>,
        active: Option<bool>,
    ) -> Result<Product, OrderError> {
        const UPDATE: &str = "UPDATE products SET name = coalesce($2, name),
                    price = coalesce($3, price), active = coalesce($4, active), updated_at = $5
             WHERE id = $1 RETURNING id, sku, name, price, active, updated_at";
        let now = Utc::now();
        let updated: Result<Option<Product>, sqlx::Error> = on_pool!(&self.storage, |pool| {
            sqlx::query_as(UPDATE)
                .bind(id)
                .bind(name)
                .bind(price)
                .bind(active)
                .bind(now)
                .fetch_optional(pool)
                .await
        });
        let product = updated
            .map_err(|e| product_error(e, None))?
            .ok_or(OrderError::UnknownProduct(id))?;
        self.products.invalidate(PRODUCTS_KEY).await;
        Ok(product)
    }

    /// The products on sale (cached), or every product.
    pub async fn list(&self, with_withdrawn: bool) -> Result<Vec<Product>, OrderError> {
        const LIST: &str = "SELECT id, sku, name, price, active, updated_at FROM products
             WHERE $1 OR active ORDER BY name, id LIMIT 1000";
        let load = |all: bool| async move {
            let products: Vec<Product> = on_pool!(&self.storage, |pool| {
                sqlx::query_as(LIST).bind(all).fetch_all(pool).await?
            });
            Ok::<_, OrderError>(products)
        };
        if with_withdrawn {
            load(true).await
        } else {
            self.products
                .get_or_load(PRODUCTS_KEY, || load(false))
                .await
        }
    }

    /// Replaces what a door holds with `lines`. Refused while the door is rented or an order
    /// waits for it.
    pub async fn set_door_stock(
        &self,
        device: &str,
        door: i32,
        lines: &[(Uuid, i32)],
    ) -> Result<Vec<StockLine>, OrderError> {
        const CLEAR: &str = "DELETE FROM door_stock WHERE device_id = $1 AND door = $2";
        const LINE: &str = "INSERT INTO door_stock (device_id, door, product_id, qty, updated_at)
             VALUES ($1, $2, $3, $4, $5)";
        for (i, (product, qty)) in lines.iter().enumerate() {
            if *qty < 0 {
                return Err(OrderError::Invalid(format!(
                    "items[{i}].qty must not be negative"
                )));
            }
            if lines[..i].iter().any(|(p, _)| p == product) {
                return Err(OrderError::Invalid(format!(
                    "items[{i}]: product {product} is listed twice"
                )));
            }
        }
        let now = Utc::now();
        let mut work = self.storage.begin().await?;
        let found: Option<(bool, bool)> = in_work!(&mut work, |conn, dialect| {
            sqlx::query_as(dialect.pick(
                "SELECT EXISTS (SELECT 1 FROM rentals WHERE device_id = $1 AND door = $2
                                AND state IN ('pending', 'active', 'ending')),
                        EXISTS (SELECT 1 FROM orders WHERE device_id = $1 AND door = $2
                                AND state = 'paid')
                 FROM doors WHERE device_id = $1 AND door = $2 FOR UPDATE",
                "SELECT EXISTS (SELECT 1 FROM rentals WHERE device_id = $1 AND door = $2
                                AND state IN ('pending', 'active', 'ending')),
                        EXISTS (SELECT 1 FROM orders WHERE device_id = $1 AND door = $2
                                AND state = 'paid')
                 FROM doors WHERE device_id = $1 AND door = $2",
            ))
            .bind(device)
            .bind(door)
            .fetch_optional(conn)
            .await?
        });
        let Some((rented, waited_for)) = found else {
            drop(work);
            const KNOWN: &str = "SELECT count(*) FROM devices WHERE id = $1 AND revoked_at IS NULL";
            let known: i64 = on_pool!(&self.storage, |pool| sqlx::query_scalar(KNOWN)
                .bind(device)
                .fetch_one(pool)
                .await?);
            return Err(if known == 0 {
                OrderError::UnknownDevice
            } else {
                OrderError::NoSuchDoor
            });
        };
        if rented {
            return Err(OrderError::DoorRented);
        }
        if waited_for {
            return Err(OrderError::DoorBusy);
        }
        in_work!(&mut work, |conn| sqlx::query(CLEAR)
            .bind(device)
            .bind(door)
            .execute(conn)
            .await?
            .rows_affected());
        for (product, qty) in lines {
            let written: Result<u64, sqlx::Error> = in_work!(&mut work, |conn| {
                sqlx::query(LINE)
                    .bind(device)
                    .bind(door)
                    .bind(product)
                    .bind(qty)
                    .bind(now)
                    .execute(conn)
                    .await
                    .map(|done| done.rows_affected())
            });
            written.map_err(|e| match e {
                sqlx::Error::Database(d) if d.is_foreign_key_violation() => {
                    OrderError::Invalid("an item names no product".into())
                }
                other => other.into(),
            })?;
        }
        work.commit().await?;
        self.stock_changed(device).await;
        self.stock(device, Some(door)).await
    }

    /// What the locker's doors hold (one door's, with `door`).
    pub async fn stock(
        &self,
        device: &str,
        door: Option<i32>,
    ) -> Result<Vec<StockLine>, OrderError> {
        const STOCK: &str = "SELECT door, product_id, qty FROM door_stock
             WHERE device_id = $1 AND ($2 IS NULL OR door = $2) ORDER BY door, product_id";
        let rows: Vec<(i32, Uuid, i32)> = on_pool!(&self.storage, |pool| {
            sqlx::query_as(STOCK)
                .bind(device)
                .bind(door)
                .fetch_all(pool)
                .await?
        });
        Ok(rows
            .into_iter()
            .map(|(door, product_id, qty)| StockLine {
                door,
                product_id,
                qty,
            })
            .collect())
    }

    /// What the locker has free (cached for at most [`AVAILABILITY_TTL`], invalidated when its
    /// stock or its rentals change). `None` for no such locker.
    pub async fn availability(&self, device: &str) -> Result<Option<Availability>, OrderError> {
        const KNOWN: &str =
            "SELECT EXISTS (SELECT 1 FROM devices WHERE id = $1 AND revoked_at IS NULL)";
        const FREE: &str = "SELECT d.size_class, count(*) FROM doors d
             WHERE d.device_id = $1 AND NOT d.out_of_service AND NOT d.suspect
               AND d.sensor <> 'open'
               AND NOT EXISTS (SELECT 1 FROM door_stock s WHERE s.device_id = d.device_id
                               AND s.door = d.door AND s.qty > 0)
               AND NOT EXISTS (SELECT 1 FROM rentals r WHERE r.device_id = d.device_id
                   AND r.door = d.door AND r.state IN ('pending', 'active', 'ending'))
             GROUP BY d.size_class";
        const OFFERED: &str = "SELECT p.id AS product_id, p.name, p.price,
                    CAST(sum(s.qty) AS BIGINT) AS in_stock, max(s.qty) AS most_per_order
             FROM door_stock s JOIN products p ON p.id = s.product_id
             JOIN doors d ON d.device_id = s.device_id AND d.door = s.door
             WHERE s.device_id = $1 AND s.qty > 0 AND p.active
               AND NOT d.out_of_service AND NOT d.suspect
             GROUP BY p.id, p.name, p.price ORDER BY p.name, p.id";
        let load = || async {
            type Found = (Vec<(String, i64)>, Vec<Offered>);
            let found: Option<Found> = on_pool!(&self.storage, |pool| {
                let known: bool = sqlx::query_scalar(KNOWN)
                    .bind(device)
                    .fetch_one(pool)
                    .await?;
                if known {
                    Some((
                        sqlx::query_as(FREE).bind(device).fetch_all(pool).await?,
                        sqlx::query_as(OFFERED).bind(device).fetch_all(pool).await?,
                    ))
                } else {
                    None
                }
            });
            Ok::<_, OrderError>(found.map(|(doors_free, products)| Availability {
                doors_free: doors_free.into_iter().collect(),
                products,
            }))
        };
        self.availability
            .get_or_load(&availability_key(device), load)
            .await
    }

    /// Forgets the locker's cached availability after its stock or its doors changed.
    pub async fn stock_changed(&self, device: &str) {
        self.availability
            .invalidate(&availability_key(device))
            .await;
    }
}
