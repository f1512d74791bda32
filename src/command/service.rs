//! `CommandService::send`: store, publish, resend, await, and report what happened.

use std::sync::Arc;
use std::time::Duration;

use firmware_protocol::{CommandId, DeviceId, Direction, Envelope, Header, RefuseReason};
use tokio::time::Instant;

use super::kind::Command;
use super::outlet::Outlet;
use super::store::{self, StoreError};
use super::{CommandState, DoorResult, Progress, Waiters};
use crate::device::DeviceRegistry;
use crate::storage::{Storage, on_pool};

/// Timing of commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandSettings {
    /// How long `send` waits for the locker's answer.
    pub deadline: Duration,
    /// How long after the first send an unanswered command is sent again (same envelope); each
    /// further resend waits twice as long as the one before, within the deadline, so a slow
    /// gateway or broker is not flooded with copies of the commands it is already late with.
    pub resend_every: Duration,
    /// How long after an executed unlock the door's sensor may take to report.
    pub open_window: Duration,
    /// Most commands awaiting an answer at once; beyond it `send` refuses at once with
    /// `Overloaded` rather than queueing past its deadline.
    pub max_in_flight: usize,
}

impl Default for CommandSettings {
    fn default() -> Self {
        Self {
            deadline: Duration::from_secs(10),
            resend_every: Duration::from_secs(2),
            open_window: Duration::from_secs(10),
            max_in_flight: 5_000,
        }
    }
}

/// What a sent command came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// The command's id.
    pub command_id: i64,
    /// For an unlock: what the door did within the open window; `None` if the sensor did not say.
    pub door: Option<DoorResult>,
}

/// Why a command did not execute, or its outcome is not known.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The locker is not connected: said at once, nothing was sent.
    #[error("the locker is offline")]
    DeviceOffline,
    /// No such device, or it is revoked.
    #[error("no such device")]
    UnknownDevice,
    /// The command is not valid.
    #[error("invalid command: {0}")]
    Invalid(String),
    /// The locker has no such door: nothing was stored or sent.
    #[error("the locker has no door {door}: its doors are 1 to {count}")]
    NoSuchDoor {
        /// The door asked for.
        door: u16,
        /// The locker's doors.
        count: u16,
    },
    /// The locker refused it, for this reason; nothing was done.
    #[error("the locker refused the command: {0:?}")]
    Refused(RefuseReason),
    /// No answer by the deadline (or the locker's session ended first): the outcome is unknown
    /// until the locker is asked.
    #[error("no answer from the locker in time (command {command_id})")]
    Timeout {
        /// The command, stored as `unknown`.
        command_id: i64,
    },
    /// The locker is installing new firmware (from the gateway's `install` until it reports):
    /// nothing was stored or sent. Try again once it is back.
    #[error("the locker is installing new firmware; try again once it reports")]
    Updating,
    /// Too many commands are awaiting answers; nothing was stored or sent. Try again later.
    #[error("too many commands in flight")]
    Overloaded,
    /// The database failed, or an invariant broke (the cause kept).
    #[error("unexpected: {0}")]
    Unexpected(#[source] crate::storage::Unexpected),
}

impl CommandError {
    /// A stable label for logs, metrics and API error codes.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::DeviceOffline => "device_offline",
            Self::UnknownDevice => "unknown_device",
            Self::Invalid(_) => "invalid_command",
            Self::NoSuchDoor { .. } => "no_such_door",
            Self::Refused(_) => "refused",
            Self::Timeout { .. } => "timeout",
            Self::Overloaded => "overloaded",
            Self::Updating => "updating",
            Self::Unexpected(_) => "storage",
        }
    }
}

impl From<StoreError> for CommandError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Offline => Self::DeviceOffline,
            StoreError::UnknownDevice => Self::UnknownDevice,
            StoreError::NoSuchDoor { door, count } => Self::NoSuchDoor { door, count },
            StoreError::Database(e) => Self::Unexpected(e.into()),
        }
    }
}

fn storage(e: sqlx::Error) -> CommandError {
    CommandError::Unexpected(e.into())
}

/// Sends commands to lockers and waits for their answers.
#[derive(Debug, Clone)]
pub struct CommandService {
    storage: Storage,
    registry: DeviceRegistry,
    downlinks: Arc<dyn Outlet>,
    waiters: Arc<Waiters>,
    settings: CommandSettings,
    in_flight: Arc<tokio::sync::Semaphore>,
    /// The gateway whose requests wait here (recorded with each command it sends).
    gateway: Option<Arc<str>>,
}

/// Stops waiting when the `send` future ends, however it ends.
struct Waiting<'a> {
    waiters: &'a Waiters,
    id: i64,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.waiters.forget(self.id);
    }
}

impl CommandService {
    /// A service publishing through `downlinks`; the device link reports answers to `waiters`.
    pub fn new(
        storage: impl Into<Storage>,
        downlinks: Arc<dyn Outlet>,
        waiters: Arc<Waiters>,
        settings: CommandSettings,
    ) -> Self {
        let storage = storage.into();
        Self {
            registry: DeviceRegistry::new(storage.clone()),
            storage,
            downlinks,
            waiters,
            in_flight: Arc::new(tokio::sync::Semaphore::new(settings.max_in_flight.max(1))),
            settings,
            gateway: None,
        }
    }

    /// The service of gateway `id`: each command it sends records that gateway, so the others
    /// take it over only once this gateway's lease expired.
    pub fn on_gateway(mut self, id: &str) -> Self {
        self.gateway = Some(Arc::from(id));
        self
    }

    /// Queues a command for a locker that may be offline: it is sent in the locker's next session
    /// (at once if it is online), or expires after `ttl` and is never executed. Returns its id.
    pub async fn queue(
        &self,
        device: DeviceId,
        command: Command,
        ttl: Duration,
    ) -> Result<i64, CommandError> {
        let id = super::queue::enqueue(&self.storage, &device, &command, ttl).await?;
        if let Some(session) = store::current_session(&self.storage, &device)
            .await
            .map_err(storage)?
        {
            let credentials = self
                .registry
                .credentials(&device)
                .await
                .map_err(|e| CommandError::Unexpected(crate::storage::Unexpected::new(e)))?
                .ok_or(CommandError::UnknownDevice)?;
            super::queue::deliver(
                &self.storage,
                &*self.downlinks,
                device,
                session,
                &credentials.current.tag_key,
            )
            .await
            .map_err(storage)?;
        }
        Ok(id)
    }

    /// Cancels a queued command not yet sent. Returns whether it was cancelled.
    pub async fn cancel(&self, id: i64) -> Result<bool, CommandError> {
        super::queue::cancel(&self.storage, id)
            .await
            .map_err(storage)
    }

    /// Commands awaiting an answer now (at most [`CommandSettings::max_in_flight`]).
    pub fn in_flight(&self) -> usize {
        self.settings
            .max_in_flight
            .max(1)
            .saturating_sub(self.in_flight.available_permits())
    }

    /// Opens a door: `send(device, Command::Unlock { door })`.
    pub async fn unlock(&self, device: DeviceId, door: u16) -> Result<Outcome, CommandError> {
        self.send(device, Command::Unlock { door }).await
    }

    /// Sends a command and waits for the locker's answer (and, for an unlock, the door's).
    pub async fn send(&self, device: DeviceId, command: Command) -> Result<Outcome, CommandError> {
        self.send_with(device, command, &super::Origin::default())
            .await
    }

    /// [`CommandService::send`], recording who asked and why with the command.
    pub async fn send_with(
        &self,
        device: DeviceId,
        command: Command,
        origin: &super::Origin,
    ) -> Result<Outcome, CommandError> {
        let Ok(_permit) = self.in_flight.clone().try_acquire_owned() else {
            metrics::counter!("locker_commands_total", "result" => "overloaded").increment(1);
            return Err(CommandError::Overloaded);
        };
        if crate::firmware::updates::is_installing(&self.storage, &device)
            .await
            .map_err(storage)?
        {
            metrics::counter!("locker_commands_total", "result" => "updating").increment(1);
            return Err(CommandError::Updating);
        }
        let (kind, door, body) = command.stored();
        // The locker's turn, from taking the counter until the first copy is queued.
        let turn = self.downlinks.turns().turn(&device).await;
        // One round trip: the command stored with its counter, and the key to seal it with.
        let gateway = self.gateway.as_deref();
        let reserved =
            store::reserve(&self.storage, &device, (kind, door, &body), origin, gateway).await?;
        let command_id = CommandId::new(reserved.id as u64).ok_or_else(|| {
            CommandError::Unexpected(crate::storage::Unexpected::new("command id out of range"))
        })?;
        // The locker refuses it after the deadline by its own clock: a copy that arrives late is
        // never executed after the caller was told "timeout".
        let expires_at_ms = reserved
            .locker_uptime_ms
            .map(|now| store::deadline_in_locker_clock(now, self.settings.deadline));
        let message = command.message(command_id, expires_at_ms);
        let envelope = Envelope {
            header: Header {
                direction: Direction::Down,
                device_id: device,
                session: reserved.session,
                counter: reserved.counter,
            },
            message,
        };
        let started = Instant::now();
        let initial = Progress {
            state: CommandState::Pending,
            door: None,
        };
        // Waiting before it leaves: an answer cannot come before its waiter.
        let mut progress = self.waiters.register(reserved.id, initial);
        let _waiting = Waiting {
            waiters: &self.waiters,
            id: reserved.id,
        };
        let deadline = started + self.settings.deadline;
        // Sealed for the locker's transport and queued; on MQTT 5 the broker drops it too once
        // the deadline has passed.
        let payload =
            match self
                .downlinks
                .deliver(&envelope, &reserved.key, Some(self.settings.deadline))
            {
                Ok(payload) => payload,
                Err(e) => {
                    drop(turn);
                    store::mark_unknown(&self.storage, reserved.id)
                        .await
                        .map_err(storage)?;
                    return Err(CommandError::Invalid(e.to_string()));
                }
            };
        // The copy kept with the command (written with the first send only).
        let stored = payload.stored();
        let mut wait = self.settings.resend_every;
        let mut turn = Some(turn);
        let mut first = true;
        let answered = loop {
            if !first {
                self.downlinks.redeliver(
                    &device,
                    &payload,
                    Some(deadline.saturating_duration_since(Instant::now())),
                );
            }
            first = false;
            drop(turn.take());
            store::mark_sent(&self.storage, reserved.id, &stored)
                .await
                .map_err(storage)?;
            let resend_at = (Instant::now() + wait).min(deadline);
            wait = wait.saturating_mul(2);
            let settled = tokio::time::timeout_at(
                resend_at,
                progress.wait_for(|p| {
                    matches!(p.state, CommandState::Executed | CommandState::Refused(_))
                }),
            )
            .await
            // Copy out at once: a watch guard must not be held across an await.
            .ok()
            .and_then(|r| r.ok().map(|p| *p));
            if let Some(p) = settled {
                break Some(p);
            }
            // The answer may have reached another gateway: the books say what it recorded.
            if let Some(p) = self.answered_in_the_books(reserved.id).await? {
                break Some(p);
            }
            // Never resend into another session: a new session settles this by asking.
            let session = store::current_session(&self.storage, &device)
                .await
                .map_err(storage)?;
            if Instant::now() >= deadline || session != Some(reserved.session) {
                break None;
            }
        };
        let answer = match answered {
            Some(answer) => answer,
            None => {
                store::mark_unknown(&self.storage, reserved.id)
                    .await
                    .map_err(storage)?;
                // Never "timeout" for a command the books record as answered (an answer that
                // came in the meantime, to this gateway or another): `unknown` is only written
                // over `pending` and `sent`.
                match self.answered_in_the_books(reserved.id).await? {
                    Some(answer) => answer,
                    None => {
                        metrics::counter!("locker_commands_total", "result" => "timeout")
                            .increment(1);
                        return Err(CommandError::Timeout {
                            command_id: reserved.id,
                        });
                    }
                }
            }
        };
        metrics::histogram!("locker_command_round_trip_seconds")
            .record(started.elapsed().as_secs_f64());
        if let CommandState::Refused(reason) = answer.state {
            metrics::counter!("locker_commands_total", "result" => "refused").increment(1);
            return Err(CommandError::Refused(reason));
        }
        metrics::counter!("locker_commands_total", "result" => "executed").increment(1);
        if kind != "unlock" {
            return Ok(Outcome {
                command_id: reserved.id,
                door: None,
            });
        }
        let door = match answer.door {
            Some(door) => Some(door),
            None => tokio::time::timeout(
                self.settings.open_window,
                progress.wait_for(|p| p.door.is_some()),
            )
            .await
            .ok()
            .and_then(|p| p.ok().and_then(|p| p.door)),
        };
        // The door's event may have reached another gateway too.
        let door = match door {
            Some(door) => Some(door),
            None => store::progress(&self.storage, reserved.id)
                .await
                .map_err(storage)?
                .and_then(|p| p.door),
        };
        let door = match (door, command) {
            // Neither an opening nor a jam alarm: by the protocol the door was open already
            // (PROTOCOL.md §7.4). Ask the locker what its sensor says rather than guess.
            (None, Command::Unlock { door }) => self.ask_door(device, door, &reserved).await,
            (door, _) => door,
        };
        Ok(Outcome {
            command_id: reserved.id,
            door,
        })
    }

    /// The command's answer as the books record it, if it has one (executed or refused).
    async fn answered_in_the_books(&self, id: i64) -> Result<Option<Progress>, CommandError> {
        let stored = store::progress(&self.storage, id).await.map_err(storage)?;
        Ok(stored.filter(|p| matches!(p.state, CommandState::Executed | CommandState::Refused(_))))
    }

    /// After an executed unlock with no door event and no jam alarm within the open window:
    /// asks the locker for its state (a serial board: for everything it still holds, then its
    /// state) and records what its sensor says (open: `already_open`, closed: `jammed`) unless
    /// an event that came meanwhile said more; `None` if no report comes within
    /// [`DOOR_REPORT_WITHIN`].
    async fn ask_door(
        &self,
        device: DeviceId,
        door: u16,
        reserved: &store::Reserved,
    ) -> Option<DoorResult> {
        let asked = chrono::Utc::now();
        if self.downlinks.is_serial(&device) {
            // A serial board's `state_report` answers at once, ahead of door events it still
            // holds: have it polled until it has sent them all instead (the heartbeat that ends
            // that carries its doors, after their events).
            if !self.downlinks.drain(&device) {
                tracing::warn!(%device, "cannot ask a board about its door: its bus is busy");
                return None;
            }
        } else if let Err(e) = super::query::ask_state(
            &self.storage,
            &*self.downlinks,
            device,
            reserved.session,
            &reserved.key,
        )
        .await
        {
            tracing::warn!(error = %e, %device, "cannot ask a locker about its door");
            return None;
        }
        let until = Instant::now() + DOOR_REPORT_WITHIN;
        while Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(100)).await;
            // A locker of protocol version 2 says in its report what the door did (and an event
            // may have come meanwhile): that is the answer, whatever the sensor reads now.
            if let Ok(Some(Progress {
                door: Some(door), ..
            })) = store::progress(&self.storage, reserved.id).await
            {
                return Some(door);
            }
            const SENSOR: &str =
                "SELECT sensor FROM doors WHERE device_id = $1 AND door = $2 AND state_at >= $3";
            let sensor: Option<String> = on_pool!(&self.storage, |pool| sqlx::query_scalar(SENSOR)
                .bind(device.as_str())
                .bind(i32::from(door))
                .bind(asked)
                .fetch_optional(pool)
                .await
                .ok()
                .flatten());
            let result = match sensor.as_deref() {
                Some("open") => DoorResult::AlreadyOpen,
                Some("closed") => DoorResult::Jammed,
                Some(_) => return None,
                None => continue,
            };
            return match store::record_door_result(&self.storage, reserved.id, result).await {
                Ok(recorded) => recorded,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot record what a door did");
                    Some(result)
                }
            };
        }
        None
    }
}

/// How long to wait for a locker's state report about a door that said nothing.
pub const DOOR_REPORT_WITHIN: Duration = Duration::from_secs(3);
