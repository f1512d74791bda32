//! Keeps an external Mosquitto's clients and topic rights in step with the registry, through its
//! dynamic-security plugin (`LOCKER_BROKER_RIGHTS=dynsec`). Each locker is a client whose
//! username and client id are its device id, with a role of its own (`locker-device-{id}`) that
//! allows publishing on its `up` and `status` topics and subscribing to its `down` topic, nothing
//! else; the plugin's defaults refuse every other publish and subscription (`#`, `$SYS/#`,
//! another locker's topics, a will on them). Provisioning creates the client (its password from
//! the sealed copy the registry keeps, [`crate::device::broker_passwords`]), rotation sets the
//! new password (Mosquitto keeps one: the old one stops working for new logins at once; a
//! locker connected before goes on until it reconnects, and the gateways still take its old
//! key's tags for the grace period), revocation disables the client, which the plugin
//! disconnects at once. At start, at every reconnection to the broker (it may have been replaced
//! and lost its clients) and every few minutes, the broker's list is reconciled with the
//! registry; the gateways' own user gets a role allowing what they publish.

use std::collections::HashMap;
use std::time::Duration;

use firmware_protocol::DeviceId;
use serde_json::{Value, json};

use crate::config::SecretsKey;
use crate::device::broker_passwords::{self, BrokerAccount};
use crate::device::registry::DEVICE_CHANGES_CHANNEL;
use crate::mqtt::dynsec::{Answer, Dynsec, DynsecError};
use crate::storage::{Notice, Storage};

/// The role of the gateways' own broker user.
pub const GATEWAY_ROLE: &str = "locker-gateway";
/// The prefix of each locker's own role; clients with such a role are the gateways' to keep.
pub const LOCKER_ROLE_PREFIX: &str = "locker-device-";
/// How often the whole list is reconciled besides reconnections.
const RECONCILE_EVERY: Duration = Duration::from_secs(300);
/// Commands per message to the plugin.
const BATCH: usize = 100;
/// Clients per page of the broker's list.
const PAGE: i64 = 500;

/// Why a pass failed.
#[derive(Debug, thiserror::Error)]
pub enum RightsError {
    /// The database.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The broker.
    #[error(transparent)]
    Broker(#[from] DynsecError),
    /// The plugin refused something it should not have.
    #[error("the dynamic-security plugin refused {command}: {error}")]
    Refused {
        /// The command.
        command: String,
        /// What the plugin said.
        error: String,
    },
}

/// The rights keeper of one gateway.
#[derive(Debug, Clone)]
pub struct BrokerRights {
    dynsec: Dynsec,
    storage: Storage,
    key: SecretsKey,
    /// The gateways' broker user (the plugin's admin).
    gateway_user: String,
    /// Stops the control client.
    stop: tokio_util::sync::CancellationToken,
}

fn locker_role(device: &DeviceId) -> String {
    format!("{LOCKER_ROLE_PREFIX}{device}")
}

fn allow(acltype: &str, topic: String) -> Value {
    json!({ "acltype": acltype, "topic": topic, "priority": 0, "allow": true })
}

/// What the plugin says when something is there already (creating it again changes nothing).
fn exists(error: &str) -> bool {
    error.contains("already")
}

impl BrokerRights {
    /// A keeper speaking to the plugin through `dynsec` (whose client `stop` ends) as
    /// `gateway_user`, reading the registry on `storage`, opening sealed passwords with `key`.
    pub fn new(
        dynsec: Dynsec,
        storage: Storage,
        key: SecretsKey,
        gateway_user: String,
        stop: tokio_util::sync::CancellationToken,
    ) -> Self {
        Self {
            dynsec,
            storage,
            key,
            gateway_user,
            stop,
        }
    }

    /// Ends the control client.
    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// Whether the gateways' user has its role on the broker.
    async fn gateway_granted(&self) -> Result<bool, RightsError> {
        let mut answers = self
            .dynsec
            .call(vec![
                json!({ "command": "getClient", "username": self.gateway_user }),
            ])
            .await?;
        Ok(match answers.pop() {
            Some(Ok(data)) => data["client"]["roles"].as_array().is_some_and(|roles| {
                roles
                    .iter()
                    .any(|r| r["rolename"].as_str() == Some(GATEWAY_ROLE))
            }),
            _ => false,
        })
    }

    /// Gives the gateways' own user the role that lets it publish downlinks, events and its
    /// start-up probe, and subscribe to what it reads; nothing if it has it already (the plugin
    /// disconnects every client of a user whose roles change, every gateway's included).
    pub async fn grant_gateway(&self) -> Result<(), RightsError> {
        if self.gateway_granted().await? {
            return Ok(());
        }
        let acls = vec![
            allow("publishClientSend", "lockers/+/down".into()),
            allow("publishClientSend", "events/#".into()),
            allow("publishClientSend", "locker-gateway/#".into()),
            allow("subscribePattern", "#".into()),
            allow("subscribePattern", "$share/#".into()),
            allow("publishClientReceive", "#".into()),
        ];
        let created = self
            .dynsec
            .call(vec![
                json!({ "command": "createRole", "rolename": GATEWAY_ROLE, "acls": acls }),
            ])
            .await?;
        count(created, "gateway_role")?;
        // Our own client is disconnected before the answer: read back instead, once reconnected.
        let add = json!({ "command": "addClientRole", "username": self.gateway_user,
                          "rolename": GATEWAY_ROLE, "priority": 10 });
        let _ = self
            .dynsec
            .call_within(vec![add], Duration::from_secs(2))
            .await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            match self.gateway_granted().await {
                Ok(true) => return Ok(()),
                Ok(false) | Err(_) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Ok(false) => {
                    return Err(RightsError::Refused {
                        command: "addClientRole".into(),
                        error: format!(
                            "{} does not have the role {GATEWAY_ROLE}",
                            self.gateway_user
                        ),
                    });
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// `account`'s MQTT password, opened from its sealed copy; `None` (logged and counted) if it
    /// has none this key opens.
    fn password(&self, account: &BrokerAccount) -> Option<String> {
        let password = account
            .sealed
            .as_deref()
            .and_then(|sealed| broker_passwords::open(&self.key, &account.device, sealed));
        if password.is_none() {
            metrics::counter!("locker_broker_rights_total", "result" => "no_password").increment(1);
            tracing::warn!(device = %account.device, "cannot create the locker's client on the broker: no password sealed with LOCKER_SECRETS_KEY (provisioned before the key was set, or under another key); rotate its secret");
        }
        password
    }

    /// The commands that create `device`'s role and its client with `password`.
    fn create(device: &DeviceId, password: &str) -> [Value; 2] {
        let id = device.as_str();
        let role = locker_role(device);
        let acls = vec![
            allow("publishClientSend", format!("lockers/{id}/up")),
            allow("publishClientSend", format!("lockers/{id}/status")),
            allow("subscribeLiteral", format!("lockers/{id}/down")),
        ];
        [
            json!({ "command": "createRole", "rolename": role, "acls": acls }),
            json!({ "command": "createClient", "username": id, "clientid": id,
                    "password": password, "roles": [{ "rolename": role }] }),
        ]
    }

    /// Applies one locker's registry state to the broker (after a change was announced).
    pub async fn apply(&self, device: &DeviceId) -> Result<(), RightsError> {
        let Some(account) = broker_passwords::one(&self.storage, device).await? else {
            return Ok(());
        };
        if account.revoked {
            let answers = self
                .dynsec
                .call(vec![
                    json!({ "command": "disableClient", "username": device.as_str() }),
                ])
                .await?;
            return count(answers, "disabled");
        }
        let Some(password) = self.password(&account) else {
            return Ok(());
        };
        let answers = self
            .dynsec
            .call(Self::create(device, &password).to_vec())
            .await?;
        let client_existed = matches!(answers.get(1), Some(Err(e)) if exists(e));
        if !client_existed {
            return count(answers, "created");
        }
        // Rotated (or announced again): its password now, and enabled.
        let answers = self
            .dynsec
            .call(vec![
                json!({ "command": "setClientPassword", "username": device.as_str(),
                        "password": password }),
                json!({ "command": "enableClient", "username": device.as_str() }),
            ])
            .await?;
        count(answers, "updated")
    }

    /// The broker's clients kept by the gateways: username → disabled.
    async fn listed(&self) -> Result<HashMap<String, bool>, RightsError> {
        let mut clients = HashMap::new();
        let mut offset = 0;
        loop {
            let mut answers = self
                .dynsec
                .call(vec![json!({ "command": "listClients", "verbose": true,
                                   "count": PAGE, "offset": offset })])
                .await?;
            let data = match answers.pop() {
                Some(Ok(data)) => data,
                Some(Err(error)) => {
                    return Err(RightsError::Refused {
                        command: "listClients".into(),
                        error,
                    });
                }
                None => return Err(RightsError::Broker(DynsecError::NoAnswer)),
            };
            let page = data["clients"].as_array().cloned().unwrap_or_default();
            for client in &page {
                let ours = client["roles"].as_array().is_some_and(|roles| {
                    roles.iter().any(|r| {
                        r["rolename"]
                            .as_str()
                            .is_some_and(|n| n.starts_with(LOCKER_ROLE_PREFIX))
                    })
                });
                if let (true, Some(name)) = (ours, client["username"].as_str()) {
                    let disabled = client["disabled"].as_bool().unwrap_or(false);
                    clients.insert(name.to_owned(), disabled);
                }
            }
            offset += PAGE;
            let total = data["totalCount"].as_i64().unwrap_or(0);
            if page.is_empty() || offset >= total {
                return Ok(clients);
            }
        }
    }

    /// Brings the broker's whole list in step with the registry: missing lockers created,
    /// revoked ones disabled, disabled live ones enabled, those no longer in the registry
    /// deleted. Returns how many commands it sent.
    pub async fn reconcile(&self) -> Result<usize, RightsError> {
        self.grant_gateway().await?;
        let mut listed = self.listed().await?;
        let mut commands = Vec::new();
        for account in broker_passwords::all(&self.storage).await? {
            let id = account.device.as_str();
            let listed_as = listed.remove(id);
            // Rotated lately (in its grace period): its password again, in case the change was
            // announced while nobody listened.
            if listed_as.is_some()
                && !account.revoked
                && account.rotated
                && let Some(password) = self.password(&account)
            {
                commands.push(json!({ "command": "setClientPassword", "username": id,
                                      "password": password }));
            }
            match (listed_as, account.revoked) {
                (Some(false), true) => {
                    commands.push(json!({ "command": "disableClient", "username": id }));
                }
                (Some(true), false) => {
                    commands.push(json!({ "command": "enableClient", "username": id }));
                }
                (None, false) => {
                    if let Some(password) = self.password(&account) {
                        commands.extend(Self::create(&account.device, &password));
                    }
                }
                _ => {}
            }
        }
        for gone in listed.keys() {
            commands.push(json!({ "command": "deleteClient", "username": gone }));
            commands.push(json!({ "command": "deleteRole", "rolename": format!("{LOCKER_ROLE_PREFIX}{gone}") }));
        }
        let sent = commands.len();
        for batch in commands.chunks(BATCH) {
            let answers = self.dynsec.call(batch.to_vec()).await?;
            count(answers, "reconciled")?;
        }
        Ok(sent)
    }

    /// Keeps the broker in step until `stop`: a reconciliation whenever the control client
    /// (re)connects, whenever device announcements may have been missed, and every few minutes;
    /// each announced change applied as it comes. A failure is logged and counted, and tried
    /// again at the next occasion (within [`RECONCILE_EVERY`]).
    pub async fn keep(self) {
        let (tx, notices) = tokio::sync::mpsc::channel(256);
        let stop = self.stop.clone();
        // The listener runs beside the loop, never paused by its calls to the broker.
        tokio::select! {
            _ = stop.cancelled() => {}
            _ = self.storage.notices(DEVICE_CHANGES_CHANNEL, Duration::from_secs(5), tx) => {}
            _ = self.follow(notices) => {}
        }
    }

    async fn follow(&self, mut notices: tokio::sync::mpsc::Receiver<Notice>) {
        let mut ready = self.dynsec.ready();
        let mut every = tokio::time::interval(RECONCILE_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let reconcile = tokio::select! {
                changed = ready.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    *ready.borrow_and_update()
                }
                _ = every.tick() => true,
                notice = notices.recv() => match notice {
                    None => return,
                    Some(Notice::Listening) => true,
                    Some(Notice::Payload(id)) => {
                        if let Some(device) = DeviceId::new(id.trim())
                            && let Err(e) = self.apply(&device).await
                        {
                            metrics::counter!("locker_broker_rights_total", "result" => "failed").increment(1);
                            tracing::warn!(error = %e, %device, "cannot apply a locker's change to the broker; the next reconciliation will");
                        }
                        false
                    }
                },
            };
            // Until it succeeds, with backoff (an answer lost while the connection was being
            // dropped, a broker still starting).
            let mut backoff = Duration::from_millis(500);
            if !reconcile {
                continue;
            }
            loop {
                match self.reconcile().await {
                    Ok(0) => break,
                    Ok(n) => {
                        tracing::info!(
                            commands = n,
                            "the broker's clients brought in step with the registry"
                        );
                        break;
                    }
                    Err(e) => {
                        metrics::counter!("locker_broker_rights_total", "result" => "failed")
                            .increment(1);
                        tracing::warn!(error = %e, retry_in = ?backoff, "cannot reconcile the broker's clients with the registry");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(30));
                    }
                }
            }
        }
    }
}

/// Counts the answers by `result`; an error other than "already there" or "not found" fails.
fn count(answers: Vec<Answer>, result: &'static str) -> Result<(), RightsError> {
    for answer in answers {
        match answer {
            Ok(_) => {
                metrics::counter!("locker_broker_rights_total", "result" => result).increment(1)
            }
            Err(error) if exists(&error) || error.contains("not found") => {}
            Err(error) => {
                return Err(RightsError::Refused {
                    command: result.into(),
                    error,
                });
            }
        }
    }
    Ok(())
}
