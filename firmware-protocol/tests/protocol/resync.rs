//! A stream with junk before, between and inside frames still yields every intact frame.

use firmware_protocol::*;
use proptest::prelude::*;

use crate::helpers::{decode_all, frame_bytes, key};
use crate::strategies::up_envelope;

/// Junk that is especially confusing: start markers, plausible lengths, random bytes.
fn junk() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        prop_oneof![
            3 => any::<u8>(),
            1 => Just(0xA5),
            1 => Just(0x5A),
            1 => Just(0x00),
        ],
        0..120,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_intact_frame_survives_junk(
        items in proptest::collection::vec((up_envelope(), 1u8..=247, junk(), any::<bool>(), any::<prop::sample::Index>()), 1..8),
        lead in junk(),
        chunk in 1usize..128,
    ) {
        let k = key(9);
        let mut stream = lead;
        let mut intact = Vec::new();
        let mut damaged = Vec::new();
        for (env, address, junk, corrupt, at) in &items {
            let sealed = env.seal_binary(&k).expect("seals");
            let mut frame = frame_bytes(*address, sealed.clone());
            if *corrupt && !junk.is_empty() {
                // Junk inside the frame: it is lost, the others must not be.
                let at = at.index(frame.len() - 1) + 1;
                frame.splice(at..at, junk.iter().copied());
                // Junk that lands just after the first start byte can leave the frame whole.
                damaged.push(sealed);
            } else {
                intact.push((*address, sealed));
                frame.extend_from_slice(junk);
            }
            stream.extend_from_slice(&frame);
        }
        let (frames, _) = decode_all(&stream, chunk);
        // Every intact frame comes out, in order. Anything else that comes out is a damaged frame
        // that survived, or junk that happens to carry a valid CRC but is no valid envelope.
        let mut want = intact.iter().peekable();
        for frame in &frames {
            match want.peek() {
                Some((address, sealed)) if frame.address == *address && frame.envelope[..] == sealed[..] => {
                    want.next();
                }
                _ if damaged.iter().any(|d| frame.envelope[..] == d[..]) => {}
                _ => {
                    let raw = Unverified::parse_binary(&frame.envelope);
                    prop_assert!(raw.is_err() || raw.is_ok_and(|r| r.verify::<Uplink>(&r.header().device_id, &k).is_err()));
                }
            }
        }
        prop_assert!(want.next().is_none(), "an intact frame was lost");
    }
}

#[test]
fn junk_before_between_and_inside_is_counted() {
    let k = key(4);
    let env = |counter| Envelope {
        header: Header {
            direction: Direction::Up,
            device_id: DeviceId::new("board-7").expect("id"),
            session: 77,
            counter,
        },
        message: Uplink::Pong,
    };
    let one = frame_bytes(7, env(1).seal_binary(&k).expect("seals"));
    let two = frame_bytes(7, env(2).seal_binary(&k).expect("seals"));
    let three = frame_bytes(7, env(3).seal_binary(&k).expect("seals"));
    let mut broken = two.clone();
    broken[10] ^= 0x40;
    let mut stream = vec![0x00, 0xA5, 0x13, 0xA5, 0x5A, 0xFF];
    stream.extend_from_slice(&one);
    stream.extend_from_slice(&[0x5A, 0xA5]);
    stream.extend_from_slice(&broken);
    stream.extend_from_slice(&three);
    let (frames, stats) = decode_all(&stream, 3);
    let got: Vec<_> = frames.iter().map(|f| f.envelope.to_vec()).collect();
    assert_eq!(
        got,
        vec![
            one[5..one.len() - 2].to_vec(),
            three[5..three.len() - 2].to_vec()
        ]
    );
    assert!(stats.bad_crc >= 1, "{stats:?}");
    assert!(stats.skipped_bytes > 0, "{stats:?}");
    assert_eq!(stats.frames, 2);
}

#[test]
fn a_corrupted_length_at_the_end_does_not_swallow_later_frames() {
    let k = key(5);
    let env = Envelope {
        header: Header {
            direction: Direction::Up,
            device_id: DeviceId::new("b").expect("id"),
            session: 1,
            counter: 1,
        },
        message: Uplink::Pong,
    };
    let good = frame_bytes(3, env.seal_binary(&k).expect("seals"));
    // A start marker with a large (valid-looking) length, then one intact frame, then silence.
    let mut stream = vec![0xA5, 0x5A, 0x04, 0x00, 0x03];
    stream.extend_from_slice(&good);
    let (frames, _) = decode_all(&stream, stream.len());
    assert_eq!(
        frames.len(),
        1,
        "the frame behind a stale partial one was lost"
    );
}
