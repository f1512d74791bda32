//! The AsyncAPI document against the protocol and the events: every message the protocol crate
//! seals matches its documented envelope and body, the documented locker messages are exactly
//! the protocol's, every event type has its channel, and every event a full scenario wrote
//! matches its documented data.

use firmware_protocol::{
    Ack, Alarm, AlarmKind, CommandId, CommandResult, Configure, DeviceId, DeviceSecret, Direction,
    DoorCause, DoorEvent, DoorMotion, DoorSensor, DoorStatus, Downlink, Envelope, Header,
    Heartbeat, Hello, MessageType, Poll, QueryState, RefuseReason, StateReport, Unlock, Uplink,
};
use serde_json::{Value, json};
use simulator::mqtt::Knob;
use sqlx::{PgPool, Row};

use crate::accounts::operator;
use crate::command_helpers::online_locker;
use crate::contract::check;
use crate::helpers::spawn_app_with;
use crate::rentals::{funded, plan, rent};

fn doc() -> Value {
    locker_gateway::api::asyncapi::document()
}

fn header(direction: Direction) -> Header {
    Header {
        direction,
        device_id: DeviceId::new("lk-1").expect("id"),
        session: 7,
        counter: 42,
    }
}

fn id(n: u64) -> CommandId {
    CommandId::new(n).expect("command id")
}

fn downlinks() -> Vec<Downlink> {
    let configure = Configure {
        command_id: id(2),
        heartbeat_secs: 30,
        open_window_ms: 3000,
        pulse_ms: 300,
        ajar_alarm_secs: 120,
        expires_at_ms: None,
    };
    vec![
        Downlink::Unlock(Unlock {
            command_id: id(1),
            door: 3,
            expires_at_ms: None,
        }),
        Downlink::Unlock(Unlock {
            command_id: id(1),
            door: 3,
            expires_at_ms: Some(1_800_000_000_000),
        }),
        Downlink::QueryState(QueryState { query_id: 9 }),
        Downlink::Configure(configure.clone()),
        Downlink::Configure(Configure {
            expires_at_ms: Some(1_800_000_000_000),
            ..configure
        }),
        Downlink::Ping,
        Downlink::Poll(Poll { ack_counter: 5 }),
        Downlink::UpdateOffer(firmware_protocol::UpdateOffer {
            update_id: 3,
            version: "2.1.0".into(),
            size: 40,
            sha256: [7; 32],
            signature: [9; 64],
            chunk_size: 16,
        }),
        Downlink::Chunk(firmware_protocol::Chunk {
            update_id: 3,
            index: 1,
            crc32: firmware_protocol::update::chunk_crc(b"sixteen bytes..."),
            data: b"sixteen bytes...".to_vec(),
        }),
        Downlink::Install(firmware_protocol::Install { update_id: 3 }),
    ]
}

fn uplinks() -> Vec<Uplink> {
    let doors = vec![
        DoorStatus {
            sensor: DoorSensor::Closed,
            locked: true,
            occupied: None,
        },
        DoorStatus {
            sensor: DoorSensor::Open,
            locked: false,
            occupied: Some(true),
        },
    ];
    let executed = Ack {
        command_id: id(1),
        result: CommandResult::Executed,
    };
    let refused = Ack {
        command_id: id(2),
        result: CommandResult::Refused(RefuseReason::Busy),
    };
    vec![
        Uplink::Hello(Hello {
            protocol_version: 1,
            firmware: "1.2.3".into(),
            serial_no: "SN1".into(),
            door_count: 4,
            session: 7,
            uptime_ms: 10,
            max_chunk: Some(512),
        }),
        Uplink::Heartbeat(Heartbeat {
            uptime_ms: 1000,
            doors: doors.clone(),
            signal: None,
        }),
        Uplink::Heartbeat(Heartbeat {
            uptime_ms: 1000,
            doors: doors.clone(),
            signal: Some(-70),
        }),
        Uplink::Ack(executed),
        Uplink::Ack(refused),
        Uplink::DoorEvent(DoorEvent {
            door: 1,
            state: DoorMotion::Opened,
            cause: DoorCause::Commanded(id(1)),
            uptime_ms: 5,
        }),
        Uplink::DoorEvent(DoorEvent {
            door: 1,
            state: DoorMotion::Closed,
            cause: DoorCause::Uncommanded,
            uptime_ms: 6,
        }),
        Uplink::Alarm(Alarm {
            kind: AlarmKind::ForcedOpen,
            door: Some(2),
            uptime_ms: 7,
        }),
        Uplink::Alarm(Alarm {
            kind: AlarmKind::PowerLoss,
            door: None,
            uptime_ms: 8,
        }),
        Uplink::StateReport(StateReport {
            query_id: 9,
            doors,
            recent: vec![executed, refused],
            door_results: vec![firmware_protocol::UnlockDoor {
                command_id: executed.command_id,
                door: firmware_protocol::DoorOutcome::Opened,
            }],
        }),
        Uplink::Pong,
        Uplink::ChunkRequest(firmware_protocol::ChunkRequest {
            update_id: 3,
            index: 2,
        }),
        Uplink::UpdateReport(firmware_protocol::UpdateReport {
            update_id: 3,
            version: "2.1.0".into(),
            status: firmware_protocol::UpdateStatus::Failed(
                firmware_protocol::UpdateFailure::BadHash,
            ),
        }),
        Uplink::UpdateReport(firmware_protocol::UpdateReport {
            update_id: 3,
            version: "2.1.0".into(),
            status: firmware_protocol::UpdateStatus::Installed,
        }),
    ]
}

#[test]
fn every_protocol_message_matches_its_documented_envelope_and_body() {
    let doc = doc();
    let key = DeviceSecret::from_bytes([5; 32]).tag_key();
    let mut seen = std::collections::BTreeSet::new();
    let mut sealed = Vec::new();
    for message in downlinks() {
        seen.insert(message.message_type().name());
        let envelope = Envelope {
            header: header(Direction::Down),
            message,
        };
        sealed.push(envelope.seal_json(&key).expect("seals"));
    }
    for message in uplinks() {
        seen.insert(message.message_type().name());
        let envelope = Envelope {
            header: header(Direction::Up),
            message,
        };
        sealed.push(envelope.seal_json(&key).expect("seals"));
    }
    let every: std::collections::BTreeSet<&str> =
        MessageType::ALL.iter().map(|t| t.name()).collect();
    assert_eq!(seen, every, "a message type has no sample here");
    for text in sealed {
        let value: Value = serde_json::from_str(&text).expect("JSON envelope");
        let name = value["type"].as_str().expect("type");
        let schema = &doc["components"]["messages"][name]["payload"];
        assert!(schema.is_object(), "{name} is not documented");
        if let Err(e) = check(&doc, schema, &value, name) {
            panic!("{e}\n{text}");
        }
    }
    // The locker channels carry exactly the protocol's messages, by direction.
    for (channel, direction) in [("lockerUp", Direction::Up), ("lockerDown", Direction::Down)] {
        let documented: std::collections::BTreeSet<&str> = doc["channels"][channel]["messages"]
            .as_object()
            .expect("messages")
            .keys()
            .map(String::as_str)
            .collect();
        let protocol: std::collections::BTreeSet<&str> = MessageType::ALL
            .iter()
            .filter(|t| t.direction() == direction)
            .map(|t| t.name())
            .collect();
        assert_eq!(documented, protocol, "{channel}");
    }
    // Presence and the last will.
    let presence = &doc["components"]["messages"]["presence"]["payload"];
    for payload in [
        json!({ "online": true, "session": 7 }),
        json!({ "online": false }),
    ] {
        check(&doc, presence, &payload, "presence").expect("presence");
        let parsed = firmware_protocol::Presence::parse(payload.to_string().as_bytes());
        assert!(parsed.is_ok(), "the protocol reads {payload}");
    }
    let will = &doc["servers"]["gateway"]["bindings"]["mqtt"]["lastWill"];
    assert_eq!(will["topic"], "lockers/{device_id}/status");
    assert_eq!(
        (will["qos"].as_u64(), will["retain"].as_bool()),
        (Some(1), Some(true))
    );
    let status = &doc["operations"]["lockerSendsPresence"]["bindings"]["mqtt"];
    assert_eq!(status["retain"], true);
    let down = &doc["operations"]["gatewaySendsDownlinks"]["bindings"]["mqtt"];
    assert_eq!(
        (down["qos"].as_u64(), down["retain"].as_bool()),
        (Some(1), Some(false))
    );
}

#[test]
fn every_event_type_written_in_the_code_has_a_channel() {
    let doc = doc();
    for event_type in locker_gateway::events::TYPES {
        let channel = doc["channels"]
            .as_object()
            .expect("channels")
            .values()
            .find(|c| c["address"] == format!("events/{event_type}"));
        assert!(channel.is_some(), "no channel for {event_type}");
        assert!(
            locker_gateway::api::asyncapi::event_data(event_type).is_some(),
            "no data schema for {event_type}"
        );
    }
    // Every event type named in the code is in the list (a source scan: `Event::new("…"`,
    // the wallet's movement events, the alarm kinds).
    let mut named = Vec::new();
    let mut stack = vec![std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src"
    ))];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("src").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            for (marker, close) in [("Event::new(\"", '"'), ("Event::new(\n", '"')] {
                for (at, _) in text.match_indices(marker) {
                    let rest = text[at + marker.len()..]
                        .trim_start()
                        .trim_start_matches('"');
                    if let Some(end) = rest.find(close) {
                        let name = &rest[..end];
                        if name.contains('.') && !name.contains(' ') {
                            named.push(name.to_owned());
                        }
                    }
                }
            }
        }
    }
    let wallet = include_str!("../../src/wallet/mod.rs");
    for line in wallet.lines().filter(|l| l.contains("=> Some(\"")) {
        if let Some(name) = line.split('"').nth(1) {
            named.push(name.to_owned());
        }
    }
    for kind in AlarmKind::ALL {
        let name = serde_json::to_value(kind).expect("name");
        named.push(format!("alarm.{}", name.as_str().expect("a string")));
    }
    assert!(named.len() > 15, "the scan found the events: {named:?}");
    for name in named {
        assert!(
            locker_gateway::events::TYPES.contains(&name.as_str()),
            "{name} is written but not documented"
        );
    }
}

#[sqlx::test]
async fn every_event_a_day_of_business_writes_matches_its_documented_data(pool: PgPool) {
    let vendor = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
    let public = vendor.verifying_key().to_bytes();
    let app = spawn_app_with(pool.clone(), move |c| {
        c.firmware.keys = vec![locker_gateway::config::VendorKey {
            name: "acme".into(),
            key: public,
            retire_after: None,
        }];
    })
    .await;
    plan(&app).await;
    let admin = operator(&app, "ops@example.com").await;
    let locker = online_locker(&app, "lk-1").await;
    let (token, _) = funded(&app, "c@example.com", 5000).await;
    // A rental, its door closed, picked up.
    let rental: Value = rent(&app, &token, json!({ "device_id": "lk-1", "door": 1 }))
        .await
        .json()
        .await
        .expect("rental");
    locker.turn(Knob::CloseDoor(1)).await;
    let end = app
        .http
        .post(app.url(&format!(
            "/v1/rentals/{}/end",
            rental["id"].as_str().expect("id")
        )))
        .bearer_auth(&token)
        .send()
        .await
        .expect("sent");
    assert_eq!(end.status(), 200);
    // A jammed start: cancelled.
    locker.turn(Knob::Jam(2)).await;
    let jammed = rent(&app, &token, json!({ "device_id": "lk-1", "door": 2 })).await;
    assert_eq!(jammed.status(), 409);
    // An order completed, and one whose door jammed (refunded).
    let cola = crate::orders::product(&app, &admin, "cola", "2.00").await;
    let items = json!([{ "product_id": cola, "qty": 1 }]);
    crate::orders::stock(
        &app,
        &admin,
        "lk-1",
        3,
        json!([{ "product_id": cola, "qty": 5 }]),
    )
    .await;
    let buy = json!({ "device_id": "lk-1", "items": items });
    assert_eq!(
        crate::orders::order(&app, &token, buy.clone())
            .await
            .status(),
        201
    );
    locker.turn(Knob::CloseDoor(3)).await;
    crate::helpers::eventually("door 3 closed", || async {
        sqlx::query_scalar::<_, String>(
            "SELECT sensor FROM doors WHERE device_id = 'lk-1' AND door = 3",
        )
        .fetch_one(&pool)
        .await
        .is_ok_and(|s| s == "closed")
    })
    .await;
    locker.turn(Knob::Jam(3)).await;
    assert_eq!(crate::orders::order(&app, &token, buy).await.status(), 409);
    // A firmware image uploaded.
    let image = vec![0x5au8; 2048];
    let hash: [u8; 32] = sha2::Digest::finalize(sha2::Digest::chain_update(
        <sha2::Sha256 as sha2::Digest>::new(),
        &image,
    ))
    .into();
    let manifest = firmware_protocol::image::manifest("5.0.0", 2048, &hash).expect("manifest");
    let signature = hex::encode(ed25519_dalek::Signer::sign(&vendor, &manifest).to_bytes());
    let path = format!("/v1/firmware?version=5.0.0&models=lk-4&signature={signature}");
    let uploaded = app
        .http
        .post(app.url(&path))
        .bearer_auth(&admin)
        .body(image)
        .send()
        .await
        .expect("sent");
    assert_eq!(uploaded.status(), 201);
    // A forced door, the locker gone, the device revoked.
    locker.turn(Knob::ForceOpen(4)).await;
    crate::helpers::eventually("the alarm", || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM outbox WHERE event_type = 'alarm.forced_open'",
        )
        .fetch_one(&pool)
        .await
        .unwrap_or(0)
            > 0
    })
    .await;
    locker.turn(Knob::Drop).await;
    crate::helpers::eventually("offline", || async { !app.online("lk-1").await }).await;
    app.app
        .registry()
        .revoke(crate::helpers::device("lk-1"))
        .await
        .expect("revoked");

    let doc = doc();
    let rows = sqlx::query(
        "SELECT id, event_type, aggregate_type, aggregate_id, occurred_at, payload FROM outbox
         ORDER BY seq",
    )
    .fetch_all(&pool)
    .await
    .expect("outbox");
    let mut types = std::collections::BTreeSet::new();
    for row in rows {
        let event = locker_gateway::events::Event {
            id: row.get("id"),
            event_type: row.get("event_type"),
            aggregate_type: row.get("aggregate_type"),
            aggregate_id: row.get("aggregate_id"),
            occurred_at: row.get("occurred_at"),
            data: row.get("payload"),
        };
        let published = serde_json::to_value(&event).expect("as published");
        let channel = doc["channels"]
            .as_object()
            .expect("channels")
            .values()
            .find(|c| c["address"] == format!("events/{}", event.event_type))
            .unwrap_or_else(|| panic!("no channel for {}", event.event_type));
        let reference = channel["messages"][&event.event_type]["$ref"]
            .as_str()
            .expect("a message");
        let name = reference.trim_start_matches("#/components/messages/");
        let schema = &doc["components"]["messages"][name]["payload"];
        if let Err(e) = check(&doc, schema, &published, &event.event_type) {
            panic!("{e}\n{published}");
        }
        types.insert(event.event_type);
    }
    for expected in [
        "device.provisioned",
        "device.online",
        "device.unlocked",
        "device.locked",
        "device.offline",
        "device.revoked",
        "alarm.forced_open",
        "rental.started",
        "rental.ended",
        "rental.cancelled",
        "order.created",
        "order.paid",
        "order.completed",
        "order.cancelled",
        "wallet.topped_up",
        "payment.captured",
        "payment.refunded",
        "firmware.uploaded",
    ] {
        assert!(
            types.contains(expected),
            "the scenario wrote no {expected}: {types:?}"
        );
    }
}
