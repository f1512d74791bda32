//! Vending orders: a customer buys products held behind one door of a locker. The order, its
//! items with their prices as paid, each item's stock deduction (`qty >= wanted`, the whole order
//! fails if one item is short) and the wallet charge are one transaction; then the door opens.
//! A failed unlock gives the money and the stock back in one transaction; an unlock with no
//! answer is settled by the locker's report, like a rental's.

use chrono::{DateTime, Utc};
use firmware_protocol::DeviceId;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub mod catalog;
mod error;
mod insert;
mod list;
mod refund;
mod settle;
mod state;

pub use catalog::{Availability, Catalog, Product, StockLine};
pub use error::OrderError;
use insert::{NewOrder, insert_order};
pub use state::OrderState;

use crate::command::CommandService;
use crate::config::RentalSettings;
use crate::lock::DoorLocks;
use crate::storage::{Storage, on_pool};
use crate::unlock;
use crate::wallet::{Movement, WalletError, Wallets};

/// Most lines in one order.
pub const MAX_LINES: usize = 32;
/// Most of one product in one order.
pub const MAX_QTY: i32 = 99;

/// A product and how many of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wanted {
    /// The product.
    pub product_id: Uuid,
    /// How many.
    pub qty: i32,
}

/// One line of an order, as paid for.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct OrderItem {
    /// The product.
    pub product_id: Uuid,
    /// Its name when bought.
    pub name: String,
    /// How many.
    pub qty: i32,
    /// Its price when bought, minor units.
    pub unit_price: i64,
}

/// An order as its buyer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    /// Its id.
    pub id: Uuid,
    /// The buyer.
    pub user_id: Uuid,
    /// The locker.
    pub device_id: String,
    /// The door that holds the goods.
    pub door: i32,
    /// Paid (waiting for the door), completed or cancelled.
    pub state: OrderState,
    /// What was charged, minor units.
    pub total: i64,
    /// Given back by an operator so far (minor units).
    pub refunded: i64,
    /// Why it was cancelled.
    pub cancel_reason: Option<String>,
    /// For operators: `already_open`.
    pub flags: Vec<String>,
    /// When it was paid.
    pub created_at: DateTime<Utc>,
    /// When the door opened, or the order was cancelled.
    pub settled_at: Option<DateTime<Utc>>,
    /// What was bought.
    pub items: Vec<OrderItem>,
}

/// An order's row as both backends return it (PostgreSQL's `flags` array as JSON).
#[derive(sqlx::FromRow)]
struct OrderRow {
    id: Uuid,
    user_id: Uuid,
    device_id: String,
    door: i32,
    state: OrderState,
    total: i64,
    refunded: i64,
    cancel_reason: Option<String>,
    flags: sqlx::types::Json<Vec<String>>,
    created_at: DateTime<Utc>,
    settled_at: Option<DateTime<Utc>>,
}

/// A line priced for the transaction.
#[derive(Debug, Clone)]
struct Priced {
    product_id: Uuid,
    name: String,
    qty: i32,
    unit_price: i64,
}

/// Orders.
#[derive(Debug, Clone)]
pub struct Orders {
    storage: Storage,
    wallets: Wallets,
    commands: CommandService,
    locks: Option<DoorLocks>,
    settings: RentalSettings,
    catalog: Catalog,
}

/// Refuses an order that is not one: no lines, too many, a product twice, a quantity out of
/// range.
pub fn check(wanted: &[Wanted]) -> Result<(), OrderError> {
    if wanted.is_empty() {
        return Err(OrderError::Invalid(
            "an order needs at least one item".into(),
        ));
    }
    if wanted.len() > MAX_LINES {
        return Err(OrderError::Invalid(format!(
            "at most {MAX_LINES} items in one order"
        )));
    }
    for (i, line) in wanted.iter().enumerate() {
        if !(1..=MAX_QTY).contains(&line.qty) {
            return Err(OrderError::Invalid(format!(
                "items[{i}].qty must be between 1 and {MAX_QTY}"
            )));
        }
        if wanted[..i].iter().any(|w| w.product_id == line.product_id) {
            return Err(OrderError::Invalid(format!(
                "items[{i}]: product {} is listed twice",
                line.product_id
            )));
        }
    }
    Ok(())
}

impl Orders {
    /// Orders paid from `wallets`, doors opened through `commands` under `locks` (no locks: every
    /// order is refused), with the rentals' lock TTL and jam limit.
    pub fn new(
        storage: impl Into<Storage>,
        wallets: Wallets,
        commands: CommandService,
        locks: Option<DoorLocks>,
        settings: RentalSettings,
        catalog: Catalog,
    ) -> Self {
        Self {
            storage: storage.into(),
            wallets,
            commands,
            locks,
            settings,
            catalog,
        }
    }

    /// One of the user's orders (another user's is `None`); any order with `user` `None`.
    pub async fn get(&self, user: Option<Uuid>, id: Uuid) -> Result<Option<Order>, OrderError> {
        const ITEMS: &str = "SELECT product_id, name, qty, unit_price FROM order_items
             WHERE order_id = $1 ORDER BY name, product_id";
        let found: Option<(OrderRow, Vec<OrderItem>)> = on_pool!(&self.storage, |pool, dialect| {
            let row: Option<OrderRow> = sqlx::query_as(dialect.pick(
                "SELECT id, user_id, device_id, door, state, total, refunded, cancel_reason,
                        to_jsonb(flags) AS flags, created_at, settled_at
                 FROM orders WHERE id = $1 AND ($2 IS NULL OR user_id = $2)",
                "SELECT id, user_id, device_id, door, state, total, refunded, cancel_reason,
                        flags, created_at, settled_at
                 FROM orders WHERE id = $1 AND ($2 IS NULL OR user_id = $2)",
            ))
            .bind(id)
            .bind(user)
            .fetch_optional(pool)
            .await?;
            match row {
                None => None,
                Some(row) => Some((row, sqlx::query_as(ITEMS).bind(id).fetch_all(pool).await?)),
            }
        });
        Ok(found.map(|(row, items)| Order {
            id: row.id,
            user_id: row.user_id,
            device_id: row.device_id,
            door: row.door,
            state: row.state,
            total: row.total,
            refunded: row.refunded,
            cancel_reason: row.cancel_reason,
            flags: row.flags.0,
            created_at: row.created_at,
            settled_at: row.settled_at,
            items,
        }))
    }

    /// The doors of `device` that hold every line of `wanted` and no one rents or must check:
    /// those closed (free to open), and how many stand open (someone is taking their goods).
    async fn holders(
        &self,
        device: &str,
        wanted: &[Wanted],
    ) -> Result<(Vec<i32>, usize), OrderError> {
        const DOORS: &str = "SELECT d.door, d.sensor = 'open' FROM doors d
             WHERE d.device_id = $1 AND NOT d.out_of_service AND NOT d.suspect
               AND NOT EXISTS (SELECT 1 FROM rentals r WHERE r.device_id = d.device_id
                   AND r.door = d.door AND r.state IN ('pending', 'active', 'ending'))
             ORDER BY d.door";
        const STOCK: &str =
            "SELECT door, product_id, qty FROM door_stock WHERE device_id = $1 AND qty > 0";
        type Stock = Vec<(i32, Uuid, i32)>;
        let (doors, stock): (Vec<(i32, bool)>, Stock) = on_pool!(&self.storage, |pool| {
            let doors = sqlx::query_as(DOORS).bind(device).fetch_all(pool).await?;
            let stock = sqlx::query_as(STOCK).bind(device).fetch_all(pool).await?;
            (doors, stock)
        });
        let holds_all = |door: i32| {
            wanted.iter().all(|line| {
                stock.iter().any(|&(d, product, qty)| {
                    d == door && product == line.product_id && qty >= line.qty
                })
            })
        };
        let mut closed = Vec::new();
        let mut open = 0;
        for (door, is_open) in doors.into_iter().filter(|(door, _)| holds_all(*door)) {
            if is_open {
                open += 1;
            } else {
                closed.push(door);
            }
        }
        Ok((closed, open))
    }

    /// Buys `wanted` from `device` for `user`: charged, taken from stock, and the door that holds
    /// all of it opened. If the door does not open, the money and the stock go back.
    pub async fn place(
        &self,
        user: Uuid,
        device: &str,
        wanted: &[Wanted],
    ) -> Result<Order, OrderError> {
        check(wanted)?;
        let locks = self
            .locks
            .as_ref()
            .ok_or_else(|| OrderError::LocksUnavailable("REDIS_URL is not set".into()))?;
        let device_id = DeviceId::new(device).ok_or(OrderError::UnknownDevice)?;
        const STANDING: &str =
            "SELECT EXISTS (SELECT 1 FROM devices WHERE id = $1 AND revoked_at IS NULL),
                    coalesce((SELECT debt FROM wallets WHERE user_id = $2), 0)";
        let (known, debt): (bool, i64) = on_pool!(&self.storage, |pool| {
            sqlx::query_as(STANDING)
                .bind(device)
                .bind(user)
                .fetch_one(pool)
                .await?
        });
        if !known {
            return Err(OrderError::UnknownDevice);
        }
        if debt > 0 {
            return Err(OrderError::Debt);
        }
        // A door that holds it all but stands open (someone is taking their goods): try again.
        let (doors, open) = self.holders(device, wanted).await?;
        let priced = self.price(wanted).await?;
        let total = priced.iter().try_fold(0i64, |sum, line| {
            line.unit_price
                .checked_mul(i64::from(line.qty))
                .and_then(|cost| sum.checked_add(cost))
                .ok_or_else(|| OrderError::Invalid("the total is too large".into()))
        })?;
        if doors.is_empty() && open > 0 {
            return Err(OrderError::DoorBusy);
        }
        if doors.is_empty() {
            return Err(self.why_short(device, wanted, &priced).await?);
        }
        let mut busy = false;
        for door in doors {
            let Ok(door) = u16::try_from(door) else {
                continue;
            };
            let work = self.with_door(user, device_id, door, &priced, total);
            match locks
                .while_held(device, door, self.settings.lock_ttl, work)
                .await
            {
                Ok(Some(Err(OrderError::DoorBusy))) | Ok(None) => busy = true,
                Ok(Some(Err(OrderError::OutOfStock(_)))) => {} // sold meanwhile: the next door
                Ok(Some(result)) => return result,
                Err(e) => return Err(OrderError::LocksUnavailable(e.to_string())),
            }
        }
        Err(if busy {
            OrderError::DoorBusy
        } else {
            self.why_short(device, wanted, &priced).await?
        })
    }

    /// The products' current names and prices; unknown or withdrawn products refuse the order.
    async fn price(&self, wanted: &[Wanted]) -> Result<Vec<Priced>, OrderError> {
        const PRODUCT: &str = "SELECT name, price, active FROM products WHERE id = $1";
        let mut priced = Vec::with_capacity(wanted.len());
        for line in wanted {
            let found: Option<(String, i64, bool)> = on_pool!(&self.storage, |pool| {
                sqlx::query_as(PRODUCT)
                    .bind(line.product_id)
                    .fetch_optional(pool)
                    .await?
            });
            let (name, unit_price, active) =
                found.ok_or(OrderError::UnknownProduct(line.product_id))?;
            if !active {
                return Err(OrderError::Withdrawn(line.product_id));
            }
            priced.push(Priced {
                product_id: line.product_id,
                name,
                qty: line.qty,
                unit_price,
            });
        }
        Ok(priced)
    }

    /// Why no door can serve the order: a product short on the whole locker, or the items spread
    /// over several doors.
    async fn why_short(
        &self,
        device: &str,
        wanted: &[Wanted],
        priced: &[Priced],
    ) -> Result<OrderError, OrderError> {
        const MOST: &str = "SELECT CAST(coalesce(max(s.qty), 0) AS BIGINT) FROM door_stock s
             JOIN doors d ON d.device_id = s.device_id AND d.door = s.door
             WHERE s.device_id = $1 AND s.product_id = $2
               AND NOT d.out_of_service AND NOT d.suspect";
        debug_assert_eq!(wanted.len(), priced.len());
        for line in priced {
            let have: i64 = on_pool!(&self.storage, |pool| {
                sqlx::query_scalar(MOST)
                    .bind(device)
                    .bind(line.product_id)
                    .fetch_one(pool)
                    .await?
            });
            if have < i64::from(line.qty) {
                return Ok(OrderError::OutOfStock(format!(
                    "not enough {} on this locker ({} wanted, {have} in one door)",
                    line.name, line.qty
                )));
            }
        }
        Ok(OrderError::OutOfStock(
            "no single free door holds all of these items; order them separately".into(),
        ))
    }

    /// With the door's lock held: charge, take the stock, open, settle.
    async fn with_door(
        &self,
        user: Uuid,
        device: DeviceId,
        door: u16,
        priced: &[Priced],
        total: i64,
    ) -> Result<Order, OrderError> {
        let id = Uuid::now_v7();
        let new = NewOrder {
            id,
            user,
            device,
            door,
            total,
            lines: priced.to_vec(),
        };
        let created = if total > 0 {
            let charge = Movement::charge(total).for_(format!("order {id}"));
            self.wallets
                .change_with(user, &charge, |work, _| {
                    let new = new.clone();
                    Box::pin(async move { insert_order(work, new).await })
                })
                .await
                .map(drop)
        } else {
            let mut work = self.storage.begin().await?;
            match insert_order(&mut work, new.clone()).await {
                Ok(()) => work.commit().await.map_err(WalletError::from),
                Err(e) => Err(e),
            }
        };
        match created {
            Ok(()) => {}
            Err(WalletError::Aborted(_)) => {
                return Err(OrderError::OutOfStock("sold meanwhile".into()));
            }
            // The database's fence: the door has a paid order already.
            Err(e) if e.violation() == Some(crate::storage::Violation::Unique) => {
                return Err(OrderError::DoorBusy);
            }
            Err(e) => return Err(e.into()),
        }
        self.catalog.stock_changed(device.as_str()).await;
        crate::pause::point("order.paid").await;
        let sale = unlock::SaleRow::new(id, user, (device, door), total);
        unlock::open(self, &self.commands, &sale, (device, door)).await?;
        self.get(Some(user), id).await?.ok_or_else(|| {
            OrderError::Unexpected(crate::storage::Unexpected::new("the order vanished"))
        })
    }
}
