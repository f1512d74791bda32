//! Lock boards on serial buses (RS-485 or a plain UART), driven by the gateway through
//! `tokio-serial`, behind the same `send(device, command)` as MQTT lockers: a rental never knows
//! which transport its door is behind.
//!
//! One task owns each port (handle + task: the [`SerialRoute`]s the downlinks use, and the task
//! that reads and writes). RS-485 is half duplex: the gateway is the only master and has one
//! request outstanding per bus, leaves a gap between frames, retries a request that had no
//! answer (the same bytes: same command id, same counter, so a board executes it once), and
//! polls each board in turn; a board's answers go to the device link, which verifies and records
//! them exactly like MQTT uplinks. A board that does not answer several polls in a row is
//! offline until it answers again. A port that fails or disappears is reopened with backoff.
//!
//! The board protocol is an interface ([`BoardProtocol`]); our frame (PROTOCOL.md §5) is its
//! first implementation, so a vendor's lock-board protocol can be added without touching the bus.
//!
//! Adapters must switch direction by themselves (automatic direction control), as most USB
//! RS-485 adapters do.

mod bus;
mod schedule;

pub use crate::config::serial::{
    BusSettings, Parity, SettingsError, parse_buses, parse_buses_with,
};
pub use bus::{BusParts, BusStats, Port, open_tty, start, start_on};

/// The gateway a bus runs on, as the rest of the fleet must know it: each board on the bus is
/// recorded in the books as on this gateway's line (`devices.serial_gateway`), so the other
/// gateways seal its downlinks in binary and publish them on its `down` topic; with an external
/// broker this gateway subscribes to those topics (`relay`) and passes what comes to the board.
#[derive(Debug, Clone)]
pub struct LineOwner {
    /// The gateway's instance id.
    pub gateway: String,
    /// The subscriptions of the client whose messages reach the device link (`None` on the
    /// embedded broker: a single gateway, nothing to relay).
    pub relay: Option<crate::mqtt::Subscriptions>,
}

pub use crate::link::downlink::{SerialRequest, SerialRoute, SerialWork};
use bytes::{Bytes, BytesMut};

/// How requests and answers look on the wire for one family of boards.
pub trait BoardProtocol: Send + 'static {
    /// Appends the frame carrying `envelope` to the board at `address`.
    fn encode(&mut self, address: u8, envelope: &[u8], out: &mut BytesMut) -> Result<(), String>;
    /// Takes the next whole answer out of `input` as (address, envelope), if one is there; skips
    /// noise, counting it.
    fn decode(&mut self, input: &mut BytesMut) -> Option<(u8, Bytes)>;
    /// Frames and bytes dropped so far: (bad frames, skipped bytes).
    fn dropped(&self) -> (u64, u64);
}

/// Our frame: `A5 5A | length | address | envelope | CRC-16/MODBUS` (PROTOCOL.md §5.1).
#[derive(Debug, Default)]
pub struct LockerFrames {
    codec: firmware_protocol::FrameCodec,
}

impl BoardProtocol for LockerFrames {
    fn encode(&mut self, address: u8, envelope: &[u8], out: &mut BytesMut) -> Result<(), String> {
        firmware_protocol::Frame {
            address,
            envelope: Bytes::copy_from_slice(envelope),
        }
        .write_to(out)
        .map_err(|e| e.to_string())
    }

    fn decode(&mut self, input: &mut BytesMut) -> Option<(u8, Bytes)> {
        use tokio_util::codec::Decoder;
        match self.codec.decode(input) {
            Ok(Some(frame)) => Some((frame.address, frame.envelope)),
            _ => None,
        }
    }

    fn dropped(&self) -> (u64, u64) {
        let stats = self.codec.stats();
        (
            stats.bad_crc + stats.bad_length + stats.bad_address,
            stats.skipped_bytes,
        )
    }
}
