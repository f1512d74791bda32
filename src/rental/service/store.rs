//! The rental's statements: its row in both dialects, creating it with its hold, activating it,
//! cancelling it. On PostgreSQL the two on the busiest path (creating with the hold, activating)
//! are one statement each; on SQLite each is a unit of work of several.

use chrono::{DateTime, Utc};
use firmware_protocol::DeviceId;
use serde_json::json;
use sqlx::AssertSqlSafe;
use uuid::Uuid;

use super::{Rental, Rentals};
use crate::events::Append;
use crate::events::Event;
use crate::storage::{Dialect, Storage, UnitOfWork, in_work};
use crate::unlock::{self, DoorAfter, SaleFilter, bind_sale_filter};
use crate::wallet::{Movement, WalletError};

/// A rental row as both backends return it (PostgreSQL's `flags` array as JSON).
#[derive(sqlx::FromRow)]
pub(super) struct RentalRow {
    id: Uuid,
    user_id: Uuid,
    device_id: String,
    door: i32,
    state: crate::rental::RentalState,
    deposit_held: i64,
    fee: Option<i64>,
    refunded: i64,
    started_at: Option<DateTime<Utc>>,
    ended_at: Option<DateTime<Utc>>,
    cancel_reason: Option<String>,
    flags: sqlx::types::Json<Vec<String>>,
    created_at: DateTime<Utc>,
    terms: sqlx::types::Json<serde_json::Value>,
    unbilled_ms: i64,
}

impl From<RentalRow> for Rental {
    fn from(row: RentalRow) -> Self {
        Self {
            id: row.id,
            user_id: row.user_id,
            device_id: row.device_id,
            door: row.door,
            state: row.state,
            deposit_held: row.deposit_held,
            fee: row.fee,
            refunded: row.refunded,
            started_at: row.started_at,
            ended_at: row.ended_at,
            cancel_reason: row.cancel_reason,
            flags: row.flags.0,
            created_at: row.created_at,
            terms: serde_json::from_value(row.terms.0).ok(),
            unbilled_ms: row.unbilled_ms,
        }
    }
}

/// The columns of a [`RentalRow`] in PostgreSQL.
const PG_COLUMNS: &str = "id, user_id, device_id, door, state, deposit_held, fee, refunded, \
                          started_at, ended_at, cancel_reason, to_jsonb(flags) AS flags, created_at, \
                          terms, unbilled_ms";

/// The columns of a [`RentalRow`] in `dialect`.
pub(super) fn columns(dialect: Dialect) -> &'static str {
    dialect.pick(
        PG_COLUMNS,
        "id, user_id, device_id, door, state, deposit_held, fee, refunded, started_at, ended_at, \
         cancel_reason, flags, created_at, terms, unbilled_ms",
    )
}

/// `SELECT` the rental columns `FROM rentals` and `tail` (its WHERE clause), in `dialect`.
pub(super) fn select(dialect: Dialect, tail: &str) -> AssertSqlSafe<String> {
    AssertSqlSafe(format!("SELECT {} FROM rentals {tail}", columns(dialect)))
}

/// The rental active (billing from now), the door's run of jams over, and its events
/// (`rental.started`, `device.unlocked`), in one unit of work (on PostgreSQL one statement); the
/// rental as it is now, or `None` if it was settled already (by another gateway's reconciler).
pub(super) async fn activate(
    storage: &Storage,
    id: Uuid,
    (device, door): (DeviceId, u16),
    command: Option<i64>,
    already_open: bool,
) -> Result<Option<Rental>, sqlx::Error> {
    let flags: Vec<&str> = if already_open {
        vec!["already_open"]
    } else {
        Vec::new()
    };
    let data =
        json!({ "rental_id": id, "device_id": device.as_str(), "door": door, "flags": flags });
    let events = vec![
        Event::new("rental.started", "rental", &id.to_string(), data.clone()),
        Event::new("device.unlocked", "device", device.as_str(), data),
    ];
    let now = Utc::now();
    let row: Option<RentalRow> = match storage {
        Storage::Postgres(pool) => {
            let events = crate::events::outbox::Columns::of(events);
            // Composed from each owner's piece: the door's (device) and the events' (outbox).
            let when = "EXISTS (SELECT 1 FROM r)";
            let sql = format!(
                "WITH r AS (
                     UPDATE rentals SET state = 'active', started_at = $12, start_command = $2,
                            flags = $3
                     WHERE id = $1 AND state = 'pending' RETURNING *
                 ), d AS ({}), e AS ({})
                 SELECT {PG_COLUMNS} FROM r",
                crate::device::doors::opened_piece("$4", "$5", when),
                crate::events::outbox::append_columns_piece(6, when),
            );
            let query = sqlx::query_as(AssertSqlSafe(sql))
                .bind(id)
                .bind(command)
                .bind(&flags)
                .bind(device.as_str())
                .bind(i32::from(door));
            events.bind_as(query).bind(now).fetch_optional(pool).await?
        }
        Storage::Sqlite(_) => {
            let mut work = storage.begin().await?;
            let sql = format!(
                "UPDATE rentals SET state = 'active', started_at = $4, start_command = $2, flags = $3
                 WHERE id = $1 AND state = 'pending' RETURNING {}",
                columns(Dialect::Sqlite)
            );
            let row: Option<RentalRow> =
                in_work!(&mut work, |conn| sqlx::query_as(AssertSqlSafe(sql))
                    .bind(id)
                    .bind(command)
                    .bind(sqlx::types::Json(&flags))
                    .bind(now)
                    .fetch_optional(conn)
                    .await?);
            if row.is_some() {
                unlock::mark_opened(&mut work, &device, door).await?;
                for event in &events {
                    work.append(event).await?;
                }
                work.commit().await?;
            }
            row
        }
    };
    Ok(row.map(Rental::from))
}

/// A rental to create.
#[derive(Clone)]
pub(super) struct NewRental {
    pub(super) id: Uuid,
    pub(super) user: Uuid,
    pub(super) device: DeviceId,
    pub(super) door: u16,
    pub(super) plan_id: Uuid,
    pub(super) terms: serde_json::Value,
    pub(super) deposit: i64,
}

/// Binds a [`NewRental`]'s values and the clock as `$1` to `$8`, in [`INSERT_RENTAL`]'s order.
macro_rules! bind_new_rental {
    ($query:expr, $new:expr, $now:expr) => {
        $query
            .bind($new.id)
            .bind($new.user)
            .bind($new.device.as_str())
            .bind(i32::from($new.door))
            .bind($new.plan_id)
            .bind(&$new.terms)
            .bind($new.deposit)
            .bind($now)
    };
}

impl Rentals {
    /// A page of the user's rentals, newest first, in `state` if given, older than `before`, at
    /// most `limit`.
    pub async fn of_user(
        &self,
        user: Uuid,
        state: Option<&str>,
        before: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<Rental>, super::RentalError> {
        let filter = SaleFilter {
            user: Some(user),
            state,
            before,
            ..SaleFilter::default()
        };
        self.find(&filter, limit).await
    }

    /// A page of the rentals `filter` names, newest first, at most `limit` (for operators).
    pub async fn find(
        &self,
        filter: &SaleFilter<'_>,
        limit: i64,
    ) -> Result<Vec<Rental>, super::RentalError> {
        let rows: Vec<RentalRow> = crate::storage::on_pool!(&self.storage, |pool, dialect| {
            bind_sale_filter!(
                sqlx::query_as(select(dialect, crate::unlock::SALE_FILTER_SQL)),
                filter,
                limit
            )
            .fetch_all(pool)
            .await?
        });
        Ok(rows.into_iter().map(Rental::from).collect())
    }
}

/// The rental's INSERT, given the values of a [`NewRental`] and the clock.
const INSERT_RENTAL: &str = "INSERT INTO rentals (id, user_id, device_id, door, state, plan_id,
                                                  terms, deposit_held, created_at)
     VALUES ($1, $2, $3, $4, 'pending', $5, $6, $7, $8)";

/// What became of a new rental's unit of work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Created {
    /// Written, the deposit held.
    Yes,
    /// Nothing written: the wallet lacks the deposit.
    NoFunds,
    /// Nothing written: the user has this many running rentals, the limit.
    TooMany(i64),
}

/// The user's running rentals, read inside the unit of work that adds one.
const RUNNING: &str =
    "SELECT count(*) FROM rentals WHERE user_id = $1 AND state IN ('pending', 'active', 'ending')";

impl Rentals {
    /// The rental, its deposit moved from available to held and the hold's ledger entry, in one
    /// unit of work, which also keeps the user's running rentals within the limit: on
    /// PostgreSQL one call of the `rental_create_holding` function (the user's row locked, then
    /// counted with a fresh snapshot: a parallel request of the same user waits and counts this
    /// rental); on SQLite every unit of work writes alone. A unique violation if the door is taken
    /// (the database's fence). The wallet's version moves on, so optimistic writers elsewhere
    /// see the change.
    pub(super) async fn create_holding(&self, new: &NewRental) -> Result<Created, WalletError> {
        let reference = format!("rental {}", new.id);
        let now = Utc::now();
        let max = self.settings.max_active;
        if let Storage::Postgres(pool) = &self.storage {
            // One round trip: `rental_create_holding` (a migration) locks the user's row, counts
            // the running rentals with a fresh snapshot, holds the deposit with its ledger entry
            // and writes the rental.
            let query = sqlx::query_scalar(
                "SELECT rental_create_holding($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            );
            let answer: String = bind_new_rental!(query, new, now)
                .bind(reference)
                .bind(max)
                .fetch_one(pool)
                .await?;
            return Ok(match answer.as_str() {
                "created" => Created::Yes,
                "no_funds" => Created::NoFunds,
                other => Created::TooMany(
                    other
                        .strip_prefix("too_many:")
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(max),
                ),
            });
        }
        // Elsewhere through the wallet's own unit of work: the hold, its ledger entry and the
        // rental together (SQLite: `BEGIN IMMEDIATE`, one writer at a time, so the count read in
        // it stands until the commit).
        const TOO_MANY: &str = "too many running rentals";
        async fn count_then_insert(
            work: &mut UnitOfWork,
            new: &NewRental,
            now: DateTime<Utc>,
            max: i64,
        ) -> Result<(), WalletError> {
            let running: i64 = in_work!(&mut *work, |conn| sqlx::query_scalar(RUNNING)
                .bind(new.user)
                .fetch_one(conn)
                .await?);
            if running >= max {
                return Err(WalletError::Aborted(TOO_MANY));
            }
            Ok(insert_rental(work, new, now).await?)
        }
        let result = if new.deposit == 0 {
            let mut work = self.storage.begin().await?;
            match count_then_insert(&mut work, new, now, max).await {
                Ok(()) => work.commit().await.map_err(WalletError::from),
                Err(e) => Err(e),
            }
        } else {
            let hold = Movement::hold(new.deposit).for_(reference);
            self.wallets
                .change_with(new.user, &hold, |work, _| {
                    let new = new.clone();
                    Box::pin(async move { count_then_insert(work, &new, now, max).await })
                })
                .await
                .map(drop)
        };
        match result {
            Ok(()) => Ok(Created::Yes),
            Err(WalletError::InsufficientFunds { .. }) => Ok(Created::NoFunds),
            Err(WalletError::Aborted(TOO_MANY)) => Ok(Created::TooMany(max)),
            Err(e) => Err(e),
        }
    }
}

/// Writes a new rental, `pending`, in `work`.
async fn insert_rental(
    work: &mut UnitOfWork,
    new: &NewRental,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    in_work!(work, |conn| bind_new_rental!(
        sqlx::query(INSERT_RENTAL),
        new,
        now
    )
    .execute(conn)
    .await?
    .rows_affected());
    Ok(())
}

/// A rental cancelled by a failed unlock: its state, the door's marks and its event, in the
/// caller's unit of work (with the hold's release). `RowNotFound` if it was settled already (by
/// another gateway's reconciler): nothing changes.
pub(super) async fn write_cancellation(
    work: &mut UnitOfWork,
    id: Uuid,
    (device, door): (DeviceId, u16),
    command: Option<i64>,
    (reason, after): (&'static str, DoorAfter),
    jams_limit: i32,
) -> Result<(), sqlx::Error> {
    const CANCEL: &str =
        "UPDATE rentals SET state = 'cancelled', ended_at = $4, cancel_reason = $2,
                start_command = $3 WHERE id = $1 AND state = 'pending'";
    let now = Utc::now();
    in_work!(&mut *work, |conn| sqlx::query(CANCEL)
        .bind(id)
        .bind(reason)
        .bind(command)
        .bind(now)
        .execute(conn)
        .await?
        .rows_affected())
    .eq(&1)
    .then_some(())
    .ok_or(sqlx::Error::RowNotFound)?;
    unlock::mark_door(work, &device, door, after, jams_limit).await?;
    let data =
        json!({ "rental_id": id, "device_id": device.as_str(), "door": door, "reason": reason });
    work.append(&Event::new(
        "rental.cancelled",
        "rental",
        &id.to_string(),
        data,
    ))
    .await
}
