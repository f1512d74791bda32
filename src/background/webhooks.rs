//! Delivers the webhook deliveries that are due ([`crate::webhook`] keeps them): claimed a batch
//! at a time (every gateway runs a deliverer; a claim is a lease that lapses if its gateway dies),
//! POSTed with their signature, and each attempt's answer written back: 2xx delivered; anything
//! else tried again after a backoff that doubles (with jitter) up to an hour, and `failed` after
//! the last attempt. One failing delivery or endpoint never stops the others.

use std::time::Duration;

use chrono::Utc;
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::storage::Storage;
use crate::webhook::{self, Due};

pub use crate::config::WebhookPolicy as Policy;

/// The wait after `attempts` failed attempts: doubling from `first_retry`, at most `max_retry`,
/// less up to a fifth at random (so endpoints coming back are not all hit at once).
pub fn backoff(policy: &Policy, attempts: u32) -> Duration {
    let doubled = policy
        .first_retry
        .saturating_mul(1u32 << attempts.saturating_sub(1).min(20));
    let wait = doubled.min(policy.max_retry);
    wait.saturating_sub(wait / 1000 * rand::random_range(0..=200u32))
}

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// This many attempts were made (each delivered or not).
    Attempted(usize),
    /// Nothing was due.
    Idle,
}

/// What an attempt got.
enum Answer {
    Delivered(u16),
    Refused(Option<u16>, String),
}

/// The deliverer of one gateway.
pub struct Deliverer {
    storage: Storage,
    key: Option<crate::config::SecretsKey>,
    client: reqwest::Client,
    policy: Policy,
    batch: i64,
}

impl Deliverer {
    /// A deliverer of the deliveries in `storage`, trying them by `policy`, opening sealed signing
    /// secrets with `key`.
    pub fn new(
        storage: Storage,
        policy: Policy,
        key: Option<crate::config::SecretsKey>,
    ) -> Result<Self, reqwest::Error> {
        // HTTPS with the system's CA store, through rustls and ring.
        let client = reqwest::Client::builder()
            .timeout(policy.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("locker-gateway/", env!("CARGO_PKG_VERSION")));
        Ok(Self {
            storage,
            key,
            client: client.build()?,
            policy,
            batch: 32,
        })
    }

    /// Attempts the deliveries that are due (a batch), and writes back each one's answer.
    pub async fn try_deliver_batch(&self) -> Result<Outcome, sqlx::Error> {
        // Each claimed delivery is moved on by a lease (the attempt's timeout, twice), so another
        // deliverer does not take it meanwhile and it comes back if this gateway dies.
        let lease = self.policy.timeout * 2;
        let due = webhook::claim(&self.storage, lease, self.batch).await?;
        if due.is_empty() {
            return Ok(Outcome::Idle);
        }
        let endpoints = webhook::endpoints_of(&self.storage, &due, self.key.as_ref()).await?;
        let attempts = due.len();
        let mut answers = futures_util::stream::iter(due.into_iter().map(|due| {
            let endpoint = endpoints.get(&due.webhook_id);
            async move {
                let answer = match endpoint {
                    Some((url, Some(secret))) => self.attempt(url, secret, &due).await,
                    Some((_, None)) => Answer::Refused(
                        None,
                        "the signing secret cannot be opened: LOCKER_SECRETS_KEY is unset or \
                         not the key it was sealed with"
                            .into(),
                    ),
                    None => Answer::Refused(None, "the endpoint was removed".into()),
                };
                (due, answer)
            }
        }))
        .buffer_unordered(8);
        while let Some((due, answer)) = answers.next().await {
            if let Err(e) = self.record(&due, answer).await {
                // Left claimed: tried again when its claim lapses.
                metrics::counter!("locker_webhook_record_failures_total").increment(1);
                tracing::error!(delivery = due.id, error = %e, "cannot record a webhook attempt");
            }
        }
        Ok(Outcome::Attempted(attempts))
    }

    async fn attempt(&self, url: &str, secret: &str, due: &Due) -> Answer {
        let timestamp = Utc::now().timestamp();
        let signature = webhook::signature(secret, timestamp, due.payload.as_bytes());
        let sent = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(webhook::SIGNATURE_HEADER, signature)
            .header("locker-event-id", due.event_id.to_string())
            .header("locker-event-type", &due.event_type)
            .header("locker-delivery", due.id.to_string())
            .body(due.payload.clone())
            .send()
            .await;
        match sent {
            Ok(response) if response.status().is_success() => {
                Answer::Delivered(response.status().as_u16())
            }
            Ok(response) => {
                let status = response.status();
                Answer::Refused(Some(status.as_u16()), format!("answered {status}"))
            }
            Err(e) => Answer::Refused(None, without_secrets(&e)),
        }
    }

    async fn record(&self, due: &Due, answer: Answer) -> Result<(), sqlx::Error> {
        match answer {
            Answer::Delivered(status) => {
                metrics::counter!("locker_webhook_attempts_total", "outcome" => "delivered")
                    .increment(1);
                webhook::delivered(&self.storage, due.id, status).await
            }
            Answer::Refused(status, error) => {
                let attempts = u32::try_from(due.attempts).unwrap_or(0).saturating_add(1);
                let last = attempts >= self.policy.max_attempts;
                let outcome = if last { "failed" } else { "retry" };
                metrics::counter!("locker_webhook_attempts_total", "outcome" => outcome)
                    .increment(1);
                tracing::warn!(delivery = due.id, attempts, %error, "a webhook attempt failed");
                let again = (!last).then(|| backoff(&self.policy, attempts));
                webhook::not_delivered(&self.storage, due.id, status, &error, again).await
            }
        }
    }

    /// Delivers every `every` (at once while batches come full) until `shutdown`. A batch that
    /// cannot be claimed is logged and counted, and tried again at the next tick.
    pub async fn run(self, every: Duration, shutdown: CancellationToken) {
        let mut forgot_at = tokio::time::Instant::now();
        loop {
            if forgot_at.elapsed() >= FORGET_EVERY {
                forgot_at = tokio::time::Instant::now();
                self.forget_old().await;
            }
            let wait = match self.try_deliver_batch().await {
                Ok(Outcome::Attempted(n)) if n as i64 == self.batch => Duration::ZERO,
                Ok(_) => every,
                Err(e) => {
                    metrics::counter!("locker_webhook_claim_failures_total").increment(1);
                    tracing::error!(error = %e, "cannot claim webhook deliveries");
                    every
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}

/// How often settled deliveries past [`KEEP_SETTLED`] are forgotten.
const FORGET_EVERY: Duration = Duration::from_secs(3600);
/// How long a delivered or failed delivery stays in the log.
pub const KEEP_SETTLED: Duration = Duration::from_secs(30 * 86_400);

impl Deliverer {
    /// Forgets the deliveries settled more than [`KEEP_SETTLED`] ago (logged, never fatal).
    pub async fn forget_old(&self) {
        let before = Utc::now()
            - chrono::Duration::from_std(KEEP_SETTLED).unwrap_or(chrono::Duration::zero());
        match webhook::forget_settled(&self.storage, before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deliveries = n, "old webhook deliveries forgotten"),
            Err(e) => tracing::warn!(error = %e, "cannot forget old webhook deliveries"),
        }
    }
}

/// A transport error as the delivery log keeps it: what failed, without the URL (its query may
/// carry a token).
fn without_secrets(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_redirect() {
        "redirected (not followed)"
    } else {
        "the request failed"
    };
    let mut text = kind.to_owned();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    text.chars().take(300).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_up_to_its_bound_less_some_jitter() {
        let policy = Policy::default();
        for (attempts, full) in [(1, 10), (2, 20), (3, 40), (9, 2560), (10, 3600), (40, 3600)] {
            let wait = backoff(&policy, attempts).as_millis();
            assert!(
                wait <= full * 1000 && wait >= full * 800,
                "{attempts}: {wait}"
            );
        }
    }
}
