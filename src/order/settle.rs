//! Settling an order by what its door did: completed, or cancelled with the money and the stock
//! given back in one transaction; and settling those the request could not (no answer in time,
//! or the request died before its unlock was recorded).

use std::time::Duration;

use chrono::Utc;
use firmware_protocol::DeviceId;
use serde_json::json;
use uuid::Uuid;

use super::{OrderError, Orders};
use crate::events::Append;
use crate::events::Event;
use crate::storage::{Storage, UnitOfWork, in_work};
use crate::unlock::{self, SaleRow, Settlement};
use crate::wallet::{Movement, WalletError};
use crate::worker::Items;

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
    /// recorded (the one reconciler of sales, [`unlock::settle_waiting`] and
    /// [`unlock::recover_interrupted`]). Returns how many were settled. An order that fails (or
    /// panics) is left to `items` (backed off, flagged when stuck) and the others go on.
    pub async fn reconcile_pending(
        &self,
        open_window: Duration,
        items: &Items,
    ) -> Result<usize, OrderError> {
        let mut settled = unlock::recover_interrupted(self, items).await?;
        settled += unlock::settle_waiting(self, open_window, items).await?;
        Ok(settled)
    }
}

impl unlock::Sales for Orders {
    type Error = OrderError;
    type Settled = ();
    const KIND: &'static str = "order";
    const METRIC: &'static str = "locker_order_reconciliations_total";
    const OPENED: &'static str = "completed";
    const UNLOCKED: &'static str = "order.unlocked";
    const WAITING: &'static str = concat!(
        "SELECT o.id, o.user_id, o.device_id, o.door, o.total AS amount, ",
        unlock::record_columns!(),
        " FROM orders o JOIN commands c ON c.id = o.unlock_command
         WHERE o.state = 'paid' ORDER BY o.created_at LIMIT 100"
    );
    const ABANDONED: &'static str = "SELECT id, user_id, device_id, door, total AS amount
         FROM orders
         WHERE state = 'paid' AND unlock_command IS NULL AND created_at < $1
         LIMIT 100";
    const ATTACH: &'static str = "UPDATE orders SET unlock_command = $2
         WHERE id = $1 AND state = 'paid' AND unlock_command IS NULL";

    fn storage(&self) -> &Storage {
        &self.storage
    }

    /// A live request renews its door's lock, so an order whose lock is free a few seconds
    /// after it was paid was abandoned.
    fn abandoned_after(&self) -> Duration {
        Duration::from_secs(5)
    }

    async fn settle(
        &self,
        sale: &SaleRow,
        target: (DeviceId, u16),
        command: Option<i64>,
        settlement: Settlement,
    ) -> Result<(), OrderError> {
        let (user, id, total) = (sale.user_id, sale.id, sale.amount);
        Orders::settle(self, user, id, target, total, command, settlement).await
    }

    fn already_settled(error: &OrderError) -> bool {
        matches!(error, OrderError::AlreadySettled)
    }

    fn not_opened(id: Uuid, failure: unlock::DoorFailure) -> OrderError {
        OrderError::NotOpened(id, failure)
    }

    async fn if_abandoned<T: Send>(
        &self,
        (device, door): (DeviceId, u16),
        work: impl std::future::Future<Output = Result<T, OrderError>> + Send,
    ) -> Result<Option<T>, OrderError> {
        // Without locks no order is ever placed: none can have been abandoned.
        let Some(locks) = &self.locks else {
            return Ok(None);
        };
        match locks
            .while_held(device.as_str(), door, self.settings.lock_ttl, work)
            .await
        {
            Ok(Some(result)) => result.map(Some),
            Ok(None) => Ok(None), // a request is working on it
            Err(e) => Err(OrderError::LocksUnavailable(e.to_string())),
        }
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
        Settlement::Opened { already_open } => (
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
        Settlement::Opened { .. } => {
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
