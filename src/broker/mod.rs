//! The embedded MQTT broker (`rumqttd`), with login checked by an [`Authenticator`] and topics
//! restricted per locker by [`acl::LockerAcl`].
//!
//! `rumqttd` (0.20 with the patches in `vendor/rumqttd/PATCHES.md`) binds its listen address
//! itself and runs forever, so the listeners (MQTT 3.1.1, and optionally MQTT 5 on a second
//! address) run on a thread of their own with a runtime of [`BROKER_WORKERS`] worker threads for
//! the connections (a slow client, or a connect waiting for the router, never stalls the others),
//! and stop when [`EmbeddedBroker::stop`] is called or the broker is dropped: the runtime is
//! dropped and every connection with it.

pub mod acl;
pub mod auth;
pub mod probe;
pub mod revocation;
pub mod tls;

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::pin::Pin;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use firmware_protocol::{Topic, TopicKind};
use rumqttd::local::{LinkError, LinkRx, LinkTx};
use rumqttd::protocol::Protocol;
use rumqttd::protocol::v4::V4;
use rumqttd::protocol::v5::V5;
use rumqttd::{ConnectionSettings, LinkType, Router, RouterConfig, Server, ServerSettings};
use tokio::sync::watch;

pub use acl::{LockerAcl, Revocations};
pub use auth::RegistryAuthenticator;

/// A boxed login decision.
pub type AuthFuture = Pin<Box<dyn Future<Output = bool> + Send>>;

/// Decides whether a client may log in. Called for every CONNECT, on the broker's thread: do the
/// work elsewhere (the registry's authenticator runs its query on the gateway's runtime).
pub trait Authenticator: Send + Sync + 'static {
    /// Whether `client_id` may connect with this username and password.
    fn admit(&self, client_id: String, username: String, password: String) -> AuthFuture;
}

/// Worker threads of the listeners' runtime (the router has a thread of its own).
pub const BROKER_WORKERS: usize = 2;

/// rumqttd keeps each subscribed filter's messages in a log of segments. With the carried patch
/// a message is counted with its entry (232 bytes besides topic and payload), so a log's limit
/// (segment size × count) bounds its memory, and the segments every reader has read are given
/// back once a reader catches up: the limit is the backlog a reader may fall behind by before
/// rumqttd skips it ahead (logged), and a log whose readers keep up holds one or two segments.
///
/// A locker's own `down` topic: 16 segments of 1 KiB, room for about 22 commands not yet
/// delivered; at rest at most 2 KiB.
const LOCKER_FILTER_SEGMENT: usize = 1024;
const LOCKER_FILTER_SEGMENTS: usize = 16;

/// The filters that carry every locker's traffic (the gateway's own subscriptions, and event
/// subscribers'): 64 segments of 256 KiB, room for a reconnect storm of about 22,000 `hello`s
/// (or 55,000 presence messages) that the gateway has not read yet (the embedded broker takes
/// 20,000 connections by default); at rest at most 512 KiB each.
const GATEWAY_FILTER_SEGMENT: usize = 256 * 1024;
const GATEWAY_FILTER_SEGMENTS: usize = 64;

fn gateway_filter_segments() -> std::collections::HashMap<String, rumqttd::SegmentConfig> {
    [
        Topic::filter_all(TopicKind::Up),
        Topic::filter_all(TopicKind::Status),
        "events/#".to_owned(),
    ]
    .into_iter()
    .map(|filter| {
        let segments = rumqttd::SegmentConfig {
            max_segment_size: GATEWAY_FILTER_SEGMENT,
            max_segment_count: GATEWAY_FILTER_SEGMENTS,
        };
        (filter, segments)
    })
    .collect()
}

/// Where and how the broker listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerSettings {
    /// MQTT 3.1.1 listener.
    pub v4_addr: SocketAddr,
    /// MQTT 5 listener, if any.
    pub v5_addr: Option<SocketAddr>,
    /// MQTT 3.1.1 over TLS, if any.
    pub tls: Option<crate::config::MqttsListener>,
    /// Most simultaneous connections.
    pub max_connections: usize,
    /// Largest payload a client may publish (bytes).
    pub max_payload: usize,
    /// How long a new connection may take to send CONNECT (ms).
    pub connect_timeout_ms: u16,
    /// Bytes each connection's read and write buffers start with (they grow for a larger
    /// packet, up to `max_payload`).
    pub buffer_bytes: usize,
    /// In-process links made and subscribed before any listener accepts a connection (name,
    /// filters), so that nothing a locker sends at once (its hello) can arrive before the
    /// gateway listens; [`EmbeddedBroker::link`] hands each out once.
    pub early_links: Vec<(String, Vec<String>)>,
}

impl BrokerSettings {
    /// Settings for one 3.1.1 listener on `v4_addr` and sensible limits.
    pub fn on(v4_addr: SocketAddr) -> Self {
        Self {
            v4_addr,
            v5_addr: None,
            tls: None,
            max_connections: 20_000,
            max_payload: firmware_protocol::MAX_JSON_ENVELOPE,
            connect_timeout_ms: 5_000,
            // A locker's messages are a few hundred bytes.
            buffer_bytes: 1024,
            early_links: Vec::new(),
        }
    }
}

/// Why the broker did not start.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The listen address is taken (or not ours to bind).
    #[error(
        "cannot listen for MQTT on {addr}: {source}; another broker (Mosquitto?) may hold the port: set {setting} to a free address"
    )]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The setting that chooses it.
        setting: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// A thread could not be started.
    #[error("cannot start a broker thread: {0}")]
    Thread(std::io::Error),
    /// The TLS listener's certificate, key or client authority does not load.
    #[error(transparent)]
    Tls(#[from] tls::ListenerTlsError),
    /// The router refused an in-process link.
    #[error("cannot open an in-process link: {0}")]
    Link(Box<LinkError>),
}

impl From<LinkError> for BrokerError {
    fn from(e: LinkError) -> Self {
        Self::Link(Box::new(e))
    }
}

type LinkFactory = Box<dyn Fn(&str) -> Result<(LinkTx, LinkRx), BrokerError> + Send + Sync>;

/// A running embedded broker.
pub struct EmbeddedBroker {
    settings: BrokerSettings,
    links: LinkFactory,
    stop: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
    listening: ListenerHealth,
    early: std::sync::Mutex<Vec<(String, (LinkTx, LinkRx))>>,
}

/// Whether every listener of the embedded broker is still running (for `/readyz`).
#[derive(Debug, Clone, Default)]
pub struct ListenerHealth {
    ended: Vec<Arc<std::sync::atomic::AtomicBool>>,
}

impl ListenerHealth {
    /// Whether every listener started is still running.
    pub fn all_running(&self) -> bool {
        (0..self.ended.len()).all(|i| !self.ended(i))
    }

    /// One more listener, running until the returned guard is dropped.
    fn add(&mut self) -> Running {
        let ended = Arc::new(std::sync::atomic::AtomicBool::new(false));
        self.ended.push(ended.clone());
        Running(ended)
    }

    /// Whether the `i`th listener started has ended.
    fn ended(&self, i: usize) -> bool {
        self.ended
            .get(i)
            .is_some_and(|e| e.load(std::sync::atomic::Ordering::Relaxed))
    }
}

/// Marks a listener as ended when it ends, however it ends.
struct Running(Arc<std::sync::atomic::AtomicBool>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

impl std::fmt::Debug for EmbeddedBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedBroker")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

fn check_free(addr: SocketAddr, setting: &'static str) -> Result<(), BrokerError> {
    TcpListener::bind(addr)
        .map(drop)
        .map_err(|source| BrokerError::Bind {
            addr,
            setting,
            source,
        })
}

impl EmbeddedBroker {
    /// Starts the broker's router and listeners. Fails at once, naming the address and the setting,
    /// if a listen address is taken.
    pub fn start(
        settings: BrokerSettings,
        auth: Arc<dyn Authenticator>,
        revocations: Revocations,
    ) -> Result<Self, BrokerError> {
        check_free(settings.v4_addr, "LOCKER_MQTT_ADDR")?;
        if let Some(addr) = settings.v5_addr {
            check_free(addr, "LOCKER_MQTT5_ADDR")?;
        }
        let tls = match &settings.tls {
            Some(listener) => {
                check_free(listener.addr, "LOCKER_MQTTS_ADDR")?;
                Some((listener.addr, tls::ListenerTls::load(listener.clone())?))
            }
            None => None,
        };
        let router = Router::new(
            0,
            RouterConfig {
                max_connections: settings.max_connections,
                max_outgoing_packet_count: 200,
                // Small for each locker's own topic (thousands of them), large for the
                // gateway's, which carry every locker's uplinks and absorb their bursts.
                max_segment_size: LOCKER_FILTER_SEGMENT,
                max_segment_count: LOCKER_FILTER_SEGMENTS,
                custom_segment: Some(gateway_filter_segments()),
                initialized_filters: None,
                shared_subscriptions_strategy: Default::default(),
                // Connection events of clients gone are only shown by rumqttd's own console,
                // which the gateway does not run: none kept (presence lives in the database).
                max_connection_history: Some(0),
            },
        );
        let router_tx = router.spawn();
        // The gateway's own subscriptions reach the router before any locker can connect.
        let mut early = Vec::new();
        for (name, filters) in &settings.early_links {
            let (mut tx, rx, _ack) = rumqttd::local::LinkBuilder::new(name, router_tx.clone())
                .dynamic_filters(true)
                .build()
                .map_err(BrokerError::from)?;
            for filter in filters {
                tx.subscribe(filter.clone()).map_err(BrokerError::from)?;
            }
            early.push((name.clone(), (tx, rx)));
        }
        let (stop, stop_rx) = watch::channel(false);
        let probe = probe::Probe::new();
        let auth: Arc<dyn Authenticator> = Arc::new(probe::Probing {
            probe: probe.clone(),
            inner: auth,
        });
        let mut listening = ListenerHealth::default();
        let listener = |name: &str, addr: SocketAddr| {
            let mut server = ServerSettings {
                name: name.to_owned(),
                listen: addr,
                tls: None,
                next_connection_delay_ms: 0,
                connections: ConnectionSettings {
                    connection_timeout_ms: settings.connect_timeout_ms,
                    max_payload_size: settings.max_payload,
                    max_inflight_count: 64,
                    auth: None,
                    external_auth: None,
                    dynamic_filters: true,
                    buffer_capacity: settings.buffer_bytes,
                },
            };
            let auth = auth.clone();
            server.set_auth_handler(move |client_id, user, pass| auth.admit(client_id, user, pass));
            server
        };
        let mut listeners: Vec<Listener> = vec![Box::pin(listen(
            Server::new(
                listener("mqtt-v4", settings.v4_addr),
                router_tx.clone(),
                LockerAcl::new(V4, revocations.clone()).without_properties(),
            ),
            listening.add(),
        ))];
        if let Some(addr) = settings.v5_addr {
            listeners.push(Box::pin(listen(
                Server::new(
                    listener("mqtt-v5", addr),
                    router_tx.clone(),
                    LockerAcl::new(V5, revocations.clone()),
                ),
                listening.add(),
            )));
        }
        if let Some((addr, tls)) = &tls {
            let mut server = Server::new(
                listener("mqtts", *addr),
                router_tx.clone(),
                LockerAcl::new(V4, revocations.clone()).without_properties(),
            );
            server.set_stream_acceptor(tls.acceptor());
            listeners.push(Box::pin(listen(server, listening.add())));
        }
        let thread = spawn_listeners(listeners, stop_rx)?;
        // Prove that each listener is ours before reporting success.
        let mut listeners = vec![(settings.v4_addr, 4u8, "LOCKER_MQTT_ADDR")];
        if let Some(addr) = settings.v5_addr {
            listeners.push((addr, 5, "LOCKER_MQTT5_ADDR"));
        }
        for (i, (addr, level, setting)) in listeners.into_iter().enumerate() {
            let ours = probe.confirm(addr, level, Duration::from_secs(10), || {
                thread.is_finished() || listening.ended(i)
            });
            if !ours {
                let _ = stop.send(true);
                return Err(BrokerError::Bind {
                    addr,
                    setting,
                    source: std::io::Error::new(
                        std::io::ErrorKind::AddrInUse,
                        "the listener did not come up (the address was taken meanwhile)",
                    ),
                });
            }
        }
        let links: LinkFactory = Box::new(move |name: &str| {
            let (tx, rx, _ack) = rumqttd::local::LinkBuilder::new(name, router_tx.clone())
                .dynamic_filters(true)
                .build()
                .map_err(BrokerError::from)?;
            Ok((tx, rx))
        });
        tracing::info!(v4 = %settings.v4_addr, v5 = ?settings.v5_addr, "embedded MQTT broker listening");
        Ok(Self {
            settings,
            links,
            stop,
            thread: Some(thread),
            listening,
            early: std::sync::Mutex::new(early),
        })
    }

    /// Whether its listeners are still running.
    pub fn health(&self) -> ListenerHealth {
        self.listening.clone()
    }

    /// The settings it runs with.
    pub fn settings(&self) -> &BrokerSettings {
        &self.settings
    }

    /// An in-process client, not subject to login or topic rules: the gateway's own.
    pub fn link(&self, name: &str) -> Result<(LinkTx, LinkRx), BrokerError> {
        let early = {
            let mut early = self.early.lock().unwrap_or_else(|e| e.into_inner());
            early
                .iter()
                .position(|(n, _)| n == name)
                .map(|i| early.remove(i).1)
        };
        match early {
            Some(link) => Ok(link),
            None => (self.links)(name),
        }
    }

    /// Stops the listeners and drops every connection; returns when their threads have ended.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let _ = self.stop.send(true);
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the broker's listener thread panicked");
        }
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        self.shutdown();
    }
}

type Listener = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One listener's accept loop, counted as running until it ends.
async fn listen<P>(mut server: Server<P>, running: Running)
where
    P: Protocol + Clone + Send + 'static,
{
    let _running = running;
    if let Err(e) = server.start(LinkType::Remote).await {
        tracing::error!(error = %e, "MQTT listener stopped");
    }
}

/// Runs the listeners on a thread of their own until `stop`; their connections are tasks on
/// the runtime's worker threads.
fn spawn_listeners(
    listeners: Vec<Listener>,
    mut stop: watch::Receiver<bool>,
) -> Result<JoinHandle<()>, BrokerError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(BROKER_WORKERS)
        .thread_name("mqtt-connections")
        .enable_all()
        .build()
        .map_err(BrokerError::Thread)?;
    std::thread::Builder::new()
        .name("mqtt-listener".into())
        .spawn(move || {
            runtime.block_on(async move {
                let listeners = futures_util::future::join_all(listeners);
                tokio::select! {
                    _ = listeners => {}
                    _ = stop.wait_for(|stopped| *stopped) => {}
                }
            });
            // Dropping the runtime here cancels every connection task.
            drop(runtime);
        })
        .map_err(BrokerError::Thread)
}
