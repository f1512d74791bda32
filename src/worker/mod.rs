//! What a background loop does with one item that fails: it logs it, counts it, leaves it alone
//! for a while (backing off), and goes on with the others. A panic while working on an item is
//! caught and treated as a failure of that item. After [`Policy::flag_after`] failures in a row
//! the item is **stuck**: it is counted in the gauge `locker_worker_items_stuck{worker}` and the
//! counter `locker_worker_items_flagged_total{worker}`, and handed (a [`Notice`] on the channel
//! given to [`Items::new`]) to [`stuck::keep`], which records it in the table `worker_stuck`
//! (listed for operators at `GET /v1/admin/stuck`) and announces it once as a
//! `worker.item_stuck` event. A stuck item is tried again only every [`Policy::stuck_retry`]; one
//! that goes through is forgotten and leaves the table.
//!
//! The backoff is per process and bounded ([`MAX_TRACKED`] items per worker); the stuck items are
//! in the database, so a restarted gateway knows them ([`Items::restore`]): it tries each once
//! at start and, if it fails again, waits for the stuck retry without announcing it again.

use std::collections::HashMap;
use std::fmt::Display;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{DateTime, Utc};
use futures_util::FutureExt;
use tokio::sync::mpsc;

pub mod stuck;

/// The most failing items one worker remembers; beyond it a failing item is retried at every pass.
pub const MAX_TRACKED: usize = 10_000;

pub use crate::config::WorkerPolicy as Policy;

/// An item that kept failing, as operators see it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Stuck {
    /// The loop (`rental_reconciler`, `order_reconciler`, `queue_delivery`, ...).
    pub worker: String,
    /// What it works on (`rental 0193…`).
    pub item: String,
    /// Failures in a row.
    pub failures: u32,
    /// The last failure's error (or panic message).
    pub last_error: String,
    /// When it first failed in this row of failures.
    pub first_failed_at: DateTime<Utc>,
    /// When it last failed.
    pub last_failed_at: DateTime<Utc>,
}

#[derive(Debug)]
struct Failing {
    stuck: Stuck,
    next_try: Instant,
}

/// What [`Items`] tells the keeper of the stuck list ([`stuck::keep`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// The item is stuck: it failed [`Policy::flag_after`] times in a row (`first`), or failed
    /// again at a stuck retry.
    Flagged {
        /// The item and its failures.
        stuck: Stuck,
        /// Whether it has just become stuck (announced as an event only then).
        first: bool,
    },
    /// A stuck item went through.
    Cleared {
        /// The worker.
        worker: &'static str,
        /// The item.
        item: String,
    },
}

struct Inner {
    worker: &'static str,
    policy: Policy,
    failing: Mutex<HashMap<String, Failing>>,
    announce: Option<mpsc::Sender<Notice>>,
}

/// One worker's failing items. Cheap to clone.
#[derive(Clone)]
pub struct Items(Arc<Inner>);

impl std::fmt::Debug for Items {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Items")
            .field("worker", &self.0.worker)
            .finish_non_exhaustive()
    }
}

impl Items {
    /// The failing items of `worker`; stuck ones are told to `announce` (a notice is dropped and
    /// counted if it is full).
    pub fn new(
        worker: &'static str,
        policy: Policy,
        announce: Option<mpsc::Sender<Notice>>,
    ) -> Self {
        Self(Arc::new(Inner {
            worker,
            policy,
            failing: Mutex::new(HashMap::new()),
            announce,
        }))
    }

    /// The worker's name.
    pub fn worker(&self) -> &'static str {
        self.0.worker
    }

    fn failing(&self) -> std::sync::MutexGuard<'_, HashMap<String, Failing>> {
        // A panic never happens while the map is held; if one did, the map is still consistent.
        self.0.failing.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `item` may be tried now (it is not waiting after a failure).
    pub fn due(&self, item: &str) -> bool {
        self.failing()
            .get(item)
            .is_none_or(|f| f.next_try <= Instant::now())
    }

    /// Works on `item` if it is due: its result, or `None` if it was not due, failed or
    /// panicked (logged, counted, backed off).
    pub async fn attempt<T, E: Display>(
        &self,
        item: &str,
        work: impl Future<Output = Result<T, E>>,
    ) -> Option<T> {
        if !self.due(item) {
            return None;
        }
        match AssertUnwindSafe(work).catch_unwind().await {
            Ok(Ok(value)) => {
                self.succeeded(item);
                Some(value)
            }
            Ok(Err(e)) => {
                self.failed(item, e.to_string());
                None
            }
            Err(panic) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic".to_owned());
                metrics::counter!("locker_worker_panics_total", "worker" => self.0.worker)
                    .increment(1);
                self.failed(item, format!("panicked: {message}"));
                None
            }
        }
    }

    /// Takes back the items a gateway had flagged as stuck before it stopped (those of this
    /// worker among `stuck`): each is due at once, and stuck again if it fails once more.
    pub fn restore(&self, stuck: impl IntoIterator<Item = Stuck>) {
        let now = Instant::now();
        {
            let mut failing = self.failing();
            for s in stuck.into_iter().filter(|s| s.worker == self.0.worker) {
                if failing.len() >= MAX_TRACKED {
                    break;
                }
                let stuck = Stuck {
                    failures: s.failures.max(self.0.policy.flag_after),
                    ..s
                };
                failing.insert(
                    stuck.item.clone(),
                    Failing {
                        stuck,
                        next_try: now,
                    },
                );
            }
        }
        self.publish_gauge();
    }

    fn succeeded(&self, item: &str) {
        let removed = self.failing().remove(item);
        if let Some(f) = removed {
            tracing::info!(
                worker = self.0.worker,
                item,
                failures = f.stuck.failures,
                "a failing item went through"
            );
            self.publish_gauge();
            if f.stuck.failures >= self.0.policy.flag_after {
                self.tell(Notice::Cleared {
                    worker: self.0.worker,
                    item: item.to_owned(),
                });
            }
        }
    }

    fn tell(&self, notice: Notice) {
        if let Some(announce) = &self.0.announce
            && announce.try_send(notice).is_err()
        {
            metrics::counter!("locker_worker_stuck_unannounced_total").increment(1);
        }
    }

    fn failed(&self, item: &str, error: String) {
        let policy = self.0.policy;
        let now = Utc::now();
        metrics::counter!("locker_worker_item_failures_total", "worker" => self.0.worker)
            .increment(1);
        let stuck = {
            let mut failing = self.failing();
            if !failing.contains_key(item) && failing.len() >= MAX_TRACKED {
                tracing::warn!(worker = self.0.worker, item, error = %error, "an item failed (too many failing items to back off)");
                return;
            }
            let entry = failing.entry(item.to_owned()).or_insert_with(|| Failing {
                stuck: Stuck {
                    worker: self.0.worker.to_owned(),
                    item: item.to_owned(),
                    failures: 0,
                    last_error: String::new(),
                    first_failed_at: now,
                    last_failed_at: now,
                },
                next_try: Instant::now(),
            });
            entry.stuck.failures = entry.stuck.failures.saturating_add(1);
            entry.stuck.last_error = error.chars().take(500).collect();
            entry.stuck.last_failed_at = now;
            let failures = entry.stuck.failures;
            let wait = if failures >= policy.flag_after {
                policy.stuck_retry
            } else {
                policy
                    .first_retry
                    .saturating_mul(1 << (failures - 1).min(16))
                    .min(policy.max_retry)
            };
            entry.next_try = Instant::now() + wait;
            tracing::warn!(
                worker = self.0.worker, item, failures, error = %error,
                retry_in_secs = wait.as_secs(), "an item failed; the others go on"
            );
            (failures >= policy.flag_after).then(|| entry.stuck.clone())
        };
        if let Some(stuck) = stuck {
            let first = stuck.failures == policy.flag_after;
            if first {
                tracing::error!(
                    worker = self.0.worker,
                    item,
                    "an item is stuck; operators are told"
                );
                metrics::counter!("locker_worker_items_flagged_total", "worker" => self.0.worker)
                    .increment(1);
                self.publish_gauge();
            }
            self.tell(Notice::Flagged { stuck, first });
        }
    }

    fn publish_gauge(&self) {
        let flag_after = self.0.policy.flag_after;
        let stuck = self
            .failing()
            .values()
            .filter(|f| f.stuck.failures >= flag_after)
            .count();
        metrics::gauge!("locker_worker_items_stuck", "worker" => self.0.worker).set(stuck as f64);
    }

    /// The stuck items, oldest failure first.
    pub fn stuck(&self) -> Vec<Stuck> {
        let flag_after = self.0.policy.flag_after;
        let mut stuck: Vec<Stuck> = self
            .failing()
            .values()
            .filter(|f| f.stuck.failures >= flag_after)
            .map(|f| f.stuck.clone())
            .collect();
        stuck.sort_by_key(|s| s.first_failed_at);
        stuck
    }
}

/// Runs one pass of a background loop: its output, or `None` if it panicked (logged and counted
/// as `locker_worker_panics_total{worker}`); the loop goes on with its next pass.
pub async fn pass<T>(worker: &'static str, work: impl Future<Output = T>) -> Option<T> {
    match AssertUnwindSafe(work).catch_unwind().await {
        Ok(value) => Some(value),
        Err(_) => {
            metrics::counter!("locker_worker_panics_total", "worker" => worker).increment(1);
            tracing::error!(
                worker,
                "a pass of a background loop panicked; the next pass goes on"
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn quick() -> Policy {
        Policy {
            first_retry: Duration::ZERO,
            max_retry: Duration::ZERO,
            flag_after: 3,
            stuck_retry: Duration::from_secs(3600),
        }
    }

    #[tokio::test]
    async fn a_failing_item_backs_off_is_flagged_once_and_the_others_go_on() {
        let (tx, mut rx) = mpsc::channel(4);
        let items = Items::new("test", quick(), Some(tx));
        let mut done = 0;
        for _ in 0..5 {
            for item in ["good-1", "bad", "good-2"] {
                let result = items
                    .attempt(item, async move {
                        if item == "bad" { Err("always") } else { Ok(1) }
                    })
                    .await;
                done += result.unwrap_or(0);
            }
        }
        assert_eq!(done, 10, "the good items were worked every time");
        let stuck = items.stuck();
        assert_eq!(stuck.len(), 1);
        assert_eq!((stuck[0].item.as_str(), stuck[0].failures), ("bad", 3));
        assert!(!items.due("bad"), "a stuck item waits for the hourly retry");
        match rx.try_recv().expect("told") {
            Notice::Flagged { stuck, first } => assert!(stuck.item == "bad" && first),
            other => panic!("{other:?}"),
        }
        assert!(rx.try_recv().is_err(), "told once");
        // Restored in another process: due at once, stuck again (not first) if it fails.
        let (tx, mut rx) = mpsc::channel(4);
        let again = Items::new("test", quick(), Some(tx));
        again.restore(stuck);
        assert!(again.due("bad"));
        let failed: Option<()> = again.attempt("bad", async { Err("still") }).await;
        assert!(failed.is_none() && !again.due("bad"));
        match rx.try_recv().expect("told") {
            Notice::Flagged { stuck, first } => assert!(stuck.failures == 4 && !first),
            other => panic!("{other:?}"),
        }
        // Once it goes through, it is cleared.
        assert_eq!(again.failing().len(), 1);
        again.failing().get_mut("bad").expect("kept").next_try = Instant::now();
        assert_eq!(
            again.attempt("bad", async { Ok::<_, String>(1) }).await,
            Some(1)
        );
        assert!(matches!(rx.try_recv(), Ok(Notice::Cleared { item, .. }) if item == "bad"));
    }

    #[tokio::test]
    async fn a_panic_is_caught_as_a_failure_and_a_success_forgets() {
        let items = Items::new("test", quick(), None);
        let panicked: Option<()> = items
            .attempt("p", async {
                if true {
                    panic!("overflow in a sum");
                }
                Ok::<(), String>(())
            })
            .await;
        assert_eq!(panicked, None);
        assert_eq!(items.failing().get("p").map(|f| f.stuck.failures), Some(1));
        assert!(
            items.failing()["p"]
                .stuck
                .last_error
                .contains("overflow in a sum")
        );
        assert_eq!(
            items.attempt("p", async { Ok::<_, String>(7) }).await,
            Some(7)
        );
        assert!(items.failing().is_empty());
    }
}
