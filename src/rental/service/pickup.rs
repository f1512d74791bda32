//! During and at the end of a rental: open the door again, end it (the fee, the hold, the
//! debt), and the door opening both need.

use chrono::{DateTime, Utc};
use firmware_protocol::DeviceId;
use serde_json::json;
use uuid::Uuid;

use super::{DoorFailure, Rental, RentalError, Rentals};
use crate::command::{Command, Origin};
use crate::events::Append;
use crate::events::Event;
use crate::rental::RentalState;
use crate::storage::{in_work, on_pool};
use crate::unlock::{self, DoorAfter, Verdict};
use crate::wallet::Movement;

impl Rentals {
    /// Opens the door of a running rental again (to add or take something); no charge.
    pub async fn reopen(&self, user: Uuid, id: Uuid) -> Result<Rental, RentalError> {
        let rental = self.get(user, id).await?.ok_or(RentalError::NotFound)?;
        if rental.state != RentalState::Active {
            return Err(RentalError::NotActive(rental.state));
        }
        let door = door_of(&rental)?;
        self.locked(
            &rental.device_id,
            door,
            self.open_door(user, &rental, "reopen"),
        )
        .await?;
        Ok(rental)
    }

    /// Ends a rental: opens the door for pickup, stops billing at that unlock, takes the fee
    /// from the hold (then from the balance; what is still missing becomes a debt) and releases
    /// the rest. Pickup is never refused over money. If the door does not open, the rental goes
    /// on and nothing is charged.
    pub async fn end(&self, user: Uuid, id: Uuid) -> Result<Rental, RentalError> {
        let now = Utc::now();
        let claimed: Option<super::store::RentalRow> = on_pool!(&self.storage, |pool, dialect| {
            let sql = format!(
                "UPDATE rentals SET state = 'ending', ending_at = $3
                 WHERE id = $1 AND user_id = $2 AND state = 'active' RETURNING {}",
                super::store::columns(dialect)
            );
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(id)
                .bind(user)
                .bind(now)
                .fetch_optional(pool)
                .await?
        });
        let rental = match claimed {
            Some(row) => Rental::from(row),
            None => {
                let rental = self.get(user, id).await?.ok_or(RentalError::NotFound)?;
                return Err(RentalError::NotActive(rental.state));
            }
        };
        // The door's lock is held from the pickup unlock to the fee: a rental left `ending` with
        // its lock free was abandoned by a request that died (see `recover_ending`).
        let pickup = async {
            crate::pause::point("rental.ending").await;
            match self.open_door(user, &rental, "pickup").await {
                Ok(()) => {}
                // Not known yet: the rental stays `ending`, and the reconciler settles it by what
                // the locker reports (`recover_ending`), once this request let go of the lock.
                Err(RentalError::OutcomeUnknown { .. }) => {
                    return Err(RentalError::OutcomeUnknown {
                        id,
                        state: RentalState::Ending,
                    });
                }
                Err(e) => {
                    self.still_active(id).await?;
                    return Err(e);
                }
            }
            crate::pause::point("rental.picked_up").await;
            self.finish(&rental, Utc::now()).await
        };
        let door = door_of(&rental)?;
        match self.locked(&rental.device_id, door, pickup).await {
            Err(e @ (RentalError::DoorBusy | RentalError::LocksUnavailable(_))) => {
                self.still_active(id).await?;
                return Err(e);
            }
            other => other?,
        }
        self.get(user, id).await?.ok_or(RentalError::NotFound)
    }

    /// A rental left `ending` whose pickup did not happen runs on; the time since the pickup was
    /// asked for is not billed.
    pub(super) async fn still_active(&self, id: Uuid) -> Result<(), RentalError> {
        const ENDING_AT: &str = "SELECT ending_at FROM rentals WHERE id = $1 AND state = 'ending'";
        const ACTIVE: &str = "UPDATE rentals SET state = 'active', unbilled_ms = unbilled_ms + $2
             WHERE id = $1 AND state = 'ending' AND ending_at = $3";
        let ending_at: Option<Option<DateTime<Utc>>> = on_pool!(&self.storage, |pool| {
            sqlx::query_scalar(ENDING_AT)
                .bind(id)
                .fetch_optional(pool)
                .await?
        });
        let Some(Some(ending_at)) = ending_at else {
            return Ok(()); // settled meanwhile
        };
        let waited = (Utc::now() - ending_at).num_milliseconds().max(0);
        on_pool!(&self.storage, |pool| sqlx::query(ACTIVE)
            .bind(id)
            .bind(waited)
            .bind(ending_at)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(())
    }

    /// Ends `rental` as of `ended_at`: the fee is captured from the hold, the rest released, any
    /// excess charged from the balance, what is still missing recorded as a debt; one
    /// transaction with the rental's end and its event.
    pub(super) async fn finish(
        &self,
        rental: &Rental,
        ended_at: DateTime<Utc>,
    ) -> Result<(), RentalError> {
        let (id, user) = (rental.id, rental.user_id);
        // The rental as its caller read it, with its terms and its unbilled time.
        let terms = rental.terms.ok_or_else(|| {
            RentalError::Unexpected(crate::storage::Unexpected::new(format!(
                "rental {id}: stored terms unreadable"
            )))
        })?;
        let elapsed = rental.billed_until(ended_at);
        let fee = crate::rental::fee(&terms, elapsed);
        let deposit = rental.deposit_held;
        let reference = format!("rental {id}");
        let (device, door) = (rental.device_id.clone(), rental.door);
        self.wallets
            .change_many_with(
                user,
                |read| {
                    let captured = fee.min(deposit);
                    let beyond = fee - captured;
                    let charged = beyond.min(read.available.saturating_add(deposit - captured));
                    let moves = vec![
                        Movement::capture(captured).for_(reference.clone()),
                        Movement::release(deposit - captured).for_(reference.clone()),
                        Movement::charge(charged).for_(reference.clone()),
                    ];
                    Ok((moves, beyond - charged))
                },
                |work| {
                    let device = device.clone();
                    Box::pin(async move {
                        const END: &str =
                            "UPDATE rentals SET state = 'ended', fee = $2, ended_at = $3
                             WHERE id = $1 AND state IN ('active', 'ending')";
                        let ended = in_work!(&mut *work, |conn| sqlx::query(END)
                            .bind(id)
                            .bind(fee)
                            .bind(ended_at)
                            .execute(conn)
                            .await?
                            .rows_affected());
                        if ended != 1 {
                            // Ended or cancelled meanwhile: charge nothing twice.
                            return Err(crate::wallet::WalletError::Aborted("settled meanwhile"));
                        }
                        let data = json!({
                            "rental_id": id, "device_id": device, "door": door, "fee_minor": fee,
                            "billed_seconds": elapsed.as_secs(),
                        });
                        work.append(&Event::new("rental.ended", "rental", &id.to_string(), data))
                            .await?;
                        Ok(())
                    })
                },
            )
            .await
            .map_err(|e| match e {
                crate::wallet::WalletError::Aborted(_) => RentalError::AlreadySettled,
                other => other.into(),
            })?;
        self.doors_changed(&rental.device_id).await;
        Ok(())
    }

    /// Runs `work` with the door's lock held; `DoorBusy` if someone else holds it.
    pub(super) async fn locked<T>(
        &self,
        device: &str,
        door: u16,
        work: impl std::future::Future<Output = Result<T, RentalError>>,
    ) -> Result<T, RentalError> {
        let locks = self
            .locks
            .as_ref()
            .ok_or_else(|| RentalError::LocksUnavailable("REDIS_URL is not set".into()))?;
        match locks
            .while_held(device, door, self.settings.lock_ttl, work)
            .await
        {
            Ok(Some(result)) => result,
            Ok(None) => Err(RentalError::DoorBusy),
            Err(e) => Err(RentalError::LocksUnavailable(e.to_string())),
        }
    }

    /// Opens a running rental's door (the caller holds its lock); on failure marks the door as
    /// the outcome says (a jam or no answer: suspect).
    async fn open_door(&self, user: Uuid, rental: &Rental, why: &str) -> Result<(), RentalError> {
        let device = DeviceId::new(&rental.device_id).ok_or(RentalError::UnknownDevice)?;
        let door = door_of(rental)?;
        let origin = Origin {
            requested_by: Some(user),
            reason: Some(format!("rental {} {why}", rental.id)),
        };
        let sent = self
            .commands
            .send_with(device, Command::Unlock { door }, &origin)
            .await;
        // Whether a failure leaves the door suspect (it jammed, or nobody knows what it did).
        let failure = match unlock::verdict(sent) {
            Verdict::Opened { .. } => None,
            Verdict::Failed { failure, door, .. } => Some((failure, door != DoorAfter::Free)),
            Verdict::Unknown { .. } => Some((DoorFailure::Timeout, true)),
            Verdict::Broken(cause) => {
                return Err(RentalError::Unexpected(crate::storage::Unexpected::new(
                    cause,
                )));
            }
        };
        let data = json!({ "rental_id": rental.id, "device_id": device.as_str(), "door": door, "why": why });
        match &failure {
            None => {
                let mut work = self.storage.begin().await?;
                work.append(&Event::new(
                    "device.unlocked",
                    "device",
                    device.as_str(),
                    data,
                ))
                .await?;
                work.commit().await?;
            }
            Some((_, true)) => {
                let (pg, sqlite) = crate::rental::add_flag_sql!("$2", "id = $1");
                let mut work = self.storage.begin().await?;
                crate::device::doors::suspect(&mut work, &device, door).await?;
                in_work!(&mut work, |conn, dialect| {
                    sqlx::query(dialect.pick(pg, sqlite))
                        .bind(rental.id)
                        .bind("door_failed")
                        .execute(conn)
                        .await?
                        .rows_affected()
                });
                work.commit().await?;
            }
            Some((_, false)) => {}
        }
        match failure {
            None => Ok(()),
            Some((DoorFailure::Timeout, _)) => Err(RentalError::OutcomeUnknown {
                id: rental.id,
                state: RentalState::Active,
            }),
            Some((why, _)) => Err(RentalError::NotOpened(rental.id, why)),
        }
    }
}

/// The rental's door as a door number.
pub(super) fn door_of(rental: &Rental) -> Result<u16, RentalError> {
    u16::try_from(rental.door).map_err(|_| RentalError::UnknownDevice)
}
