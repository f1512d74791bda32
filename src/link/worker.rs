//! One shard of the uplink pipeline: verifies, de-duplicates and applies the messages of the
//! devices hashed to it, one message at a time, so each device's messages keep their order.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use firmware_protocol::{
    DecodeError, DeviceId, DeviceKey, Envelope, ReplayError, Unverified, Uplink, UplinkGuard,
};
use tokio::sync::{broadcast, mpsc};

use super::downlink::Downlinks;
use super::{LinkStats, VerifiedUplink};
use crate::command::outlet::Outlet;
use crate::device::{DeviceCredentials, DeviceRegistry};
use crate::uplink::{Arrival, Handler, NotWritten, Verified as Accepted};

/// One message from a locker topic, as the dispatcher hands it to a shard.
#[derive(Debug, Clone)]
pub struct Inbound {
    /// Which locker, from the topic.
    pub device: DeviceId,
    /// What it is.
    pub kind: InboundKind,
    /// The payload as received.
    pub payload: Bytes,
    /// How the envelope is encoded: JSON over MQTT, binary from a serial line.
    pub encoding: firmware_protocol::Encoding,
    /// Wall-clock time of receipt.
    pub received_at: DateTime<Utc>,
}

/// What an [`Inbound`] carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboundKind {
    /// An uplink envelope (MQTT `up`, or a serial board's answer).
    Up,
    /// A status message (MQTT `status`: a last will, or an announcement).
    Status,
    /// A serial board did not answer a poll (the payload is empty); `offline` names the session
    /// that ends if that was one poll too many. It travels the same way as the board's answers,
    /// so it is written in order with them, and never by the line's own task.
    Unanswered {
        /// The session that ends, if the board is now offline.
        offline: Option<u32>,
    },
}

struct DeviceState {
    credentials: DeviceCredentials,
    guard: UplinkGuard,
    loaded: Instant,
}

/// Most messages handled as one batch (one database transaction).
pub const MAX_BATCH: usize = 64;

/// Credentials are re-read on a tag failure, and the session on an unknown one, at most this
/// often per locker (a rotation changes the key; another gateway may have recorded a new session).
const RELOAD_AFTER: Duration = Duration::from_millis(50);
/// An uplink of a session this gateway cannot find yet waits this long and is checked once more
/// (the locker's hello may be on its way through another gateway, its transaction not yet
/// committed), rather than dropped at once: a door event right after a hello is not lost.
const UNKNOWN_SESSION_RETRY: Duration = Duration::from_millis(300);
/// Most uplinks parked for that second look, per shard; more are dropped as before.
const MAX_PARKED: usize = 1024;

/// A shard's state; `H` does what the books need with each verified uplink.
pub struct Worker<H> {
    pub(super) handler: Arc<H>,
    registry: DeviceRegistry,
    devices: HashMap<DeviceId, DeviceState>,
    uplinks: broadcast::Sender<VerifiedUplink>,
    stats: Arc<LinkStats>,
    downlinks: Downlinks,
    hello_asks: super::hello_asks::HelloAsks,
    /// Uplinks of an unknown session waiting for their second look, oldest first.
    parked: VecDeque<(Instant, Inbound)>,
}

/// Why an uplink was dropped (the label of `locker_uplinks_rejected_total{reason}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// Not a valid envelope.
    Malformed(&'static str),
    /// No such device, or revoked.
    UnknownDevice,
    /// The tag did not verify with the key of the device named in the topic.
    BadTag,
    /// Session or counter already seen.
    Replay(&'static str),
    /// The database could not be asked or written.
    Storage,
}

impl Rejection {
    /// A stable label.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Malformed(kind) => kind,
            Self::UnknownDevice => "unknown_device",
            Self::BadTag => "bad_tag",
            Self::Replay(kind) => kind,
            Self::Storage => "storage",
        }
    }
}

impl<H: Handler> Worker<H> {
    /// A shard with an empty device cache: credentials from `registry`, uplinks to `handler`.
    pub fn new(
        handler: Arc<H>,
        registry: DeviceRegistry,
        uplinks: broadcast::Sender<VerifiedUplink>,
        stats: Arc<LinkStats>,
        downlinks: Downlinks,
    ) -> Self {
        Self {
            handler,
            registry,
            devices: HashMap::new(),
            uplinks,
            stats,
            downlinks,
            hello_asks: Default::default(),
            parked: VecDeque::new(),
        }
    }

    /// Asks a locker whose hello was lost for it again at most once per `heartbeat` (its next
    /// heartbeat after a lost answer asks again), and at most every 10 s.
    pub fn asking_for_hello_every(mut self, heartbeat: Duration) -> Self {
        self.hello_asks = super::hello_asks::HelloAsks::every_heartbeat(heartbeat);
        self
    }

    /// [`Worker::ask_for_hello`] with the locker's cached key.
    fn ask_for_hello_of(&mut self, device: DeviceId) {
        let Some(key) = self
            .devices
            .get(&device)
            .map(|s| s.credentials.current.tag_key.clone())
        else {
            return;
        };
        self.ask_for_hello(device, &key);
    }

    /// Asks a locker to announce its session again (its `hello` never reached us): a `ping` for
    /// session 0, which the locker answers with a `hello` (PROTOCOL.md §7.1). Rate-limited.
    fn ask_for_hello(&mut self, device: DeviceId, key: &DeviceKey) {
        if !self.hello_asks.may_ask(device) {
            return;
        }
        match self
            .downlinks
            .deliver(&super::hello_asks::ping(device), key, None)
        {
            Ok(_) => {
                tracing::info!(%device, "uplink from an unknown session: asking the locker for a hello");
            }
            Err(e) => tracing::error!(error = %e, "cannot seal a ping"),
        }
    }

    /// Handles messages until the channel closes: whatever has queued up meanwhile (up to
    /// [`MAX_BATCH`]) is handled as one batch.
    pub async fn run(mut self, mut inbox: mpsc::Receiver<Inbound>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        loop {
            let due = self.parked.front().map(|(at, _)| *at);
            let received = tokio::select! {
                n = inbox.recv_many(&mut batch, MAX_BATCH) => n,
                _ = tokio::time::sleep_until(due.unwrap_or_else(Instant::now).into()), if due.is_some() => {
                    self.second_look().await;
                    continue;
                }
            };
            if received == 0 {
                return;
            }
            self.handle(batch.drain(..)).await;
        }
    }

    /// Checks the parked uplinks that are due once more; those still of an unknown session are
    /// dropped now.
    async fn second_look(&mut self) {
        let now = Instant::now();
        let mut due = Vec::new();
        while self.parked.front().is_some_and(|(at, _)| *at <= now) {
            if let Some((_, inbound)) = self.parked.pop_front() {
                due.push(inbound);
            }
        }
        for inbound in &due {
            // Read the session from the books again, whatever the cache holds.
            self.devices.remove(&inbound.device);
        }
        self.handle_checked(due, true).await;
    }

    /// Handles messages in order; a rejection is logged and counted, never propagated. Verified
    /// uplinks other than hellos are written in one transaction together (one commit for the
    /// batch instead of one per message); hellos and last wills are written on their own.
    pub async fn handle(&mut self, messages: impl IntoIterator<Item = Inbound>) {
        self.handle_checked(messages, false).await;
    }

    /// [`Worker::handle`]; `second_look` says whether these were parked already.
    async fn handle_checked(
        &mut self,
        messages: impl IntoIterator<Item = Inbound>,
        second_look: bool,
    ) {
        let started = Instant::now();
        let mut pending: Vec<Accepted> = Vec::new();
        let mut count = 0usize;
        for inbound in messages {
            count += 1;
            let lag = (Utc::now() - inbound.received_at)
                .to_std()
                .unwrap_or_default();
            metrics::histogram!("locker_uplink_lag_seconds").record(lag.as_secs_f64());
            let result = match inbound.kind {
                InboundKind::Up => match self.check(&inbound).await {
                    Ok(accepted) if accepted.is_hello() => {
                        // In order: what came before the hello is written before it.
                        self.flush(std::mem::take(&mut pending)).await;
                        self.hello(accepted).await
                    }
                    Ok(accepted) => {
                        pending.push(accepted);
                        Ok(())
                    }
                    Err(Rejection::Replay("unknown_session"))
                        if !second_look && self.parked.len() < MAX_PARKED =>
                    {
                        metrics::counter!("locker_uplinks_parked_total").increment(1);
                        let due = Instant::now() + UNKNOWN_SESSION_RETRY;
                        self.parked.push_back((due, inbound));
                        continue;
                    }
                    Err(rejection) => {
                        if rejection == Rejection::Replay("unknown_session") {
                            self.ask_for_hello_of(inbound.device);
                        }
                        Err(rejection)
                    }
                },
                InboundKind::Status => {
                    self.flush(std::mem::take(&mut pending)).await;
                    self.status(&inbound).await
                }
                InboundKind::Unanswered { offline } => {
                    self.flush(std::mem::take(&mut pending)).await;
                    self.unanswered(&inbound.device, offline).await
                }
            };
            if let Err(rejection) = result {
                self.reject(&inbound.device, &rejection);
            }
        }
        self.flush(pending).await;
        metrics::histogram!("locker_uplink_batch_size").record(count as f64);
        metrics::histogram!("locker_uplink_handling_seconds")
            .record(started.elapsed().as_secs_f64());
    }

    /// Forgets what memory holds of a device (its credentials and its replay guard) after the
    /// guard accepted a message the database then refused or could not write: nothing in memory
    /// may stand that the database did not accept, so the next uplink reads the guard again from
    /// what the database holds.
    fn forget(&mut self, device: &DeviceId) {
        self.devices.remove(device);
    }

    fn reject(&self, device: &DeviceId, rejection: &Rejection) {
        self.stats.reject(rejection);
        tracing::warn!(%device, reason = rejection.kind(), "uplink dropped");
    }

    async fn load(&mut self, device: &DeviceId) -> Result<&mut DeviceState, Rejection> {
        let stale = self
            .devices
            .get(device)
            .is_none_or(|s| s.loaded.elapsed() > Duration::from_secs(300));
        if stale {
            let credentials = self
                .registry
                .credentials(device)
                .await
                .map_err(|_| Rejection::Storage)?
                .ok_or(Rejection::UnknownDevice)?;
            let guard = match self.devices.remove(device) {
                Some(state) => state.guard,
                None => self
                    .handler
                    .guard(device)
                    .await
                    .map_err(|_| Rejection::Storage)?,
            };
            self.devices.insert(
                *device,
                DeviceState {
                    credentials,
                    guard,
                    loaded: Instant::now(),
                },
            );
        }
        self.devices.get_mut(device).ok_or(Rejection::UnknownDevice)
    }

    fn verify(
        raw: &Unverified<'_>,
        device: &DeviceId,
        credentials: &DeviceCredentials,
    ) -> Result<Envelope<Uplink>, Rejection> {
        let mut last = DecodeError::BadTag;
        for key in credentials.tag_keys() {
            match raw.verify::<Uplink>(device, key) {
                Ok(envelope) => return Ok(envelope),
                Err(e) => last = e,
            }
        }
        Err(match last {
            DecodeError::BadTag => Rejection::BadTag,
            other => Rejection::Malformed(other.kind()),
        })
    }

    /// Parses, authenticates and de-duplicates an uplink (in memory; nothing written yet).
    async fn check(&mut self, inbound: &Inbound) -> Result<Accepted, Rejection> {
        let device = inbound.device;
        let raw = match inbound.encoding {
            firmware_protocol::Encoding::Json => Unverified::parse_json(&inbound.payload),
            firmware_protocol::Encoding::Binary => Unverified::parse_binary(&inbound.payload),
        }
        .map_err(|e| Rejection::Malformed(e.kind()))?;
        let state = self.load(&device).await?;
        if state.credentials.revoked {
            return Err(Rejection::UnknownDevice);
        }
        let envelope = match Self::verify(&raw, &device, &state.credentials) {
            Err(Rejection::BadTag) if state.loaded.elapsed() > RELOAD_AFTER => {
                // The key may have been rotated since it was cached: read it again, once.
                self.devices.remove(&device);
                let state = self.load(&device).await?;
                Self::verify(&raw, &device, &state.credentials)?
            }
            other => other?,
        };
        let state = self.load(&device).await?;
        let is_hello = matches!(envelope.message, Uplink::Hello(_));
        let key = state.credentials.current.tag_key.clone();
        let mut accepted = state.guard.accept(&envelope.header, is_hello);
        if let Err(ReplayError::UnknownSession(_)) = accepted
            && state.loaded.elapsed() > RELOAD_AFTER
        {
            // Another gateway may have recorded the locker's new session (its hello reached
            // that one): read the session from the books again, once, before refusing.
            self.devices.remove(&device);
            let state = self.load(&device).await?;
            accepted = state.guard.accept(&envelope.header, is_hello);
        }
        let change = accepted.map_err(|e| Rejection::Replay(e.kind()))?;
        Ok(Accepted {
            device,
            envelope,
            change,
            key,
            received_at: inbound.received_at,
            arrival: match inbound.encoding {
                // Over MQTT a locker sends everything as it happens, in order.
                firmware_protocol::Encoding::Json => Arrival::AsItHappens,
                // A serial board answers a command at once but keeps door events for a poll.
                firmware_protocol::Encoding::Binary => Arrival::EventsWhenPolled,
            },
        })
    }

    /// Records a hello (a session starting, or announced again) in its own transaction.
    async fn hello(&mut self, accepted: Accepted) -> Result<(), Rejection> {
        let recorded = self.handler.hello(&accepted);
        match recorded.await {
            Ok(true) => {
                self.accepted(accepted, Vec::new()).await;
                Ok(())
            }
            Ok(false) => {
                // The guard switched to this session in memory; the database did not.
                self.forget(&accepted.device);
                Err(Rejection::Replay("fenced_by_database"))
            }
            Err(e) => {
                self.forget(&accepted.device);
                tracing::error!(error = %e, device = %accepted.device, "cannot record a hello");
                Err(Rejection::Storage)
            }
        }
    }

    /// Writes verified uplinks in one transaction; if it fails, writes each on its own, so one
    /// bad write costs only its own message.
    async fn flush(&mut self, batch: Vec<Accepted>) {
        if batch.is_empty() {
            return;
        }
        let written = match self.handler.write(&batch).await {
            Ok(written) => written,
            Err(e) if batch.len() > 1 => {
                tracing::warn!(error = %e, size = batch.len(), "a batch of uplinks failed: writing them one by one");
                let mut one_by_one = Vec::with_capacity(batch.len());
                for accepted in &batch {
                    one_by_one.push(match self.handler.write(std::slice::from_ref(accepted)).await {
                        Ok(mut one) => one.pop().unwrap_or(Err(NotWritten::Failed)),
                        Err(e) => {
                            tracing::error!(error = %e, device = %accepted.device, "cannot record an uplink");
                            Err(NotWritten::Failed)
                        }
                    });
                }
                one_by_one
            }
            Err(e) => {
                tracing::error!(error = %e, device = %batch[0].device, "cannot record an uplink");
                vec![Err(NotWritten::Failed)]
            }
        };
        for (accepted, written) in batch.into_iter().zip(written) {
            match written {
                Ok(settled) => self.accepted(accepted, settled).await,
                Err(why) => {
                    self.forget(&accepted.device);
                    let rejection = match why {
                        NotWritten::Fenced => Rejection::Replay("fenced_by_database"),
                        NotWritten::Failed => Rejection::Storage,
                    };
                    self.reject(&accepted.device, &rejection);
                }
            }
        }
    }

    /// What follows a recorded uplink: the handler's follow-up (waiters told, a new session's
    /// work started), subscribers told.
    async fn accepted(
        &mut self,
        accepted: Accepted,
        settled: Vec<(i64, crate::command::Progress)>,
    ) {
        self.stats.accept();
        self.handler.recorded(&accepted, settled).await;
        let Accepted {
            device,
            envelope,
            received_at,
            ..
        } = accepted;
        let header = envelope.header;
        // Nobody listening is fine: the uplink is already recorded.
        let _ = self.uplinks.send(VerifiedUplink {
            device,
            session: header.session,
            counter: header.counter,
            message: envelope.message,
            received_at,
        });
    }
}
