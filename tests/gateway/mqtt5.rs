//! Lockers on MQTT 5: commands carry a message expiry, so no broker delivers them late.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use firmware_protocol::{Direction, Downlink, Envelope, Header, Hello, Unverified, Uplink};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::Packet;
use sqlx::PgPool;

use crate::broker::connect_v5;
use crate::helpers::{WAIT, device, eventually, free_addr, spawn_app_with};

#[sqlx::test]
async fn an_unlock_to_an_mqtt_5_locker_carries_a_message_expiry_within_its_deadline(pool: PgPool) {
    let v5_addr: Mutex<Option<SocketAddr>> = Mutex::new(None);
    let app = spawn_app_with(pool.clone(), |config| {
        let addr = free_addr();
        config.mqtt5_addr = Some(addr);
        *v5_addr.lock().expect("lock") = Some(addr);
    })
    .await;
    let v5 = v5_addr.lock().expect("lock").expect("chosen");
    let creds = app.provision("lk-5", 2).await;
    let (admitted, client, mut events) =
        connect_v5(v5, "lk-5", &creds.secret.mqtt_password()).await;
    assert!(admitted, "the locker's login was refused over MQTT 5");
    client
        .subscribe("lockers/lk-5/down", QoS::AtLeastOnce)
        .await
        .expect("subscribe queued");
    let hello = Envelope {
        header: Header {
            direction: Direction::Up,
            device_id: device("lk-5"),
            session: 77,
            counter: 1,
        },
        message: Uplink::Hello(Hello {
            protocol_version: firmware_protocol::PROTOCOL_VERSION,
            firmware: "v5-test".into(),
            serial_no: "SN5".into(),
            door_count: 2,
            session: 77,
            uptime_ms: 1_000,
            max_chunk: None,
        }),
    }
    .seal_json(&creds.secret.tag_key())
    .expect("seals");
    client
        .publish("lockers/lk-5/up", QoS::AtLeastOnce, false, hello)
        .await
        .expect("hello queued");
    // Keep the connection going while the gateway takes the hello.
    let poller = tokio::spawn(async move {
        let mut downlinks = Vec::new();
        while let Ok(event) = events.poll().await {
            if let rumqttc::v5::Event::Incoming(Packet::Publish(publish)) = event {
                downlinks.push(publish);
                if downlinks.len() == 1 {
                    return downlinks;
                }
            }
        }
        downlinks
    });
    eventually("the MQTT 5 locker is online", || app.online("lk-5")).await;
    let commands = app.app.commands().clone();
    let unlock = tokio::spawn(async move { commands.unlock(device("lk-5"), 2).await });
    let downlinks = tokio::time::timeout(WAIT, poller)
        .await
        .expect("a downlink in time")
        .expect("poller");
    let publish = downlinks.first().expect("the unlock");
    let expiry = publish
        .properties
        .as_ref()
        .and_then(|p| p.message_expiry_interval);
    // The test gateway's deadline is 5 s: the broker must not hold it longer.
    assert!(
        matches!(expiry, Some(1..=5)),
        "message expiry {expiry:?}, expected 1..=5 s"
    );
    let raw = Unverified::parse_json(&publish.payload).expect("an envelope");
    let envelope = raw
        .verify::<Downlink>(&device("lk-5"), &creds.secret.tag_key())
        .expect("tagged with the locker's key");
    assert!(
        matches!(envelope.message, Downlink::Unlock(ref u) if u.door == 2),
        "{:?}",
        envelope.message
    );
    unlock.abort();
    let _ = tokio::time::timeout(Duration::from_secs(1), unlock).await;
}
