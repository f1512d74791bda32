//! Whether an external broker delivers shared subscriptions, checked at start: the gateways of a
//! fleet share the lockers' uplinks through `$share/{group}/…`, and a broker that accepts such a
//! subscription but ignores it (NATS's MQTT side does) would hand every uplink to every gateway,
//! or to none.

use std::time::Duration;

use rumqttc::{AsyncClient, Event, Packet, QoS, SubscribeReasonCode};

use super::{ExternalBroker, shared};

/// Why the broker cannot carry a fleet.
#[derive(Debug, thiserror::Error)]
pub enum SharedSubscriptionError {
    /// The broker could not be reached to ask.
    #[error(
        "cannot reach the external MQTT broker {broker} within {secs} s to check that it delivers \
         shared subscriptions ({why}); the gateway does not start without its broker"
    )]
    Unreachable {
        /// The broker (credentials masked).
        broker: String,
        /// The limit.
        secs: u64,
        /// The last connection error.
        why: String,
    },
    /// The broker refused the subscription.
    #[error(
        "the external MQTT broker {broker} refused the shared subscription {filter}: gateways share \
         the lockers' uplinks through shared subscriptions ($share/{{group}}/…, MQTT 5; Mosquitto \
         2, EMQX, HiveMQ and VerneMQ deliver them); allow the gateway's user to subscribe to \
         $share/# or use a broker that supports them"
    )]
    Refused {
        /// The broker (credentials masked).
        broker: String,
        /// The filter refused.
        filter: String,
    },
    /// The broker accepted the subscription but delivered nothing through it.
    #[error(
        "the external MQTT broker {broker} accepted the shared subscription {filter} but did not \
         deliver a message published to its topic within {secs} s: it does not support shared \
         subscriptions ($share/{{group}}/…; NATS's MQTT side, for one, ignores them), and a fleet of \
         gateways cannot share the lockers' uplinks through it; use Mosquitto 2, EMQX, HiveMQ or \
         VerneMQ"
    )]
    NotDelivered {
        /// The broker (credentials masked).
        broker: String,
        /// The filter.
        filter: String,
        /// The limit.
        secs: u64,
    },
}

/// Subscribes to `$share/{group}/locker-gateway/probe/{gateway}/{nonce}` with a clean session,
/// publishes one message to that topic and waits for it, all within `within` (connecting again
/// with backoff while the broker cannot be reached).
pub async fn check_shared_subscriptions(
    broker: &ExternalBroker,
    gateway: &str,
    group: &str,
    within: Duration,
) -> Result<(), SharedSubscriptionError> {
    let topic = format!(
        "locker-gateway/probe/{gateway}/{:016x}",
        rand::random::<u64>()
    );
    let filter = shared(group, &topic);
    let mut options = super::tls::options(broker, format!("locker-gateway-{gateway}-probe"))
        .map_err(|e| SharedSubscriptionError::Unreachable {
            broker: format!("{broker:?}"),
            secs: within.as_secs(),
            why: e.to_string(),
        })?;
    options.set_keep_alive(Duration::from_secs(30));
    options.set_clean_session(true);
    let (client, mut events) = AsyncClient::new(options, 10);
    let deadline = tokio::time::Instant::now() + within;
    let (mut subscribed, mut last_error) = (false, "no answer".to_owned());
    let mut backoff = Duration::from_millis(100);
    let outcome = loop {
        let Ok(event) = tokio::time::timeout_at(deadline, events.poll()).await else {
            break if subscribed {
                Err(SharedSubscriptionError::NotDelivered {
                    broker: format!("{broker:?}"),
                    filter,
                    secs: within.as_secs(),
                })
            } else {
                Err(SharedSubscriptionError::Unreachable {
                    broker: format!("{broker:?}"),
                    secs: within.as_secs(),
                    why: last_error,
                })
            };
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                backoff = Duration::from_millis(100);
                let _ = client.try_subscribe(filter.clone(), QoS::AtLeastOnce);
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                if ack.return_codes.contains(&SubscribeReasonCode::Failure) {
                    break Err(SharedSubscriptionError::Refused {
                        broker: format!("{broker:?}"),
                        filter,
                    });
                }
                subscribed = true;
                let _ = client.try_publish(topic.clone(), QoS::AtLeastOnce, false, "probe");
            }
            Ok(Event::Incoming(Packet::Publish(message))) if message.topic == topic => {
                break Ok(());
            }
            Ok(_) => {}
            Err(e) => {
                last_error = e.to_string();
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                tokio::time::sleep(backoff.min(left)).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    };
    let _ = client.try_disconnect();
    let _ = tokio::time::timeout(Duration::from_millis(200), events.poll()).await;
    outcome
}
