//! Everything that must be refused is: wrong tag, wrong device, wrong direction, old session,
//! repeated counter, unknown type, bad version; and what must be tolerated is.

use firmware_protocol::*;
use serde_json::Value;

use crate::helpers::{command_id, device, header, key};

fn unlock(id: u64, door: u16) -> Downlink {
    Downlink::Unlock(Unlock {
        command_id: command_id(id),
        door,
        expires_at_ms: None,
    })
}

fn heartbeat() -> Uplink {
    Uplink::Heartbeat(Heartbeat {
        uptime_ms: 1000,
        doors: vec![DoorStatus {
            sensor: DoorSensor::Closed,
            locked: true,
            occupied: None,
        }],
        signal: Some(-60),
    })
}

fn hello(session: u32) -> Uplink {
    Uplink::Hello(Hello {
        protocol_version: PROTOCOL_VERSION,
        firmware: "1.0.0".into(),
        serial_no: "SN1".into(),
        door_count: 4,
        session,
        uptime_ms: 5,
        max_chunk: None,
    })
}

/// Rewrites one field of a JSON envelope, keeping its tag.
fn tamper(payload: &str, field: &str, value: Value) -> Vec<u8> {
    let mut json: Value = serde_json::from_str(payload).expect("json");
    json[field] = value;
    serde_json::to_vec(&json).expect("json")
}

#[test]
fn a_wrong_tag_is_refused_on_both_encodings() {
    let env = Envelope {
        header: header(Direction::Up, device("lk-1"), 7, 1),
        message: heartbeat(),
    };
    let sealed = env.seal_binary(&key(1)).expect("seals");
    let raw = Unverified::parse_binary(&sealed).expect("parses");
    assert_eq!(
        raw.verify::<Uplink>(&device("lk-1"), &key(2)),
        Err(DecodeError::BadTag)
    );
    let json = env.seal_json(&key(1)).expect("seals");
    let raw = Unverified::parse_json(json.as_bytes()).expect("parses");
    assert_eq!(
        raw.verify::<Uplink>(&device("lk-1"), &key(2)),
        Err(DecodeError::BadTag)
    );
    // A tag in upper case is another spelling of the same bytes: refused, one tag one spelling.
    let mut upper: Value = serde_json::from_str(&json).expect("json");
    let tag = upper["tag"].as_str().expect("tag").to_uppercase();
    upper["tag"] = Value::String(tag);
    let upper = serde_json::to_vec(&upper).expect("json");
    assert!(Unverified::parse_json(&upper).is_err() || tag_is_digits_only(&json));
}

fn tag_is_digits_only(json: &str) -> bool {
    let v: Value = serde_json::from_str(json).expect("json");
    v["tag"]
        .as_str()
        .is_some_and(|t| t.bytes().all(|b| b.is_ascii_digit()))
}

#[test]
fn a_body_changed_after_tagging_is_refused() {
    let env = Envelope {
        header: header(Direction::Down, device("lk-1"), 7, 1),
        message: unlock(5, 1),
    };
    let json = env.seal_json(&key(1)).expect("seals");
    let forged = tamper(
        &json,
        "body",
        Value::String(r#"{"command_id":5,"door":2}"#.into()),
    );
    let raw = Unverified::parse_json(&forged).expect("parses");
    assert_eq!(
        raw.verify::<Downlink>(&device("lk-1"), &key(1)),
        Err(DecodeError::BadTag)
    );
    // Re-serialising the body differently (whitespace) also breaks the tag: bytes as sent count.
    let spaced = tamper(
        &json,
        "body",
        Value::String(r#"{"command_id": 5, "door": 1}"#.into()),
    );
    let raw = Unverified::parse_json(&spaced).expect("parses");
    assert_eq!(
        raw.verify::<Downlink>(&device("lk-1"), &key(1)),
        Err(DecodeError::BadTag)
    );
}

#[test]
fn a_message_for_another_device_is_refused() {
    let env = Envelope {
        header: header(Direction::Up, device("lk-1"), 7, 1),
        message: heartbeat(),
    };
    let json = env.seal_json(&key(1)).expect("seals");
    // Published on lk-2's topic as it is: the envelope names lk-1.
    let raw = Unverified::parse_json(json.as_bytes()).expect("parses");
    assert!(matches!(
        raw.verify::<Uplink>(&device("lk-2"), &key(2)),
        Err(DecodeError::WrongDevice { .. })
    ));
    // With the device id rewritten to lk-2: the tag was made over lk-1.
    let moved = tamper(&json, "device_id", Value::String("lk-2".into()));
    let raw = Unverified::parse_json(&moved).expect("parses");
    assert_eq!(
        raw.verify::<Uplink>(&device("lk-2"), &key(2)),
        Err(DecodeError::BadTag)
    );
    // Even if both devices shared a key, the device id is inside the tag.
    let raw = Unverified::parse_json(&moved).expect("parses");
    assert_eq!(
        raw.verify::<Uplink>(&device("lk-2"), &key(1)),
        Err(DecodeError::BadTag)
    );
}

#[test]
fn a_message_reflected_the_other_way_is_refused() {
    let env = Envelope {
        header: header(Direction::Down, device("lk-1"), 7, 1),
        message: unlock(9, 1),
    };
    let json = env.seal_json(&key(1)).expect("seals");
    let raw = Unverified::parse_json(json.as_bytes()).expect("parses");
    assert_eq!(
        raw.verify::<Uplink>(&device("lk-1"), &key(1)),
        Err(DecodeError::WrongDirection)
    );
    let flipped = tamper(&json, "direction", Value::String("up".into()));
    let raw = Unverified::parse_json(&flipped).expect("parses");
    assert_eq!(
        raw.verify::<Uplink>(&device("lk-1"), &key(1)),
        Err(DecodeError::WrongDirection)
    );
    assert_eq!(
        raw.verify::<Downlink>(&device("lk-1"), &key(1)),
        Err(DecodeError::WrongDirection)
    );
    // Sealing a message with a header of the wrong direction is refused too.
    let wrong = Envelope {
        header: header(Direction::Up, device("lk-1"), 7, 1),
        message: unlock(9, 1),
    };
    assert_eq!(wrong.seal_json(&key(1)), Err(EncodeError::WrongDirection));
}

#[test]
fn a_binary_body_moved_into_json_is_refused() {
    let env = Envelope {
        header: header(Direction::Up, device("lk-1"), 7, 1),
        message: Uplink::Pong,
    };
    let mut sealed = env.seal_binary(&key(1)).expect("seals");
    sealed[2] = 2; // claims the JSON encoding
    assert_eq!(
        Unverified::parse_binary(&sealed),
        Err(DecodeError::WrongEncoding)
    );
}

#[test]
fn the_gateway_refuses_replayed_uplinks() {
    let mut guard = UplinkGuard::new();
    let d = device("lk-1");
    // Nothing before a Hello.
    assert_eq!(
        guard.accept(&header(Direction::Up, d, 10, 1), false),
        Err(ReplayError::UnknownSession(10))
    );
    assert_eq!(
        guard.accept(&header(Direction::Up, d, 10, 1), true),
        Ok(SessionChange::New { previous: None })
    );
    assert_eq!(
        guard.accept(&header(Direction::Up, d, 10, 2), false),
        Ok(SessionChange::Same)
    );
    // Repeated and older counters.
    assert!(matches!(
        guard.accept(&header(Direction::Up, d, 10, 2), false),
        Err(ReplayError::OldCounter { last: 2, .. })
    ));
    assert!(matches!(
        guard.accept(&header(Direction::Up, d, 10, 1), true),
        Err(ReplayError::OldCounter { .. })
    ));
    // A new session.
    assert_eq!(
        guard.accept(&header(Direction::Up, d, 11, 1), true),
        Ok(SessionChange::New { previous: Some(10) })
    );
    // The old session is dead: neither its messages nor its Hello come back.
    assert_eq!(
        guard.accept(&header(Direction::Up, d, 10, 99), false),
        Err(ReplayError::UnknownSession(10))
    );
    assert_eq!(
        guard.accept(&header(Direction::Up, d, 10, 1), true),
        Err(ReplayError::ReusedSession(10))
    );
    assert_eq!(
        guard.accept(&header(Direction::Up, d, 0, 5), true),
        Err(ReplayError::ZeroSession)
    );
    // State survives a save and restore.
    let restored = UplinkGuard::restore(guard.current(), guard.retired());
    assert_eq!(restored, guard);
}

#[test]
fn the_gateway_forgets_only_very_old_sessions() {
    let mut guard = UplinkGuard::new();
    let d = device("lk-1");
    for session in 1..=40u32 {
        assert!(
            guard
                .accept(&header(Direction::Up, d, session, 1), true)
                .is_ok()
        );
    }
    assert_eq!(
        guard.retired().count(),
        firmware_protocol::session::REMEMBERED_SESSIONS
    );
    assert_eq!(
        guard.accept(&header(Direction::Up, d, 39, 1), true),
        Err(ReplayError::ReusedSession(39))
    );
}

#[test]
fn a_hello_must_announce_its_envelopes_session() {
    let env = Envelope {
        header: header(Direction::Up, device("lk-1"), 8, 1),
        message: hello(9),
    };
    let sealed = env.seal_binary(&key(1)).expect("seals");
    let raw = Unverified::parse_binary(&sealed).expect("parses");
    assert_eq!(
        raw.verify::<Uplink>(&device("lk-1"), &key(1)),
        Err(DecodeError::SessionMismatch {
            envelope: 8,
            body: 9
        })
    );
}

#[test]
fn the_locker_executes_a_command_at_most_once() {
    let d = device("lk-1");
    let mut guard = CommandGuard::new(500, 16);
    let first = header(Direction::Down, d, 500, 1);
    assert_eq!(guard.check(&first, Some(command_id(70))), Verdict::Execute);
    guard.record(command_id(70), 1, CommandResult::Executed);
    // The gateway resends the same command (same id, same counter): answered, not executed.
    assert_eq!(
        guard.check(&first, Some(command_id(70))),
        Verdict::Repeat(CommandResult::Executed)
    );
    // Another command with a counter already passed: stale.
    assert_eq!(
        guard.check(&first, Some(command_id(71))),
        Verdict::Refuse(RefuseReason::StaleCounter)
    );
    // A query with an old counter: stale (queries always take a new counter).
    assert_eq!(
        guard.check(&first, None),
        Verdict::Refuse(RefuseReason::StaleCounter)
    );
    // Another session: refused.
    assert_eq!(
        guard.check(&header(Direction::Down, d, 499, 2), Some(command_id(72))),
        Verdict::Refuse(RefuseReason::WrongSession)
    );
    // A refused command is remembered as refused.
    let second = header(Direction::Down, d, 500, 2);
    assert_eq!(guard.check(&second, Some(command_id(73))), Verdict::Execute);
    guard.record(
        command_id(73),
        2,
        CommandResult::Refused(RefuseReason::NoSuchDoor),
    );
    assert_eq!(
        guard.check(&second, Some(command_id(73))),
        Verdict::Repeat(CommandResult::Refused(RefuseReason::NoSuchDoor))
    );
    assert_eq!(guard.recent().len(), 2);
}

#[test]
fn a_board_answers_a_repeated_poll_and_ignores_older_ones() {
    let d = device("lk-1");
    let mut guard = CommandGuard::new(9, 16);
    // Before any downlink, a poll with counter 0 is not a repeat of anything.
    assert_eq!(
        guard.check_poll(&header(Direction::Down, d, 9, 0)),
        Verdict::Refuse(RefuseReason::StaleCounter)
    );
    let poll = header(Direction::Down, d, 9, 4);
    assert_eq!(guard.check_poll(&poll), Verdict::Execute);
    // The answer was lost and the gateway sends the same poll again: answered again.
    assert_eq!(guard.check_poll(&poll), Verdict::Execute);
    // An older poll (a replay): ignored.
    assert_eq!(
        guard.check_poll(&header(Direction::Down, d, 9, 3)),
        Verdict::Refuse(RefuseReason::StaleCounter)
    );
    // Another session: the board announces its own.
    assert_eq!(
        guard.check_poll(&header(Direction::Down, d, 8, 5)),
        Verdict::Refuse(RefuseReason::WrongSession)
    );
    // A poll moves the counter: a command with the poll's counter is stale.
    assert_eq!(
        guard.check(&poll, Some(command_id(1))),
        Verdict::Refuse(RefuseReason::StaleCounter)
    );
    // After a command, repeating the poll before it is an older counter: ignored.
    assert_eq!(
        guard.check(&header(Direction::Down, d, 9, 5), Some(command_id(2))),
        Verdict::Execute
    );
    assert_eq!(
        guard.check_poll(&poll),
        Verdict::Refuse(RefuseReason::StaleCounter)
    );
}

#[test]
fn the_locker_remembers_its_last_sixteen_outcomes() {
    let d = device("lk-1");
    let mut guard = CommandGuard::new(1, 4); // below the minimum: raised to MIN_RECENT
    for n in 1..=20u32 {
        let h = header(Direction::Down, d, 1, n);
        assert_eq!(
            guard.check(&h, Some(command_id(n.into()))),
            Verdict::Execute
        );
        guard.record(command_id(n.into()), n, CommandResult::Executed);
    }
    let recent = guard.recent();
    assert_eq!(recent.len(), MIN_RECENT);
    assert_eq!(recent.first().map(|a| a.command_id.get()), Some(5));
    assert_eq!(recent.last().map(|a| a.command_id.get()), Some(20));
    // Forgotten: a repeat of command 4 is no longer recognised, and is never executed again.
    assert_eq!(
        guard.check(&header(Direction::Down, d, 1, 4), Some(command_id(4))),
        Verdict::Refuse(RefuseReason::StaleCounter)
    );
}

#[test]
fn unknown_types_and_versions_are_refused_with_a_clear_error() {
    let env = Envelope {
        header: header(Direction::Up, device("lk-1"), 7, 1),
        message: Uplink::Pong,
    };
    let json = env.seal_json(&key(1)).expect("seals");
    let unknown = tamper(&json, "type", Value::String("self_destruct".into()));
    let err = Unverified::parse_json(&unknown).expect_err("refused");
    assert_eq!(err, DecodeError::UnknownMessageType("self_destruct".into()));
    assert_eq!(err.to_string(), "unknown message type self_destruct");
    let v2 = tamper(&json, "version", Value::from(2));
    assert_eq!(
        Unverified::parse_json(&v2),
        Err(DecodeError::UnsupportedVersion(2))
    );

    let mut sealed = env.seal_binary(&key(1)).expect("seals");
    let ty_at = 4 + 4 + 4 + 4;
    sealed[ty_at] = 0x7f;
    assert_eq!(
        Unverified::parse_binary(&sealed),
        Err(DecodeError::UnknownMessageType("0x7f".into()))
    );
}

#[test]
fn unknown_fields_are_tolerated() {
    let k = key(1);
    let d = device("lk-1");
    let env = Envelope {
        header: header(Direction::Up, d, 7, 3),
        message: Uplink::Ack(Ack {
            command_id: command_id(12),
            result: CommandResult::Executed,
        }),
    };
    // A newer firmware adds a field to the body and to the envelope. It tags the body it sends.
    let body = r#"{"command_id":12,"result":"executed","relay_ms":210}"#;
    let mut mac_input = vec![1u8, 2, 2, 4];
    mac_input.extend_from_slice(b"lk-1");
    mac_input.extend_from_slice(&7u32.to_be_bytes());
    mac_input.extend_from_slice(&3u32.to_be_bytes());
    mac_input.push(MessageType::Ack.code());
    mac_input.extend_from_slice(&(body.len() as u16).to_be_bytes());
    mac_input.extend_from_slice(body.as_bytes());
    let tag = hmac_tag(k.as_bytes(), &mac_input);
    let payload = serde_json::json!({
        "version": 1, "direction": "up", "device_id": "lk-1", "session": 7, "counter": 3,
        "type": "ack", "body": body, "tag": tag, "battery_mv": 3700
    });
    let raw = Unverified::parse_json(&serde_json::to_vec(&payload).expect("json")).expect("parses");
    assert_eq!(raw.verify::<Uplink>(&d, &k), Ok(env));
}

/// HMAC-SHA256 truncated to 16 bytes, computed independently of the crate's envelope code.
fn hmac_tag(key: &[u8], input: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).expect("any key length");
    mac.update(input);
    hex::encode(&mac.finalize().into_bytes()[..16])
}

#[test]
fn presence_payloads_read_and_write() {
    let will = Presence {
        online: false,
        session: Some(7),
    };
    assert_eq!(will.to_json(), r#"{"online":false,"session":7}"#);
    assert_eq!(Presence::parse(will.to_json().as_bytes()), Ok(will));
    let old = Presence::parse(br#"{"online":true,"firmware":"x"}"#).expect("old firmware");
    assert_eq!(
        old,
        Presence {
            online: true,
            session: None
        }
    );
    assert!(Presence::parse(b"offline").is_err());
    assert!(Presence::parse(&[b' '; 2000]).is_err());
}
