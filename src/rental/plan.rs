//! Price plans: the terms of renting a door of a size class. One active plan per size class; a
//! new plan for a class replaces the old one for new rentals (running rentals keep the terms they
//! copied at their start).

use uuid::Uuid;

use super::Terms;
use crate::storage::{Storage, in_work, on_pool};

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

/// A plan row as both backends return it.
#[derive(sqlx::FromRow)]
struct PlanRow {
    id: Uuid,
    name: String,
    currency: String,
    size_class: String,
    deposit: i64,
    free_minutes: i32,
    unit_minutes: i32,
    price_per_unit: i64,
    cap_per_24h: i64,
    max_minutes: i32,
    overdue_price_per_unit: i64,
}

impl TryFrom<PlanRow> for Plan {
    type Error = sqlx::Error;

    fn try_from(row: PlanRow) -> Result<Self, sqlx::Error> {
        let minutes = |n: i32| u32::try_from(n).map_err(|e| sqlx::Error::Decode(Box::new(e)));
        Ok(Plan {
            id: row.id,
            name: row.name,
            currency: row.currency,
            size_class: row.size_class,
            terms: Terms {
                deposit: row.deposit,
                free_minutes: minutes(row.free_minutes)?,
                unit_minutes: minutes(row.unit_minutes)?,
                price_per_unit: row.price_per_unit,
                cap_per_24h: row.cap_per_24h,
                max_minutes: minutes(row.max_minutes)?,
                overdue_price_per_unit: row.overdue_price_per_unit,
            },
        })
    }
}

const INSERT: &str =
    "INSERT INTO price_plans (id, name, currency, size_class, deposit, free_minutes,
         unit_minutes, price_per_unit, cap_per_24h, max_minutes, overdue_price_per_unit)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
     RETURNING id, name, currency, size_class, deposit, free_minutes, unit_minutes,
         price_per_unit, cap_per_24h, max_minutes, overdue_price_per_unit";
const ACTIVE: &str = "SELECT id, name, currency, size_class, deposit, free_minutes, unit_minutes,
         price_per_unit, cap_per_24h, max_minutes, overdue_price_per_unit
     FROM price_plans WHERE active ORDER BY size_class";
const FOR_SIZE: &str = "SELECT id, name, currency, size_class, deposit, free_minutes, unit_minutes,
         price_per_unit, cap_per_24h, max_minutes, overdue_price_per_unit
     FROM price_plans WHERE active AND size_class = $1";

/// Makes `new` the active plan of its size class (the previous one stops applying to new
/// rentals), in one unit of work.
pub async fn publish(storage: &Storage, new: &Plan) -> Result<Plan, sqlx::Error> {
    let mut work = storage.begin().await?;
    let t = &new.terms;
    let to_i32 = |m: u32| i32::try_from(m).unwrap_or(i32::MAX);
    let row: PlanRow = in_work!(&mut work, |conn| {
        sqlx::query("UPDATE price_plans SET active = false WHERE size_class = $1 AND active")
            .bind(&new.size_class)
            .execute(&mut *conn)
            .await?;
        sqlx::query_as(INSERT)
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
            .fetch_one(conn)
            .await?
    });
    work.commit().await?;
    row.try_into()
}

/// The active plans, by size class.
pub async fn active(storage: &Storage) -> Result<Vec<Plan>, sqlx::Error> {
    let rows: Vec<PlanRow> = on_pool!(storage, |pool| sqlx::query_as(ACTIVE)
        .fetch_all(pool)
        .await?);
    rows.into_iter().map(Plan::try_from).collect()
}

/// The active plan for a size class.
pub async fn for_size(storage: &Storage, size_class: &str) -> Result<Option<Plan>, sqlx::Error> {
    let row: Option<PlanRow> = on_pool!(storage, |pool| {
        sqlx::query_as(FOR_SIZE)
            .bind(size_class)
            .fetch_optional(pool)
            .await?
    });
    row.map(Plan::try_from).transpose()
}

/// The cache key of a size class's active plan (invalidated when a plan is published).
pub fn cache_key(size_class: &str) -> String {
    format!("plan:size:{size_class}")
}
