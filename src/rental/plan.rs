//! Price plans: the terms of renting a door of a size class. One active plan per size class; a
//! new plan for a class replaces the old one for new rentals (running rentals keep the terms they
//! copied at their start).

use sqlx::{PgPool, Row};
use uuid::Uuid;

use super::Terms;

/// A stored plan.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Plan {
    /// Its id.
    pub id: Uuid,
    /// A name for people.
    pub name: String,
    /// ISO 4217 code of its amounts.
    pub currency: String,
    /// The door size class it applies to.
    pub size_class: String,
    /// Its terms, in minor units.
    pub terms: Terms,
}

const COLUMNS: &str = "id, name, currency, size_class, deposit, free_minutes, unit_minutes,
    price_per_unit, cap_per_24h, max_minutes, overdue_price_per_unit";

fn plan(row: &sqlx::postgres::PgRow) -> Result<Plan, sqlx::Error> {
    let minutes = |name: &str| -> Result<u32, sqlx::Error> {
        let n: i32 = row.try_get(name)?;
        u32::try_from(n).map_err(|e| sqlx::Error::Decode(Box::new(e)))
    };
    Ok(Plan {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        currency: row.try_get("currency")?,
        size_class: row.try_get("size_class")?,
        terms: Terms {
            deposit: row.try_get("deposit")?,
            free_minutes: minutes("free_minutes")?,
            unit_minutes: minutes("unit_minutes")?,
            price_per_unit: row.try_get("price_per_unit")?,
            cap_per_24h: row.try_get("cap_per_24h")?,
            max_minutes: minutes("max_minutes")?,
            overdue_price_per_unit: row.try_get("overdue_price_per_unit")?,
        },
    })
}

/// Makes `new` the active plan of its size class (the previous one stops applying to new
/// rentals), in one transaction.
pub async fn publish(pool: &PgPool, new: &Plan) -> Result<Plan, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("UPDATE price_plans SET active = false WHERE size_class = $1 AND active")
        .bind(&new.size_class)
        .execute(&mut *tx)
        .await?;
    let sql = format!(
        "INSERT INTO price_plans (id, name, currency, size_class, deposit, free_minutes,
             unit_minutes, price_per_unit, cap_per_24h, max_minutes, overdue_price_per_unit)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING {COLUMNS}"
    );
    let t = &new.terms;
    let to_i32 = |m: u32| i32::try_from(m).unwrap_or(i32::MAX);
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(new.id)
        .bind(&new.name)
        .bind(&new.currency)
        .bind(&new.size_class)
        .bind(t.deposit)
        .bind(to_i32(t.free_minutes))
        .bind(to_i32(t.unit_minutes))
        .bind(t.price_per_unit)
        .bind(t.cap_per_24h)
        .bind(to_i32(t.max_minutes))
        .bind(t.overdue_price_per_unit)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    plan(&row)
}

/// The active plans, by size class.
pub async fn active(pool: &PgPool) -> Result<Vec<Plan>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM price_plans WHERE active ORDER BY size_class");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(pool)
        .await?
        .iter()
        .map(plan)
        .collect()
}

/// The active plan for a size class.
pub async fn for_size(pool: &PgPool, size_class: &str) -> Result<Option<Plan>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM price_plans WHERE active AND size_class = $1");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(size_class)
        .fetch_optional(pool)
        .await?
        .as_ref()
        .map(plan)
        .transpose()
}

/// The cache key of a size class's active plan (invalidated when a plan is published).
pub fn cache_key(size_class: &str) -> String {
    format!("plan:size:{size_class}")
}
