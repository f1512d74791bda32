//! A firmware campaign over a serial bus (issue 24): two lock boards take the image in chunks
//! that fit a frame (256 bytes on a serial line), sent only in the time commands and polls
//! leave, while unlocks to the same boards go on; on both backends.

use std::time::Duration;

use serde_json::json;
use simulator::Updater;
use simulator::serial::SerialKnob;

use crate::accounts::operator;
use crate::campaigns::{campaign, until_state, upload};
use crate::firmware::{key, vendor};
use crate::helpers::{eventually, in_both_modes, on_storage};

in_both_modes! {
async fn lock_boards_are_updated_between_commands_and_polls(backend: Backend) {
    let acme = key(21);
    let keys = vec![vendor("acme", &acme, None)];
    let (app, bus) = crate::serial::cabinet_with(backend, Duration::from_millis(100), move |c| {
        c.firmware.keys = keys.clone();
        c.rollout_tick = Duration::from_millis(50);
        c.rate_limits.per_user_per_minute = 100_000;
        c.rate_limits.per_ip_per_minute = 100_000;
    })
    .await;
    let admin = operator(&app, "ops@example.com").await;
    let image_id = upload(&app, &admin, &acme, "5.0.0").await;
    // The boards get an updater and power-cycle: their new session's hello announces it.
    for address in [1u8, 2] {
        let updater = Updater::new(vec![acme.verifying_key().to_bytes()], 512, 64 * 1024);
        bus.turn(SerialKnob::Updater(address, Box::new(updater))).await;
        bus.turn(SerialKnob::Reboot(address)).await;
    }
    eventually("both boards announce update support", || async {
        let sql = "SELECT COUNT(*) FROM devices WHERE update_chunk = 512";
        let n: i64 = on_storage!(&app.storage, |pool| sqlx::query_scalar(sql)
            .fetch_one(pool)
            .await
            .expect("count"));
        n == 2
    })
    .await;
    let created = campaign(&app, &admin, json!({
        "name": "boards",
        "image_id": image_id,
        "target": { "id_prefix": "cab-" },
        "waves": [{ "percent": 100 }],
        "success_threshold": 100,
        "error_threshold": 0,
    }))
    .await;
    let id = created["id"].as_i64().expect("id");
    // Unlocks go on while the boards download: each answered.
    let mut unlocked = 0;
    while unlocked < 6 {
        let progress = app.get_json(&format!("/v1/firmware/campaigns/{id}"), &admin).await;
        let downloading = progress["lockers"].as_array().is_some_and(|l| {
            l.iter().any(|l| l["state"] == json!("downloading"))
        });
        if !downloading && unlocked == 0 {
            tokio::time::sleep(Duration::from_millis(250)).await;
            continue;
        }
        let outcome = app.unlock("cab-b1", 2).await.expect("an unlock during the download");
        assert!(outcome.command_id > 0);
        unlocked += 1;
    }
    let done = until_state(&app, &admin, id, "finished").await;
    for locker in done["lockers"].as_array().expect("lockers") {
        assert_eq!(locker["state"], json!("installed"), "{done:#}");
        // 16 KiB in chunks of 256 bytes: the serial line's size, below the boards' 512.
        assert_eq!(locker["chunks"], json!(64), "{done:#}");
    }
    for board in ["cab-b1", "cab-b2"] {
        let history = app.get_json(&format!("/v1/devices/{board}/firmware"), &admin).await;
        assert_eq!(history["current"], json!("5.0.0"), "{board}: {history}");
    }
}
}
