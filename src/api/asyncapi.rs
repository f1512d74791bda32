//! The AsyncAPI 3.0 document of what travels over MQTT, served at `/v1/asyncapi.json` beside the
//! OpenAPI document: the locker topics (the signed envelope and each message body, QoS, retain,
//! the last will) and the `events/{type}` topics (each event's data). A test checks it against
//! the protocol crate's messages and against the events the gateway really writes.

use serde_json::{Value, json};

use firmware_protocol::{Direction, MessageType, TAG_LEN};

pub use super::asyncapi_bodies::body_schema;
use super::asyncapi_bodies::{int, object, string};

/// The signed envelope a message of `ty` travels in over MQTT.
fn envelope(ty: MessageType) -> Value {
    let direction = if ty.direction() == Direction::Up {
        "up"
    } else {
        "down"
    };
    object(
        json!({
            "version": { "type": "integer", "const": firmware_protocol::ENVELOPE_VERSION },
            "direction": { "type": "string", "const": direction },
            "device_id": string("The locker's id (also in the topic)."),
            "session": int("The locker's session from its hello."),
            "counter": int("Increases with every message of this direction in the session."),
            "type": { "type": "string", "const": ty.name() },
            "body": {
                "type": "string",
                "description": "The body, JSON, as a string: tagged byte for byte.",
                "contentMediaType": "application/json",
                "contentSchema": body_schema(ty),
            },
            "tag": {
                "type": "string",
                "pattern": format!("^[0-9a-f]{{{}}}$", TAG_LEN * 2),
                "description": "HMAC-SHA256 (first 16 bytes, lowercase hex) over the header and the body bytes.",
            },
        }),
        &[],
    )
}

/// The data of each event type.
pub fn event_data(event_type: &str) -> Option<Value> {
    let uuid = || json!({ "type": "string", "format": "uuid" });
    let device = || string("The locker.");
    let door = || json!({ "type": "integer", "minimum": 1, "maximum": 512 });
    let flags = || json!({ "type": "array", "items": { "type": "string" } });
    let money = |d: &str| json!({ "type": "integer", "description": format!("{d}, minor units of the configured currency.") });
    let alarm = || {
        object(
            json!({
                "device_id": device(),
                "kind": string("The alarm."),
                "door": { "type": ["integer", "null"] },
                "source": { "type": "string", "enum": ["locker", "door_sensor"] },
                "uptime_ms": int("The locker's uptime when it happened."),
                "session": int("The locker's session."),
            }),
            &[],
        )
    };
    let wallet = || {
        object(
            json!({
                "wallet_id": uuid(), "user_id": uuid(), "amount_minor": money("The amount"),
                "kind": string("The ledger entry's kind."),
                "reference": { "type": ["string", "null"] },
                "ledger_id": int("The ledger entry."),
            }),
            &[],
        )
    };
    Some(match event_type {
        "device.provisioned" => object(
            json!({ "device_id": device(), "model": { "type": ["string", "null"] }, "door_count": int("Doors.") }),
            &[],
        ),
        "device.revoked" => object(json!({ "device_id": device() }), &[]),
        "device.online" | "device.offline" => object(
            json!({
                "device_id": device(),
                "session": { "type": ["integer", "null"] },
                "reason": string("hello, will, heartbeat_timeout, disconnect, ..."),
            }),
            &[],
        ),
        "device.unlocked" => object(
            json!({
                "device_id": device(), "door": door(), "rental_id": uuid(), "order_id": uuid(),
                "flags": flags(), "why": string("reopen or pickup"),
            }),
            &["rental_id", "order_id", "flags", "why"],
        ),
        "device.locked" => object(
            json!({ "device_id": device(), "door": door(), "uptime_ms": int("The locker's uptime.") }),
            &[],
        ),
        t if t.starts_with("alarm.") => alarm(),
        "command.unknown" => object(
            json!({
                "device_id": device(), "command_id": int("The command."),
                "door": { "type": ["integer", "null"] },
                "reason": { "type": "string", "enum": ["forgotten", "no_report"] },
            }),
            &[],
        ),
        "rental.started" => object(
            json!({ "rental_id": uuid(), "device_id": device(), "door": door(), "flags": flags() }),
            &[],
        ),
        "rental.cancelled" => object(
            json!({ "rental_id": uuid(), "device_id": device(), "door": door(), "reason": string("Why.") }),
            &["device_id", "door"],
        ),
        "rental.ended" => object(
            json!({
                "rental_id": uuid(), "device_id": device(), "door": door(),
                "fee_minor": money("The fee"), "billed_seconds": int("From the start to the pickup."),
            }),
            &[],
        ),
        "order.created" => object(
            json!({
                "order_id": uuid(), "device_id": device(), "door": door(),
                "items": { "type": "array", "items": object(json!({
                    "product_id": uuid(), "qty": int("How many."), "unit_price_minor": money("The price"),
                }), &[]) },
                "total_minor": money("The total"),
            }),
            &[],
        ),
        "order.paid" => object(
            json!({ "order_id": uuid(), "total_minor": money("Charged") }),
            &[],
        ),
        "order.completed" => object(
            json!({ "order_id": uuid(), "device_id": device(), "door": door(), "flags": flags() }),
            &[],
        ),
        "order.cancelled" => object(
            json!({ "order_id": uuid(), "device_id": device(), "door": door(), "reason": string("Why; refunded and restocked.") }),
            &[],
        ),
        "wallet.topped_up" | "payment.captured" | "payment.refunded" => wallet(),
        "worker.item_stuck" => object(
            json!({
                "worker": string("The background loop: rental_reconciler, order_reconciler."),
                "item": string("What kept failing, such as `rental {id}`."),
                "failures": int("Failures in a row."),
                "last_error": string("The last failure."),
                "first_failed_at": { "type": "string", "format": "date-time" },
                "last_failed_at": { "type": "string", "format": "date-time" },
            }),
            &[],
        ),
        "firmware.uploaded" => object(
            json!({
                "image_id": uuid(),
                "version": string("As lockers will announce it."),
                "models": { "type": "array", "items": { "type": "string" } },
                "size": int("Bytes."),
                "sha256": string("Hex."),
                "key_name": string("The vendor key that signed it."),
            }),
            &[],
        ),
        "firmware.campaign_created" => object(
            json!({
                "campaign_id": int("The campaign."),
                "name": string("Its name."),
                "image_id": uuid(),
                "version": string("The image's version."),
                "lockers": int("Lockers it updates."),
                "waves": { "type": "array", "items": int("Lockers in the wave."), "description": "Each wave's size." },
            }),
            &[],
        ),
        "firmware.wave_started" => object(
            json!({ "campaign_id": int("The campaign."), "wave": int("The wave, 0 first.") }),
            &[],
        ),
        "firmware.campaign_paused"
        | "firmware.campaign_resumed"
        | "firmware.campaign_cancelled"
        | "firmware.campaign_stopped"
        | "firmware.campaign_finished" => object(
            json!({
                "campaign_id": int("The campaign."),
                "state": string("Its state now."),
                "reason": { "type": ["string", "null"], "description": "Why it stopped (stopped only)." },
            }),
            &["reason"],
        ),
        "firmware.update_finished" => object(
            json!({
                "update_id": int("The update (its id on the wire)."),
                "campaign_id": int("Its campaign."),
                "device_id": string("The locker."),
                "result": { "type": "string", "enum": ["installed", "failed", "rolled_back"] },
                "reason": { "type": ["string", "null"], "description": "Why it failed." },
            }),
            &[],
        ),
        _ => return None,
    })
}

fn event_message(event_type: &str) -> Value {
    let data = event_data(event_type).unwrap_or_else(|| json!({}));
    json!({
        "name": event_type,
        "title": event_type,
        "payload": object(json!({
            "id": { "type": "string", "format": "uuid", "description": "Unique; a redelivery repeats it." },
            "type": { "type": "string", "const": event_type },
            "aggregate_type": string("device, rental, order, wallet"),
            "aggregate_id": string("Events of one aggregate arrive in order."),
            "occurred_at": { "type": "string", "format": "date-time" },
            "data": data,
        }), &[]),
    })
}

fn qos1(retain: bool) -> Value {
    json!({ "mqtt": { "qos": 1, "retain": retain, "bindingVersion": "0.2.0" } })
}

/// The whole document.
pub fn document() -> Value {
    let mut messages = serde_json::Map::new();
    let mut up = serde_json::Map::new();
    let mut down = serde_json::Map::new();
    for ty in MessageType::ALL {
        let name = ty.name();
        messages.insert(
            name.to_owned(),
            json!({
                "name": name,
                "title": name,
                "summary": if ty == MessageType::Poll { "Serial lines only; shown for completeness." } else { "" },
                "payload": envelope(ty),
            }),
        );
        let reference = json!({ "$ref": format!("#/components/messages/{name}") });
        if ty.direction() == Direction::Up {
            up.insert(name.to_owned(), reference);
        } else {
            down.insert(name.to_owned(), reference);
        }
    }
    messages.insert(
        "presence".into(),
        json!({
            "name": "presence",
            "title": "presence",
            "summary": "Published by the locker on connecting, and its last will.",
            "payload": object(json!({
                "online": { "type": "boolean" },
                "session": int("The session of the connection this is about."),
            }), &["session"]),
        }),
    );
    let device_parameter =
        json!({ "device_id": { "description": "The locker's id: 1 to 64 of [A-Za-z0-9_-]." } });
    let mut channels = serde_json::Map::new();
    channels.insert(
        "lockerUp".into(),
        json!({
            "address": "lockers/{device_id}/up",
            "parameters": device_parameter,
            "description": "Locker to gateway: signed envelopes.",
            "messages": up,
        }),
    );
    channels.insert(
        "lockerDown".into(),
        json!({
            "address": "lockers/{device_id}/down",
            "parameters": device_parameter,
            "description": "Gateway to locker: signed envelopes. On MQTT 5, commands carry a message expiry.",
            "messages": down,
        }),
    );
    channels.insert(
        "lockerStatus".into(),
        json!({
            "address": "lockers/{device_id}/status",
            "parameters": device_parameter,
            "description": "Presence, retained; the locker's last will says offline.",
            "messages": { "presence": { "$ref": "#/components/messages/presence" } },
        }),
    );
    let mut operations = serde_json::Map::new();
    operations.insert(
        "lockerSendsUplinks".into(),
        json!({ "action": "receive", "channel": { "$ref": "#/channels/lockerUp" }, "bindings": qos1(false),
                "summary": "The gateway receives what lockers send." }),
    );
    operations.insert(
        "gatewaySendsDownlinks".into(),
        json!({ "action": "send", "channel": { "$ref": "#/channels/lockerDown" }, "bindings": qos1(false),
                "summary": "The gateway sends commands and queries." }),
    );
    operations.insert(
        "lockerSendsPresence".into(),
        json!({ "action": "receive", "channel": { "$ref": "#/channels/lockerStatus" }, "bindings": qos1(true),
                "summary": "Retained presence, and the last will." }),
    );
    for event_type in crate::events::TYPES {
        let id = format!("event_{}", event_type.replace('.', "_"));
        messages.insert(id.clone(), event_message(event_type));
        channels.insert(
            id.clone(),
            json!({
                "address": crate::events::event_topic(event_type),
                "description": "Domain events, at least once, in order per aggregate.",
                "messages": { event_type.to_string(): { "$ref": format!("#/components/messages/{id}") } },
            }),
        );
        operations.insert(
            format!("publish_{id}"),
            json!({ "action": "send", "channel": { "$ref": format!("#/channels/{id}") }, "bindings": qos1(false) }),
        );
    }
    json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": "locker-gateway MQTT",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "What lockers and the gateway say to each other over MQTT (see \
                            firmware-protocol/PROTOCOL.md for the bytes and test vectors), and the \
                            domain events the gateway publishes. Every locker topic is QoS 1.",
        },
        "defaultContentType": "application/json",
        "servers": {
            "gateway": {
                "host": "localhost:1883",
                "protocol": "mqtt",
                "description": "The embedded broker (LOCKER_MQTT_ADDR) or an external one. Lockers \
                                log in with their device id as client id and user name, clean session.",
                "bindings": { "mqtt": {
                    "cleanSession": true,
                    "keepAlive": 60,
                    "lastWill": {
                        "topic": "lockers/{device_id}/status",
                        "qos": 1,
                        "retain": true,
                        "message": "{\"online\":false,\"session\":N}",
                    },
                    "bindingVersion": "0.2.0",
                } },
            },
        },
        "channels": channels,
        "operations": operations,
        "components": { "messages": messages },
    })
}
