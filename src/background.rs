//! The gateway's background loops, started by the composition root ([`crate::app`]): each
//! wakes on an interval until shutdown, and a failing item (or a whole failing pass) is logged
//! and counted, never the end of the loop. The sale reconcilers hand each rental and order to
//! [`crate::worker::Items`], which backs off and flags the ones that keep failing.

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::command::CommandSettings;
use crate::events::Event;
use crate::link::downlink::Downlinks;
use crate::storage::Storage;
use crate::worker::{Items, Stuck, pass};

/// Every second: expires queued commands past their time to live, and asks lockers again about
/// commands of unknown outcome whose report did not come (`query_again`), surfacing those still
/// unknown after `surface_unknown`.
pub async fn command_housekeeping(
    storage: Storage,
    downlinks: Downlinks,
    (query_again, surface_unknown): (std::time::Duration, std::time::Duration),
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
        let retry = crate::command::query::retry_unknown(
            &storage,
            &downlinks,
            query_again,
            surface_unknown,
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
    (rentals, rental_items): (crate::rental::Rentals, Items),
    (orders, order_items): (crate::order::Orders, Items),
    shutdown: CancellationToken,
) {
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

/// Turns each item a worker flagged as stuck into a `worker.item_stuck` event (on MQTT as
/// `events/worker.item_stuck`), until shutdown.
pub async fn announce_stuck(
    storage: Storage,
    mut stuck: mpsc::Receiver<Stuck>,
    shutdown: CancellationToken,
) {
    loop {
        let item = tokio::select! {
            _ = shutdown.cancelled() => return,
            item = stuck.recv() => match item {
                Some(item) => item,
                None => return,
            },
        };
        let data = serde_json::to_value(&item).unwrap_or_default();
        let event = Event::new("worker.item_stuck", "worker", item.worker, data);
        let written = async {
            let mut work = storage.begin().await?;
            work.append(&event).await?;
            work.commit().await
        };
        if let Err(e) = written.await {
            metrics::counter!("locker_worker_errors_total", "worker" => "stuck_announcer")
                .increment(1);
            tracing::warn!(error = %e, item = %item.item, "cannot announce a stuck item");
        }
    }
}
