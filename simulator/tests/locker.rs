//! The simulated locker plays the locker's side of the protocol: the gateway's side here is the
//! protocol crate itself (sealing, verifying, the uplink replay guard), as the gateway will use it.

use firmware_protocol::*;
use simulator::SimLocker;

struct Gateway {
    key: DeviceKey,
    device: DeviceId,
    session: u32,
    counter: u32,
    guard: UplinkGuard,
}

impl Gateway {
    fn new(device: DeviceId, key: DeviceKey) -> Self {
        Self {
            key,
            device,
            session: 0,
            counter: 0,
            guard: UplinkGuard::new(),
        }
    }

    fn envelope(&mut self, message: Downlink) -> Envelope<Downlink> {
        self.counter += 1;
        Envelope {
            header: Header {
                direction: Direction::Down,
                device_id: self.device,
                session: self.session,
                counter: self.counter,
            },
            message,
        }
    }

    /// Seals as JSON (MQTT) or binary (serial), delivers, and verifies every answer as the gateway
    /// must: tag, then replay guard.
    fn deliver(
        &mut self,
        locker: &mut SimLocker,
        envelope: &Envelope<Downlink>,
        json: bool,
        uptime: u64,
    ) -> Vec<Uplink> {
        let bytes = if json {
            envelope.seal_json(&self.key).expect("seals").into_bytes()
        } else {
            envelope.seal_binary(&self.key).expect("seals")
        };
        let raw = if json {
            Unverified::parse_json(&bytes).expect("parses")
        } else {
            Unverified::parse_binary(&bytes).expect("parses")
        };
        locker
            .receive(&raw, uptime)
            .into_iter()
            .map(|up| self.accept(up))
            .collect()
    }

    fn accept(&mut self, up: Envelope<Uplink>) -> Uplink {
        let wire = up.seal_binary(locker_key()).expect("locker seals");
        let raw = Unverified::parse_binary(&wire).expect("parses");
        let opened: Envelope<Uplink> = raw.verify(&self.device, &self.key).expect("verifies");
        let is_hello = matches!(opened.message, Uplink::Hello(_));
        let change = self
            .guard
            .accept(&opened.header, is_hello)
            .expect("fresh uplink");
        if let SessionChange::New { .. } = change {
            self.session = opened.header.session;
            self.counter = 0;
        }
        opened.message
    }
}

fn locker_key() -> &'static DeviceKey {
    static KEY: std::sync::OnceLock<DeviceKey> = std::sync::OnceLock::new();
    KEY.get_or_init(|| DeviceSecret::from_bytes([0x11; 32]).tag_key())
}

fn setup() -> (SimLocker, Gateway) {
    let device = DeviceId::new("lk-7").expect("id");
    let mut locker = SimLocker::new(device, locker_key().clone(), 4);
    let mut gateway = Gateway::new(device, locker_key().clone());
    let hello = locker.connect(1000, 0);
    assert!(matches!(gateway.accept(hello), Uplink::Hello(_)));
    (locker, gateway)
}

fn unlock(id: u64, door: u16) -> Downlink {
    Downlink::Unlock(Unlock {
        command_id: CommandId::new(id).expect("id"),
        door,
        expires_at_ms: None,
    })
}

fn ack(id: u64, result: CommandResult) -> Uplink {
    Uplink::Ack(Ack {
        command_id: CommandId::new(id).expect("id"),
        result,
    })
}

#[test]
fn an_unlock_pulses_once_even_when_resent() {
    for json in [true, false] {
        let (mut locker, mut gateway) = setup();
        let command = gateway.envelope(unlock(1, 2));
        let answers = gateway.deliver(&mut locker, &command, json, 10);
        assert_eq!(answers[0], ack(1, CommandResult::Executed));
        assert!(matches!(
            answers[1],
            Uplink::DoorEvent(DoorEvent { door: 2, state: DoorMotion::Opened, cause: DoorCause::Commanded(id), .. }) if id.get() == 1
        ));
        assert!(locker.is_open(2));
        // The ack was lost; the gateway resends the same envelope.
        let again = gateway.deliver(&mut locker, &command, json, 20);
        assert_eq!(again, vec![ack(1, CommandResult::Executed)]);
        assert_eq!(
            locker.executions(),
            1,
            "a resent command pulsed the relay twice"
        );
    }
}

#[test]
fn refusals_carry_their_reason() {
    let (mut locker, mut gateway) = setup();
    let nine = gateway.envelope(unlock(1, 9));
    assert_eq!(
        gateway.deliver(&mut locker, &nine, true, 0),
        vec![ack(1, CommandResult::Refused(RefuseReason::NoSuchDoor))]
    );
    let expired = gateway.envelope(Downlink::Unlock(Unlock {
        command_id: CommandId::new(2).expect("id"),
        door: 1,
        expires_at_ms: Some(500),
    }));
    assert_eq!(
        gateway.deliver(&mut locker, &expired, true, 501),
        vec![ack(2, CommandResult::Refused(RefuseReason::Expired))]
    );
    locker.faults.busy_doors.insert(3);
    let busy = gateway.envelope(unlock(3, 3));
    assert_eq!(
        gateway.deliver(&mut locker, &busy, true, 0),
        vec![ack(3, CommandResult::Refused(RefuseReason::Busy))]
    );
    // A command signed with another key: refused as bad_tag, nothing pulsed.
    let mut forger = Gateway::new(
        locker.device_id(),
        DeviceSecret::from_bytes([9; 32]).tag_key(),
    );
    forger.session = gateway.session;
    forger.counter = 100;
    let forged = forger.envelope(unlock(4, 1));
    let raw_json = forged.seal_json(&forger.key).expect("seals");
    let raw = Unverified::parse_json(raw_json.as_bytes()).expect("parses");
    let answers: Vec<_> = locker
        .receive(&raw, 0)
        .into_iter()
        .map(|u| gateway.accept(u))
        .collect();
    assert_eq!(
        answers,
        vec![ack(4, CommandResult::Refused(RefuseReason::BadTag))]
    );
    // A stale counter with a new command id.
    let mut stale = gateway.envelope(unlock(5, 1));
    stale.header.counter = 1;
    assert_eq!(
        gateway.deliver(&mut locker, &stale, false, 0),
        vec![ack(5, CommandResult::Refused(RefuseReason::StaleCounter))]
    );
    assert_eq!(locker.executions(), 0);
}

#[test]
fn a_new_session_refuses_old_commands_but_remembers_their_outcomes_until_a_reboot() {
    let (mut locker, mut gateway) = setup();
    let old = gateway.envelope(unlock(1, 1));
    assert_eq!(
        gateway.deliver(&mut locker, &old, true, 0)[0],
        ack(1, CommandResult::Executed)
    );
    // The locker reconnects: a new session.
    let hello = locker.connect(2000, 50);
    assert!(matches!(gateway.accept(hello), Uplink::Hello(_)));
    // The old envelope, replayed: wrong session, refused, not executed.
    let replay = gateway.deliver(&mut locker, &old, true, 60);
    assert_eq!(
        replay,
        vec![ack(1, CommandResult::Refused(RefuseReason::WrongSession))]
    );
    assert_eq!(locker.executions(), 1);
    // The gateway settles by asking: the locker still knows what command 1 came to.
    let query = gateway.envelope(Downlink::QueryState(QueryState { query_id: 5 }));
    let answers = gateway.deliver(&mut locker, &query, true, 70);
    let Uplink::StateReport(report) = &answers[0] else {
        panic!("expected a state report, got {answers:?}");
    };
    assert_eq!(report.query_id, 5);
    assert!(report.recent.contains(&Ack {
        command_id: CommandId::new(1).expect("id"),
        result: CommandResult::Executed
    }));
    assert_eq!(report.doors[0].sensor, DoorSensor::Open);
    // After a reboot it does not.
    locker.reboot();
    let hello = locker.connect(3000, 5);
    assert!(matches!(gateway.accept(hello), Uplink::Hello(_)));
    let query = gateway.envelope(Downlink::QueryState(QueryState { query_id: 6 }));
    let answers = gateway.deliver(&mut locker, &query, true, 10);
    let Uplink::StateReport(report) = &answers[0] else {
        panic!("expected a state report, got {answers:?}");
    };
    assert!(report.recent.is_empty());
}

#[test]
fn a_state_report_lists_recent_outcomes() {
    let (mut locker, mut gateway) = setup();
    for (id, door) in [(1, 1), (2, 7), (3, 2)] {
        let command = gateway.envelope(unlock(id, door));
        gateway.deliver(&mut locker, &command, false, 0);
    }
    let query = gateway.envelope(Downlink::QueryState(QueryState { query_id: 1 }));
    let answers = gateway.deliver(&mut locker, &query, false, 0);
    let Uplink::StateReport(report) = &answers[0] else {
        panic!("expected a state report");
    };
    assert_eq!(
        report
            .recent
            .iter()
            .map(|a| (a.command_id.get(), a.result))
            .collect::<Vec<_>>(),
        vec![
            (1, CommandResult::Executed),
            (2, CommandResult::Refused(RefuseReason::NoSuchDoor)),
            (3, CommandResult::Executed),
        ]
    );
}

#[test]
fn a_jammed_door_is_pulsed_but_reports_a_jam() {
    let (mut locker, mut gateway) = setup();
    locker.faults.jammed_doors.insert(4);
    let command = gateway.envelope(unlock(1, 4));
    let answers = gateway.deliver(&mut locker, &command, true, 0);
    assert_eq!(answers[0], ack(1, CommandResult::Executed));
    assert!(matches!(
        answers[1],
        Uplink::Alarm(Alarm {
            kind: AlarmKind::Jammed,
            door: Some(4),
            ..
        })
    ));
    assert!(!locker.is_open(4));
}

#[test]
fn a_forced_door_raises_an_alarm_and_a_replayed_event_is_refused() {
    let (mut locker, mut gateway) = setup();
    let events = locker.force_open(2, 100);
    let wire = events[0].seal_json(locker_key()).expect("seals");
    let messages: Vec<_> = events.into_iter().map(|e| gateway.accept(e)).collect();
    assert!(matches!(
        messages[1],
        Uplink::Alarm(Alarm {
            kind: AlarmKind::ForcedOpen,
            door: Some(2),
            ..
        })
    ));
    // The same door event, replayed by someone who recorded it: the counter is old.
    let raw = Unverified::parse_json(wire.as_bytes()).expect("parses");
    let opened: Envelope<Uplink> = raw
        .verify(&locker.device_id(), locker_key())
        .expect("tag is genuine");
    assert!(matches!(
        gateway.guard.accept(&opened.header, false),
        Err(ReplayError::OldCounter { .. })
    ));
}

#[test]
fn configure_changes_settings_and_ping_answers() {
    let (mut locker, mut gateway) = setup();
    let configure = gateway.envelope(Downlink::Configure(Configure {
        command_id: CommandId::new(8).expect("id"),
        heartbeat_secs: 30,
        open_window_ms: 5000,
        pulse_ms: 200,
        ajar_alarm_secs: 0,
        expires_at_ms: None,
    }));
    assert_eq!(
        gateway.deliver(&mut locker, &configure, true, 0),
        vec![ack(8, CommandResult::Executed)]
    );
    assert_eq!(locker.settings().heartbeat_secs, 30);
    let ping = gateway.envelope(Downlink::Ping);
    assert_eq!(
        gateway.deliver(&mut locker, &ping, true, 0),
        vec![Uplink::Pong]
    );
    locker.faults.dead_sensors.insert(1);
    let poll = gateway.envelope(Downlink::Poll(Poll { ack_counter: 0 }));
    let answers = gateway.deliver(&mut locker, &poll, false, 0);
    let Uplink::Heartbeat(heartbeat) = &answers[0] else {
        panic!("expected a heartbeat");
    };
    assert_eq!(heartbeat.doors[0].sensor, DoorSensor::Unknown);
}

#[test]
fn a_ping_for_an_unknown_session_makes_the_locker_announce_its_session_again() {
    let (mut locker, mut gateway) = setup();
    let current = locker.session().expect("connected");
    // The gateway lost the hello: it knows no session and pings with session 0.
    let mut ping = gateway.envelope(Downlink::Ping);
    ping.header.session = 0;
    let raw_json = ping.seal_json(locker_key()).expect("seals");
    let raw = Unverified::parse_json(raw_json.as_bytes()).expect("parses");
    let answers = locker.receive(&raw, 50);
    assert_eq!(answers.len(), 1);
    let Uplink::Hello(hello) = &answers[0].message else {
        panic!("expected a hello, got {answers:?}");
    };
    assert_eq!(hello.session, current, "the same session, announced again");
    assert_eq!(answers[0].header.counter, 2, "with the next uplink counter");
    // A command for another session is still refused, not answered with a hello.
    let mut unlock_old = gateway.envelope(unlock(9, 1));
    unlock_old.header.session = 0;
    let wire = unlock_old.seal_json(locker_key()).expect("seals");
    let raw = Unverified::parse_json(wire.as_bytes()).expect("parses");
    assert!(matches!(
        locker.receive(&raw, 60)[0].message,
        Uplink::Ack(Ack {
            result: CommandResult::Refused(RefuseReason::WrongSession),
            ..
        })
    ));
}

#[test]
fn a_version_2_locker_takes_two_gateways_commands_in_either_order() {
    for version in [1u8, 2] {
        let device = DeviceId::new("lk-7").expect("id");
        let mut locker = SimLocker::new(device, locker_key().clone(), 4);
        locker.speak(version);
        let mut gateway = Gateway::new(device, locker_key().clone());
        let Uplink::Hello(hello) = gateway.accept(locker.connect(1000, 0)) else {
            panic!("a hello first");
        };
        assert_eq!(hello.protocol_version, version, "the hello announces it");
        // Gateway A takes counter 1, gateway B counter 2; B's unlock reaches the locker first.
        let from_a = gateway.envelope(unlock(1, 1));
        let from_b = gateway.envelope(unlock(2, 2));
        let answers = gateway.deliver(&mut locker, &from_b, true, 10);
        assert_eq!(answers[0], ack(2, CommandResult::Executed));
        let answers = gateway.deliver(&mut locker, &from_a, true, 20);
        let expected = match version {
            2 => CommandResult::Executed,
            _ => CommandResult::Refused(RefuseReason::StaleCounter),
        };
        assert_eq!(answers[0], ack(1, expected), "version {version}");
        assert_eq!(locker.is_open(1), version == 2);
        // Either copy resent is answered again, never executed twice.
        let executions = locker.executions();
        for command in [&from_a, &from_b] {
            gateway.deliver(&mut locker, command, true, 30);
        }
        assert_eq!(locker.executions(), executions);
    }
}

#[test]
fn a_malformed_command_is_refused_malformed_once_and_remembered() {
    let (mut locker, mut gateway) = setup();
    gateway.counter += 1;
    let header = Header {
        direction: Direction::Down,
        device_id: gateway.device,
        session: gateway.session,
        counter: gateway.counter,
    };
    // heartbeat_secs 1 is outside 5..=3600; the tag is right.
    let body = r#"{"command_id":9,"heartbeat_secs":1,"open_window_ms":1000,"pulse_ms":300,"ajar_alarm_secs":0}"#;
    let payload = seal_json_text(&header, MessageType::Configure, body, locker_key());
    let raw = Unverified::parse_json(payload.as_bytes()).expect("parses");
    let malformed = CommandResult::Refused(RefuseReason::Malformed);
    let answers: Vec<Uplink> = locker
        .receive(&raw, 10)
        .into_iter()
        .map(|up| gateway.accept(up))
        .collect();
    assert_eq!(answers, vec![ack(9, malformed)]);
    // Sent again (its answer was lost): the stored result, nothing applied.
    let again: Vec<Uplink> = locker
        .receive(&raw, 20)
        .into_iter()
        .map(|up| gateway.accept(up))
        .collect();
    assert_eq!(again, vec![ack(9, malformed)]);
    assert_eq!(locker.settings().heartbeat_secs, 60, "nothing applied");
    assert_eq!(
        locker.recent(),
        vec![Ack {
            command_id: CommandId::new(9).expect("id"),
            result: malformed
        }]
    );
    // A body without a command id cannot be answered.
    gateway.counter += 1;
    let header = Header {
        counter: gateway.counter,
        ..header
    };
    let payload = seal_json_text(&header, MessageType::Unlock, r#"{"door":1}"#, locker_key());
    let raw = Unverified::parse_json(payload.as_bytes()).expect("parses");
    assert!(locker.receive(&raw, 30).is_empty());
}
