//! The messages the test vectors show (`vectors/vectors.json`, PROTOCOL.md §10): one of every
//! type and variant, in the order of the file; each vector's counter is its place in its list.

use firmware_protocol::*;

use crate::helpers::command_id;

/// The session every vector is in.
pub const SESSION: u32 = 0x5EED_0001;

pub fn doors() -> Vec<DoorStatus> {
    vec![
        DoorStatus {
            sensor: DoorSensor::Closed,
            locked: true,
            occupied: None,
        },
        DoorStatus {
            sensor: DoorSensor::Open,
            locked: false,
            occupied: Some(false),
        },
        DoorStatus {
            sensor: DoorSensor::Closed,
            locked: true,
            occupied: Some(true),
        },
        DoorStatus {
            sensor: DoorSensor::Unknown,
            locked: true,
            occupied: None,
        },
    ]
}

pub fn downlinks() -> Vec<(&'static str, Downlink)> {
    vec![
        (
            "unlock",
            Downlink::Unlock(Unlock {
                command_id: command_id(42),
                door: 3,
                expires_at_ms: None,
            }),
        ),
        (
            "unlock_with_expiry",
            Downlink::Unlock(Unlock {
                command_id: command_id(43),
                door: 12,
                expires_at_ms: Some(3_600_000),
            }),
        ),
        (
            "query_state",
            Downlink::QueryState(QueryState { query_id: 7 }),
        ),
        (
            "configure",
            Downlink::Configure(Configure {
                command_id: command_id(44),
                heartbeat_secs: 60,
                open_window_ms: 10_000,
                pulse_ms: 300,
                ajar_alarm_secs: 120,
                expires_at_ms: None,
            }),
        ),
        ("ping", Downlink::Ping),
        ("poll", Downlink::Poll(Poll { ack_counter: 3 })),
        ("update_offer", Downlink::UpdateOffer(update_offer())),
        ("chunk", Downlink::Chunk(chunk(0))),
        (
            "install",
            Downlink::Install(Install {
                update_id: UPDATE_ID,
            }),
        ),
    ]
}

/// The update the vectors show: a 40-byte image in chunks of 16 bytes.
pub const UPDATE_ID: u32 = 31;
/// Its version.
pub const UPDATE_VERSION: &str = "2.1.0";
/// Its chunk size.
pub const UPDATE_CHUNK: u16 = 16;
/// The vendor's signing key: RFC 8032 §7.1 TEST 1's secret key (its public key is
/// d75a9801…511a).
pub const VENDOR_SECRET: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";

/// The image: 40 bytes.
pub fn update_image() -> Vec<u8> {
    (0..40u8)
        .map(|i| i.wrapping_mul(37).wrapping_add(11))
        .collect()
}

fn vendor_key() -> ed25519_dalek::SigningKey {
    let mut secret = [0u8; 32];
    hex::decode_to_slice(VENDOR_SECRET, &mut secret).expect("hex");
    ed25519_dalek::SigningKey::from_bytes(&secret)
}

/// The vendor's public key, hex.
pub fn vendor_public() -> String {
    hex::encode(vendor_key().verifying_key().as_bytes())
}

/// The offer of [`update_image`], signed with [`VENDOR_SECRET`].
pub fn update_offer() -> UpdateOffer {
    use ed25519_dalek::Signer;
    let image = update_image();
    let sha256 = image::digest(&image);
    let manifest = image::manifest(UPDATE_VERSION, image.len() as u64, &sha256).expect("manifest");
    UpdateOffer {
        update_id: UPDATE_ID,
        version: UPDATE_VERSION.into(),
        size: image.len() as u32,
        sha256,
        signature: vendor_key().sign(&manifest).to_bytes(),
        chunk_size: UPDATE_CHUNK,
    }
}

/// Chunk `index` of [`update_image`].
pub fn chunk(index: u32) -> Chunk {
    let image = update_image();
    let start = index as usize * usize::from(UPDATE_CHUNK);
    let data = image[start..(start + usize::from(UPDATE_CHUNK)).min(image.len())].to_vec();
    Chunk {
        update_id: UPDATE_ID,
        index,
        crc32: update::chunk_crc(&data),
        data,
    }
}

fn report(status: UpdateStatus) -> Uplink {
    Uplink::UpdateReport(UpdateReport {
        update_id: UPDATE_ID,
        version: UPDATE_VERSION.into(),
        status,
    })
}

pub fn uplinks() -> Vec<(&'static str, Uplink)> {
    vec![
        (
            "hello",
            Uplink::Hello(Hello {
                protocol_version: OLDEST_PROTOCOL_VERSION,
                firmware: "1.4.2".into(),
                serial_no: "LKR-2026-000123".into(),
                door_count: 4,
                session: SESSION,
                uptime_ms: 12_345,
                max_chunk: None,
            }),
        ),
        (
            "heartbeat",
            Uplink::Heartbeat(Heartbeat {
                uptime_ms: 60_000,
                doors: doors(),
                signal: Some(-67),
            }),
        ),
        (
            "ack_executed",
            Uplink::Ack(Ack {
                command_id: command_id(42),
                result: CommandResult::Executed,
            }),
        ),
        (
            "ack_refused",
            Uplink::Ack(Ack {
                command_id: command_id(43),
                result: CommandResult::Refused(RefuseReason::NoSuchDoor),
            }),
        ),
        (
            "door_event_commanded",
            Uplink::DoorEvent(DoorEvent {
                door: 3,
                state: DoorMotion::Opened,
                cause: DoorCause::Commanded(command_id(42)),
                uptime_ms: 61_250,
            }),
        ),
        (
            "door_event_uncommanded",
            Uplink::DoorEvent(DoorEvent {
                door: 2,
                state: DoorMotion::Opened,
                cause: DoorCause::Uncommanded,
                uptime_ms: 70_000,
            }),
        ),
        (
            "alarm",
            Uplink::Alarm(Alarm {
                kind: AlarmKind::ForcedOpen,
                door: Some(2),
                uptime_ms: 70_001,
            }),
        ),
        (
            "alarm_cabinet",
            Uplink::Alarm(Alarm {
                kind: AlarmKind::PowerLoss,
                door: None,
                uptime_ms: 80_000,
            }),
        ),
        (
            "state_report",
            Uplink::StateReport(StateReport {
                query_id: 7,
                doors: doors(),
                recent: vec![
                    Ack {
                        command_id: command_id(42),
                        result: CommandResult::Executed,
                    },
                    Ack {
                        command_id: command_id(43),
                        result: CommandResult::Refused(RefuseReason::NoSuchDoor),
                    },
                    Ack {
                        command_id: command_id(44),
                        result: CommandResult::Executed,
                    },
                ],
                door_results: Vec::new(),
            }),
        ),
        ("pong", Uplink::Pong),
        (
            "state_report_v2",
            Uplink::StateReport(StateReport {
                query_id: 8,
                doors: doors(),
                recent: vec![
                    Ack {
                        command_id: command_id(42),
                        result: CommandResult::Executed,
                    },
                    Ack {
                        command_id: command_id(45),
                        result: CommandResult::Executed,
                    },
                ],
                door_results: vec![
                    UnlockDoor {
                        command_id: command_id(42),
                        door: DoorOutcome::Opened,
                    },
                    UnlockDoor {
                        command_id: command_id(45),
                        door: DoorOutcome::NotOpened,
                    },
                ],
            }),
        ),
        (
            "hello_v2",
            Uplink::Hello(Hello {
                protocol_version: PROTOCOL_VERSION,
                firmware: "2.0.0".into(),
                serial_no: "LKR-2026-000123".into(),
                door_count: 4,
                session: SESSION,
                uptime_ms: 12_345,
                max_chunk: None,
            }),
        ),
        (
            "hello_updates",
            Uplink::Hello(Hello {
                protocol_version: PROTOCOL_VERSION,
                firmware: "2.0.0".into(),
                serial_no: "LKR-2026-000123".into(),
                door_count: 4,
                session: SESSION,
                uptime_ms: 12_345,
                max_chunk: Some(512),
            }),
        ),
        (
            "chunk_request",
            Uplink::ChunkRequest(ChunkRequest {
                update_id: UPDATE_ID,
                index: 1,
            }),
        ),
        (
            "update_report_refused",
            report(UpdateStatus::Refused(UpdateFailure::BadSignature)),
        ),
        ("update_report_downloaded", report(UpdateStatus::Downloaded)),
        ("update_report_installing", report(UpdateStatus::Installing)),
        ("update_report_installed", report(UpdateStatus::Installed)),
        (
            "update_report_failed",
            report(UpdateStatus::Failed(UpdateFailure::BadHash)),
        ),
        (
            "update_report_rolled_back",
            report(UpdateStatus::RolledBack),
        ),
    ]
}
