//! The outbox's pending events, a batch at a time, for the publisher
//! (`background::publisher`): claimed in a unit of work that makes its holder the only
//! publisher (on PostgreSQL an advisory lock, elected per batch; on SQLite the unit of work's
//! write lock), and marked published in it once they were handed on. Dropping a batch unmarked
//! leaves its events pending (delivered again: at least once).

use super::Event;
use crate::storage::{Storage, UnitOfWork, in_work};

/// The advisory lock key that elects the one publisher.
pub const PUBLISHER_LOCK: i64 = 0x6c6f_636b_6572; // "locker"

/// What a claim found.
#[derive(Debug)]
pub enum Claim {
    /// Pending events, oldest first.
    Batch(Batch),
    /// Nothing pending.
    Empty,
    /// Another process is publishing.
    NotLeader,
}

/// Pending events held by this publisher until [`Batch::published`] (or dropped).
#[derive(Debug)]
pub struct Batch {
    work: UnitOfWork,
    events: Vec<Event>,
    seqs: Vec<i64>,
}

impl Batch {
    /// Claims at most `limit` pending events, oldest first.
    pub async fn claim(storage: &Storage, limit: i64) -> Result<Claim, sqlx::Error> {
        const PENDING: &str =
            "SELECT seq, id, aggregate_type, aggregate_id, event_type, payload, occurred_at
             FROM outbox WHERE published_at IS NULL ORDER BY seq LIMIT $1";
        let mut work = storage.begin().await?;
        // On SQLite the unit of work's write lock already makes this the only publisher.
        if let UnitOfWork::Postgres(tx) = &mut work {
            let leader: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
                .bind(PUBLISHER_LOCK)
                .fetch_one(&mut **tx)
                .await?;
            if !leader {
                return Ok(Claim::NotLeader);
            }
        }
        let rows: Vec<super::tail::Row> = in_work!(&mut work, |conn| {
            sqlx::query_as(PENDING).bind(limit).fetch_all(conn).await?
        });
        if rows.is_empty() {
            return Ok(Claim::Empty);
        }
        let (seqs, events) = rows.into_iter().map(super::tail::Row::into_pair).unzip();
        Ok(Claim::Batch(Self { work, events, seqs }))
    }

    /// The events, oldest first.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// The batch's unit of work with its events, for writes that must commit with the batch (the
    /// webhook deliveries of its events).
    pub fn work_with_events(&mut self) -> (&mut UnitOfWork, &[Event]) {
        (&mut self.work, &self.events)
    }

    /// Marks every event of the batch published; returns them.
    pub async fn published(mut self) -> Result<Vec<Event>, sqlx::Error> {
        let now = chrono::Utc::now();
        match &mut self.work {
            UnitOfWork::Postgres(tx) => {
                sqlx::query("UPDATE outbox SET published_at = $2 WHERE seq = ANY($1)")
                    .bind(&self.seqs)
                    .bind(now)
                    .execute(&mut **tx)
                    .await?;
            }
            UnitOfWork::Sqlite(tx) => {
                // The write lock has been held since the batch was read: nobody appended in
                // between, so the batch is every pending event up to its last.
                let last = self.seqs.last().copied().unwrap_or_default();
                sqlx::query(
                    "UPDATE outbox SET published_at = $2 WHERE published_at IS NULL AND seq <= $1",
                )
                .bind(last)
                .bind(now)
                .execute(&mut **tx)
                .await?;
            }
        }
        self.work.commit().await?;
        Ok(self.events)
    }
}
