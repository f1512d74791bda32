//! Test helpers: the whole gateway in process on free ports, in either mode, with typed request
//! helpers; the bare broker and raw MQTT clients are in `test_broker`.

use std::net::SocketAddr;
use std::time::Duration;

use firmware_protocol::DeviceId;
use locker_gateway::broker::BrokerError;
use locker_gateway::device::Provisioned;
use rumqttd::local::LinkRx;
use sqlx::PgPool;

pub use crate::test_broker::{Client, link_next, link_silent, provision, start_broker};

pub use crate::basics::{WAIT, eventually, free_addr, http_client, redis_url};

pub fn device(id: &str) -> DeviceId {
    DeviceId::new(id).expect("valid device id")
}

/// The whole gateway, in process, on a free MQTT port, with short intervals.
pub struct TestApp {
    pub app: locker_gateway::app::App,
    pub addr: SocketAddr,
    /// The test's PostgreSQL database (fleet mode). An edge-mode app has none: this pool points
    /// nowhere, and a test that uses it fails at once; such tests use `storage`.
    pub pool: PgPool,
    /// Where the gateway keeps its state (either mode).
    pub storage: locker_gateway::storage::Storage,
    /// An HTTP client for the API.
    pub http: reqwest::Client,
    /// An edge-mode app's data directory, removed with it.
    _data: Option<tempfile_dir::Dir>,
}

impl TestApp {
    /// A test app around a gateway started on `pool` some other way.
    pub fn around(app: locker_gateway::app::App, pool: PgPool) -> Self {
        Self {
            addr: app.http_addr(),
            app,
            storage: pool.clone().into(),
            pool,
            http: http_client(),
            _data: None,
        }
    }
}

/// Runs one statement on a test app's storage, whichever it is: `$pool` is the backend's pool
/// (write SQL both dialects read alike).
macro_rules! on_storage {
    ($storage:expr, |$pool:ident| $run:expr) => {
        match $storage {
            locker_gateway::storage::Storage::Postgres($pool) => $run,
            locker_gateway::storage::Storage::Sqlite($pool) => $run,
        }
    };
}
pub(crate) use on_storage;

/// The gateway's heartbeat interval in tests: long, so that a loaded CI machine never times a
/// locker out by accident; the heartbeat test uses [`spawn_app_with_heartbeat`].
pub const TEST_HEARTBEAT: Duration = Duration::from_secs(60);

pub fn test_config(mqtt_addr: SocketAddr) -> locker_gateway::Config {
    locker_gateway::Config {
        http_addr: "127.0.0.1:0".parse().expect("address"),
        mqtt_addr,
        mqtt5_addr: None,
        mqtts: None,
        external_broker: None,
        mode: None,
        data_dir: std::env::temp_dir(),
        database_url: None,
        redis_url: Some(redis_url()),
        heartbeat: TEST_HEARTBEAT,
        outbox_poll: Duration::from_millis(20),
        rollout_tick: Duration::from_millis(250),
        command_deadline: Duration::from_secs(5),
        query_again: Duration::from_secs(1),
        surface_unknown: Duration::from_secs(4),
        commands_in_flight: 1000,
        http_body_limit: 64 * 1024,
        http_server: locker_gateway::config::HttpServer::default(),
        token_ttl: Duration::from_secs(3600),
        password_cost: locker_gateway::account::PasswordCost::TEST,
        rate_limits: locker_gateway::api::limits::LimitSettings::default(),
        log_format: locker_gateway::config::LogFormat::Text,
        currency: locker_gateway::money::Currency::default(),
        payment_webhook_secret: Some("test-webhook-secret".into()),
        redis_prefix: format!("test-{}:", uuid::Uuid::new_v4()),
        rentals: locker_gateway::rental::RentalSettings::default(),
        shutdown_grace: Duration::from_secs(30),
        cache_ttl: Duration::from_secs(60),
        serial_buses: Vec::new(),
        worker_policy: locker_gateway::worker::Policy::default(),
        gateway_lease: Duration::from_secs(2),
        gateway_id: format!("test-{}", uuid::Uuid::new_v4().simple()),
        shared_group: "locker-gateways".to_owned(),
        broker_rights: locker_gateway::config::BrokerRights::Operator,
        secrets_key: None,
        broker_hook_secret: None,
        webhooks: locker_gateway::config::WebhookPolicy::default(),
        time_zone: chrono_tz::UTC,
        firmware: locker_gateway::config::FirmwareSettings::default(),
    }
}

/// An HTTP client that lets go of an idle connection before the gateway closes it (the server
/// closes keep-alive connections idle for `LOCKER_HTTP_HEADER_TIMEOUT_SECS`, 10 s in tests).
/// Logs to the test's output, filtered by `RUST_LOG` (default: warnings of our crates).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,rumqttd=off"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

pub async fn spawn_app(pool: PgPool) -> TestApp {
    spawn_app_with_heartbeat(pool, TEST_HEARTBEAT).await
}

pub async fn spawn_app_with_heartbeat(pool: PgPool, heartbeat: Duration) -> TestApp {
    spawn_app_with(pool, |config| config.heartbeat = heartbeat).await
}

/// The gateway with the test configuration changed by `adjust`.
pub async fn spawn_app_with(pool: PgPool, adjust: impl Fn(&mut locker_gateway::Config)) -> TestApp {
    init_tracing();
    for _ in 0..20 {
        let addr = free_addr();
        let mut config = test_config(addr);
        adjust(&mut config);
        match locker_gateway::app::App::with_pool(&config, pool.clone()).await {
            Ok(app) => {
                return TestApp {
                    app,
                    addr,
                    storage: pool.clone().into(),
                    pool,
                    http: crate::helpers::http_client(),
                    _data: None,
                };
            }
            Err(locker_gateway::app::StartError::Broker(BrokerError::Bind { .. })) => continue,
            // Seen once in a loaded run: the embedded broker's router gave no in-process link
            // (rumqttd's `Channel recv error`); the gateway says so and stops, and a test starts
            // a fresh broker (logged, so a repeat shows).
            Err(locker_gateway::app::StartError::Broker(e @ BrokerError::Link(_))) => {
                eprintln!("the embedded broker did not start ({e}); starting another");
                continue;
            }
            Err(e) => panic!("gateway did not start: {e}"),
        }
    }
    panic!("no free port for the gateway after 20 tries");
}

/// Where a test's gateway keeps its state: the test's PostgreSQL database (fleet mode, with the
/// shared Redis under a prefix of its own), or a SQLite file of its own (edge mode: door locks
/// and cache in the process, no PostgreSQL, no Redis).
pub enum Backend {
    /// Fleet mode on this database.
    Fleet(PgPool),
    /// Edge mode on this file, in this data directory.
    Edge(locker_gateway::storage::Storage, tempfile_dir::Dir),
}

/// A test written once over a [`Backend`] and run in both modes: `NAME::fleet` on the test's
/// PostgreSQL database (`#[sqlx::test]`) and `NAME::edge` on a SQLite file of its own.
macro_rules! in_both_modes {
    ($(#[doc = $doc:literal])* async fn $name:ident($backend:ident: Backend) $body:block) => {
        $(#[doc = $doc])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[sqlx::test]
            async fn fleet(pool: sqlx::PgPool) {
                run($crate::helpers::Backend::Fleet(pool)).await
            }

            #[tokio::test]
            async fn edge() {
                run($crate::helpers::Backend::edge().await).await
            }

            async fn run($backend: $crate::helpers::Backend) $body
        }
    };
}
pub(crate) use in_both_modes;

impl Backend {
    /// The gateway on it, with the test configuration.
    pub async fn spawn(self) -> TestApp {
        self.spawn_with(|_| {}).await
    }

    /// A fresh edge-mode backend.
    pub async fn edge() -> Self {
        let (storage, dir) = sqlite().await;
        Self::Edge(storage, dir)
    }

    /// Its storage (to prepare it before the gateway starts).
    pub fn storage(&self) -> locker_gateway::storage::Storage {
        match self {
            Self::Fleet(pool) => pool.clone().into(),
            Self::Edge(storage, _) => storage.clone(),
        }
    }

    /// The gateway on it, with the test configuration changed by `adjust`.
    pub async fn spawn_with(self, adjust: impl Fn(&mut locker_gateway::Config)) -> TestApp {
        let (storage, data) = match self {
            Self::Fleet(pool) => return spawn_app_with(pool, adjust).await,
            Self::Edge(storage, data) => (storage, data),
        };
        init_tracing();
        let nowhere = sqlx::postgres::PgPoolOptions::new().connect_lazy_with(
            sqlx::postgres::PgConnectOptions::new().host("edge-mode-has-no-postgresql"),
        );
        assert_eq!(storage.backend(), "sqlite");
        for _ in 0..20 {
            let addr = free_addr();
            let mut config = test_config(addr);
            config.mode = Some(locker_gateway::config::Mode::Edge);
            config.redis_url = None;
            config.data_dir = data.path().to_owned();
            adjust(&mut config);
            assert_eq!(config.mode(), Ok(locker_gateway::config::Mode::Edge));
            match locker_gateway::app::App::with_storage(&config, storage.clone()).await {
                Ok(app) => {
                    return TestApp {
                        app,
                        addr,
                        pool: nowhere,
                        storage,
                        http: crate::helpers::http_client(),
                        _data: Some(data),
                    };
                }
                Err(locker_gateway::app::StartError::Broker(BrokerError::Bind { .. })) => continue,
                Err(locker_gateway::app::StartError::Broker(e @ BrokerError::Link(_))) => {
                    eprintln!("the embedded broker did not start ({e}); starting another");
                    continue;
                }
                Err(e) => panic!("gateway did not start: {e}"),
            }
        }
        panic!("no free port for the gateway after 20 tries");
    }
}

/// The gateway in edge mode, with the test configuration changed by `adjust`.
pub async fn spawn_edge_app_with(adjust: impl Fn(&mut locker_gateway::Config)) -> TestApp {
    Backend::edge().await.spawn_with(adjust).await
}

/// [`spawn_edge_app_with`] with the test configuration.
pub async fn spawn_edge_app() -> TestApp {
    spawn_edge_app_with(|_| {}).await
}

impl TestApp {
    /// The API's URL for `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.app.http_addr())
    }

    /// `method` on `path` with `token` and, if given, a JSON `body`: the status and the JSON
    /// answer (`Null` when there is none).
    pub async fn json(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<&serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut request = self.http.request(method, self.url(path)).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.expect("sent");
        let status = response.status().as_u16();
        (
            status,
            response.json().await.unwrap_or(serde_json::Value::Null),
        )
    }

    /// GET `path` with `token`: the JSON answer, whatever the status.
    pub async fn get_json(&self, path: &str, token: &str) -> serde_json::Value {
        self.json(reqwest::Method::GET, path, token, None).await.1
    }

    /// What `/metrics` says now.
    pub async fn metrics(&self) -> String {
        self.http
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("sent")
            .text()
            .await
            .expect("text")
    }

    /// An in-process client of the embedded broker (no login, no topic rules).
    pub fn link(&self, name: &str) -> (rumqttd::local::LinkTx, LinkRx) {
        self.app
            .broker()
            .expect("embedded broker")
            .link(name)
            .expect("link")
    }

    /// An in-process client subscribed to `filter`, to watch what passes.
    pub fn tap(&self, filter: &str) -> (rumqttd::local::LinkTx, LinkRx) {
        let (mut tx, rx) = self.link(&format!("tap-{}", rand_suffix()));
        tx.subscribe(filter).expect("subscribe");
        (tx, rx)
    }

    pub async fn provision(&self, id: &str, doors: u16) -> Provisioned {
        provision(self.app.registry(), id, doors).await
    }

    /// Opens a door through the command service.
    pub async fn unlock(
        &self,
        id: &str,
        door: u16,
    ) -> Result<locker_gateway::command::Outcome, locker_gateway::command::CommandError> {
        self.app.commands().unlock(device(id), door).await
    }

    /// A simulated locker for a provisioned device, heartbeat every `heartbeat`.
    pub fn locker(
        &self,
        creds: &Provisioned,
        heartbeat: Duration,
    ) -> simulator::mqtt::LockerHandle {
        self.locker_with(creds, heartbeat, |_| {})
    }

    /// [`TestApp::locker`] with its configuration changed by `tweak`.
    pub fn locker_with(
        &self,
        creds: &Provisioned,
        heartbeat: Duration,
        tweak: impl FnOnce(&mut simulator::mqtt::LockerConfig),
    ) -> simulator::mqtt::LockerHandle {
        let credentials = simulator::mqtt::Credentials::from_secret(creds.device_id, &creds.secret);
        let mut config = simulator::mqtt::LockerConfig::new(self.addr, credentials);
        config.doors = 4;
        config.heartbeat = heartbeat;
        config.reconnect_after = Duration::from_millis(200);
        tweak(&mut config);
        simulator::mqtt::spawn(config)
    }

    pub async fn online(&self, id: &str) -> bool {
        const ONLINE: &str = "SELECT online FROM devices WHERE id = $1";
        on_storage!(&self.storage, |pool| sqlx::query_scalar(ONLINE)
            .bind(id)
            .fetch_one(pool)
            .await
            .expect("device row"))
    }
}

/// Waits for an event of `event_type` about `aggregate_id`.
pub async fn expect_event(
    events: &mut tokio::sync::broadcast::Receiver<locker_gateway::events::Event>,
    event_type: &str,
    aggregate_id: &str,
) -> locker_gateway::events::Event {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Ok(event))
                if event.event_type == event_type && event.aggregate_id == aggregate_id =>
            {
                return event;
            }
            Ok(Ok(_)) | Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
            Ok(Err(e)) => panic!("event stream ended: {e}"),
            Err(_) => panic!("no {event_type} event for {aggregate_id} in time"),
        }
    }
}

fn rand_suffix() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A SQLite storage in a file of its own, named as the gateway names it in its data directory.
pub async fn sqlite() -> (locker_gateway::storage::Storage, tempfile_dir::Dir) {
    let dir = tempfile_dir::Dir::new();
    let file = dir.path().join(locker_gateway::config::SQLITE_FILE);
    let storage = locker_gateway::storage::Storage::open_sqlite(&file)
        .await
        .expect("sqlite opens");
    (storage, dir)
}

/// A directory removed when dropped.
pub mod tempfile_dir {
    pub struct Dir(std::path::PathBuf);

    impl Dir {
        pub fn new() -> Self {
            let path = std::env::temp_dir().join(format!("locker-edge-{}", uuid::Uuid::new_v4()));
            std::fs::create_dir_all(&path).expect("temp dir");
            Self(path)
        }

        pub fn path(&self) -> &std::path::Path {
            &self.0
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// The outbox's events as (type, aggregate id), oldest first, on either storage.
pub async fn outbox_events(storage: &locker_gateway::storage::Storage) -> Vec<(String, String)> {
    const SQL: &str = "SELECT event_type, aggregate_id FROM outbox ORDER BY seq";
    on_storage!(storage, |pool| sqlx::query_as(SQL)
        .fetch_all(pool)
        .await
        .expect("outbox"))
}
