//! Firmware campaigns (issue 24) against simulated MQTT lockers that take updates: waves start in
//! order once the one before is installed, a locker whose power is cut mid-download resumes where
//! it stopped, a wave failing past the error threshold stops the campaign by itself, a locker
//! trusting another vendor key refuses the image, and commands to a locker installing are
//! refused; on both backends.

use std::time::Duration;

use ed25519_dalek::SigningKey;
use serde_json::{Value, json};
use simulator::mqtt::{Happening, LockerHandle};
use simulator::{UpdateFaults, Updater};

use crate::accounts::operator;
use crate::firmware::{key, sign, vendor};
use crate::helpers::{TestApp, eventually, in_both_modes};

const IMAGE_LEN: usize = 16 * 1024;
const CHUNK: u16 = 1024;

pub(crate) fn image() -> Vec<u8> {
    (0..IMAGE_LEN).map(|i| (i * 37 % 253) as u8).collect()
}

async fn app_with_vendor(
    backend: crate::helpers::Backend,
    acme: &SigningKey,
    install_timeout: Duration,
) -> TestApp {
    let keys = vec![vendor("acme", acme, None)];
    backend
        .spawn_with(move |c| {
            c.firmware.keys = keys.clone();
            c.firmware.install_timeout = install_timeout;
            c.rollout_tick = Duration::from_millis(50);
            // The tests follow campaigns closely through the API.
            c.rate_limits.per_user_per_minute = 100_000;
            c.rate_limits.per_ip_per_minute = 100_000;
        })
        .await
}

/// Uploads the image as `version`; its id.
pub(crate) async fn upload(app: &TestApp, token: &str, acme: &SigningKey, version: &str) -> String {
    let image = image();
    let signature = sign(acme, version, &image);
    let (status, body) =
        crate::firmware::upload_for(app, token, (version, "test"), &signature, image).await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().expect("id").to_owned()
}

/// Lockers `lk-00`.. on the gateway, running "1.0.0", taking updates with the vendor's key;
/// `tweak` sets a locker's faults by its number.
async fn lockers(
    app: &TestApp,
    n: usize,
    trusted: &SigningKey,
    tweak: impl Fn(usize, &mut Updater),
) -> Vec<LockerHandle> {
    let mut handles = Vec::new();
    for i in 0..n {
        let creds = app.provision(&format!("lk-{i:02}"), 4).await;
        let mut updater = Updater::new(vec![trusted.verifying_key().to_bytes()], CHUNK, 64 * 1024);
        tweak(i, &mut updater);
        handles.push(app.locker_with(&creds, Duration::from_secs(30), |c| {
            c.firmware = Some("1.0.0".into());
            c.updater = Some(updater);
        }));
    }
    let token = operator(app, "watch@example.com").await;
    eventually("every locker online", || async {
        let devices = app.get_json("/v1/devices?limit=100", &token).await;
        devices["items"].as_array().is_some_and(|items| {
            items.len() == n && items.iter().all(|d| d["online"] == json!(true))
        })
    })
    .await;
    handles
}

pub(crate) async fn campaign(app: &TestApp, token: &str, body: Value) -> Value {
    let (status, created) = app
        .json(
            reqwest::Method::POST,
            "/v1/firmware/campaigns",
            token,
            Some(&body),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    created
}

/// Waits until campaign `id` is in `state`; its progress then.
pub(crate) async fn until_state(app: &TestApp, token: &str, id: i64, state: &str) -> Value {
    let path = format!("/v1/firmware/campaigns/{id}");
    let mut last = Value::Null;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while tokio::time::Instant::now() < deadline {
        last = app.get_json(&path, token).await;
        if last["state"] == json!(state) {
            return last;
        }
        // Within the API's rate limit for one operator.
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("campaign {id} never {state}: {last}");
}

in_both_modes! {
async fn a_campaign_installs_wave_after_wave_and_a_cut_off_locker_resumes(backend: Backend) {
    let acme = key(11);
    let app = app_with_vendor(backend, &acme, Duration::from_secs(900)).await;
    let admin = operator(&app, "ops@example.com").await;
    let mut events = app.app.events();
    let image_id = upload(&app, &admin, &acme, "2.0.0").await;
    // lk-03 loses its power after writing five chunks; lk-05 takes the image in one chunk
    // (16 KiB, a 22 KB MQTT message).
    let vendor_key = acme.verifying_key().to_bytes();
    let handles = lockers(&app, 10, &acme, |i, u| {
        if i == 3 {
            u.faults = UpdateFaults { power_cut_after: Some(5), ..UpdateFaults::default() };
        }
        if i == 5 {
            *u = Updater::new(vec![vendor_key], 16 * 1024, 64 * 1024);
        }
    })
    .await;
    let mut cut_off = handles[3].watch();
    let created = campaign(&app, &admin, json!({
        "name": "2.0.0 everywhere",
        "image_id": image_id,
        "target": { "id_prefix": "lk-" },
        "waves": [{ "count": 2 }, { "percent": 30 }, { "count": 1 }],
        "success_threshold": 100,
        "error_threshold": 50,
    }))
    .await;
    let sizes: Vec<i64> = created["waves"].as_array().expect("waves").iter()
        .map(|w| w["size"].as_i64().expect("size")).collect();
    assert_eq!(sizes, vec![2, 3, 5], "{created:#}");
    let id = created["id"].as_i64().expect("id");
    let done = until_state(&app, &admin, id, "finished").await;
    for locker in done["lockers"].as_array().expect("lockers") {
        assert_eq!(locker["state"], json!("installed"), "{done:#}");
        assert_eq!(locker["from_version"], json!("1.0.0"));
        let chunks = if locker["device_id"] == json!("lk-05") { 1 } else { 16 };
        assert_eq!(locker["chunks"], json!(chunks), "{done:#}");
    }
    // Each locker runs the new image, as its last hello says.
    for i in 0..10 {
        let history = app.get_json(&format!("/v1/devices/lk-{i:02}/firmware"), &admin).await;
        assert_eq!(history["current"], json!("2.0.0"), "lk-{i:02}: {history}");
    }
    // Waves in order: every locker of a wave installed before the next wave started.
    let mut finished_in_wave = [0usize; 3];
    let mut wave_of = std::collections::HashMap::new();
    for locker in done["lockers"].as_array().expect("lockers") {
        wave_of.insert(locker["update_id"].as_i64().expect("id"), locker["wave"].as_i64().expect("wave"));
    }
    let mut started = Vec::new();
    let doc = locker_gateway::api::asyncapi::document();
    while let Ok(Ok(event)) = tokio::time::timeout(Duration::from_secs(5), events.recv()).await {
        // Every firmware event's data is as the AsyncAPI document says.
        if let Some(schema) = locker_gateway::api::asyncapi::event_data(&event.event_type) {
            crate::contract_check::check(&doc, &schema, &event.data, &event.event_type)
                .unwrap_or_else(|e| panic!("{e}: {}", event.data));
        }
        match event.event_type.as_str() {
            "firmware.wave_started" => {
                let wave = event.data["wave"].as_i64().expect("wave");
                if wave > 0 {
                    assert_eq!(
                        finished_in_wave[wave as usize - 1], sizes[wave as usize - 1] as usize,
                        "wave {wave} started before wave {} was installed", wave - 1
                    );
                }
                started.push(wave);
            }
            "firmware.update_finished" => {
                let wave = wave_of[&event.data["update_id"].as_i64().expect("id")];
                assert_eq!(event.data["result"], json!("installed"));
                finished_in_wave[wave as usize] += 1;
            }
            "firmware.campaign_finished" => break,
            _ => {}
        }
    }
    assert_eq!(started, vec![0, 1, 2]);
    // The cut-off locker resumed: it was sent each of its 16 chunks once, not 5 of them twice.
    let mut chunks = 0;
    let mut rebooted = false;
    while let Ok(happening) = cut_off.try_recv() {
        match happening {
            Happening::Received(payload) if String::from_utf8_lossy(&payload).contains("\"type\":\"chunk\"") => chunks += 1,
            Happening::Disconnected => rebooted = true,
            _ => {}
        }
    }
    assert!(rebooted, "the power cut and the install rebooted lk-03");
    assert_eq!(chunks, IMAGE_LEN / usize::from(CHUNK), "lk-03 got each chunk once");
}
}

in_both_modes! {
async fn a_wave_failing_past_the_error_threshold_stops_the_campaign(backend: Backend) {
    let acme = key(12);
    let app = app_with_vendor(backend, &acme, Duration::from_secs(900)).await;
    let admin = operator(&app, "ops@example.com").await;
    let image_id = upload(&app, &admin, &acme, "3.0.0").await;
    // lk-00 and lk-01 (the first wave) boot the new image and it does not confirm itself;
    // lk-02 trusts another vendor key and refuses the image.
    let other = key(13);
    let _handles = lockers(&app, 6, &acme, |i, u| {
        if i < 2 {
            u.faults.fail_boot = true;
        }
        if i == 2 {
            *u = Updater::new(vec![other.verifying_key().to_bytes()], CHUNK, 64 * 1024);
        }
    })
    .await;
    let created = campaign(&app, &admin, json!({
        "name": "3.0.0",
        "image_id": image_id,
        "waves": [{ "count": 3 }, { "count": 3 }],
        "success_threshold": 50,
        "error_threshold": 50,
        "window_start": "00:00",
        "window_end": "00:00",
        "time_zone": "Europe/Berlin",
    }))
    .await;
    let id = created["id"].as_i64().expect("id");
    let stopped = until_state(&app, &admin, id, "stopped").await;
    assert!(
        stopped["stop_reason"].as_str().is_some_and(|r| r.contains("wave 1 failed")
            && r.contains("above the error threshold of 50%")),
        "{stopped:#}"
    );
    let lockers = stopped["lockers"].as_array().expect("lockers");
    let state = |device: &str| {
        lockers.iter().find(|l| l["device_id"] == json!(device)).map(|l| (l["state"].clone(), l["reason"].clone()))
    };
    // One failure (33%) is within the threshold; the first rollback (66%) is not.
    assert_eq!(state("lk-02"), Some((json!("failed"), json!("bad_signature"))));
    let rolled_back = ["lk-00", "lk-01"]
        .iter()
        .filter(|d| state(d) == Some((json!("rolled_back"), Value::Null)))
        .count();
    assert!(rolled_back >= 1, "{stopped:#}");
    for later in ["lk-03", "lk-04", "lk-05"] {
        assert_eq!(state(later).map(|s| s.0), Some(json!("cancelled")), "{stopped:#}");
    }
    assert!(!stopped["waves"][1]["started"].as_bool().expect("started"));
    // The rolled-back lockers still run the old image.
    for device in ["lk-00", "lk-01"] {
        let history = app.get_json(&format!("/v1/devices/{device}/firmware"), &admin).await;
        assert_eq!(history["current"], json!("1.0.0"), "{device}");
    }
    // An ended campaign is neither paused nor resumed.
    let (status, body) = app
        .json(reqwest::Method::POST, &format!("/v1/firmware/campaigns/{id}/pause"), &admin, None)
        .await;
    assert_eq!((status, body["code"].clone()), (409, json!("campaign_state")));
}
}

in_both_modes! {
async fn commands_to_a_locker_installing_are_refused_and_operators_steer_campaigns(backend: Backend) {
    let acme = key(14);
    // A locker told to install that has not reported within 3 s has failed.
    let app = app_with_vendor(backend, &acme, Duration::from_secs(3)).await;
    let admin = operator(&app, "ops@example.com").await;
    let image_id = upload(&app, &admin, &acme, "4.0.0").await;
    let handles = lockers(&app, 2, &acme, |_, _| {}).await;
    // A window that is never open now: the lockers download and then wait to install.
    let closed = chrono::Utc::now() + chrono::Duration::hours(12);
    let start = closed.format("%H:%M").to_string();
    let end = (closed + chrono::Duration::minutes(1)).format("%H:%M").to_string();
    let created = campaign(&app, &admin, json!({
        "name": "4.0.0 tonight",
        "image_id": image_id,
        "target": { "devices": ["lk-00", "lk-01", "lk-99"] },
        "waves": [{ "percent": 100 }],
        "success_threshold": 100,
        "error_threshold": 100,
        "window_start": start,
        "window_end": end,
        "time_zone": "UTC",
    }))
    .await;
    let id = created["id"].as_i64().expect("id");
    assert_eq!(created["lockers"].as_array().expect("lockers").len(), 2, "lk-99 does not exist");
    let path = format!("/v1/firmware/campaigns/{id}");
    eventually("both lockers downloaded and waiting for the window", || async {
        let progress = app.get_json(&path, &admin).await;
        progress["lockers"].as_array().is_some_and(|l| l.iter().all(|l| l["state"] == json!("downloaded")))
    })
    .await;
    // A locker with a command in flight is not due its install: lk-01's unlock waits for a slow
    // door while the engine's query is asked.
    handles[1]
        .turn(simulator::mqtt::Knob::AckDelay(Duration::from_secs(3)))
        .await;
    let commands = app.app.commands().clone();
    let unlock =
        tokio::spawn(async move { commands.unlock(crate::helpers::device("lk-01"), 2).await });
    eventually("lk-01's unlock in flight", || async {
        let sql = "SELECT COUNT(*) FROM commands WHERE device_id = 'lk-01' AND state = 'sent'";
        let n: i64 = crate::helpers::on_storage!(&app.storage, |pool| sqlx::query_scalar(sql)
            .fetch_one(pool)
            .await
            .expect("count"));
        n == 1
    })
    .await;
    let due = locker_gateway::firmware::updates::due_installs(&app.storage, id, 10)
        .await
        .expect("due");
    let due: Vec<&str> = due.iter().map(|d| d.device_id.as_str()).collect();
    assert_eq!(due, vec!["lk-00"], "lk-01 has a command in flight");
    unlock.await.expect("joined").expect("executed");
    let due = locker_gateway::firmware::updates::due_installs(&app.storage, id, 10)
        .await
        .expect("due");
    assert_eq!(due.len(), 2, "once answered, lk-01 is due too");
    // A locker marked installing (as the engine does when it sends `install`) takes no command.
    let sql = "UPDATE firmware_updates SET state = 'installing', updated_at = $1
         WHERE device_id = 'lk-00'";
    crate::helpers::on_storage!(&app.storage, |pool| {
        sqlx::query(sql)
            .bind(chrono::Utc::now())
            .execute(pool)
            .await
            .expect("marked");
    });
    let (status, body) = app
        .json(reqwest::Method::POST, "/v1/devices/lk-00/doors/1/unlock", &admin, Some(&json!({ "reason": "check" })))
        .await;
    assert_eq!((status, body["code"].clone()), (409, json!("updating")), "{body}");
    let (status, _) = app
        .json(reqwest::Method::POST, "/v1/devices/lk-01/doors/1/unlock", &admin, Some(&json!({ "reason": "check" })))
        .await;
    assert_eq!(status, 200, "the other locker is not installing");
    // The console shows the campaign, its wave and its lockers, to an operator only.
    let console = |cookie: Option<String>| {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        let mut request = client.get(app.url(&format!("/console/firmware/campaigns/{id}")));
        if let Some(cookie) = cookie {
            request = request.header(reqwest::header::COOKIE, cookie);
        }
        request.send()
    };
    let page = console(Some(format!("lgw_console={admin}"))).await.expect("sent");
    assert_eq!(page.status().as_u16(), 200);
    let html = page.text().await.expect("html");
    for shown in ["4.0.0 tonight", "lk-00", "lk-01", "downloaded", "Pause", "Cancel"] {
        assert!(html.contains(shown), "the campaign page shows {shown}");
    }
    let anonymous = console(None).await.expect("sent");
    assert_eq!(anonymous.status().as_u16(), 303, "no session: to the login page");
    // lk-00 never reports: after the install deadline it has failed, and says why.
    eventually("lk-00 failed for want of a report", || async {
        let progress = app.get_json(&path, &admin).await;
        progress["lockers"].as_array().is_some_and(|l| {
            l.iter().any(|l| {
                l["device_id"] == json!("lk-00")
                    && l["state"] == json!("failed")
                    && l["reason"] == json!("no_report")
            })
        })
    })
    .await;
    // Pause, resume, cancel; a second cancel is refused.
    for (action, state) in [("pause", "paused"), ("resume", "running"), ("cancel", "cancelled")] {
        let (status, body) = app
            .json(reqwest::Method::POST, &format!("{path}/{action}"), &admin, None)
            .await;
        assert_eq!((status, body["state"].clone()), (200, json!(state)), "{action}: {body}");
    }
    let (status, body) = app.json(reqwest::Method::POST, &format!("{path}/cancel"), &admin, None).await;
    assert_eq!((status, body["code"].clone()), (409, json!("campaign_state")));
    // No locker in the target: refused, nothing started.
    let (status, body) = app
        .json(reqwest::Method::POST, "/v1/firmware/campaigns", &admin, Some(&json!({
            "name": "nobody", "image_id": image_id, "target": { "model": "other" },
            "waves": [{ "count": 1 }], "success_threshold": 100, "error_threshold": 0,
        })))
        .await;
    assert_eq!((status, body["code"].clone()), (422, json!("no_lockers")));
    let (status, body) = app
        .json(reqwest::Method::POST, "/v1/firmware/campaigns", &admin, Some(&json!({
            "name": "bad", "image_id": image_id, "waves": [{ "percent": 0 }],
            "success_threshold": 100, "error_threshold": 0,
        })))
        .await;
    assert_eq!((status, body["code"].clone()), (422, json!("validation_failed")), "{body}");
}
}
