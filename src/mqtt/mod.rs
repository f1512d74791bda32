//! The gateway's own MQTT connection, whichever broker lockers use: the embedded one (an
//! in-process `rumqttd` link, no network) or an external one (Mosquitto, EMQX) through `rumqttc`,
//! reconnecting with backoff. The rest of the gateway sees one publisher ([`MqttTx`]) and one
//! stream of messages ([`MqttRx`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use rumqttd::Notification;
use rumqttd::local::{LinkRx, LinkTx};
use tokio::sync::mpsc;

/// One message received on a subscribed topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The topic (bytes as received; not necessarily UTF-8).
    pub topic: Bytes,
    /// The payload.
    pub payload: Bytes,
}

/// Why a publish or subscribe failed.
#[derive(Debug, thiserror::Error)]
#[error("MQTT: {0}")]
pub struct MqttError(String);

/// Publishing side.
pub enum MqttTx {
    /// The embedded broker's in-process link.
    Embedded(LinkTx),
    /// A client of an external broker, and what the broker has acknowledged of its publishes.
    External(AsyncClient, Arc<Delivered>),
}

/// How many QoS 1 publishes were promised to a client (queued for it, counted by whoever queues
/// them), and how many the broker acknowledged (PUBACK) or were given up: whether the broker has
/// everything queued up to some point.
#[derive(Debug)]
pub struct Delivered {
    queued: AtomicU64,
    acked: tokio::sync::watch::Sender<u64>,
}

impl Default for Delivered {
    fn default() -> Self {
        Self {
            queued: AtomicU64::new(0),
            acked: tokio::sync::watch::Sender::new(0),
        }
    }
}

impl Delivered {
    /// Publishes promised so far.
    pub fn queued(&self) -> u64 {
        self.queued.load(Ordering::Acquire)
    }

    /// One more publish is queued for the client.
    pub fn promise(&self) {
        self.queued.fetch_add(1, Ordering::AcqRel);
    }

    /// A promised publish failed: it will never be acknowledged, count it as done.
    pub fn give_up_one(&self) {
        self.acked.send_modify(|n| *n += 1);
    }

    /// Waits until the broker acknowledged `count` publishes (in the order they were queued: a
    /// broker acknowledges one connection's QoS 1 publishes in order), at most `within`; `false`
    /// if it did not.
    pub async fn wait_acked(&self, count: u64, within: Duration) -> bool {
        let mut acked = self.acked.subscribe();
        tokio::time::timeout(within, acked.wait_for(|n| *n >= count))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

impl std::fmt::Debug for MqttTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Embedded(_) => "MqttTx::Embedded",
            Self::External(..) => "MqttTx::External",
        })
    }
}

/// An MQTT 5 message expiry for `ttl`: whole seconds rounded down (never delivered after the
/// deadline), at least 1.
pub fn expiry_secs(ttl: Duration) -> u32 {
    u32::try_from(ttl.as_secs()).unwrap_or(u32::MAX).max(1)
}

impl MqttTx {
    /// What the external broker has acknowledged of this client's publishes (`None` on the
    /// embedded broker, where a publish is handed over in process).
    pub fn delivered(&self) -> Option<Arc<Delivered>> {
        match self {
            Self::Embedded(_) => None,
            Self::External(_, delivered) => Some(delivered.clone()),
        }
    }

    /// Publishes without waiting for the broker (QoS 1 on an external broker; the embedded link
    /// delivers to each subscriber at its subscription's QoS). With `expiry`, the embedded broker
    /// drops the message once it has waited that long, and MQTT 5 subscribers receive it with a
    /// message expiry interval; the external client speaks MQTT 3.1.1, which has none (lockers
    /// use clean sessions there, and the command's deadline in the locker's clock still holds).
    /// Fails if the outgoing queue is full.
    pub async fn publish(
        &mut self,
        topic: String,
        payload: Vec<u8>,
        expiry: Option<Duration>,
    ) -> Result<(), MqttError> {
        match (self, expiry) {
            (Self::Embedded(link), Some(ttl)) => {
                use rumqttd::protocol::{Packet, Publish, PublishProperties};
                let publish = Publish::new(Bytes::from(topic), Bytes::from(payload), false);
                let properties = PublishProperties {
                    message_expiry_interval: Some(expiry_secs(ttl)),
                    ..Default::default()
                };
                link.send(Packet::Publish(publish, Some(properties)))
                    .await
                    .map(drop)
                    .map_err(|e| MqttError(e.to_string()))
            }
            (Self::Embedded(link), None) => link
                .try_publish(topic, payload)
                .map(drop)
                .map_err(|e| MqttError(e.to_string())),
            (Self::External(client, _), _) => client
                .try_publish(topic, QoS::AtLeastOnce, false, payload)
                .map_err(|e| MqttError(e.to_string())),
        }
    }
}

/// Receiving side.
pub enum MqttRx {
    /// The embedded broker's in-process link (its `LinkTx` kept alive with it).
    Embedded(LinkTx, LinkRx),
    /// Messages forwarded by the external client's task.
    External(mpsc::Receiver<Message>),
}

impl std::fmt::Debug for MqttRx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Embedded(..) => "MqttRx::Embedded",
            Self::External(_) => "MqttRx::External",
        })
    }
}

impl MqttRx {
    /// Whether the stream ends by itself once the gateway stops (the external client's task
    /// unsubscribes, forwards what the broker had already sent, then ends it), so that a reader
    /// should read on to its end rather than stop at once.
    pub fn ends_when_stopped(&self) -> bool {
        matches!(self, Self::External(_))
    }

    /// The next message; `None` once the connection is gone for good.
    pub async fn next(&mut self) -> Option<Message> {
        match self {
            Self::Embedded(_, link) => loop {
                match link.next().await {
                    Ok(Some(Notification::Forward(forward))) => {
                        return Some(Message {
                            topic: forward.publish.topic,
                            payload: forward.publish.payload,
                        });
                    }
                    // The router filled this link's buffer and paused it: it resumes only when
                    // told the link is ready again (forgetting this stalls every uplink after the
                    // first burst of about 200 messages).
                    Ok(Some(Notification::Unschedule)) => {
                        if let Err(e) = link.wake().await {
                            tracing::error!(error = %e, "cannot wake the embedded broker link");
                            return None;
                        }
                    }
                    Ok(_) => continue,
                    Err(e) => {
                        tracing::error!(error = %e, "the embedded broker link closed");
                        return None;
                    }
                }
            },
            Self::External(rx) => rx.recv().await,
        }
    }
}

/// An in-process link to the embedded broker subscribed to `filters`.
pub fn embedded(
    (mut tx, rx): (LinkTx, LinkRx),
    filters: &[String],
) -> Result<MqttRx, Box<rumqttd::local::LinkError>> {
    for filter in filters {
        tx.subscribe(filter.clone()).map_err(Box::new)?;
    }
    Ok(MqttRx::Embedded(tx, rx))
}

pub use crate::config::ExternalBroker;

pub mod dynsec;
mod probe;
mod subscriptions;
pub mod tls;
pub use probe::{SharedSubscriptionError, check_shared_subscriptions};
pub use subscriptions::Subscriptions;

/// One of the gateway's clients on an external broker.
#[derive(Debug, Clone)]
pub struct ExternalClient {
    /// Its client id: `locker-gateway-{gateway id}-{role}`, unique in the fleet (a second live
    /// gateway with the same id refuses to start, so no two clients knock each other off).
    pub id: String,
    /// What it subscribes to on every (re)connect (nothing for a publishing-only client).
    pub filters: Vec<String>,
    /// What it subscribes to besides, added while it runs.
    pub added: Subscriptions,
}

impl ExternalClient {
    /// The client of gateway `gateway` for `role` (`uplinks`, `events`, `control`, `downlinks`).
    pub fn of(gateway: &str, role: &str, filters: Vec<String>) -> Self {
        Self {
            id: format!("locker-gateway-{gateway}-{role}"),
            filters,
            added: Subscriptions::default(),
        }
    }
}

/// `filter` as a subscription of the shared-subscription `group`: the broker hands each message
/// to one of the group's subscribers.
pub fn shared(group: &str, filter: &str) -> String {
    format!("$share/{group}/{filter}")
}

/// Connects a client to an external broker, subscribing to its filters on every (re)connect, and
/// forwards what arrives. Reconnects with exponential backoff (rumqttc alone retries at once).
/// Every session is clean: with shared subscriptions a broker keeps handing messages to the
/// offline persistent session of a gateway that died (Mosquitto does, round robin), where they
/// would wait until that gateway came back; a clean session ends with the connection, and the
/// group's live members get everything after. Runs on `tasks` until `shutdown`. The returned
/// watch turns `true` once the client is connected and subscribed.
pub fn external(
    broker: &ExternalBroker,
    client: ExternalClient,
    tasks: &tokio_util::task::TaskTracker,
    shutdown: tokio_util::sync::CancellationToken,
) -> (MqttTx, MqttRx, tokio::sync::watch::Receiver<bool>) {
    let ExternalClient {
        id: client_id,
        filters,
        added,
    } = client;
    let (mut options, usable) = match tls::options(broker, client_id.clone()) {
        Ok(options) => (options, true),
        Err(e) => {
            // Checked at start (the probe uses the same options): never plaintext instead.
            tracing::error!(error = %e, "this client of the external broker cannot connect");
            (
                MqttOptions::new(client_id, broker.host.clone(), broker.port),
                false,
            )
        }
    };
    options.set_keep_alive(Duration::from_secs(30));
    options.set_clean_session(true);
    options.set_max_packet_size(
        firmware_protocol::MAX_JSON_ENVELOPE + 1024,
        firmware_protocol::MAX_JSON_ENVELOPE + 1024,
    );
    let (client, mut events) = AsyncClient::new(options, 1024);
    // Downlinks go out back to back; Nagle's algorithm would hold each second one for the
    // broker's delayed ACK of the first (about 40 ms).
    events.network_options.set_tcp_nodelay(true);
    let (tx, rx) = mpsc::channel(1024);
    let (ready_tx, ready) = tokio::sync::watch::channel(false);
    let delivered = Arc::new(Delivered::default());
    let acked = delivered.acked.clone();
    let subscriber = client.clone();
    added.attach(client.clone());
    tasks.spawn(async move {
        if !usable {
            return;
        }
        let mut backoff = Duration::from_millis(100);
        loop {
            let event = tokio::select! {
                _ = shutdown.cancelled() => {
                    // Nothing the broker handed this gateway is left behind: unsubscribed first
                    // (the group's other members get everything after), what came before the
                    // broker's acknowledgement forwarded, then goodbye, so the broker drops the
                    // session at once.
                    let all = [filters.as_slice(), &added.filters()].concat();
                    let unsubscribed = drain(&subscriber, &mut events, &all, &tx).await;
                    if !unsubscribed {
                        metrics::counter!("locker_external_broker_errors_total").increment(1);
                        tracing::warn!("stopping without the broker's acknowledgement of the unsubscription");
                    }
                    let _ = subscriber.try_disconnect();
                    let _ = tokio::time::timeout(Duration::from_millis(200), events.poll()).await;
                    return;
                }
                event = events.poll() => event,
            };
            match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    backoff = Duration::from_millis(100);
                    for filter in filters.iter().chain(&added.filters()) {
                        if let Err(e) = subscriber.try_subscribe(filter.clone(), QoS::AtLeastOnce) {
                            tracing::error!(error = %e, filter, "cannot subscribe on the external broker");
                        }
                    }
                    if filters.is_empty() {
                        let _ = ready_tx.send(true);
                    }
                    tracing::info!("connected to the external MQTT broker");
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    let _ = ready_tx.send(true);
                }
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    acked.send_modify(|n| *n += 1);
                }
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    // A publishing-only client has dropped its receiver: nothing to forward to.
                    let _ = tx.send(Message::from(publish)).await;
                }
                Ok(_) => {}
                // Every client handle is gone: the gateway is stopping.
                Err(rumqttc::ConnectionError::RequestsDone) => return,
                Err(e) => {
                    let _ = ready_tx.send(false);
                    metrics::counter!("locker_external_broker_errors_total").increment(1);
                    tracing::warn!(error = %e, retry_in = ?backoff, "external MQTT broker connection failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        }
    });
    (
        MqttTx::External(client, delivered),
        MqttRx::External(rx),
        ready,
    )
}

impl From<rumqttc::Publish> for Message {
    fn from(publish: rumqttc::Publish) -> Self {
        Self {
            topic: Bytes::from(publish.topic.into_bytes()),
            payload: publish.payload,
        }
    }
}

/// How long a stopping gateway waits for the broker to acknowledge its unsubscriptions.
const UNSUBSCRIBE_WITHIN: Duration = Duration::from_secs(3);

/// Unsubscribes from `filters` and forwards to `tx` what arrives until the broker has
/// acknowledged every unsubscription (a broker sends a subscription's messages before its
/// UNSUBACK on the same connection): `false` if that did not happen within
/// [`UNSUBSCRIBE_WITHIN`] or the connection failed.
async fn drain(
    client: &AsyncClient,
    events: &mut rumqttc::EventLoop,
    filters: &[String],
    tx: &mpsc::Sender<Message>,
) -> bool {
    let mut waiting = 0;
    for filter in filters {
        if client.try_unsubscribe(filter.clone()).is_ok() {
            waiting += 1;
        }
    }
    let deadline = tokio::time::Instant::now() + UNSUBSCRIBE_WITHIN;
    while waiting > 0 {
        let Ok(event) = tokio::time::timeout_at(deadline, events.poll()).await else {
            return false;
        };
        match event {
            Ok(Event::Incoming(Packet::UnsubAck(_))) => waiting -= 1,
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                let _ = tx.send(Message::from(publish)).await;
            }
            Ok(_) => {}
            Err(_) => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls_parse() {
        let b = ExternalBroker::parse("mqtt://gw:s3cret@10.0.0.5:1884").expect("valid");
        assert_eq!(b.host, "10.0.0.5");
        assert_eq!(b.port, 1884);
        assert_eq!(b.credentials, Some(("gw".into(), "s3cret".into())));
        assert_eq!(format!("{b:?}"), "mqtt://gw:***@10.0.0.5:1884");
        let b = ExternalBroker::parse("mqtt://broker").expect("valid");
        assert_eq!(
            (b.host.as_str(), b.port, b.credentials),
            ("broker", 1883, None)
        );
        assert!(ExternalBroker::parse("http://broker").is_none());
        assert!(ExternalBroker::parse("mqtt://:1883").is_none());
        assert!(ExternalBroker::parse("mqtt://host:notaport").is_none());
    }
}
