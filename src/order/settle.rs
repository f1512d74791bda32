//! Settling an order by what its door did: completed, or cancelled with the money and the stock
//! given back in one transaction; and settling those the request could not (no answer in time,
//! or the request died before its unlock was recorded).

use std::time::Duration;

use chrono::Utc;
use firmware_protocol::DeviceId;
use serde_json::json;
use uuid::Uuid;

use super::{OrderError, Orders, Settlement};
use crate::events::Append;
use crate::events::Event;
use crate::storage::{UnitOfWork, in_work, on_pool};
use crate::unlock::{self, DoorAfter, SaleRow, SettlingRow, Verdict};
use crate::wallet::{Movement, WalletError};
use crate::worker::Items;

/// How an order is named among a worker's failing items.
fn item(id: Uuid) -> String {
    format!("order {id}")
}

impl Orders {
    /// Writes what the unlock came to, in one transaction (with the refund if cancelled).
    pub(super) async fn settle(
        &self,
        user: Uuid,
        id: Uuid,
        (device, door): (DeviceId, u16),
        total: i64,
        command: Option<i64>,
        settlement: Settlement,
    ) -> Result<(), OrderError> {
        let jams_limit = self.settings.jams_out_of_service;
        let result = if matches!(settlement, Settlement::Cancelled { .. }) && total > 0 {
            let refund = Movement::refund(total).for_(format!("order {id} cancelled"));
            self.wallets
                .change_with(user, &refund, |work, _| {
                    Box::pin(async move {
                        write(work, id, (device, door), command, settlement, jams_limit)
                            .await
                            .map_err(WalletError::from)
                    })
                })
                .await
                .map(drop)
        } else {
            let mut work = self.storage.begin().await?;
            match write(
                &mut work,
                id,
                (device, door),
                command,
                settlement,
                jams_limit,
            )
            .await
            {
                Ok(()) => work.commit().await.map_err(WalletError::from),
                Err(e) => Err(WalletError::from(e)),
            }
        };
        result?;
        if matches!(settlement, Settlement::Cancelled { .. }) {
            self.catalog.stock_changed(device.as_str()).await;
        }
        Ok(())
    }

    /// Settles paid orders whose unlock had no answer, once its outcome is known (a late answer,
    /// or the locker's state report), and orders whose request died before its unlock was
    /// recorded. Returns how many were settled. An order that fails (or panics) is left to
    /// `items` (backed off, flagged when stuck) and the others go on.
    pub async fn reconcile_pending(
        &self,
        open_window: Duration,
        items: &Items,
    ) -> Result<usize, OrderError> {
        let mut settled = self.recover_interrupted(items).await?;
        let sql = format!(
            "SELECT o.id, o.user_id, o.device_id, o.door, o.total AS amount, {}
             FROM orders o JOIN commands c ON c.id = o.unlock_command
             WHERE o.state = 'paid' ORDER BY o.created_at LIMIT 100",
            unlock::RECORD_COLUMNS
        );
        let rows: Vec<SettlingRow> = on_pool!(&self.storage, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
                .fetch_all(pool)
                .await?
        });
        for row in rows {
            let verdict = match row.record.settled(open_window) {
                Ok(verdict) => verdict,
                Err(e) => {
                    // A row no command may be in: this sale is flagged, the others go on.
                    let failed = async { Err::<(), _>(OrderError::from(e)) };
                    items.attempt(&item(row.sale.id), failed).await;
                    continue;
                }
            };
            let (settlement, outcome) = match verdict {
                Some(Verdict::Opened { already_open, .. }) => {
                    (Settlement::Completed { already_open }, "completed")
                }
                Some(Verdict::Failed { failure, door, .. }) => (
                    Settlement::Cancelled {
                        reason: failure.reason(),
                        door,
                    },
                    "cancelled",
                ),
                _ => continue, // not known yet
            };
            let Some(target) = row.sale.target() else {
                continue;
            };
            let id = row.sale.id;
            let work = async {
                let result = self
                    .settle(
                        row.sale.user_id,
                        id,
                        target,
                        row.sale.amount,
                        Some(row.record.command),
                        settlement,
                    )
                    .await;
                match result {
                    Ok(()) => Ok(true),
                    Err(OrderError::AlreadySettled) => Ok(false),
                    Err(e) => Err(e),
                }
            };
            if items.attempt(&item(id), work).await == Some(true) {
                settled += 1;
                metrics::counter!("locker_order_reconciliations_total", "outcome" => outcome)
                    .increment(1);
            }
        }
        Ok(settled)
    }

    /// Paid orders with no unlock recorded whose door's lock is free: the request died between
    /// the charge and the unlock's answer (a live request renews its door's lock). If the unlock
    /// was sent (a command with the order's reason exists) it is attached and settled like a
    /// timeout, by asking the locker; if not, no door was opened: cancelled, refunded, restocked.
    pub async fn recover_interrupted(&self, items: &Items) -> Result<usize, OrderError> {
        let Some(locks) = &self.locks else {
            return Ok(0); // without locks no order is ever placed
        };
        const ABANDONED: &str = "SELECT id, user_id, device_id, door, total AS amount FROM orders
             WHERE state = 'paid' AND unlock_command IS NULL AND created_at < $1
             LIMIT 100";
        let before = Utc::now() - chrono::Duration::seconds(5);
        let rows: Vec<SaleRow> = on_pool!(&self.storage, |pool| {
            sqlx::query_as(ABANDONED)
                .bind(before)
                .fetch_all(pool)
                .await?
        });
        let mut recovered = 0;
        for row in rows {
            let id = row.id;
            let Some(target) = row.target() else {
                continue;
            };
            let (user, total) = (row.user_id, row.amount);
            let work = async {
                // Read under the lock: the request may have recorded its unlock just before.
                let attach = "UPDATE orders SET unlock_command = $2 WHERE id = $1 AND unlock_command IS NULL";
                let reason = format!("order {id}");
                if unlock::attach_sent(&self.storage, &reason, attach, id).await? {
                    return Ok(false); // settled like a timeout, by asking the locker
                }
                let cancelled = Settlement::Cancelled {
                    reason: "interrupted",
                    door: DoorAfter::Free,
                };
                match self.settle(user, id, target, total, None, cancelled).await {
                    Ok(()) => Ok(true),
                    Err(OrderError::AlreadySettled) => Ok(false),
                    Err(e) => Err(e),
                }
            };
            let ttl = self.settings.lock_ttl;
            let held = async {
                match locks
                    .while_held(target.0.as_str(), target.1, ttl, work)
                    .await
                {
                    Ok(Some(result)) => result,
                    Ok(None) => Ok(false), // a request is working on it
                    Err(e) => Err(OrderError::LocksUnavailable(e.to_string())),
                }
            };
            if items.attempt(&item(id), held).await == Some(true) {
                recovered += 1;
                metrics::counter!("locker_order_reconciliations_total", "outcome" => "interrupted")
                    .increment(1);
            }
        }
        Ok(recovered)
    }
}

/// The order's settlement, its door's marks, the stock given back if cancelled, and its events.
/// An order settled already (by another gateway) is `RowNotFound`: nothing changes.
async fn write(
    work: &mut UnitOfWork,
    id: Uuid,
    (device, door): (DeviceId, u16),
    command: Option<i64>,
    settlement: Settlement,
    jams_limit: i32,
) -> Result<(), sqlx::Error> {
    let (state, reason, flags): (&str, Option<&str>, Vec<&str>) = match settlement {
        Settlement::Completed { already_open } => (
            "completed",
            None,
            if already_open {
                vec!["already_open"]
            } else {
                Vec::new()
            },
        ),
        Settlement::Cancelled { reason, .. } => ("cancelled", Some(reason), Vec::new()),
    };
    let now = Utc::now();
    let updated = in_work!(&mut *work, |conn, dialect| {
        sqlx::query(dialect.pick(
            "UPDATE orders SET state = $2, cancel_reason = $3,
                    flags = ARRAY(SELECT jsonb_array_elements_text($4)), settled_at = $6,
                    unlock_command = coalesce($5, unlock_command)
             WHERE id = $1 AND state = 'paid'",
            "UPDATE orders SET state = $2, cancel_reason = $3, flags = $4, settled_at = $6,
                    unlock_command = coalesce($5, unlock_command)
             WHERE id = $1 AND state = 'paid'",
        ))
        .bind(id)
        .bind(state)
        .bind(reason)
        .bind(sqlx::types::Json(&flags))
        .bind(command)
        .bind(now)
        .execute(conn)
        .await?
        .rows_affected()
    });
    if updated != 1 {
        return Err(sqlx::Error::RowNotFound);
    }
    let aggregate = id.to_string();
    match settlement {
        Settlement::Completed { .. } => {
            unlock::mark_opened(work, &device, door).await?;
            let data = json!({ "order_id": id, "device_id": device.as_str(), "door": door, "flags": flags });
            work.append(&Event::new(
                "order.completed",
                "order",
                &aggregate,
                data.clone(),
            ))
            .await?;
            work.append(&Event::new(
                "device.unlocked",
                "device",
                device.as_str(),
                data,
            ))
            .await?;
        }
        Settlement::Cancelled {
            reason,
            door: after,
        } => {
            // The goods never left the door: back into its stock.
            const RESTOCK: &str = "INSERT INTO door_stock (device_id, door, product_id, qty, updated_at)
                 SELECT $1, $2, product_id, qty, $4 FROM order_items WHERE order_id = $3
                 ON CONFLICT (device_id, door, product_id)
                 DO UPDATE SET qty = door_stock.qty + EXCLUDED.qty, updated_at = EXCLUDED.updated_at";
            in_work!(&mut *work, |conn| sqlx::query(RESTOCK)
                .bind(device.as_str())
                .bind(i32::from(door))
                .bind(id)
                .bind(now)
                .execute(conn)
                .await?
                .rows_affected());
            unlock::mark_door(work, &device, door, after, jams_limit).await?;
            let data = json!({ "order_id": id, "device_id": device.as_str(), "door": door, "reason": reason });
            work.append(&Event::new("order.cancelled", "order", &aggregate, data))
                .await?;
        }
    }
    Ok(())
}
