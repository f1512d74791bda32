//! The demo: the gateway with simulated lockers connected to it, for trying the
//! project on a laptop. The demo lockers are devices `demo-1` … `demo-N`; each start gives them
//! fresh secrets (the demo owns them), and an operator account `admin@demo.local` is made on the
//! first start, its password printed once.

use std::future::Future;
use std::time::Duration;

use firmware_protocol::DeviceId;

use locker_gateway::account::{AccountError, Accounts, Role};
use locker_gateway::app::App;
use locker_gateway::config::Config;
use locker_gateway::device::{NewDevice, RegistryError};

/// The demo operator's login.
pub const DEMO_ADMIN: &str = "admin@demo.local";
/// The demo customer's login (50.00 in the wallet at its first start).
pub const DEMO_CUSTOMER: &str = "customer@demo.local";

/// Makes a demo account on the first start (a customer gets 50.00); says how to log in.
async fn demo_account(
    accounts: &Accounts,
    email: &str,
    role: Role,
    currency: &locker_gateway::money::Currency,
) -> Result<String, String> {
    let mut password = [0u8; 12];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut password);
    let password = hex::encode(password);
    let what = if role == Role::Admin {
        "operator"
    } else {
        "customer"
    };
    match accounts.register(email, &password, role).await {
        Ok(user) => {
            if role == Role::User {
                let wallets = locker_gateway::wallet::Wallets::on(
                    accounts.storage().clone(),
                    currency.clone(),
                );
                wallets
                    .top_up(user.id, 50 * 10_i64.pow(currency.exponent), "demo money")
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Ok(format!("{what} {email}, password {password} (shown once)"))
        }
        Err(AccountError::EmailTaken) => Ok(format!(
            "{what} {email} (password as printed at the first demo start)"
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// Lock boards on the demo's serial line (`demo-board-1` … at addresses 1 …).
const SERIAL_BOARDS: u8 = 4;

/// The device, provisioned now or given a fresh secret (the demo owns its devices).
async fn fresh(
    registry: &locker_gateway::device::DeviceRegistry,
    id: DeviceId,
    model: &str,
    doors: u16,
) -> Result<locker_gateway::device::Provisioned, String> {
    match registry
        .provision(NewDevice {
            id,
            model: model.into(),
            door_count: doors,
        })
        .await
    {
        Ok(p) => Ok(p),
        Err(RegistryError::AlreadyExists(_)) => {
            registry
                .rotate(id, Duration::ZERO)
                .await
                .map_err(|e| match e {
                    RegistryError::Revoked(_) => format!(
                        "the demo device {id} was revoked, so the demo cannot use it again; to \
                         start over, run `locker-gateway demo --reset` (edge mode: it deletes \
                         the demo's SQLite file) or point the demo at a new database"
                    ),
                    other => other.to_string(),
                })
        }
        Err(e) => Err(e.to_string()),
    }
}

/// The mode in force, by name.
fn mode_name(config: &Config) -> &'static str {
    config
        .mode()
        .map_or("(no mode)", locker_gateway::config::Mode::as_str)
}

/// Runs the gateway, `lockers` simulated MQTT lockers and a cabinet of simulated serial lock
/// boards until `stop`.
/// `close_after`: a simulated person closes each door that long after it opened (`None`: doors
/// stay open).
pub async fn run(
    config: &Config,
    (lockers, close_after): (u16, Option<Duration>),
    stop: impl Future<Output = ()>,
) -> Result<String, String> {
    let target = locker_gateway::app::storage_target(config).map_err(|e| e.to_string())?;
    let storage = locker_gateway::storage::Storage::open(&target, 16)
        .await
        .map_err(|e| e.to_string())?;
    let registry = locker_gateway::device::DeviceRegistry::new(storage.clone());
    // A cabinet of lock boards on a serial line (a pseudo-terminal) beside the MQTT lockers.
    let mut boards = Vec::new();
    for address in 1..=SERIAL_BOARDS {
        let id = DeviceId::new(&format!("demo-board-{address}")).ok_or("bad demo id")?;
        let provisioned = fresh(&registry, id, "demo-board", 8).await?;
        boards.push(simulator::serial::BoardConfig {
            address,
            device_id: id,
            key: provisioned.secret.tag_key(),
            doors: 8,
        });
    }
    let cabinet =
        simulator::serial::spawn_bus(boards).map_err(|e| format!("pseudo-terminal: {e}"))?;
    if let Some(after) = close_after {
        cabinet
            .turn(simulator::serial::SerialKnob::CloseAfter(after))
            .await;
    }
    let line = (1..=SERIAL_BOARDS)
        .map(|a| format!("{a}:demo-board-{a}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut config = config.clone();
    config.serial_buses.extend(
        locker_gateway::serial::parse_buses(&format!("{}={line}", cabinet.path()))
            .map_err(|e| e.to_string())?,
    );
    let config = &config;
    let app = App::with_storage(config, storage.clone())
        .await
        .map_err(|e| e.to_string())?;
    let mut fleet = simulator::mqtt::Simulator::default();
    let broker = match &config.external_broker {
        None if config.mqtt_addr.ip().is_unspecified() => {
            std::net::SocketAddr::from(([127, 0, 0, 1], config.mqtt_addr.port()))
        }
        None => config.mqtt_addr,
        Some(_) => {
            return Err("the demo runs on the embedded broker: unset LOCKER_MQTT_BROKER".into());
        }
    };
    for n in 1..=lockers {
        let id = DeviceId::new(&format!("demo-{n}")).ok_or("bad demo id")?;
        let provisioned = fresh(&registry, id, "demo", 12).await?;
        let credentials =
            simulator::mqtt::Credentials::from_secret(provisioned.device_id, &provisioned.secret);
        let mut locker = simulator::mqtt::LockerConfig::new(broker, credentials);
        locker.heartbeat = Duration::from_secs(10);
        locker.close_after = close_after;
        fleet.lockers.push(simulator::mqtt::spawn(locker));
    }
    let accounts = Accounts::new(storage.clone(), config.password_cost, config.token_ttl);
    let admin = demo_account(&accounts, DEMO_ADMIN, Role::Admin, &config.currency).await?;
    let customer = demo_account(&accounts, DEMO_CUSTOMER, Role::User, &config.currency).await?;
    // A price plan for the demo doors (size m), unless one is active.
    if locker_gateway::rental::plan::for_size(&storage, "m")
        .await
        .map_err(|e| e.to_string())?
        .is_none()
    {
        let plan = locker_gateway::rental::plan::Plan {
            id: uuid::Uuid::now_v7(),
            name: "Demo: 30 min free, then 1.00 per hour, 10.00 a day".into(),
            currency: config.currency.code.clone(),
            size_class: "m".into(),
            terms: locker_gateway::rental::Terms {
                deposit: 10 * 10_i64.pow(config.currency.exponent),
                free_minutes: 30,
                unit_minutes: 60,
                price_per_unit: 10_i64.pow(config.currency.exponent),
                cap_per_24h: 10 * 10_i64.pow(config.currency.exponent),
                max_minutes: 3 * 24 * 60,
                overdue_price_per_unit: 5 * 10_i64.pow(config.currency.exponent),
            },
        };
        locker_gateway::rental::plan::publish(&storage, &plan)
            .await
            .map_err(|e| e.to_string())?;
    }
    let rentals = format!(
        "{} mode, storage in {}",
        mode_name(config),
        storage.backend()
    );
    let http = app.http_addr();
    let serial = cabinet.path().to_owned();
    tracing::info!(
        "demo: {lockers} simulated lockers (demo-1 … demo-{lockers}) on {broker}, {SERIAL_BOARDS} lock boards (demo-board-1 … demo-board-{SERIAL_BOARDS}) on the serial line {serial}; HTTP API on http://{http}; {rentals}\n  \
         {admin}\n  \
         {customer}\n  \
         Try, as the customer:\n  \
         TOKEN=$(curl -s -H 'content-type: application/json' -d '{{\"email\":\"{DEMO_CUSTOMER}\",\"password\":\"PASSWORD\"}}' http://{http}/v1/sessions | sed 's/.*\"token\":\"\\([^\"]*\\)\".*/\\1/')\n  \
         curl -s -H \"Authorization: Bearer $TOKEN\" http://{http}/v1/wallet\n  \
         curl -s -H \"Authorization: Bearer $TOKEN\" -H 'content-type: application/json' -d '{{\"device_id\":\"demo-1\"}}' http://{http}/v1/rentals\n  \
         curl -s -X POST -H \"Authorization: Bearer $TOKEN\" http://{http}/v1/rentals/RENTAL_ID/end\n  \
         As the operator (its token likewise): POST /v1/wallets/USER_ID/top-ups {{\"amount\":\"20.00\"}}, GET /v1/devices, GET /v1/audit; \
         the whole API: http://{http}/v1/openapi.json\n  \
         Is it ready? LOCKER_HTTP_ADDR={http} locker-gateway healthcheck"
    );
    app.run_until_stopped(stop).await;
    drop(fleet);
    drop(cabinet);
    Ok(String::new())
}
