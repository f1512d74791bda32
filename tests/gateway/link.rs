//! Lockers connect: presence, verification of every uplink, events. Real PostgreSQL, the real
//! embedded broker, simulated lockers over MQTT.

use std::time::Duration;

use firmware_protocol::{DeviceSecret, Presence, Topic};
use locker_gateway::app::App;
use simulator::mqtt::{Happening, Knob, expect};
use sqlx::PgPool;

use crate::helpers::{
    WAIT, device, eventually, expect_event, in_both_modes, link_next, spawn_app, test_config,
};

/// A locker that never sends a heartbeat of its own.
const SILENT: Duration = Duration::from_secs(3600);
/// A locker that beats (faster than the 1 s gateway heartbeat of the timeout tests).
const BEATING: Duration = Duration::from_millis(300);

async fn connected(
    locker: &simulator::mqtt::LockerHandle,
    watch: &mut tokio::sync::broadcast::Receiver<Happening>,
) -> u32 {
    let _ = locker;
    expect(watch, WAIT, |h| match h {
        Happening::Connected { session } => Some(*session),
        _ => None,
    })
    .await
    .expect("the simulated locker connected")
}

in_both_modes! {
async fn a_locker_that_says_hello_is_online_and_announced(backend: Backend) {
    let app = backend.spawn().await;
    let creds = app.provision("lk-1", 4).await;
    let mut events = app.app.events();
    let (_observer, mut observed) = app.tap("events/#");
    let locker = app.locker(&creds, BEATING);
    let mut watch = locker.watch();
    let session = connected(&locker, &mut watch).await;
    let online = expect_event(&mut events, "device.online", "lk-1").await;
    assert_eq!(online.data["session"], session, "{online:?}");
    assert!(app.online("lk-1").await);
    // The same event on MQTT, for external subscribers (device.provisioned may come first).
    let (mut topic, mut payload) = link_next(&mut observed).await;
    if topic == "events/device.provisioned" {
        (topic, payload) = link_next(&mut observed).await;
    }
    assert_eq!(topic, "events/device.online");
    let event: serde_json::Value = serde_json::from_slice(&payload).expect("json event");
    assert_eq!(event["id"], online.id.to_string());
    // Stored presence history.
    let logged: i64 = crate::rentals::scalar(
        &app,
        "SELECT count(*) FROM presence_log WHERE device_id = 'lk-1' AND online",
    )
    .await;
    assert_eq!(logged, 1);
}
}

in_both_modes! {
async fn a_silent_locker_goes_offline_after_three_heartbeats(backend: Backend) {
    let app = backend
        .spawn_with(|config| config.heartbeat = Duration::from_secs(1))
        .await;
    let creds = app.provision("lk-1", 4).await;
    let mut events = app.app.events();
    let locker = app.locker(&creds, SILENT); // connects, then never beats
    let mut watch = locker.watch();
    connected(&locker, &mut watch).await;
    expect_event(&mut events, "device.online", "lk-1").await;
    // Gateway heartbeat is 1 s in tests: offline after 3 s of silence.
    let offline = expect_event(&mut events, "device.offline", "lk-1").await;
    assert_eq!(offline.data["reason"], "heartbeat_timeout");
    assert!(!app.online("lk-1").await);
    // Any verified uplink in the same session brings it back.
    locker.turn(Knob::Heartbeat).await;
    let back = expect_event(&mut events, "device.online", "lk-1").await;
    assert_eq!(back.data["reason"], "uplink_resumed");
}
}

in_both_modes! {
async fn a_beating_locker_stays_online(backend: Backend) {
    let app = backend
        .spawn_with(|config| config.heartbeat = Duration::from_secs(1))
        .await;
    let creds = app.provision("lk-1", 4).await;
    let locker = app.locker(&creds, Duration::from_millis(300));
    let mut watch = locker.watch();
    connected(&locker, &mut watch).await;
    eventually("the locker is online", || app.online("lk-1")).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        app.online("lk-1").await,
        "a locker sending heartbeats was marked offline"
    );
}
}

in_both_modes! {
async fn a_lost_connection_fires_the_will_and_a_late_will_changes_nothing(backend: Backend) {
    let app = backend.spawn().await;
    let creds = app.provision("lk-1", 4).await;
    let mut events = app.app.events();
    let locker = app.locker(&creds, BEATING);
    let mut watch = locker.watch();
    let first = connected(&locker, &mut watch).await;
    expect_event(&mut events, "device.online", "lk-1").await;
    // Power cut: the broker publishes the will, which names the current session.
    locker.turn(Knob::Drop).await;
    let offline = expect_event(&mut events, "device.offline", "lk-1").await;
    assert_eq!(offline.data["reason"], "last_will");
    assert_eq!(offline.data["session"], first);
    // Back with a new session.
    locker.turn(Knob::Reconnect).await;
    let second = connected(&locker, &mut watch).await;
    assert_ne!(first, second);
    expect_event(&mut events, "device.online", "lk-1").await;
    // A will from the old connection arriving late does not mark the new one offline.
    let (mut broker_link, _) = app.link("late-will");
    let late = Presence {
        online: false,
        session: Some(first),
    };
    broker_link
        .publish(
            Topic::status(device("lk-1")).to_string(),
            late.to_json().into_bytes(),
        )
        .expect("published");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        app.online("lk-1").await,
        "a stale will marked a reconnected locker offline"
    );
}
}

in_both_modes! {
async fn forged_replayed_and_garbage_uplinks_are_dropped(backend: Backend) {
    let app = backend.spawn().await;
    let a = app.provision("lk-a", 4).await;
    app.provision("lk-b", 4).await;
    let stats = app.app.device_link().stats();
    let mut verified = app.app.device_link().subscribe();
    let locker = app.locker(&a, BEATING);
    let mut watch = locker.watch();
    connected(&locker, &mut watch).await;
    eventually("the hello is accepted", || async { stats.accepted() >= 1 }).await;

    // A heartbeat, captured as sent.
    locker.turn(Knob::Heartbeat).await;
    let sent = expect(&mut watch, WAIT, |h| match h {
        Happening::Sent(payload) if payload.contains("heartbeat") => Some(payload.clone()),
        _ => None,
    })
    .await
    .expect("heartbeat sent");
    eventually("the heartbeat is accepted", || async {
        stats.accepted() >= 2
    })
    .await;

    // Replayed on the same topic (as an external broker without ACL would let anyone do).
    let (mut injector, _) = app.link("attacker");
    injector
        .publish("lockers/lk-a/up", sent.clone().into_bytes())
        .expect("published");
    eventually("the replay is dropped", || async { stats.replayed() >= 1 }).await;

    // A's genuine message republished on B's topic: names the wrong device.
    let rejected = stats.rejected();
    injector
        .publish("lockers/lk-b/up", sent.into_bytes())
        .expect("published");
    eventually("the moved message is dropped", || async {
        stats.rejected() > rejected
    })
    .await;

    // Tagged with a wrong key.
    let wrong = DeviceSecret::from_bytes([7; 32]).tag_key();
    locker.turn(Knob::UseKey(wrong)).await;
    locker.turn(Knob::Heartbeat).await;
    eventually("the forged heartbeat is dropped", || async {
        stats.bad_tag() >= 1
    })
    .await;

    // Garbage of every kind.
    for junk in [
        &b""[..],
        b"{",
        b"\xff\xfe",
        b"{\"version\":1}",
        &[b'x'; 5000],
    ] {
        locker.turn(Knob::SendRaw(junk.to_vec())).await;
    }
    eventually("the garbage is dropped", || async {
        stats.rejected() >= rejected + 6
    })
    .await;

    // The gateway is still working: a genuine message goes through.
    locker.turn(Knob::UseKey(a.secret.tag_key())).await;
    let before = stats.accepted();
    locker.turn(Knob::Heartbeat).await;
    eventually("a genuine heartbeat is accepted", || async {
        stats.accepted() > before
    })
    .await;
    // Only genuine uplinks were passed on.
    let mut passed = 0;
    while let Ok(uplink) = verified.try_recv() {
        assert_eq!(uplink.device, device("lk-a"));
        passed += 1;
    }
    assert_eq!(passed, stats.accepted());
}
}

in_both_modes! {
async fn a_forced_door_raises_an_alarm_event(backend: Backend) {
    let app = backend.spawn().await;
    let creds = app.provision("lk-1", 4).await;
    let mut events = app.app.events();
    let locker = app.locker(&creds, BEATING);
    let mut watch = locker.watch();
    connected(&locker, &mut watch).await;
    locker.turn(Knob::ForceOpen(2)).await;
    let alarm = expect_event(&mut events, "alarm.forced_open", "lk-1").await;
    assert_eq!(alarm.data["door"], 2);
    assert_eq!(alarm.data["source"], "door_sensor");
    // The locker raised its own alarm for the same opening: still one alarm, and the door is open.
    let stats = app.app.device_link().stats();
    eventually("the locker's alarm is processed", || async {
        stats.accepted() >= 3
    })
    .await;
    let alarms: i64 = crate::rentals::scalar(
        &app,
        "SELECT count(*) FROM outbox WHERE event_type = 'alarm.forced_open'",
    )
    .await;
    assert_eq!(alarms, 1, "one opening, one alarm");
    let sensor: String = crate::rentals::scalar(
        &app,
        "SELECT sensor FROM doors WHERE device_id = 'lk-1' AND door = 2",
    )
    .await;
    assert_eq!(sensor, "open");
}
}

in_both_modes! {
async fn a_door_forced_while_offline_is_reported_after_the_next_hello(backend: Backend) {
    let app = backend.spawn().await;
    let creds = app.provision("lk-1", 4).await;
    let mut events = app.app.events();
    let locker = app.locker(&creds, BEATING);
    let mut watch = locker.watch();
    connected(&locker, &mut watch).await;
    locker.turn(Knob::Drop).await;
    eventually("lk-1 offline", || async { !app.online("lk-1").await }).await;
    // Forced while offline: kept by the locker, sent in its next session (PROTOCOL.md 7.6).
    locker.turn(Knob::ForceOpen(2)).await;
    locker.turn(Knob::Reconnect).await;
    let alarm = expect_event(&mut events, "alarm.forced_open", "lk-1").await;
    assert_eq!(alarm.data["door"], 2);
    const SENSOR: &str = "SELECT sensor FROM doors WHERE device_id = 'lk-1' AND door = 2";
    eventually("door 2 open", || async {
        crate::rentals::scalar::<String>(&app, SENSOR).await == "open"
    })
    .await;
}
}

in_both_modes! {
async fn heartbeats_record_every_doors_state(backend: Backend) {
    let app = backend.spawn().await;
    let creds = app.provision("lk-1", 4).await;
    let locker = app.locker(&creds, BEATING);
    let mut watch = locker.watch();
    connected(&locker, &mut watch).await;
    eventually("every door's state is known", || async {
        let unknown: i64 = crate::rentals::scalar(
            &app,
            "SELECT count(*) FROM doors WHERE device_id = 'lk-1' AND (sensor <> 'closed' OR NOT locked)",
        )
        .await;
        unknown == 0
    })
    .await;
}
}

#[sqlx::test]
async fn after_a_restart_lockers_come_back_and_no_event_is_lost(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let addr = app.addr;
    let creds = app.provision("lk-1", 4).await;
    let locker = app.locker(&creds, BEATING);
    let mut watch = locker.watch();
    let first = connected(&locker, &mut watch).await;
    eventually("online", || app.online("lk-1")).await;
    // Stop the gateway (its broker with it, and its pool): the locker loses its connection.
    let options = (*pool.connect_options()).clone();
    app.app.run_until_stopped(async {}).await;
    let pool = PgPool::connect_with(options)
        .await
        .expect("reconnect to the test database");
    expect(&mut watch, WAIT, |h| {
        matches!(h, Happening::Disconnected).then_some(())
    })
    .await
    .expect("the locker noticed");
    // Start again on the same port and database.
    let app = App::with_pool(&test_config(addr), pool.clone())
        .await
        .expect("restarted");
    let second = expect(&mut watch, Duration::from_secs(10), |h| match h {
        Happening::Connected { session } => Some(*session),
        _ => None,
    })
    .await
    .expect("the locker reconnected");
    assert_ne!(first, second);
    eventually("the locker is online with its new session", || async {
        let session: Option<i64> =
            sqlx::query_scalar("SELECT session FROM devices WHERE id = 'lk-1' AND online")
                .fetch_one(&pool)
                .await
                .unwrap_or(None);
        session == Some(i64::from(second))
    })
    .await;
    eventually("every event is delivered", || async {
        let pending: i64 =
            sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
                .fetch_one(&pool)
                .await
                .expect("count");
        pending == 0
    })
    .await;
    app.run_until_stopped(async {}).await;
}

#[sqlx::test]
async fn a_burst_of_uplinks_larger_than_the_brokers_buffer_is_all_processed(pool: PgPool) {
    // The embedded broker pauses a link whose buffer fills (about 200 messages) until the link
    // says it is ready again; the gateway must, or every uplink after a burst is stuck.
    use firmware_protocol::{
        Direction, DoorSensor, DoorStatus, Envelope, Header, Heartbeat, Uplink,
    };
    let app = spawn_app(pool.clone()).await;
    let creds = app.provision("lk-1", 4).await;
    let locker = app.locker(&creds, SILENT);
    let mut watch = locker.watch();
    let session = connected(&locker, &mut watch).await;
    let stats = app.app.device_link().stats();
    eventually("the hello is accepted", || async { stats.accepted() >= 1 }).await;
    let (mut injector, _) = app.link("burst");
    let key = creds.secret.tag_key();
    let door = DoorStatus {
        sensor: DoorSensor::Closed,
        locked: true,
        occupied: None,
    };
    const BURST: u32 = 600;
    for n in 0..BURST {
        let beat = Envelope {
            header: Header {
                direction: Direction::Up,
                device_id: device("lk-1"),
                session,
                counter: 1000 + n,
            },
            message: Uplink::Heartbeat(Heartbeat {
                uptime_ms: u64::from(n),
                doors: vec![door; 4],
                signal: None,
            }),
        };
        let payload = beat.seal_json(&key).expect("seals");
        injector
            .publish("lockers/lk-1/up", payload.into_bytes())
            .expect("queued");
    }
    eventually("every uplink of the burst is processed", || async {
        stats.accepted() > u64::from(BURST)
    })
    .await;
}

/// The gateway's estimate of a locker's clock (`uptime_ms` then, `uptime_at` when received).
async fn clock(pool: &PgPool) -> (i64, chrono::DateTime<chrono::Utc>) {
    sqlx::query_as("SELECT uptime_ms, uptime_at FROM devices WHERE id = 'lk-c'")
        .fetch_one(pool)
        .await
        .expect("device row")
}

#[sqlx::test]
async fn a_late_uplink_never_drags_the_lockers_clock_estimate_back(pool: PgPool) {
    use firmware_protocol::{Heartbeat, Hello, Uplink};
    use locker_gateway::device::presence;
    let registry = locker_gateway::device::DeviceRegistry::new(pool.clone());
    crate::helpers::provision(&registry, "lk-c", 1).await;
    let id = crate::helpers::device("lk-c");
    // Milliseconds, as PostgreSQL keeps them exactly.
    let t0 = chrono::SubsecRound::trunc_subsecs(chrono::Utc::now(), 3);
    let hello = Hello {
        protocol_version: firmware_protocol::PROTOCOL_VERSION,
        firmware: "fw".into(),
        serial_no: "sn".into(),
        door_count: 1,
        session: 9,
        uptime_ms: 100_000,
        max_chunk: None,
    };
    let recorded = presence::hello(&pool.clone().into(), &id, &hello, 1, t0)
        .await
        .expect("hello");
    let presence::HelloRecorded::New(work) = recorded else {
        panic!("a new session: {recorded:?}");
    };
    work.commit().await.expect("committed");
    let beat = |uptime_ms| {
        Uplink::Heartbeat(Heartbeat {
            uptime_ms,
            doors: Vec::new(),
            signal: None,
        })
    };
    let at = |secs| t0 + chrono::Duration::seconds(secs);
    let storage: locker_gateway::storage::Storage = pool.clone().into();
    let mut tx = storage.begin().await.expect("tx");
    // Sent at uptime 105 s but received 20 s after the hello: it waited 15 s somewhere. The locker
    // is at least at 100 + 20 = 120 s then, which the hello already says; the estimate stays.
    assert!(matches!(
        presence::uplink(&mut tx, &id, 9, 2, &beat(105_000), at(20))
            .await
            .expect("late"),
        presence::Uplinked::Fresh { .. }
    ));
    tx.commit().await.expect("commit");
    assert_eq!(clock(&pool).await, (100_000, t0));
    // A prompt one says more than the hello: it becomes the estimate.
    let mut tx = storage.begin().await.expect("tx");
    assert!(matches!(
        presence::uplink(&mut tx, &id, 9, 3, &beat(130_000), at(25))
            .await
            .expect("prompt"),
        presence::Uplinked::Fresh { .. }
    ));
    tx.commit().await.expect("commit");
    let (uptime, when) = clock(&pool).await;
    assert_eq!(uptime, 130_000);
    assert!(
        (when - at(25)).num_milliseconds().abs() < 1,
        "{when} vs {}",
        at(25)
    );
}
