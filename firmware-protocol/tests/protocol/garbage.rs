//! Arbitrary bytes never panic any decoder, and the frame decoder never holds more than a frame.

use bytes::BytesMut;
use firmware_protocol::*;
use proptest::prelude::*;
use tokio_util::codec::Decoder;

use crate::helpers::{decode_all, device, key};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn frame_decoder_survives_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..4096), chunk in 1usize..300) {
        // decode_all asserts the buffer bound after every call.
        let (frames, _) = decode_all(&bytes, chunk);
        for frame in frames {
            prop_assert!((1..=247).contains(&frame.address));
        }
    }

    #[test]
    fn frame_decoder_survives_bytes_that_look_like_frames(
        parts in proptest::collection::vec(
            prop_oneof![
                Just(vec![0xA5, 0x5A]),
                (any::<u16>()).prop_map(|n| n.to_be_bytes().to_vec()),
                proptest::collection::vec(any::<u8>(), 0..40),
            ],
            0..64,
        ),
        chunk in 1usize..64,
    ) {
        let bytes: Vec<u8> = parts.concat();
        let _ = decode_all(&bytes, chunk);
    }

    #[test]
    fn binary_envelope_parser_survives_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..1200)) {
        if let Ok(raw) = Unverified::parse_binary(&bytes) {
            let _ = raw.verify::<Uplink>(&device("x"), &key(0));
            let _ = raw.decode_unverified::<Uplink>();
            let _ = raw.decode_unverified::<Downlink>();
        }
    }

    #[test]
    fn binary_envelope_parser_survives_corrupted_headers(
        body in proptest::collection::vec(any::<u8>(), 0..200),
        version in prop_oneof![Just(1u8), any::<u8>()],
        direction in 0u8..4,
        encoding in 0u8..4,
        id_len in 0u8..40,
        ty in any::<u8>(),
        declared in any::<u16>(),
    ) {
        let mut bytes = vec![version, direction, encoding, id_len];
        bytes.extend(std::iter::repeat_n(b'a', usize::from(id_len)));
        bytes.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1, ty]);
        bytes.extend_from_slice(&declared.to_be_bytes());
        bytes.extend_from_slice(&body);
        if let Ok(raw) = Unverified::parse_binary(&bytes) {
            let _ = raw.decode_unverified::<Uplink>();
            let _ = raw.decode_unverified::<Downlink>();
        }
    }

    #[test]
    fn binary_body_readers_survive_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..1100)) {
        for ty in MessageType::ALL {
            let _ = Downlink::read_binary(ty, &bytes);
            let _ = Uplink::read_binary(ty, &bytes);
        }
    }

    #[test]
    fn json_parsers_survive_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = Unverified::parse_json(&bytes);
        for ty in MessageType::ALL {
            let _ = Downlink::read_json(ty, &bytes);
            let _ = Uplink::read_json(ty, &bytes);
        }
    }

    #[test]
    fn json_parsers_survive_json_shaped_text(text in r#"\{("[a-z_]{1,12}":(-?[0-9]{1,22}|"[a-z_ ]{0,12}"|null|true|\[\]|\{\}),?){0,8}\}"#) {
        let _ = Unverified::parse_json(text.as_bytes());
        for ty in MessageType::ALL {
            let _ = Downlink::read_json(ty, text.as_bytes());
            let _ = Uplink::read_json(ty, text.as_bytes());
        }
    }

    #[test]
    fn topic_parser_survives_any_text(text in ".{0,80}") {
        let _ = Topic::parse(&text);
    }
}

#[test]
fn an_impossible_length_is_refused_before_any_body_is_read() {
    let mut codec = FrameCodec::new();
    let mut buf = BytesMut::from(&[0xA5, 0x5A, 0xFF, 0xFF, 0x01][..]);
    assert_eq!(codec.decode(&mut buf).expect("no error"), None);
    assert_eq!(codec.stats().bad_length, 1);
    // It did not wait (or reserve room) for 65 535 bytes of body.
    assert!(buf.len() < 5);
    assert!(buf.capacity() < MAX_FRAME);
}

#[test]
fn an_oversized_json_payload_is_refused_before_parsing() {
    let payload = vec![b' '; MAX_JSON_ENVELOPE + 1];
    assert!(matches!(
        Unverified::parse_json(&payload),
        Err(DecodeError::TooLong(_))
    ));
}

#[test]
fn out_of_range_fields_are_refused() {
    let cases: [(MessageType, &[u8]); 7] = [
        (MessageType::Unlock, br#"{"command_id":1,"door":0}"#),
        (MessageType::Unlock, br#"{"command_id":0,"door":1}"#),
        (MessageType::Unlock, br#"{"command_id":9007199254740992,"door":1}"#),
        (MessageType::Unlock, br#"{"command_id":1,"door":513}"#),
        (MessageType::Configure, br#"{"command_id":1,"heartbeat_secs":1,"open_window_ms":5000,"pulse_ms":300,"ajar_alarm_secs":0}"#),
        (MessageType::Unlock, br#"{"command_id":1,"door":1,"expires_at_ms":0}"#),
        (MessageType::Unlock, br#"{"command_id":1}"#),
    ];
    for (ty, body) in cases {
        assert!(
            Downlink::read_json(ty, body).is_err(),
            "accepted {}",
            String::from_utf8_lossy(body)
        );
    }
    let hello = br#"{"protocol_version":1,"firmware":"fw\u00e9","serial_no":"s","door_count":1,"session":1,"uptime_ms":0}"#;
    assert!(
        Uplink::read_json(MessageType::Hello, hello).is_err(),
        "non-ASCII firmware accepted"
    );
    let heartbeat = br#"{"uptime_ms":1,"doors":[],"signal":-60}"#;
    assert!(
        Uplink::read_json(MessageType::Heartbeat, heartbeat).is_err(),
        "no doors accepted"
    );
}
