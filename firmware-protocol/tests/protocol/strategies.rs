//! proptest strategies that produce every valid message.

use firmware_protocol::*;
use proptest::prelude::*;

pub fn device_id() -> impl Strategy<Value = DeviceId> {
    "[A-Za-z0-9_-]{1,32}".prop_map(|s| DeviceId::new(&s).expect("regex gives valid ids"))
}

fn command_id() -> impl Strategy<Value = CommandId> {
    (1..=MAX_SAFE_INTEGER).prop_map(|n| CommandId::new(n).expect("in range"))
}

fn door() -> impl Strategy<Value = u16> {
    1..=MAX_DOORS
}

fn uptime() -> impl Strategy<Value = u64> {
    0..=MAX_SAFE_INTEGER
}

fn expiry() -> impl Strategy<Value = Option<u64>> {
    proptest::option::of(1..=MAX_SAFE_INTEGER)
}

fn text() -> impl Strategy<Value = String> {
    "[ -~]{1,32}"
}

fn door_status() -> impl Strategy<Value = DoorStatus> {
    (
        prop_oneof![
            Just(DoorSensor::Open),
            Just(DoorSensor::Closed),
            Just(DoorSensor::Unknown)
        ],
        any::<bool>(),
        proptest::option::of(any::<bool>()),
    )
        .prop_map(|(sensor, locked, occupied)| DoorStatus {
            sensor,
            locked,
            occupied,
        })
}

fn doors() -> impl Strategy<Value = Vec<DoorStatus>> {
    prop_oneof![
        4 => proptest::collection::vec(door_status(), 1..=48),
        1 => proptest::collection::vec(door_status(), 1..=usize::from(MAX_DOORS)),
    ]
}

fn result() -> impl Strategy<Value = CommandResult> {
    prop_oneof![
        Just(CommandResult::Executed),
        proptest::sample::select(RefuseReason::ALL.to_vec()).prop_map(CommandResult::Refused),
    ]
}

fn unlock_door() -> impl Strategy<Value = UnlockDoor> {
    (
        command_id(),
        proptest::sample::select(DoorOutcome::ALL.to_vec()),
    )
        .prop_map(|(command_id, door)| UnlockDoor { command_id, door })
}

fn ack() -> impl Strategy<Value = Ack> {
    (command_id(), result()).prop_map(|(command_id, result)| Ack { command_id, result })
}

pub fn downlink() -> impl Strategy<Value = Downlink> {
    prop_oneof![
        (command_id(), door(), expiry()).prop_map(|(command_id, door, expires_at_ms)| {
            Downlink::Unlock(Unlock {
                command_id,
                door,
                expires_at_ms,
            })
        }),
        any::<u32>().prop_map(|query_id| Downlink::QueryState(QueryState { query_id })),
        (
            command_id(),
            5u16..=3600,
            1000u16..=60000,
            50u16..=5000,
            prop_oneof![Just(0u16), 10u16..=3600],
            expiry()
        )
            .prop_map(|(command_id, hb, window, pulse, ajar, expires_at_ms)| {
                Downlink::Configure(Configure {
                    command_id,
                    heartbeat_secs: hb,
                    open_window_ms: window,
                    pulse_ms: pulse,
                    ajar_alarm_secs: ajar,
                    expires_at_ms,
                })
            }),
        Just(Downlink::Ping),
        any::<u32>().prop_map(|ack_counter| Downlink::Poll(Poll { ack_counter })),
        (
            1..=u32::MAX,
            text(),
            1..=update::MAX_IMAGE,
            any::<[u8; 32]>(),
            proptest::collection::vec(any::<u8>(), 64),
            update::MIN_CHUNK..=update::MAX_BINARY_CHUNK
        )
            .prop_map(
                |(update_id, version, size, sha256, signature, chunk_size)| {
                    Downlink::UpdateOffer(UpdateOffer {
                        update_id,
                        version,
                        size,
                        sha256,
                        signature: signature.try_into().expect("64 bytes"),
                        chunk_size,
                    })
                }
            ),
        (
            1..=u32::MAX,
            any::<u32>(),
            proptest::collection::vec(any::<u8>(), 1..=usize::from(update::MAX_BINARY_CHUNK))
        )
            .prop_map(|(update_id, index, data)| Downlink::Chunk(Chunk {
                update_id,
                index,
                crc32: update::chunk_crc(&data),
                data,
            })),
        (1..=u32::MAX).prop_map(|update_id| Downlink::Install(Install { update_id })),
    ]
}

fn update_status() -> impl Strategy<Value = UpdateStatus> {
    let reason = proptest::sample::select(UpdateFailure::ALL.to_vec());
    prop_oneof![
        reason.clone().prop_map(UpdateStatus::Refused),
        Just(UpdateStatus::Downloaded),
        Just(UpdateStatus::Installing),
        Just(UpdateStatus::Installed),
        reason.prop_map(UpdateStatus::Failed),
        Just(UpdateStatus::RolledBack),
    ]
}

pub fn uplink() -> impl Strategy<Value = Uplink> {
    prop_oneof![
        (
            text(),
            text(),
            1..=MAX_DOORS,
            1..=u32::MAX,
            uptime(),
            proptest::option::of(update::MIN_CHUNK..=update::MAX_CHUNK)
        )
            .prop_map(
                |(firmware, serial_no, door_count, session, uptime_ms, max_chunk)| {
                    Uplink::Hello(Hello {
                        protocol_version: PROTOCOL_VERSION,
                        firmware,
                        serial_no,
                        door_count,
                        session,
                        uptime_ms,
                        max_chunk,
                    })
                }
            ),
        (uptime(), doors(), proptest::option::of(-127i8..=127)).prop_map(
            |(uptime_ms, doors, signal)| Uplink::Heartbeat(Heartbeat {
                uptime_ms,
                doors,
                signal
            })
        ),
        ack().prop_map(Uplink::Ack),
        (
            door(),
            prop_oneof![Just(DoorMotion::Opened), Just(DoorMotion::Closed)],
            prop_oneof![
                Just(DoorCause::Uncommanded),
                command_id().prop_map(DoorCause::Commanded)
            ],
            uptime()
        )
            .prop_map(
                |(door, state, cause, uptime_ms)| Uplink::DoorEvent(DoorEvent {
                    door,
                    state,
                    cause,
                    uptime_ms
                })
            ),
        (
            proptest::sample::select(AlarmKind::ALL.to_vec()),
            proptest::option::of(door()),
            uptime()
        )
            .prop_map(|(kind, door, uptime_ms)| Uplink::Alarm(Alarm {
                kind,
                door,
                uptime_ms
            })),
        (
            any::<u32>(),
            doors(),
            proptest::collection::vec(ack(), 0..=MAX_RECENT),
            proptest::collection::vec(unlock_door(), 0..=MAX_RECENT)
        )
            .prop_map(
                |(query_id, doors, recent, door_results)| Uplink::StateReport(StateReport {
                    query_id,
                    doors,
                    recent,
                    door_results
                })
            ),
        Just(Uplink::Pong),
        (1..=u32::MAX, any::<u32>()).prop_map(|(update_id, index)| {
            Uplink::ChunkRequest(ChunkRequest { update_id, index })
        }),
        (1..=u32::MAX, text(), update_status()).prop_map(|(update_id, version, status)| {
            Uplink::UpdateReport(UpdateReport {
                update_id,
                version,
                status,
            })
        }),
    ]
}

/// A sealed downlink envelope with its key.
pub fn down_envelope() -> impl Strategy<Value = Envelope<Downlink>> {
    (device_id(), any::<u32>(), any::<u32>(), downlink()).prop_map(
        |(device_id, session, counter, message)| Envelope {
            header: Header {
                direction: Direction::Down,
                device_id,
                session,
                counter,
            },
            message,
        },
    )
}

/// An uplink envelope; a `Hello`'s header carries the session it announces.
pub fn up_envelope() -> impl Strategy<Value = Envelope<Uplink>> {
    (device_id(), 1..=u32::MAX, any::<u32>(), uplink()).prop_map(
        |(device_id, session, counter, message)| {
            let session = match &message {
                Uplink::Hello(hello) => hello.session,
                _ => session,
            };
            Envelope {
                header: Header {
                    direction: Direction::Up,
                    device_id,
                    session,
                    counter,
                },
                message,
            }
        },
    )
}
