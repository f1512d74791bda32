//! The gateway's background loops, started by the composition root ([`crate::app`]): each
//! wakes on an interval until shutdown, and a failing item (or a whole failing pass) is logged
//! and counted, never the end of the loop. The sale reconcilers hand each rental and order to
//! [`crate::worker::Items`], which backs off and flags the ones that keep failing.

use tokio_util::sync::CancellationToken;

pub mod broker_rights;
pub mod heap;
pub mod publisher;
pub mod webhooks;

pub use publisher::{Outcome, Publisher};

use crate::command::CommandSettings;
use crate::link::downlink::Downlinks;
use crate::storage::Storage;
use crate::worker::{Items, Policy, pass};

/// The background loops' failing items, one [`Items`] per worker, all telling one keeper of the
/// stuck list ([`crate::worker::stuck::keep`]).
#[derive(Debug, Clone)]
pub struct Workers {
    /// The rental reconciler's rentals (`rental {id}`).
    pub rentals: Items,
    /// The order reconciler's orders (`order {id}`).
    pub orders: Items,
    /// Command housekeeping's lockers (`device {id}`), asked about commands of unknown outcome.
    pub housekeeping: Items,
    /// Queue delivery's lockers (`device {id}`).
    pub queue: Items,
    /// The outbox publisher (one item, `outbox`). Its backoff is short (at most five seconds,
    /// stuck or not): events must go out as soon as the broker takes them again.
    pub outbox: Items,
}

impl Workers {
    /// Every worker's items with `policy`; starts the keeper of the stuck list (until
    /// `shutdown`) and takes back the items it lists (a restarted gateway tries each once).
    pub async fn start(
        storage: &Storage,
        policy: Policy,
        tasks: &tokio_util::task::TaskTracker,
        shutdown: CancellationToken,
    ) -> Self {
        let (tell, notices) = tokio::sync::mpsc::channel(256);
        let items = |worker, policy| Items::new(worker, policy, Some(tell.clone()));
        let outbox = Policy {
            first_retry: policy
                .first_retry
                .min(std::time::Duration::from_millis(500)),
            max_retry: policy.max_retry.min(std::time::Duration::from_secs(5)),
            stuck_retry: policy.max_retry.min(std::time::Duration::from_secs(5)),
            ..policy
        };
        let workers = Self {
            rentals: items("rental_reconciler", policy),
            orders: items("order_reconciler", policy),
            housekeeping: items("command_housekeeping", policy),
            queue: items("queue_delivery", policy),
            outbox: items("outbox_publisher", outbox),
        };
        match crate::worker::stuck::list(storage).await {
            Ok(stuck) => {
                for each in workers.all() {
                    each.restore(stuck.iter().cloned());
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the stuck list; each item is tried again")
            }
        }
        tasks.spawn(crate::worker::stuck::keep(
            storage.clone(),
            notices,
            shutdown,
        ));
        workers
    }

    fn all(&self) -> [&Items; 5] {
        [
            &self.rentals,
            &self.orders,
            &self.housekeeping,
            &self.queue,
            &self.outbox,
        ]
    }
}

/// Every second: expires queued commands past their time to live, takes over the commands in
/// flight of gateways whose lease expired (not `me`'s), and asks lockers again about commands of
/// unknown outcome whose report did not come (`query_again`), surfacing those still unknown after
/// `surface_unknown`. Safe on every gateway at once (each step is one fenced statement).
pub async fn command_housekeeping(
    storage: Storage,
    downlinks: Downlinks,
    items: Items,
    (query_again, surface_unknown): (std::time::Duration, std::time::Duration),
    me: String,
    shutdown: CancellationToken,
) {
    let mut interval = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = interval.tick() => {}
        }
        let worker = "command_housekeeping";
        let expired = pass(worker, crate::command::queue::expire(&storage)).await;
        report(worker, "expired queued commands", expired);
        let taken = crate::command::store::orphans_of_expired_gateways(&storage, &me);
        report(
            worker,
            "took over commands of expired gateways",
            pass(worker, taken).await,
        );
        let retry = crate::command::query::retry_unknown(
            &storage,
            &downlinks,
            &items,
            (query_again, surface_unknown),
        );
        report(worker, "asked again", pass(worker, retry).await);
    }
}

/// Logs what a pass of `worker` did: how many things, or its error (counted as
/// `locker_worker_errors_total{worker}`). `None` is a pass that panicked, which [`pass`] has
/// logged and counted already.
fn report<N, E>(worker: &'static str, what: &str, outcome: Option<Result<N, E>>)
where
    N: std::fmt::Display + PartialEq + Default,
    E: std::fmt::Display,
{
    match outcome {
        None => {}
        Some(Ok(n)) if n == N::default() => {}
        Some(Ok(n)) => tracing::info!(worker, count = %n, "{what}"),
        Some(Err(e)) => {
            metrics::counter!("locker_worker_errors_total", "worker" => worker).increment(1);
            tracing::warn!(worker, error = %e, "failed: {what}");
        }
    }
}

/// Every ten minutes: forgets expired bearer tokens and idempotent answers older than a day.
pub async fn purge_expired(accounts: crate::account::Accounts, shutdown: CancellationToken) {
    let mut interval = tokio::time::interval(std::time::Duration::from_secs(600));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = interval.tick() => {}
        }
        match accounts.purge_expired_tokens().await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(tokens = n, "expired tokens forgotten"),
            Err(e) => {
                metrics::counter!("locker_worker_errors_total", "worker" => "token_purge")
                    .increment(1);
                tracing::warn!(error = %e, "cannot forget expired tokens");
            }
        }
        match crate::api::idempotency::purge(accounts.storage()).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(answers = n, "idempotent answers older than a day forgotten"),
            Err(e) => {
                metrics::counter!("locker_worker_errors_total", "worker" => "idempotency_purge")
                    .increment(1);
                tracing::warn!(error = %e, "cannot forget old idempotent answers");
            }
        }
    }
}

/// Every second: settles rentals and orders whose unlock had no answer, once the locker has said
/// what happened, and those a request left half done (a crash between the charge and the unlock).
pub async fn reconcile_sales(
    rentals: crate::rental::Rentals,
    orders: crate::order::Orders,
    workers: Workers,
    shutdown: CancellationToken,
) {
    let (rental_items, order_items) = (workers.rentals, workers.orders);
    let mut interval = tokio::time::interval(std::time::Duration::from_secs(1));
    let open_window = CommandSettings::default().open_window;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = interval.tick() => {}
        }
        // A panic outside any one item (reading the rows) ends that pass, not the loop.
        let (worker, settled) = (
            rental_items.worker(),
            rentals.reconcile_pending(open_window, &rental_items),
        );
        report(
            worker,
            "pending rentals settled",
            pass(worker, settled).await,
        );
        let (worker, settled) = (
            order_items.worker(),
            orders.reconcile_pending(open_window, &order_items),
        );
        report(worker, "paid orders settled", pass(worker, settled).await);
    }
}
