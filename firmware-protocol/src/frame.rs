//! The serial-line frame around a binary envelope, and its `tokio_util` codec.
//!
//! ```text
//! A5 5A | length: u16 BE | address: u8 | envelope: `length` bytes | CRC-16/MODBUS: u16 LE
//! ```
//! The CRC covers `length`, `address` and the envelope (not the start marker) and is sent low
//! byte first, as Modbus RTU does. `length` counts the envelope only.
//!
//! The decoder waits until a whole frame is buffered, refuses an impossible length before reading
//! any body, and on anything wrong (junk, bad length, bad CRC, bad address) drops one byte and
//! looks for the next start marker, so a valid frame after noise is always found. It never holds
//! more than [`MAX_FRAME`] bytes of an unfinished frame and never panics.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use crc::{CRC_16_MODBUS, Crc};
use tokio_util::codec::{Decoder, Encoder};

use crate::envelope::{MAX_ENVELOPE, MIN_ENVELOPE};

/// The two bytes every frame starts with.
pub const START: [u8; 2] = [0xA5, 0x5A];
/// Bytes before the envelope: start marker, length, address.
pub const FRAME_HEAD: usize = 5;
/// Bytes after the envelope: the CRC.
pub const FRAME_TAIL: usize = 2;
/// Largest frame on the wire.
pub const MAX_FRAME: usize = FRAME_HEAD + MAX_ENVELOPE + FRAME_TAIL;
/// Lowest valid bus address (0 is reserved for broadcast, which this protocol does not use).
pub const MIN_ADDRESS: u8 = 1;
/// Highest valid bus address, as in Modbus.
pub const MAX_ADDRESS: u8 = 247;

const CRC16: Crc<u16> = Crc::<u16>::new(&CRC_16_MODBUS);

/// CRC-16/MODBUS (poly 0x8005 reflected, init 0xFFFF, no final XOR). `crc16(b"123456789")` is
/// `0x4B37`.
pub fn crc16(bytes: &[u8]) -> u16 {
    CRC16.checksum(bytes)
}

/// One frame: which board, and the envelope it carries (not yet parsed or verified).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The board's bus address, `1..=247`: the addressee of a request, the sender of an answer.
    pub address: u8,
    /// A binary envelope; see [`crate::Unverified::parse_binary`].
    pub envelope: Bytes,
}

/// Why a frame could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("bus address {0} is outside 1..=247")]
    /// The address is outside `1..=247`.
    BadAddress(u8),
    #[error("envelope of {0} bytes does not fit a frame")]
    /// The envelope is shorter or longer than a frame allows.
    BadLength(usize),
    #[error(transparent)]
    /// The serial port failed.
    Io(#[from] std::io::Error),
}

/// Counters of what the decoder threw away, for logs and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FrameStats {
    /// Frames delivered.
    pub frames: u64,
    /// Bytes skipped while looking for a start marker or after a bad frame.
    pub skipped_bytes: u64,
    /// Candidate frames refused for an impossible length.
    pub bad_length: u64,
    /// Candidate frames refused for a CRC mismatch.
    pub bad_crc: u64,
    /// Frames with a valid CRC but an address outside `1..=247`.
    pub bad_address: u64,
}

/// `Decoder` + `Encoder` for [`Frame`]s.
#[derive(Debug, Default)]
pub struct FrameCodec {
    stats: FrameStats,
}

impl FrameCodec {
    /// A codec with zeroed counters.
    pub fn new() -> Self {
        Self::default()
    }

    /// What has been decoded and dropped so far.
    pub fn stats(&self) -> FrameStats {
        self.stats
    }

    /// Drops `n` bytes that are not (the start of) a frame.
    fn skip(&mut self, src: &mut BytesMut, n: usize) {
        src.advance(n);
        self.stats.skipped_bytes += n as u64;
    }
}

impl Frame {
    /// Appends the frame's bytes to `dst`.
    pub fn write_to(&self, dst: &mut BytesMut) -> Result<(), FrameError> {
        if !(MIN_ADDRESS..=MAX_ADDRESS).contains(&self.address) {
            return Err(FrameError::BadAddress(self.address));
        }
        let len = self.envelope.len();
        if !(MIN_ENVELOPE..=MAX_ENVELOPE).contains(&len) {
            return Err(FrameError::BadLength(len));
        }
        dst.reserve(FRAME_HEAD + len + FRAME_TAIL);
        let start = dst.len();
        dst.put_slice(&START);
        dst.put_u16(len as u16);
        dst.put_u8(self.address);
        dst.put_slice(&self.envelope);
        let crc = crc16(&dst[start + START.len()..]);
        dst.put_u16_le(crc);
        Ok(())
    }

    /// The frame as bytes.
    pub fn to_bytes(&self) -> Result<Bytes, FrameError> {
        let mut out = BytesMut::new();
        self.write_to(&mut out)?;
        Ok(out.freeze())
    }
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        loop {
            // 1. Find a start marker; keep a trailing 0xA5 that may be its first half.
            match src.windows(2).position(|w| w == START) {
                Some(0) => {}
                Some(at) => self.skip(src, at),
                None => {
                    let keep = usize::from(src.last() == Some(&START[0]));
                    let junk = src.len() - keep;
                    self.skip(src, junk);
                    return Ok(None);
                }
            }
            // 2. Read the length before anything else and refuse an impossible one.
            if src.len() < FRAME_HEAD {
                src.reserve(FRAME_HEAD - src.len());
                return Ok(None);
            }
            let len = usize::from(u16::from_be_bytes([src[2], src[3]]));
            if !(MIN_ENVELOPE..=MAX_ENVELOPE).contains(&len) {
                self.stats.bad_length += 1;
                self.skip(src, 1);
                continue;
            }
            // 3. Wait for the whole frame.
            let total = FRAME_HEAD + len + FRAME_TAIL;
            if src.len() < total {
                src.reserve(total - src.len());
                return Ok(None);
            }
            // 4. Check the CRC and the address.
            let crc = u16::from_le_bytes([src[total - 2], src[total - 1]]);
            if crc16(&src[START.len()..total - FRAME_TAIL]) != crc {
                self.stats.bad_crc += 1;
                self.skip(src, 1);
                continue;
            }
            let address = src[4];
            if !(MIN_ADDRESS..=MAX_ADDRESS).contains(&address) {
                self.stats.bad_address += 1;
                self.skip(src, 1);
                continue;
            }
            let mut frame = src.split_to(total);
            frame.advance(FRAME_HEAD);
            frame.truncate(len);
            self.stats.frames += 1;
            return Ok(Some(Frame {
                address,
                envelope: frame.freeze(),
            }));
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        Ok(self.resync_stale(src))
    }
}

impl FrameCodec {
    /// Gives up on an unfinished frame: call it at the end of the stream or after the line has been
    /// silent for longer than the inter-frame gap (a corrupted length can otherwise make the decoder
    /// wait for bytes that never come). Drops bytes one at a time from the stale start and returns
    /// the next intact frame still in the buffer, if any.
    pub fn resync_stale(&mut self, src: &mut BytesMut) -> Option<Frame> {
        while !src.is_empty() {
            if let Ok(Some(frame)) = self.decode(src) {
                return Some(frame);
            }
            if !src.is_empty() {
                self.skip(src, 1);
            }
        }
        None
    }
}

impl Encoder<&Frame> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, frame: &Frame, dst: &mut BytesMut) -> Result<(), FrameError> {
        frame.write_to(dst)
    }
}

impl Encoder<Frame> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), FrameError> {
        frame.write_to(dst)
    }
}
