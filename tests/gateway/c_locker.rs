//! The C library's example MQTT locker (`firmware-protocol/c/examples/mqtt_locker.c`, libmosquitto)
//! against the real gateway, on the embedded broker's TLS listener with a certificate of a test
//! authority: online, an unlock and its door events, a forced door's alarm, a rental, a lost
//! connection (a new session, the will), and a power cut mid-command settled by asking the
//! rebooted locker.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use locker_gateway::command::{CommandError, DoorResult};
use locker_gateway::config::MqttsListener;
use serde_json::json;
use sqlx::PgPool;

use crate::broker_tls::{Authority, Files, server_names};
use crate::c_build::{Process, example};
use crate::helpers::{Backend, TestApp, device, eventually, expect_event, free_addr};
use crate::rentals::{funded, money, plan, rent};

const ID: &str = "c-locker";

/// The gateway with a TLS listener whose certificate `ca` signed; its address.
async fn gateway(pool: PgPool, ca: &Authority, files: &Files) -> (TestApp, SocketAddr) {
    let (cert, key) = ca.issue(server_names());
    let cert = files.write("server.pem", &cert);
    let key = files.write("server.key", &key);
    let chosen = Arc::new(Mutex::new(None));
    let seen = chosen.clone();
    let app = Backend::Fleet(pool)
        .spawn_with(move |config| {
            let addr = free_addr();
            *seen.lock().expect("addr") = Some(addr);
            config.mqtts = Some(MqttsListener {
                addr,
                cert: cert.clone(),
                key: key.clone(),
                client_ca: None,
                client_cert_required: false,
            });
        })
        .await;
    let addr = chosen.lock().expect("addr").expect("an address");
    (app, addr)
}

async fn start_locker(addr: SocketAddr, ca: &std::path::Path, secret: &str) -> Process {
    let exe = example("mqtt_locker", &["mosquitto"]);
    let port = addr.port().to_string();
    let ca = ca.display().to_string();
    Process::start(
        &exe,
        &["127.0.0.1", &port, &ca, ID, secret, "4"],
        &[("LP_EXAMPLE_RECONNECT_MS", "200")],
    )
    .await
}

async fn sensor(pool: &PgPool, door: i32) -> String {
    sqlx::query_scalar("SELECT sensor FROM doors WHERE device_id = $1 AND door = $2")
        .bind(ID)
        .bind(door)
        .fetch_one(pool)
        .await
        .unwrap_or_default()
}

async fn session(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT COALESCE(session, 0) FROM devices WHERE id = $1")
        .bind(ID)
        .fetch_one(pool)
        .await
        .expect("device")
}

#[sqlx::test]
async fn the_c_mqtt_locker_works_with_the_gateway_over_tls(pool: PgPool) {
    let (ca, files) = (Authority::new("c-locker test CA"), Files::new());
    let ca_file = files.write("ca.pem", &ca.pem());
    let (app, addr) = gateway(pool.clone(), &ca, &files).await;
    let secret = app.provision(ID, 4).await.secret.mqtt_password();
    let mut locker = start_locker(addr, &ca_file, &secret).await;
    eventually("the locker online", || async { app.online(ID).await }).await;
    let firmware: String = sqlx::query_scalar("SELECT firmware FROM devices WHERE id = $1")
        .bind(ID)
        .fetch_one(&pool)
        .await
        .expect("device");
    assert_eq!(firmware, "c-mqtt-locker-1.0");
    // The heartbeat right after the hello: every door known at once.
    eventually("door 4 read", || async {
        sensor(&pool, 4).await == "closed"
    })
    .await;

    let commands = app.app.commands();
    let opened = commands.unlock(device(ID), 3).await.expect("executed");
    assert_eq!(opened.door, Some(DoorResult::Opened));
    assert_eq!(
        locker.lines("pulse"),
        vec![format!("pulse 3 {}", opened.command_id)]
    );
    eventually("door 3 open", || async { sensor(&pool, 3).await == "open" }).await;
    locker.tell("close 3").await;
    eventually("door 3 closed", || async {
        sensor(&pool, 3).await == "closed"
    })
    .await;

    let mut events = app.app.events();
    locker.tell("force 1").await;
    expect_event(&mut events, "alarm.forced_open", ID).await;

    plan(&app).await;
    let (token, user) = funded(&app, "m@example.com", 5000).await;
    let started = rent(&app, &token, json!({ "device_id": ID, "door": 2 })).await;
    assert_eq!(started.status(), 201);
    let rental: serde_json::Value = started.json().await.expect("rental");
    assert_eq!(money(&app, user).await, (3000, 2000));
    locker.tell("close 2").await;
    let end = app
        .http
        .post(app.url(&format!(
            "/v1/rentals/{}/end",
            rental["id"].as_str().expect("id")
        )))
        .bearer_auth(&token)
        .send()
        .await
        .expect("sent");
    assert_eq!(end.status(), 200);
    assert_eq!(money(&app, user).await, (5000, 0));

    // A lost connection: the will marks it offline, it comes back in a new session.
    let before = session(&pool).await;
    locker.tell("drop").await;
    eventually("a new session", || async {
        session(&pool).await != before && app.online(ID).await
    })
    .await;
    let again = commands.unlock(device(ID), 4).await.expect("executed");
    assert_eq!(again.door, Some(DoorResult::Opened));

    // A power cut right after a pulse: no answer; the rebooted locker is asked and does not know
    // the command, which is recorded unknown and never sent again.
    locker.tell("cut").await;
    let cut = commands.unlock(device(ID), 1).await;
    assert!(matches!(cut, Err(CommandError::Timeout { .. })), "{cut:?}");
    assert_eq!(locker.child.wait().await.expect("ended").code(), Some(75));
    let pulses = locker.lines("pulse").len();
    assert_eq!(
        pulses, 5,
        "unlock, rental start and end, after the drop, the cut one"
    );
    let rebooted = start_locker(addr, &ca_file, &secret).await;
    expect_event(&mut events, "command.unknown", ID).await;
    let after = commands.unlock(device(ID), 2).await.expect("executed");
    assert_eq!(
        rebooted.lines("pulse"),
        vec![format!("pulse 2 {}", after.command_id)],
        "the unsettled command was never sent into the new session"
    );
}
