//! The serial line's own cases: the queue of door events and its polls (PROTOCOL.md 5.3), noise
//! and resynchronisation (5.2), and a power cycle (7.4).

use std::time::Duration;

use firmware_protocol::{
    CommandResult, DoorCause, DoorMotion, Downlink, Poll, RefuseReason, Unlock, Uplink,
};

use super::{COUNTER_BASE, EVENT_WAIT, Reboot, Run, expect_result, refused};

impl Run {
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
        self.unlock = Some((bytes, id, self.p.counter));
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
        let old = self.p.session;
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
        self.p.session = hello.session;
        self.p.counter = COUNTER_BASE;
        self.up = 1;
        self.acked = 0;
        let id = self.id();
        self.p.counter += 1;
        let unlock = Downlink::Unlock(Unlock {
            command_id: id,
            door: self.door,
            expires_at_ms: None,
        });
        let bytes = self.p.seal_with(&self.p.key(), old, self.p.counter, unlock);
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
}
