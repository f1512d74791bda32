//! Three gateway processes, a Mosquitto, simulated lockers, an operator and customers: the
//! fleet as an operator would run it on three machines, here on one.

use std::time::Duration;

use locker_gateway::account::{Accounts, PasswordCost, Role};
use locker_gateway::device::{DeviceRegistry, NewDevice};
use locker_gateway::storage::Storage;
use locker_gateway::wallet::{Movement, Wallets};
use serde_json::{Value, json};
use simulator::mqtt::{Credentials, LockerConfig, LockerHandle};
use sqlx::PgPool;
use uuid::Uuid;

use crate::basics::{WAIT, eventually, free_addr, http_client};
use crate::gateway_process::GatewayProcess;
use crate::mosquitto_server::{Mosquitto, gateway_url};

/// Doors per locker; every door is of size `m`.
pub const DOORS: u16 = 4;
/// Every fifth locker (`lk-05`, `lk-10` …) speaks protocol version 1, the others version 2.
pub fn speaks(locker: usize) -> u8 {
    if locker.is_multiple_of(5) { 1 } else { 2 }
}
/// The gateways' lease (s) and door lock (ms), short so that a dead gateway's work is taken over
/// within seconds.
pub const LEASE_SECS: u64 = 2;
pub const DOOR_LOCK_MS: u64 = 3_000;
/// How long a gateway stopped with SIGTERM gives its requests in flight.
pub const SHUTDOWN_SECS: u64 = 10;

pub struct Fleet {
    pub pool: PgPool,
    pub mosquitto: Mosquitto,
    /// The three gateways (each behind a lock held only for a moment, never across a wait: the
    /// tests stop and restart them while requests go on).
    gateways: Vec<std::sync::Mutex<GatewayProcess>>,
    pub lockers: Vec<LockerHandle>,
    pub ids: Vec<String>,
    pub http: reqwest::Client,
    prefix: String,
}

/// A customer, by the bearer token of their session.
#[derive(Clone)]
pub struct Customer {
    pub token: String,
}

impl Fleet {
    /// `lockers` lockers (4 doors each) on a Mosquitto of the test's own with `broker_conf`
    /// appended to its configuration, and three gateways `gw-1` … `gw-3`, every locker online.
    pub async fn start(pool: PgPool, lockers: usize, broker_conf: &str) -> Self {
        let registry = DeviceRegistry::new(pool.clone());
        let mut ids = Vec::new();
        let mut credentials = Vec::new();
        for n in 1..=lockers {
            let id = format!("lk-{n:02}");
            let made = registry
                .provision(NewDevice {
                    id: firmware_protocol::DeviceId::new(&id).expect("id"),
                    model: "test".into(),
                    door_count: DOORS,
                })
                .await
                .expect("provisioned");
            credentials.push(made);
            ids.push(id);
        }
        let passwords: Vec<(&str, String)> = ids
            .iter()
            .zip(&credentials)
            .map(|(id, c)| (id.as_str(), c.secret.mqtt_password()))
            .collect();
        let mosquitto = Mosquitto::start_with(&passwords, true, broker_conf).await;
        let mut fleet = Self {
            pool,
            mosquitto,
            gateways: Vec::new(),
            lockers: Vec::new(),
            ids,
            http: http_client(),
            prefix: format!("test-{}:", Uuid::new_v4()),
        };
        for n in 1..=3 {
            let gateway = fleet.start_gateway(n).await;
            fleet.gateways.push(std::sync::Mutex::new(gateway));
        }
        for (n, c) in credentials.iter().enumerate() {
            let mut config = LockerConfig::new(
                fleet.mosquitto.addr,
                Credentials::from_secret(c.device_id, &c.secret),
            );
            config.doors = DOORS;
            config.heartbeat = Duration::from_secs(2);
            config.close_after = Some(Duration::from_millis(100));
            config.protocol = speaks(n + 1);
            fleet.lockers.push(simulator::mqtt::spawn(config));
        }
        fleet.all_online().await;
        fleet
    }

    /// Starts gateway `gw-{n}` on a new HTTP port.
    async fn start_gateway(&self, n: usize) -> GatewayProcess {
        let env = vec![
            ("LOCKER_MQTT_BROKER", gateway_url(&self.mosquitto)),
            ("LOCKER_GATEWAY_ID", format!("gw-{n}")),
            ("LOCKER_REDIS_PREFIX", self.prefix.clone()),
            ("LOCKER_HEARTBEAT_SECS", "2".to_owned()),
            ("LOCKER_GATEWAY_LEASE_SECS", LEASE_SECS.to_string()),
            ("LOCKER_DOOR_LOCK_TTL_MS", DOOR_LOCK_MS.to_string()),
            ("LOCKER_SHUTDOWN_SECS", SHUTDOWN_SECS.to_string()),
            // Every client of the test comes from 127.0.0.1.
            ("LOCKER_RATE_LIMIT_PER_IP", "1000000".to_owned()),
            ("LOCKER_RATE_LIMIT_PER_USER", "1000000".to_owned()),
            // Each gateway's log (a file per process, named by its ports, in the temp dir) tells
            // what it did when one of these tests fails: hellos asked for, stops, settlements.
            ("RUST_LOG", "info,sqlx=warn".to_owned()),
        ];
        GatewayProcess::start_with(&self.pool, self.mosquitto.addr, free_addr(), &env).await
    }

    fn gateway(&self, n: usize) -> std::sync::MutexGuard<'_, GatewayProcess> {
        self.gateways[n].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The URL of `path` on gateway `n` (0-based).
    pub fn url(&self, n: usize, path: &str) -> String {
        format!("http://{}{path}", self.gateway(n).http)
    }

    /// Sends gateway `n` (0-based) `signal` (`-KILL`, `-TERM`) and waits until it has exited;
    /// returns how it exited.
    pub async fn signal(&self, n: usize, signal: &str) -> std::process::ExitStatus {
        let pid = self.gateway(n).child.id().to_string();
        let sent = std::process::Command::new("kill")
            .args([signal, &pid])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "gateway {} signalled", n + 1);
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(status) = self.gateway(n).child.try_wait().expect("waitable") {
                return status;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "gateway {} did not exit",
                n + 1
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Starts gateway `n` (0-based) again, on a new HTTP port.
    pub async fn restart(&self, n: usize) {
        let started = self.start_gateway(n + 1).await;
        *self.gateway(n) = started;
    }

    /// Waits until every locker is online in the books.
    pub async fn all_online(&self) {
        let want = self.ids.len() as i64;
        eventually("every locker online", || async {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM devices WHERE online")
                .fetch_one(&self.pool)
                .await
                .unwrap_or(0)
                == want
        })
        .await;
    }

    /// Stops every simulated locker.
    pub fn stop_lockers(self) {
        for handle in self.lockers {
            handle.stop();
        }
    }

    fn accounts(&self) -> Accounts {
        Accounts::new(
            Storage::Postgres(self.pool.clone()),
            PasswordCost::TEST,
            Duration::from_secs(3600),
        )
    }

    /// Logs `email` in through gateway `n`.
    async fn log_in(&self, n: usize, email: &str, password: &str) -> String {
        let session: Value = self
            .http
            .post(self.url(n, "/v1/sessions"))
            .json(&json!({ "email": email, "password": password }))
            .send()
            .await
            .expect("sent")
            .json()
            .await
            .expect("a session");
        session["token"].as_str().expect("a token").to_owned()
    }

    /// An operator, logged in; and a plan for size `m` (deposit 20.00) published.
    pub async fn operator(&self) -> String {
        self.accounts()
            .register("ops@example.com", "an operator password", Role::Admin)
            .await
            .expect("operator made");
        let token = self
            .log_in(0, "ops@example.com", "an operator password")
            .await;
        let plan = json!({
            "name": "Medium", "size_class": "m", "deposit": "20.00", "free_minutes": 30,
            "unit_minutes": 60, "price_per_unit": "1.00", "cap_per_24h": "10.00",
            "max_minutes": 4320, "overdue_price_per_unit": "5.00"
        });
        let made = self
            .http
            .post(self.url(0, "/v1/plans"))
            .bearer_auth(&token)
            .json(&plan)
            .send()
            .await
            .expect("sent");
        assert_eq!(made.status(), 201, "plan published");
        token
    }

    /// `count` customers with 100.00 each, logged in through the gateways in turn.
    pub async fn customers(&self, count: usize) -> Vec<Customer> {
        let wallets = Wallets::new(Storage::Postgres(self.pool.clone()), Default::default());
        let mut customers = Vec::new();
        for n in 0..count {
            let email = format!("c{n}@example.com");
            let user = self
                .accounts()
                .register(&email, "a long password", Role::User)
                .await
                .expect("customer made");
            wallets
                .change(user.id, &Movement::top_up(10_000))
                .await
                .expect("funded");
            let token = self.log_in(n % 3, &email, "a long password").await;
            customers.push(Customer { token });
        }
        customers
    }

    /// Waits until no rental is between its charge and its door's answer (`pending`, `ending`),
    /// at most `within`; panics naming those left.
    pub async fn settled(&self, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let open: Vec<(Uuid, String)> = sqlx::query_as(
                "SELECT id, state FROM rentals WHERE state IN ('pending', 'ending')",
            )
            .fetch_all(&self.pool)
            .await
            .expect("rentals");
            if open.is_empty() {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "rentals not settled within {within:?}: {open:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// How long a test waits at most for one HTTP answer (a command's deadline is 10 s).
pub const ANSWER_WITHIN: Duration = WAIT;
