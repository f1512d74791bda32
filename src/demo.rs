//! `locker-gateway demo`: the gateway with simulated lockers connected to it, for trying the
//! project on a laptop. The demo lockers are devices `demo-1` … `demo-N`; each start gives them
//! fresh secrets (the demo owns them), and an operator account `admin@demo.local` is made on the
//! first start, its password printed once.

use std::future::Future;
use std::time::Duration;

use firmware_protocol::DeviceId;

use crate::account::{AccountError, Accounts, Role};
use crate::app::App;
use crate::config::Config;
use crate::device::{NewDevice, RegistryError};

/// The demo operator's login.
pub const DEMO_ADMIN: &str = "admin@demo.local";

/// Runs the gateway and `lockers` simulated lockers until `stop`.
pub async fn run(
    config: &Config,
    lockers: u16,
    stop: impl Future<Output = ()>,
) -> Result<String, String> {
    let app = App::build(config).await.map_err(|e| e.to_string())?;
    let registry = app.registry().clone();
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
        let provisioned = match registry
            .provision(NewDevice {
                id,
                model: "demo".into(),
                door_count: 12,
            })
            .await
        {
            Ok(p) => p,
            Err(RegistryError::AlreadyExists(_)) => registry
                .rotate(id, Duration::ZERO)
                .await
                .map_err(|e| e.to_string())?,
            Err(e) => return Err(e.to_string()),
        };
        let credentials =
            simulator::mqtt::Credentials::from_secret(provisioned.device_id, &provisioned.secret);
        let mut locker = simulator::mqtt::LockerConfig::new(broker, credentials);
        locker.heartbeat = Duration::from_secs(10);
        fleet.lockers.push(simulator::mqtt::spawn(locker));
    }
    let accounts = Accounts::new(app.pool().clone(), config.password_cost, config.token_ttl);
    let mut password = [0u8; 12];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut password);
    let password = hex::encode(password);
    let admin = match accounts.register(DEMO_ADMIN, &password, Role::Admin).await {
        Ok(_) => format!("operator {DEMO_ADMIN}, password {password} (shown once)"),
        Err(AccountError::EmailTaken) => format!(
            "operator {DEMO_ADMIN} (password as printed at the first demo; or `locker-gateway admin create`)"
        ),
        Err(e) => return Err(e.to_string()),
    };
    let http = app.http_addr();
    tracing::info!(
        "demo: {lockers} simulated lockers (demo-1 … demo-{lockers}) on {broker}; HTTP API on http://{http}\n  \
         {admin}\n  \
         curl -s http://{http}/readyz\n  \
         TOKEN=$(curl -s -H 'content-type: application/json' -d '{{\"email\":\"{DEMO_ADMIN}\",\"password\":\"…\"}}' http://{http}/v1/sessions | sed 's/.*\"token\":\"\\([^\"]*\\)\".*/\\1/')\n  \
         curl -s -H \"Authorization: Bearer $TOKEN\" http://{http}/v1/devices\n  \
         curl -s -H \"Authorization: Bearer $TOKEN\" -H 'content-type: application/json' -d '{{\"reason\":\"demo\"}}' http://{http}/v1/devices/demo-1/doors/1/unlock"
    );
    app.run_until_stopped(stop).await;
    drop(fleet);
    Ok(String::new())
}
