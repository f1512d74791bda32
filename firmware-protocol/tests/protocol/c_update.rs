//! The C library's firmware update side (`c/src/lp_update*.c`, `c/src/lp_ed25519.c`) under the
//! sanitizers: SHA-512 and CRC-32 known answers, its Ed25519 verifier against RFC 8032's vectors
//! and against signatures made here with random keys and messages, and the vectors' signed update
//! (manifest, signature under rotated keys, each chunk's CRC).

use ed25519_dalek::{Signer, SigningKey};
use firmware_protocol::image::RFC8032_TEST_VECTORS;
use sha2::{Digest, Sha256};

use crate::c_library::{SANITIZED, build, run};
use crate::vectors::load;

fn compact(hex_text: &str) -> String {
    let text: String = hex_text.split_whitespace().collect();
    if text.is_empty() { "-".into() } else { text }
}

fn input(random: usize) -> String {
    let mut lines = String::new();
    for (key, message, signature) in RFC8032_TEST_VECTORS {
        lines += &format!(
            "rfc8032 {} {} {}\n",
            compact(key),
            compact(message),
            compact(signature)
        );
    }
    // Keys and messages of every length the device meets (a manifest is 42 to 73 bytes).
    // Made from a hash chain: the same every run.
    let bytes = |label: &str, i: usize, n: usize| -> Vec<u8> {
        (0..n.div_ceil(32))
            .flat_map(|block| Sha256::digest(format!("{label}/{i}/{block}")))
            .take(n)
            .collect()
    };
    for i in 0..random {
        let secret: [u8; 32] = bytes("key", i, 32).try_into().expect("32 bytes");
        let message = bytes("message", i, i * 13 % 200);
        let key = SigningKey::from_bytes(&secret);
        let signature = key.sign(&message);
        lines += &format!(
            "rfc8032 {} {} {}\n",
            hex::encode(key.verifying_key().as_bytes()),
            compact(&hex::encode(&message)),
            hex::encode(signature.to_bytes())
        );
    }
    let u = load().update;
    lines += &format!(
        "update {} {} {} {} {} {} {}\n",
        u.vendor_public_key,
        u.image,
        u.version,
        u.chunk_size,
        u.sha256,
        u.signature,
        u.chunk_crc32.join(",")
    );
    lines
}

#[test]
fn the_c_library_checks_signatures_like_rfc_8032() {
    let exe = build(&["test/update_test.c"], "update_test_sanitized", SANITIZED);
    let out = run(&exe, &input(12));
    assert!(
        out.contains("16 RFC 8032 vectors, 1 update"),
        "the C test program checked fewer signatures than it was given: {out}"
    );
}

#[test]
fn the_c_updater_follows_the_lockers_rules() {
    // PROTOCOL.md §11.2 on a RAM slot: download, resume from the saved record, a write read back
    // wrong, three bad CRCs, another image, refused offers, install and boot (c/test/updater_test.c).
    let exe = build(
        &["test/updater_test.c"],
        "updater_test_sanitized",
        SANITIZED,
    );
    let update = input(0);
    let out = run(&exe, update.lines().last().expect("the update line"));
    assert!(out.contains("lp_updater: 23 checks passed"), "{out}");
}
