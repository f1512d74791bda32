//! The stuck list: the table `worker_stuck` (this module is its only writer), kept by
//! [`keep`] from the [`Notice`]s of every worker's [`Items`](super::Items), and by
//! [`flag_in`] for an item a worker knows at once can never go through (a stored command that
//! cannot be read). Each newly stuck item is announced as a `worker.item_stuck` event in the
//! same unit of work that records it.

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Notice, Stuck};
use crate::events::Append;
use crate::events::Event;
use crate::storage::{Storage, UnitOfWork, in_work, on_pool};

type Row = (
    String,
    String,
    i64,
    String,
    chrono::DateTime<chrono::Utc>,
    chrono::DateTime<chrono::Utc>,
);

fn stuck((worker, item, failures, last_error, first_failed_at, last_failed_at): Row) -> Stuck {
    Stuck {
        worker,
        item,
        failures: u32::try_from(failures).unwrap_or(u32::MAX),
        last_error,
        first_failed_at,
        last_failed_at,
    }
}

/// Every stuck item of every gateway on this database, oldest first failure first.
pub async fn list(storage: &Storage) -> Result<Vec<Stuck>, sqlx::Error> {
    const LIST: &str = "SELECT worker, item, failures, last_error, first_failed_at, last_failed_at
         FROM worker_stuck ORDER BY first_failed_at, worker, item LIMIT 1000";
    let rows: Vec<Row> = on_pool!(storage, |pool| sqlx::query_as(LIST).fetch_all(pool).await?);
    Ok(rows.into_iter().map(stuck).collect())
}

/// Records `item` as stuck in this unit of work (its failures and last error brought up to
/// date if it was already); with `announce`, also appends its `worker.item_stuck` event.
pub async fn flag_in(
    work: &mut UnitOfWork,
    item: &Stuck,
    announce: bool,
) -> Result<(), sqlx::Error> {
    const FLAG: &str = "INSERT INTO worker_stuck
             (worker, item, failures, last_error, first_failed_at, last_failed_at)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (worker, item) DO UPDATE SET failures = excluded.failures,
             last_error = excluded.last_error, last_failed_at = excluded.last_failed_at";
    in_work!(&mut *work, |conn| sqlx::query(FLAG)
        .bind(&item.worker)
        .bind(&item.item)
        .bind(i64::from(item.failures.max(1)))
        .bind(&item.last_error)
        .bind(item.first_failed_at)
        .bind(item.last_failed_at)
        .execute(conn)
        .await?
        .rows_affected());
    if announce {
        let data = serde_json::to_value(item).unwrap_or_default();
        let event = Event::new("worker.item_stuck", "worker", &item.worker, data);
        work.append(&event).await?;
    }
    Ok(())
}

async fn clear(storage: &Storage, worker: &str, item: &str) -> Result<(), sqlx::Error> {
    const CLEAR: &str = "DELETE FROM worker_stuck WHERE worker = $1 AND item = $2";
    on_pool!(storage, |pool| sqlx::query(CLEAR)
        .bind(worker)
        .bind(item)
        .execute(pool)
        .await?
        .rows_affected());
    Ok(())
}

/// Keeps the stuck list from the workers' notices until shutdown: a flagged item is recorded
/// (and, when newly stuck, announced on MQTT as `events/worker.item_stuck`), a cleared one
/// removed. A notice that cannot be written is logged and counted; the next failure of that item
/// writes it again.
pub async fn keep(
    storage: Storage,
    mut notices: mpsc::Receiver<Notice>,
    shutdown: CancellationToken,
) {
    loop {
        let notice = tokio::select! {
            _ = shutdown.cancelled() => return,
            notice = notices.recv() => match notice {
                Some(notice) => notice,
                None => return,
            },
        };
        let written = match &notice {
            Notice::Flagged { stuck, first } => {
                let storage = &storage;
                async move {
                    let mut work = storage.begin().await?;
                    flag_in(&mut work, stuck, *first).await?;
                    work.commit().await
                }
                .await
            }
            Notice::Cleared { worker, item } => clear(&storage, worker, item).await,
        };
        if let Err(e) = written {
            metrics::counter!("locker_worker_errors_total", "worker" => "stuck_keeper")
                .increment(1);
            tracing::warn!(error = %e, ?notice, "cannot keep the stuck list");
        }
    }
}
