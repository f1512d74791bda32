//! Which gateway's serial line each lock board hangs on (`devices.serial_gateway`): written by
//! the gateway whose bus holds the board, read by every gateway that sends to it (a board's
//! downlinks are sealed in binary and, from another gateway, relayed through the broker).

use firmware_protocol::DeviceId;

use crate::storage::{Storage, on_pool};

/// Records that `boards` hang on `gateway`'s serial line (a board moved from another line is
/// taken over).
pub async fn attach(
    storage: &Storage,
    gateway: &str,
    boards: &[DeviceId],
) -> Result<(), sqlx::Error> {
    const ATTACH: &str = "UPDATE devices SET serial_gateway = $2 WHERE id = $1";
    for board in boards {
        on_pool!(storage, |pool| sqlx::query(ATTACH)
            .bind(board.as_str())
            .bind(gateway)
            .execute(pool)
            .await?
            .rows_affected());
    }
    Ok(())
}

/// Forgets the boards recorded on `gateway`'s lines that are not among `kept` (taken off its
/// configuration): their downlinks are no longer sealed for a line. Returns how many.
pub async fn release_others(
    storage: &Storage,
    gateway: &str,
    kept: &[DeviceId],
) -> Result<u64, sqlx::Error> {
    const HELD: &str = "SELECT id FROM devices WHERE serial_gateway = $1";
    const RELEASE: &str =
        "UPDATE devices SET serial_gateway = NULL WHERE id = $1 AND serial_gateway = $2";
    let held: Vec<String> = on_pool!(storage, |pool| sqlx::query_scalar(HELD)
        .bind(gateway)
        .fetch_all(pool)
        .await?);
    let mut released = 0;
    for id in held {
        if kept.iter().any(|board| board.as_str() == id) {
            continue;
        }
        released += on_pool!(storage, |pool| sqlx::query(RELEASE)
            .bind(&id)
            .bind(gateway)
            .execute(pool)
            .await?
            .rows_affected());
    }
    Ok(released)
}
