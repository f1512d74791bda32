//! Settling rentals the request that started them could not settle: an unlock that timed out
//! (settled by the locker's report), or a request that died before its unlock was recorded.

use std::time::Duration;

use chrono::{DateTime, Utc};
use firmware_protocol::DeviceId;

use super::{RentalError, Rentals};
use crate::storage::Storage;
use crate::storage::on_pool;
use crate::unlock::{self, RecordRow, SaleRow, Settlement, Verdict};
use crate::worker::Items;

/// How a rental is named among a worker's failing items.
fn item(id: uuid::Uuid) -> String {
    format!("rental {id}")
}

/// A pickup unlock as recorded, and when its door opened.
#[derive(sqlx::FromRow)]
struct PickupRow {
    #[sqlx(flatten)]
    record: RecordRow,
    opened_at: Option<DateTime<Utc>>,
}

impl Rentals {
    /// Settles rentals whose opening unlock timed out, once the command's outcome is known (a
    /// late answer, or the locker's state report): active if the door opened; cancelled, with the
    /// hold released, if it was refused, jammed, or the locker could not say (the door is then
    /// marked for a check); and rentals whose request died (see [`unlock::recover_interrupted`]
    /// and [`Rentals::recover_ending`]). Returns how many were settled. A rental that fails (or
    /// panics) is left to `items` (backed off, flagged when stuck) and the others go on.
    pub async fn reconcile_pending(
        &self,
        open_window: Duration,
        items: &Items,
    ) -> Result<usize, RentalError> {
        let mut settled = unlock::recover_interrupted(self, items).await?;
        settled += self.recover_ending(open_window, items).await?;
        settled += unlock::settle_waiting(self, open_window, items).await?;
        Ok(settled)
    }

    /// How old a half-done rental must be before the reconciler looks at it. With door locks,
    /// a request renews its door's lock while it works, so a rental whose lock is free was
    /// abandoned (its request died): a few seconds is enough. Without locks (no rental can
    /// start), longer than any request could take.
    fn abandoned_after(&self) -> Duration {
        if self.locks.is_some() {
            Duration::from_secs(5)
        } else {
            self.settings.lock_ttl * 4 + Duration::from_secs(60)
        }
    }

    /// Runs `work` if no request is working on the door (its lock is free; taken meanwhile),
    /// else `Ok(None)`.
    async fn if_abandoned<T>(
        &self,
        (device, door): (DeviceId, u16),
        work: impl std::future::Future<Output = Result<T, RentalError>>,
    ) -> Result<Option<T>, RentalError> {
        let Some(locks) = &self.locks else {
            return work.await.map(Some);
        };
        match locks
            .while_held(device.as_str(), door, self.settings.lock_ttl, work)
            .await
        {
            Ok(Some(result)) => result.map(Some),
            Ok(None) => Ok(None),
            Err(e) => Err(RentalError::LocksUnavailable(e.to_string())),
        }
    }

    /// Rentals left `ending` by a request that died: if the pickup unlock opened the door, the
    /// rental ends as of that moment (the fee is taken); if it was never sent or the door did not
    /// open, the rental runs on and nothing is charged; if its outcome is not known yet, the
    /// locker is asked and the rental looked at again.
    pub async fn recover_ending(
        &self,
        open_window: Duration,
        items: &Items,
    ) -> Result<usize, RentalError> {
        const ENDING: &str =
            "SELECT id, user_id, device_id, door, deposit_held AS amount FROM rentals
             WHERE state = 'ending' AND ending_at < $1 LIMIT 100";
        let pickup_sql = format!(
            "SELECT {}, coalesce(c.door_at, c.answered_at) AS opened_at
             FROM commands c JOIN rentals r ON r.id = $1
             WHERE c.reason = $2 AND c.created_at >= r.ending_at
             ORDER BY c.id DESC LIMIT 1",
            unlock::RECORD_COLUMNS
        );
        let before = crate::storage::before(Utc::now(), self.abandoned_after());
        let rows: Vec<SaleRow> = on_pool!(&self.storage, |pool| {
            sqlx::query_as(ENDING).bind(before).fetch_all(pool).await?
        });
        let mut recovered = 0;
        for row in rows {
            let (id, user) = (row.id, row.user_id);
            let Some(target) = row.target() else {
                continue;
            };
            let work = async {
                let reason = format!("rental {id} pickup");
                let command: Option<PickupRow> = on_pool!(&self.storage, |pool| {
                    sqlx::query_as(sqlx::AssertSqlSafe(pickup_sql.as_str()))
                        .bind(id)
                        .bind(&reason)
                        .fetch_optional(pool)
                        .await?
                });
                let verdict = match &command {
                    None => None,
                    Some(PickupRow { record, .. }) => match record.settled(open_window)? {
                        Some(verdict) => Some(verdict),
                        None => {
                            // Not known yet: make sure the locker is asked; look again later.
                            crate::command::store::mark_unknown(&self.storage, record.command)
                                .await?;
                            return Ok(false);
                        }
                    },
                };
                match (verdict, command) {
                    (Some(Verdict::Opened { .. }), Some(PickupRow { opened_at, .. })) => {
                        let rental = self.get(user, id).await?.ok_or(RentalError::NotFound)?;
                        self.finish(&rental, opened_at.unwrap_or_else(Utc::now))
                            .await?;
                    }
                    _ => self.still_active(id).await?,
                }
                Ok(true)
            };
            if items
                .attempt(&item(id), self.if_abandoned(target, work))
                .await
                == Some(Some(true))
            {
                recovered += 1;
                metrics::counter!("locker_rental_reconciliations_total", "outcome" => "ending")
                    .increment(1);
            }
        }
        Ok(recovered)
    }
}

impl unlock::Sales for Rentals {
    type Error = RentalError;
    type Settled = Option<super::Rental>;
    const KIND: &'static str = "rental";
    const METRIC: &'static str = "locker_rental_reconciliations_total";
    const OPENED: &'static str = "active";
    const UNLOCKED: &'static str = "rental.unlocked";
    const WAITING: &'static str = concat!(
        "SELECT r.id, r.user_id, r.device_id, r.door, r.deposit_held AS amount, ",
        unlock::record_columns!(),
        " FROM rentals r JOIN commands c ON c.id = r.start_command
         WHERE r.state = 'pending' ORDER BY r.created_at LIMIT 100"
    );
    const ABANDONED: &'static str = "SELECT id, user_id, device_id, door, deposit_held AS amount
         FROM rentals
         WHERE state = 'pending' AND start_command IS NULL AND created_at < $1
         LIMIT 100";
    const ATTACH: &'static str = "UPDATE rentals SET start_command = $2
         WHERE id = $1 AND state = 'pending' AND start_command IS NULL";

    fn storage(&self) -> &Storage {
        &self.storage
    }

    fn abandoned_after(&self) -> Duration {
        Rentals::abandoned_after(self)
    }

    async fn settle(
        &self,
        sale: &SaleRow,
        target: (DeviceId, u16),
        command: Option<i64>,
        settlement: Settlement,
    ) -> Result<Option<super::Rental>, RentalError> {
        let (user, id, deposit) = (sale.user_id, sale.id, sale.amount);
        Rentals::settle(self, user, id, target, deposit, command, settlement).await
    }

    fn already_settled(error: &RentalError) -> bool {
        matches!(error, RentalError::AlreadySettled)
    }

    fn not_opened(id: uuid::Uuid, failure: unlock::DoorFailure) -> RentalError {
        RentalError::NotStarted(id, failure)
    }

    async fn if_abandoned<T: Send>(
        &self,
        target: (DeviceId, u16),
        work: impl std::future::Future<Output = Result<T, RentalError>> + Send,
    ) -> Result<Option<T>, RentalError> {
        Rentals::if_abandoned(self, target, work).await
    }
}
