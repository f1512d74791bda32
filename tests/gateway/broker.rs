//! The embedded broker: who may log in, and what a locker may touch.

use std::time::Duration;

use locker_gateway::broker::{BrokerError, BrokerSettings, EmbeddedBroker, Revocations};
use locker_gateway::broker::{RegistryAuthenticator, revocation};
use rumqttc::{LastWill, QoS};
use sqlx::PgPool;

use crate::helpers::{Client, device, link_next, link_silent, start_broker};

#[sqlx::test]
async fn a_provisioned_locker_logs_in(pool: PgPool) {
    let broker = start_broker(pool).await;
    let creds = broker.provision("lk-1", 4).await;
    broker
        .connect_as("lk-1", &creds.secret.mqtt_password())
        .await
        .expect("a provisioned locker is admitted");
}

#[sqlx::test]
async fn wrong_logins_are_refused(pool: PgPool) {
    let broker = start_broker(pool).await;
    let one = broker.provision("lk-1", 4).await;
    let two = broker.provision("lk-2", 4).await;
    let password = one.secret.mqtt_password();
    // Another device's secret.
    assert!(
        broker
            .connect_as("lk-1", &two.secret.mqtt_password())
            .await
            .is_err()
    );
    // An unknown device.
    assert!(broker.connect_as("lk-3", &password).await.is_err());
    // Client id different from the username.
    let mismatch = Client::connect(broker.addr, "lk-2", "lk-1", &password, None).await;
    assert!(mismatch.is_err(), "client id must equal the device id");
    // No password, garbage password.
    assert!(broker.connect_as("lk-1", "").await.is_err());
    assert!(broker.connect_as("lk-1", "not hex at all").await.is_err());
    // A revoked device.
    broker
        .registry
        .revoke(device("lk-1"))
        .await
        .expect("revoked");
    assert!(broker.connect_as("lk-1", &password).await.is_err());
    // And the right login still works for the other one.
    assert!(
        broker
            .connect_as("lk-2", &two.secret.mqtt_password())
            .await
            .is_ok()
    );
}

#[sqlx::test]
async fn revocation_drops_a_live_session(pool: PgPool) {
    revocation_drops_a_live_session_on(pool.into()).await;
}

/// In edge mode nothing announces a revocation (the CLI may revoke from another process): the
/// watcher reads the revoked devices.
#[tokio::test]
async fn in_edge_mode_revocation_drops_a_live_session() {
    let (storage, _dir) = crate::helpers::sqlite().await;
    revocation_drops_a_live_session_on(storage).await;
}

async fn revocation_drops_a_live_session_on(storage: locker_gateway::storage::Storage) {
    let broker = start_broker(storage.clone()).await;
    let creds = broker.provision("lk-1", 4).await;
    let (link, _rx) = broker.broker.link("revocation-watch").expect("link");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let watcher = tokio::spawn(revocation::watch(
        storage,
        broker.revocations.clone(),
        locker_gateway::mqtt::MqttTx::Embedded(link),
        async {
            let _ = stopped.await;
        },
    ));
    let mut locker = broker
        .connect_as("lk-1", &creds.secret.mqtt_password())
        .await
        .expect("admitted");
    locker.subscribe("lockers/lk-1/down").await;
    // Give the watcher a moment to LISTEN before the revocation is announced.
    tokio::time::sleep(Duration::from_millis(300)).await;
    broker
        .registry
        .revoke(device("lk-1"))
        .await
        .expect("revoked");
    locker.expect_disconnect().await;
    assert!(
        broker
            .connect_as("lk-1", &creds.secret.mqtt_password())
            .await
            .is_err(),
        "a revoked device logged in again"
    );
    let _ = stop.send(());
    watcher.await.expect("watcher ends");
}

#[sqlx::test]
async fn a_locker_cannot_subscribe_beyond_its_own_down_topic(pool: PgPool) {
    let broker = start_broker(pool).await;
    let a = broker.provision("lk-a", 2).await;
    let b = broker.provision("lk-b", 2).await;
    let mut locker_b = broker
        .connect_as("lk-b", &b.secret.mqtt_password())
        .await
        .expect("b admitted");
    locker_b.subscribe("lockers/lk-b/down").await;
    for filter in [
        "#",
        "lockers/+/down",
        "lockers/lk-b/down",
        "lockers/lk-a/#",
        "lockers/lk-b/up",
    ] {
        let mut locker_a = broker
            .connect_as("lk-a", &a.secret.mqtt_password())
            .await
            .expect("a admitted");
        locker_a.subscribe(filter).await;
        locker_a.expect_disconnect().await;
    }
    // Nothing of B's reached A, and B still gets its own messages.
    let (mut gateway, _rx) = broker.broker.link("gateway").expect("link");
    gateway
        .publish("lockers/lk-b/down", b"for b".to_vec())
        .expect("published");
    let (topic, payload) = locker_b.expect_publish().await;
    assert_eq!(
        (topic.as_str(), payload.as_slice()),
        ("lockers/lk-b/down", &b"for b"[..])
    );
}

#[sqlx::test]
async fn a_locker_publishes_only_on_its_own_topics(pool: PgPool) {
    let broker = start_broker(pool).await;
    let a = broker.provision("lk-a", 2).await;
    broker.provision("lk-b", 2).await;
    let (mut gateway_tx, mut gateway_rx) = broker.broker.link("gateway").expect("link");
    gateway_tx.subscribe("lockers/+/up").expect("subscribed");
    gateway_tx
        .subscribe("lockers/+/status")
        .expect("subscribed");
    let locker_a = broker
        .connect_as("lk-a", &a.secret.mqtt_password())
        .await
        .expect("a admitted");
    locker_a.publish("lockers/lk-a/up", b"mine").await;
    let (topic, payload) = link_next(&mut gateway_rx).await;
    assert_eq!(
        (topic.as_str(), payload.as_slice()),
        ("lockers/lk-a/up", &b"mine"[..])
    );
    // Forging B's uplink: refused, connection dropped, nothing forwarded.
    let mut locker_a = locker_a;
    locker_a.publish("lockers/lk-b/up", b"forged").await;
    locker_a.expect_disconnect().await;
    for topic in ["lockers/lk-a/down", "events/device.online", "anything"] {
        let mut again = broker
            .connect_as("lk-a", &a.secret.mqtt_password())
            .await
            .expect("a admitted");
        again.publish(topic, b"x").await;
        again.expect_disconnect().await;
    }
    link_silent(&mut gateway_rx, Duration::from_millis(300)).await;
}

#[sqlx::test]
async fn a_last_will_must_be_the_lockers_own_status(pool: PgPool) {
    let broker = start_broker(pool).await;
    let a = broker.provision("lk-a", 2).await;
    broker.provision("lk-b", 2).await;
    let password = a.secret.mqtt_password();
    let foreign = LastWill::new(
        "lockers/lk-b/status",
        r#"{"online":false}"#,
        QoS::AtLeastOnce,
        true,
    );
    assert!(
        Client::connect(broker.addr, "lk-a", "lk-a", &password, Some(foreign))
            .await
            .is_err(),
        "a will on another locker's topic was accepted"
    );
    let (mut gateway_tx, mut gateway_rx) = broker.broker.link("gateway").expect("link");
    gateway_tx
        .subscribe("lockers/+/status")
        .expect("subscribed");
    let own = LastWill::new(
        "lockers/lk-a/status",
        r#"{"online":false}"#,
        QoS::AtLeastOnce,
        true,
    );
    let locker = Client::connect(broker.addr, "lk-a", "lk-a", &password, Some(own))
        .await
        .expect("own will accepted");
    // An abrupt loss of the connection fires the will.
    locker.kill();
    let (topic, payload) = link_next(&mut gateway_rx).await;
    assert_eq!(topic, "lockers/lk-a/status");
    assert_eq!(payload, br#"{"online":false}"#);
}

#[sqlx::test]
async fn a_taken_port_is_reported_with_the_setting_that_changes_it(pool: PgPool) {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr");
    let registry = locker_gateway::device::DeviceRegistry::new(pool);
    let auth = RegistryAuthenticator::new(registry, tokio::runtime::Handle::current());
    let err = EmbeddedBroker::start(BrokerSettings::on(addr), auth, Revocations::default())
        .expect_err("the port is taken");
    assert!(matches!(err, BrokerError::Bind { .. }));
    let message = err.to_string();
    assert!(message.contains(&addr.to_string()), "{message}");
    assert!(message.contains("LOCKER_MQTT_ADDR"), "{message}");
}

/// Logs in over MQTT 5; returns whether the CONNACK said success, and the event loop.
pub async fn connect_v5(
    addr: std::net::SocketAddr,
    id: &str,
    password: &str,
) -> (bool, rumqttc::v5::AsyncClient, rumqttc::v5::EventLoop) {
    use rumqttc::v5::mqttbytes::v5::{ConnectReturnCode, Packet};
    let mut options = rumqttc::v5::MqttOptions::new(id, addr.ip().to_string(), addr.port());
    options.set_credentials(id, password);
    let (client, mut events) = rumqttc::v5::AsyncClient::new(options, 16);
    let admitted = tokio::time::timeout(crate::helpers::WAIT, async {
        loop {
            match events.poll().await {
                Ok(rumqttc::v5::Event::Incoming(Packet::ConnAck(ack))) => {
                    return ack.code == ConnectReturnCode::Success;
                }
                Ok(_) => {}
                Err(_) => return false,
            }
        }
    })
    .await
    .unwrap_or(false);
    (admitted, client, events)
}

#[sqlx::test]
async fn mqtt_5_lockers_get_the_same_login_and_topic_rules(pool: PgPool) {
    let registry = locker_gateway::device::DeviceRegistry::new(pool.clone());
    let creds = registry
        .provision(locker_gateway::device::NewDevice {
            id: device("lk-5"),
            model: "v5".into(),
            door_count: 2,
        })
        .await
        .expect("provisioned");
    let (broker, v5) = loop {
        let mut settings = BrokerSettings::on(crate::helpers::free_addr());
        let v5 = crate::helpers::free_addr();
        settings.v5_addr = Some(v5);
        let auth = RegistryAuthenticator::new(registry.clone(), tokio::runtime::Handle::current());
        match EmbeddedBroker::start(settings, auth, Revocations::default()) {
            Ok(broker) => break (broker, v5),
            Err(BrokerError::Bind { .. }) => continue,
            Err(e) => panic!("{e}"),
        }
    };
    let (admitted, _, _) = connect_v5(v5, "lk-5", "0000").await;
    assert!(!admitted, "a wrong password was accepted over MQTT 5");
    let (admitted, client, mut events) =
        connect_v5(v5, "lk-5", &creds.secret.mqtt_password()).await;
    assert!(admitted, "the right password was refused over MQTT 5");
    client
        .subscribe("#", rumqttc::v5::mqttbytes::QoS::AtLeastOnce)
        .await
        .expect("queued");
    let dropped = tokio::time::timeout(crate::helpers::WAIT, async {
        loop {
            if events.poll().await.is_err() {
                return;
            }
        }
    })
    .await;
    assert!(
        dropped.is_ok(),
        "a `#` subscription over MQTT 5 was not refused"
    );
    broker.stop();
}

#[sqlx::test]
async fn the_gateways_early_link_is_subscribed_before_any_locker_connects(pool: PgPool) {
    let registry = locker_gateway::device::DeviceRegistry::new(pool.clone());
    let creds = crate::helpers::provision(&registry, "lk-early", 4).await;
    let mut started = None;
    for _ in 0..20 {
        let addr = crate::helpers::free_addr();
        let mut settings = BrokerSettings::on(addr);
        settings.early_links = vec![("early".to_owned(), vec!["lockers/+/up".to_owned()])];
        let auth = RegistryAuthenticator::new(registry.clone(), tokio::runtime::Handle::current());
        match EmbeddedBroker::start(settings, auth, Revocations::default()) {
            Ok(broker) => {
                started = Some((broker, addr));
                break;
            }
            Err(BrokerError::Bind { .. }) => continue,
            Err(e) => panic!("broker did not start: {e}"),
        }
    }
    let (broker, addr) = started.expect("a free port");
    // The locker publishes the moment it is connected; the link is taken only afterwards, and
    // subscribes to nothing itself: what it receives it was subscribed to before the listener.
    let locker = Client::connect(
        addr,
        "lk-early",
        "lk-early",
        &creds.secret.mqtt_password(),
        None,
    )
    .await
    .expect("connected");
    locker
        .client
        .publish(
            "lockers/lk-early/up",
            QoS::AtLeastOnce,
            false,
            b"first".to_vec(),
        )
        .await
        .expect("published");
    let (_tx, mut rx) = broker.link("early").expect("the early link");
    let (topic, payload) = link_next(&mut rx).await;
    assert_eq!(
        (topic.as_str(), payload.as_slice()),
        ("lockers/lk-early/up", &b"first"[..])
    );
    // A second link of that name is a new one (the early one is handed out once).
    assert!(broker.link("early").is_ok());
}
