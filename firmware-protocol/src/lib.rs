//! The wire protocol between smart lockers and the locker gateway: the one definition both ends
//! implement. It knows nothing of the gateway.
//!
//! * [`message`]: every message, with its fields' types and ranges ([`Downlink`], [`Uplink`]).
//! * [`envelope`]: the authenticated envelope (session, counter, HMAC tag) in its binary form
//!   (serial lines) and its JSON form (MQTT).
//! * [`frame`]: the serial frame (start marker, length, bus address, CRC-16/MODBUS) and its codec.
//! * [`mqtt`]: the MQTT topic layout, QoS and presence payload.
//! * [`session`]: the replay rules of both ends (sessions, counters, repeated commands).
//! * [`identity`]: device ids, provisioning secrets and tag keys.
//! * [`update`] and [`image`]: firmware updates and the images' signatures.
//!
//! `PROTOCOL.md` beside this crate describes all of it for firmware authors, with test vectors
//! (`vectors/vectors.json`) that the tests check against this code.
//!
//! ```
//! use firmware_protocol::*;
//!
//! let secret = DeviceSecret::from_bytes([7; 32]);
//! let key = secret.tag_key();
//! let device = DeviceId::new("lk-0001").unwrap();
//! let command = Envelope {
//!     header: Header { direction: Direction::Down, device_id: device, session: 9, counter: 1 },
//!     message: Downlink::Unlock(Unlock {
//!         command_id: CommandId::new(42).unwrap(),
//!         door: 3,
//!         expires_at_ms: None,
//!     }),
//! };
//! let payload = command.seal_json(&key).unwrap();
//! let received = Unverified::parse_json(payload.as_bytes()).unwrap();
//! let opened: Envelope<Downlink> = received.verify(&device, &key).unwrap();
//! assert_eq!(opened, command);
//! ```

#![warn(missing_docs)]

pub mod binary;
pub mod envelope;
pub mod error;
pub mod frame;
pub mod identity;
pub mod image;
pub mod json;
pub mod message;
mod message_type;
pub mod mqtt;
pub mod outcome;
pub mod session;
pub mod update;
mod validate;
pub mod window;

pub use envelope::{
    ENVELOPE_VERSION, EncodeError, Encoding, Envelope, Header, MAX_BINARY_BODY, MAX_ENVELOPE,
    MAX_JSON_BODY, MAX_JSON_ENVELOPE, MIN_ENVELOPE, OLDEST_PROTOCOL_VERSION, PROTOCOL_VERSION,
    TAG_LEN, Unverified, seal_json_text,
};
pub use error::{DecodeError, InvalidMessage};
pub use frame::{Frame, FrameCodec, FrameError, FrameStats, MAX_FRAME};
pub use identity::{DeviceId, DeviceKey, DeviceSecret};
pub use message::*;
pub use mqtt::{Presence, Qos, Topic, TopicKind};
pub use session::{CommandGuard, ReplayError, SessionChange, UplinkGuard, Verdict};
pub use window::ReplayWindow;
