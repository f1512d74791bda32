//! Feeds arbitrary bytes to both envelope parsers and decodes whatever parses.
#![no_main]

use firmware_protocol::{DeviceSecret, Downlink, Unverified, Uplink};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = DeviceSecret::from_bytes([0; 32]).tag_key();
    for raw in [Unverified::parse_binary(data).ok(), Unverified::parse_json(data).ok()]
        .into_iter()
        .flatten()
    {
        let device = raw.header().device_id;
        let _ = raw.verify::<Uplink>(&device, &key);
        let _ = raw.decode_unverified::<Uplink>();
        let _ = raw.decode_unverified::<Downlink>();
    }
});
