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
    ]
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
            }),
        ),
    ]
}
