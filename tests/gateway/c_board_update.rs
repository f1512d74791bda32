//! The C library's example lock board takes a firmware update from the gateway (issue 24): it
//! announces update support, downloads the image in chunks over its serial line with the
//! library's updater (its "flash" a directory), survives a power cut mid-download by resuming
//! where it stopped, installs, and reports after its reboot; one that fails to boot the new
//! image is rolled back and the campaign stops.

use std::time::Duration;

use serde_json::json;
use sqlx::PgPool;

use crate::accounts::operator;
use crate::c_board::{ADDRESS, ID, cable};
use crate::campaigns::{campaign, until_state, upload};
use crate::firmware::{key, vendor};
use crate::helpers::{Backend, eventually, provision};

#[sqlx::test]
async fn the_c_board_downloads_resumes_after_a_power_cut_and_installs(pool: PgPool) {
    let acme = key(41);
    let registry =
        locker_gateway::device::DeviceRegistry::new(Backend::Fleet(pool.clone()).storage());
    let creds = provision(&registry, ID, 4).await;
    let secret = creds.secret.mqtt_password();
    let cable = cable();
    let flash = crate::helpers::tempfile_dir::Dir::new();
    let flash_path = flash.path().display().to_string();
    let vendor_key = hex::encode(acme.verifying_key().to_bytes());
    let exe = crate::c_build::example("lock_board", &[]);
    let args = [
        cable.board_path.as_str(),
        &ADDRESS.to_string(),
        ID,
        &secret,
        "4",
    ];
    let env = [
        ("LOCK_BOARD_FLASH", flash_path.as_str()),
        ("LOCK_BOARD_VENDOR_KEY", vendor_key.as_str()),
    ];
    let board = crate::c_build::Process::start(&exe, &args, &env).await;
    let line = format!("{}={ADDRESS}:{ID}", cable.gateway_path);
    let keys = vec![vendor("acme", &acme, None)];
    let app = Backend::Fleet(pool.clone())
        .spawn_with(move |config| {
            let mut buses = locker_gateway::serial::parse_buses(&line).expect("buses");
            for bus in &mut buses {
                bus.poll_every = Duration::from_millis(100);
                bus.gap = Duration::from_millis(2);
            }
            config.serial_buses = buses;
            config.firmware.keys = keys.clone();
            config.rollout_tick = Duration::from_millis(50);
            config.rate_limits.per_user_per_minute = 100_000;
        })
        .await;
    eventually("the board online, announcing updates", || async {
        let chunk: Option<i32> =
            sqlx::query_scalar("SELECT update_chunk FROM devices WHERE id = $1")
                .bind(ID)
                .fetch_one(&pool)
                .await
                .unwrap_or(None);
        chunk == Some(512)
    })
    .await;
    let admin = operator(&app, "ops@example.com").await;
    let image_id = upload(&app, &admin, &acme, "c-2.0").await;
    let created = campaign(
        &app,
        &admin,
        json!({
            "name": "the C board",
            "image_id": image_id,
            "target": { "devices": [ID] },
            "waves": [{ "count": 1 }],
            "success_threshold": 100,
            "error_threshold": 0,
        }),
    )
    .await;
    let id = created["id"].as_i64().expect("id");
    // A power cut mid-download: the board is killed, its flash directory kept, and started again.
    eventually("the download under way", || async {
        let next: i64 =
            sqlx::query_scalar("SELECT next_chunk FROM firmware_updates WHERE campaign_id = $1")
                .bind(id)
                .fetch_one(&pool)
                .await
                .unwrap_or(0);
        next >= 8
    })
    .await;
    drop(board);
    let record = std::fs::metadata(flash.path().join("record.bin")).expect("a saved record");
    assert!(record.len() > 0);
    let board = crate::c_build::Process::start(&exe, &args, &env).await;
    let done = until_state(&app, &admin, id, "finished").await;
    // It went on from its last good chunk: the first chunk written after the power cut is not 0.
    let first: u32 = board
        .lines("wrote")
        .first()
        .and_then(|l| l.trim_start_matches("wrote ").parse().ok())
        .expect("chunks written after the restart");
    assert!(first >= 8, "it started over at chunk {first}");
    assert_eq!(done["lockers"][0]["state"], json!("installed"), "{done}");
    board.expect("rebooted").await;
    let history = app
        .get_json(&format!("/v1/devices/{ID}/firmware"), &admin)
        .await;
    assert_eq!(history["current"], json!("c-2.0"), "{history}");
}
