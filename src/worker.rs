//! What a background loop does with one item that fails: it logs it, counts it, leaves it alone
//! for a while (backing off), and goes on with the others. A panic while working on an item is
//! caught and treated as a failure of that item. After [`Policy::flag_after`] failures in a row
//! the item is **stuck**: it is announced once (through the channel given to [`Items::new`], which
//! the composition root turns into a `worker.item_stuck` event), counted in the gauge
//! `locker_worker_items_stuck{worker}`, listed for operators ([`Registry::stuck`], served at
//! `GET /v1/admin/stuck`), and tried again only every [`Policy::stuck_retry`]. An item that
//! succeeds is forgotten.
//!
//! What is remembered is per process and bounded ([`MAX_TRACKED`] items per worker): a restart
//! tries every item again at once. The loops' items are rows in the database, so nothing of the
//! work itself is lost with it.

use std::collections::HashMap;
use std::fmt::Display;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures_util::FutureExt;
use tokio::sync::mpsc;

/// The most failing items one worker remembers; beyond it a failing item is retried at every pass.
pub const MAX_TRACKED: usize = 10_000;

/// How a worker backs off a failing item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// The wait after the first failure; doubled after each further one.
    pub first_retry: Duration,
    /// The longest wait while the item is not stuck yet.
    pub max_retry: Duration,
    /// Failures in a row after which the item is stuck.
    pub flag_after: u32,
    /// The wait between tries of a stuck item.
    pub stuck_retry: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            first_retry: Duration::from_secs(2),
            max_retry: Duration::from_secs(300),
            flag_after: 5,
            stuck_retry: Duration::from_secs(3600),
        }
    }
}

/// An item that kept failing, as operators see it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Stuck {
    /// The loop (`rental_reconciler`, `order_reconciler`, ...).
    pub worker: &'static str,
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

struct Inner {
    worker: &'static str,
    policy: Policy,
    failing: Mutex<HashMap<String, Failing>>,
    announce: Option<mpsc::Sender<Stuck>>,
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
    /// The failing items of `worker`, stuck ones announced on `announce` (dropped and counted if
    /// it is full).
    pub fn new(
        worker: &'static str,
        policy: Policy,
        announce: Option<mpsc::Sender<Stuck>>,
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
        }
    }

    fn failed(&self, item: &str, error: String) {
        let policy = self.0.policy;
        let now = Utc::now();
        metrics::counter!("locker_worker_item_failures_total", "worker" => self.0.worker)
            .increment(1);
        let newly_stuck = {
            let mut failing = self.failing();
            if !failing.contains_key(item) && failing.len() >= MAX_TRACKED {
                tracing::warn!(worker = self.0.worker, item, error = %error, "an item failed (too many failing items to back off)");
                return;
            }
            let entry = failing.entry(item.to_owned()).or_insert_with(|| Failing {
                stuck: Stuck {
                    worker: self.0.worker,
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
            (failures == policy.flag_after).then(|| entry.stuck.clone())
        };
        if let Some(stuck) = newly_stuck {
            tracing::error!(
                worker = self.0.worker,
                item,
                "an item is stuck; operators are told"
            );
            self.publish_gauge();
            if let Some(announce) = &self.0.announce
                && announce.try_send(stuck).is_err()
            {
                metrics::counter!("locker_worker_stuck_unannounced_total").increment(1);
            }
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

/// Every worker's items, for the operator API.
#[derive(Clone, Debug, Default)]
pub struct Registry(Arc<Mutex<Vec<Items>>>);

impl Registry {
    /// Keeps `items` to list their stuck ones.
    pub fn register(&self, items: &Items) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(items.clone());
    }

    /// Every registered worker's stuck items.
    pub fn stuck(&self) -> Vec<Stuck> {
        let workers: Vec<Items> = self.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
        workers.iter().flat_map(Items::stuck).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(rx.try_recv().expect("announced").item, "bad");
        assert!(rx.try_recv().is_err(), "announced once");
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
