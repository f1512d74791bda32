//! Writing a new order: the order, its items and the stock taken, with its events, in the
//! caller's unit of work.

use chrono::Utc;
use firmware_protocol::DeviceId;
use uuid::Uuid;

use super::Priced;
use crate::events::{Append, Event};
use crate::storage::{UnitOfWork, in_work};
use crate::wallet::WalletError;

/// An order to write.
#[derive(Clone)]
pub(super) struct NewOrder {
    pub(super) id: Uuid,
    pub(super) user: Uuid,
    pub(super) device: DeviceId,
    pub(super) door: u16,
    pub(super) total: i64,
    pub(super) lines: Vec<Priced>,
}

/// The order, its items, the stock taken (every line or none: `Aborted` rolls it all back) and
/// its events, in the caller's unit of work.
pub(super) async fn insert_order(work: &mut UnitOfWork, new: NewOrder) -> Result<(), WalletError> {
    const ORDER: &str =
        "INSERT INTO orders (id, user_id, device_id, door, state, total, created_at)
         VALUES ($1, $2, $3, $4, 'paid', $5, $6)";
    const ITEM: &str = "INSERT INTO order_items (order_id, product_id, name, qty, unit_price)
         VALUES ($1, $2, $3, $4, $5)";
    // Each line takes its own quantity, only if the door has it.
    const TAKE: &str = "UPDATE door_stock SET qty = qty - $4, updated_at = $5
         WHERE device_id = $1 AND door = $2 AND product_id = $3 AND qty >= $4";
    let door = i32::from(new.door);
    let now = Utc::now();
    in_work!(&mut *work, |conn| sqlx::query(ORDER)
        .bind(new.id)
        .bind(new.user)
        .bind(new.device.as_str())
        .bind(door)
        .bind(new.total)
        .bind(now)
        .execute(conn)
        .await?
        .rows_affected());
    for line in &new.lines {
        let taken = in_work!(&mut *work, |conn| {
            sqlx::query(ITEM)
                .bind(new.id)
                .bind(line.product_id)
                .bind(&line.name)
                .bind(line.qty)
                .bind(line.unit_price)
                .execute(&mut *conn)
                .await?;
            sqlx::query(TAKE)
                .bind(new.device.as_str())
                .bind(door)
                .bind(line.product_id)
                .bind(line.qty)
                .bind(now)
                .execute(conn)
                .await?
                .rows_affected()
        });
        if taken != 1 {
            return Err(WalletError::Aborted("an item is out of stock"));
        }
    }
    let items: Vec<serde_json::Value> = new
        .lines
        .iter()
        .map(|l| serde_json::json!({ "product_id": l.product_id, "qty": l.qty, "unit_price_minor": l.unit_price }))
        .collect();
    let aggregate = new.id.to_string();
    let created = serde_json::json!({
        "order_id": new.id, "device_id": new.device.as_str(), "door": door, "items": items,
        "total_minor": new.total,
    });
    work.append(&Event::new("order.created", "order", &aggregate, created))
        .await?;
    let paid = serde_json::json!({ "order_id": new.id, "total_minor": new.total });
    work.append(&Event::new("order.paid", "order", &aggregate, paid))
        .await?;
    Ok(())
}
