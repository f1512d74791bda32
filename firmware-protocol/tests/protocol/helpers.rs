//! Small helpers shared by the protocol tests.

use bytes::BytesMut;
use firmware_protocol::*;
use tokio_util::codec::Decoder;

pub fn device(id: &str) -> DeviceId {
    DeviceId::new(id).expect("valid test device id")
}

pub fn key(seed: u8) -> DeviceKey {
    DeviceSecret::from_bytes([seed; 32]).tag_key()
}

pub fn command_id(n: u64) -> CommandId {
    CommandId::new(n).expect("valid test command id")
}

pub fn header(direction: Direction, device_id: DeviceId, session: u32, counter: u32) -> Header {
    Header {
        direction,
        device_id,
        session,
        counter,
    }
}

/// Feeds `bytes` to a fresh decoder in chunks of `chunk` bytes, then ends the stream; returns the
/// frames and the decoder's counters. Checks after every call that the decoder holds no more than
/// one frame's worth of unfinished bytes.
pub fn decode_all(bytes: &[u8], chunk: usize) -> (Vec<Frame>, FrameStats) {
    let mut codec = FrameCodec::new();
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for piece in bytes.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        while let Some(frame) = codec
            .decode(&mut buf)
            .expect("decoder never errors on data")
        {
            frames.push(frame);
        }
        assert!(
            buf.len() < MAX_FRAME,
            "decoder holds {} bytes, more than a frame",
            buf.len()
        );
    }
    while let Some(frame) = codec
        .decode_eof(&mut buf)
        .expect("decoder never errors on data")
    {
        frames.push(frame);
    }
    assert!(buf.is_empty(), "bytes left after the end of the stream");
    (frames, codec.stats())
}

pub fn frame_bytes(address: u8, envelope: Vec<u8>) -> Vec<u8> {
    Frame {
        address,
        envelope: envelope.into(),
    }
    .to_bytes()
    .expect("valid frame")
    .to_vec()
}
