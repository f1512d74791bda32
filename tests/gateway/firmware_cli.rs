//! `locker-gateway firmware upload|list` (issue 24): a signed image from a file is checked
//! against LOCKER_FIRMWARE_KEYS and stored, a tampered one refused with a message and nothing
//! stored. A real process on an edge data directory.

use ed25519_dalek::{Signer, SigningKey};
use sha2::{Digest, Sha256};

use crate::helpers::tempfile_dir::Dir;
use crate::process::run_binary_with_output;

#[test]
fn the_command_line_uploads_a_signed_image_and_refuses_a_tampered_one() {
    let dir = Dir::new();
    let data = dir.path().display().to_string();
    let key = SigningKey::from_bytes(&[9; 32]);
    let keys = format!("acme={}", hex::encode(key.verifying_key().to_bytes()));
    let env = [
        ("LOCKER_DATA_DIR", data.as_str()),
        ("LOCKER_FIRMWARE_KEYS", keys.as_str()),
    ];
    let (code, _, stderr) = run_binary_with_output(&["migrate"], &env);
    assert_eq!(code, Some(0), "{stderr}");
    let image: Vec<u8> = (0..4096u32).map(|i| (i % 253) as u8).collect();
    let file = dir.path().join("fw.bin");
    std::fs::write(&file, &image).expect("written");
    let hash: [u8; 32] = Sha256::digest(&image).into();
    let manifest = firmware_protocol::image::manifest("3.0.0", 4096, &hash).expect("manifest");
    let signature = hex::encode(key.sign(&manifest).to_bytes());
    let path = file.display().to_string();
    let upload = |signature: &str| {
        run_binary_with_output(
            &[
                "firmware",
                "upload",
                "--file",
                &path,
                "--version",
                "3.0.0",
                "--models",
                "lk-4",
                "--signature",
                signature,
            ],
            &env,
        )
    };
    let mut tampered = image.clone();
    tampered[0] ^= 1;
    std::fs::write(&file, &tampered).expect("written");
    let (code, _, stderr) = upload(&signature);
    assert_ne!(code, Some(0));
    assert!(stderr.contains("signature does not hold"), "{stderr}");
    std::fs::write(&file, &image).expect("written");
    let (code, stdout, stderr) = upload(&signature);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains("firmware 3.0.0 stored") && stdout.contains("signed by acme"),
        "{stdout}"
    );
    let (code, stdout, _) = run_binary_with_output(&["firmware", "list"], &env);
    assert_eq!(code, Some(0));
    assert_eq!(stdout.lines().count(), 2, "one image: {stdout}");
    assert!(stdout.contains(&hex::encode(hash)), "{stdout}");
}
