//! The embedded broker alone on a free port, backed by the test's database, and raw MQTT
//! clients that behave like lockers (or like intruders).

use std::net::SocketAddr;
use std::time::Duration;

use locker_gateway::broker::RegistryAuthenticator;
use locker_gateway::broker::{BrokerError, BrokerSettings, EmbeddedBroker, Revocations};
use locker_gateway::device::{DeviceRegistry, NewDevice, Provisioned};
use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, Packet, QoS};
use rumqttd::Notification;
use rumqttd::local::LinkRx;
use tokio::sync::mpsc;

use crate::helpers::{WAIT, device, free_addr};

pub struct TestBroker {
    pub broker: EmbeddedBroker,
    pub addr: SocketAddr,
    pub revocations: Revocations,
    pub registry: DeviceRegistry,
}

/// Starts the embedded broker on a free port (retrying if another test took it meanwhile).
pub async fn start_broker(storage: impl Into<locker_gateway::storage::Storage>) -> TestBroker {
    let registry = DeviceRegistry::new(storage);
    let revocations = Revocations::default();
    for _ in 0..20 {
        let addr = free_addr();
        let auth = RegistryAuthenticator::new(registry.clone(), tokio::runtime::Handle::current());
        match EmbeddedBroker::start(BrokerSettings::on(addr), auth, revocations.clone()) {
            Ok(broker) => {
                return TestBroker {
                    broker,
                    addr,
                    revocations,
                    registry,
                };
            }
            Err(BrokerError::Bind { .. }) => continue,
            Err(e) => panic!("broker did not start: {e}"),
        }
    }
    panic!("no free port for the broker after 20 tries");
}

/// Registers a device with `doors` doors.
pub async fn provision(registry: &DeviceRegistry, id: &str, doors: u16) -> Provisioned {
    registry
        .provision(NewDevice {
            id: device(id),
            model: "test".into(),
            door_count: doors,
        })
        .await
        .expect("provisioned")
}

impl TestBroker {
    pub async fn provision(&self, id: &str, doors: u16) -> Provisioned {
        provision(&self.registry, id, doors).await
    }

    /// Connects as a locker would (client id = username = device id).
    pub async fn connect_as(&self, id: &str, password: &str) -> Result<Client, String> {
        Client::connect(self.addr, id, id, password, None).await
    }
}

/// What a client's event loop saw.
#[derive(Debug)]
pub enum Seen {
    Publish { topic: String, payload: Vec<u8> },
    Disconnected(#[allow(dead_code)] String),
}

/// An MQTT client whose event loop runs in a task until its first error (no reconnecting).
pub struct Client {
    pub client: AsyncClient,
    seen: mpsc::Receiver<Seen>,
    task: tokio::task::JoinHandle<()>,
}

impl Client {
    pub async fn connect(
        addr: SocketAddr,
        client_id: &str,
        username: &str,
        password: &str,
        will: Option<LastWill>,
    ) -> Result<Self, String> {
        let mut options = MqttOptions::new(client_id, addr.ip().to_string(), addr.port());
        options.set_credentials(username, password);
        options.set_keep_alive(Duration::from_secs(30));
        options.set_clean_session(true);
        if let Some(will) = will {
            options.set_last_will(will);
        }
        let (client, mut events) = AsyncClient::new(options, 16);
        let connack = tokio::time::timeout(WAIT, async {
            loop {
                match events.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(ack))) => return Ok(ack),
                    Ok(_) => {}
                    Err(e) => return Err(e.to_string()),
                }
            }
        })
        .await
        .map_err(|_| "no CONNACK in time".to_string())??;
        if connack.code != rumqttc::ConnectReturnCode::Success {
            return Err(format!("refused: {:?}", connack.code));
        }
        let (tx, seen) = mpsc::channel(64);
        let task = tokio::spawn(async move {
            loop {
                match events.poll().await {
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let seen = Seen::Publish {
                            topic: p.topic.clone(),
                            payload: p.payload.to_vec(),
                        };
                        if tx.send(seen).await.is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        let _ = tx.send(Seen::Disconnected(e.to_string())).await;
                        return;
                    }
                }
            }
        });
        Ok(Self { client, seen, task })
    }

    /// Drops the connection without a DISCONNECT, as a locker losing power would.
    pub fn kill(self) {
        self.task.abort();
    }

    /// Waits until the broker drops the connection; a message first is a failure.
    pub async fn expect_disconnect(&mut self) {
        match tokio::time::timeout(WAIT, self.seen.recv()).await {
            Ok(Some(Seen::Disconnected(_))) | Ok(None) => {}
            Ok(Some(Seen::Publish { topic, .. })) => {
                panic!("expected a disconnect, got a message on {topic}")
            }
            Err(_) => panic!("the broker did not drop the connection"),
        }
    }

    /// Waits for a message.
    pub async fn expect_publish(&mut self) -> (String, Vec<u8>) {
        match tokio::time::timeout(WAIT, self.seen.recv()).await {
            Ok(Some(Seen::Publish { topic, payload })) => (topic, payload),
            other => panic!("expected a message, got {other:?}"),
        }
    }

    pub async fn subscribe(&self, filter: &str) {
        self.client
            .subscribe(filter, QoS::AtLeastOnce)
            .await
            .expect("subscribe queued");
    }

    pub async fn publish(&self, topic: &str, payload: &[u8]) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload.to_vec())
            .await
            .expect("publish queued");
    }
}

/// Waits for the next message forwarded to an in-process link.
pub async fn link_next(rx: &mut LinkRx) -> (String, Vec<u8>) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let next = tokio::time::timeout_at(deadline, rx.next())
            .await
            .expect("no message reached the gateway's link in time")
            .expect("link alive");
        if let Some(Notification::Forward(forward)) = next {
            let topic = String::from_utf8_lossy(&forward.publish.topic).into_owned();
            return (topic, forward.publish.payload.to_vec());
        }
    }
}

/// Checks that no message reaches an in-process link for a while.
pub async fn link_silent(rx: &mut LinkRx, for_: Duration) {
    let deadline = tokio::time::Instant::now() + for_;
    while let Ok(next) = tokio::time::timeout_at(deadline, rx.next()).await {
        if let Ok(Some(Notification::Forward(forward))) = next {
            panic!(
                "unexpected message on {}",
                String::from_utf8_lossy(&forward.publish.topic)
            );
        }
    }
}
