//! Settling an order by what its door did: completed, or cancelled with the money and the stock
//! given back in one transaction; and settling those the request could not (no answer in time,
//! or the request died before its unlock was recorded).

use std::time::Duration;

use firmware_protocol::DeviceId;
use serde_json::json;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::{OrderError, Orders, Settlement};
use crate::events::{Event, append};
use crate::unlock::{self, DoorAfter, Verdict};
use crate::wallet::{Movement, WalletError};

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
                        let conn = work.postgres("orders")?;
                        write(conn, id, (device, door), command, settlement, jams_limit)
                            .await
                            .map_err(WalletError::from)
                    })
                })
                .await
                .map(drop)
        } else {
            let mut tx = self.pool.begin().await?;
            match write(&mut tx, id, (device, door), command, settlement, jams_limit).await {
                Ok(()) => tx.commit().await.map_err(WalletError::from),
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
    /// recorded. Returns how many were settled.
    pub async fn reconcile_pending(&self, open_window: Duration) -> Result<usize, OrderError> {
        let mut settled = self.recover_interrupted().await?;
        let sql = format!(
            "SELECT o.id, o.user_id, o.device_id, o.door, o.total, {}
             FROM orders o JOIN commands c ON c.id = o.unlock_command
             WHERE o.state = 'paid' ORDER BY o.created_at LIMIT 100",
            unlock::RECORD_COLUMNS
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(open_window.as_secs_f64())
            .fetch_all(&self.pool)
            .await?;
        for row in rows {
            let verdict = unlock::settled_row(&row)?;
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
            let Some(target) = unlock::target(&row)? else {
                continue;
            };
            let id: Uuid = row.try_get("id")?;
            let result = self
                .settle(
                    row.try_get("user_id")?,
                    id,
                    target,
                    row.try_get("total")?,
                    Some(row.try_get("command")?),
                    settlement,
                )
                .await;
            metrics::counter!("locker_order_reconciliations_total", "outcome" => outcome)
                .increment(1);
            match result {
                Ok(()) => settled += 1,
                Err(OrderError::AlreadySettled) => {}
                Err(e) => tracing::warn!(error = %e, order = %id, "cannot settle a paid order"),
            }
        }
        Ok(settled)
    }

    /// Paid orders with no unlock recorded whose door's lock is free: the request died between
    /// the charge and the unlock's answer (a live request renews its door's lock). If the unlock
    /// was sent (a command with the order's reason exists) it is attached and settled like a
    /// timeout, by asking the locker; if not, no door was opened: cancelled, refunded, restocked.
    pub async fn recover_interrupted(&self) -> Result<usize, OrderError> {
        let Some(locks) = &self.locks else {
            return Ok(0); // without locks no order is ever placed
        };
        let rows = sqlx::query(
            "SELECT o.id, o.user_id, o.device_id, o.door, o.total FROM orders o
             WHERE o.state = 'paid' AND o.unlock_command IS NULL
               AND o.created_at < now() - interval '5 seconds'
             LIMIT 100",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut recovered = 0;
        for row in rows {
            let id: Uuid = row.try_get("id")?;
            let Some(target) = unlock::target(&row)? else {
                continue;
            };
            let user: Uuid = row.try_get("user_id")?;
            let total: i64 = row.try_get("total")?;
            let work = async {
                // Read under the lock: the request may have recorded its unlock just before.
                let attach = "UPDATE orders SET unlock_command = $2 WHERE id = $1 AND unlock_command IS NULL";
                let reason = format!("order {id}");
                if unlock::attach_sent(&self.pool, &reason, attach, id).await? {
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
            match locks
                .while_held(target.0.as_str(), target.1, ttl, work)
                .await
            {
                Ok(Some(Ok(true))) => {
                    recovered += 1;
                    metrics::counter!("locker_order_reconciliations_total", "outcome" => "interrupted")
                        .increment(1);
                }
                Ok(Some(Ok(false)) | None) => {}
                Ok(Some(Err(e))) => {
                    tracing::warn!(error = %e, order = %id, "cannot recover an order")
                }
                Err(e) => tracing::warn!(error = %e, order = %id, "cannot recover an order"),
            }
        }
        Ok(recovered)
    }
}

/// The order's settlement, its door's marks, the stock given back if cancelled, and its events.
/// An order settled already (by another gateway) is `RowNotFound`: nothing changes.
async fn write(
    conn: &mut PgConnection,
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
    let updated = sqlx::query(
        "UPDATE orders SET state = $2, cancel_reason = $3, flags = $4, settled_at = now(),
                unlock_command = coalesce($5, unlock_command)
         WHERE id = $1 AND state = 'paid'",
    )
    .bind(id)
    .bind(state)
    .bind(reason)
    .bind(&flags)
    .bind(command)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if updated != 1 {
        return Err(sqlx::Error::RowNotFound);
    }
    let aggregate = id.to_string();
    match settlement {
        Settlement::Completed { .. } => {
            unlock::mark_opened(conn, &device, door).await?;
            let data = json!({ "order_id": id, "device_id": device.as_str(), "door": door, "flags": flags });
            append(
                conn,
                &Event::new("order.completed", "order", &aggregate, data.clone()),
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
            // The goods never left the door: back into its stock.
            sqlx::query(
                "INSERT INTO door_stock (device_id, door, product_id, qty)
                 SELECT $1, $2, product_id, qty FROM order_items WHERE order_id = $3
                 ON CONFLICT (device_id, door, product_id)
                 DO UPDATE SET qty = door_stock.qty + EXCLUDED.qty, updated_at = now()",
            )
            .bind(device.as_str())
            .bind(i32::from(door))
            .bind(id)
            .execute(&mut *conn)
            .await?;
            unlock::mark_door(conn, &device, door, after, jams_limit).await?;
            let data = json!({ "order_id": id, "device_id": device.as_str(), "door": door, "reason": reason });
            append(
                conn,
                &Event::new("order.cancelled", "order", &aggregate, data),
            )
            .await?;
        }
    }
    Ok(())
}
