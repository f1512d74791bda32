//! Answers recorded by any gateway reach the requests waiting for them on this one: the device
//! link that records an answer announces it (`NOTIFY` on PostgreSQL, in the transaction that
//! records it), and every gateway's watcher reads the announced commands it waits for from the
//! books and tells their waiters. On SQLite (one gateway; another process may still write) and
//! whenever announcements may have been missed, the watcher reads every waited command instead.

use std::sync::Arc;
use std::time::Duration;

use super::{CommandState, Waiters, store};
use crate::storage::{Notice, Storage, UnitOfWork};

/// The channel answers are announced on; the payload is the command ids, comma-separated.
pub const COMMANDS_ANSWERED_CHANNEL: &str = "commands_answered";

/// How often the watcher reads every waited command where nothing is announced (SQLite).
pub const EDGE_POLL: Duration = Duration::from_secs(1);

/// Announces, in `work`, that the commands `ids` were answered (PostgreSQL; nothing to do on
/// SQLite, where every gateway is this one).
pub async fn announce(work: &mut UnitOfWork, ids: &[i64]) -> Result<(), sqlx::Error> {
    if ids.is_empty() {
        return Ok(());
    }
    if let UnitOfWork::Postgres(tx) = work {
        let payload = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(COMMANDS_ANSWERED_CHANNEL)
            .bind(payload)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Tells the waiters of this gateway what the books say of their commands, as answers are
/// announced, until `stop`.
pub async fn watch(
    storage: Storage,
    waiters: Arc<Waiters>,
    stop: impl std::future::Future<Output = ()>,
) {
    let (tx, mut rx) = tokio::sync::mpsc::channel(256);
    let handle = async {
        while let Some(notice) = rx.recv().await {
            let ids: Vec<i64> = match notice {
                Notice::Listening => waiters.ids(),
                Notice::Payload(ids) => ids
                    .split(',')
                    .filter_map(|id| id.trim().parse().ok())
                    .filter(|id| waiters.needs_news(*id))
                    .collect(),
            };
            for id in ids {
                match store::progress(&storage, id).await {
                    Ok(Some(progress))
                        if matches!(
                            progress.state,
                            CommandState::Executed | CommandState::Refused(_)
                        ) =>
                    {
                        waiters.update(id, progress);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        metrics::counter!("locker_worker_errors_total", "worker" => "answer_watcher")
                            .increment(1);
                        tracing::warn!(error = %e, command = id, "cannot read an answered command");
                    }
                }
            }
        }
    };
    tokio::select! {
        _ = stop => {}
        _ = storage.notices(COMMANDS_ANSWERED_CHANNEL, EDGE_POLL, tx) => {}
        _ = handle => {}
    }
}
