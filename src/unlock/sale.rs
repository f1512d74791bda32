//! Sales (rentals, orders) as the reconcilers and the lists read them, and the unlock a
//! sale's request recorded, or did not.

use chrono::{DateTime, Utc};
use firmware_protocol::DeviceId;

use super::RecordRow;
use crate::storage::{Storage, on_pool};

/// For a sale whose request died before it recorded its unlock: attaches the first unlock sent
/// for it (the command whose reason is `reason`) with `attach` (an UPDATE of the sale taking
/// `$1` the sale and `$2` the command), and makes that command `unknown` if it was still in
/// flight, so the locker is asked. `false`: no unlock was sent, so no door opened.
pub async fn attach_sent(
    storage: &Storage,
    reason: &str,
    attach: &'static str,
    sale: uuid::Uuid,
) -> Result<bool, sqlx::Error> {
    const FIRST: &str = "SELECT id FROM commands WHERE reason = $1 ORDER BY id LIMIT 1";
    let command: Option<i64> = on_pool!(storage, |pool| sqlx::query_scalar(FIRST)
        .bind(reason)
        .fetch_optional(pool)
        .await?);
    let Some(command) = command else {
        return Ok(false);
    };
    self::attach(storage, attach, sale, command).await?;
    crate::command::store::mark_unknown(storage, command).await?;
    Ok(true)
}

/// A sale (a rental and its deposit, an order and its total) as the reconcilers read it:
/// `SELECT id, user_id, device_id, door, <the amount> AS amount`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SaleRow {
    /// The rental or order.
    pub id: uuid::Uuid,
    /// Whose.
    pub user_id: uuid::Uuid,
    /// The locker.
    pub device_id: String,
    /// The door.
    pub door: i32,
    /// The deposit held, or the total paid (minor units).
    pub amount: i64,
}

impl SaleRow {
    /// Sale `id` of `user` at `target`, for `amount` (minor units).
    pub fn new(
        id: uuid::Uuid,
        user: uuid::Uuid,
        (device, door): (DeviceId, u16),
        amount: i64,
    ) -> Self {
        Self {
            id,
            user_id: user,
            device_id: device.as_str().to_owned(),
            door: i32::from(door),
            amount,
        }
    }

    /// Its locker and door (`None` for a sale no unlock could have reached).
    pub fn target(&self) -> Option<(DeviceId, u16)> {
        DeviceId::new(&self.device_id).zip(u16::try_from(self.door).ok())
    }
}

/// A sale with its unlock as recorded ([`RECORD_COLUMNS`](super::RECORD_COLUMNS)).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SettlingRow {
    /// The sale.
    #[sqlx(flatten)]
    pub sale: SaleRow,
    /// Its unlock.
    #[sqlx(flatten)]
    pub record: RecordRow,
}

/// Records `command` as the unlock of `sale` with `attach` (an UPDATE taking `$1` the sale and
/// `$2` the command).
pub async fn attach(
    storage: &Storage,
    attach: &'static str,
    sale: uuid::Uuid,
    command: i64,
) -> Result<(), sqlx::Error> {
    on_pool!(storage, |pool| sqlx::query(attach)
        .bind(sale)
        .bind(command)
        .execute(pool)
        .await?
        .rows_affected());
    Ok(())
}

/// Which sales (rentals or orders) to list; every field narrows.
#[derive(Debug, Clone, Copy, Default)]
pub struct SaleFilter<'a> {
    /// The renter's.
    pub user: Option<uuid::Uuid>,
    /// At this locker.
    pub device: Option<&'a str>,
    /// In this state.
    pub state: Option<&'a str>,
    /// Asked for at or after this.
    pub since: Option<DateTime<Utc>>,
    /// Asked for before this.
    pub until: Option<DateTime<Utc>>,
    /// Older than this sale (ids grow with time): the page after it.
    pub before: Option<uuid::Uuid>,
}

/// The WHERE clause, order and limit of a page of sales (`rentals` or `orders`) a [`SaleFilter`]
/// names: `$1` to `$7`, bound by `bind_sale_filter!`.
pub const SALE_FILTER_SQL: &str =
    "WHERE ($1 IS NULL OR user_id = $1) AND ($2 IS NULL OR device_id = $2)
       AND ($3 IS NULL OR state = $3) AND ($4 IS NULL OR created_at >= $4)
       AND ($5 IS NULL OR created_at < $5) AND ($6 IS NULL OR id < $6)
     ORDER BY id DESC LIMIT $7";

/// Binds a [`SaleFilter`] and a page size to a query of [`SALE_FILTER_SQL`].
macro_rules! bind_sale_filter {
    ($query:expr, $filter:expr, $limit:expr) => {
        $query
            .bind($filter.user)
            .bind($filter.device)
            .bind($filter.state)
            .bind($filter.since)
            .bind($filter.until)
            .bind($filter.before)
            .bind($limit)
    };
}
pub(crate) use bind_sale_filter;
