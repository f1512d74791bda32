//! Mosquitto's dynamic-security plugin, spoken over its control topic: commands are published as
//! `{"commands": [...]}` on `$CONTROL/dynamic-security/v1` and answered on `…/response`, each
//! answer carrying back the command's `correlationData` and an `error` if it failed. The gateway
//! logs in as the plugin's admin user (its `LOCKER_MQTT_BROKER` login) through a client of its
//! own (`locker-gateway-{id}-dynsec`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{oneshot, watch};

use super::{ExternalBroker, ExternalClient, MqttRx, MqttTx};

/// Where commands are published.
pub const CONTROL: &str = "$CONTROL/dynamic-security/v1";
/// Where the plugin answers.
pub const RESPONSES: &str = "$CONTROL/dynamic-security/v1/response";
/// How long a command waits for its answer.
const ANSWER_WITHIN: Duration = Duration::from_secs(3);

/// Why a call to the plugin got no answer.
#[derive(Debug, thiserror::Error)]
pub enum DynsecError {
    /// The broker could not be handed the commands.
    #[error("cannot publish to the dynamic-security control topic: {0}")]
    Publish(String),
    /// No answer in time (no plugin, or the login is not its admin).
    #[error(
        "the broker did not answer on {RESPONSES} within {ANSWER_WITHIN:?}: is the dynamic-security plugin loaded, and is the gateway's broker user its admin?"
    )]
    NoAnswer,
}

/// One command's answer: its `data` (`Null` if none), or the plugin's error.
pub type Answer = Result<Value, String>;

/// A connection to the plugin. Cheap to clone.
#[derive(Clone)]
pub struct Dynsec {
    tx: Arc<tokio::sync::Mutex<MqttTx>>,
    waiting: Arc<Mutex<HashMap<String, oneshot::Sender<Value>>>>,
    next: Arc<AtomicU64>,
    /// Every gateway's client sees every answer: its calls' ids start with its own prefix.
    prefix: Arc<str>,
    ready: watch::Receiver<bool>,
}

impl std::fmt::Debug for Dynsec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Dynsec")
    }
}

impl Dynsec {
    /// Connects gateway `gateway`'s control client to `broker` (on `tasks`, until `shutdown`).
    pub fn connect(
        broker: &ExternalBroker,
        gateway: &str,
        tasks: &tokio_util::task::TaskTracker,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> Self {
        let client = ExternalClient::of(gateway, "dynsec", vec![RESPONSES.to_owned()]);
        let (tx, rx, ready) = super::external(broker, client, tasks, shutdown);
        let waiting: Arc<Mutex<HashMap<String, oneshot::Sender<Value>>>> = Default::default();
        tasks.spawn(read_answers(rx, waiting.clone()));
        Self {
            tx: Arc::new(tokio::sync::Mutex::new(tx)),
            waiting,
            next: Arc::new(AtomicU64::new(1)),
            prefix: format!("{gateway}-{:08x}", rand::random::<u32>()).into(),
            ready,
        }
    }

    /// A watch that is `true` while the client is connected and subscribed to the answers: it
    /// turns `true` again after every reconnect (the broker may have been replaced meanwhile).
    pub fn ready(&self) -> watch::Receiver<bool> {
        self.ready.clone()
    }

    /// Sends `commands` (each a JSON object with its `command`) in one message and returns their
    /// answers in the same order.
    pub async fn call(&self, commands: Vec<Value>) -> Result<Vec<Answer>, DynsecError> {
        self.call_within(commands, ANSWER_WITHIN).await
    }

    /// [`Dynsec::call`], waiting at most `within` for the answers (a command that changes the
    /// caller's own user's roles gets none: the plugin disconnects that user's clients first).
    pub async fn call_within(
        &self,
        commands: Vec<Value>,
        within: Duration,
    ) -> Result<Vec<Answer>, DynsecError> {
        // Subscribed to the answers first: an answer the broker sends before is lost.
        let mut ready = self.ready.clone();
        let subscribed = tokio::time::timeout(within, async {
            // The guard is dropped at once: none is held across an await.
            ready.wait_for(|r| *r).await.map(drop)
        })
        .await;
        if !matches!(subscribed, Ok(Ok(()))) {
            return Err(DynsecError::NoAnswer);
        }
        let mut receivers = Vec::with_capacity(commands.len());
        let mut tagged = Vec::with_capacity(commands.len());
        for mut command in commands {
            let id = format!(
                "{}-{}",
                self.prefix,
                self.next.fetch_add(1, Ordering::Relaxed)
            );
            let (tx, rx) = oneshot::channel();
            self.lock().insert(id.clone(), tx);
            command["correlationData"] = json!(id);
            tagged.push(command);
            receivers.push((id, rx));
        }
        let payload = json!({ "commands": tagged }).to_string().into_bytes();
        let published = self
            .tx
            .lock()
            .await
            .publish(CONTROL.to_owned(), payload, None)
            .await;
        if let Err(e) = published {
            self.forget(&receivers);
            return Err(DynsecError::Publish(e.to_string()));
        }
        let mut answers = Vec::with_capacity(receivers.len());
        let deadline = tokio::time::Instant::now() + within;
        for (_, rx) in &mut receivers {
            match tokio::time::timeout_at(deadline, rx).await {
                Ok(Ok(answer)) => answers.push(match answer.get("error").and_then(Value::as_str) {
                    Some(error) => Err(error.to_owned()),
                    None => Ok(answer.get("data").cloned().unwrap_or(Value::Null)),
                }),
                _ => {
                    self.forget(&receivers);
                    return Err(DynsecError::NoAnswer);
                }
            }
        }
        Ok(answers)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, oneshot::Sender<Value>>> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn forget(&self, receivers: &[(String, oneshot::Receiver<Value>)]) {
        let mut waiting = self.lock();
        for (id, _) in receivers {
            waiting.remove(id);
        }
    }
}

/// Hands each answer to the call waiting for its `correlationData`; anything else is dropped.
async fn read_answers(
    mut rx: MqttRx,
    waiting: Arc<Mutex<HashMap<String, oneshot::Sender<Value>>>>,
) {
    while let Some(message) = rx.next().await {
        let Ok(body) = serde_json::from_slice::<Value>(&message.payload) else {
            tracing::warn!("an answer on the dynamic-security topic is not JSON");
            continue;
        };
        let Some(responses) = body.get("responses").and_then(Value::as_array) else {
            continue;
        };
        for response in responses {
            let Some(id) = response.get("correlationData").and_then(Value::as_str) else {
                continue;
            };
            let waiter = waiting.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
            if let Some(waiter) = waiter {
                let _ = waiter.send(response.clone());
            }
        }
    }
}
