//! The worker builder: the background loops every gateway runs (commands in flight at the last
//! stop, queued commands, command housekeeping, the outbox publisher, webhook deliveries,
//! revocations, expired tokens, rate-limit eviction).

use std::sync::Arc;

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::account::Accounts;
use crate::api::limits::RateLimits;
use crate::background::{Publisher, Workers};
use crate::broker::{Revocations, revocation};
use crate::config::Config;
use crate::events::Event;
use crate::link::downlink::Downlinks;
use crate::mqtt::MqttTx;
use crate::storage::Storage;

/// How often the webhook deliverer looks for due deliveries (at least).
const WEBHOOK_TICK: std::time::Duration = std::time::Duration::from_millis(100);

/// What the background loops need from the transports.
pub(super) struct Outlets {
    /// Where downlinks leave.
    pub downlinks: Downlinks,
    /// Where events are published.
    pub events: MqttTx,
    /// Where revocations nudge a locker's `down` topic.
    pub nudges: MqttTx,
    /// The devices known to be revoked.
    pub revocations: Revocations,
    /// The requests waiting for their commands' answers on this gateway.
    pub waiters: Arc<crate::command::Waiters>,
}

/// Starts the background loops on `tasks` until `shutdown`; returns the workers' item lists (the
/// sales' reconcilers are started with the services) and the in-process event channel.
pub(super) async fn start(
    config: &Config,
    storage: &Storage,
    outlets: Outlets,
    (accounts, limits): (&Accounts, &Arc<RateLimits>),
    tasks: &TaskTracker,
    shutdown: &CancellationToken,
) -> (Workers, broadcast::Sender<Event>) {
    let Outlets {
        downlinks,
        events: events_tx,
        nudges,
        revocations,
        waiters,
    } = outlets;
    let workers = Workers::start(storage, config.worker_policy, tasks, shutdown.clone()).await;
    // Commands in flight when the gateway last stopped: nobody waits for them any more.
    let at_start = crate::command::query::reconcile_at_start(
        storage,
        &downlinks,
        &workers.housekeeping,
        &config.gateway_id,
    );
    match at_start.await {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            lockers = n,
            "asked lockers about commands in flight at the last stop"
        ),
        Err(e) => {
            tracing::error!(error = %e, "cannot reconcile commands in flight at the last stop")
        }
    }
    let stop = shutdown.clone();
    tasks.spawn(crate::command::answered::watch(
        storage.clone(),
        waiters,
        async move { stop.cancelled().await },
    ));
    let stop = shutdown.clone();
    tasks.spawn(crate::command::queue::watch(
        storage.clone(),
        Arc::new(downlinks.clone()),
        workers.queue.clone(),
        async move { stop.cancelled().await },
    ));
    tasks.spawn(crate::background::command_housekeeping(
        storage.clone(),
        downlinks,
        workers.housekeeping.clone(),
        (config.query_again, config.surface_unknown),
        config.gateway_id.clone(),
        shutdown.clone(),
    ));
    let (events, _) = broadcast::channel(1024);
    let publisher = Publisher::on(storage.clone(), events_tx, events.clone());
    tasks.spawn(publisher.run(config.outbox_poll, workers.outbox.clone(), shutdown.clone()));
    // Webhooks: every gateway delivers (claims keep them apart). A client that cannot be built
    // (no TLS roots at all) is a warning, not a failed start: deliveries wait in the table.
    match crate::background::webhooks::Deliverer::new(
        storage.clone(),
        config.webhooks.clone(),
        config.secrets_key.clone(),
    ) {
        Ok(deliverer) => {
            tasks.spawn(deliverer.run(config.outbox_poll.max(WEBHOOK_TICK), shutdown.clone()));
        }
        Err(e) => tracing::warn!(error = %e, "webhooks are not delivered: no HTTP client"),
    }
    let stop = shutdown.clone();
    tasks.spawn(revocation::watch(
        storage.clone(),
        revocations,
        nudges,
        async move { stop.cancelled().await },
    ));
    tasks.spawn(crate::background::purge_expired(
        accounts.clone(),
        shutdown.clone(),
    ));
    tasks.spawn(limits.clone().evict_until(shutdown.clone()));
    tasks.spawn(crate::background::heap::give_back_freed_heap(
        shutdown.clone(),
    ));
    (workers, events)
}
