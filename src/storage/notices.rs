//! What other processes announce about shared state (a revocation, a command queued by the CLI),
//! on either backend, so that no service forks on the database to follow it.

use std::time::Duration;

use tokio::sync::mpsc;

pub use crate::db::Notice;

use super::Storage;

impl Storage {
    /// Follows announcements on `channel` until `tx` closes. On PostgreSQL each `NOTIFY`'s
    /// payload, and [`Notice::Listening`] at every (re)connection of the listener (look at
    /// everything again: notifications may have been missed). On SQLite, which another process
    /// (the CLI) writes without announcing anything, [`Notice::Listening`] every `every`.
    pub async fn notices(&self, channel: &'static str, every: Duration, tx: mpsc::Sender<Notice>) {
        match self {
            Storage::Postgres(pool) => crate::db::listen(pool.clone(), channel, tx).await,
            Storage::Sqlite(_) => {
                let mut interval = tokio::time::interval(every.max(Duration::from_millis(10)));
                interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    interval.tick().await;
                    if tx.send(Notice::Listening).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}
