//! Commands to lockers: one call, `CommandService::send`, whatever the transport, with a truthful
//! answer: what the locker did with the command, and what the door did afterwards.
//!
//! A command is stored before it is sent (`pending`), published with the locker's current session
//! and the next downlink counter (`sent`), resent byte for byte while the session lasts and no
//! answer has come, and settled by the first answer (`executed` or `refused`). No answer by the
//! deadline leaves it `unknown` (to be settled by asking the locker). Answers are recorded by the
//! device link as they arrive, whoever is waiting; duplicates are counted and a conflicting second
//! answer is flagged, never applied.

pub mod answered;
pub mod history;
mod kind;
pub mod outlet;
pub mod query;
pub mod queue;
pub mod service;
pub mod store;

use std::collections::HashMap;
use std::sync::Mutex;

use firmware_protocol::RefuseReason;
use tokio::sync::watch;

pub use kind::{Command, OutOfRange};
pub use service::{CommandError, CommandService, CommandSettings, Outcome};

/// Who asked for a command, and why; kept with it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    /// The account that asked (an operator's maintenance unlock), if any.
    pub requested_by: Option<uuid::Uuid>,
    /// Why, in their words (at most 200 characters).
    pub reason: Option<String>,
}

/// A command's state as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandState {
    /// Stored, not yet published.
    Pending,
    /// Published, no answer yet.
    Sent,
    /// The locker pulsed the relay (or applied the settings).
    Executed,
    /// The locker refused it.
    Refused(RefuseReason),
    /// Its time to live passed before it was sent.
    Expired,
    /// An operator cancelled it before it was sent.
    Cancelled,
    /// No answer, and the locker could not say.
    Unknown,
}

/// What the door did after an executed unlock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DoorResult {
    /// The sensor saw it open within the open window.
    Opened,
    /// It was open already when the relay pulsed.
    AlreadyOpen,
    /// It did not open within the open window.
    Jammed,
}

impl DoorResult {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Opened => "opened",
            Self::AlreadyOpen => "already_open",
            Self::Jammed => "jammed",
        }
    }

    /// What a locker reports its door did (protocol version 2's `door_results`).
    pub fn reported(outcome: firmware_protocol::DoorOutcome) -> Self {
        match outcome {
            firmware_protocol::DoorOutcome::Opened => Self::Opened,
            firmware_protocol::DoorOutcome::AlreadyOpen => Self::AlreadyOpen,
            firmware_protocol::DoorOutcome::NotOpened => Self::Jammed,
        }
    }

    /// The result for a stored name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "opened" => Some(Self::Opened),
            "already_open" => Some(Self::AlreadyOpen),
            "jammed" => Some(Self::Jammed),
            _ => None,
        }
    }
}

/// What a waiter learns about its command, as the device link records answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// The command's state.
    pub state: CommandState,
    /// The door's result, once known.
    pub door: Option<DoorResult>,
}

/// The commands someone is waiting for, by id: the device link tells them what it recorded. The
/// lock is only ever held for a map operation, never across an `.await`.
#[derive(Debug, Default)]
pub struct Waiters {
    map: Mutex<HashMap<i64, watch::Sender<Progress>>>,
}

impl Waiters {
    /// Starts waiting for `id`.
    pub fn register(&self, id: i64, initial: Progress) -> watch::Receiver<Progress> {
        let (tx, rx) = watch::channel(initial);
        if let Ok(mut map) = self.map.lock() {
            map.insert(id, tx);
        }
        rx
    }

    /// Stops waiting for `id`.
    pub fn forget(&self, id: i64) {
        if let Ok(mut map) = self.map.lock() {
            map.remove(&id);
        }
    }

    /// Tells whoever waits for `id`.
    pub fn update(&self, id: i64, progress: Progress) {
        if let Ok(map) = self.map.lock()
            && let Some(tx) = map.get(&id)
        {
            let _ = tx.send(progress);
        }
    }

    /// How many commands are being waited for.
    pub fn len(&self) -> usize {
        self.map.lock().map_or(0, |m| m.len())
    }

    /// Whether nobody waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The commands being waited for (a copy: the lock is not held after).
    pub fn ids(&self) -> Vec<i64> {
        self.map
            .lock()
            .map_or_else(|_| Vec::new(), |m| m.keys().copied().collect())
    }

    /// Whether `id` is being waited for.
    pub fn waits_for(&self, id: i64) -> bool {
        self.map.lock().is_ok_and(|m| m.contains_key(&id))
    }

    /// Whether `id` is being waited for and its waiter may still learn something: its answer,
    /// or (answered, executed) its door's result. What a gateway recorded itself its waiters
    /// already know, so an announcement of it costs no read of the books.
    pub fn needs_news(&self, id: i64) -> bool {
        self.map.lock().is_ok_and(|m| {
            m.get(&id).is_some_and(|tx| {
                let known = *tx.borrow();
                match known.state {
                    CommandState::Refused(_) => false,
                    CommandState::Executed => known.door.is_none(),
                    _ => true,
                }
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_waiter_needs_news_until_it_knows_the_answer_and_the_door() {
        let waiters = Waiters::default();
        assert!(!waiters.needs_news(1), "nobody waits");
        let progress = |state, door| Progress { state, door };
        let _waiting = waiters.register(1, progress(CommandState::Sent, None));
        assert!(waiters.needs_news(1));
        waiters.update(1, progress(CommandState::Executed, None));
        assert!(waiters.needs_news(1), "the door may still come");
        waiters.update(
            1,
            progress(CommandState::Executed, Some(DoorResult::Opened)),
        );
        assert!(!waiters.needs_news(1), "known here already");
        let _refused =
            waiters.register(2, progress(CommandState::Refused(RefuseReason::Busy), None));
        assert!(!waiters.needs_news(2));
        waiters.forget(1);
        assert!(!waiters.needs_news(1));
    }
}
