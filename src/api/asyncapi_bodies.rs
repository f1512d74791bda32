//! The JSON body of each protocol message, for the AsyncAPI document (`super::asyncapi`).

use serde_json::{Value, json};

use firmware_protocol::MessageType;

pub(super) fn int(description: &str) -> Value {
    json!({ "type": "integer", "minimum": 0, "description": description })
}

pub(super) fn string(description: &str) -> Value {
    json!({ "type": "string", "description": description })
}

/// An object with these properties (all listed under `required` unless in `optional`); senders
/// send nothing else, receivers ignore what they do not know.
pub(super) fn object(properties: Value, optional: &[&str]) -> Value {
    let required: Vec<&String> = properties
        .as_object()
        .map(|p| {
            p.keys()
                .filter(|k| !optional.contains(&k.as_str()))
                .collect()
        })
        .unwrap_or_default();
    json!({
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    })
}

fn door_status() -> Value {
    object(
        json!({
            "sensor": { "type": "string", "enum": ["open", "closed", "unknown"] },
            "locked": { "type": "boolean" },
            "occupied": { "type": "boolean", "description": "Only from doors with an occupancy sensor." },
        }),
        &["occupied"],
    )
}

fn refuse_reasons() -> Value {
    let names: Vec<String> = firmware_protocol::RefuseReason::ALL
        .iter()
        .filter_map(|r| serde_json::to_value(r).ok())
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    json!({ "type": "string", "enum": names })
}

fn ack() -> Value {
    object(
        json!({
            "command_id": int("The command answered."),
            "result": { "type": "string", "enum": ["executed", "refused"] },
            "reason": refuse_reasons(),
        }),
        &["reason"],
    )
}

/// The JSON body of each message type.
pub fn body_schema(ty: MessageType) -> Value {
    let expires = int("Unix time (ms) after which the locker must refuse it as `expired`.");
    match ty {
        MessageType::Unlock => object(
            json!({
                "command_id": int("Unique per locker; a resend repeats it."),
                "door": { "type": "integer", "minimum": 1, "maximum": 512 },
                "expires_at_ms": expires,
            }),
            &["expires_at_ms"],
        ),
        MessageType::QueryState => object(
            json!({ "query_id": int("Echoed in the state_report.") }),
            &[],
        ),
        MessageType::Configure => object(
            json!({
                "command_id": int("Unique per locker."),
                "heartbeat_secs": int("Heartbeat interval."),
                "open_window_ms": int("How long a door may take to open after its pulse."),
                "pulse_ms": int("Lock relay pulse."),
                "ajar_alarm_secs": int("Door open this long raises door_ajar."),
                "expires_at_ms": expires,
            }),
            &["expires_at_ms"],
        ),
        MessageType::Poll => object(
            json!({ "ack_counter": int("Highest uplink counter received (serial lines only).") }),
            &[],
        ),
        MessageType::Ping | MessageType::Pong => object(json!({}), &[]),
        MessageType::Hello => object(
            json!({
                "protocol_version": {
                    "type": "integer",
                    "minimum": firmware_protocol::OLDEST_PROTOCOL_VERSION,
                    "maximum": firmware_protocol::PROTOCOL_VERSION,
                    "description": "The protocol version the locker speaks: 2 keeps an anti-replay window for downlinks (any gateway of a fleet sends at once), 1 needs counters in order.",
                },
                "firmware": string("Firmware version."),
                "serial_no": string("Hardware serial number."),
                "door_count": int("Doors on this locker."),
                "session": int("A new random non-zero session for this connection."),
                "uptime_ms": int("Since power-up."),
                "max_chunk": {
                    "type": "integer",
                    "minimum": firmware_protocol::update::MIN_CHUNK,
                    "maximum": firmware_protocol::update::MAX_CHUNK,
                    "description": "The locker takes firmware updates in chunks of at most this many bytes; absent: it takes none.",
                },
            }),
            &["max_chunk"],
        ),
        MessageType::Heartbeat => object(
            json!({
                "uptime_ms": int("Since power-up."),
                "doors": { "type": "array", "items": door_status() },
                "signal": { "type": "integer", "description": "Signal strength, dBm." },
            }),
            &["signal"],
        ),
        MessageType::Ack => ack(),
        MessageType::DoorEvent => object(
            json!({
                "door": { "type": "integer", "minimum": 1, "maximum": 512 },
                "state": { "type": "string", "enum": ["opened", "closed"] },
                "cause": { "type": "string", "enum": ["commanded", "uncommanded"] },
                "command_id": int("The unlock that opened it (cause commanded)."),
                "uptime_ms": int("When, since power-up."),
            }),
            &["command_id"],
        ),
        MessageType::Alarm => {
            let kinds: Vec<Value> = firmware_protocol::AlarmKind::ALL
                .iter()
                .filter_map(|k| serde_json::to_value(k).ok())
                .collect();
            object(
                json!({
                    "kind": { "type": "string", "enum": kinds },
                    "door": { "type": "integer", "minimum": 1, "maximum": 512 },
                    "uptime_ms": int("When, since power-up."),
                }),
                &["door"],
            )
        }
        MessageType::StateReport => object(
            json!({
                "query_id": int("The query answered."),
                "doors": { "type": "array", "items": door_status() },
                "recent": { "type": "array", "items": ack(), "description": "The last commands' outcomes." },
                "door_results": {
                    "type": "array",
                    "description": "Protocol version 2: what the doors of executed unlocks did.",
                    "items": object(
                        json!({
                            "command_id": int("The unlock."),
                            "door": { "type": "string", "enum": ["opened", "already_open", "not_opened"] },
                        }),
                        &[],
                    ),
                },
            }),
            &["door_results"],
        ),
        MessageType::UpdateOffer => object(
            json!({
                "update_id": int("Names this update on this locker; offered again, it resumes."),
                "version": string("The image's version."),
                "size": int("The image's length in bytes."),
                "sha256": hex(32, "SHA-256 of the whole image."),
                "signature": hex(64, "The vendor's Ed25519 signature of the image's manifest."),
                "chunk_size": int("Bytes per chunk (the last may be shorter)."),
            }),
            &[],
        ),
        MessageType::Chunk => object(
            json!({
                "update_id": int("The offer's id."),
                "index": int("Bytes index × chunk_size … of the image."),
                "crc32": int("CRC-32/ISO-HDLC of the data."),
                "data": { "type": "string", "contentEncoding": "base64", "description": "The bytes, standard base64 with padding." },
            }),
            &[],
        ),
        MessageType::Install => object(json!({ "update_id": int("The offer's id.") }), &[]),
        MessageType::ChunkRequest => object(
            json!({
                "update_id": int("The offer's id."),
                "index": int("The chunk wanted: the first, the next, or after the last good one when resuming."),
            }),
            &[],
        ),
        MessageType::UpdateReport => {
            let reasons: Vec<Value> = firmware_protocol::UpdateFailure::ALL
                .iter()
                .filter_map(|r| serde_json::to_value(r).ok())
                .collect();
            object(
                json!({
                    "update_id": int("The offer's id."),
                    "version": string("The offered version."),
                    "status": {
                        "type": "string",
                        "enum": ["refused", "downloaded", "installing", "installed", "failed", "rolled_back"],
                    },
                    "reason": { "type": "string", "enum": reasons, "description": "With refused and failed." },
                }),
                &["reason"],
            )
        }
    }
}

fn hex(bytes: usize, description: &str) -> Value {
    json!({
        "type": "string",
        "pattern": format!("^[0-9a-f]{{{}}}$", 2 * bytes),
        "description": description,
    })
}
