//! Settling rentals the request that started them could not settle: an unlock that timed out
//! (settled by the locker's report), or a request that died before its unlock was recorded.

use std::time::Duration;

use firmware_protocol::DeviceId;
use sqlx::Row;
use uuid::Uuid;

use super::{RentalError, Rentals, Settlement};
use crate::unlock::{self, DoorAfter, Verdict};

impl Rentals {
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
            let record = unlock::Record {
                command: row.try_get("command")?,
                state: &state,
                door_result: door_result.as_deref(),
                refusal: refusal.as_deref(),
                surfaced: row.try_get("surfaced")?,
                window_passed: row.try_get("window_passed")?,
            };
            let settlement = match unlock::settled(record) {
                Some(Verdict::Opened { already_open, .. }) => Settlement::Active { already_open },
                Some(Verdict::Failed { failure, door, .. }) => Settlement::Cancelled {
                    reason: failure.reason(),
                    door,
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
}
