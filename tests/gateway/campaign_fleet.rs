//! The proof (issue 24), at fleet size: one campaign over 200 simulated MQTT lockers and
//! a cabinet of two serial lock boards in three waves, with a 16 KiB image. Named lockers fail
//! to boot the new image and are rolled back; one loses its power mid-download and resumes where
//! it stopped; the waves start in order; a tampered image is refused at upload; rentals go on
//! while the fleet downloads. Then a second campaign whose first wave fails more than its error
//! threshold stops by itself.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};
use simulator::Updater;
use simulator::mqtt::Happening;
use simulator::serial::SerialKnob;

use crate::accounts::operator;
use crate::campaigns::{campaign, until_state, upload};
use crate::firmware::{key, sign, vendor};
use crate::helpers::{Backend, eventually, on_storage};
use crate::rentals::{funded, money, plan, rent};

const LOCKERS: usize = 200;
/// Lockers set to fail to boot the new image: three of the last wave.
const FAILING: [usize; 3] = [150, 170, 190];
/// The locker whose power is cut after six chunks.
const CUT_OFF: usize = 77;

#[sqlx::test]
async fn two_hundred_lockers_and_a_cabinet_are_updated_in_three_waves(pool: sqlx::PgPool) {
    let acme = key(31);
    let keys = vec![vendor("acme", &acme, None)];
    let (app, bus) =
        crate::serial::cabinet_with(Backend::Fleet(pool), Duration::from_millis(100), move |c| {
            c.firmware.keys = keys.clone();
            c.rollout_tick = Duration::from_millis(100);
            c.rate_limits.per_user_per_minute = 100_000;
            c.rate_limits.per_ip_per_minute = 100_000;
        })
        .await;
    let admin = operator(&app, "ops@example.com").await;
    // A tampered image is refused at upload; nothing is stored.
    let image = crate::campaigns::image();
    let mut tampered = image.clone();
    tampered[100] ^= 1;
    let signature = sign(&acme, "2.0.0", &image);
    let (status, body) =
        crate::firmware::upload_for(&app, &admin, ("2.0.0", "test"), &signature, tampered).await;
    assert_eq!(
        (status, body["code"].clone()),
        (422, json!("bad_signature"))
    );
    let image_id = upload(&app, &admin, &acme, "2.0.0").await;

    let trusted = acme.verifying_key().to_bytes();
    let mut handles = Vec::new();
    for i in 0..LOCKERS {
        let creds = app.provision(&format!("lk-{i:03}"), 4).await;
        // Chunks of 4 KiB (four per locker) keep the test light beside the others running at
        // once; the cut-off locker takes 1 KiB chunks, sixteen of them.
        let chunk = if i == CUT_OFF { 1024 } else { 4096 };
        let mut updater = Updater::new(vec![trusted], chunk, 64 * 1024);
        updater.faults.fail_boot = FAILING.contains(&i);
        if i == CUT_OFF {
            updater.faults.power_cut_after = Some(6);
        }
        handles.push(app.locker_with(&creds, Duration::from_secs(60), |c| {
            c.firmware = Some("1.0.0".into());
            c.updater = Some(updater);
        }));
    }
    // A locker outside the campaign, for a rental while the fleet downloads.
    let renter_locker = app.provision("shop-1", 4).await;
    let _renter_handle = app.locker(&renter_locker, Duration::from_secs(60));
    for address in [1u8, 2] {
        let updater = Updater::new(vec![trusted], 512, 64 * 1024);
        bus.turn(SerialKnob::Updater(address, Box::new(updater)))
            .await;
        bus.turn(SerialKnob::Reboot(address)).await;
    }
    eventually(
        "every locker and board announces update support",
        || async {
            let sql = "SELECT COUNT(*) FROM devices WHERE update_chunk IS NOT NULL AND online";
            let n: i64 = on_storage!(&app.storage, |pool| sqlx::query_scalar(sql)
                .fetch_one(pool)
                .await
                .expect("count"));
            n == LOCKERS as i64 + 2
        },
    )
    .await;
    let mut cut_off = handles[CUT_OFF].watch();
    let mut events = app.app.events();
    let created = campaign(
        &app,
        &admin,
        json!({
            "name": "2.0.0 fleet",
            "image_id": image_id,
            "waves": [{ "percent": 10 }, { "percent": 30 }, { "percent": 100 }],
            "success_threshold": 95,
            "error_threshold": 5,
        }),
    )
    .await;
    let sizes: Vec<i64> = created["waves"]
        .as_array()
        .expect("waves")
        .iter()
        .map(|w| w["size"].as_i64().expect("size"))
        .collect();
    assert_eq!(
        sizes,
        vec![21, 61, 120],
        "202 lockers: 10 % and 30 % rounded up, the rest"
    );
    let id = created["id"].as_i64().expect("id");

    // Rentals go on meanwhile.
    plan(&app).await;
    let (token, user) = funded(&app, "renter@example.com", 5000).await;
    let started = rent(&app, &token, json!({ "device_id": "shop-1", "door": 1 })).await;
    assert_eq!(started.status(), 201);
    assert_eq!(money(&app, user).await, (3000, 2000));

    let done = until_state(&app, &admin, id, "finished").await;
    let lockers = done["lockers"].as_array().expect("lockers");
    assert_eq!(lockers.len(), LOCKERS + 2);
    let mut states: HashMap<String, usize> = HashMap::new();
    for l in lockers {
        *states
            .entry(l["state"].as_str().expect("state").to_owned())
            .or_default() += 1;
        let device = l["device_id"].as_str().expect("device");
        let failing = FAILING.iter().any(|i| device == format!("lk-{i:03}"));
        let expected = if failing { "rolled_back" } else { "installed" };
        assert_eq!(l["state"], json!(expected), "{device}");
    }
    assert_eq!(
        states.get("installed"),
        Some(&(LOCKERS + 2 - FAILING.len()))
    );
    for board in ["cab-b1", "cab-b2"] {
        let history = app
            .get_json(&format!("/v1/devices/{board}/firmware"), &admin)
            .await;
        assert_eq!(history["current"], json!("2.0.0"), "{board}");
    }
    let history = app.get_json("/v1/devices/lk-150/firmware", &admin).await;
    assert_eq!(history["current"], json!("1.0.0"), "rolled back");

    // The waves started in order, each once the one before was 95 % installed.
    let mut wave_of: HashMap<i64, i64> = HashMap::new();
    for l in lockers {
        wave_of.insert(
            l["update_id"].as_i64().expect("id"),
            l["wave"].as_i64().expect("wave"),
        );
    }
    let mut finished = [0i64; 3];
    let mut started_waves = Vec::new();
    while let Ok(Ok(event)) = tokio::time::timeout(Duration::from_secs(5), events.recv()).await {
        match event.event_type.as_str() {
            "firmware.wave_started" => {
                let wave = event.data["wave"].as_i64().expect("wave");
                if wave > 0 {
                    let before = (wave - 1) as usize;
                    assert!(
                        finished[before] * 100 >= sizes[before] * 95,
                        "wave {wave} started with {} of {} installed before it",
                        finished[before],
                        sizes[before]
                    );
                }
                started_waves.push(wave);
            }
            "firmware.update_finished" if event.data["campaign_id"] == json!(id) => {
                finished[wave_of[&event.data["update_id"].as_i64().expect("id")] as usize] += 1;
            }
            "firmware.campaign_finished" => break,
            _ => {}
        }
    }
    assert_eq!(started_waves, vec![0, 1, 2]);
    // The cut-off locker got each of its 16 chunks once: it resumed, it did not start over.
    let mut chunks = 0;
    while let Ok(happening) = cut_off.try_recv() {
        if let Happening::Received(payload) = happening
            && String::from_utf8_lossy(&payload).contains("\"type\":\"chunk\"")
        {
            chunks += 1;
        }
    }
    assert_eq!(chunks, 16, "lk-{CUT_OFF:03} was sent each chunk once");

    // A second campaign, to the lockers still on 1.0.0 (the three rolled back): its first wave
    // fails at once, more than its error threshold allows, and it stops by itself.
    let image_id = upload(&app, &admin, &acme, "2.0.1").await;
    let created = campaign(
        &app,
        &admin,
        json!({
            "name": "2.0.1 retry",
            "image_id": image_id,
            "target": { "from_version": "1.0.0" },
            "waves": [{ "count": 1 }, { "percent": 100 }],
            "success_threshold": 100,
            "error_threshold": 0,
        }),
    )
    .await;
    assert_eq!(
        created["lockers"].as_array().map(Vec::len),
        Some(FAILING.len())
    );
    let stopped = until_state(&app, &admin, created["id"].as_i64().expect("id"), "stopped").await;
    assert!(
        stopped["stop_reason"]
            .as_str()
            .is_some_and(|r| r.contains("wave 1 failed 100%")),
        "{stopped:#}"
    );
    let later: Vec<&Value> = stopped["lockers"]
        .as_array()
        .expect("lockers")
        .iter()
        .filter(|l| l["wave"] == json!(1))
        .collect();
    assert!(
        later.iter().all(|l| l["state"] == json!("cancelled")),
        "{stopped:#}"
    );
}
