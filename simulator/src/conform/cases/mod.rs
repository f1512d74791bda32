//! The cases a device must pass, in the order they run, on either transport: what both share
//! here and in `refusals`, what is a serial line's own in `serial`, an MQTT locker's in `mqtt`.
//! Each case builds on what the earlier ones learnt (the session, the door count).

use std::time::Duration;

use firmware_protocol::{
    Ack, CommandId, CommandResult, Configure, Downlink, Envelope, QueryState, RefuseReason,
    StateReport, Unlock, Uplink,
};

use super::probe::Probe;
use super::{CaseResult, Reboot, Report, Target, Verdict};

pub(super) mod mqtt;
mod refusals;
pub(super) mod serial;

/// The tool's first downlink counter in a session: far above any a gateway used in a session the
/// device may still be in, so its window takes them as new.
const COUNTER_BASE: u32 = 1 << 30;

/// How long the tool waits for the door event or alarm an unlock causes (the default open window
/// of 10 s, and some).
const EVENT_WAIT: Duration = Duration::from_secs(12);

/// What the run knows of the device.
struct Run<P> {
    p: P,
    door: u16,
    reboot: Option<Reboot>,
    version: u8,
    doors: u16,
    /// The highest uplink counter of the session.
    up: u32,
    /// Serial: the counter of the last queued uplink received (the next poll's `ack_counter`).
    acked: u32,
    next_id: u64,
    /// The unlock case's command: its bytes, id and counter.
    unlock: Option<(Vec<u8>, CommandId, u32)>,
    /// A ping's bytes, for the replay case.
    ping: Option<Vec<u8>>,
    /// Command ids sent in the session.
    ids: Vec<CommandId>,
}

/// A case: its name and what it checks.
type Case = (&'static str, &'static str);

impl<P: Probe> Run<P> {
    fn new(p: P, target: Target) -> Self {
        Run {
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
        }
    }

    /// Runs `cases` in order through `case` (after the first, only once a session is known),
    /// then the reboot case through `reboot`.
    async fn all(
        mut self,
        cases: &[Case],
        case: impl AsyncFn(&mut Self, &str) -> Result<(), String>,
        rebooted: impl AsyncFn(&mut Self, &mut Reboot) -> Result<(), String>,
    ) -> Report {
        let mut report = Report::default();
        for (name, checks) in cases {
            let verdict = if self.version == 0 && *name != cases[0].0 {
                Verdict::NotRun(format!(
                    "the {} case failed: no session to test in",
                    cases[0].0
                ))
            } else {
                match case(&mut self, name).await {
                    Ok(()) => Verdict::Passed,
                    Err(why) => Verdict::Failed(why),
                }
            };
            self.finish(&mut report, name, checks, verdict);
        }
        let checks = "after a power cycle: a new session, the old one's commands unknown (7.4)";
        let verdict = match self.reboot.take() {
            None => Verdict::NotRun("no way to power-cycle the device was given".into()),
            Some(_) if self.version == 0 => Verdict::NotRun("no session was ever known".into()),
            Some(mut reboot) => match rebooted(&mut self, &mut reboot).await {
                Ok(()) => Verdict::Passed,
                Err(why) => Verdict::Failed(why),
            },
        };
        self.finish(&mut report, "reboot", checks, verdict);
        report.slowest_answer = self.p.slowest();
        report
    }

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

    fn id(&mut self) -> CommandId {
        self.next_id += 1;
        let id = CommandId::new(self.next_id).expect("ids stay far below 2^53");
        self.ids.push(id);
        id
    }

    /// Checks an answer's session and that its counter is new; returns it.
    fn uplink(&mut self, answer: Envelope<Uplink>) -> Result<Uplink, String> {
        if answer.header.session != self.p.session() {
            return Err(format!(
                "an answer in session {}, the board's is {}",
                answer.header.session,
                self.p.session()
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

    /// After a power cycle, in the new session: a command naming the session `old` is refused
    /// `wrong_session`, and none of the commands `before` it is remembered (PROTOCOL.md 7.4).
    async fn forgot(&mut self, old: u32, before: &[CommandId]) -> Result<(), String> {
        let id = self.id();
        self.p.set_counter(self.p.counter() + 1);
        let unlock = Downlink::Unlock(Unlock {
            command_id: id,
            door: self.door,
            expires_at_ms: None,
        });
        let bytes = self
            .p
            .seal_with(&self.p.key(), old, self.p.counter(), unlock);
        let ack = self
            .ack(&bytes, "an unlock naming the session before the reboot")
            .await?;
        expect_result(&ack, id, refused(RefuseReason::WrongSession))?;
        let report = self.report().await?;
        if let Some(kept) = report
            .recent
            .iter()
            .find(|a| before.contains(&a.command_id))
        {
            return Err(format!(
                "command {} of the session before the reboot is still remembered",
                kept.command_id
            ));
        }
        Ok(())
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
