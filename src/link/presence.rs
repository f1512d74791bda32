//! What the link learns about a locker's presence besides its uplinks: a status message (a last
//! will) and a serial board silent to a poll. Both are handled in order with the locker's
//! uplinks, on its shard.

use firmware_protocol::{DeviceId, Presence};

use super::worker::{Inbound, Rejection, Worker};
use crate::device::presence;

impl Worker {
    /// A serial board silent to a poll: its doors' sensors age, and it is offline in `offline`.
    pub(super) async fn unanswered(
        &mut self,
        device: &DeviceId,
        offline: Option<u32>,
    ) -> Result<(), Rejection> {
        if let Err(e) = crate::device::door_events::unanswered_read(&self.storage, device).await {
            tracing::warn!(error = %e, %device, "cannot record an unanswered read");
            return Err(Rejection::Storage);
        }
        if let Some(session) = offline {
            let reason = presence::OfflineReason::NoAnswer;
            if let Err(e) = presence::went_offline(&self.storage, device, session, reason).await {
                tracing::warn!(error = %e, %device, "cannot mark a board offline");
                return Err(Rejection::Storage);
            }
        }
        Ok(())
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
        match presence::last_will(&self.storage, &inbound.device, session).await {
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
