//! Subscriptions a client on an external broker takes on while it runs (the `down` topics of the
//! boards on this gateway's serial lines, as their buses start), kept over reconnects.

use std::sync::{Arc, Mutex};

use rumqttc::{AsyncClient, QoS};

/// A client's added subscriptions: cheap to clone; clones share them.
#[derive(Debug, Clone, Default)]
pub struct Subscriptions(Arc<Mutex<Added>>);

#[derive(Debug, Default)]
struct Added {
    filters: Vec<String>,
    client: Option<AsyncClient>,
}

impl Subscriptions {
    /// Subscribes to `filter` (QoS 1) now if the client runs, and on every reconnect; a filter
    /// added before is not added again.
    pub fn add(&self, filter: String) {
        let mut added = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if added.filters.contains(&filter) {
            return;
        }
        if let Some(client) = &added.client
            && let Err(e) = client.try_subscribe(filter.clone(), QoS::AtLeastOnce)
        {
            // Taken at the next reconnect (the list is read again then).
            tracing::warn!(error = %e, filter, "cannot subscribe on the external broker now");
        }
        added.filters.push(filter);
    }

    /// The filters added so far.
    pub fn filters(&self) -> Vec<String> {
        let added = self.0.lock().unwrap_or_else(|e| e.into_inner());
        added.filters.clone()
    }

    /// From now on, filters are subscribed on `client` as they are added.
    pub(super) fn attach(&self, client: AsyncClient) {
        let mut added = self.0.lock().unwrap_or_else(|e| e.into_inner());
        added.client = Some(client);
    }
}
