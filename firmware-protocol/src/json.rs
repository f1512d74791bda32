//! The JSON body encoding, used over MQTT. Field names are those of the Rust structs in
//! [`crate::message`] (snake_case); optional fields are left out when empty; unknown fields are
//! ignored so that newer firmware can add some. `PROTOCOL.md` shows every body.

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::error::{DecodeError, InvalidMessage};
use crate::message::*;

/// The body of `ping` and `pong`: `{}` (any fields ignored).
#[derive(Serialize, Deserialize)]
struct Empty {}

fn write<T: Serialize>(value: &T, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
    serde_json::to_writer(out, value)
}

fn read<T: DeserializeOwned>(body: &[u8]) -> Result<T, DecodeError> {
    Ok(serde_json::from_slice(body)?)
}

pub(crate) fn write_downlink(msg: &Downlink, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
    match msg {
        Downlink::Unlock(m) => write(m, out),
        Downlink::QueryState(m) => write(m, out),
        Downlink::Configure(m) => write(m, out),
        Downlink::Ping => write(&Empty {}, out),
        Downlink::Poll(m) => write(m, out),
        Downlink::UpdateOffer(m) => write(m, out),
        Downlink::Chunk(m) => write(m, out),
        Downlink::Install(m) => write(m, out),
    }
}

pub(crate) fn read_downlink(ty: MessageType, body: &[u8]) -> Result<Downlink, DecodeError> {
    let msg = match ty {
        MessageType::Unlock => Downlink::Unlock(read(body)?),
        MessageType::QueryState => Downlink::QueryState(read(body)?),
        MessageType::Configure => Downlink::Configure(read(body)?),
        MessageType::Ping => read::<Empty>(body).map(|_| Downlink::Ping)?,
        MessageType::Poll => Downlink::Poll(read(body)?),
        MessageType::UpdateOffer => Downlink::UpdateOffer(read(body)?),
        MessageType::Chunk => Downlink::Chunk(read(body)?),
        MessageType::Install => Downlink::Install(read(body)?),
        _ => return Err(DecodeError::WrongDirection),
    };
    msg.validate()?;
    Ok(msg)
}

pub(crate) fn write_uplink(msg: &Uplink, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
    match msg {
        Uplink::Hello(m) => write(m, out),
        Uplink::Heartbeat(m) => write(m, out),
        Uplink::Ack(m) => write(m, out),
        Uplink::DoorEvent(m) => write(m, out),
        Uplink::Alarm(m) => write(m, out),
        Uplink::StateReport(m) => write(m, out),
        Uplink::Pong => write(&Empty {}, out),
        Uplink::ChunkRequest(m) => write(m, out),
        Uplink::UpdateReport(m) => write(m, out),
    }
}

pub(crate) fn read_uplink(ty: MessageType, body: &[u8]) -> Result<Uplink, DecodeError> {
    let msg = match ty {
        MessageType::Hello => Uplink::Hello(read(body)?),
        MessageType::Heartbeat => Uplink::Heartbeat(read(body)?),
        MessageType::Ack => Uplink::Ack(read(body)?),
        MessageType::DoorEvent => Uplink::DoorEvent(read(body)?),
        MessageType::Alarm => Uplink::Alarm(read(body)?),
        MessageType::StateReport => Uplink::StateReport(read(body)?),
        MessageType::Pong => read::<Empty>(body).map(|_| Uplink::Pong)?,
        MessageType::ChunkRequest => Uplink::ChunkRequest(read(body)?),
        MessageType::UpdateReport => Uplink::UpdateReport(read(body)?),
        _ => return Err(DecodeError::WrongDirection),
    };
    msg.validate()?;
    Ok(msg)
}

impl Payload for Downlink {
    const DIRECTION: Direction = Direction::Down;

    fn message_type(&self) -> MessageType {
        Downlink::message_type(self)
    }
    fn validate(&self) -> Result<(), InvalidMessage> {
        Downlink::validate(self)
    }
    fn write_binary(&self, out: &mut Vec<u8>) {
        crate::binary::write_downlink(self, out)
    }
    fn read_binary(ty: MessageType, body: &[u8]) -> Result<Self, DecodeError> {
        crate::binary::read_downlink(ty, body)
    }
    fn write_json(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        write_downlink(self, out)
    }
    fn read_json(ty: MessageType, body: &[u8]) -> Result<Self, DecodeError> {
        read_downlink(ty, body)
    }
}

impl Payload for Uplink {
    const DIRECTION: Direction = Direction::Up;

    fn message_type(&self) -> MessageType {
        Uplink::message_type(self)
    }
    fn validate(&self) -> Result<(), InvalidMessage> {
        Uplink::validate(self)
    }
    fn write_binary(&self, out: &mut Vec<u8>) {
        crate::binary::write_uplink(self, out)
    }
    fn read_binary(ty: MessageType, body: &[u8]) -> Result<Self, DecodeError> {
        crate::binary::read_uplink(ty, body)
    }
    fn write_json(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        write_uplink(self, out)
    }
    fn read_json(ty: MessageType, body: &[u8]) -> Result<Self, DecodeError> {
        read_uplink(ty, body)
    }
    fn announced_session(&self) -> Option<u32> {
        match self {
            Uplink::Hello(hello) => Some(hello.session),
            _ => None,
        }
    }
}
