//! The authenticated envelope every message travels in, on both transports:
//! `version | direction | encoding | device id | session | counter | type | body | tag`.
//!
//! The tag is the first 16 bytes of HMAC-SHA256, with the device's [`DeviceKey`], over the
//! *signed bytes*: the header in its fixed binary layout followed by the exact body bytes. On a
//! serial line the envelope *is* the signed bytes followed by the tag; over MQTT it is a JSON
//! object whose `body` is a string holding the body bytes as sent (see [`Envelope::seal_json`]).
//!
//! Receiving is two steps so that nothing is decoded before it is authenticated:
//! [`Unverified::parse_binary`] / [`Unverified::parse_json`] read the header, then
//! [`Unverified::verify`] checks direction, device and tag and only then decodes the body.
//! Replay (session and counter) is checked afterwards by [`crate::session`].

use std::borrow::Cow;

use hmac::Mac;
use serde::{Deserialize, Serialize};

use crate::binary::Reader;
use crate::error::{DecodeError, InvalidMessage};
use crate::identity::{DeviceId, DeviceKey, MAX_DEVICE_ID_LEN};
use crate::message::{Direction, MessageType, Payload};

/// The envelope layout's version: the first byte of every envelope (`v` in JSON). Protocol
/// versions 1 and 2 share this layout, so it is 1 in both.
pub const ENVELOPE_VERSION: u8 = 1;
/// The newest protocol version, announced by a locker in [`crate::Hello::protocol_version`]:
/// version 2 adds the locker's anti-replay window for downlinks (see [`crate::CommandGuard`]).
pub const PROTOCOL_VERSION: u8 = 2;
/// The oldest protocol version still accepted in a `hello`.
pub const OLDEST_PROTOCOL_VERSION: u8 = 1;
/// Bytes of HMAC-SHA256 kept as the tag.
pub const TAG_LEN: usize = 16;
/// Largest binary body.
pub const MAX_BINARY_BODY: usize = 1024;
/// Largest JSON body (bytes of the `body` string).
pub const MAX_JSON_BODY: usize = 60 * 1024;
/// Largest MQTT payload (the JSON envelope) the gateway reads.
pub const MAX_JSON_ENVELOPE: usize = 128 * 1024;
/// Bytes of the binary header with a device id of `n` bytes.
const fn header_len(id_len: usize) -> usize {
    4 + id_len + 4 + 4 + 1 + 2
}
/// Smallest binary envelope: 1-byte device id, empty body.
pub const MIN_ENVELOPE: usize = header_len(1) + TAG_LEN;
/// Largest binary envelope.
pub const MAX_ENVELOPE: usize = header_len(MAX_DEVICE_ID_LEN) + MAX_BINARY_BODY + TAG_LEN;

/// How the body is encoded; part of the signed bytes so a body can't be moved to the other
/// transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// Serial lines: [`crate::binary`].
    Binary = 1,
    /// MQTT: [`crate::json`].
    Json = 2,
}

/// The envelope's fields other than the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header {
    /// Which way the message travels.
    pub direction: Direction,
    /// The locker the message is from (uplink) or for (downlink).
    pub device_id: DeviceId,
    /// The locker's current session, announced in its `Hello`; never 0 except in a serial `Poll`
    /// to a board whose session is not yet known.
    pub session: u32,
    /// Increases with every message of this direction in the session (a resent command repeats
    /// its counter).
    pub counter: u32,
}

/// A message with its header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope<M> {
    /// Direction, device, session and counter.
    pub header: Header,
    /// The message itself.
    pub message: M,
}

/// Why a message could not be sealed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error(transparent)]
    /// A field is out of range.
    Invalid(#[from] InvalidMessage),
    #[error("message's direction does not match its header")]
    /// The header's direction is not the message's.
    WrongDirection,
    #[error("body of {0} bytes is longer than allowed")]
    /// The body exceeds the encoding's limit.
    TooLong(usize),
    #[error("JSON encoding failed: {0}")]
    /// The JSON encoder failed.
    Json(String),
}

/// Feeds the header's fixed binary layout into `out` (a MAC or a buffer).
fn header_bytes(
    header: &Header,
    encoding: Encoding,
    ty: MessageType,
    body_len: u16,
    mut out: impl FnMut(&[u8]),
) {
    let id = header.device_id.as_bytes();
    out(&[
        ENVELOPE_VERSION,
        header.direction.code(),
        encoding as u8,
        id.len() as u8,
    ]);
    out(id);
    out(&header.session.to_be_bytes());
    out(&header.counter.to_be_bytes());
    out(&[ty.code()]);
    out(&body_len.to_be_bytes());
}

fn compute_tag(
    key: &DeviceKey,
    header: &Header,
    encoding: Encoding,
    ty: MessageType,
    body: &[u8],
) -> [u8; TAG_LEN] {
    let mut mac = key.mac();
    header_bytes(header, encoding, ty, body.len() as u16, |b| mac.update(b));
    mac.update(body);
    let full = mac.finalize().into_bytes();
    let mut tag = [0; TAG_LEN];
    tag.copy_from_slice(&full[..TAG_LEN]);
    tag
}

impl<M: Payload> Envelope<M> {
    fn check(&self, limit: usize, body_len: usize) -> Result<(), EncodeError> {
        if self.header.direction != M::DIRECTION {
            return Err(EncodeError::WrongDirection);
        }
        if body_len > limit {
            return Err(EncodeError::TooLong(body_len));
        }
        Ok(())
    }

    /// The binary envelope (the payload of a serial frame): signed bytes, then the tag.
    pub fn seal_binary(&self, key: &DeviceKey) -> Result<Vec<u8>, EncodeError> {
        self.message.validate()?;
        let mut body = Vec::with_capacity(64);
        self.message.write_binary(&mut body);
        self.check(MAX_BINARY_BODY, body.len())?;
        let ty = self.message.message_type();
        let id_len = self.header.device_id.as_bytes().len();
        let mut out = Vec::with_capacity(header_len(id_len) + body.len() + TAG_LEN);
        header_bytes(&self.header, Encoding::Binary, ty, body.len() as u16, |b| {
            out.extend_from_slice(b)
        });
        out.extend_from_slice(&body);
        let tag = compute_tag(key, &self.header, Encoding::Binary, ty, &body);
        out.extend_from_slice(&tag);
        Ok(out)
    }

    /// The JSON envelope (an MQTT payload): header fields as JSON values, `body` a string holding
    /// the JSON body exactly as tagged, `tag` 32 lowercase hex digits.
    pub fn seal_json(&self, key: &DeviceKey) -> Result<String, EncodeError> {
        self.message.validate()?;
        let mut body = Vec::with_capacity(128);
        self.message
            .write_json(&mut body)
            .map_err(|e| EncodeError::Json(e.to_string()))?;
        self.check(MAX_JSON_BODY, body.len())?;
        let ty = self.message.message_type();
        let tag = compute_tag(key, &self.header, Encoding::Json, ty, &body);
        let body = String::from_utf8(body).map_err(|e| EncodeError::Json(e.to_string()))?;
        let out = JsonEnvelopeOut {
            version: ENVELOPE_VERSION,
            direction: self.header.direction.name(),
            device_id: self.header.device_id.as_str(),
            session: self.header.session,
            counter: self.header.counter,
            ty: ty.name(),
            body: &body,
            tag: &hex::encode(tag),
        };
        serde_json::to_string(&out).map_err(|e| EncodeError::Json(e.to_string()))
    }
}

/// Seals a JSON body given as text, as it stands: the tag is right, the body is not checked. For
/// tools that test how a locker answers a malformed command (a field out of range, a field
/// missing); never for real traffic.
pub fn seal_json_text(header: &Header, ty: MessageType, body: &str, key: &DeviceKey) -> String {
    let tag = compute_tag(key, header, Encoding::Json, ty, body.as_bytes());
    let out = JsonEnvelopeOut {
        version: ENVELOPE_VERSION,
        direction: header.direction.name(),
        device_id: header.device_id.as_str(),
        session: header.session,
        counter: header.counter,
        ty: ty.name(),
        body,
        tag: &hex::encode(tag),
    };
    serde_json::to_string(&out).expect("a struct of strings and numbers serialises")
}

#[derive(Serialize)]
struct JsonEnvelopeOut<'a> {
    version: u8,
    direction: &'static str,
    device_id: &'a str,
    session: u32,
    counter: u32,
    #[serde(rename = "type")]
    ty: &'static str,
    body: &'a str,
    tag: &'a str,
}

#[derive(Deserialize)]
struct JsonEnvelopeIn<'a> {
    version: u8,
    #[serde(borrow)]
    direction: Cow<'a, str>,
    #[serde(borrow)]
    device_id: Cow<'a, str>,
    session: u32,
    counter: u32,
    #[serde(rename = "type", borrow)]
    ty: Cow<'a, str>,
    body: String,
    #[serde(borrow)]
    tag: Cow<'a, str>,
}

/// An envelope whose header has been read but whose tag has not been checked yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unverified<'a> {
    header: Header,
    encoding: Encoding,
    message_type: MessageType,
    body: Cow<'a, [u8]>,
    tag: [u8; TAG_LEN],
}

impl<'a> Unverified<'a> {
    /// Reads a binary envelope (a serial frame's payload). The whole slice must be one envelope.
    pub fn parse_binary(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        if bytes.len() > MAX_ENVELOPE {
            return Err(DecodeError::TooLong(bytes.len()));
        }
        let mut r = Reader::new(bytes);
        let version = r.u8()?;
        if version != ENVELOPE_VERSION {
            return Err(DecodeError::UnsupportedVersion(version));
        }
        let direction = r.u8()?;
        let direction =
            Direction::from_code(direction).ok_or(DecodeError::UnknownDirection(direction))?;
        let encoding = match r.u8()? {
            1 => Encoding::Binary,
            2 => return Err(DecodeError::WrongEncoding),
            other => return Err(DecodeError::UnknownEncoding(other)),
        };
        let id_len = usize::from(r.u8()?);
        let device_id =
            DeviceId::from_bytes(r.take(id_len)?).ok_or(DecodeError::InvalidDeviceId)?;
        let session = r.u32()?;
        let counter = r.u32()?;
        let code = r.u8()?;
        let message_type = MessageType::from_code(code)
            .ok_or_else(|| DecodeError::UnknownMessageType(format!("0x{code:02x}")))?;
        let body_len = usize::from(r.u16()?);
        let expected = body_len + TAG_LEN;
        if r.rest().len() != expected {
            return Err(DecodeError::LengthMismatch {
                declared: expected,
                actual: r.rest().len(),
            });
        }
        let body = r.take(body_len)?;
        let mut tag = [0; TAG_LEN];
        tag.copy_from_slice(r.take(TAG_LEN)?);
        Ok(Self {
            header: Header {
                direction,
                device_id,
                session,
                counter,
            },
            encoding,
            message_type,
            body: Cow::Borrowed(body),
            tag,
        })
    }

    /// Reads a JSON envelope (an MQTT payload). Unknown fields are ignored.
    pub fn parse_json(payload: &[u8]) -> Result<Unverified<'static>, DecodeError> {
        if payload.len() > MAX_JSON_ENVELOPE {
            return Err(DecodeError::TooLong(payload.len()));
        }
        let raw: JsonEnvelopeIn<'_> = serde_json::from_slice(payload)?;
        if raw.version != ENVELOPE_VERSION {
            return Err(DecodeError::UnsupportedVersion(raw.version));
        }
        let direction =
            Direction::from_name(&raw.direction).ok_or(DecodeError::UnknownDirection(0))?;
        let device_id = DeviceId::new(&raw.device_id).ok_or(DecodeError::InvalidDeviceId)?;
        let message_type = MessageType::from_name(&raw.ty)
            .ok_or_else(|| DecodeError::UnknownMessageType(raw.ty.chars().take(40).collect()))?;
        if raw.body.len() > MAX_JSON_BODY {
            return Err(DecodeError::TooLong(raw.body.len()));
        }
        let mut tag = [0; TAG_LEN];
        // Lowercase only: one tag, one spelling.
        let lowercase_hex = raw
            .tag
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if raw.tag.len() != 2 * TAG_LEN
            || !lowercase_hex
            || hex::decode_to_slice(&*raw.tag, &mut tag).is_err()
        {
            return Err(DecodeError::BadTag);
        }
        Ok(Unverified {
            header: Header {
                direction,
                device_id,
                session: raw.session,
                counter: raw.counter,
            },
            encoding: Encoding::Json,
            message_type,
            body: Cow::Owned(raw.body.into_bytes()),
            tag,
        })
    }

    /// The header, not yet authenticated: use it only to find the key.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The message type, not yet authenticated.
    pub fn message_type(&self) -> MessageType {
        self.message_type
    }

    /// Checks that the message travels in `M`'s direction, is for or from `device`, and carries
    /// a tag made with `key`; then decodes and validates the body.
    pub fn verify<M: Payload>(
        &self,
        device: &DeviceId,
        key: &DeviceKey,
    ) -> Result<Envelope<M>, DecodeError> {
        if self.header.direction != M::DIRECTION || self.message_type.direction() != M::DIRECTION {
            return Err(DecodeError::WrongDirection);
        }
        if self.header.device_id != *device {
            return Err(DecodeError::WrongDevice {
                expected: device.to_string(),
                got: self.header.device_id.to_string(),
            });
        }
        let mut mac = key.mac();
        header_bytes(
            &self.header,
            self.encoding,
            self.message_type,
            self.body.len() as u16,
            |b| mac.update(b),
        );
        mac.update(&self.body);
        mac.verify_truncated_left(&self.tag)
            .map_err(|_| DecodeError::BadTag)?;
        self.decode_unverified()
    }

    /// The command id in a command's body (`unlock`, `configure`), read without decoding the
    /// rest: how a locker names a command it refuses as `bad_tag` or `malformed` (PROTOCOL.md
    /// §7.6). `None` for other types, or when the body holds no id in range.
    pub fn command_id_hint(&self) -> Option<crate::CommandId> {
        #[derive(Deserialize)]
        struct IdOnly {
            command_id: u64,
        }
        if !matches!(
            self.message_type,
            MessageType::Unlock | MessageType::Configure
        ) {
            return None;
        }
        let id = match self.encoding {
            Encoding::Binary => u64::from_be_bytes(self.body.get(..8)?.try_into().ok()?),
            Encoding::Json => {
                serde_json::from_slice::<IdOnly>(&self.body)
                    .ok()?
                    .command_id
            }
        };
        crate::CommandId::new(id)
    }

    /// Decodes the body **without** checking the tag. Only for building a refusal (a locker
    /// answering `BadTag` needs the command id); never act on the result.
    pub fn decode_unverified<M: Payload>(&self) -> Result<Envelope<M>, DecodeError> {
        if self.header.direction != M::DIRECTION || self.message_type.direction() != M::DIRECTION {
            return Err(DecodeError::WrongDirection);
        }
        let message = match self.encoding {
            Encoding::Binary => M::read_binary(self.message_type, &self.body)?,
            Encoding::Json => M::read_json(self.message_type, &self.body)?,
        };
        let envelope = Envelope {
            header: self.header,
            message,
        };
        check_hello_session(&envelope)?;
        Ok(envelope)
    }
}

/// A `Hello` must announce the session its own envelope carries.
fn check_hello_session<M: Payload>(envelope: &Envelope<M>) -> Result<(), DecodeError> {
    match envelope.message.announced_session() {
        Some(body) if body != envelope.header.session => Err(DecodeError::SessionMismatch {
            envelope: envelope.header.session,
            body,
        }),
        _ => Ok(()),
    }
}
