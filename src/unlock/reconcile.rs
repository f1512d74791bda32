//! The one reconciler of sales (rentals, orders) whose request could not settle them: an unlock
//! that timed out, settled once the locker's answer or report is recorded; and a request that
//! died before it recorded its unlock. What differs between the kinds of sale is the [`Sales`]
//! trait: their statements (each kind's own, on its own tables) and how one is settled.

use std::future::Future;
use std::time::Duration;

use chrono::Utc;
use firmware_protocol::DeviceId;

use super::{DoorAfter, SaleRow, Settlement, SettlingRow, Verdict};
use crate::storage::{Storage, on_pool};
use crate::worker::Items;

/// A kind of sale, as the reconciler drives it.
pub trait Sales: Send + Sync {
    /// The kind's error.
    type Error: From<sqlx::Error> + From<crate::storage::Unexpected> + std::fmt::Display + Send;
    /// What settling one gives its request.
    type Settled: Send;
    /// What one is called (`rental`, `order`): its items among a worker's are `"{KIND} {id}"`,
    /// its unlocks' reason is `"{KIND} {id}"` too.
    const KIND: &'static str;
    /// The counter of reconciliations, by `outcome`.
    const METRIC: &'static str;
    /// The `outcome` of one whose door opened (`active`, `completed`).
    const OPENED: &'static str;
    /// The test pause point right after its unlock was sent (`rental.unlocked`, ...).
    const UNLOCKED: &'static str;
    /// Sales waiting for their unlock's outcome, with it: the columns of a [`SettlingRow`],
    /// oldest first, at most 100.
    const WAITING: &'static str;
    /// Sales still waiting with no unlock recorded, created before `$1`: the columns of a
    /// [`SaleRow`], at most 100.
    const ABANDONED: &'static str;
    /// Records command `$2` as the unlock of sale `$1` if it is still waiting and has none.
    const ATTACH: &'static str;

    /// The database.
    fn storage(&self) -> &Storage;

    /// How old a sale without an unlock must be before it counts as abandoned.
    fn abandoned_after(&self) -> Duration;

    /// Settles `sale` (at `target`, its unlock `command`) as `settlement`, in one transaction
    /// with its money; an error that [`Sales::already_settled`] recognises if it was settled
    /// already (by its request, or another gateway).
    fn settle(
        &self,
        sale: &SaleRow,
        target: (DeviceId, u16),
        command: Option<i64>,
        settlement: Settlement,
    ) -> impl Future<Output = Result<Self::Settled, Self::Error>> + Send;

    /// `error` says the sale was settled already.
    fn already_settled(error: &Self::Error) -> bool;

    /// The error a request gets when the door of sale `id` did not open (or nobody knows yet).
    fn not_opened(id: uuid::Uuid, failure: super::DoorFailure) -> Self::Error;

    /// Runs `work` if no request is working on the door (its lock is free; held meanwhile), else
    /// `Ok(None)`.
    fn if_abandoned<T: Send>(
        &self,
        target: (DeviceId, u16),
        work: impl Future<Output = Result<T, Self::Error>> + Send,
    ) -> impl Future<Output = Result<Option<T>, Self::Error>> + Send;
}

fn item<S: Sales>(id: uuid::Uuid) -> String {
    format!("{} {id}", S::KIND)
}

/// Settles `sale` as `settlement`: `Ok(false)` if it was settled already.
async fn settle_once<S: Sales>(
    sales: &S,
    sale: &SaleRow,
    target: (DeviceId, u16),
    command: Option<i64>,
    settlement: Settlement,
) -> Result<bool, S::Error> {
    match sales.settle(sale, target, command, settlement).await {
        Ok(_) => Ok(true),
        Err(e) if S::already_settled(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Settles the sales whose unlock's outcome is now known (a late answer, the locker's report):
/// the door opened, or it did not (refused, jammed, or the locker could not say: the door is
/// then marked for a check). Returns how many were settled. A sale that fails (or panics) is
/// left to `items` (backed off, flagged when stuck) and the others go on.
pub async fn settle_waiting<S: Sales>(
    sales: &S,
    open_window: Duration,
    items: &Items,
) -> Result<usize, S::Error> {
    let rows: Vec<SettlingRow> = on_pool!(sales.storage(), |pool| {
        sqlx::query_as(S::WAITING).fetch_all(pool).await?
    });
    let mut settled = 0;
    for row in rows {
        let id = row.sale.id;
        let verdict = match row.record.settled(open_window) {
            Ok(verdict) => verdict,
            Err(e) => {
                // A row no command may be in: this sale is flagged, the others go on.
                let failed = async { Err::<(), _>(S::Error::from(e)) };
                items.attempt(&item::<S>(id), failed).await;
                continue;
            }
        };
        let settlement = match verdict {
            Some(Verdict::Opened { already_open, .. }) => Settlement::Opened { already_open },
            Some(Verdict::Failed { failure, door, .. }) => Settlement::Cancelled {
                reason: failure.reason(),
                door,
            },
            _ => continue, // not known yet
        };
        let Some(target) = row.sale.target() else {
            continue;
        };
        let command = Some(row.record.command);
        let work = settle_once(sales, &row.sale, target, command, settlement);
        if items.attempt(&item::<S>(id), work).await == Some(true) {
            settled += 1;
            let outcome = match settlement {
                Settlement::Opened { .. } => S::OPENED,
                Settlement::Cancelled { .. } => "cancelled",
            };
            metrics::counter!(S::METRIC, "outcome" => outcome).increment(1);
        }
    }
    Ok(settled)
}

/// Sales left waiting with no unlock recorded by a request that died (the gateway stopped or
/// crashed in between), once their door's lock is free: if the unlock was sent (a command with
/// the sale's reason exists) it is attached and settled like a timeout, by asking the locker; if
/// not, no door was opened, so the sale is cancelled and its money given back.
pub async fn recover_interrupted<S: Sales>(sales: &S, items: &Items) -> Result<usize, S::Error> {
    let before = crate::storage::before(Utc::now(), sales.abandoned_after());
    let rows: Vec<SaleRow> = on_pool!(sales.storage(), |pool| {
        sqlx::query_as(S::ABANDONED)
            .bind(before)
            .fetch_all(pool)
            .await?
    });
    let mut recovered = 0;
    for row in rows {
        let Some(target) = row.target() else {
            continue;
        };
        let work = async {
            // Read under the lock: the request may have recorded its unlock just before.
            let reason = item::<S>(row.id);
            if super::attach_sent(sales.storage(), &reason, S::ATTACH, row.id).await? {
                return Ok(false); // settled like a timeout, by asking the locker
            }
            let cancelled = Settlement::Cancelled {
                reason: "interrupted",
                door: DoorAfter::Free,
            };
            settle_once(sales, &row, target, None, cancelled).await
        };
        if items
            .attempt(&item::<S>(row.id), sales.if_abandoned(target, work))
            .await
            == Some(Some(true))
        {
            recovered += 1;
            metrics::counter!(S::METRIC, "outcome" => "interrupted").increment(1);
        }
    }
    Ok(recovered)
}
