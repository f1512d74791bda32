//! The gateway SIGKILLed at each step of a rental and of an order (paused at a named point, see
//! `src/pause.rs`), started again, and what was left in between finished or undone within 60 s:
//! no door open without a rental or an order, no money taken without one (or given back), every
//! wallet's ledger adding up, every event delivered.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use locker_gateway::account::{Accounts, PasswordCost, Role};
use locker_gateway::device::DeviceRegistry;
use serde_json::{Value, json};
use simulator::mqtt::{Credentials, LockerConfig, LockerHandle};
use uuid::Uuid;

use crate::helpers::{Backend, WAIT, free_addr, in_both_modes, on_storage};
use crate::process::{GatewayProcess, Keeping};
use locker_gateway::storage::Storage;

/// How long after the restart everything must be settled.
const RECOVERED_WITHIN: Duration = Duration::from_secs(60);

/// A gateway process, a simulated locker, an operator and a customer with 50.00.
struct Site {
    storage: Storage,
    keeping: Keeping,
    /// Edge mode's data directory, removed with the site.
    _data: Option<crate::helpers::tempfile_dir::Dir>,
    gateway: GatewayProcess,
    env: Vec<(&'static str, String)>,
    _locker: LockerHandle,
    http: reqwest::Client,
    admin: String,
    customer: String,
    user: Uuid,
    pause_file: PathBuf,
}

impl Site {
    async fn new(backend: Backend, pause_at: &str) -> Self {
        let storage = backend.storage();
        let (keeping, data) = match backend {
            Backend::Fleet(pool) => (Keeping::Fleet(pool), None),
            Backend::Edge(_, dir) => (Keeping::Edge(dir.path().to_owned()), Some(dir)),
        };
        let registry = DeviceRegistry::new(storage.clone());
        let creds = crate::helpers::provision(&registry, "lk-1", 4).await;
        let pause_file =
            std::env::temp_dir().join(format!("locker-pause-{}", Uuid::new_v4().simple()));
        let env = vec![
            (
                "LOCKER_REDIS_PREFIX",
                format!("test-{}:", Uuid::new_v4().simple()),
            ),
            ("LOCKER_DOOR_LOCK_TTL_MS", "5000".to_owned()),
        ];
        #[allow(clippy::assertions_on_constants)] // a build without the feature fails here
        {
            assert!(
                locker_gateway::pause::ENABLED,
                "the crash tests stop the gateway at its pause points, which only a build with the \
             test-hooks feature has: run scripts/test.sh (cargo test --features \
             locker-gateway/test-hooks)"
            );
        }
        let mut paused = env.clone();
        paused.push(("LOCKER_TEST_PAUSE_AT", pause_at.to_owned()));
        paused.push(("LOCKER_TEST_PAUSE_FILE", pause_file.display().to_string()));
        let gateway = GatewayProcess::start_on(&keeping, free_addr(), free_addr(), &paused).await;
        let mut config = LockerConfig::new(
            gateway.mqtt,
            Credentials::from_secret(creds.device_id, &creds.secret),
        );
        config.doors = 4;
        config.reconnect_after = Duration::from_millis(200);
        config.close_after = Some(Duration::from_millis(100));
        let locker = simulator::mqtt::spawn(config);
        let accounts = Accounts::new(
            storage.clone(),
            PasswordCost::TEST,
            Duration::from_secs(3600),
        );
        accounts
            .register("ops@example.com", "an operator password", Role::Admin)
            .await
            .expect("operator");
        let admin = accounts
            .log_in("ops@example.com", "an operator password")
            .await
            .expect("logged in")
            .token;
        let user = accounts
            .register("c@example.com", "a customer password", Role::User)
            .await
            .expect("customer")
            .id;
        let customer = accounts
            .log_in("c@example.com", "a customer password")
            .await
            .expect("logged in")
            .token;
        let wallets = locker_gateway::wallet::Wallets::new(storage.clone(), Default::default());
        wallets
            .change(user, &locker_gateway::wallet::Movement::top_up(5000))
            .await
            .expect("funded");
        let site = Self {
            storage,
            keeping,
            _data: data,
            gateway,
            env,
            _locker: locker,
            http: crate::helpers::http_client(),
            admin,
            customer,
            user,
            pause_file,
        };
        const ONLINE: &str = "SELECT online FROM devices WHERE id = 'lk-1'";
        crate::helpers::eventually("the locker is online", || async {
            on_storage!(&site.storage, |pool| sqlx::query_scalar::<_, bool>(ONLINE)
                .fetch_one(pool)
                .await
                .unwrap_or(false))
        })
        .await;
        site
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.gateway.http)
    }

    async fn post(&self, token: &str, path: &str, body: Value) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("sent")
    }

    /// Sends a request that will not be answered (the gateway pauses in it), and waits until the
    /// gateway says it paused there.
    async fn pause_in(&self, token: &str, path: &str, body: Value, point: &str) {
        let request = self
            .http
            .post(self.url(path))
            .bearer_auth(token)
            .json(&body);
        tokio::spawn(async move { request.send().await });
        let deadline = Instant::now() + WAIT;
        loop {
            let said = std::fs::read_to_string(&self.pause_file).unwrap_or_default();
            if said.lines().any(|l| l == point) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the gateway never paused at {point}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGKILL, then the same gateway again without the pause; returns when it is back.
    async fn kill_and_restart(&mut self) -> Instant {
        self.gateway.kill();
        let (mqtt, http) = (self.gateway.mqtt, self.gateway.http);
        self.gateway = GatewayProcess::start_on(&self.keeping, mqtt, http, &self.env).await;
        Instant::now()
    }

    /// Waits until `settled` holds, at most [`RECOVERED_WITHIN`] after `restarted`.
    async fn recovered<F, Fut>(&self, restarted: Instant, what: &str, mut settled: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        loop {
            if settled().await {
                break;
            }
            assert!(
                restarted.elapsed() < RECOVERED_WITHIN,
                "{what}: not settled within {RECOVERED_WITHIN:?} of the restart"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Every event the crash left is delivered by then too.
        loop {
            let unpublished = self
                .count("SELECT count(*) FROM outbox WHERE published_at IS NULL")
                .await;
            if unpublished == 0 {
                break;
            }
            assert!(
                restarted.elapsed() < RECOVERED_WITHIN,
                "{unpublished} events undelivered {RECOVERED_WITHIN:?} after the restart"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.books_balance().await;
    }

    /// One count.
    async fn count(&self, sql: &'static str) -> i64 {
        on_storage!(&self.storage, |pool| sqlx::query_scalar(sql)
            .fetch_one(pool)
            .await
            .expect(sql))
    }

    /// No door opened for a sale that did not happen; no money held or taken without a
    /// rental or an order, or given back; every ledger adds up.
    async fn books_balance(&self) {
        const OPENED: &str = "SELECT reason FROM commands
             WHERE door_result IN ('opened', 'already_open') AND reason IS NOT NULL";
        const SOLD: &str =
            "SELECT 'rental ' || state, id FROM rentals WHERE state IN ('active', 'ended')
             UNION ALL SELECT 'order ' || state, id FROM orders WHERE state = 'completed'";
        const WALLET: &str = "SELECT w.available, w.held,
                CAST((SELECT coalesce(sum(available_delta + held_delta), 0)
                      FROM ledger l WHERE l.wallet_id = w.id) AS BIGINT)
             FROM wallets w WHERE w.user_id = $1";
        const DEPOSITS: &str = "SELECT CAST(coalesce(sum(deposit_held), 0) AS BIGINT) FROM rentals
             WHERE user_id = $1 AND state IN ('pending', 'active', 'ending')";
        const SPENT: &str = "SELECT CAST((SELECT coalesce(sum(fee - refunded), 0) FROM rentals
                          WHERE user_id = $1 AND state = 'ended') AS BIGINT),
                    CAST((SELECT coalesce(sum(total), 0) FROM orders
                          WHERE user_id = $1 AND state = 'completed') AS BIGINT)";
        let (opened, sold): (Vec<String>, Vec<(String, Uuid)>) =
            on_storage!(&self.storage, |pool| (
                sqlx::query_scalar(OPENED)
                    .fetch_all(pool)
                    .await
                    .expect("opened"),
                sqlx::query_as(SOLD).fetch_all(pool).await.expect("sold"),
            ));
        // A door opened for a rental (its start, a reopening, its pickup) or an order that
        // happened: "rental ID …" or "order ID".
        for reason in &opened {
            let sale = sold.iter().any(|(what, id)| {
                (what.starts_with("rental ") && reason.starts_with(&format!("rental {id}")))
                    || (what.starts_with("order ") && reason == &format!("order {id}"))
            });
            assert!(sale, "a door opened without a sale: {reason}");
        }
        let (available, held, ledger): (i64, i64, i64) =
            on_storage!(&self.storage, |pool| sqlx::query_as(WALLET)
                .bind(self.user)
                .fetch_one(pool)
                .await
                .expect("wallet"));
        assert_eq!(available + held, ledger, "the ledger adds up");
        let deposits: i64 = on_storage!(&self.storage, |pool| sqlx::query_scalar(DEPOSITS)
            .bind(self.user)
            .fetch_one(pool)
            .await
            .expect("deposits"));
        assert_eq!(held, deposits, "money held only for running rentals");
        let (fees, orders): (i64, i64) = on_storage!(&self.storage, |pool| sqlx::query_as(SPENT)
            .bind(self.user)
            .fetch_one(pool)
            .await
            .expect("spent"));
        assert_eq!(
            5000 - available - held,
            fees + orders,
            "money taken only for ended rentals and completed orders"
        );
    }

    async fn state(&self, table: &str) -> String {
        let sql = format!("SELECT state FROM {table} ORDER BY created_at DESC LIMIT 1");
        let state: Option<String> = on_storage!(&self.storage, |pool| {
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql.as_str()))
                .fetch_optional(pool)
                .await
                .expect("state")
        });
        state.unwrap_or_default()
    }

    async fn plan(&self) {
        let made = self
            .post(
                &self.admin,
                "/v1/plans",
                crate::plans::plan_body("m", "Medium"),
            )
            .await;
        assert_eq!(made.status(), 201);
    }

    /// A product (2.50) stocked 3 in door 1; returns its id.
    async fn vending(&self) -> Uuid {
        let made = self
            .post(
                &self.admin,
                "/v1/products",
                json!({ "sku": "cola", "name": "Cola", "price": "2.50" }),
            )
            .await;
        assert_eq!(made.status(), 201);
        let id: Uuid = made.json::<Value>().await.expect("product")["id"]
            .as_str()
            .expect("id")
            .parse()
            .expect("uuid");
        let stocked = self
            .http
            .put(self.url("/v1/devices/lk-1/doors/1/stock"))
            .bearer_auth(&self.admin)
            .json(&json!({ "items": [{ "product_id": id, "qty": 3 }] }))
            .send()
            .await
            .expect("sent");
        assert_eq!(stocked.status(), 200);
        id
    }

    async fn stock(&self, product: Uuid) -> i32 {
        crate::orders::qty_on(&self.storage, "lk-1", 1, product).await
    }

    /// A running rental; returns its id.
    async fn running_rental(&self) -> String {
        let started = self
            .post(
                &self.customer,
                "/v1/rentals",
                json!({ "device_id": "lk-1" }),
            )
            .await;
        assert_eq!(started.status(), 201);
        started.json::<Value>().await.expect("rental")["id"]
            .as_str()
            .expect("id")
            .to_owned()
    }
}

in_both_modes! {
async fn killed_after_the_hold_before_the_unlock_the_rental_is_undone(backend: Backend) {
    let mut site = Site::new(backend, "rental.created").await;
    site.plan().await;
    let rent = json!({ "device_id": "lk-1" });
    site.pause_in(
        &site.customer.clone(),
        "/v1/rentals",
        rent,
        "rental.created",
    )
    .await;
    assert_eq!(site.state("rentals").await, "pending");
    let restarted = site.kill_and_restart().await;
    site.recovered(restarted, "the rental", || async {
        site.state("rentals").await == "cancelled"
    })
    .await;
    let unlocks = site.count("SELECT count(*) FROM commands").await;
    assert_eq!(unlocks, 0, "no door was opened");
}
}

in_both_modes! {
async fn killed_after_the_door_opened_the_rental_runs(backend: Backend) {
    let mut site = Site::new(backend, "rental.unlocked").await;
    site.plan().await;
    let rent = json!({ "device_id": "lk-1" });
    site.pause_in(
        &site.customer.clone(),
        "/v1/rentals",
        rent,
        "rental.unlocked",
    )
    .await;
    let restarted = site.kill_and_restart().await;
    site.recovered(restarted, "the rental", || async {
        site.state("rentals").await == "active"
    })
    .await;
}
}

in_both_modes! {
async fn killed_before_the_pickup_unlock_the_rental_goes_on(backend: Backend) {
    let mut site = Site::new(backend, "rental.ending").await;
    site.plan().await;
    let id = site.running_rental().await;
    let customer = site.customer.clone();
    site.pause_in(
        &customer,
        &format!("/v1/rentals/{id}/end"),
        json!({}),
        "rental.ending",
    )
    .await;
    assert_eq!(site.state("rentals").await, "ending");
    let restarted = site.kill_and_restart().await;
    site.recovered(restarted, "the rental", || async {
        site.state("rentals").await == "active"
    })
    .await;
    // And it can be ended after all.
    let ended = site
        .post(&customer, &format!("/v1/rentals/{id}/end"), json!({}))
        .await;
    assert_eq!(ended.status(), 200);
    site.books_balance().await;
}
}

in_both_modes! {
async fn killed_after_the_pickup_unlock_the_rental_ends_and_is_paid(backend: Backend) {
    let mut site = Site::new(backend, "rental.picked_up").await;
    site.plan().await;
    let id = site.running_rental().await;
    let customer = site.customer.clone();
    site.pause_in(
        &customer,
        &format!("/v1/rentals/{id}/end"),
        json!({}),
        "rental.picked_up",
    )
    .await;
    let restarted = site.kill_and_restart().await;
    site.recovered(restarted, "the rental", || async {
        site.state("rentals").await == "ended"
    })
    .await;
    let ended = site
        .count("SELECT count(*) FROM outbox WHERE event_type = 'rental.ended'")
        .await;
    assert_eq!(ended, 1);
}
}

in_both_modes! {
async fn killed_after_the_charge_before_the_unlock_the_order_is_refunded(backend: Backend) {
    let mut site = Site::new(backend, "order.paid").await;
    let cola = site.vending().await;
    let customer = site.customer.clone();
    let buy = json!({ "device_id": "lk-1", "items": [{ "product_id": cola, "qty": 2 }] });
    site.pause_in(&customer, "/v1/orders", buy, "order.paid")
        .await;
    assert_eq!(site.stock(cola).await, 1, "taken with the charge");
    let restarted = site.kill_and_restart().await;
    site.recovered(restarted, "the order", || async {
        site.state("orders").await == "cancelled"
    })
    .await;
    assert_eq!(site.stock(cola).await, 3, "the stock is back");
}
}

in_both_modes! {
async fn killed_after_the_door_opened_the_order_completes(backend: Backend) {
    let mut site = Site::new(backend, "order.unlocked").await;
    let cola = site.vending().await;
    let customer = site.customer.clone();
    let buy = json!({ "device_id": "lk-1", "items": [{ "product_id": cola, "qty": 2 }] });
    site.pause_in(&customer, "/v1/orders", buy, "order.unlocked")
        .await;
    let restarted = site.kill_and_restart().await;
    site.recovered(restarted, "the order", || async {
        site.state("orders").await == "completed"
    })
    .await;
    assert_eq!(site.stock(cola).await, 1);
}
}

#[test]
fn every_pause_point_has_a_crash_test() {
    let source = include_str!("crashes.rs");
    for point in locker_gateway::pause::POINTS {
        assert!(
            source.matches(&format!("\"{point}\"")).count() >= 2,
            "no crash test pauses at {point}"
        );
    }
}
