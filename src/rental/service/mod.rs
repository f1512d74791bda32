//! The rental service. Starting a rental: pick a free door, lock it (in Redis, or in the process
//! in edge mode), create the rental and hold the deposit in one unit of work, open the door, and
//! settle by what the door did: a failed unlock never charges anyone (the hold is released in the
//! same unit of work that cancels the rental). Its statements are in `store`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use firmware_protocol::DeviceId;
use uuid::Uuid;

use super::plan;

mod error;
mod operator;
mod pickup;
mod reconcile;
mod store;

use store::{NewRental, RentalRow, activate, select, write_cancellation};

use crate::command::CommandService;
use crate::lock::DoorLocks;
use crate::storage::{Storage, Violation, on_pool};
pub use crate::unlock::DoorFailure;
use crate::unlock::{self, Settlement};
use crate::wallet::{Movement, WalletError, Wallets};
pub use error::RentalError;

pub use crate::config::RentalSettings;

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
    pub state: crate::rental::RentalState,
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
    /// Its plan's terms as they were at the start (`None` if they cannot be read).
    pub terms: Option<crate::rental::Terms>,
    /// Time not billed (pickups that did not open), milliseconds.
    pub unbilled_ms: i64,
}

impl Rental {
    /// The time billed if it ends at `ended_at`: from the unlock at the start, less the waits
    /// of pickups that did not open.
    pub fn billed_until(&self, ended_at: DateTime<Utc>) -> Duration {
        let unbilled = Duration::from_millis(u64::try_from(self.unbilled_ms).unwrap_or(0));
        self.started_at
            .map(|at| (ended_at - at).to_std().unwrap_or_default())
            .unwrap_or_default()
            .saturating_sub(unbilled)
    }

    /// How its fee was made: for an ended rental, from its terms and the time billed.
    pub fn bill(&self) -> Option<crate::rental::fee::Bill> {
        let (terms, ended) = (self.terms?, self.ended_at?);
        Some(crate::rental::fee::bill(&terms, self.billed_until(ended)))
    }
}

/// Rentals.
#[derive(Debug, Clone)]
pub struct Rentals {
    storage: Storage,
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
        storage: impl Into<Storage>,
        wallets: Wallets,
        commands: CommandService,
        locks: Option<DoorLocks>,
        settings: RentalSettings,
        cache: crate::cache::Cache,
    ) -> Self {
        Self {
            storage: storage.into(),
            wallets,
            commands,
            locks,
            settings,
            cache,
        }
    }

    /// One of the user's rentals (another user's is `None`).
    pub async fn get(&self, user: Uuid, id: Uuid) -> Result<Option<Rental>, RentalError> {
        let row: Option<RentalRow> = on_pool!(&self.storage, |pool, dialect| {
            sqlx::query_as(select(dialect, "WHERE id = $1 AND user_id = $2"))
                .bind(id)
                .bind(user)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(Rental::from))
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
        // One round trip: the user's standing, the locker, and its free doors that fit (as a
        // JSON array of [door, size class], in each dialect's words).
        /// The statement, written once; `$free` aggregates the free doors.
        macro_rules! standing_sql {
            ($free:literal) => {
                concat!(
                    "WITH free AS (
                         SELECT d.door, d.size_class FROM doors d
                         WHERE d.device_id = $2 AND ($3 IS NULL OR d.size_class = $3)
                           AND ($4 IS NULL OR d.door = $4)
                           AND NOT d.out_of_service AND NOT d.suspect AND d.sensor <> 'open'
                           AND NOT EXISTS (SELECT 1 FROM door_stock s WHERE s.device_id = d.device_id
                                           AND s.door = d.door AND s.qty > 0)
                           AND NOT EXISTS (SELECT 1 FROM rentals r WHERE r.device_id = d.device_id
                                           AND r.door = d.door
                                           AND r.state IN ('pending', 'active', 'ending'))
                     )
                     SELECT (SELECT count(*) FROM rentals WHERE user_id = $1
                                AND state IN ('pending', 'active', 'ending')),
                            coalesce((SELECT debt FROM wallets WHERE user_id = $1), 0),
                            EXISTS (SELECT 1 FROM devices WHERE id = $2 AND revoked_at IS NULL),
                            EXISTS (SELECT 1 FROM doors WHERE device_id = $2
                                    AND ($4 IS NULL OR door = $4)),
                            EXISTS (SELECT 1 FROM doors WHERE device_id = $2
                                    AND ($3 IS NULL OR size_class = $3)), ",
                    $free
                )
            };
        }
        type Standing = (
            i64,
            i64,
            bool,
            bool,
            bool,
            sqlx::types::Json<Vec<(i32, String)>>,
        );
        let (active, debt, exists, door_known, size_known, free): Standing =
            on_pool!(&self.storage, |pool, dialect| {
                sqlx::query_as(dialect.pick(
                    standing_sql!(
                    "coalesce((SELECT json_agg(json_build_array(door, size_class) ORDER BY door)
                               FROM free), '[]')"
                ),
                    standing_sql!(
                        "(SELECT json_group_array(json_array(door, size_class) ORDER BY door)
                      FROM free)"
                    ),
                ))
                .bind(user)
                .bind(device)
                .bind(size)
                .bind(door.map(i32::from))
                .fetch_one(pool)
                .await?
            });
        if !exists {
            return Err(RentalError::UnknownDevice);
        }
        if !door_known {
            return Err(RentalError::NoSuchDoor);
        }
        if !size_known {
            return Err(RentalError::NoSuchSize);
        }
        if debt > 0 {
            return Err(RentalError::Debt);
        }
        if active >= self.settings.max_active {
            return Err(RentalError::TooManyActive(active));
        }
        let candidates = free.0;
        let mut lacked_plan = false;
        for (door, size_class) in candidates {
            let Ok(door) = u16::try_from(door) else {
                continue;
            };
            let plan = self
                .cache
                .get_or_load(&plan::cache_key(&size_class), || {
                    plan::for_size(&self.storage, &size_class)
                })
                .await?;
            let Some(plan) = plan else {
                lacked_plan = true;
                continue;
            };
            let work = self.with_lock(user, device_id, door, &plan);
            let result = match locks
                .while_held(device, door, self.settings.lock_ttl, work)
                .await
            {
                Ok(Some(result)) => result,
                Ok(None) => continue, // someone else is renting it: try the next door
                Err(e) => return Err(RentalError::LocksUnavailable(e.to_string())),
            };
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

    /// Forgets the locker's cached availability: a door was taken or freed.
    pub(super) async fn doors_changed(&self, device: &str) {
        self.cache
            .invalidate(&crate::cache::availability_key(device))
            .await;
    }

    /// Any rental, whoever's (for operators).
    pub async fn any(&self, id: Uuid) -> Result<Rental, RentalError> {
        let row: Option<RentalRow> = on_pool!(&self.storage, |pool, dialect| {
            sqlx::query_as(select(dialect, "WHERE id = $1"))
                .bind(id)
                .fetch_optional(pool)
                .await?
        });
        row.map(Rental::from).ok_or(RentalError::NotFound)
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
        let terms = serde_json::to_value(plan.terms)
            .map_err(|e| RentalError::Unexpected(crate::storage::Unexpected::new(e)))?;
        let row = NewRental {
            id,
            user,
            device,
            door,
            plan_id: plan.id,
            terms,
            deposit,
        };
        match self.create_holding(&row).await {
            Ok(store::Created::Yes) => {}
            Ok(store::Created::NoFunds) => return Err(RentalError::InsufficientFunds),
            Ok(store::Created::TooMany(running)) => {
                return Err(RentalError::TooManyActive(running));
            }
            // The database's fence: the door has a running rental already.
            Err(e) if e.violation() == Some(Violation::Unique) => {
                return Err(RentalError::NoFreeDoor);
            }
            Err(e) => return Err(e.into()),
        }
        crate::pause::point("rental.created").await;
        let sale = unlock::SaleRow::new(id, user, (device, door), deposit);
        match unlock::open(self, &self.commands, &sale, (device, door)).await? {
            Some(rental) => Ok(rental),
            None => self.get(user, id).await?.ok_or_else(|| {
                RentalError::Unexpected(crate::storage::Unexpected::new("the rental vanished"))
            }),
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
    ) -> Result<Option<Rental>, RentalError> {
        let jams_limit = self.settings.jams_out_of_service;
        let cancelled = match settlement {
            Settlement::Opened { already_open } => {
                let started =
                    activate(&self.storage, id, (device, door), command, already_open).await?;
                self.doors_changed(device.as_str()).await;
                return started.map(Some).ok_or(RentalError::AlreadySettled);
            }
            Settlement::Cancelled { reason, door } => (reason, door),
        };
        let result = if deposit > 0 {
            let release = Movement::release(deposit).for_(format!("rental {id} cancelled"));
            self.wallets
                .change_with(user, &release, |work, _| {
                    Box::pin(async move {
                        write_cancellation(work, id, (device, door), command, cancelled, jams_limit)
                            .await
                            .map_err(WalletError::from)
                    })
                })
                .await
                .map(drop)
        } else {
            let mut work = self.storage.begin().await?;
            match write_cancellation(
                &mut work,
                id,
                (device, door),
                command,
                cancelled,
                jams_limit,
            )
            .await
            {
                Ok(()) => work.commit().await.map_err(WalletError::from),
                Err(e) => Err(WalletError::from(e)),
            }
        };
        self.doors_changed(device.as_str()).await;
        match result {
            Err(WalletError::Storage(sqlx::Error::RowNotFound)) => Err(RentalError::AlreadySettled),
            other => other.map(|()| None).map_err(RentalError::from),
        }
    }
}
