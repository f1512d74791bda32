//! Whose a door's content is: a running rental's (the renter's things) or the shop's (stock for
//! sale). Read before an operator opens doors in bulk, and shown on the console's door grid.

use serde::Serialize;
use utoipa::ToSchema;

use crate::storage::{Storage, on_pool};

/// What a door holds that is not the operator's to take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Occupant {
    /// A rental is running (pending, active or ending): the content is the renter's.
    Rented,
    /// Products are stocked in it for sale.
    Stocked,
}

impl Occupant {
    /// Its name, as the API and the audit log write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Occupant::Rented => "rented",
            Occupant::Stocked => "stocked",
        }
    }
}

/// The locker's doors that are rented or stocked, by door (a door both rented and stocked is
/// listed as rented first).
pub async fn of_locker(
    storage: &Storage,
    device: &str,
) -> Result<Vec<(i32, Occupant)>, sqlx::Error> {
    const OCCUPIED: &str = "SELECT door, 0 AS what FROM rentals WHERE device_id = $1
           AND state IN ('pending', 'active', 'ending')
         UNION ALL
         SELECT door, 1 AS what FROM door_stock WHERE device_id = $1 AND qty > 0
         ORDER BY 1, 2";
    let rows: Vec<(i32, i32)> = on_pool!(storage, |pool| sqlx::query_as(OCCUPIED)
        .bind(device)
        .fetch_all(pool)
        .await?);
    let mut doors: Vec<(i32, Occupant)> = Vec::with_capacity(rows.len());
    for (door, what) in rows {
        if doors.last().is_some_and(|(last, _)| *last == door) {
            continue;
        }
        let occupant = if what == 0 {
            Occupant::Rented
        } else {
            Occupant::Stocked
        };
        doors.push((door, occupant));
    }
    Ok(doors)
}

/// Whose door `door` of the locker holds, if anyone's.
pub async fn of_door(
    storage: &Storage,
    device: &str,
    door: u16,
) -> Result<Option<Occupant>, sqlx::Error> {
    let door = i32::from(door);
    Ok(of_locker(storage, device)
        .await?
        .into_iter()
        .find(|(d, _)| *d == door)
        .map(|(_, occupant)| occupant))
}
