//! The gateway's [`Handler`]: what a verified uplink does to the books, through the stores that
//! own them.

use std::sync::Arc;
use std::time::Duration;

use firmware_protocol::{DeviceId, SessionChange, Uplink, UplinkGuard};

use super::{Handler, Verified, Written, batch};
use crate::command::outlet::Outlet;
use crate::command::query::ask_state;
use crate::command::queue::deliver as deliver_queued;
use crate::command::{Progress, Waiters, store as commands};
use crate::device::{door_events, presence};
use crate::storage::Storage;

/// Records verified uplinks in the database, tells the commands' waiters, and sends what waited
/// for a locker when it says hello.
#[derive(Clone)]
pub struct Recorder {
    storage: Storage,
    downlinks: Arc<dyn Outlet>,
    waiters: Arc<Waiters>,
    announce: bool,
    rollout: Option<crate::rollout::Rollout>,
}

impl Recorder {
    /// Writes to `storage`, sends through `downlinks`, tells `waiters`; announces every answer it
    /// records to the other gateways (see [`Recorder::alone`]).
    pub fn new(storage: Storage, downlinks: Arc<dyn Outlet>, waiters: Arc<Waiters>) -> Self {
        Self {
            storage,
            downlinks,
            waiters,
            announce: true,
            rollout: None,
        }
    }

    /// Hands firmware update uplinks (chunk requests, reports, and hellos of lockers that take
    /// updates) to `rollout` once recorded.
    pub fn with_rollout(mut self, rollout: crate::rollout::Rollout) -> Self {
        self.rollout = Some(rollout);
        self
    }

    /// For a gateway that runs alone (on its embedded broker, or in edge mode: nobody else
    /// records answers or waits for them): answers are not announced (`NOTIFY`); its own
    /// waiters are told after each commit as always.
    pub fn alone(mut self) -> Self {
        self.announce = false;
        self
    }
}

impl Handler for Recorder {
    async fn guard(&self, device: &DeviceId) -> Result<UplinkGuard, sqlx::Error> {
        presence::load_guard(&self.storage, device).await
    }

    async fn hello(&self, verified: &Verified) -> Result<bool, sqlx::Error> {
        let Uplink::Hello(hello) = &verified.envelope.message else {
            return Ok(true);
        };
        let header = verified.envelope.header;
        let recorded = presence::hello(
            &self.storage,
            &verified.device,
            hello,
            header.counter,
            verified.received_at,
        )
        .await?;
        Ok(match recorded {
            presence::HelloRecorded::New(mut work) => {
                // Commands of earlier sessions cannot be answered any more: unknown, and the
                // locker is asked about them once this commits (`recorded`).
                commands::earlier_sessions_unknown(&mut work, &verified.device, hello.session)
                    .await?;
                work.commit().await?;
                true
            }
            presence::HelloRecorded::Again => true,
            presence::HelloRecorded::Refused => false,
        })
    }

    async fn write(&self, batch: &[Verified]) -> Result<Vec<Written>, sqlx::Error> {
        batch::write(&self.storage, batch, self.announce).await
    }

    async fn recorded(&self, uplink: &Verified, settled: Vec<(i64, Progress)>) {
        for (id, progress) in settled {
            self.waiters.update(id, progress);
        }
        let (device, session, key) = (uplink.device, uplink.envelope.header.session, &uplink.key);
        if let Some(rollout) = &self.rollout {
            rollout
                .uplink(device, session, key, &uplink.envelope.message)
                .await;
        }
        if uplink.is_hello() {
            // Commands queued while the locker was away go out now: in a new session, or in the
            // one a serial board announces again when it answers after being offline.
            if let Err(e) =
                deliver_queued(&self.storage, self.downlinks.as_ref(), device, session, key).await
            {
                tracing::error!(error = %e, %device, "cannot deliver queued commands");
            }
        }
        if let SessionChange::New { .. } = uplink.change {
            // Commands of the earlier session were marked unknown with this hello: ask about them.
            match commands::has_unknown(&self.storage, &device).await {
                Ok(true) => {
                    let downlinks = self.downlinks.as_ref();
                    if let Err(e) = ask_state(&self.storage, downlinks, device, session, key).await
                    {
                        tracing::error!(error = %e, %device, "cannot ask a locker about its commands");
                    }
                }
                Ok(false) => {}
                Err(e) => tracing::error!(error = %e, %device, "cannot look for unknown commands"),
            }
        }
    }

    async fn last_will(&self, device: &DeviceId, session: u32) -> Result<bool, sqlx::Error> {
        presence::last_will(&self.storage, device, session).await
    }

    async fn unanswered(&self, device: &DeviceId, offline: Option<u32>) -> Result<(), sqlx::Error> {
        door_events::unanswered_read(&self.storage, device).await?;
        if let Some(session) = offline {
            let reason = presence::OfflineReason::NoAnswer;
            presence::went_offline(&self.storage, device, session, reason).await?;
        }
        Ok(())
    }

    async fn sweep(&self, timeout: Duration) -> Result<usize, sqlx::Error> {
        presence::sweep(&self.storage, timeout).await
    }
}
