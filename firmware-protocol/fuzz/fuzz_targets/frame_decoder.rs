//! Feeds arbitrary bytes, in chunks whose sizes come from the input, to the serial frame decoder.
//! It must never panic and never hold more than one maximum frame.
#![no_main]

use bytes::BytesMut;
use firmware_protocol::{FrameCodec, MAX_FRAME, Unverified};
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, bytes)) = data.split_first() else {
        return;
    };
    let mut codec = FrameCodec::new();
    let mut buf = BytesMut::new();
    for piece in bytes.chunks(usize::from(chunk).max(1)) {
        buf.extend_from_slice(piece);
        while let Ok(Some(frame)) = codec.decode(&mut buf) {
            let _ = Unverified::parse_binary(&frame.envelope);
        }
        assert!(buf.len() < MAX_FRAME);
    }
    while let Ok(Some(_)) = codec.decode_eof(&mut buf) {}
    assert!(buf.is_empty());
});
