//! `simulator`: simulated lockers for demos and load.
//!
//! `simulator transcript` prints one rental's worth of traffic between the gateway and a simulated
//! locker, as MQTT payloads and as serial frames: what firmware authors will see on the wire.

use std::process::ExitCode;

use firmware_protocol::{
    CommandId, DeviceId, DeviceSecret, Direction, Downlink, Envelope, Frame, Header, Payload,
    QueryState, Topic, Unlock, Unverified,
};
use simulator::SimLocker;

const USAGE: &str = "usage: simulator transcript\n\n  transcript   print a sample exchange (unlock, door events, state query) as MQTT payloads and serial frames";

fn main() -> ExitCode {
    match std::env::args().nth(1).as_deref() {
        Some("transcript") => match transcript() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("simulator: {e}");
                ExitCode::FAILURE
            }
        },
        Some("-h" | "--help") => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn show<M: Payload>(
    envelope: &Envelope<M>,
    key: &firmware_protocol::DeviceKey,
) -> Result<(), String> {
    let d = envelope.header.device_id;
    let topic = match envelope.header.direction {
        Direction::Down => Topic::down(d),
        Direction::Up => Topic::up(d),
    };
    let json = envelope.seal_json(key).map_err(|e| e.to_string())?;
    let frame = Frame {
        address: 7,
        envelope: envelope.seal_binary(key).map_err(|e| e.to_string())?.into(),
    }
    .to_bytes()
    .map_err(|e| e.to_string())?;
    let arrow = match envelope.header.direction {
        Direction::Down => "gateway -> locker",
        Direction::Up => "locker -> gateway",
    };
    println!("{arrow}: {:?}", envelope.message);
    println!("  mqtt   {topic}  {json}");
    println!("  serial {}\n", hex(&frame));
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn transcript() -> Result<(), String> {
    let device = DeviceId::new("lk-0001").ok_or("bad device id")?;
    let key = DeviceSecret::from_bytes([0x42; 32]).tag_key();
    let mut locker = SimLocker::new(device, key.clone(), 4);
    let mut uptime = 5_000;
    let hello = locker.connect(0x5EED_0001, uptime);
    show(&hello, &key)?;
    let mut counter = 0;
    let mut send = |locker: &mut SimLocker, message: Downlink, uptime: u64| -> Result<(), String> {
        counter += 1;
        let envelope = Envelope {
            header: Header {
                direction: Direction::Down,
                device_id: device,
                session: hello.header.session,
                counter,
            },
            message,
        };
        show(&envelope, &key)?;
        let json = envelope.seal_json(&key).map_err(|e| e.to_string())?;
        let raw = Unverified::parse_json(json.as_bytes()).map_err(|e| e.to_string())?;
        for answer in locker.receive(&raw, uptime) {
            show(&answer, &key)?;
        }
        Ok(())
    };
    let command_id = CommandId::new(42).ok_or("bad command id")?;
    send(
        &mut locker,
        Downlink::Unlock(Unlock {
            command_id,
            door: 3,
            expires_at_ms: None,
        }),
        uptime,
    )?;
    uptime += 20_000;
    for event in locker.close_door(3, uptime) {
        show(&event, &key)?;
    }
    send(
        &mut locker,
        Downlink::QueryState(QueryState { query_id: 1 }),
        uptime,
    )?;
    Ok(())
}
