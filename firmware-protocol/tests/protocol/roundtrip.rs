//! `decode(encode(m)) == m` for every message, in both encodings and through the serial frame.

use firmware_protocol::*;
use proptest::prelude::*;

use crate::helpers::{decode_all, frame_bytes, key};
use crate::strategies::{down_envelope, up_envelope};

/// Seals `envelope` in binary, frames it, reads it back: what the other side opens.
fn binary_round_trip<M: Payload>(envelope: &Envelope<M>, address: u8) -> Envelope<M> {
    let k = key(1);
    let sealed = envelope.seal_binary(&k).expect("valid message seals");
    let frame = frame_bytes(address, sealed.clone());
    let (frames, stats) = decode_all(&frame, frame.len());
    assert_eq!(frames.len(), 1);
    assert_eq!(stats.skipped_bytes, 0);
    assert_eq!(frames[0].address, address);
    assert_eq!(&frames[0].envelope[..], &sealed[..]);
    let raw = Unverified::parse_binary(&frames[0].envelope).expect("parses");
    let opened: Envelope<M> = raw
        .verify(&envelope.header.device_id, &k)
        .expect("verifies");
    // Sealing again gives the same bytes: the encoding is canonical.
    assert_eq!(opened.seal_binary(&k).expect("seals"), sealed);
    opened
}

fn json_round_trip<M: Payload>(envelope: &Envelope<M>) {
    let k = key(2);
    let payload = envelope.seal_json(&k).expect("valid message seals");
    let raw = Unverified::parse_json(payload.as_bytes()).expect("parses");
    let opened: Envelope<M> = raw
        .verify(&envelope.header.device_id, &k)
        .expect("verifies");
    assert_eq!(&opened, envelope);
    // Sealing again gives the same bytes: the encoding is canonical.
    assert_eq!(opened.seal_json(&k).expect("seals"), payload);
}

proptest! {
    #[test]
    fn downlinks_round_trip_in_binary(env in down_envelope(), address in 1u8..=247) {
        prop_assert_eq!(binary_round_trip(&env, address), env);
    }

    #[test]
    fn uplinks_round_trip_in_binary(env in up_envelope(), address in 1u8..=247) {
        let opened = binary_round_trip(&env, address);
        match (&opened.message, &env.message) {
            // A report of many doors with full lists keeps the newest door results it has room
            // for (PROTOCOL.md §2.1): what came through is the end of what was sent.
            (Uplink::StateReport(got), Uplink::StateReport(sent)) => {
                prop_assert!(sent.door_results.ends_with(&got.door_results));
                let mut trimmed = env.clone();
                if let Uplink::StateReport(report) = &mut trimmed.message {
                    report.door_results = got.door_results.clone();
                }
                prop_assert_eq!(&opened, &trimmed);
            }
            _ => prop_assert_eq!(opened, env),
        }
    }

    #[test]
    fn downlinks_round_trip_in_json(env in down_envelope()) {
        json_round_trip(&env);
    }

    #[test]
    fn uplinks_round_trip_in_json(env in up_envelope()) {
        json_round_trip(&env);
    }

    #[test]
    fn any_flipped_bit_of_a_sealed_envelope_is_refused(env in up_envelope(), bit in any::<prop::sample::Index>()) {
        let k = key(3);
        let mut sealed = env.seal_binary(&k).expect("seals");
        let bit = bit.index(sealed.len() * 8);
        sealed[bit / 8] ^= 1 << (bit % 8);
        let opened = Unverified::parse_binary(&sealed)
            .and_then(|raw| raw.verify::<Uplink>(&env.header.device_id, &k));
        prop_assert!(opened.is_err(), "flipped bit {bit} was accepted");
    }
}

#[test]
fn every_message_type_is_covered_by_the_strategies() {
    // The strategies above must reach every type, or the round trips prove less than they say.
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let mut seen = std::collections::HashSet::new();
    for _ in 0..2000 {
        let down = down_envelope()
            .new_tree(&mut runner)
            .expect("tree")
            .current();
        let up = up_envelope().new_tree(&mut runner).expect("tree").current();
        seen.insert(down.message.message_type());
        seen.insert(up.message.message_type());
    }
    for ty in MessageType::ALL {
        assert!(seen.contains(&ty), "no strategy produces {ty:?}");
    }
}

#[test]
fn message_type_codes_and_names_are_unique_and_match_directions() {
    for ty in MessageType::ALL {
        assert_eq!(MessageType::from_code(ty.code()), Some(ty));
        assert_eq!(MessageType::from_name(ty.name()), Some(ty));
    }
    assert_eq!(MessageType::Unlock.direction(), Direction::Down);
    assert_eq!(MessageType::Pong.direction(), Direction::Up);
    for reason in RefuseReason::ALL {
        assert_eq!(RefuseReason::from_code(reason.code()), Some(reason));
        assert_eq!(RefuseReason::from_name(reason.name()), Some(reason));
        // The name is the one JSON carries.
        assert_eq!(
            serde_json::to_value(reason).expect("a reason serialises"),
            serde_json::Value::String(reason.name().to_owned())
        );
    }
    assert_eq!(RefuseReason::from_code(0), None);
    assert_eq!(RefuseReason::from_name("exploded"), None);
}

#[test]
fn json_bodies_read_as_documented() {
    // The shapes PROTOCOL.md shows, written by hand rather than by the encoder.
    let ack = Uplink::read_json(
        MessageType::Ack,
        br#"{"command_id":42,"result":"refused","reason":"busy","extra":[1,2]}"#,
    )
    .expect("ack reads");
    assert_eq!(
        ack,
        Uplink::Ack(Ack {
            command_id: CommandId::new(42).expect("id"),
            result: CommandResult::Refused(RefuseReason::Busy),
        })
    );
    let event = Uplink::read_json(
        MessageType::DoorEvent,
        br#"{"door":3,"state":"opened","cause":"commanded","command_id":42,"uptime_ms":5}"#,
    )
    .expect("door event reads");
    assert!(matches!(
        event,
        Uplink::DoorEvent(DoorEvent { cause: DoorCause::Commanded(id), .. }) if id.get() == 42
    ));
    let pong = Uplink::read_json(MessageType::Pong, br#"{"future":true}"#).expect("pong reads");
    assert_eq!(pong, Uplink::Pong);
}

#[test]
fn a_report_of_512_doors_with_full_lists_fits_a_frame_with_its_newest_door_results() {
    let results: Vec<UnlockDoor> = (1..=MAX_RECENT as u64)
        .map(|n| UnlockDoor {
            command_id: CommandId::new(n).expect("id"),
            door: DoorOutcome::Opened,
        })
        .collect();
    let report = StateReport {
        query_id: 1,
        doors: vec![
            DoorStatus {
                sensor: DoorSensor::Closed,
                locked: true,
                occupied: None,
            };
            usize::from(MAX_DOORS)
        ],
        recent: results
            .iter()
            .map(|r| Ack {
                command_id: r.command_id,
                result: CommandResult::Executed,
            })
            .collect(),
        door_results: results.clone(),
    };
    let envelope = Envelope {
        header: Header {
            direction: Direction::Up,
            device_id: DeviceId::new("lk-0001").expect("id"),
            session: 1,
            counter: 1,
        },
        message: Uplink::StateReport(report),
    };
    let opened = binary_round_trip(&envelope, 1);
    let Uplink::StateReport(got) = opened.message else {
        panic!("a report");
    };
    // 4 + 2 + 512 + 1 + 32 × 9 = 807 bytes before them; 1 + 24 × 9 = 217 fit in the 1,024.
    assert_eq!(got.door_results.len(), 24);
    assert_eq!(got.door_results[..], results[8..], "the newest are kept");
}
