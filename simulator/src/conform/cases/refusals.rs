//! The commands a board must refuse, or answer from memory: a used counter, another session, a
//! wrong tag, a replay, an expiry, a missing door, counters out of order, a resend.

use firmware_protocol::{CommandResult, DeviceKey, Downlink, Poll, RefuseReason, Unlock, Uplink};

use super::{Run, defaults, expect_result, refused};
use crate::conform::probe::Probe;

impl<P: Probe> Run<P> {
    pub(super) async fn stale_counter(&mut self) -> Result<(), String> {
        let Some((_, _, counter)) = self.unlock.clone() else {
            return Err("the unlock case did not get its command executed".into());
        };
        let id = self.id();
        let bytes = self.p.seal(
            counter,
            Downlink::Unlock(Unlock {
                command_id: id,
                door: self.door,
                expires_at_ms: None,
            }),
        );
        let ack = self.ack(&bytes, "an unlock with a used counter").await?;
        expect_result(&ack, id, refused(RefuseReason::StaleCounter))?;
        match self.remembered(id).await?.len() {
            0 => Ok(()),
            _ => Err(format!(
                "command {id}, refused stale_counter, is among the recent outcomes"
            )),
        }
    }

    pub(super) async fn wrong_session(&mut self) -> Result<(), String> {
        let other = (self.p.session() ^ 0x5a5a_0000).max(1);
        let id = self.id();
        self.p.set_counter(self.p.counter() + 1);
        let unlock = Downlink::Unlock(Unlock {
            command_id: id,
            door: self.door,
            expires_at_ms: None,
        });
        let bytes = self
            .p
            .seal_with(&self.key(), other, self.p.counter(), unlock);
        let ack = self.ack(&bytes, "an unlock naming another session").await?;
        expect_result(&ack, id, refused(RefuseReason::WrongSession))?;
        self.p.set_counter(self.p.counter() + 1);
        let bytes = self
            .p
            .seal_with(&self.key(), other, self.p.counter(), Downlink::Ping);
        let answer = self.p.ask(&bytes, "a ping naming another session").await?;
        match self.uplink(answer)? {
            Uplink::Hello(h) if h.session == self.p.session() => Ok(()),
            Uplink::Hello(h) => Err(format!(
                "a hello for session {}, the current is {}",
                h.session,
                self.p.session()
            )),
            other => Err(format!(
                "answered {}, expected a hello for the current session",
                other.message_type().name()
            )),
        }
    }

    pub(super) fn key(&self) -> DeviceKey {
        self.p.key()
    }

    pub(super) async fn bad_tag(&mut self) -> Result<(), String> {
        let wrong = DeviceKey::from_bytes([0x5a; 32]);
        let id = self.id();
        self.p.set_counter(self.p.counter() + 1);
        let unlock = Downlink::Unlock(Unlock {
            command_id: id,
            door: self.door,
            expires_at_ms: None,
        });
        let bytes = self
            .p
            .seal_with(&wrong, self.p.session(), self.p.counter(), unlock);
        let ack = self.ack(&bytes, "an unlock with a wrong tag").await?;
        expect_result(&ack, id, refused(RefuseReason::BadTag))?;
        self.p.set_counter(self.p.counter() + 1);
        let bytes = self.p.seal_with(
            &wrong,
            self.p.session(),
            self.p.counter(),
            Downlink::Poll(Poll {
                ack_counter: self.acked,
            }),
        );
        self.p.silent(&bytes, "a poll with a wrong tag").await
    }

    pub(super) async fn replay(&mut self) -> Result<(), String> {
        let Some(ping) = self.ping.clone() else {
            return Err("no ping was answered earlier".into());
        };
        self.p
            .silent(&ping, "an earlier ping's bytes again")
            .await?;
        self.p.set_counter(self.p.counter() + 100);
        self.ping().await?;
        let below = if self.version >= 2 {
            self.p.counter() - 64
        } else {
            self.p.counter() - 1
        };
        let id = self.id();
        let bytes = self.p.seal(
            below,
            Downlink::Unlock(Unlock {
                command_id: id,
                door: self.door,
                expires_at_ms: None,
            }),
        );
        let ack = self.ack(&bytes, "an unlock below the window").await?;
        expect_result(&ack, id, refused(RefuseReason::StaleCounter))?;
        // The unlock case's command replayed, its counter now far below the window: still
        // remembered, so answered from memory and never executed again.
        let Some((old, old_id, _)) = self.unlock.clone() else {
            return Ok(());
        };
        self.p
            .note("the unlock case's bytes replayed, its counter now 100 below the highest");
        let ack = self.ack(&old, "an old unlock replayed").await?;
        expect_result(&ack, old_id, CommandResult::Executed)?;
        match self.remembered(old_id).await?.len() {
            1 => Ok(()),
            n => Err(format!(
                "command {old_id} is {n} times among the recent outcomes"
            )),
        }
    }

    pub(super) async fn expired(&mut self) -> Result<(), String> {
        let id = self.id();
        let unlock = Downlink::Unlock(Unlock {
            command_id: id,
            door: self.door,
            expires_at_ms: Some(1),
        });
        self.command(unlock, refused(RefuseReason::Expired), "an expired unlock")
            .await?;
        match self.remembered(id).await?.as_slice() {
            [CommandResult::Refused(RefuseReason::Expired)] => Ok(()),
            other => Err(format!(
                "command {id} (expired) remembered as {other:?}, expected once"
            )),
        }
    }

    pub(super) async fn no_such_door(&mut self) -> Result<(), String> {
        if self.doors >= firmware_protocol::MAX_DOORS {
            return Ok(());
        }
        let id = self.id();
        let unlock = Downlink::Unlock(Unlock {
            command_id: id,
            door: self.doors + 1,
            expires_at_ms: None,
        });
        self.command(
            unlock,
            refused(RefuseReason::NoSuchDoor),
            "an unlock of a missing door",
        )
        .await
    }

    pub(super) async fn out_of_order(&mut self) -> Result<(), String> {
        let (first, second) = (self.id(), self.id());
        let later = self.p.seal(self.p.counter() + 2, defaults(first));
        let earlier = self.p.seal(self.p.counter() + 1, defaults(second));
        self.p.set_counter(self.p.counter() + 2);
        let ack = self.ack(&later, "a configure with counter n + 2").await?;
        expect_result(&ack, first, CommandResult::Executed)?;
        let want = if self.version >= 2 {
            CommandResult::Executed
        } else {
            refused(RefuseReason::StaleCounter)
        };
        let ack = self
            .ack(&earlier, "a configure with counter n + 1, after n + 2")
            .await?;
        expect_result(&ack, second, want)?;
        for id in [first, second] {
            let times = self.remembered(id).await?.len();
            let expected = usize::from(id == first || self.version >= 2);
            if times != expected {
                return Err(format!(
                    "command {id} is {times} times among the recent outcomes, expected {expected}"
                ));
            }
        }
        Ok(())
    }

    pub(super) async fn lost_answer(&mut self) -> Result<(), String> {
        let id = self.id();
        let bytes = self.p.next(defaults(id));
        self.p.note("a configure whose answer the gateway loses");
        self.ack(&bytes, "a configure").await?;
        self.p.note("the same bytes again");
        let ack = self.ack(&bytes, "the configure's bytes again").await?;
        expect_result(&ack, id, CommandResult::Executed)?;
        match self.remembered(id).await?.len() {
            1 => Ok(()),
            n => Err(format!(
                "command {id} is {n} times among the recent outcomes"
            )),
        }
    }
}
