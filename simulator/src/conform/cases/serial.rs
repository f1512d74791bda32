//! The serial line's own cases: the queue of door events and its polls (PROTOCOL.md 5.3), noise
//! and resynchronisation (5.2), and a power cycle (7.4).

use std::time::Duration;

use firmware_protocol::{
    CommandResult, DoorCause, DoorMotion, Downlink, Envelope, Poll, Unlock, Uplink,
};

use super::{COUNTER_BASE, Case, EVENT_WAIT, Reboot, Run, expect_result};
use crate::conform::probe::Probe;
use crate::conform::{Report, SerialProbe, Target};

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
        "an old request is ignored, a new command below the window refused, an old one answered from memory (7.2)",
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
        "a command whose answer was lost or late, sent again: the stored result, once (5.3)",
    ),
    (
        "noise",
        "frames after noise, after a bad CRC, after a gap, and for others (5.2)",
    ),
];

/// Runs every case against a board on a serial line.
pub(in crate::conform) async fn run(p: SerialProbe, target: Target) -> Report {
    Run::new(p, target)
        .all(
            &CASES,
            Run::<SerialProbe>::case,
            Run::<SerialProbe>::rebooted,
        )
        .await
}

impl Run<SerialProbe> {
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

    async fn hello(&mut self) -> Result<(), String> {
        self.p.set_session(0);
        self.p.set_counter(COUNTER_BASE);
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
        self.p.set_session(hello.session);
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

    pub(super) async fn unlock_queue(&mut self) -> Result<(), String> {
        self.drain().await?;
        let id = self.id();
        let unlock = Downlink::Unlock(Unlock {
            command_id: id,
            door: self.door,
            expires_at_ms: None,
        });
        let bytes = self.p.next(unlock);
        let ack = self.ack(&bytes, "an unlock").await?;
        expect_result(&ack, id, CommandResult::Executed)?;
        self.unlock = Some((bytes, id, self.p.counter()));
        let prior = self.acked;
        // Poll until the door's event (or a jam's alarm) is queued.
        let deadline = tokio::time::Instant::now() + EVENT_WAIT;
        let (first, poll_bytes) = loop {
            if tokio::time::Instant::now() > deadline {
                return Err(format!(
                    "no door event or alarm within {} s of the unlock: run with door {} closed",
                    EVENT_WAIT.as_secs(),
                    self.door
                ));
            }
            let bytes = self.p.next(Downlink::Poll(Poll {
                ack_counter: self.acked,
            }));
            let answer = self.poll_answer(&bytes).await?;
            if !matches!(answer.message, Uplink::Heartbeat(_)) {
                break (answer, bytes);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        if let Uplink::DoorEvent(e) = &first.message
            && e.door == self.door
            && e.state == DoorMotion::Opened
            && e.cause != DoorCause::Commanded(id)
        {
            return Err(format!(
                "door {} opened after unlock {id} but the event names {:?}",
                e.door, e.cause
            ));
        }
        // Rule 3: the same poll again (its answer lost): the same uplink, the same counter.
        self.p
            .note("the same poll again: the same uplink with the same counter");
        let again = self.p.ask(&poll_bytes, "a repeated poll").await?;
        if again.header.counter != first.header.counter || again.message != first.message {
            return Err(format!(
                "a repeated poll answered {} #{}, expected the same {} #{}",
                again.message.message_type().name(),
                again.header.counter,
                first.message.message_type().name(),
                first.header.counter
            ));
        }
        // Another answer went out since: the same uplink with the next counter.
        self.ping().await?;
        self.p
            .note("a poll not acknowledging it, after a pong: the same uplink, the next counter");
        self.acked = prior;
        let moved = self.poll().await?;
        if moved.message != first.message {
            return Err(format!(
                "after a pong the uplink in flight was not sent again ({} instead)",
                moved.message.message_type().name()
            ));
        }
        // Acknowledged: never sent again.
        let after = self.poll().await?;
        if after.message == first.message {
            return Err("an acknowledged uplink was sent again".into());
        }
        self.drain().await.map(|_| ())
    }

    pub(super) async fn exact_repeat(&mut self) -> Result<(), String> {
        let Some((bytes, id, _)) = self.unlock.clone() else {
            return Err("the unlock case did not get its command executed".into());
        };
        let ack = self.ack(&bytes, "the unlock's bytes again").await?;
        expect_result(&ack, id, CommandResult::Executed)?;
        let queued = self.drain().await?;
        if queued
            .iter()
            .any(|u| matches!(u, Uplink::DoorEvent(e) if e.cause == DoorCause::Commanded(id)))
        {
            return Err(format!(
                "a second door event for command {id}: pulsed twice"
            ));
        }
        match self.remembered(id).await?.len() {
            1 => Ok(()),
            n => Err(format!(
                "command {id} is {n} times among the recent outcomes"
            )),
        }
    }

    pub(super) async fn noise(&mut self) -> Result<(), String> {
        self.p
            .note("junk, a false start with an impossible length, then a poll, in one write");
        let mut bytes = vec![0x00, 0xA5, 0x5A, 0xFF, 0xFF, 0x13, 0xA5];
        bytes.extend(self.p.next(Downlink::Poll(Poll {
            ack_counter: self.acked,
        })));
        self.poll_answer(&bytes).await?;
        self.p.note("a poll with a corrupted CRC: ignored");
        let mut bad = self.p.next(Downlink::Poll(Poll {
            ack_counter: self.acked,
        }));
        let last = bad.len() - 1;
        bad[last] ^= 0x01;
        self.p.silent(&bad, "a frame with a bad CRC").await?;
        self.poll().await?;
        self.p.note("half a frame, a gap, then a poll");
        let half = self.p.next(Downlink::Poll(Poll {
            ack_counter: self.acked,
        }));
        self.p.silent(&half[..10], "half a frame").await?;
        self.p.quiet(Duration::from_millis(60)).await;
        self.poll().await?;
        self.p.note("a poll for another address: ignored");
        let other = if self.p.address() == 1 {
            2
        } else {
            self.p.address() - 1
        };
        let mut frame = self.p.next(Downlink::Poll(Poll {
            ack_counter: self.acked,
        }));
        frame[4] = other;
        let crc = firmware_protocol::frame::crc16(&frame[2..frame.len() - 2]).to_le_bytes();
        let at = frame.len() - 2;
        frame[at..].copy_from_slice(&crc);
        self.p.silent(&frame, "a frame for another address").await?;
        self.drain().await.map(|_| ())
    }

    /// The board is power-cycled: a new session (its hello numbered 1), a command of the old
    /// session refused, and nothing of the old commands remembered.
    pub(super) async fn rebooted(&mut self, reboot: &mut Reboot) -> Result<(), String> {
        let old = self.p.session();
        self.p.note("the board is power-cycled");
        reboot().await?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let answer = loop {
            let bytes = self.p.next(Downlink::Poll(Poll {
                ack_counter: self.acked,
            }));
            if let Some(answer) = self.p.send(&bytes).await? {
                break answer;
            }
            if tokio::time::Instant::now() > deadline {
                return Err("no answer within 5 s of the power cycle".into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let Uplink::Hello(hello) = &answer.message else {
            return Err(format!(
                "the first answer after a reboot was {}, expected a hello",
                answer.message.message_type().name()
            ));
        };
        if hello.session == old
            || hello.session != answer.header.session
            || answer.header.counter != 1
        {
            return Err(format!(
                "after a reboot: hello for session {} (envelope {}, counter {}); expected a new session, counter 1",
                hello.session, answer.header.session, answer.header.counter
            ));
        }
        let before = std::mem::take(&mut self.ids);
        self.p.set_session(hello.session);
        self.p.set_counter(COUNTER_BASE);
        self.up = 1;
        self.acked = 0;
        self.forgot(old, &before).await
    }
}
