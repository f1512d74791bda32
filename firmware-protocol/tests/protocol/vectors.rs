//! The test vectors in `vectors/vectors.json` and in PROTOCOL.md: made from the code, checked
//! against the code, so neither file can drift from it. `UPDATE_VECTORS=1 cargo test -p
//! firmware-protocol` rewrites both after an intended change of the wire format.

use firmware_protocol::frame::crc16;
use firmware_protocol::*;
use serde::{Deserialize, Serialize};

use crate::helpers::{decode_all, device};
use crate::vector_messages::{SESSION, downlinks, uplinks};

const FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/vectors/vectors.json");
const DOC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/PROTOCOL.md");
const DOC_START: &str = "<!-- vectors:start (generated from vectors/vectors.json; do not edit) -->";
const DOC_END: &str = "<!-- vectors:end -->";
const ADDRESS: u8 = 7;

#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct VectorFile {
    about: String,
    pub(crate) secret: String,
    mqtt_password: String,
    password_sha256: String,
    pub(crate) tag_key: String,
    crc16_of_123456789: String,
    pub(crate) vectors: Vec<Vector>,
    /// Whole exchanges on a serial line, step by step (`exchanges.rs`).
    pub(crate) exchanges: Vec<crate::exchanges::Exchange>,
    /// The firmware update the `update_*` and `chunk*` vectors carry (PROTOCOL.md §11).
    pub(crate) update: UpdateVector,
}

/// A signed image, its manifest and its chunks.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct UpdateVector {
    about: String,
    pub(crate) vendor_secret_key: String,
    pub(crate) vendor_public_key: String,
    pub(crate) version: String,
    pub(crate) image: String,
    pub(crate) sha256: String,
    pub(crate) manifest: String,
    pub(crate) signature: String,
    pub(crate) chunk_size: u16,
    pub(crate) chunk_crc32: Vec<String>,
}

fn update_vector() -> UpdateVector {
    use crate::vector_messages as m;
    let offer = m::update_offer();
    UpdateVector {
        about: "The image of the update_offer and chunk vectors; the vendor key is RFC 8032 section 7.1 TEST 1's. chunk_crc32: CRC-32/ISO-HDLC of each chunk's data.".into(),
        vendor_secret_key: m::VENDOR_SECRET.into(),
        vendor_public_key: m::vendor_public(),
        version: offer.version.clone(),
        image: hex::encode(m::update_image()),
        sha256: hex::encode(offer.sha256),
        manifest: hex::encode(offer.manifest().expect("manifest")),
        signature: hex::encode(offer.signature),
        chunk_size: offer.chunk_size,
        chunk_crc32: (0..offer.chunk_count())
            .map(|i| format!("{:08x}", m::chunk(i).crc32))
            .collect(),
    }
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Vector {
    pub(crate) name: String,
    #[serde(rename = "type")]
    pub(crate) ty: String,
    pub(crate) type_code: String,
    pub(crate) direction: String,
    pub(crate) device_id: String,
    pub(crate) session: u32,
    pub(crate) counter: u32,
    pub(crate) bus_address: u8,
    pub(crate) body_json: String,
    pub(crate) body_binary: String,
    pub(crate) signed_binary: String,
    pub(crate) tag_binary: String,
    pub(crate) envelope_binary: String,
    pub(crate) frame: String,
    pub(crate) mqtt_topic: String,
    pub(crate) json_signed_header: String,
    pub(crate) tag_json: String,
    pub(crate) mqtt_payload: String,
}

fn updating() -> bool {
    std::env::var_os("UPDATE_VECTORS").is_some_and(|v| v == "1")
}

fn secret() -> DeviceSecret {
    let mut bytes = [0u8; 32];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = i as u8;
    }
    DeviceSecret::from_bytes(bytes)
}

fn vector<M: Payload>(name: &str, counter: u32, message: M) -> Vector {
    let key = secret().tag_key();
    let d = device("lk-0001");
    let ty = message.message_type();
    let header = Header {
        direction: M::DIRECTION,
        device_id: d,
        session: SESSION,
        counter,
    };
    let envelope = Envelope {
        header,
        message: message.clone(),
    };
    let sealed = envelope.seal_binary(&key).expect("vector seals");
    let (signed, tag) = sealed.split_at(sealed.len() - TAG_LEN);
    let mut body_binary = Vec::new();
    message.write_binary(&mut body_binary);
    let mut body_json = Vec::new();
    message.write_json(&mut body_json).expect("json");
    let frame = Frame {
        address: ADDRESS,
        envelope: sealed.clone().into(),
    }
    .to_bytes()
    .expect("frame");
    let payload = envelope.seal_json(&key).expect("vector seals");
    let parsed: serde_json::Value = serde_json::from_str(&payload).expect("json");
    let mut json_header = signed[..signed.len() - body_binary.len()].to_vec();
    json_header[2] = Encoding::Json as u8;
    let n = json_header.len();
    json_header[n - 2..].copy_from_slice(&(body_json.len() as u16).to_be_bytes());
    let topic = match M::DIRECTION {
        Direction::Down => Topic::down(d),
        Direction::Up => Topic::up(d),
    };
    Vector {
        name: name.into(),
        ty: ty.name().into(),
        type_code: format!("0x{:02x}", ty.code()),
        direction: M::DIRECTION.name().into(),
        device_id: d.to_string(),
        session: SESSION,
        counter,
        bus_address: ADDRESS,
        body_json: String::from_utf8(body_json).expect("utf-8"),
        body_binary: hex::encode(&body_binary),
        signed_binary: hex::encode(signed),
        tag_binary: hex::encode(tag),
        envelope_binary: hex::encode(&sealed),
        frame: hex::encode(&frame),
        mqtt_topic: topic.to_string(),
        json_signed_header: hex::encode(&json_header),
        tag_json: parsed["tag"].as_str().expect("tag").into(),
        mqtt_payload: payload,
    }
}

fn build() -> VectorFile {
    let s = secret();
    let mut vectors = Vec::new();
    for (i, (name, m)) in downlinks().into_iter().enumerate() {
        vectors.push(vector(name, i as u32 + 1, m));
    }
    for (i, (name, m)) in uplinks().into_iter().enumerate() {
        vectors.push(vector(name, i as u32 + 1, m));
    }
    VectorFile {
        about: "Test vectors of the locker wire protocol; see PROTOCOL.md. All byte strings are lowercase hex. Generated by the firmware-protocol tests (UPDATE_VECTORS=1).".into(),
        secret: hex::encode(s.as_bytes()),
        mqtt_password: s.mqtt_password(),
        password_sha256: hex::encode(s.digest()),
        tag_key: hex::encode(s.tag_key().as_bytes()),
        crc16_of_123456789: format!("{:04x}", crc16(b"123456789")),
        vectors,
        exchanges: crate::exchanges::build(),
        update: update_vector(),
    }
}

pub(crate) fn load() -> VectorFile {
    let text = std::fs::read_to_string(FILE).expect("vectors/vectors.json is readable");
    serde_json::from_str(&text).expect("vectors/vectors.json parses")
}

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).expect("vector hex")
}

#[test]
fn vectors_file_matches_the_code() {
    let text = serde_json::to_string_pretty(&build()).expect("json") + "\n";
    if updating() {
        std::fs::create_dir_all(concat!(env!("CARGO_MANIFEST_DIR"), "/vectors")).expect("mkdir");
        std::fs::write(FILE, &text).expect("write vectors");
    }
    let on_disk = std::fs::read_to_string(FILE).unwrap_or_default();
    assert!(
        on_disk == text,
        "vectors/vectors.json no longer matches the code; if the wire format changed on purpose, \
         run `UPDATE_VECTORS=1 cargo test -p firmware-protocol` and review the diff"
    );
}

fn check_vector<M: Payload>(file: &VectorFile, v: &Vector) {
    let key = DeviceSecret::from_hex(&file.secret)
        .expect("secret")
        .tag_key();
    let d = device(&v.device_id);
    let ty = MessageType::from_name(&v.ty).expect("type");
    assert_eq!(format!("0x{:02x}", ty.code()), v.type_code);
    let expected = M::read_json(ty, v.body_json.as_bytes()).expect("body_json reads");
    let header = Header {
        direction: Direction::from_name(&v.direction).expect("direction"),
        device_id: d,
        session: v.session,
        counter: v.counter,
    };
    // Serial: frame -> envelope -> message.
    let (frames, stats) = decode_all(&unhex(&v.frame), 5);
    assert_eq!(frames.len(), 1, "{}: frame decodes", v.name);
    assert_eq!(stats.skipped_bytes, 0);
    assert_eq!(frames[0].address, v.bus_address);
    assert_eq!(hex::encode(&frames[0].envelope), v.envelope_binary);
    let raw = Unverified::parse_binary(&frames[0].envelope).expect("envelope parses");
    let opened: Envelope<M> = raw.verify(&d, &key).expect("binary vector verifies");
    assert_eq!(opened.header, header, "{}", v.name);
    assert_eq!(opened.message, expected, "{}", v.name);
    assert_eq!(
        M::read_binary(ty, &unhex(&v.body_binary)).expect("binary body"),
        expected
    );
    assert_eq!(
        format!("{}{}", v.signed_binary, v.tag_binary),
        v.envelope_binary
    );
    // MQTT: payload -> envelope -> message, on the documented topic.
    let topic = Topic::parse(&v.mqtt_topic).expect("topic");
    assert_eq!(topic.device_id, d);
    let raw = Unverified::parse_json(v.mqtt_payload.as_bytes()).expect("payload parses");
    let opened: Envelope<M> = raw.verify(&d, &key).expect("json vector verifies");
    assert_eq!(opened.header, header, "{}", v.name);
    assert_eq!(opened.message, expected, "{}", v.name);
}

fn for_each_vector(mut check: impl FnMut(&VectorFile, &Vector, Direction)) {
    let file = load();
    assert!(!file.vectors.is_empty());
    for v in &file.vectors {
        let direction = Direction::from_name(&v.direction).expect("direction");
        check(&file, v, direction);
    }
}

#[test]
fn vectors_decode_to_their_messages_on_both_transports() {
    for_each_vector(|file, v, direction| match direction {
        Direction::Down => check_vector::<Downlink>(file, v),
        Direction::Up => check_vector::<Uplink>(file, v),
    });
}

#[test]
fn every_message_type_has_a_vector() {
    let file = load();
    for ty in MessageType::ALL {
        assert!(
            file.vectors.iter().any(|v| v.ty == ty.name()),
            "no vector for {}",
            ty.name()
        );
    }
}

#[test]
fn derived_keys_and_crc_match_the_file() {
    let file = load();
    let s = DeviceSecret::from_hex(&file.secret).expect("secret");
    assert_eq!(file.mqtt_password, s.mqtt_password());
    assert_eq!(file.password_sha256, hex::encode(s.digest()));
    assert_eq!(file.tag_key, hex::encode(s.tag_key().as_bytes()));
    // The standard check value of CRC-16/MODBUS.
    assert_eq!(file.crc16_of_123456789, "4b37");
}

/// Does anything in these bytes still verify as a message for the vector's device?
fn accepted(bytes: &[u8], v: &Vector, key: &DeviceKey, direction: Direction) -> bool {
    let d = device(&v.device_id);
    let verify = |raw: &Unverified<'_>| match direction {
        Direction::Down => raw.verify::<Downlink>(&d, key).is_ok(),
        Direction::Up => raw.verify::<Uplink>(&d, key).is_ok(),
    };
    Unverified::parse_binary(bytes).is_ok_and(|raw| verify(&raw))
}

fn accepted_json(bytes: &[u8], v: &Vector, key: &DeviceKey, direction: Direction) -> bool {
    let d = device(&v.device_id);
    Unverified::parse_json(bytes).is_ok_and(|raw| match direction {
        Direction::Down => raw.verify::<Downlink>(&d, key).is_ok(),
        Direction::Up => raw.verify::<Uplink>(&d, key).is_ok(),
    })
}

#[test]
fn every_single_bit_flip_of_every_vector_is_refused() {
    for_each_vector(|file, v, direction| {
        let key = DeviceSecret::from_hex(&file.secret)
            .expect("secret")
            .tag_key();
        let frame = unhex(&v.frame);
        for bit in 0..frame.len() * 8 {
            let mut flipped = frame.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            let (frames, _) = decode_all(&flipped, flipped.len());
            assert!(
                frames
                    .iter()
                    .all(|f| !accepted(&f.envelope, v, &key, direction)),
                "{}: frame with bit {bit} flipped was accepted",
                v.name
            );
        }
        let envelope = unhex(&v.envelope_binary);
        for bit in 0..envelope.len() * 8 {
            let mut flipped = envelope.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert!(
                !accepted(&flipped, v, &key, direction),
                "{}: envelope bit {bit}",
                v.name
            );
        }
        let payload = v.mqtt_payload.as_bytes();
        for bit in 0..payload.len() * 8 {
            let mut flipped = payload.to_vec();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert!(
                !accepted_json(&flipped, v, &key, direction),
                "{}: payload bit {bit}",
                v.name
            );
        }
    });
}

#[test]
fn truncated_vectors_are_refused() {
    for_each_vector(|file, v, direction| {
        let key = DeviceSecret::from_hex(&file.secret)
            .expect("secret")
            .tag_key();
        let frame = unhex(&v.frame);
        for len in 0..frame.len() {
            let (frames, _) = decode_all(&frame[..len], len.max(1));
            assert!(frames.is_empty(), "{}: frame cut at {len} decoded", v.name);
        }
        let envelope = unhex(&v.envelope_binary);
        for len in 0..envelope.len() {
            assert!(
                !accepted(&envelope[..len], v, &key, direction),
                "{}: envelope cut at {len}",
                v.name
            );
        }
        let payload = v.mqtt_payload.as_bytes();
        for len in 0..payload.len() {
            assert!(
                !accepted_json(&payload[..len], v, &key, direction),
                "{}: payload cut at {len}",
                v.name
            );
        }
    });
}

fn spaced(hex_text: &str) -> String {
    hex_text
        .as_bytes()
        .chunks(2)
        .map(|pair| std::str::from_utf8(pair).unwrap_or("??"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The vectors section of PROTOCOL.md, rendered from the vectors file.
fn render(file: &VectorFile) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "All vectors use device `lk-0001`, session `{SESSION}` (`0x{SESSION:08x}`), bus address `{ADDRESS}` and this provisioning secret:\n\n\
         ```text\nsecret          {}\nmqtt password   {}\nsha256(secret)  {}\ntag key         {}\n```\n\n\
         CRC-16/MODBUS of the ASCII bytes `123456789` is `0x{}` (sent as `{} {}`).\n",
        file.secret,
        file.mqtt_password,
        file.password_sha256,
        file.tag_key,
        file.crc16_of_123456789,
        &file.crc16_of_123456789[2..],
        &file.crc16_of_123456789[..2],
    ));
    for v in &file.vectors {
        let frame = unhex(&v.frame);
        let env_len = frame.len() - 7;
        let frame_hex = hex::encode(&frame);
        let (head, rest) = frame_hex.split_at(10);
        let (envelope, crc) = rest.split_at(env_len * 2);
        out.push_str(&format!(
            "\n### `{}` ({}, type `{}` = `{}`, counter {})\n\n\
             JSON body (MQTT):\n\n```json\n{}\n```\n\n\
             Binary body (serial): `{}`\n\n\
             Binary envelope, signed bytes then tag:\n\n```text\n{}\n{}\n```\n\n\
             Serial frame: start, length, address | envelope | CRC:\n\n```text\n{}\n{}\n{}\n```\n\n\
             MQTT topic `{}`; signed header for JSON `{}`; payload:\n\n```json\n{}\n```\n",
            v.name,
            v.direction,
            v.ty,
            v.type_code,
            v.counter,
            v.body_json,
            if v.body_binary.is_empty() {
                "(empty)".to_string()
            } else {
                spaced(&v.body_binary)
            },
            spaced(&v.signed_binary),
            spaced(&v.tag_binary),
            spaced(head),
            spaced(envelope),
            spaced(crc),
            v.mqtt_topic,
            spaced(&v.json_signed_header),
            v.mqtt_payload,
        ));
    }
    out.push_str(&crate::exchanges::render(&file.exchanges));
    out
}

#[test]
fn protocol_md_shows_the_current_vectors() {
    let doc = std::fs::read_to_string(DOC).expect("PROTOCOL.md is readable");
    let (Some(start), Some(end)) = (doc.find(DOC_START), doc.find(DOC_END)) else {
        panic!("PROTOCOL.md lacks the vector markers");
    };
    let file = load();
    // The worked example of §4.2 is hand-written: it must still be the `unlock` vector.
    let unlock = file
        .vectors
        .iter()
        .find(|v| v.name == "unlock")
        .expect("unlock vector");
    let body_at = unlock.signed_binary.len() - unlock.body_binary.len();
    for part in [
        &unlock.signed_binary[..body_at],
        &unlock.body_binary[..],
        &unlock.tag_binary[..],
    ] {
        assert!(
            doc[..start].contains(&spaced(part)),
            "the worked example in PROTOCOL.md §4.2 no longer shows the unlock vector: {}",
            spaced(part)
        );
    }
    let section = format!("\n{}\n", render(&file));
    let current = &doc[start + DOC_START.len()..end];
    if updating() && current != section {
        let updated = format!("{}{}{}{}", &doc[..start], DOC_START, section, &doc[end..]);
        std::fs::write(DOC, updated).expect("write PROTOCOL.md");
        return;
    }
    assert!(
        current == section,
        "PROTOCOL.md's vectors differ from vectors/vectors.json; run `UPDATE_VECTORS=1 cargo test -p firmware-protocol`"
    );
}
