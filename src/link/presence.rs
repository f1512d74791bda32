//! What the link learns about a locker's presence besides its uplinks: a status message (a last
//! will) and a serial board silent to a poll. Both are handled in order with the locker's
//! uplinks, on its shard.

use firmware_protocol::{DeviceId, Presence};

use super::worker::{Inbound, Rejection, Worker};
use crate::uplink::Handler;

impl<H: Handler> Worker<H> {
    /// A serial board silent to a poll: its doors' sensors age, and it is offline in `offline`.
    pub(super) async fn unanswered(
        &mut self,
        device: &DeviceId,
        offline: Option<u32>,
    ) -> Result<(), Rejection> {
        self.handler.unanswered(device, offline).await.map_err(|e| {
            tracing::warn!(error = %e, %device, "cannot record a poll without an answer");
            Rejection::Storage
        })
    }

    pub(super) async fn status(&mut self, inbound: &Inbound) -> Result<(), Rejection> {
        let presence =
            Presence::parse(&inbound.payload).map_err(|e| Rejection::Malformed(e.kind()))?;
        if presence.online {
            // Online is decided by a verified Hello, not by this untagged message.
            return Ok(());
        }
        let Some(session) = presence.session else {
            return Err(Rejection::Malformed("will_without_session"));
        };
        match self.handler.last_will(&inbound.device, session).await {
            Ok(changed) => {
                if !changed {
                    tracing::debug!(device = %inbound.device, session, "stale last will ignored");
                }
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, device = %inbound.device, "cannot record a last will");
                Err(Rejection::Storage)
            }
        }
    }
}
