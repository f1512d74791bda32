//! Starting a rental: pick a free door, lock it in Redis, create the rental and hold the deposit
//! in one transaction, open the door, and settle by what the door did: a failed unlock never
//! charges anyone (the hold is released in the same transaction that cancels the rental).

use std::time::Duration;

use chrono::{DateTime, Utc};
use firmware_protocol::{DeviceId, RefuseReason};
use serde_json::json;
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use super::plan;
use crate::command::{Command, CommandError, CommandService, DoorResult, Origin};
use crate::events::{Event, append};
use crate::lock::DoorLocks;
use crate::wallet::{Movement, WalletError, Wallets};

/// Rules for rentals, from configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RentalSettings {
    /// Most rentals one user may have running (`LOCKER_MAX_ACTIVE_RENTALS`, default 3).
    pub max_active: i64,
    /// How long a door's lock lasts; covers the unlock's deadline and open window
    /// (`LOCKER_DOOR_LOCK_TTL_MS`, default 30000).
    pub lock_ttl: Duration,
    /// Jams in a row after which a door is out of service (`LOCKER_JAMS_OUT_OF_SERVICE`, 3).
    pub jams_out_of_service: i32,
}

impl Default for RentalSettings {
    fn default() -> Self {
        Self {
            max_active: 3,
            lock_ttl: Duration::from_secs(30),
            jams_out_of_service: 3,
        }
    }
}

/// A rental as its owner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rental {
    /// Its id.
    pub id: Uuid,
    /// The renter.
    pub user_id: Uuid,
    /// The locker.
    pub device_id: String,
    /// The door.
    pub door: i32,
    /// `pending`, `active`, `ending`, `ended`, `cancelled`.
    pub state: String,
    /// The deposit held, minor units.
    pub deposit_held: i64,
    /// The fee charged at the end, minor units.
    pub fee: Option<i64>,
    /// How much of the fee operators refunded, minor units.
    pub refunded: i64,
    /// When the door opened at the start (billing starts).
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub ended_at: Option<DateTime<Utc>>,
    /// Why it was cancelled.
    pub cancel_reason: Option<String>,
    /// For operators: `already_open`, ...
    pub flags: Vec<String>,
    /// When it was asked for.
    pub created_at: DateTime<Utc>,
}

/// Why a rental did not start. When a rental was created and then cancelled, the variant carries
/// its id; its hold was released.
#[derive(Debug, thiserror::Error)]
pub enum RentalError {
    /// No Redis, or Redis does not answer: no door is rented without its lock.
    #[error("rentals are unavailable: door locks cannot be taken ({0})")]
    LocksUnavailable(String),
    /// The user has the most running rentals allowed.
    #[error("you already have {0} running rentals")]
    TooManyActive(i64),
    /// The user owes money.
    #[error("an unpaid debt blocks new rentals; top up first")]
    Debt,
    /// No such locker.
    #[error("no such locker")]
    UnknownDevice,
    /// No plan for the door's size.
    #[error("no price plan for this door size")]
    NoPlan,
    /// Every matching door is taken, out of service or open.
    #[error("no free door")]
    NoFreeDoor,
    /// Not enough money for the deposit.
    #[error("not enough money for the deposit")]
    InsufficientFunds,
    /// The door did not open after its unlock.
    #[error("the door did not open (jammed); nothing was charged")]
    Jammed(Uuid),
    /// The locker refused the unlock.
    #[error("the locker refused to open the door ({1}); nothing was charged")]
    Refused(Uuid, String),
    /// The locker is offline.
    #[error("the locker is offline; nothing was charged")]
    Offline(Uuid),
    /// The locker did not answer in time; the rental waits for the locker's report.
    #[error(
        "the locker did not answer in time; it is being asked what happened: if the door opened \
         the rental runs, else it is cancelled and nothing is charged"
    )]
    Timeout(Uuid),
    /// The gateway is too busy to send the unlock now.
    #[error("too many commands in flight; nothing was charged")]
    Overloaded(Uuid),
    /// The wallet kept changing under us.
    #[error("the wallet is busy; try again")]
    Busy,
    /// No such rental of this user.
    #[error("no such rental")]
    NotFound,
    /// Another gateway settled this rental first.
    #[error("the rental was settled meanwhile")]
    AlreadySettled,
    /// A refund that cannot be made.
    #[error("cannot refund: {0}")]
    NotRefundable(String),
    /// The rental is not running (ended, cancelled, or already ending).
    #[error("the rental is {0}, not active")]
    NotActive(String),
    /// Someone else is opening this door right now.
    #[error("the door is being opened by another request; try again")]
    DoorBusy,
    /// During a rental, the door did not open; the rental continues and nothing was charged.
    #[error("the door did not open ({1}); the rental continues and nothing was charged")]
    NotOpened(Uuid, DoorFailure),
    /// PostgreSQL failed.
    #[error("storage: {0}")]
    Storage(String),
}

impl From<sqlx::Error> for RentalError {
    fn from(e: sqlx::Error) -> Self {
        Self::Storage(e.to_string())
    }
}

impl From<WalletError> for RentalError {
    fn from(e: WalletError) -> Self {
        match e {
            WalletError::InsufficientFunds { .. } => Self::InsufficientFunds,
            WalletError::Busy => Self::Busy,
            other => Self::Storage(other.to_string()),
        }
    }
}

/// Why a door did not open for a running rental.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DoorFailure {
    /// The relay pulsed but the door did not open.
    #[error("jammed")]
    Jammed,
    /// The locker refused, for this reason.
    #[error("refused: {0}")]
    Refused(String),
    /// The locker is offline.
    #[error("the locker is offline")]
    Offline,
    /// No answer in time.
    #[error("no answer in time")]
    Timeout,
    /// Too many commands in flight.
    #[error("the gateway is overloaded")]
    Overloaded,
}

const HOLDING: &str = "('pending', 'active', 'ending')";

fn rental(row: &sqlx::postgres::PgRow) -> Result<Rental, sqlx::Error> {
    Ok(Rental {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        device_id: row.try_get("device_id")?,
        door: row.try_get("door")?,
        state: row.try_get("state")?,
        deposit_held: row.try_get("deposit_held")?,
        fee: row.try_get("fee")?,
        refunded: row.try_get("refunded")?,
        started_at: row.try_get("started_at")?,
        ended_at: row.try_get("ended_at")?,
        cancel_reason: row.try_get("cancel_reason")?,
        flags: row.try_get("flags")?,
        created_at: row.try_get("created_at")?,
    })
}

const COLUMNS: &str = "id, user_id, device_id, door, state, deposit_held, fee, refunded, \
                       started_at, ended_at, cancel_reason, flags, created_at";

/// What the door did, and so what becomes of the rental.
#[derive(Clone, Copy)]
enum Settlement {
    Active {
        already_open: bool,
    },
    Cancelled {
        reason: &'static str,
        door: DoorAfter,
    },
}

/// What a failed unlock says about the door.
#[derive(Clone, Copy)]
enum DoorAfter {
    Free,
    Jammed,
    Suspect,
    OutOfService,
}

/// Rentals.
#[derive(Debug, Clone)]
pub struct Rentals {
    pool: PgPool,
    wallets: Wallets,
    commands: CommandService,
    locks: Option<DoorLocks>,
    settings: RentalSettings,
    cache: crate::cache::Cache,
}

impl Rentals {
    /// Rentals paid from `wallets`, doors opened through `commands`, locked with `locks` (no
    /// locks: every rental is refused).
    pub fn new(
        pool: PgPool,
        wallets: Wallets,
        commands: CommandService,
        locks: Option<DoorLocks>,
        settings: RentalSettings,
        cache: crate::cache::Cache,
    ) -> Self {
        Self {
            pool,
            wallets,
            commands,
            locks,
            settings,
            cache,
        }
    }

    /// One of the user's rentals (another user's is `None`).
    pub async fn get(&self, user: Uuid, id: Uuid) -> Result<Option<Rental>, RentalError> {
        let sql = format!("SELECT {COLUMNS} FROM rentals WHERE id = $1 AND user_id = $2");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .bind(user)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(rental).transpose()?)
    }

    /// Rents a door of `device` (of `size`, or door `door`) for `user` and opens it.
    pub async fn start(
        &self,
        user: Uuid,
        device: &str,
        size: Option<&str>,
        door: Option<u16>,
    ) -> Result<Rental, RentalError> {
        let locks = self
            .locks
            .as_ref()
            .ok_or_else(|| RentalError::LocksUnavailable("REDIS_URL is not set".into()))?;
        let device_id = DeviceId::new(device).ok_or(RentalError::UnknownDevice)?;
        let sql = format!(
            "SELECT (SELECT count(*) FROM rentals WHERE user_id = $1 AND state IN {HOLDING}),
                    coalesce((SELECT debt FROM wallets WHERE user_id = $1), 0),
                    EXISTS (SELECT 1 FROM devices WHERE id = $2 AND revoked_at IS NULL)"
        );
        let (active, debt, exists): (i64, i64, bool) = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(user)
            .bind(device)
            .fetch_one(&self.pool)
            .await?;
        if !exists {
            return Err(RentalError::UnknownDevice);
        }
        if debt > 0 {
            return Err(RentalError::Debt);
        }
        if active >= self.settings.max_active {
            return Err(RentalError::TooManyActive(active));
        }
        let sql = format!(
            "SELECT d.door, d.size_class FROM doors d
             WHERE d.device_id = $1 AND ($2::text IS NULL OR d.size_class = $2)
               AND ($3::int IS NULL OR d.door = $3)
               AND NOT d.out_of_service AND NOT d.suspect AND d.sensor <> 'open'
               AND NOT EXISTS (SELECT 1 FROM rentals r WHERE r.device_id = d.device_id
                               AND r.door = d.door AND r.state IN {HOLDING})
             ORDER BY d.door"
        );
        let candidates: Vec<(i32, String)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(device)
            .bind(size)
            .bind(door.map(i32::from))
            .fetch_all(&self.pool)
            .await?;
        let mut lacked_plan = false;
        for (door, size_class) in candidates {
            let Ok(door) = u16::try_from(door) else {
                continue;
            };
            let plan = self
                .cache
                .get_or_load(&plan::cache_key(&size_class), || {
                    plan::for_size(&self.pool, &size_class)
                })
                .await?;
            let Some(plan) = plan else {
                lacked_plan = true;
                continue;
            };
            let lock = match locks.acquire(device, door, self.settings.lock_ttl).await {
                Ok(Some(lock)) => lock,
                Ok(None) => continue, // someone else is renting it: try the next door
                Err(e) => return Err(RentalError::LocksUnavailable(e.to_string())),
            };
            // The lock outlives the work: renewed every third of its TTL while the work runs.
            let result = {
                let work = self.with_lock(user, device_id, door, &plan);
                tokio::pin!(work);
                let mut renew = tokio::time::interval(self.settings.lock_ttl / 3);
                renew.tick().await;
                loop {
                    tokio::select! {
                        result = &mut work => break result,
                        _ = renew.tick() => match locks.renew(&lock, self.settings.lock_ttl).await {
                            Ok(true) => {}
                            Ok(false) => tracing::warn!(device, door, "a door lock expired during its work; the database still fences the door"),
                            Err(e) => tracing::warn!(error = %e, device, door, "cannot renew a door lock"),
                        },
                    }
                }
            };
            if let Err(e) = locks.release(lock).await {
                tracing::error!(error = %e, device, door, "cannot release a door lock");
            }
            match result {
                Err(RentalError::NoFreeDoor) => continue, // the database fence said taken
                other => return other,
            }
        }
        Err(if lacked_plan {
            RentalError::NoPlan
        } else {
            RentalError::NoFreeDoor
        })
    }

    /// Opens the door of a running rental again (to add or take something); no charge.
    pub async fn reopen(&self, user: Uuid, id: Uuid) -> Result<Rental, RentalError> {
        let rental = self.get(user, id).await?.ok_or(RentalError::NotFound)?;
        if rental.state != "active" {
            return Err(RentalError::NotActive(rental.state));
        }
        self.open_door(user, &rental, "reopen").await?;
        Ok(rental)
    }

    /// Ends a rental: opens the door for pickup, stops billing at that unlock, takes the fee
    /// from the hold (then from the balance; what is still missing becomes a debt) and releases
    /// the rest. Pickup is never refused over money. If the door does not open, the rental goes
    /// on and nothing is charged.
    pub async fn end(&self, user: Uuid, id: Uuid) -> Result<Rental, RentalError> {
        let claimed = sqlx::query(
            "UPDATE rentals SET state = 'ending' WHERE id = $1 AND user_id = $2 AND state = 'active'",
        )
        .bind(id)
        .bind(user)
        .execute(&self.pool)
        .await?
        .rows_affected();
        let rental = self.get(user, id).await?.ok_or(RentalError::NotFound)?;
        if claimed == 0 {
            return Err(RentalError::NotActive(rental.state));
        }
        if let Err(e) = self.open_door(user, &rental, "pickup").await {
            sqlx::query("UPDATE rentals SET state = 'active' WHERE id = $1 AND state = 'ending'")
                .bind(id)
                .execute(&self.pool)
                .await?;
            return Err(e);
        }
        self.finish(&rental, Utc::now()).await?;
        self.get(user, id).await?.ok_or(RentalError::NotFound)
    }

    /// Ends `rental` as of `ended_at`: the fee is captured from the hold, the rest released, any
    /// excess charged from the balance, what is still missing recorded as a debt; one
    /// transaction with the rental's end and its event.
    async fn finish(&self, rental: &Rental, ended_at: DateTime<Utc>) -> Result<(), RentalError> {
        let (id, user) = (rental.id, rental.user_id);
        let terms_json: serde_json::Value =
            sqlx::query_scalar("SELECT terms FROM rentals WHERE id = $1")
                .bind(id)
                .fetch_one(&self.pool)
                .await?;
        let terms: super::Terms = serde_json::from_value(terms_json)
            .map_err(|e| RentalError::Storage(format!("stored terms: {e}")))?;
        let elapsed = rental
            .started_at
            .map(|at| (ended_at - at).to_std().unwrap_or_default())
            .unwrap_or_default();
        let fee = super::fee(&terms, elapsed);
        let deposit = rental.deposit_held;
        let reference = format!("rental {id}");
        let (device, door) = (rental.device_id.clone(), rental.door);
        self.wallets
            .change_many_with(
                user,
                |read| {
                    let captured = fee.min(deposit);
                    let beyond = fee - captured;
                    let charged = beyond.min(read.available + (deposit - captured));
                    let moves = vec![
                        Movement::capture(captured).for_(reference.clone()),
                        Movement::release(deposit - captured).for_(reference.clone()),
                        Movement::charge(charged).for_(reference.clone()),
                    ];
                    (moves, beyond - charged)
                },
                |conn| {
                    let device = device.clone();
                    Box::pin(async move {
                        sqlx::query(
                            "UPDATE rentals SET state = 'ended', fee = $2, ended_at = $3 WHERE id = $1",
                        )
                        .bind(id)
                        .bind(fee)
                        .bind(ended_at)
                        .execute(&mut *conn)
                        .await?;
                        let data = json!({
                            "rental_id": id, "device_id": device, "door": door, "fee_minor": fee,
                            "billed_seconds": elapsed.as_secs(),
                        });
                        append(conn, &Event::new("rental.ended", "rental", &id.to_string(), data))
                            .await?;
                        Ok(())
                    })
                },
            )
            .await?;
        Ok(())
    }

    /// An operator ends a rental (without opening the door): charged as if picked up now.
    pub async fn end_by_operator(&self, id: Uuid) -> Result<Rental, RentalError> {
        let rental = self.any(id).await?;
        if rental.state != "active" && rental.state != "ending" {
            return Err(RentalError::NotActive(rental.state));
        }
        self.finish(&rental, Utc::now()).await?;
        self.any(id).await
    }

    /// An operator cancels a running rental: no fee, the hold released.
    pub async fn cancel_by_operator(&self, id: Uuid) -> Result<Rental, RentalError> {
        let rental = self.any(id).await?;
        if !matches!(rental.state.as_str(), "pending" | "active" | "ending") {
            return Err(RentalError::NotActive(rental.state));
        }
        let deposit = rental.deposit_held;
        let result = if deposit > 0 {
            let release =
                Movement::release(deposit).for_(format!("rental {id} cancelled by operator"));
            self.wallets
                .change_with(rental.user_id, &release, |conn, _| {
                    Box::pin(cancel_rental(conn, id))
                })
                .await
                .map(drop)
        } else {
            let mut tx = self.pool.begin().await?;
            let done = cancel_rental(&mut tx, id).await;
            if done.is_ok() {
                tx.commit().await?;
            }
            done
        };
        match result {
            // Cancelled meanwhile by someone else (its hold already released).
            Err(WalletError::Invalid(_) | WalletError::InsufficientFunds { .. }) => {
                Err(RentalError::NotActive("cancelled".into()))
            }
            other => other.map_err(RentalError::from),
        }?;
        self.any(id).await
    }

    /// An operator refunds part or all of an ended rental's fee (never more than was charged).
    pub async fn refund(&self, id: Uuid, amount: i64) -> Result<Rental, RentalError> {
        let rental = self.any(id).await?;
        if amount <= 0 {
            return Err(RentalError::NotRefundable(
                "the amount must be positive".into(),
            ));
        }
        let refund = Movement::refund(amount).for_(format!("rental {id} refund"));
        let result = self
            .wallets
            .change_with(rental.user_id, &refund, |conn, _| {
                Box::pin(async move {
                    let changed = sqlx::query(
                        "UPDATE rentals SET refunded = refunded + $2
                         WHERE id = $1 AND state = 'ended' AND refunded + $2 <= coalesce(fee, 0)",
                    )
                    .bind(id)
                    .bind(amount)
                    .execute(conn)
                    .await?
                    .rows_affected();
                    if changed == 0 {
                        return Err(WalletError::Invalid("more than the fee left to refund"));
                    }
                    Ok(())
                })
            })
            .await;
        match result {
            Err(WalletError::Invalid(why)) => Err(RentalError::NotRefundable(why.into())),
            other => other.map(drop).map_err(RentalError::from),
        }?;
        self.any(id).await
    }

    /// Settles rentals whose opening unlock timed out, once the command's outcome is known (a
    /// late answer, or the locker's state report): active if the door opened; cancelled, with the
    /// hold released, if it was refused, jammed, or the locker could not say (the door is then
    /// marked for a check). Returns how many were settled.
    pub async fn reconcile_pending(&self, open_window: Duration) -> Result<usize, RentalError> {
        let mut settled = self.recover_interrupted().await?;
        let rows = sqlx::query(
            "SELECT r.id, r.user_id, r.device_id, r.door, r.deposit_held, c.id AS command,
                    c.state, c.door_result, c.refusal, c.surfaced_at IS NOT NULL AS surfaced,
                    coalesce(c.answered_at < now() - make_interval(secs => $1), false) AS window_passed
             FROM rentals r JOIN commands c ON c.id = r.start_command
             WHERE r.state = 'pending' ORDER BY r.created_at LIMIT 100",
        )
        .bind(open_window.as_secs_f64())
        .fetch_all(&self.pool)
        .await?;
        for row in rows {
            let state: String = row.try_get("state")?;
            let door_result: Option<String> = row.try_get("door_result")?;
            let refusal: Option<String> = row.try_get("refusal")?;
            let surfaced: bool = row.try_get("surfaced")?;
            let window_passed: bool = row.try_get("window_passed")?;
            let settlement = match (state.as_str(), door_result.as_deref()) {
                ("executed", Some("opened")) => Settlement::Active {
                    already_open: false,
                },
                ("executed", Some("already_open")) => Settlement::Active { already_open: true },
                ("executed", Some(_)) => Settlement::Cancelled {
                    reason: "jammed",
                    door: DoorAfter::Jammed,
                },
                ("executed", None) if window_passed => Settlement::Cancelled {
                    reason: "jammed",
                    door: DoorAfter::Jammed,
                },
                ("refused", _) => Settlement::Cancelled {
                    reason: "refused",
                    door: if refusal.as_deref() == Some("no_such_door") {
                        DoorAfter::OutOfService
                    } else {
                        DoorAfter::Free
                    },
                },
                ("unknown", _) if surfaced => Settlement::Cancelled {
                    reason: "timeout",
                    door: DoorAfter::Suspect,
                },
                _ => continue, // not known yet
            };
            let id: Uuid = row.try_get("id")?;
            let device: String = row.try_get("device_id")?;
            let (Some(device), Ok(door)) = (
                DeviceId::new(&device),
                u16::try_from(row.try_get::<i32, _>("door")?),
            ) else {
                continue;
            };
            let result = self
                .settle(
                    row.try_get("user_id")?,
                    id,
                    (device, door),
                    row.try_get("deposit_held")?,
                    Some(row.try_get("command")?),
                    settlement,
                )
                .await;
            let outcome = match &settlement {
                Settlement::Active { .. } => "active",
                Settlement::Cancelled { .. } => "cancelled",
            };
            metrics::counter!("locker_rental_reconciliations_total", "outcome" => outcome)
                .increment(1);
            match result {
                Ok(()) => settled += 1,
                Err(RentalError::AlreadySettled) => {}
                Err(e) => {
                    tracing::warn!(error = %e, rental = %id, "cannot settle a pending rental")
                }
            }
        }
        Ok(settled)
    }

    /// Rentals left `pending` with no command recorded by a request that never finished (the
    /// gateway stopped or crashed in between), older than any request could take: if the unlock
    /// was sent (a command with the rental's reason exists) it is attached and settled like a
    /// timeout; if not, no door was opened, so the rental is cancelled and its hold released.
    pub async fn recover_interrupted(&self) -> Result<usize, RentalError> {
        let stale = self.settings.lock_ttl * 4 + Duration::from_secs(60);
        let rows = sqlx::query(
            "SELECT r.id, r.user_id, r.device_id, r.door, r.deposit_held,
                    (SELECT c.id FROM commands c WHERE c.reason = 'rental ' || r.id::text
                     ORDER BY c.id LIMIT 1) AS command
             FROM rentals r
             WHERE r.state = 'pending' AND r.start_command IS NULL
               AND r.created_at < now() - make_interval(secs => $1)
             LIMIT 100",
        )
        .bind(stale.as_secs_f64())
        .fetch_all(&self.pool)
        .await?;
        let mut recovered = 0;
        for row in rows {
            let id: Uuid = row.try_get("id")?;
            let command: Option<i64> = row.try_get("command")?;
            if let Some(command) = command {
                sqlx::query(
                    "UPDATE rentals SET start_command = $2 WHERE id = $1 AND start_command IS NULL",
                )
                .bind(id)
                .bind(command)
                .execute(&self.pool)
                .await?;
                // The command may still be `sent`: make it `unknown`, so the locker is asked.
                crate::command::store::mark_unknown(&self.pool, command).await?;
                continue;
            }
            let device: String = row.try_get("device_id")?;
            let (Some(device), Ok(door)) = (
                DeviceId::new(&device),
                u16::try_from(row.try_get::<i32, _>("door")?),
            ) else {
                continue;
            };
            let cancelled = Settlement::Cancelled {
                reason: "interrupted",
                door: DoorAfter::Free,
            };
            match self
                .settle(
                    row.try_get("user_id")?,
                    id,
                    (device, door),
                    row.try_get("deposit_held")?,
                    None,
                    cancelled,
                )
                .await
            {
                Ok(()) => {
                    recovered += 1;
                    metrics::counter!("locker_rental_reconciliations_total", "outcome" => "interrupted")
                        .increment(1);
                }
                Err(RentalError::AlreadySettled) => {}
                Err(e) => tracing::warn!(error = %e, rental = %id, "cannot recover a rental"),
            }
        }
        Ok(recovered)
    }

    /// Any rental, whoever's (for operators).
    pub async fn any(&self, id: Uuid) -> Result<Rental, RentalError> {
        let sql = format!("SELECT {COLUMNS} FROM rentals WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(RentalError::NotFound)?;
        Ok(rental(&row)?)
    }

    /// Opens a running rental's door, with its lock held; on failure marks the door as the
    /// outcome says (a jam or no answer: suspect).
    async fn open_door(&self, user: Uuid, rental: &Rental, why: &str) -> Result<(), RentalError> {
        let locks = self
            .locks
            .as_ref()
            .ok_or_else(|| RentalError::LocksUnavailable("REDIS_URL is not set".into()))?;
        let device = DeviceId::new(&rental.device_id).ok_or(RentalError::UnknownDevice)?;
        let door = u16::try_from(rental.door).map_err(|_| RentalError::UnknownDevice)?;
        let lock = locks
            .acquire(device.as_str(), door, self.settings.lock_ttl)
            .await
            .map_err(|e| RentalError::LocksUnavailable(e.to_string()))?
            .ok_or(RentalError::DoorBusy)?;
        let origin = Origin {
            requested_by: Some(user),
            reason: Some(format!("rental {} {why}", rental.id)),
        };
        let sent = self
            .commands
            .send_with(device, Command::Unlock { door }, &origin)
            .await;
        if let Err(e) = locks.release(lock).await {
            tracing::error!(error = %e, "cannot release a door lock");
        }
        let failure = match sent {
            Ok(outcome) => match outcome.door {
                Some(DoorResult::Opened | DoorResult::AlreadyOpen) => None,
                Some(DoorResult::Jammed) | None => Some((DoorFailure::Jammed, true)),
            },
            Err(CommandError::Refused(reason)) => Some((
                DoorFailure::Refused(
                    serde_json::to_value(reason)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default(),
                ),
                false,
            )),
            Err(CommandError::DeviceOffline | CommandError::UnknownDevice) => {
                Some((DoorFailure::Offline, false))
            }
            Err(CommandError::Timeout { .. }) => Some((DoorFailure::Timeout, true)),
            Err(CommandError::Overloaded) => Some((DoorFailure::Overloaded, false)),
            Err(e @ (CommandError::Invalid(_) | CommandError::Storage(_))) => {
                return Err(RentalError::Storage(e.to_string()));
            }
        };
        let data = json!({ "rental_id": rental.id, "device_id": device.as_str(), "door": door, "why": why });
        let mut tx = self.pool.begin().await?;
        match &failure {
            None => {
                append(
                    &mut tx,
                    &Event::new("device.unlocked", "device", device.as_str(), data),
                )
                .await?;
            }
            Some((_, true)) => {
                sqlx::query("UPDATE doors SET suspect = true WHERE device_id = $1 AND door = $2")
                    .bind(device.as_str())
                    .bind(rental.door)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("UPDATE rentals SET flags = array_append(flags, 'door_failed') WHERE id = $1 AND NOT 'door_failed' = ANY(flags)")
                    .bind(rental.id)
                    .execute(&mut *tx)
                    .await?;
            }
            Some((_, false)) => {}
        }
        tx.commit().await?;
        match failure {
            None => Ok(()),
            Some((why, _)) => Err(RentalError::NotOpened(rental.id, why)),
        }
    }

    /// With the door's lock held: create and hold, open, settle.
    async fn with_lock(
        &self,
        user: Uuid,
        device: DeviceId,
        door: u16,
        plan: &plan::Plan,
    ) -> Result<Rental, RentalError> {
        let id = Uuid::now_v7();
        let deposit = plan.terms.deposit;
        let terms =
            serde_json::to_value(plan.terms).map_err(|e| RentalError::Storage(e.to_string()))?;
        let row = NewRental {
            id,
            user,
            device,
            door,
            plan_id: plan.id,
            terms,
            deposit,
        };
        let created = if deposit > 0 {
            let hold = Movement::hold(deposit).for_(format!("rental {id}"));
            self.wallets
                .change_with(user, &hold, |conn, _| {
                    Box::pin(insert_rental(conn, row.clone()))
                })
                .await
                .map(drop)
        } else {
            let mut conn = self.pool.acquire().await?;
            insert_rental(&mut conn, row.clone()).await
        };
        match created {
            Ok(()) => {}
            Err(WalletError::Storage(sqlx::Error::Database(e))) if e.is_unique_violation() => {
                return Err(RentalError::NoFreeDoor);
            }
            Err(e) => return Err(e.into()),
        }
        let origin = Origin {
            requested_by: Some(user),
            reason: Some(format!("rental {id}")),
        };
        let sent = self
            .commands
            .send_with(device, Command::Unlock { door }, &origin)
            .await;
        let (settlement, command, error) = match sent {
            Ok(outcome) => match outcome.door {
                Some(DoorResult::Opened) => (
                    Settlement::Active {
                        already_open: false,
                    },
                    Some(outcome.command_id),
                    None,
                ),
                Some(DoorResult::AlreadyOpen) => (
                    Settlement::Active { already_open: true },
                    Some(outcome.command_id),
                    None,
                ),
                // Executed, but the door did not open within the window (or never said so).
                Some(DoorResult::Jammed) | None => (
                    Settlement::Cancelled {
                        reason: "jammed",
                        door: DoorAfter::Jammed,
                    },
                    Some(outcome.command_id),
                    Some(RentalError::Jammed(id)),
                ),
            },
            Err(CommandError::Refused(reason)) => {
                let door_after = if reason == RefuseReason::NoSuchDoor {
                    DoorAfter::OutOfService
                } else {
                    DoorAfter::Free
                };
                let name = serde_json::to_value(reason)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_else(|| format!("{reason:?}"));
                (
                    Settlement::Cancelled {
                        reason: "refused",
                        door: door_after,
                    },
                    None,
                    Some(RentalError::Refused(id, name)),
                )
            }
            Err(CommandError::DeviceOffline | CommandError::UnknownDevice) => (
                Settlement::Cancelled {
                    reason: "offline",
                    door: DoorAfter::Free,
                },
                None,
                Some(RentalError::Offline(id)),
            ),
            Err(CommandError::Timeout { command_id }) => {
                // The outcome is unknown: the locker is asked (`query_state`) and the rental is
                // settled by its report in the background (`reconcile_pending`): active if the
                // door opened, else cancelled with the hold released.
                sqlx::query(
                    "UPDATE rentals SET start_command = $2 WHERE id = $1 AND state = 'pending'",
                )
                .bind(id)
                .bind(command_id)
                .execute(&self.pool)
                .await?;
                return Err(RentalError::Timeout(id));
            }
            Err(CommandError::Overloaded) => (
                Settlement::Cancelled {
                    reason: "overloaded",
                    door: DoorAfter::Free,
                },
                None,
                Some(RentalError::Overloaded(id)),
            ),
            Err(e @ (CommandError::Invalid(_) | CommandError::Storage(_))) => (
                Settlement::Cancelled {
                    reason: "failed",
                    door: DoorAfter::Free,
                },
                None,
                Some(RentalError::Storage(e.to_string())),
            ),
        };
        self.settle(user, id, (device, door), deposit, command, settlement)
            .await?;
        match error {
            Some(error) => Err(error),
            None => self
                .get(user, id)
                .await?
                .ok_or_else(|| RentalError::Storage("the rental vanished".into())),
        }
    }

    /// Writes what the unlock came to, in one transaction (with the hold's release if cancelled).
    async fn settle(
        &self,
        user: Uuid,
        id: Uuid,
        (device, door): (DeviceId, u16),
        deposit: i64,
        command: Option<i64>,
        settlement: Settlement,
    ) -> Result<(), RentalError> {
        let jams_limit = self.settings.jams_out_of_service;
        let result = if matches!(settlement, Settlement::Cancelled { .. }) && deposit > 0 {
            let release = Movement::release(deposit).for_(format!("rental {id} cancelled"));
            self.wallets
                .change_with(user, &release, |conn, _| {
                    Box::pin(async move {
                        write_settlement(conn, id, (device, door), command, settlement, jams_limit)
                            .await
                            .map_err(WalletError::from)
                    })
                })
                .await
                .map(drop)
        } else {
            let mut tx = self.pool.begin().await?;
            match write_settlement(&mut tx, id, (device, door), command, settlement, jams_limit)
                .await
            {
                Ok(()) => tx.commit().await.map_err(WalletError::from),
                Err(e) => Err(WalletError::from(e)),
            }
        };
        match result {
            Err(WalletError::Storage(sqlx::Error::RowNotFound)) => Err(RentalError::AlreadySettled),
            other => other.map_err(RentalError::from),
        }
    }
}

/// Cancels a running rental by an operator's decision (no fee).
async fn cancel_rental(conn: &mut PgConnection, id: Uuid) -> Result<(), WalletError> {
    let changed = sqlx::query(
        "UPDATE rentals SET state = 'cancelled', ended_at = now(), fee = 0,
                cancel_reason = 'operator'
         WHERE id = $1 AND state IN ('pending', 'active', 'ending')",
    )
    .bind(id)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if changed == 0 {
        return Err(WalletError::Invalid("the rental is not running"));
    }
    let data = json!({ "rental_id": id, "reason": "operator" });
    append(
        conn,
        &Event::new("rental.cancelled", "rental", &id.to_string(), data),
    )
    .await?;
    Ok(())
}

/// A rental to create.
#[derive(Clone)]
struct NewRental {
    id: Uuid,
    user: Uuid,
    device: DeviceId,
    door: u16,
    plan_id: Uuid,
    terms: serde_json::Value,
    deposit: i64,
}

async fn insert_rental(conn: &mut PgConnection, new: NewRental) -> Result<(), WalletError> {
    sqlx::query(
        "INSERT INTO rentals (id, user_id, device_id, door, state, plan_id, terms, deposit_held)
         VALUES ($1, $2, $3, $4, 'pending', $5, $6, $7)",
    )
    .bind(new.id)
    .bind(new.user)
    .bind(new.device.as_str())
    .bind(i32::from(new.door))
    .bind(new.plan_id)
    .bind(new.terms)
    .bind(new.deposit)
    .execute(conn)
    .await?;
    Ok(())
}

async fn write_settlement(
    conn: &mut PgConnection,
    id: Uuid,
    (device, door): (DeviceId, u16),
    command: Option<i64>,
    settlement: Settlement,
    jams_limit: i32,
) -> Result<(), sqlx::Error> {
    let door_i = i32::from(door);
    match settlement {
        Settlement::Active { already_open } => {
            let flags: Vec<&str> = if already_open {
                vec!["already_open"]
            } else {
                Vec::new()
            };
            sqlx::query(
                "UPDATE rentals SET state = 'active', started_at = now(), start_command = $2,
                        flags = $3 WHERE id = $1 AND state = 'pending'",
            )
            .bind(id)
            .bind(command)
            .bind(&flags)
            .execute(&mut *conn)
            .await?
            .rows_affected()
            .eq(&1)
            .then_some(())
            // Settled already (by another gateway's reconciler): change nothing.
            .ok_or(sqlx::Error::RowNotFound)?;
            sqlx::query("UPDATE doors SET jams_in_row = 0 WHERE device_id = $1 AND door = $2")
                .bind(device.as_str())
                .bind(door_i)
                .execute(&mut *conn)
                .await?;
            let data = json!({ "rental_id": id, "device_id": device.as_str(), "door": door, "flags": flags });
            append(
                conn,
                &Event::new("rental.started", "rental", &id.to_string(), data.clone()),
            )
            .await?;
            append(
                conn,
                &Event::new("device.unlocked", "device", device.as_str(), data),
            )
            .await?;
        }
        Settlement::Cancelled {
            reason,
            door: after,
        } => {
            sqlx::query(
                "UPDATE rentals SET state = 'cancelled', ended_at = now(), cancel_reason = $2,
                        start_command = $3 WHERE id = $1 AND state = 'pending'",
            )
            .bind(id)
            .bind(reason)
            .bind(command)
            .execute(&mut *conn)
            .await?
            .rows_affected()
            .eq(&1)
            .then_some(())
            // Settled already (by another gateway's reconciler): change nothing.
            .ok_or(sqlx::Error::RowNotFound)?;
            let update = match after {
                DoorAfter::Free => None,
                DoorAfter::Jammed => Some(
                    "UPDATE doors SET suspect = true, jams_in_row = jams_in_row + 1,
                            out_of_service = out_of_service OR jams_in_row + 1 >= $3
                     WHERE device_id = $1 AND door = $2",
                ),
                DoorAfter::Suspect => Some(
                    "UPDATE doors SET suspect = true WHERE device_id = $1 AND door = $2 AND $3 > 0",
                ),
                DoorAfter::OutOfService => Some(
                    "UPDATE doors SET out_of_service = true WHERE device_id = $1 AND door = $2 AND $3 > 0",
                ),
            };
            if let Some(sql) = update {
                sqlx::query(sql)
                    .bind(device.as_str())
                    .bind(door_i)
                    .bind(jams_limit)
                    .execute(&mut *conn)
                    .await?;
            }
            let data = json!({ "rental_id": id, "device_id": device.as_str(), "door": door, "reason": reason });
            append(
                conn,
                &Event::new("rental.cancelled", "rental", &id.to_string(), data),
            )
            .await?;
        }
    }
    Ok(())
}
