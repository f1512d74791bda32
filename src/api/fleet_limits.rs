//! Rate limits shared by every gateway of a fleet: the same quotas as the local limiters
//! ([`super::limits`]), kept in Redis so a client cannot multiply its budget by spreading its
//! requests over the gateways. Each check is one Redis round trip running the generic cell rate
//! algorithm (GCRA: one "theoretical arrival time" per key, in Redis's own clock) in a script. If
//! Redis does not answer, the local limiters alone apply: a limiter never fails a request.

use std::time::Duration;

use redis::aio::ConnectionManager;

use super::error::ApiError;

/// GCRA for `KEYS[1]` with `ARGV[1]` ms between requests at the sustained rate and `ARGV[2]` ms
/// of burst tolerance (the whole period: its budget may be spent at once): 0 if allowed (and
/// counted), else how many ms until it would be.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local next_tat = tat + interval
local wait = next_tat - tolerance - now
if wait > 0 then return wait end
redis.call('SET', KEYS[1], next_tat, 'PX', math.ceil(next_tat - now) + 1000)
return 0
";

/// The fleet's shared limiters.
#[derive(Clone)]
pub struct FleetLimits {
    redis: ConnectionManager,
    prefix: String,
    per_ip_per_minute: u32,
    per_user_per_minute: u32,
    script: std::sync::Arc<redis::Script>,
}

impl std::fmt::Debug for FleetLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetLimits")
            .field("prefix", &self.prefix)
            .finish()
    }
}

/// How long a check may take before the local limiters alone decide.
const CHECK_WITHIN: Duration = Duration::from_millis(250);

impl FleetLimits {
    /// Limiters in `redis` under `{prefix}ratelimit:…`, with these quotas.
    pub fn new(
        redis: ConnectionManager,
        prefix: &str,
        (per_ip_per_minute, per_user_per_minute): (u32, u32),
    ) -> Self {
        Self {
            redis,
            prefix: prefix.to_owned(),
            per_ip_per_minute,
            per_user_per_minute,
            script: std::sync::Arc::new(redis::Script::new(GCRA)),
        }
    }

    /// Counts a request from `ip` across the fleet.
    pub async fn check_ip(&self, ip: std::net::IpAddr) -> Result<(), ApiError> {
        self.check("ip", &ip.to_string(), self.per_ip_per_minute)
            .await
    }

    /// Counts a request by `user` across the fleet.
    pub async fn check_user(&self, user: uuid::Uuid) -> Result<(), ApiError> {
        self.check("user", &user.to_string(), self.per_user_per_minute)
            .await
    }

    async fn check(&self, scope: &'static str, key: &str, per_minute: u32) -> Result<(), ApiError> {
        let per_minute = u64::from(per_minute.max(1));
        let interval = (60_000 / per_minute).max(1);
        // A full minute's budget at once, as the local limiters allow.
        let tolerance = 60_000u64;
        let mut redis = self.redis.clone();
        let mut invocation = self
            .script
            .key(format!("{}ratelimit:{scope}:{key}", self.prefix));
        invocation.arg(interval).arg(tolerance);
        let wait = tokio::time::timeout(CHECK_WITHIN, invocation.invoke_async::<u64>(&mut redis));
        match wait.await {
            Ok(Ok(0)) => Ok(()),
            Ok(Ok(wait_ms)) => {
                metrics::counter!("locker_http_rate_limited_total", "scope" => scope).increment(1);
                Err(ApiError::TooManyRequests {
                    retry_after_secs: wait_ms.div_ceil(1000).max(1),
                })
            }
            Ok(Err(e)) => {
                metrics::counter!("locker_rate_limit_store_errors_total").increment(1);
                tracing::warn!(error = %e, "the fleet's rate limits cannot be read; local limits only");
                Ok(())
            }
            Err(_) => {
                metrics::counter!("locker_rate_limit_store_errors_total").increment(1);
                tracing::warn!("the fleet's rate limits did not answer in time; local limits only");
                Ok(())
            }
        }
    }
}
