//! An external Mosquitto whose clients and rights the gateways keep, through its dynamic-security
//! plugin (`LOCKER_BROKER_RIGHTS=dynsec`): each locker a client of its own allowed only its own
//! topics, created, changed and disabled as the registry changes, and the whole list brought back
//! when the broker lost it. A Mosquitto of the test's own, started with the plugin on a free port.

use std::time::{Duration, Instant};

use locker_gateway::config::{BrokerRights, SecretsKey};
use locker_gateway::device::{DeviceRegistry, NewDevice, Provisioned};
use rumqttc::{AsyncClient, ConnectReturnCode, Event, LastWill, MqttOptions, Packet, QoS};
use simulator::mqtt::{Credentials, Happening, LockerConfig, expect};
use sqlx::PgPool;

use crate::fleet::own_pool;
use crate::helpers::{WAIT, device, eventually};
use crate::mosquitto::{Mosquitto, gateway_on_with, online_through};
use crate::mosquitto_server::{GATEWAY_PASSWORD, GATEWAY_USER};

const KEY: &str = "6b6579206f6620746865206c6f636b6572732720736563726574732121212121";

fn key() -> SecretsKey {
    SecretsKey::from_hex(KEY).expect("key")
}

async fn gateway(mosquitto: &Mosquitto, pool: &PgPool) -> locker_gateway::app::App {
    gateway_on_with(mosquitto, own_pool(pool).await, |c| {
        c.broker_rights = BrokerRights::Dynsec;
        c.secrets_key = Some(key());
    })
    .await
}

async fn provision(registry: &DeviceRegistry, id: &str) -> Provisioned {
    registry
        .provision(NewDevice {
            id: device(id),
            model: "test".into(),
            door_count: 4,
        })
        .await
        .expect("provisioned")
}

/// What a login as `user` with `password` and client id `client` comes to: the broker's
/// answer, and the client if it was let in.
async fn login(
    mosquitto: &Mosquitto,
    (user, password, client): (&str, &str, &str),
    will: Option<LastWill>,
) -> (ConnectReturnCode, Option<(AsyncClient, rumqttc::EventLoop)>) {
    let (ip, port) = (mosquitto.addr.ip().to_string(), mosquitto.addr.port());
    let mut options = MqttOptions::new(client, ip, port);
    options.set_credentials(user, password);
    if let Some(will) = will {
        options.set_last_will(will);
    }
    let (client, mut events) = AsyncClient::new(options, 16);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, events.poll()).await {
            Ok(Ok(Event::Incoming(Packet::ConnAck(ack)))) => {
                let let_in = ack.code == ConnectReturnCode::Success;
                return (ack.code, let_in.then_some((client, events)));
            }
            Ok(Ok(_)) => {}
            Ok(Err(rumqttc::ConnectionError::ConnectionRefused(code))) => return (code, None),
            Ok(Err(e)) => panic!("the login failed otherwise: {e}"),
            Err(_) => panic!("no answer to the login"),
        }
    }
}

/// Polls until `check` holds, at most `within`: how long it took.
async fn within<F, Fut>(what: &str, within: Duration, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while started.elapsed() < within {
        if check().await {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("not within {within:?}: {what}");
}

async fn lets_in(mosquitto: &Mosquitto, id: &str, password: &str) -> bool {
    login(mosquitto, (id, password, id), None).await.0 == ConnectReturnCode::Success
}

#[sqlx::test]
async fn lockers_rights_on_the_broker_follow_the_registry(pool: PgPool) {
    let mut mosquitto = Mosquitto::start_dynsec().await;
    let app = gateway(&mosquitto, &pool).await;
    let registry = DeviceRegistry::new(pool.clone()).sealing(Some(key()));
    // Provisioned: a client on the broker within a second or so (the test allows 5 s on a
    // loaded machine and prints what it took).
    let a = provision(&registry, "dyn-a").await;
    let b = provision(&registry, "dyn-b").await;
    let (pa, pb) = (a.secret.mqtt_password(), b.secret.mqtt_password());
    let took = within("dyn-b can log in", Duration::from_secs(5), || {
        lets_in(&mosquitto, "dyn-b", &pb)
    })
    .await;
    println!("provisioned → client on the broker: {took:?}");
    assert!(
        !lets_in(&mosquitto, "dyn-b", &pa).await,
        "only with its own password"
    );
    let mut locker = LockerConfig::new(
        mosquitto.addr,
        Credentials::from_secret(a.device_id, &a.secret),
    );
    locker.doors = 4;
    let locker = simulator::mqtt::spawn(locker);
    let mut watch = locker.watch();
    online_through(&pool, &mut watch, "dyn-a").await;
    // Rotated: the new password logs in, the old one no longer does (Mosquitto keeps one).
    let rotated = registry
        .rotate(device("dyn-b"), Duration::from_secs(3600))
        .await
        .expect("rotated");
    let pb2 = rotated.secret.mqtt_password();
    let took = within("the new password works", Duration::from_secs(5), || {
        lets_in(&mosquitto, "dyn-b", &pb2)
    })
    .await;
    println!("rotated → new password on the broker: {took:?}");
    assert!(
        !lets_in(&mosquitto, "dyn-b", &pb).await,
        "the old password is refused for new logins"
    );
    // Revoked while connected: disconnected at once, and refused from then on.
    // What the locker went through before (a first login refused while its client was being
    // created) is not what the revocation does.
    let mut watch = locker.watch();
    let revoked_at = Instant::now();
    registry.revoke(device("dyn-a")).await.expect("revoked");
    expect(&mut watch, WAIT, |h| {
        matches!(h, Happening::Disconnected).then_some(())
    })
    .await
    .expect("the revoked locker was disconnected");
    println!(
        "revoked → live locker disconnected: {:?}",
        revoked_at.elapsed()
    );
    locker.stop();
    assert!(
        !lets_in(&mosquitto, "dyn-a", &pa).await,
        "a revoked locker cannot come back"
    );
    // The broker is replaced and has lost every client: the gateway brings them back when it
    // reconnects (the live one with its current password, the revoked one not at all).
    mosquitto.replace().await;
    assert!(
        !lets_in(&mosquitto, "dyn-b", &pb2).await,
        "the new broker knows nobody yet"
    );
    let took = within("the gateway restored the broker's clients", WAIT, || {
        lets_in(&mosquitto, "dyn-b", &pb2)
    })
    .await;
    println!("broker replaced → clients restored: {took:?}");
    assert!(
        !lets_in(&mosquitto, "dyn-a", &pa).await,
        "the revoked one stays out"
    );
    app.run_until_stopped(async {}).await;
}

#[sqlx::test]
async fn a_rogue_client_with_a_lockers_password_gets_nothing_of_anothers(pool: PgPool) {
    let mosquitto = Mosquitto::start_dynsec().await;
    let app = gateway(&mosquitto, &pool).await;
    let registry = DeviceRegistry::new(pool.clone()).sealing(Some(key()));
    let a = provision(&registry, "dyn-a").await;
    let rogue = provision(&registry, "dyn-r").await;
    let password = rogue.secret.mqtt_password();
    eventually("the rogue's client exists", || {
        lets_in(&mosquitto, "dyn-r", &password)
    })
    .await;
    let _ = a;
    // A client id other than its username: refused.
    let (code, _) = login(&mosquitto, ("dyn-r", &password, "dyn-a"), None).await;
    assert_eq!(
        code,
        ConnectReturnCode::NotAuthorized,
        "client id must be the username"
    );
    // A watcher as the gateway's user, to see what gets through.
    let (_, watcher) = login(
        &mosquitto,
        (GATEWAY_USER, GATEWAY_PASSWORD, "test-watcher"),
        None,
    )
    .await;
    let (watcher, mut watcher_events) = watcher.expect("the gateway's user logs in");
    watcher
        .subscribe("lockers/dyn-a/#", QoS::AtLeastOnce)
        .await
        .expect("queued");
    watcher
        .subscribe("lockers/dyn-r/status", QoS::AtLeastOnce)
        .await
        .expect("queued");
    let mut acked = 0;
    loop {
        match tokio::time::timeout(WAIT, watcher_events.poll()).await {
            Ok(Ok(Event::Incoming(Packet::SubAck(_)))) if acked == 1 => break,
            Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => acked += 1,
            Ok(Ok(_)) => {}
            other => panic!("the watcher's subscription failed: {other:?}"),
        }
    }
    let (seen_tx, mut seen) = tokio::sync::mpsc::channel(16);
    let watching = tokio::spawn(async move {
        loop {
            match watcher_events.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let _ = seen_tx.try_send(p.topic);
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    });
    // A will on another locker's topic, left by a connection that drops.
    let will = LastWill::new("lockers/dyn-a/status", "offline", QoS::AtLeastOnce, false);
    let (code, rogue_client) = login(&mosquitto, ("dyn-r", &password, "dyn-r"), Some(will)).await;
    println!("a will on another locker's topic: {code:?}");
    if let Some((client, mut events)) = rogue_client {
        // Its subscriptions outside its own topics are refused one by one.
        client
            .subscribe("#", QoS::AtLeastOnce)
            .await
            .expect("queued");
        client
            .subscribe("$SYS/#", QoS::AtLeastOnce)
            .await
            .expect("queued");
        client
            .subscribe("lockers/dyn-a/down", QoS::AtLeastOnce)
            .await
            .expect("queued");
        client
            .subscribe("lockers/dyn-r/down", QoS::AtLeastOnce)
            .await
            .expect("queued");
        client
            .publish(
                "lockers/dyn-a/up",
                QoS::AtLeastOnce,
                false,
                b"forged".to_vec(),
            )
            .await
            .expect("queued");
        let mut granted = Vec::new();
        let deadline = tokio::time::Instant::now() + WAIT;
        while granted.len() < 4 {
            match tokio::time::timeout_at(deadline, events.poll()).await {
                Ok(Ok(Event::Incoming(Packet::SubAck(ack)))) => granted.extend(ack.return_codes),
                Ok(Ok(_)) => {}
                other => panic!("the rogue's connection ended: {other:?}"),
            }
        }
        use rumqttc::SubscribeReasonCode::{Failure, Success};
        assert_eq!(
            granted,
            vec![Failure, Failure, Failure, Success(QoS::AtLeastOnce)],
            "#, $SYS/#, another's down refused; its own down granted"
        );
        // Gone without a goodbye: its will would be published now.
        drop(events);
    } else {
        assert_eq!(
            code,
            ConnectReturnCode::NotAuthorized,
            "or the will is refused at once"
        );
    }
    // The same, with a will on its own topic: that one is published (so the one above was
    // refused, not lost).
    let own = LastWill::new("lockers/dyn-r/status", "offline", QoS::AtLeastOnce, false);
    let (_, again) = login(&mosquitto, ("dyn-r", &password, "dyn-r"), Some(own)).await;
    drop(again.expect("logs in"));
    let first = tokio::time::timeout(WAIT, seen.recv())
        .await
        .expect("a will arrives");
    assert_eq!(
        first.as_deref(),
        Some("lockers/dyn-r/status"),
        "nothing reached another locker's topics before its own will"
    );
    watching.abort();
    app.run_until_stopped(async {}).await;
}
