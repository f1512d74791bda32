//! The tool's end of an MQTT broker: it logs in as the gateway would, listens on the locker's
//! `up` and `status` topics, publishes requests on its `down` topic, and takes as the answer the
//! first uplink that answers (an `ack`, `state_report`, `pong` or `hello`); heartbeats, door
//! events and alarms that come meanwhile are kept for the cases that look for them.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use firmware_protocol::{
    DeviceId, DeviceKey, Direction, Downlink, Envelope, Header, MessageType, Presence, Topic,
    Unverified, Uplink, seal_json_text,
};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::{mpsc, oneshot};

use super::Target;
use super::probe::Probe;

/// How long the tool listens after an answer for a second one (a locker answers once).
const SECOND_ANSWER: Duration = Duration::from_millis(30);

/// A scripted gateway on an MQTT broker, talking to one locker.
pub struct MqttProbe {
    client: AsyncClient,
    incoming: mpsc::Receiver<(String, Bytes)>,
    poller: tokio::task::JoinHandle<()>,
    device: DeviceId,
    key: DeviceKey,
    wait: Duration,
    session: u32,
    counter: u32,
    log: Vec<String>,
    slowest: Duration,
    /// Uplinks that came unasked (a hello at connect, heartbeats, door events, alarms), in order.
    unasked: VecDeque<Envelope<Uplink>>,
    /// What the locker published on its `status` topic, in order.
    pub(crate) presence: Vec<Presence>,
}

impl Drop for MqttProbe {
    fn drop(&mut self) {
        self.poller.abort();
    }
}

fn is_answer(uplink: &Uplink) -> bool {
    matches!(
        uplink,
        Uplink::Ack(_) | Uplink::StateReport(_) | Uplink::Pong | Uplink::Hello(_)
    )
}

impl MqttProbe {
    /// Logs in to the broker at `broker` (`host:port`), with `login` if given, and subscribes to
    /// the locker's topics.
    pub async fn connect(
        broker: &str,
        login: Option<(String, String)>,
        target: &Target,
    ) -> Result<Self, String> {
        let (host, port) = broker
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h.to_owned(), p.parse::<u16>().ok()?)))
            .ok_or_else(|| format!("--mqtt {broker}: expected HOST:PORT"))?;
        let mut options =
            MqttOptions::new(format!("conform-{:08x}", rand::random::<u32>()), host, port);
        options.set_keep_alive(Duration::from_secs(30));
        options.set_clean_session(true);
        if let Some((user, password)) = login {
            options.set_credentials(user, password);
        }
        let (client, mut events) = AsyncClient::new(options, 64);
        let (tx, incoming) = mpsc::channel(1024);
        let (ready_tx, ready) = oneshot::channel::<Result<(), String>>();
        let poller = tokio::spawn(async move {
            let mut ready_tx = Some(ready_tx);
            let mut acks = 0;
            loop {
                match events.poll().await {
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        if tx.send((p.topic, p.payload)).await.is_err() {
                            return;
                        }
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        acks += 1;
                        if acks == 2
                            && let Some(ready) = ready_tx.take()
                        {
                            let _ = ready.send(Ok(()));
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        if let Some(ready) = ready_tx.take() {
                            let _ = ready.send(Err(format!("cannot use the broker: {e}")));
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        });
        let up = Topic::up(target.device_id).to_string();
        let status = Topic::status(target.device_id).to_string();
        for topic in [up, status] {
            client
                .subscribe(topic, QoS::AtLeastOnce)
                .await
                .map_err(|e| e.to_string())?;
        }
        match tokio::time::timeout(Duration::from_secs(10), ready).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => return Err(e),
            _ => {
                return Err(format!(
                    "the broker at {broker} did not take the subscriptions"
                ));
            }
        }
        Ok(Self {
            client,
            incoming,
            poller,
            device: target.device_id,
            key: target.key.clone(),
            wait: target.wait,
            session: 0,
            counter: 0,
            log: Vec::new(),
            slowest: Duration::ZERO,
            unasked: VecDeque::new(),
            presence: Vec::new(),
        })
    }

    /// A command whose JSON body is `body` as it stands (tagged right, not checked), with the
    /// next counter.
    pub fn raw_json(&mut self, ty: MessageType, body: &str) -> Vec<u8> {
        self.counter += 1;
        let header = Header {
            direction: Direction::Down,
            device_id: self.device,
            session: self.session,
            counter: self.counter,
        };
        seal_json_text(&header, ty, body, &self.key).into_bytes()
    }

    /// Forgets the uplinks that came unasked so far.
    pub fn forget_unasked(&mut self) {
        self.unasked.clear();
    }

    /// The first unasked uplink for which `pick` holds, waiting up to `within`; the others stay.
    pub async fn unasked(
        &mut self,
        within: Duration,
        pick: impl Fn(&Envelope<Uplink>) -> bool,
    ) -> Result<Option<Envelope<Uplink>>, String> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(at) = self.unasked.iter().position(&pick) {
                return Ok(self.unasked.remove(at));
            }
            match self.receive(deadline).await? {
                Some(uplink) => self.unasked.push_back(uplink),
                None => return Ok(None),
            }
        }
    }

    /// The next uplink before `deadline` (presence messages are noted on the way).
    async fn receive(
        &mut self,
        deadline: tokio::time::Instant,
    ) -> Result<Option<Envelope<Uplink>>, String> {
        loop {
            let Ok(Some((topic, payload))) =
                tokio::time::timeout_at(deadline, self.incoming.recv()).await
            else {
                return Ok(None);
            };
            if topic.ends_with("/status") {
                self.log
                    .push(format!("< status {}", String::from_utf8_lossy(&payload)));
                self.presence.extend(Presence::parse(&payload).ok());
                continue;
            }
            self.log
                .push(format!("< {}", String::from_utf8_lossy(&payload)));
            let raw = Unverified::parse_json(&payload)
                .map_err(|e| format!("an uplink that does not parse: {e}"))?;
            let uplink = raw
                .verify::<Uplink>(&self.device, &self.key)
                .map_err(|e| format!("an uplink that does not verify: {e}"))?;
            return Ok(Some(uplink));
        }
    }
}

impl Probe for MqttProbe {
    fn session(&self) -> u32 {
        self.session
    }

    fn set_session(&mut self, session: u32) {
        self.session = session;
    }

    fn counter(&self) -> u32 {
        self.counter
    }

    fn set_counter(&mut self, counter: u32) {
        self.counter = counter;
    }

    fn key(&self) -> DeviceKey {
        self.key.clone()
    }

    fn seal_with(&self, key: &DeviceKey, session: u32, counter: u32, message: Downlink) -> Vec<u8> {
        let envelope = Envelope {
            header: Header {
                direction: Direction::Down,
                device_id: self.device,
                session,
                counter,
            },
            message,
        };
        envelope
            .seal_json(key)
            .expect("the tool's own messages are valid")
            .into_bytes()
    }

    async fn send(&mut self, bytes: &[u8]) -> Result<Option<Envelope<Uplink>>, String> {
        self.log
            .push(format!("> {}", String::from_utf8_lossy(bytes)));
        let down = Topic::down(self.device).to_string();
        self.client
            .publish(down, QoS::AtLeastOnce, false, bytes.to_vec())
            .await
            .map_err(|e| format!("cannot publish: {e}"))?;
        let sent = Instant::now();
        let deadline = tokio::time::Instant::now() + self.wait;
        let answer = loop {
            match self.receive(deadline).await? {
                None => {
                    self.log.push("< (no answer)".into());
                    return Ok(None);
                }
                Some(uplink) if is_answer(&uplink.message) => break uplink,
                Some(uplink) => self.unasked.push_back(uplink),
            }
        };
        self.slowest = self.slowest.max(sent.elapsed());
        let deadline = tokio::time::Instant::now() + SECOND_ANSWER;
        while let Some(next) = self.receive(deadline).await? {
            if is_answer(&next.message) {
                return Err(format!(
                    "answered twice: a {} followed the {}",
                    next.message.message_type().name(),
                    answer.message.message_type().name()
                ));
            }
            self.unasked.push_back(next);
        }
        Ok(Some(answer))
    }

    fn note(&mut self, text: &str) {
        self.log.push(format!("# {text}"));
    }

    fn take_log(&mut self) -> Vec<String> {
        std::mem::take(&mut self.log)
    }

    fn slowest(&self) -> Duration {
        self.slowest
    }

    fn wait(&self) -> Duration {
        self.wait
    }
}
