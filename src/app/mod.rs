//! The composition root: builds every part of the gateway from the configuration, hands them to
//! each other as plain values, runs them, and stops them in order.

mod domain;
mod error;
mod serial;
mod target;
mod transport;
mod workers;

pub use error::StartError;
pub use target::storage_target;

use std::future::Future;

use sqlx::PgPool;

use crate::storage::Storage;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::{ApiState, Parts};
use crate::broker::{EmbeddedBroker, Revocations, revocation};
use crate::command::outlet::Turns;
use crate::command::{CommandService, CommandSettings, Waiters};
use crate::config::{Config, redact_url};
use crate::device::DeviceRegistry;
use crate::events::Event;
use crate::link::downlink::Downlinks;
use crate::link::{DeviceLink, LinkSettings};
use std::sync::Arc;
use tokio::sync::broadcast;

/// The running gateway.
pub struct App {
    storage: Storage,
    registry: DeviceRegistry,
    broker: Option<EmbeddedBroker>,
    link: DeviceLink,
    commands: CommandService,
    events: broadcast::Sender<Event>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    /// The external broker's clients stop last, after the outbox is flushed through them.
    bus_shutdown: CancellationToken,
    bus_tasks: TaskTracker,
    /// Whether the gateway's uplink subscription is in place (always, with the embedded broker).
    mqtt_ready: tokio::sync::watch::Receiver<bool>,
    /// Where the HTTP API listens.
    http_addr: std::net::SocketAddr,
    /// The HTTP server stops first, finishing the requests in flight.
    http_stopping: crate::api::server::Stopping,
    http_tasks: TaskTracker,
    draining: Arc<std::sync::atomic::AtomicBool>,
    /// How long requests in flight may take to finish at shutdown.
    shutdown_grace: std::time::Duration,
    /// What each serial bus did.
    serial: Vec<Arc<crate::serial::BusStats>>,
    /// Where downlinks go (serial buses attached later route their boards here).
    downlinks: Downlinks,
    /// Who holds this gateway's serial lines (buses attached later record their boards so).
    line: crate::serial::LineOwner,
    /// This gateway's lease among the gateways sharing its database.
    lease: crate::lease::Lease,
    /// Cancelled when another gateway took the lease: this one stops.
    lease_lost: CancellationToken,
}

impl App {
    /// Opens the storage the mode asks for (PostgreSQL in fleet mode, the SQLite file in edge
    /// mode; migrating it), starts the broker and the background tasks.
    pub async fn build(config: &Config) -> Result<Self, StartError> {
        config.mode()?;
        let storage = Storage::open(&storage_target(config)?, 16).await?;
        Self::with_storage(config, storage).await
    }

    /// Starts the gateway on an existing pool whose schema is up to date (tests pass theirs).
    pub async fn with_pool(config: &Config, pool: PgPool) -> Result<Self, StartError> {
        Self::with_storage(config, Storage::Postgres(pool)).await
    }

    /// Starts the gateway on `storage`, whose schema is up to date: on PostgreSQL door locks and
    /// the cache are in Redis (`REDIS_URL`; no Redis, no rentals), on SQLite in the process. First
    /// it checks that an external broker delivers shared subscriptions, then takes its lease
    /// ([`crate::lease`]): a live gateway with its id, or one it may not run beside (an embedded
    /// broker or edge mode runs alone), makes it refuse to start.
    pub async fn with_storage(config: &Config, storage: Storage) -> Result<Self, StartError> {
        transport::check_broker(config, &storage).await?;
        let lease = crate::lease::Lease::acquire(
            &storage,
            identity(config, &storage),
            config.gateway_lease,
        )
        .await?;
        match Self::holding(config, storage, lease.clone()).await {
            Ok(app) => Ok(app),
            Err(e) => {
                lease.release().await;
                Err(e)
            }
        }
    }

    /// [`App::with_storage`] once the lease is held.
    async fn holding(
        config: &Config,
        storage: Storage,
        lease: crate::lease::Lease,
    ) -> Result<Self, StartError> {
        match &storage {
            Storage::Sqlite(_) => tracing::info!(
                mode = "edge",
                sqlite = %config.sqlite_path().display(),
                "mode: edge (one gateway: SQLite, door locks in the process)"
            ),
            Storage::Postgres(_) => tracing::info!(
                mode = "fleet",
                "mode: fleet (PostgreSQL, door locks in Redis)"
            ),
        }
        let registry = DeviceRegistry::new(storage.clone()).sealing(config.secrets_key.clone());
        let revocations = Revocations::default();
        revocation::load_revoked(&storage, &revocations)
            .await
            .map_err(|source| StartError::Database {
                backend: storage.backend(),
                source,
            })?;
        let redis = match &config.redis_url {
            None => None,
            Some(url) => Some(
                connect_redis(url)
                    .await
                    .map_err(|source| StartError::Redis {
                        url: redact_url(url),
                        source,
                    })?,
            ),
        };
        let http_listener = tokio::net::TcpListener::bind(config.http_addr)
            .await
            .map_err(|source| StartError::Http {
                addr: config.http_addr,
                source,
            })?;
        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        let bus_shutdown = CancellationToken::new();
        let bus_tasks = TaskTracker::new();
        // Transports: the MQTT connections, the device link (what it verifies handed to the
        // uplink recorder), the serial buses.
        let stops = (&bus_shutdown, &shutdown);
        let mqtt = transport::connect(config, &registry, &revocations, &bus_tasks, stops)?;
        let mut downlinks = Downlinks::start(mqtt.downlinks, &tasks, shutdown.clone());
        if let (Some(redis), Some(_)) = (&redis, &config.external_broker) {
            // Gateways sharing a broker take each locker's turn in Redis.
            let locks = crate::lock::DoorLocks::new(redis.clone(), config.redis_prefix.clone());
            if let Some(acked) = downlinks.acknowledgements() {
                let turns = Turns::in_fleet(locks, acked, storage.clone());
                downlinks = downlinks.with_turns(turns);
            }
        }
        let waiters = Arc::new(Waiters::default());
        let commands = CommandService::new(
            storage.clone(),
            Arc::new(downlinks.clone()),
            waiters.clone(),
            CommandSettings {
                deadline: config.command_deadline,
                max_in_flight: config.commands_in_flight,
                ..CommandSettings::default()
            },
        )
        .on_gateway(&config.gateway_id);
        // Firmware campaigns: the engine steps on every gateway; lockers' chunk requests and
        // reports reach it through the recorder.
        let rollout = crate::rollout::Rollout::new(
            storage.clone(),
            Arc::new(downlinks.clone()),
            registry.clone(),
            crate::rollout::RolloutSettings {
                install_timeout: config.firmware.install_timeout,
                ..crate::rollout::RolloutSettings::default()
            },
        );
        tasks.spawn(crate::rollout::run(
            rollout.clone(),
            config.rollout_tick,
            shutdown.clone(),
        ));
        let mut recorder = crate::uplink::Recorder::new(
            storage.clone(),
            Arc::new(downlinks.clone()),
            waiters.clone(),
        )
        .with_rollout(rollout);
        if config.external_broker.is_none() {
            // On the embedded broker a gateway runs alone (`lease`): nobody else to tell.
            recorder = recorder.alone();
        }
        let link_settings = LinkSettings {
            heartbeat: config.heartbeat,
            ..LinkSettings::default()
        };
        let link = DeviceLink::start(
            recorder,
            registry.clone(),
            mqtt.uplinks,
            downlinks.clone(),
            link_settings,
            &tasks,
            shutdown.clone(),
        );
        let parts = (&storage, &registry, &downlinks);
        let line = crate::serial::LineOwner {
            gateway: config.gateway_id.clone(),
            relay: mqtt.relay,
        };
        transport::release_boards_elsewhere(config, &storage).await;
        let serial = transport::serial_buses(config, &link, parts, &line, &tasks, &shutdown);
        if let Some(rights) =
            transport::broker_rights(config, &storage, &bus_tasks, bus_shutdown.clone())
        {
            bus_tasks.spawn(rights.keep());
        }
        // Background loops.
        let accounts =
            crate::account::Accounts::new(storage.clone(), config.password_cost, config.token_ttl);
        let limits = crate::api::limits::RateLimits::new(&config.rate_limits);
        let outlets = workers::Outlets {
            downlinks: downlinks.clone(),
            events: mqtt.events,
            nudges: mqtt.nudges,
            revocations,
            waiters,
        };
        let (workers, events) = workers::start(
            config,
            &storage,
            outlets,
            (&accounts, &limits),
            &tasks,
            &shutdown,
        )
        .await;
        // Metrics are recorded from the start (the recorder is per process).
        let _ = crate::api::metrics::handle();
        let draining = Arc::new(std::sync::atomic::AtomicBool::new(false));
        // The services that sell doors and move money, and the HTTP API over them.
        let domain = domain::build(config, &storage, redis.as_ref(), &commands);
        let (broker, mqtt_ready) = (mqtt.broker, mqtt.ready);
        let state = ApiState::new(Parts {
            storage: storage.clone(),
            redis: redis.clone(),
            broker_listeners: broker.as_ref().map(EmbeddedBroker::health),
            mqtt_ready: mqtt_ready.clone(),
            draining: draining.clone(),
            lease: lease.clone(),
            accounts,
            registry: registry.clone(),
            commands: commands.clone(),
            body_limit: config.http_body_limit,
            limits,
            fleet_limits: redis.as_ref().map(|redis| {
                crate::api::fleet_limits::FleetLimits::new(
                    redis.clone(),
                    &config.redis_prefix,
                    (
                        config.rate_limits.per_ip_per_minute,
                        config.rate_limits.per_user_per_minute,
                    ),
                )
            }),
            wallets: domain.wallets,
            rentals: domain.rentals.clone(),
            orders: domain.orders.clone(),
            catalog: domain.catalog,
            cache: domain.cache,
            payment_webhook_secret: config.payment_webhook_secret.clone(),
            time_zone: config.time_zone,
            firmware: config.firmware.clone(),
            jams_out_of_service: config.rentals.jams_out_of_service,
            secrets_key: config.secrets_key.clone(),
            broker_hooks: config.broker_hook_secret.as_ref().map(|secret| {
                crate::api::broker_hooks::BrokerHooks {
                    secret: secret.clone(),
                    gateway_login: config
                        .external_broker
                        .as_ref()
                        .and_then(|b| b.credentials.clone()),
                }
            }),
        });
        let http_stopping = crate::api::server::Stopping::default();
        let http_tasks = TaskTracker::new();
        let http_addr = crate::api::serve(
            http_listener,
            crate::api::app(state),
            config.http_server,
            &http_tasks,
            http_stopping.clone(),
        )
        .map_err(|source| StartError::Http {
            addr: config.http_addr,
            source,
        })?;
        tasks.spawn(crate::background::reconcile_sales(
            domain.rentals,
            domain.orders,
            workers,
            shutdown.clone(),
        ));
        let lease_lost = CancellationToken::new();
        tasks.spawn(lease.clone().keep(shutdown.clone(), lease_lost.clone()));
        Ok(Self {
            lease,
            lease_lost,
            serial,
            downlinks,
            line,
            shutdown_grace: config.shutdown_grace,
            http_addr,
            http_stopping,
            http_tasks,
            draining,
            storage,
            registry,
            broker,
            link,
            commands,
            events,
            shutdown,
            tasks,
            bus_shutdown,
            bus_tasks,
            mqtt_ready,
        })
    }

    /// What each serial bus did, in the order of `LOCKER_SERIAL_BUSES`.
    pub fn serial_buses(&self) -> &[Arc<crate::serial::BusStats>] {
        &self.serial
    }

    /// Events as they are delivered from the outbox.
    pub fn events(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Whether the gateway is subscribed to the lockers' topics now.
    pub fn mqtt_ready(&self) -> bool {
        *self.mqtt_ready.borrow()
    }

    /// Waits until the gateway is subscribed to the lockers' topics, at most `within`.
    pub async fn wait_mqtt_ready(&self, within: std::time::Duration) -> bool {
        let mut ready = self.mqtt_ready.clone();
        tokio::time::timeout(within, ready.wait_for(|r| *r))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// The command service: `send` a command to a locker and learn what happened.
    pub fn commands(&self) -> &CommandService {
        &self.commands
    }

    /// The device link (verified uplinks, counters).
    pub fn device_link(&self) -> &DeviceLink {
        &self.link
    }

    /// The device registry.
    pub fn registry(&self) -> &DeviceRegistry {
        &self.registry
    }

    /// The embedded broker, unless an external one is configured.
    pub fn broker(&self) -> Option<&EmbeddedBroker> {
        self.broker.as_ref()
    }

    /// Where the gateway's state lives.
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// Where the HTTP API listens (the port chosen, if the configuration said 0).
    pub fn http_addr(&self) -> std::net::SocketAddr {
        self.http_addr
    }

    /// Marks the gateway as stopping: `/readyz` answers 503 from now on, so load balancers send
    /// no new work while what is in flight finishes.
    pub fn start_draining(&self) {
        self.draining
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Runs until `stop` resolves, then stops the HTTP server (finishing requests in flight), the
    /// background tasks, the broker and the pool.
    pub async fn run_until_stopped(self, stop: impl Future<Output = ()>) {
        tokio::select! {
            _ = stop => {}
            _ = self.lease_lost.cancelled() => {}
        }
        tracing::info!("stopping");
        self.start_draining();
        // Stop accepting; requests in flight (and the unlocks they wait for, the device link
        // still running) finish, within the grace period.
        self.http_stopping.stop.cancel();
        self.http_tasks.close();
        if tokio::time::timeout(self.shutdown_grace, self.http_tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                grace_secs = self.shutdown_grace.as_secs(),
                "requests still running after the grace period are cut off (LOCKER_SHUTDOWN_SECS)"
            );
            // Dropped, not left running on pools about to close (they would answer 500).
            self.http_stopping.cut_off.cancel();
            self.http_tasks.wait().await;
        }
        self.shutdown.cancel();
        self.tasks.close();
        self.tasks.wait().await;
        self.bus_shutdown.cancel();
        self.bus_tasks.close();
        self.bus_tasks.wait().await;
        if let Some(broker) = self.broker {
            // Joining the broker's threads blocks; do it off the async workers.
            if tokio::task::spawn_blocking(move || broker.stop())
                .await
                .is_err()
            {
                tracing::error!("the broker did not stop cleanly");
            }
        }
        self.lease.release().await;
        self.storage.close().await;
        tracing::info!("stopped");
    }
}

/// Who this gateway is in its database's list of gateways: alone on it with an embedded broker
/// or in edge mode, beside others on an external broker in fleet mode.
fn identity(config: &Config, storage: &Storage) -> crate::lease::Identity {
    let broker = match config.external_broker {
        Some(_) => crate::lease::BrokerKind::External,
        None => crate::lease::BrokerKind::Embedded,
    };
    crate::lease::Identity {
        id: config.gateway_id.clone(),
        process: crate::lease::process_name(config.http_addr),
        broker,
        exclusive: broker == crate::lease::BrokerKind::Embedded
            || matches!(storage, Storage::Sqlite(_)),
    }
}

/// A Redis connection that reconnects by itself.
async fn connect_redis(url: &str) -> Result<redis::aio::ConnectionManager, redis::RedisError> {
    let client = redis::Client::open(url)?;
    redis::aio::ConnectionManager::new(client).await
}
