//! An MQTT locker's own cases: its session (a hello at connect with a heartbeat right after, or
//! announced again when asked), an unlock's door event sent at once, a malformed command, payloads
//! that are not envelopes, and a power cycle (PROTOCOL.md 6, 7.6).

use std::time::Duration;

use firmware_protocol::{
    CommandResult, DoorCause, DoorMotion, Downlink, Envelope, MessageType, Presence, RefuseReason,
    Unlock, Uplink,
};

use super::{COUNTER_BASE, Case, EVENT_WAIT, Reboot, Run, expect_result, refused};
use crate::conform::probe::Probe;
use crate::conform::{MqttProbe, Report, Target};

const CASES: [Case; 15] = [
    (
        "hello",
        "its session: a hello at connect with a heartbeat right after (7.6), or announced again for a ping naming session 0 (7.1)",
    ),
    ("ping", "a ping is answered with a pong"),
    (
        "query_state",
        "a query_state is answered with a state_report echoing its id",
    ),
    (
        "unlock",
        "an unlock is executed; its door event follows the ack at once (7.4)",
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
        "an unlock of a door the locker lacks is refused no_such_door",
    ),
    (
        "out_of_order",
        "two commands whose counters arrive out of order (8)",
    ),
    (
        "lost_answer",
        "a command whose answer was lost or late, sent again: the stored result, once",
    ),
    (
        "malformed",
        "a command with a field out of range: refused malformed or unanswered, never executed (7.6)",
    ),
    (
        "garbage",
        "payloads that are not envelopes are ignored, and the locker goes on answering (4.4)",
    ),
];

/// How long the tool waits for the heartbeat that follows a hello at connect.
const HEARTBEAT_AFTER_HELLO: Duration = Duration::from_secs(2);

/// Runs every case against a locker on an MQTT broker.
pub(in crate::conform) async fn run(p: MqttProbe, target: Target) -> Report {
    Run::new(p, target)
        .all(&CASES, Run::<MqttProbe>::case, Run::<MqttProbe>::rebooted)
        .await
}

impl Run<MqttProbe> {
    async fn case(&mut self, name: &str) -> Result<(), String> {
        match name {
            "hello" => self.hello().await,
            "ping" => self.ping().await,
            "query_state" => self.report().await.map(|_| ()),
            "unlock" => self.unlock().await,
            "exact_repeat" => self.exact_repeat().await,
            "stale_counter" => self.stale_counter().await,
            "wrong_session" => self.wrong_session().await,
            "bad_tag" => self.bad_tag().await,
            "replay" => self.replay().await,
            "expired" => self.expired().await,
            "no_such_door" => self.no_such_door().await,
            "out_of_order" => self.out_of_order().await,
            "lost_answer" => self.lost_answer().await,
            "malformed" => self.malformed().await,
            _ => self.garbage().await,
        }
    }

    /// Takes the session of `hello`; for a hello at connect, checks what goes with it.
    async fn take_hello(
        &mut self,
        answer: Envelope<Uplink>,
        at_connect: bool,
    ) -> Result<(), String> {
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
                "the tool was told door {}, the locker has {}",
                self.door, hello.door_count
            ));
        }
        let session = hello.session;
        self.p.set_session(session);
        self.p.set_counter(COUNTER_BASE);
        self.version = hello.protocol_version;
        self.doors = hello.door_count;
        self.up = answer.header.counter;
        if !at_connect {
            return Ok(());
        }
        if answer.header.counter != 1 {
            return Err(format!(
                "a hello at connect numbered {}, expected 1 (7.6)",
                answer.header.counter
            ));
        }
        let want = Presence {
            online: true,
            session: Some(session),
        };
        if !self.p.presence.contains(&want) {
            return Err(format!(
                "presence {:?} on status, expected {} before the hello (6)",
                self.p.presence,
                want.to_json()
            ));
        }
        let beat = self
            .p
            .unasked(HEARTBEAT_AFTER_HELLO, |u| {
                u.header.session == session && matches!(u.message, Uplink::Heartbeat(_))
            })
            .await?;
        match beat.map(|b| b.message) {
            Some(Uplink::Heartbeat(b)) if b.doors.len() == usize::from(self.doors) => Ok(()),
            Some(_) => Err("a heartbeat with another number of doors than the hello's".into()),
            None => Err(
                "no heartbeat right after the hello: doors read unknown until one comes (7.6)"
                    .into(),
            ),
        }
    }

    async fn hello(&mut self) -> Result<(), String> {
        self.p.set_session(0);
        self.p.set_counter(COUNTER_BASE);
        let at_connect = self
            .p
            .unasked(Duration::from_secs(3), |u| {
                matches!(u.message, Uplink::Hello(_))
            })
            .await?;
        match at_connect {
            Some(hello) => self.take_hello(hello, true).await,
            None => {
                self.p
                    .note("no hello at connect: asking with a ping naming session 0");
                let bytes = self.p.next(firmware_protocol::Downlink::Ping);
                let answer = self.p.ask(&bytes, "a ping naming session 0").await?;
                self.take_hello(answer, false).await
            }
        }
    }

    async fn unlock(&mut self) -> Result<(), String> {
        self.p.forget_unasked();
        let id = self.id();
        let door = self.door;
        let bytes = self.p.next(Downlink::Unlock(Unlock {
            command_id: id,
            door,
            expires_at_ms: None,
        }));
        let ack = self.ack(&bytes, "an unlock").await?;
        expect_result(&ack, id, CommandResult::Executed)?;
        self.unlock = Some((bytes, id, self.p.counter()));
        let event = self
            .p
            .unasked(EVENT_WAIT, |u| match &u.message {
                Uplink::DoorEvent(e) => e.door == door && e.state == DoorMotion::Opened,
                Uplink::Alarm(a) => a.door == Some(door),
                _ => false,
            })
            .await?;
        match event.map(|e| e.message) {
            None => Err(format!(
                "no door event or alarm within {} s of the unlock: run with door {door} closed",
                EVENT_WAIT.as_secs()
            )),
            Some(Uplink::DoorEvent(e)) if e.cause != DoorCause::Commanded(id) => Err(format!(
                "door {door} opened after unlock {id} but the event names {:?}",
                e.cause
            )),
            Some(_) => Ok(()),
        }
    }

    async fn exact_repeat(&mut self) -> Result<(), String> {
        let Some((bytes, id, _)) = self.unlock.clone() else {
            return Err("the unlock case did not get its command executed".into());
        };
        let ack = self.ack(&bytes, "the unlock's payload again").await?;
        expect_result(&ack, id, CommandResult::Executed)?;
        let twice = self
            .p
            .unasked(Duration::from_millis(500), |u| {
                matches!(&u.message, Uplink::DoorEvent(e) if e.cause == DoorCause::Commanded(id))
            })
            .await?;
        if twice.is_some() {
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

    async fn malformed(&mut self) -> Result<(), String> {
        let id = self.id();
        let body = format!(
            r#"{{"command_id":{id},"heartbeat_secs":1,"open_window_ms":10000,"pulse_ms":300,"ajar_alarm_secs":120}}"#
        );
        self.p
            .note("a configure with heartbeat_secs 1 (outside 5 to 3600), tagged right");
        let bytes = self.p.raw_json(MessageType::Configure, &body);
        let malformed = refused(RefuseReason::Malformed);
        if let Some(answer) = self.p.send(&bytes).await? {
            match self.uplink(answer)? {
                Uplink::Ack(ack) => expect_result(&ack, id, malformed)?,
                other => return Err(format!("answered {}", other.message_type().name())),
            }
        }
        match self.remembered(id).await?.as_slice() {
            [] => Ok(()),
            [result] if *result == malformed => Ok(()),
            other => Err(format!("command {id} (malformed) remembered as {other:?}")),
        }
    }

    async fn garbage(&mut self) -> Result<(), String> {
        let ping = String::from_utf8(self.p.next(Downlink::Ping)).expect("JSON is UTF-8");
        let unknown_type = ping.replace("\"type\":\"ping\"", "\"type\":\"open_every_door\"");
        let version_2 = ping.replace("\"version\":1", "\"version\":2");
        for (junk, what) in [
            (b"not json at all".to_vec(), "text that is not JSON"),
            (
                br#"{"version":1}"#.to_vec(),
                "an envelope without its fields",
            ),
            (unknown_type.into_bytes(), "an envelope of an unknown type"),
            (version_2.into_bytes(), "an envelope of version 2"),
            (vec![0xff; 64], "bytes that are not UTF-8"),
        ] {
            self.p.silent(&junk, what).await?;
        }
        self.ping().await
    }

    /// The locker is power-cycled: it connects again with a new session (its hello numbered 1,
    /// its presence and a heartbeat with it), refuses a command of the old session, and remembers
    /// nothing of the old commands.
    async fn rebooted(&mut self, reboot: &mut Reboot) -> Result<(), String> {
        let old = self.p.session();
        self.p.note("the locker is power-cycled");
        self.p.forget_unasked();
        reboot().await?;
        let hello = self
            .p
            .unasked(
                Duration::from_secs(30),
                |u| matches!(&u.message, Uplink::Hello(h) if h.session != old),
            )
            .await?
            .ok_or("no hello for a new session within 30 s of the power cycle")?;
        let before = std::mem::take(&mut self.ids);
        self.take_hello(hello, true).await?;
        self.forgot(old, &before).await
    }
}
