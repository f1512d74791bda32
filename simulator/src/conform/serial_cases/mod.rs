//! The cases a lock board on a serial line must pass, in the order they run. Each builds on what
//! the earlier ones learnt (the session, the door count, the unlock's bytes).

use std::time::Duration;

use firmware_protocol::{
    Ack, CommandId, CommandResult, Configure, Downlink, Envelope, Poll, QueryState, RefuseReason,
    StateReport, Uplink,
};

use super::{CaseResult, Reboot, Report, SerialProbe, Target, Verdict};

mod line;
mod refusals;

/// The tool's first downlink counter in a session: far above any a gateway used in a session the
/// board may still be in, so its window takes them as new.
const COUNTER_BASE: u32 = 1 << 30;

/// How long the tool polls for the door event or alarm an unlock causes (the default open window
/// of 10 s, and some).
const EVENT_WAIT: Duration = Duration::from_secs(12);

/// What the run knows of the board.
struct Run {
    p: SerialProbe,
    door: u16,
    reboot: Option<Reboot>,
    version: u8,
    doors: u16,
    /// The highest uplink counter of the session.
    up: u32,
    /// The counter of the last queued uplink received (the next poll's `ack_counter`).
    acked: u32,
    next_id: u64,
    /// The unlock of the queue case: its bytes, id and counter.
    unlock: Option<(Vec<u8>, CommandId, u32)>,
    /// A ping's bytes, for the replay case.
    ping: Option<Vec<u8>>,
    /// Command ids sent in the session.
    ids: Vec<CommandId>,
}

type Case = (&'static str, &'static str);

const CASES: [Case; 15] = [
    (
        "hello",
        "a poll naming session 0 is answered with a hello (7.1)",
    ),
    (
        "heartbeat",
        "polls drain the queue and end with a heartbeat of every door (5.3)",
    ),
    ("ping", "a ping is answered with a pong"),
    (
        "query_state",
        "a query_state is answered with a state_report echoing its id",
    ),
    (
        "unlock_queue",
        "an unlock is executed; its door event is queued and polled (5.3 rules 1-3)",
    ),
    (
        "exact_repeat",
        "a resent unlock is answered from memory, never executed twice (7.2)",
    ),
    (
        "stale_counter",
        "a new command with a used counter is refused stale_counter (7.2)",
    ),
    (
        "wrong_session",
        "another session: a command refused, a request answered hello (7.1)",
    ),
    (
        "bad_tag",
        "a command with a wrong tag is refused bad_tag; a request is ignored (7.6)",
    ),
    (
        "replay",
        "an old request is ignored; a command below the window is refused (7.2)",
    ),
    (
        "expired",
        "a command past its expiry is refused expired and remembered (7.6)",
    ),
    (
        "no_such_door",
        "an unlock of a door the board lacks is refused no_such_door",
    ),
    (
        "out_of_order",
        "two commands whose counters arrive out of order (8)",
    ),
    (
        "lost_answer",
        "a command whose answer was lost, sent again: the stored result (5.3)",
    ),
    (
        "noise",
        "frames after noise, after a bad CRC, after a gap, and for others (5.2)",
    ),
];

/// Runs every case, then the reboot.
pub(super) async fn run(p: SerialProbe, target: Target) -> Report {
    let mut run = Run {
        p,
        door: target.door,
        reboot: target.reboot,
        version: 0,
        doors: 0,
        up: 0,
        acked: 0,
        next_id: 1 + u64::from(rand::random::<u32>()) * 1024,
        unlock: None,
        ping: None,
        ids: Vec::new(),
    };
    let mut report = Report::default();
    for (name, checks) in CASES {
        let verdict = if run.version == 0 && name != "hello" {
            Verdict::NotRun("the hello case failed: no session to test in".into())
        } else {
            match run.case(name).await {
                Ok(()) => Verdict::Passed,
                Err(why) => Verdict::Failed(why),
            }
        };
        run.finish(&mut report, name, checks, verdict);
    }
    let checks = "after a power cycle: a new session, the old one's commands unknown (7.4)";
    let verdict = match run.reboot.take() {
        None => Verdict::NotRun("no way to power-cycle the board was given".into()),
        Some(_) if run.version == 0 => Verdict::NotRun("the hello case failed".into()),
        Some(mut reboot) => match run.rebooted(&mut reboot).await {
            Ok(()) => Verdict::Passed,
            Err(why) => Verdict::Failed(why),
        },
    };
    run.finish(&mut report, "reboot", checks, verdict);
    report.slowest_answer = run.p.slowest;
    report
}

fn expect_result(ack: &Ack, id: CommandId, want: CommandResult) -> Result<(), String> {
    if ack.command_id != id {
        return Err(format!(
            "an ack for command {}, expected {id}",
            ack.command_id
        ));
    }
    if ack.result != want {
        return Err(format!(
            "command {id} answered {:?}, expected {want:?}",
            ack.result
        ));
    }
    Ok(())
}

fn refused(reason: RefuseReason) -> CommandResult {
    CommandResult::Refused(reason)
}

fn defaults(id: CommandId) -> Downlink {
    Downlink::Configure(Configure {
        command_id: id,
        heartbeat_secs: 60,
        open_window_ms: 10_000,
        pulse_ms: 300,
        ajar_alarm_secs: 120,
        expires_at_ms: None,
    })
}

impl Run {
    fn finish(
        &mut self,
        report: &mut Report,
        name: &'static str,
        checks: &'static str,
        verdict: Verdict,
    ) {
        report.cases.push(CaseResult {
            name,
            checks,
            verdict,
            exchanged: self.p.take_log(),
        });
    }

    async fn case(&mut self, name: &str) -> Result<(), String> {
        match name {
            "hello" => self.hello().await,
            "heartbeat" => self.drain().await.map(|_| ()),
            "ping" => self.ping().await,
            "query_state" => self.report().await.map(|_| ()),
            "unlock_queue" => self.unlock_queue().await,
            "exact_repeat" => self.exact_repeat().await,
            "stale_counter" => self.stale_counter().await,
            "wrong_session" => self.wrong_session().await,
            "bad_tag" => self.bad_tag().await,
            "replay" => self.replay().await,
            "expired" => self.expired().await,
            "no_such_door" => self.no_such_door().await,
            "out_of_order" => self.out_of_order().await,
            "lost_answer" => self.lost_answer().await,
            _ => self.noise().await,
        }
    }

    fn id(&mut self) -> CommandId {
        self.next_id += 1;
        let id = CommandId::new(self.next_id).expect("ids stay far below 2^53");
        self.ids.push(id);
        id
    }

    /// Checks an answer's session and that its counter is new; returns it.
    fn uplink(&mut self, answer: Envelope<Uplink>) -> Result<Uplink, String> {
        if answer.header.session != self.p.session {
            return Err(format!(
                "an answer in session {}, the board's is {}",
                answer.header.session, self.p.session
            ));
        }
        if answer.header.counter <= self.up {
            return Err(format!(
                "an answer with counter {}, not above the last ({})",
                answer.header.counter, self.up
            ));
        }
        self.up = answer.header.counter;
        Ok(answer.message)
    }

    async fn ack(&mut self, bytes: &[u8], what: &str) -> Result<Ack, String> {
        let answer = self.p.ask(bytes, what).await?;
        match self.uplink(answer)? {
            Uplink::Ack(ack) => Ok(ack),
            other => Err(format!(
                "{what} answered {}, expected an ack",
                other.message_type().name()
            )),
        }
    }

    async fn command(
        &mut self,
        message: Downlink,
        want: CommandResult,
        what: &str,
    ) -> Result<(), String> {
        let id = match &message {
            Downlink::Unlock(u) => u.command_id,
            Downlink::Configure(c) => c.command_id,
            _ => unreachable!("only commands"),
        };
        let bytes = self.p.next(message);
        let ack = self.ack(&bytes, what).await?;
        expect_result(&ack, id, want)
    }

    async fn hello(&mut self) -> Result<(), String> {
        self.p.session = 0;
        self.p.counter = COUNTER_BASE;
        let bytes = self.p.next(Downlink::Poll(Poll { ack_counter: 0 }));
        let answer = self.p.ask(&bytes, "a poll naming session 0").await?;
        let Uplink::Hello(hello) = &answer.message else {
            return Err(format!(
                "answered {}, expected a hello",
                answer.message.message_type().name()
            ));
        };
        if hello.session != answer.header.session || hello.session == 0 {
            return Err(format!(
                "hello.session {} and the envelope's {} must be equal and not 0",
                hello.session, answer.header.session
            ));
        }
        if self.door > hello.door_count {
            return Err(format!(
                "the tool was told door {}, the board has {}",
                self.door, hello.door_count
            ));
        }
        self.p.session = hello.session;
        self.version = hello.protocol_version;
        self.doors = hello.door_count;
        self.up = answer.header.counter;
        self.acked = 0;
        Ok(())
    }

    /// A poll: a heartbeat, or a queued door event or alarm (then acknowledged by the next poll).
    async fn poll(&mut self) -> Result<Envelope<Uplink>, String> {
        let bytes = self.p.next(Downlink::Poll(Poll {
            ack_counter: self.acked,
        }));
        self.poll_answer(&bytes).await
    }

    async fn poll_answer(&mut self, bytes: &[u8]) -> Result<Envelope<Uplink>, String> {
        let answer = self.p.ask(bytes, "a poll").await?;
        let counter = answer.header.counter;
        let header = answer.header;
        match self.uplink(answer)? {
            Uplink::Heartbeat(beat) if beat.doors.len() != usize::from(self.doors) => Err(format!(
                "a heartbeat of {} doors from a board of {}",
                beat.doors.len(),
                self.doors
            )),
            message @ (Uplink::DoorEvent(_) | Uplink::Alarm(_)) => {
                self.acked = counter;
                Ok(Envelope { header, message })
            }
            message @ Uplink::Heartbeat(_) => Ok(Envelope { header, message }),
            other => Err(format!("a poll answered {}", other.message_type().name())),
        }
    }

    /// Polls until a heartbeat; returns the queued uplinks on the way.
    async fn drain(&mut self) -> Result<Vec<Uplink>, String> {
        let mut queued = Vec::new();
        for _ in 0..40 {
            let answer = self.poll().await?;
            if matches!(answer.message, Uplink::Heartbeat(_)) {
                return Ok(queued);
            }
            queued.push(answer.message);
        }
        Err("40 polls and no heartbeat: the queue never empties".into())
    }

    async fn ping(&mut self) -> Result<(), String> {
        let bytes = self.p.next(Downlink::Ping);
        let answer = self.p.ask(&bytes, "a ping").await?;
        self.ping = Some(bytes);
        match self.uplink(answer)? {
            Uplink::Pong => Ok(()),
            other => Err(format!("a ping answered {}", other.message_type().name())),
        }
    }

    async fn report(&mut self) -> Result<StateReport, String> {
        let query_id = rand::random::<u32>();
        let bytes = self.p.next(Downlink::QueryState(QueryState { query_id }));
        let answer = self.p.ask(&bytes, "a query_state").await?;
        match self.uplink(answer)? {
            Uplink::StateReport(r) if r.query_id != query_id => Err(format!(
                "a state_report for query {}, asked {query_id}",
                r.query_id
            )),
            Uplink::StateReport(r) if r.doors.len() != usize::from(self.doors) => {
                Err(format!("a state_report of {} doors", r.doors.len()))
            }
            Uplink::StateReport(r) => Ok(r),
            other => Err(format!(
                "a query_state answered {}",
                other.message_type().name()
            )),
        }
    }

    /// How often `id` is among the recent outcomes.
    async fn remembered(&mut self, id: CommandId) -> Result<Vec<CommandResult>, String> {
        let report = self.report().await?;
        Ok(report
            .recent
            .iter()
            .filter(|a| a.command_id == id)
            .map(|a| a.result)
            .collect())
    }
}
