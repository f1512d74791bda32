//! Sessions and counters: the replay rules of both ends, as reference implementations.
//!
//! * [`UplinkGuard`] is the gateway's per-device state: it accepts an uplink's counter once, within
//!   the session's anti-replay window ([`crate::window`]: in any order, never twice, never older
//!   than the window), and a `Hello` only for a session it has not seen before (so neither a
//!   replayed `DoorEvent`, `Ack` nor `Hello` gets through).
//! * [`CommandGuard`] is what a locker keeps: its session, the downlink counters accepted (in
//!   protocol version 1 the last one, and only a counter above it is new; in version 2 an
//!   anti-replay window, so downlinks of several gateways may arrive in any order), and the
//!   outcomes of its last commands, so that an exact repeat of a command is answered again and
//!   never executed twice.
//!
//! Both are checked only **after** the tag verified ([`crate::Unverified::verify`]).

use std::collections::VecDeque;

use crate::envelope::Header;
use crate::message::{Ack, CommandId, CommandResult, RefuseReason};
use crate::window::ReplayWindow;

/// How many earlier sessions per device the gateway remembers to refuse a replayed `Hello`.
pub const REMEMBERED_SESSIONS: usize = 32;

/// Why the gateway refused an authenticated uplink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    #[error(
        "counter {counter} of session {session} was seen before or is older than the window (highest {last})"
    )]
    /// The counter was accepted before in the session, or is a window or more below the highest.
    OldCounter {
        /// The session.
        session: u32,
        /// The refused counter.
        counter: u32,
        /// The highest counter accepted so far.
        last: u32,
    },
    #[error("session {0} is not the device's current session (no Hello for it)")]
    /// Not the current session, and not a `Hello` opening a new one.
    UnknownSession(u32),
    #[error("session {0} was used before")]
    /// A `Hello` for a session the device used before.
    ReusedSession(u32),
    #[error("session 0 is reserved")]
    /// Session 0 is never valid in an uplink.
    ZeroSession,
}

impl ReplayError {
    /// A short stable label for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::OldCounter { .. } => "old_counter",
            Self::UnknownSession(_) => "unknown_session",
            Self::ReusedSession(_) => "reused_session",
            Self::ZeroSession => "zero_session",
        }
    }
}

/// What an accepted uplink means for the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionChange {
    /// Same session as before.
    Same,
    /// A `Hello` opened a new session; `previous` is the one it replaces. Commands of the
    /// previous session must now be settled by `QueryState`, never resent.
    /// A new session.
    New {
        /// The session it replaces, if any.
        previous: Option<u32>,
    },
}

/// The gateway's replay state for one device.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UplinkGuard {
    current: Option<(u32, ReplayWindow)>,
    retired: VecDeque<u32>,
}

impl UplinkGuard {
    /// A guard that knows no session yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// A guard restored from stored state: the current session and its window, plus earlier
    /// sessions (oldest first; only the last [`REMEMBERED_SESSIONS`] are kept).
    pub fn restore(
        current: Option<(u32, ReplayWindow)>,
        retired: impl IntoIterator<Item = u32>,
    ) -> Self {
        let mut retired: VecDeque<u32> = retired.into_iter().collect();
        while retired.len() > REMEMBERED_SESSIONS {
            retired.pop_front();
        }
        Self { current, retired }
    }

    /// The current session and the counters accepted in it.
    pub fn current(&self) -> Option<(u32, ReplayWindow)> {
        self.current
    }

    /// Earlier sessions, oldest first.
    pub fn retired(&self) -> impl Iterator<Item = u32> + '_ {
        self.retired.iter().copied()
    }

    /// Checks an authenticated uplink's header and, if it is fresh, records it. `is_hello` says
    /// whether the message is a `Hello` (the only message that may open a session).
    pub fn accept(
        &mut self,
        header: &Header,
        is_hello: bool,
    ) -> Result<SessionChange, ReplayError> {
        let (session, counter) = (header.session, header.counter);
        if session == 0 {
            return Err(ReplayError::ZeroSession);
        }
        match &mut self.current {
            Some((current, window)) if *current == session => {
                let last = window.highest();
                window
                    .accept(counter)
                    .map_err(|_| ReplayError::OldCounter {
                        session,
                        counter,
                        last,
                    })?;
                Ok(SessionChange::Same)
            }
            _ if !is_hello => Err(ReplayError::UnknownSession(session)),
            _ if self.retired.contains(&session) => Err(ReplayError::ReusedSession(session)),
            previous => {
                let previous = previous.map(|(s, _)| s);
                if let Some(old) = previous {
                    if self.retired.len() == REMEMBERED_SESSIONS {
                        self.retired.pop_front();
                    }
                    self.retired.push_back(old);
                }
                self.current = Some((session, ReplayWindow::starting_at(counter)));
                Ok(SessionChange::New { previous })
            }
        }
    }
}

/// What a locker does with an authenticated downlink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// New: execute it (for a command, then [`CommandGuard::record`] the result).
    Execute,
    /// An exact repeat of a command already handled: answer this stored result again, do nothing.
    Repeat(CommandResult),
    /// Refuse: answer a command with this reason; ignore anything else.
    Refuse(RefuseReason),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Handled {
    command_id: CommandId,
    counter: u32,
    result: CommandResult,
}

/// A locker's replay state for its current session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandGuard {
    session: u32,
    /// The counters accepted in the session. In protocol version 1 only its highest counter is
    /// used (a counter is new only above it); in version 2 the whole window.
    window: ReplayWindow,
    version: u8,
    capacity: usize,
    recent: VecDeque<Handled>,
}

impl CommandGuard {
    /// A protocol version 1 guard for a fresh session (a downlink is new only if its counter is
    /// above the last accepted), remembering the outcomes of the last `capacity` commands (at
    /// least [`crate::MIN_RECENT`]).
    pub fn new(session: u32, capacity: usize) -> Self {
        Self::speaking(crate::OLDEST_PROTOCOL_VERSION, session, capacity)
    }

    /// A guard for a locker that announces `version` in its `hello`: from version 2 on, a
    /// downlink is new if its counter is inside the anti-replay window and not seen before
    /// ([`crate::window`]), whatever order counters arrive in; version 1 (or an unknown version
    /// below it) needs a counter above the last.
    pub fn speaking(version: u8, session: u32, capacity: usize) -> Self {
        let capacity = capacity.clamp(crate::MIN_RECENT, crate::MAX_RECENT);
        Self {
            session,
            window: ReplayWindow::new(),
            version,
            capacity,
            recent: VecDeque::with_capacity(capacity),
        }
    }

    /// Moves to a new session after a reconnect without a reboot: the counters start again, the
    /// remembered outcomes are kept (they answer the gateway's `QueryState` about commands of the
    /// earlier session). A reboot loses them: start with [`CommandGuard::speaking`].
    pub fn renew(&mut self, session: u32) {
        self.session = session;
        self.window = ReplayWindow::new();
    }

    /// The session this guard belongs to.
    pub fn session(&self) -> u32 {
        self.session
    }

    /// The protocol version whose rules this guard keeps.
    pub fn version(&self) -> u8 {
        self.version
    }

    /// The highest downlink counter accepted in the session (0 before any).
    pub fn last_counter(&self) -> u32 {
        self.window.highest()
    }

    /// Takes `counter` as new if the version's rule allows: version 1, above the last; version
    /// 2, inside the window and not seen before.
    fn take(&mut self, counter: u32) -> bool {
        if self.version >= 2 {
            self.window.accept(counter).is_ok()
        } else if counter > self.window.highest() {
            self.window = ReplayWindow::restore(counter, 1);
            true
        } else {
            false
        }
    }

    /// Decides what to do with an authenticated downlink. `command` is its command id, if it is a
    /// command (`Unlock`, `Configure`). Records the counter as accepted when it returns `Execute`.
    pub fn check(&mut self, header: &Header, command: Option<CommandId>) -> Verdict {
        if header.session != self.session {
            return Verdict::Refuse(RefuseReason::WrongSession);
        }
        if self.take(header.counter) {
            return Verdict::Execute;
        }
        let repeat = command.and_then(|id| {
            self.recent
                .iter()
                .find(|h| h.command_id == id && h.counter == header.counter)
        });
        match repeat {
            Some(handled) => Verdict::Repeat(handled.result),
            None => Verdict::Refuse(RefuseReason::StaleCounter),
        }
    }

    /// Decides whether to answer an authenticated `poll`: `Execute` for a new one (its counter
    /// above the last, which it becomes) and for the gateway's repeat of the last downlink (the
    /// same counter: the answer to it was lost, so it is answered again); `Refuse` for another
    /// session (answer with a `hello`) or an older counter (ignore it).
    pub fn check_poll(&mut self, header: &Header) -> Verdict {
        if header.session != self.session {
            return Verdict::Refuse(RefuseReason::WrongSession);
        }
        if self.take(header.counter) {
            return Verdict::Execute;
        }
        if header.counter == self.window.highest() && header.counter != 0 {
            return Verdict::Execute;
        }
        Verdict::Refuse(RefuseReason::StaleCounter)
    }

    /// Remembers what a command that got `Execute` came to.
    pub fn record(&mut self, command_id: CommandId, counter: u32, result: CommandResult) {
        if self.recent.len() == self.capacity {
            self.recent.pop_front();
        }
        self.recent.push_back(Handled {
            command_id,
            counter,
            result,
        });
    }

    /// The remembered outcomes, oldest first, as sent in a `StateReport`.
    pub fn recent(&self) -> Vec<Ack> {
        self.recent
            .iter()
            .map(|h| Ack {
                command_id: h.command_id,
                result: h.result,
            })
            .collect()
    }
}
