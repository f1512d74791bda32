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

#[tokio::test]
async fn the_command_line_starts_shows_and_steers_a_campaign() {
    let dir = Dir::new();
    let data = dir.path().display().to_string();
    let key = SigningKey::from_bytes(&[10; 32]);
    let keys = format!("acme={}", hex::encode(key.verifying_key().to_bytes()));
    let env = [
        ("LOCKER_DATA_DIR", data.as_str()),
        ("LOCKER_FIRMWARE_KEYS", keys.as_str()),
    ];
    let run = |args: &[&str]| run_binary_with_output(args, &env);
    assert_eq!(run(&["migrate"]).0, Some(0));
    for id in ["north-1", "north-2", "south-1"] {
        let (code, _, stderr) = run(&["provision", id, "--doors", "4", "--model", "lk-4"]);
        assert_eq!(code, Some(0), "{stderr}");
    }
    let image: Vec<u8> = (0..2048u32).map(|i| (i % 241) as u8).collect();
    let file = dir.path().join("fw.bin");
    std::fs::write(&file, &image).expect("written");
    let hash: [u8; 32] = Sha256::digest(&image).into();
    let manifest = firmware_protocol::image::manifest("4.0.0", 2048, &hash).expect("manifest");
    let signature = hex::encode(key.sign(&manifest).to_bytes());
    let path = file.display().to_string();
    let upload = ["firmware", "upload", "--file", &path, "--version", "4.0.0"];
    let (code, stdout, stderr) = run(&[
        &upload[..],
        &["--models", "lk-4", "--signature", &signature],
    ]
    .concat());
    assert_eq!(code, Some(0), "{stderr}");
    let image_id = stdout
        .split("(id ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .expect("id")
        .to_owned();
    let start = |prefix: &str| {
        run(&[
            "firmware",
            "campaign",
            "start",
            "--name",
            "north",
            "--image",
            &image_id,
            "--waves",
            "1,100%",
            "--success",
            "100",
            "--error",
            "0",
            "--id-prefix",
            prefix,
            "--window",
            "01:00-05:00",
            "--time-zone",
            "Europe/Berlin",
        ])
    };
    // No locker announced update support yet: nothing to start.
    let (code, _, stderr) = start("north-");
    assert_ne!(code, Some(0));
    assert!(stderr.contains("no locker matches"), "{stderr}");
    // Two of them say hello with max_chunk (as the gateway records it).
    let sqlite = dir.path().join(locker_gateway::config::SQLITE_FILE);
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", sqlite.display()))
        .await
        .expect("sqlite");
    sqlx::query("UPDATE devices SET update_chunk = 512, firmware = '3.0.0'")
        .execute(&pool)
        .await
        .expect("updated");
    pool.close().await;
    let (code, stdout, stderr) = start("north-");
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains("firmware 4.0.0 to 2 lockers in waves of 1, 1"),
        "{stdout}"
    );
    let (_, stdout, _) = run(&["firmware", "campaign", "show", "1"]);
    assert!(
        stdout.contains("campaign 1 (north): running") && stdout.contains("north-2"),
        "{stdout}"
    );
    assert!(!stdout.contains("south-1"), "{stdout}");
    let (code, stdout, _) = run(&["firmware", "campaign", "pause", "1"]);
    assert_eq!((code, stdout.trim()), (Some(0), "campaign 1 is paused"));
    let (code, _, stderr) = run(&["firmware", "campaign", "resume", "2"]);
    assert_ne!(code, Some(0), "no campaign 2: {stderr}");
    let (code, stdout, _) = run(&["firmware", "campaign", "cancel", "1"]);
    assert_eq!((code, stdout.trim()), (Some(0), "campaign 1 is cancelled"));
    let (_, stdout, _) = run(&["firmware", "campaign", "list"]);
    assert!(
        stdout.contains("cancelled") && stdout.contains("4.0.0"),
        "{stdout}"
    );
    let (code, _, stderr) = run(&[
        "firmware", "campaign", "start", "--name", "x", "--image", &image_id, "--waves", "ten",
    ]);
    assert_ne!(code, Some(0));
    assert!(
        stderr.contains("neither a count nor a percentage"),
        "{stderr}"
    );
}
