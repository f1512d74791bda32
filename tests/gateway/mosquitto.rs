//! The gateway against an external broker: a Mosquitto that the test starts on a free port with a
//! password file and (or without) the ACL documented in the README. Never the shared one on 1883.

use std::time::Duration;

use firmware_protocol::{DeviceSecret, Direction, Envelope, Header, Uplink};
use locker_gateway::app::App;
use locker_gateway::mqtt::ExternalBroker;
use simulator::mqtt::{Credentials, Happening, Knob, LockerConfig, expect};
use sqlx::PgPool;

use crate::helpers::{
    WAIT, device, eventually, expect_event, free_addr, init_tracing, test_config,
};

pub use crate::mosquitto_server::{Mosquitto, gateway_url};

async fn gateway_on(mosquitto: &Mosquitto, pool: PgPool) -> App {
    gateway_on_with(mosquitto, pool, |_| {}).await
}

/// A gateway on `mosquitto`, its test configuration adjusted by `adjust`, subscribed.
pub async fn gateway_on_with(
    mosquitto: &Mosquitto,
    pool: PgPool,
    adjust: impl Fn(&mut locker_gateway::Config),
) -> App {
    init_tracing();
    let mut config = locker_gateway::Config {
        external_broker: Some(ExternalBroker::parse(&gateway_url(mosquitto)).expect("url")),
        ..test_config(free_addr())
    };
    adjust(&mut config);
    let app = App::with_pool(&config, pool).await.expect("gateway starts");
    assert!(
        app.wait_mqtt_ready(WAIT).await,
        "the gateway did not subscribe on Mosquitto"
    );
    assert!(
        app.broker().is_none(),
        "no embedded broker in external mode"
    );
    app
}

pub fn locker(
    mosquitto: &Mosquitto,
    creds: &locker_gateway::device::Provisioned,
) -> simulator::mqtt::LockerHandle {
    let mut config = LockerConfig::new(
        mosquitto.addr,
        Credentials::from_secret(creds.device_id, &creds.secret),
    );
    config.doors = 4;
    config.heartbeat = Duration::from_secs(3600);
    simulator::mqtt::spawn(config)
}

/// Waits until the simulated locker behind `watch` has connected and the gateway has it online.
pub async fn online_through(
    pool: &PgPool,
    watch: &mut tokio::sync::broadcast::Receiver<Happening>,
    id: &str,
) {
    expect(watch, WAIT, |h| {
        matches!(h, Happening::Connected { .. }).then_some(())
    })
    .await
    .expect("connected");
    eventually("online", || async {
        sqlx::query_scalar::<_, bool>("SELECT online FROM devices WHERE id = $1")
            .bind(id)
            .fetch_one(pool)
            .await
            .unwrap_or(false)
    })
    .await;
}

pub async fn provision(pool: &PgPool, id: &str) -> locker_gateway::device::Provisioned {
    crate::helpers::provision(
        &locker_gateway::device::DeviceRegistry::new(pool.clone()),
        id,
        4,
    )
    .await
}

#[sqlx::test]
async fn lockers_come_online_through_mosquitto(pool: PgPool) {
    let a = provision(&pool, "lk-a").await;
    let mosquitto = Mosquitto::start(&[("lk-a", a.secret.mqtt_password())], true).await;
    let app = gateway_on(&mosquitto, pool).await;
    let mut events = app.events();
    let handle = locker(&mosquitto, &a);
    let mut watch = handle.watch();
    expect(&mut watch, WAIT, |h| {
        matches!(h, Happening::Connected { .. }).then_some(())
    })
    .await
    .expect("the locker logged in to Mosquitto");
    expect_event(&mut events, "device.online", "lk-a").await;
    // A power cut: Mosquitto publishes the will, the gateway marks it offline.
    handle.turn(Knob::Drop).await;
    let offline = expect_event(&mut events, "device.offline", "lk-a").await;
    assert_eq!(offline.data["reason"], "last_will");
    app.run_until_stopped(async {}).await;
}

#[sqlx::test]
async fn mosquitto_refuses_a_wrong_password(pool: PgPool) {
    let a = provision(&pool, "lk-a").await;
    let mosquitto = Mosquitto::start(&[("lk-a", a.secret.mqtt_password())], true).await;
    let wrong = DeviceSecret::from_bytes([1; 32]);
    let mut config = LockerConfig::new(
        mosquitto.addr,
        Credentials::from_secret(a.device_id, &wrong),
    );
    config.reconnect_after = Duration::from_secs(3600);
    let handle = simulator::mqtt::spawn(config);
    let mut watch = handle.watch();
    let first = expect(&mut watch, WAIT, |h| match h {
        Happening::Connected { .. } => Some(true),
        Happening::Disconnected => Some(false),
        _ => None,
    })
    .await;
    assert_eq!(first, Some(false), "a wrong password was accepted");
}

/// An uplink sealed with `key`, naming `named` in its envelope.
fn forged(named: &str, key: &firmware_protocol::DeviceKey) -> Vec<u8> {
    Envelope {
        header: Header {
            direction: Direction::Up,
            device_id: device(named),
            session: 1,
            counter: 99,
        },
        message: Uplink::Pong,
    }
    .seal_json(key)
    .expect("seals")
    .into_bytes()
}

/// Two lockers on a Mosquitto (with or without ACL), the gateway on it, A online; and a second,
/// plain client logged in as A (the simulator publishes only on its own topic).
struct TwoLockers {
    app: App,
    a: locker_gateway::device::Provisioned,
    intruder: rumqttc::AsyncClient,
    poller: tokio::task::JoinHandle<()>,
    _locker: simulator::mqtt::LockerHandle,
    _mosquitto: Mosquitto,
}

async fn two_lockers(pool: PgPool, acl: bool) -> TwoLockers {
    let a = provision(&pool, "lk-a").await;
    let b = provision(&pool, "lk-b").await;
    let passwords = [
        ("lk-a", a.secret.mqtt_password()),
        ("lk-b", b.secret.mqtt_password()),
    ];
    let mosquitto = Mosquitto::start(&passwords, acl).await;
    let app = gateway_on(&mosquitto, pool).await;
    let handle = locker(&mosquitto, &a);
    let mut watch = handle.watch();
    expect(&mut watch, WAIT, |h| {
        matches!(h, Happening::Connected { .. }).then_some(())
    })
    .await
    .expect("connected");
    let stats = app.device_link().stats();
    eventually("the hello is accepted", || async { stats.accepted() >= 1 }).await;
    let (ip, port) = (mosquitto.addr.ip().to_string(), mosquitto.addr.port());
    let mut options = rumqttc::MqttOptions::new("lk-a-2", ip, port);
    options.set_credentials("lk-a", a.secret.mqtt_password());
    let (intruder, mut events) = rumqttc::AsyncClient::new(options, 16);
    let poller = tokio::spawn(async move { while events.poll().await.is_ok() {} });
    TwoLockers {
        app,
        a,
        intruder,
        poller,
        _locker: handle,
        _mosquitto: mosquitto,
    }
}

impl TwoLockers {
    async fn publish(&self, topic: &str, payload: Vec<u8>) {
        self.intruder
            .publish(topic, rumqttc::QoS::AtLeastOnce, false, payload)
            .await
            .expect("queued");
    }

    async fn stop(self) {
        self.poller.abort();
        self.app.run_until_stopped(async {}).await;
    }
}

#[sqlx::test]
async fn the_acl_keeps_a_locker_off_another_lockers_topics(pool: PgPool) {
    let t = two_lockers(pool, true).await;
    t.publish("lockers/lk-b/up", forged("lk-b", &t.a.secret.tag_key()))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stats = t.app.device_link().stats();
    assert_eq!(stats.rejected(), 0, "Mosquitto let A publish on B's topic");
    t.stop().await;
}

#[sqlx::test]
async fn without_an_acl_a_forged_uplink_is_dropped_for_its_tag(pool: PgPool) {
    let t = two_lockers(pool, false).await;
    let stats = t.app.device_link().stats();
    let mut verified = t.app.device_link().subscribe();
    // Naming B, tagged with A's key: the tag fails with B's key.
    t.publish("lockers/lk-b/up", forged("lk-b", &t.a.secret.tag_key()))
        .await;
    eventually("the forged uplink is dropped for its tag", || async {
        stats.bad_tag() >= 1
    })
    .await;
    // Naming A (genuinely A's) on B's topic: refused for naming the wrong device.
    let rejected = stats.rejected();
    t.publish("lockers/lk-b/up", forged("lk-a", &t.a.secret.tag_key()))
        .await;
    eventually("the moved uplink is dropped", || async {
        stats.rejected() > rejected
    })
    .await;
    while let Ok(uplink) = verified.try_recv() {
        assert_eq!(
            uplink.device,
            device("lk-a"),
            "an uplink was accepted for lk-b"
        );
    }
    t.stop().await;
}

#[sqlx::test]
async fn a_hello_lost_while_the_gateway_was_away_is_asked_for_again(pool: PgPool) {
    let a = provision(&pool, "lk-a").await;
    let mosquitto = Mosquitto::start(&[("lk-a", a.secret.mqtt_password())], true).await;
    // The locker connects and says hello before any gateway listens: the hello is lost.
    let mut config = LockerConfig::new(
        mosquitto.addr,
        Credentials::from_secret(a.device_id, &a.secret),
    );
    config.heartbeat = Duration::from_millis(300);
    let handle = simulator::mqtt::spawn(config);
    let mut watch = handle.watch();
    let session = expect(&mut watch, WAIT, |h| match h {
        Happening::Connected { session } => Some(*session),
        _ => None,
    })
    .await
    .expect("connected");
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The gateway comes; it sees heartbeats of a session it never heard of, asks, and gets a hello.
    let app = gateway_on(&mosquitto, pool.clone()).await;
    let mut events = app.events();
    let online = expect_event(&mut events, "device.online", "lk-a").await;
    assert_eq!(online.data["session"], session);
    let stored: Option<i64> =
        sqlx::query_scalar("SELECT session FROM devices WHERE id = 'lk-a' AND online")
            .fetch_optional(&pool)
            .await
            .expect("query")
            .flatten();
    assert_eq!(stored, Some(i64::from(session)));
    app.run_until_stopped(async {}).await;
}

#[sqlx::test]
async fn commands_work_through_mosquitto(pool: PgPool) {
    use locker_gateway::command::{CommandError, DoorResult};
    let a = provision(&pool, "lk-a").await;
    provision(&pool, "lk-b").await;
    let mosquitto = Mosquitto::start(&[("lk-a", a.secret.mqtt_password())], true).await;
    let app = gateway_on(&mosquitto, pool.clone()).await;
    let handle = locker(&mosquitto, &a);
    let mut watch = handle.watch();
    online_through(&pool, &mut watch, "lk-a").await;
    let outcome = app
        .commands()
        .unlock(device("lk-a"), 2)
        .await
        .expect("executed");
    assert_eq!(outcome.door, Some(DoorResult::Opened));
    handle.turn(Knob::DropAcks(1)).await;
    let outcome = app
        .commands()
        .unlock(device("lk-a"), 3)
        .await
        .expect("executed after a resend");
    assert_eq!(outcome.door, Some(DoorResult::Opened));
    let offline = app.commands().unlock(device("lk-b"), 1).await;
    assert!(
        matches!(offline, Err(CommandError::DeviceOffline)),
        "{offline:?}"
    );
    app.run_until_stopped(async {}).await;
}

#[sqlx::test]
async fn a_lost_answer_is_settled_by_asking_through_mosquitto(pool: PgPool) {
    let a = provision(&pool, "lk-a").await;
    let mosquitto = Mosquitto::start(&[("lk-a", a.secret.mqtt_password())], true).await;
    let app = gateway_on(&mosquitto, pool.clone()).await;
    let handle = locker(&mosquitto, &a);
    let mut watch = handle.watch();
    online_through(&pool, &mut watch, "lk-a").await;
    handle.turn(Knob::DropAcks(1)).await;
    let commands = app.commands().clone();
    let sending = tokio::spawn(async move { commands.unlock(device("lk-a"), 1).await });
    expect(&mut watch, WAIT, |h| {
        matches!(h, Happening::Received(_)).then_some(())
    })
    .await
    .expect("the locker received the unlock");
    handle.turn(Knob::Drop).await;
    handle.turn(Knob::Reconnect).await;
    eventually("settled from the locker's report", || async {
        let row: Option<(String, Option<String>, i32)> =
            sqlx::query_as("SELECT state, settled_by, attempts FROM commands")
                .fetch_optional(&pool)
                .await
                .expect("query");
        row == Some(("executed".to_owned(), Some("state_report".to_owned()), 1))
    })
    .await;
    let _ = sending.await;
    app.run_until_stopped(async {}).await;
}
