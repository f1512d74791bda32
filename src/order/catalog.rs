//! What lockers sell: products with a price, what each door holds, and a locker's availability
//! (free doors by size, products in stock) for apps to show. The product list and availability
//! are read through the cache and invalidated on every write that changes them; orders never
//! rely on the cache (they read stock and prices from PostgreSQL in their transaction).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgPool, Row};
use uuid::Uuid;

use super::OrderError;
use crate::cache::Cache;

/// How long a locker's availability may be cached (also bounds how stale it can be if an
/// invalidation is lost).
pub const AVAILABILITY_TTL: Duration = Duration::from_secs(5);

const PRODUCTS_KEY: &str = "products:active";

/// The cache key of a locker's availability.
pub fn availability_key(device: &str) -> String {
    format!("availability:{device}")
}

/// A product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    pool: PgPool,
    products: Cache,
    availability: Cache,
}

fn product(row: &sqlx::postgres::PgRow) -> Result<Product, sqlx::Error> {
    Ok(Product {
        id: row.try_get("id")?,
        sku: row.try_get("sku")?,
        name: row.try_get("name")?,
        price: row.try_get("price")?,
        active: row.try_get("active")?,
        updated_at: row.try_get("updated_at")?,
    })
}

const PRODUCT: &str = "id, sku, name, price, active, updated_at";

impl Catalog {
    /// The catalog over `pool`, cached in `cache`.
    pub fn new(pool: PgPool, cache: Cache) -> Self {
        Self {
            pool,
            availability: cache.with_ttl(AVAILABILITY_TTL),
            products: cache,
        }
    }

    /// Adds a product.
    pub async fn create(&self, sku: &str, name: &str, price: i64) -> Result<Product, OrderError> {
        let sql = format!(
            "INSERT INTO products (id, sku, name, price) VALUES ($1, $2, $3, $4) RETURNING {PRODUCT}"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(Uuid::now_v7())
            .bind(sku)
            .bind(name)
            .bind(price)
            .fetch_one(&self.pool)
            .await
            .map_err(|e| match e {
                sqlx::Error::Database(d) if d.is_unique_violation() => {
                    OrderError::SkuTaken(sku.to_owned())
                }
                sqlx::Error::Database(d) if d.is_check_violation() => {
                    OrderError::Invalid(format!("not a valid product: {}", d.message()))
                }
                other => other.into(),
            })?;
        self.products.invalidate(PRODUCTS_KEY).await;
        Ok(product(&row)?)
    }

    /// Changes a product's name, price or whether it is sold; orders already paid keep theirs.
    pub async fn update(
        &self,
        id: Uuid,
        name: Option<&str>,
        price: Option<i64>,
        active: Option<bool>,
    ) -> Result<Product, OrderError> {
        let sql = format!(
            "UPDATE products SET name = coalesce($2, name), price = coalesce($3, price),
                    active = coalesce($4, active), updated_at = now()
             WHERE id = $1 RETURNING {PRODUCT}"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .bind(name)
            .bind(price)
            .bind(active)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| match e {
                sqlx::Error::Database(d) if d.is_check_violation() => {
                    OrderError::Invalid(format!("not a valid product: {}", d.message()))
                }
                other => other.into(),
            })?
            .ok_or(OrderError::UnknownProduct(id))?;
        self.products.invalidate(PRODUCTS_KEY).await;
        Ok(product(&row)?)
    }

    /// The products on sale (cached), or every product.
    pub async fn list(&self, with_withdrawn: bool) -> Result<Vec<Product>, OrderError> {
        let load = |all: bool| async move {
            let sql = format!(
                "SELECT {PRODUCT} FROM products WHERE $1 OR active ORDER BY name, id LIMIT 1000"
            );
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(all)
                .fetch_all(&self.pool)
                .await?;
            rows.iter()
                .map(product)
                .collect::<Result<Vec<_>, _>>()
                .map_err(OrderError::from)
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
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(
            "SELECT EXISTS (SELECT 1 FROM rentals WHERE device_id = $1 AND door = $2
                            AND state IN ('pending', 'active', 'ending')) AS rented,
                    EXISTS (SELECT 1 FROM orders WHERE device_id = $1 AND door = $2
                            AND state = 'paid') AS waited_for
             FROM doors WHERE device_id = $1 AND door = $2 FOR UPDATE",
        )
        .bind(device)
        .bind(door)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(OrderError::NoSuchDoor)?;
        if row.try_get::<bool, _>("rented")? {
            return Err(OrderError::DoorRented);
        }
        if row.try_get::<bool, _>("waited_for")? {
            return Err(OrderError::DoorBusy);
        }
        let ids: Vec<Uuid> = lines.iter().map(|(p, _)| *p).collect();
        let qtys: Vec<i32> = lines.iter().map(|(_, q)| *q).collect();
        sqlx::query(
            "DELETE FROM door_stock WHERE device_id = $1 AND door = $2
               AND NOT product_id = ANY($3)",
        )
        .bind(device)
        .bind(door)
        .bind(&ids)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO door_stock (device_id, door, product_id, qty)
             SELECT $1, $2, * FROM unnest($3::uuid[], $4::int[])
             ON CONFLICT (device_id, door, product_id)
             DO UPDATE SET qty = EXCLUDED.qty, updated_at = now()",
        )
        .bind(device)
        .bind(door)
        .bind(&ids)
        .bind(&qtys)
        .execute(&mut *tx)
        .await
        .map_err(|e| match e {
            sqlx::Error::Database(d) if d.is_foreign_key_violation() => {
                OrderError::Invalid("an item names no product".into())
            }
            other => other.into(),
        })?;
        tx.commit().await?;
        self.stock_changed(device).await;
        self.stock(device, Some(door)).await
    }

    /// What the locker's doors hold (one door's, with `door`).
    pub async fn stock(
        &self,
        device: &str,
        door: Option<i32>,
    ) -> Result<Vec<StockLine>, OrderError> {
        let rows: Vec<(i32, Uuid, i32)> = sqlx::query_as(
            "SELECT door, product_id, qty FROM door_stock
             WHERE device_id = $1 AND ($2::int IS NULL OR door = $2) ORDER BY door, product_id",
        )
        .bind(device)
        .bind(door)
        .fetch_all(&self.pool)
        .await?;
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
        let load = || async {
            let known: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM devices WHERE id = $1 AND revoked_at IS NULL)",
            )
            .bind(device)
            .fetch_one(&self.pool)
            .await?;
            if !known {
                return Ok::<_, OrderError>(None);
            }
            let usable = "NOT d.out_of_service AND NOT d.suspect";
            let sql = format!(
                "SELECT d.size_class, count(*) FROM doors d
                 WHERE d.device_id = $1 AND {usable} AND d.sensor <> 'open'
                   AND NOT EXISTS (SELECT 1 FROM door_stock s WHERE s.device_id = d.device_id
                                   AND s.door = d.door AND s.qty > 0)
                   AND NOT EXISTS (SELECT 1 FROM rentals r WHERE r.device_id = d.device_id
                       AND r.door = d.door AND r.state IN ('pending', 'active', 'ending'))
                 GROUP BY d.size_class"
            );
            let doors_free: Vec<(String, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(device)
                .fetch_all(&self.pool)
                .await?;
            let sql = format!(
                "SELECT p.id, p.name, p.price, sum(s.qty)::bigint AS in_stock, max(s.qty) AS most
                 FROM door_stock s JOIN products p ON p.id = s.product_id
                 JOIN doors d ON d.device_id = s.device_id AND d.door = s.door
                 WHERE s.device_id = $1 AND s.qty > 0 AND p.active AND {usable}
                 GROUP BY p.id ORDER BY p.name, p.id"
            );
            let products = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(device)
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(|r| {
                    Ok(Offered {
                        product_id: r.try_get("id")?,
                        name: r.try_get("name")?,
                        price: r.try_get("price")?,
                        in_stock: r.try_get("in_stock")?,
                        most_per_order: r.try_get("most")?,
                    })
                })
                .collect::<Result<_, sqlx::Error>>()?;
            Ok(Some(Availability {
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
