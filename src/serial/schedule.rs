//! What a bus does next, decided without I/O so it can be tested on its own: a poll of a board
//! right after a command to it (to fetch the command's door event, which the person in front of
//! the door is waiting for), then the next queued request, and the poll cycle in the time left,
//! each board at most once per poll period. When the line cannot keep up (too many boards for the
//! period at this speed), the cycle still gets one step in [`COMMAND_SHARE`] + 1, so neither
//! starves: commands get three quarters of a full line, and the cycle stretches instead.

use std::collections::VecDeque;
use std::time::Duration;

use firmware_protocol::CommandId;
use tokio::time::Instant;

/// The next thing to do on the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Send the next queued request.
    Request,
    /// Poll this board (index) until it has sent this command's door event, or has nothing
    /// more queued.
    AfterCommand(usize, Option<CommandId>),
    /// Poll this board (index) for the cycle.
    Cycle(usize),
    /// Send the next firmware update message (a chunk exchange): only when no command work
    /// waits, taking turns with an overdue cycle (PROTOCOL.md §11.3).
    Update,
    /// Nothing to do until a request comes or this instant (the next board due).
    Wait(Instant),
}

/// The schedule of one bus.
#[derive(Debug)]
pub struct Schedule {
    poll_every: Duration,
    last_polled: Vec<Instant>,
    after_command: VecDeque<(usize, Option<CommandId>)>,
    /// Command steps since the cycle's last turn.
    served_since_cycle: u32,
    /// Whose turn it is when the cycle is overdue and an update waits: the update's.
    update_next: bool,
}

/// Command steps (requests and the polls after them) the cycle lets go first when it is late.
pub const COMMAND_SHARE: u32 = 3;

impl Schedule {
    /// `boards` boards, each to be polled at least every `poll_every`; all due at once.
    pub fn new(boards: usize, poll_every: Duration, now: Instant) -> Self {
        let mut schedule = Self {
            poll_every,
            last_polled: vec![now; boards],
            after_command: VecDeque::new(),
            served_since_cycle: 0,
            update_next: true,
        };
        schedule.all_due(now);
        schedule
    }

    /// Every board due now (the port was just opened).
    pub fn all_due(&mut self, now: Instant) {
        let long_ago = now.checked_sub(self.poll_every).unwrap_or(now);
        self.last_polled.fill(long_ago);
        self.after_command.clear();
    }

    /// Board `index` was just polled.
    pub fn polled(&mut self, index: usize, now: Instant) {
        if let Some(at) = self.last_polled.get_mut(index) {
            *at = now;
        }
    }

    /// A command to board `index` was answered: poll it next, until this command's door event
    /// (`None`: until it has nothing queued, as a request to drain it asks). Two commands to one
    /// board need one poll, until the later one's door event; a drain asked stays a drain.
    pub fn commanded(&mut self, index: usize, command: Option<CommandId>) {
        match self.after_command.iter_mut().find(|(i, _)| *i == index) {
            Some(entry) => entry.1 = entry.1.and(command),
            None => self.after_command.push_back((index, command)),
        }
    }

    /// The board the cycle polls next (the one polled longest ago) and when it is due.
    fn next_in_cycle(&self) -> Option<(usize, Instant)> {
        self.last_polled
            .iter()
            .enumerate()
            .min_by_key(|(_, at)| **at)
            .map(|(i, at)| (i, *at + self.poll_every))
    }

    /// What to do now, given whether a request is waiting (no update waiting).
    #[cfg(test)]
    pub fn next(&mut self, now: Instant, request_waiting: bool) -> Step {
        self.next_with(now, request_waiting, false)
    }

    /// What to do now, given whether a request and a firmware update message are waiting.
    /// An update exchange takes the line when no command work waits, and otherwise the turn the
    /// cycle gets (one step after [`COMMAND_SHARE`] command steps), the two alternating when both
    /// want it: so a download goes on however busy the line is, and an unlock waits for at most
    /// the one update exchange under way.
    pub fn next_with(&mut self, now: Instant, request_waiting: bool, update_waiting: bool) -> Step {
        let cycle = self.next_in_cycle();
        let overdue = cycle.filter(|(_, due)| *due <= now).map(|(i, _)| i);
        let command_work = request_waiting || !self.after_command.is_empty();
        let free_turn = self.served_since_cycle >= COMMAND_SHARE || !command_work;
        if free_turn && (overdue.is_some() || (update_waiting && command_work)) {
            if update_waiting && (self.update_next || overdue.is_none()) {
                self.update_next = false;
                self.served_since_cycle = 0;
                return Step::Update;
            }
            if let Some(index) = overdue {
                self.update_next = true;
                self.served_since_cycle = 0;
                return Step::Cycle(index);
            }
        }
        if let Some((index, command)) = self.after_command.pop_front() {
            self.served_since_cycle = self.served_since_cycle.saturating_add(1);
            return Step::AfterCommand(index, command);
        }
        if request_waiting {
            self.served_since_cycle = self.served_since_cycle.saturating_add(1);
            return Step::Request;
        }
        if update_waiting {
            return Step::Update;
        }
        match cycle {
            Some((_, due)) => Step::Wait(due),
            None => Step::Wait(now + self.poll_every),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64) -> Option<CommandId> {
        CommandId::new(n)
    }

    #[test]
    fn every_board_is_due_at_first_then_each_once_per_period() {
        let t0 = Instant::now();
        let mut s = Schedule::new(3, Duration::from_secs(1), t0);
        let mut polled = Vec::new();
        for _ in 0..3 {
            match s.next(t0, false) {
                Step::Cycle(i) => {
                    s.polled(i, t0);
                    polled.push(i);
                }
                other => panic!("{other:?}"),
            }
        }
        polled.sort_unstable();
        assert_eq!(polled, vec![0, 1, 2]);
        // All polled just now: nothing until a period has passed.
        assert_eq!(s.next(t0, false), Step::Wait(t0 + Duration::from_secs(1)));
    }

    #[test]
    fn a_command_is_followed_by_a_poll_of_its_board_before_other_requests() {
        let t0 = Instant::now();
        let mut s = Schedule::new(2, Duration::from_secs(1), t0);
        for i in 0..2 {
            s.polled(i, t0);
        }
        assert_eq!(s.next(t0, true), Step::Request);
        s.commanded(1, id(7));
        // Another request is waiting: the first command's door event is fetched first.
        assert_eq!(s.next(t0, true), Step::AfterCommand(1, id(7)));
        s.polled(1, t0);
        assert_eq!(s.next(t0, true), Step::Request);
        assert!(matches!(s.next(t0, false), Step::Wait(_)));
        // Two commands to one board before its poll: one poll, until the later one's event; a
        // drain asked meanwhile stays a drain.
        s.commanded(0, id(8));
        s.commanded(0, id(9));
        assert_eq!(s.next(t0, false), Step::AfterCommand(0, id(9)));
        s.commanded(0, None);
        s.commanded(0, id(10));
        assert_eq!(s.next(t0, false), Step::AfterCommand(0, None));
    }

    #[test]
    fn updates_wait_for_commands_and_take_turns_with_a_late_cycle() {
        let t0 = Instant::now();
        let mut s = Schedule::new(2, Duration::from_millis(100), t0);
        // The cycle is late (every board due) and an update waits: they take turns.
        let mut steps = Vec::new();
        for _ in 0..4 {
            let step = s.next_with(t0, false, true);
            if let Step::Cycle(i) = step {
                s.polled(i, t0);
            }
            steps.push(step);
        }
        assert_eq!(
            steps,
            vec![Step::Update, Step::Cycle(0), Step::Update, Step::Cycle(1)]
        );
        // A command waiting goes first, and the poll after it; then the update.
        assert_eq!(s.next_with(t0, true, true), Step::Request);
        s.commanded(0, id(5));
        assert_eq!(s.next_with(t0, false, true), Step::AfterCommand(0, id(5)));
        s.polled(0, t0);
        assert_eq!(s.next_with(t0, false, true), Step::Update);
        // Nothing late, nothing else: the update; without it, a wait.
        assert_eq!(s.next_with(t0, false, true), Step::Update);
        assert!(matches!(s.next_with(t0, false, false), Step::Wait(_)));
        // Commands back to back: the update still gets one step in four.
        let steps: Vec<Step> = (0..8).map(|_| s.next_with(t0, true, true)).collect();
        let updates = steps.iter().filter(|s| **s == Step::Update).count();
        assert_eq!(updates, 2, "{steps:?}");
        assert!(
            steps.windows(4).all(|w| w.contains(&Step::Update)),
            "never four commands without the update: {steps:?}"
        );
    }

    #[test]
    fn when_the_line_is_full_commands_and_the_cycle_take_turns() {
        let t0 = Instant::now();
        // Everything is overdue and a request is always waiting.
        let mut s = Schedule::new(4, Duration::from_millis(100), t0);
        let mut steps = Vec::new();
        for _ in 0..8 {
            let step = s.next(t0, true);
            if let Step::Cycle(i) = step {
                s.polled(i, t0);
            }
            steps.push(step);
        }
        let requests = steps.iter().filter(|s| **s == Step::Request).count();
        let cycles = steps.iter().filter(|s| matches!(s, Step::Cycle(_))).count();
        assert_eq!((requests, cycles), (6, 2), "{steps:?}");
        // And a board polled after a command is not polled again by the cycle within a period.
        let later = t0 + Duration::from_millis(150);
        for i in 0..4 {
            s.polled(i, later);
        }
        s.commanded(2, None);
        assert_eq!(s.next(later, false), Step::AfterCommand(2, None));
        s.polled(2, later);
        assert_eq!(
            s.next(later, false),
            Step::Wait(later + Duration::from_millis(100))
        );
    }
}
