//! Simulated lockers over MQTT: each one a task that connects with its credentials, announces a
//! new session with `Hello`, sends heartbeats, answers commands through [`SimLocker`], and reconnects
//! with a new session after losing the connection. Knobs make it misbehave on purpose.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use firmware_protocol::{DeviceKey, Envelope, Presence, Topic, Unverified, Uplink};
use rumqttc::{AsyncClient, Event, EventLoop, LastWill, MqttOptions, Packet, QoS};
use tokio::sync::{broadcast, mpsc};

pub use crate::credentials::{Credentials, CredentialsError};
pub use setup::{FleetStats, Happening, Knob, LockerConfig};

mod handle;
mod setup;
use crate::locker::SimLocker;
pub use handle::{LockerHandle, Simulator, expect};

/// Starts a simulated locker.
pub fn spawn(config: LockerConfig) -> LockerHandle {
    let (knobs, knob_rx) = mpsc::channel(32);
    let (happenings, _) = broadcast::channel(256);
    let device_id = config.credentials.device_id;
    let task = tokio::spawn(run(config, knob_rx, happenings.clone()));
    LockerHandle {
        device_id,
        knobs,
        happenings,
        task,
    }
}

fn new_session() -> u32 {
    loop {
        let session = rand::random::<u32>();
        if session != 0 {
            return session;
        }
    }
}

/// One MQTT connection with one session. Its event loop runs in a task of its own: `poll()` must
/// never be cancelled half-way (it would drop a half-made connection and open a second one with
/// the same session and will), so the locker's `select!` waits on a channel instead.
struct Connection {
    client: AsyncClient,
    events: mpsc::Receiver<Result<Event, String>>,
    poller: tokio::task::JoinHandle<()>,
    session: u32,
    announced: bool,
    stats: Arc<FleetStats>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        // Ends the connection abruptly: no DISCONNECT, so the broker fires the will.
        self.poller.abort();
        if self.announced {
            self.stats.connected.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

async fn poll_until_error(mut events: EventLoop, tx: mpsc::Sender<Result<Event, String>>) {
    loop {
        let event = events.poll().await.map_err(|e| e.to_string());
        let failed = event.is_err();
        if tx.send(event).await.is_err() || failed {
            return;
        }
    }
}

fn connect(config: &LockerConfig) -> Connection {
    let session = new_session();
    let id = config.credentials.device_id;
    let mut options = MqttOptions::new(
        id.as_str(),
        config.broker.ip().to_string(),
        config.broker.port(),
    );
    options.set_credentials(id.as_str(), config.credentials.password.clone());
    options.set_keep_alive(config.keep_alive);
    options.set_clean_session(true);
    // Firmware chunks of up to 32 KiB come as base64 in a JSON envelope (up to 128 KiB).
    options.set_max_packet_size(
        firmware_protocol::MAX_JSON_ENVELOPE + 1024,
        firmware_protocol::MAX_JSON_ENVELOPE + 1024,
    );
    let will = Presence {
        online: false,
        session: Some(session),
    };
    options.set_last_will(LastWill::new(
        Topic::status(id).to_string(),
        will.to_json(),
        QoS::AtLeastOnce,
        true,
    ));
    let (client, mut events) = AsyncClient::new(options, 64);
    // Generous: during a reconnect storm a gateway may take seconds to answer; giving up early
    // only adds connections (and duplicate client ids) to the storm.
    events.network_options.set_connection_timeout(30);
    // An ack and the door event that follows it leave back to back: with Nagle's algorithm the
    // second waits for the broker's delayed ACK of the first (about 40 ms).
    events.network_options.set_tcp_nodelay(true);
    let (tx, rx) = mpsc::channel(64);
    let poller = tokio::spawn(poll_until_error(events, tx));
    Connection {
        client,
        events: rx,
        poller,
        session,
        announced: false,
        stats: config.stats.clone(),
    }
}

/// How the simulated locker answers `query_state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reports {
    /// At once.
    #[default]
    Prompt,
    /// After this long.
    Slow(Duration),
    /// Never.
    Missing,
}

struct Locker {
    config: LockerConfig,
    sim: SimLocker,
    key: DeviceKey,
    booted: Instant,
    happenings: broadcast::Sender<Happening>,
    ack_delay: Duration,
    duplicates: bool,
    reports: Reports,
    /// Uplinks held back by a delay knob, due in order.
    held: std::collections::VecDeque<(tokio::time::Instant, Envelope<Uplink>)>,
    /// Doors the simulated person will close, due in order.
    closing: std::collections::VecDeque<(tokio::time::Instant, u16)>,
    /// Door events and alarms that happened with no session (offline, or connecting), sent after
    /// the next hello (PROTOCOL.md §7.6), numbered then.
    offline: std::collections::VecDeque<Envelope<Uplink>>,
}

impl Locker {
    fn uptime(&self) -> u64 {
        self.booted.elapsed().as_millis() as u64
    }

    /// Publishes uplinks now, or holds back the ones a knob delays (they get a fresh counter when
    /// they finally go: a locker that is slow to answer numbers the answer when it sends it).
    fn send(&mut self, client: &AsyncClient, uplinks: Vec<Envelope<Uplink>>) {
        for uplink in uplinks {
            if let (
                Uplink::DoorEvent(firmware_protocol::DoorEvent {
                    door,
                    state: firmware_protocol::DoorMotion::Opened,
                    cause: firmware_protocol::DoorCause::Commanded(_),
                    ..
                }),
                Some(after),
            ) = (&uplink.message, self.config.close_after)
            {
                self.closing
                    .push_back((tokio::time::Instant::now() + after, *door));
            }
            let delay = match (&uplink.message, self.reports) {
                (Uplink::StateReport(_), Reports::Missing) => continue,
                (Uplink::StateReport(_), Reports::Slow(delay)) => delay,
                (Uplink::Ack(_), _) => self.ack_delay,
                _ => Duration::ZERO,
            };
            if delay.is_zero() {
                self.publish(client, &uplink);
            } else {
                self.held
                    .push_back((tokio::time::Instant::now() + delay, uplink));
            }
        }
    }

    /// Keeps door events and alarms for the next session: at most [`OFFLINE_QUEUE`]; when full
    /// the oldest door event makes room, an alarm is never dropped for a door event.
    fn keep_offline(&mut self, events: Vec<Envelope<Uplink>>) {
        for event in events {
            if self.offline.len() >= OFFLINE_QUEUE {
                let oldest_event = self
                    .offline
                    .iter()
                    .position(|e| matches!(e.message, Uplink::DoorEvent(_)));
                match oldest_event {
                    Some(at) => {
                        self.offline.remove(at);
                    }
                    None if matches!(event.message, Uplink::DoorEvent(_)) => continue,
                    None => {
                        self.offline.pop_front();
                    }
                }
            }
            self.offline.push_back(event);
        }
    }

    /// A door event or alarm: sent now when in session, else kept.
    fn happened(&mut self, conn: Option<&Connection>, events: Vec<Envelope<Uplink>>) {
        match conn {
            Some(conn) if conn.announced => self.send(&conn.client, events),
            _ => self.keep_offline(events),
        }
    }

    /// Sends the held-back uplinks that are due.
    fn release_due(&mut self, client: &AsyncClient) {
        let now = tokio::time::Instant::now();
        while self.held.front().is_some_and(|(due, _)| *due <= now) {
            if let Some((_, mut uplink)) = self.held.pop_front() {
                self.sim.restamp(&mut uplink);
                self.publish(client, &uplink);
            }
        }
    }

    /// A power cycle: RAM is gone (an image being installed boots), a new connection.
    fn power_cycle(&mut self) -> Connection {
        self.sim.reboot();
        self.booted = Instant::now();
        self.offline.clear();
        connect(&self.config)
    }

    fn publish(&self, client: &AsyncClient, uplink: &Envelope<Uplink>) {
        let topic = Topic::up(self.config.credentials.device_id).to_string();
        let Ok(payload) = uplink.seal_json(&self.key) else {
            tracing::error!("simulator produced an invalid message");
            return;
        };
        for _ in 0..if self.duplicates { 2 } else { 1 } {
            if client
                .try_publish(topic.clone(), QoS::AtLeastOnce, false, payload.clone())
                .is_ok()
            {
                self.config.stats.sent.fetch_add(1, Ordering::Relaxed);
                let _ = self.happenings.send(Happening::Sent(payload.clone()));
            }
        }
    }
}

/// A polite MQTT DISCONNECT (no last will), letting what was queued go out first.
async fn disconnect(conn: &mut Connection) {
    let _ = conn.client.try_disconnect();
    // The poller ends after the DISCONNECT is written.
    let flush = tokio::time::timeout(Duration::from_millis(500), async {
        while let Some(Ok(_)) = conn.events.recv().await {}
    });
    let _ = flush.await;
}

async fn run(
    config: LockerConfig,
    mut knobs: mpsc::Receiver<Knob>,
    happenings: broadcast::Sender<Happening>,
) {
    let mut locker = Locker {
        sim: {
            let mut sim = SimLocker::new(
                config.credentials.device_id,
                config.credentials.tag_key.clone(),
                config.doors,
            );
            sim.speak(config.protocol);
            if let Some(firmware) = &config.firmware {
                sim.run_firmware(firmware);
            }
            sim.updater = config.updater.clone();
            sim
        },
        key: config.credentials.tag_key.clone(),
        booted: Instant::now(),
        happenings,
        ack_delay: config.ack_delay,
        config,
        duplicates: false,
        reports: Reports::Prompt,
        held: std::collections::VecDeque::new(),
        closing: std::collections::VecDeque::new(),
        offline: std::collections::VecDeque::new(),
    };
    let down = Topic::down(locker.config.credentials.device_id).to_string();
    let status = Topic::status(locker.config.credentials.device_id).to_string();
    let mut connection = Some(connect(&locker.config));
    let mut heartbeat = tokio::time::interval(locker.config.heartbeat);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut retry_at: Option<tokio::time::Instant> = None;
    loop {
        let Some(conn) = connection.as_mut() else {
            // Away: wait for a knob, or the reconnect time.
            let knob = match retry_at {
                Some(at) => tokio::select! {
                    knob = knobs.recv() => knob,
                    _ = tokio::time::sleep_until(at) => Some(Knob::Reconnect),
                },
                None => knobs.recv().await,
            };
            match knob {
                None => return,
                Some(Knob::Reconnect) => {
                    retry_at = None;
                    connection = Some(connect(&locker.config));
                }
                Some(Knob::UseKey(key)) => locker.key = key,
                Some(Knob::CloseDoor(door)) => {
                    let events = locker.sim.close_door(door, locker.uptime());
                    locker.keep_offline(events);
                }
                Some(Knob::ForceOpen(door)) => {
                    let events = locker.sim.force_open(door, locker.uptime());
                    locker.keep_offline(events);
                }
                Some(Knob::Reboot) => {
                    retry_at = None;
                    connection = Some(locker.power_cycle());
                }
                Some(_) => {}
            }
            continue;
        };
        tokio::select! {
            event = conn.events.recv() => match event.unwrap_or_else(|| Err("poller ended".into())) {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    let _ = conn.client.try_subscribe(down.clone(), QoS::AtLeastOnce);
                    let online = Presence { online: true, session: Some(conn.session) };
                    let _ = conn.client.try_publish(status.clone(), QoS::AtLeastOnce, true, online.to_json());
                    // Answers held back for the old connection belong to its session: gone.
                    locker.held.clear();
                    let hello = locker.sim.connect(conn.session, locker.uptime());
                    // A heartbeat at once: the gateway knows every door from the start (§7.6).
                    let beat = locker.sim.heartbeat(locker.uptime());
                    // And the report of an install this power-up finished (PROTOCOL.md §11.2).
                    let report = locker.sim.boot_report();
                    locker.send(&conn.client, [hello, beat].into_iter().chain(report).collect());
                    // Then what happened while offline, numbered in this session.
                    let mut kept: Vec<_> = locker.offline.drain(..).collect();
                    for event in &mut kept {
                        locker.sim.restamp(event);
                    }
                    locker.send(&conn.client, kept);
                    let _ = locker.happenings.send(Happening::Connected { session: conn.session });
                    locker.config.stats.connected.fetch_add(1, Ordering::Relaxed);
                    locker.config.stats.connects.fetch_add(1, Ordering::Relaxed);
                    conn.announced = true;
                }
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    locker.config.stats.received.fetch_add(1, Ordering::Relaxed);
                    let _ = locker.happenings.send(Happening::Received(publish.payload.to_vec()));
                    if let Ok(raw) = Unverified::parse_json(&publish.payload) {
                        let uptime = locker.uptime();
                        let answers = locker.sim.receive(&raw, uptime);
                        // A power cut mid-download loses the answer; an install reboots after it.
                        let updater = locker.sim.updater.as_mut();
                        let (cut, install) = updater.map_or((false, false), |u| (u.power_cut_due(), u.take_reboot()));
                        if !cut {
                            locker.send(&conn.client, answers);
                        }
                        if install {
                            disconnect(conn).await;
                        }
                        if cut || install {
                            connection = Some(locker.power_cycle());
                            let _ = locker.happenings.send(Happening::Disconnected);
                        }
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(device = %locker.config.credentials.device_id, error = %e, "connection lost");
                    connection = None;
                    // Jitter, so that a fleet that lost its broker does not come back all at once.
                    let wait = locker.config.reconnect_after.mul_f64(rand::random_range(0.5..1.5));
                    retry_at = Some(tokio::time::Instant::now() + wait);
                    let _ = locker.happenings.send(Happening::Disconnected);
                }
            },
            _ = tokio::time::sleep_until(locker.held.front().map_or_else(tokio::time::Instant::now, |(due, _)| *due)), if !locker.held.is_empty() => {
                locker.release_due(&conn.client);
            }
            _ = tokio::time::sleep_until(locker.closing.front().map_or_else(tokio::time::Instant::now, |(due, _)| *due)), if !locker.closing.is_empty() => {
                if let Some((_, door)) = locker.closing.pop_front() {
                    let events = locker.sim.close_door(door, locker.uptime());
                    locker.send(&conn.client, events);
                }
            }
            _ = heartbeat.tick() => {
                if locker.sim.session().is_some() {
                    let beat = locker.sim.heartbeat(locker.uptime());
                    locker.send(&conn.client, vec![beat]);
                }
            }
            knob = knobs.recv() => match knob {
                None => return,
                Some(Knob::Disconnect) => {
                    disconnect(conn).await;
                    connection = None;
                    retry_at = None;
                    let _ = locker.happenings.send(Happening::Disconnected);
                }
                Some(Knob::Drop) => {
                    connection = None;
                    retry_at = None;
                    let _ = locker.happenings.send(Happening::Disconnected);
                }
                Some(Knob::Reconnect) => {
                    connection = Some(connect(&locker.config));
                }
                Some(Knob::SendRaw(bytes)) => {
                    let topic = Topic::up(locker.config.credentials.device_id).to_string();
                    let _ = conn.client.try_publish(topic, QoS::AtLeastOnce, false, bytes);
                }
                Some(Knob::UseKey(key)) => locker.key = key,
                Some(Knob::Heartbeat) => {
                    let beat = locker.sim.heartbeat(locker.uptime());
                    locker.send(&conn.client, vec![beat]);
                }
                Some(Knob::CloseDoor(door)) => {
                    let events = locker.sim.close_door(door, locker.uptime());
                    locker.happened(connection.as_ref(), events);
                }
                Some(Knob::ForceOpen(door)) => {
                    let events = locker.sim.force_open(door, locker.uptime());
                    locker.happened(connection.as_ref(), events);
                }
                Some(Knob::DropAcks(n)) => locker.sim.faults.drop_acks += n,
                Some(Knob::AckDelay(delay)) => locker.ack_delay = delay,
                Some(Knob::Duplicate(on)) => locker.duplicates = on,
                Some(Knob::StateReports(mode)) => locker.reports = mode,
                Some(Knob::Reboot) => {
                    connection = Some(locker.power_cycle());
                    let _ = locker.happenings.send(Happening::Disconnected);
                }
                Some(Knob::UpdateFaults(faults)) => {
                    if let Some(updater) = locker.sim.updater.as_mut() {
                        updater.faults = faults;
                    }
                }
                Some(Knob::Jam(door)) => {
                    locker.sim.faults.jammed_doors.insert(door);
                }
            },
        }
    }
}

/// Door events and alarms a locker keeps while offline (the protocol's minimum).
const OFFLINE_QUEUE: usize = 16;
