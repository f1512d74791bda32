//! Cache-aside for read-mostly data (price plans, ...): read through Redis with a TTL, load from
//! PostgreSQL on a miss and store it, invalidate on writes. Redis failing or slow only costs a
//! trip to PostgreSQL: it never fails a request, and correctness never depends on the cache.
//!
//! A single gateway (edge mode) keeps the entries in the process instead
//! ([`Cache::in_process`]): the same keys, TTL and invalidation, in a bounded map.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// How long a cache call may take before PostgreSQL is asked instead.
const CALL_WITHIN: Duration = Duration::from_millis(200);

/// The cache key of a locker's availability (its free doors and products): read by the
/// catalog, forgotten by whatever changes a door's stock or whether it is free (rentals,
/// orders, stock).
pub fn availability_key(device: &str) -> String {
    format!("availability:{device}")
}

/// A typed cache-aside helper over Redis, in the process, or none (every read goes to the
/// source).
#[derive(Clone)]
pub struct Cache {
    redis: Option<ConnectionManager>,
    local: Option<Arc<Mutex<Entries>>>,
    prefix: String,
    ttl: Duration,
}

/// Most entries an in-process cache keeps (lapsed ones are swept first, then it starts afresh).
const LOCAL_ENTRIES: usize = 10_000;

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("redis", &self.redis.is_some())
            .field("in_process", &self.local.is_some())
            .field("prefix", &self.prefix)
            .field("ttl", &self.ttl)
            .finish()
    }
}

type Entries = HashMap<String, (Vec<u8>, Instant)>;

/// The in-process map; a poisoned mutex is taken over (nothing below panics while holding it).
fn entries(map: &Mutex<Entries>) -> std::sync::MutexGuard<'_, Entries> {
    map.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Cache {
    /// A cache in `redis` (none: disabled), keys under `{prefix}cache:`, entries living `ttl`.
    pub fn new(redis: Option<ConnectionManager>, prefix: &str, ttl: Duration) -> Self {
        Self {
            redis,
            local: None,
            prefix: format!("{prefix}cache:"),
            ttl,
        }
    }

    /// A cache in this process, for a single gateway (edge mode), entries living `ttl`.
    pub fn in_process(ttl: Duration) -> Self {
        Self {
            redis: None,
            local: Some(Arc::default()),
            prefix: "cache:".to_owned(),
            ttl,
        }
    }

    /// The cached bytes for `key`, if fresh (in-process only).
    fn local_get(&self, key: &str) -> Option<Vec<u8>> {
        let map = self.local.as_ref()?;
        let map = entries(map);
        map.get(key)
            .filter(|(_, until)| *until > Instant::now())
            .map(|(bytes, _)| bytes.clone())
    }

    fn local_set(&self, key: String, bytes: Vec<u8>) {
        let Some(map) = &self.local else { return };
        let now = Instant::now();
        let mut map = entries(map);
        if map.len() >= LOCAL_ENTRIES {
            map.retain(|_, (_, until)| *until > now);
            if map.len() >= LOCAL_ENTRIES {
                map.clear();
            }
        }
        map.insert(key, (bytes, now + self.ttl));
    }

    /// The same cache with entries living `ttl` (for data that is only shown, never relied on).
    pub fn with_ttl(&self, ttl: Duration) -> Self {
        Self {
            ttl,
            ..self.clone()
        }
    }

    /// The cached value for `key`, or `load`'s (then cached). A cache failure is logged and
    /// counted, and the value loaded.
    pub async fn get_or_load<T, E, F, Fut>(&self, key: &str, load: F) -> Result<T, E>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let key = format!("{}{key}", self.prefix);
        if self.local.is_some() {
            match self.local_get(&key).map(|b| serde_json::from_slice(&b)) {
                Some(Ok(value)) => {
                    metrics::counter!("locker_cache_requests_total", "result" => "hit")
                        .increment(1);
                    return Ok(value);
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, %key, "an unreadable cache entry; reloading")
                }
                None => {
                    metrics::counter!("locker_cache_requests_total", "result" => "miss")
                        .increment(1);
                }
            }
        }
        if let Some(redis) = &self.redis {
            let mut conn = redis.clone();
            let cmd = redis::cmd("GET").arg(&key).clone();
            match tokio::time::timeout(CALL_WITHIN, cmd.query_async::<Option<Vec<u8>>>(&mut conn))
                .await
            {
                Ok(Ok(Some(bytes))) => match serde_json::from_slice(&bytes) {
                    Ok(value) => {
                        metrics::counter!("locker_cache_requests_total", "result" => "hit")
                            .increment(1);
                        return Ok(value);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, %key, "an unreadable cache entry; reloading")
                    }
                },
                Ok(Ok(None)) => {
                    metrics::counter!("locker_cache_requests_total", "result" => "miss")
                        .increment(1);
                }
                Ok(Err(e)) => self.failed(&key, &e.to_string()),
                Err(_) => self.failed(&key, "no answer in time"),
            }
        }
        let value = load().await?;
        if self.local.is_some()
            && let Ok(bytes) = serde_json::to_vec(&value)
        {
            self.local_set(key.clone(), bytes);
        }
        if let (Some(redis), Ok(bytes)) = (&self.redis, serde_json::to_vec(&value)) {
            let mut conn = redis.clone();
            let cmd = redis::cmd("SET")
                .arg(&key)
                .arg(bytes)
                .arg("PX")
                .arg(self.ttl.as_millis() as u64)
                .clone();
            if let Ok(Err(e)) =
                tokio::time::timeout(CALL_WITHIN, cmd.query_async::<()>(&mut conn)).await
            {
                self.failed(&key, &e.to_string());
            }
        }
        Ok(value)
    }

    /// Forgets `key` after a write. A failure is logged; the TTL bounds how stale a read can be.
    pub async fn invalidate(&self, key: &str) {
        let key = format!("{}{key}", self.prefix);
        if let Some(map) = &self.local {
            entries(map).remove(&key);
        }
        let Some(redis) = &self.redis else { return };
        let mut conn = redis.clone();
        let cmd = redis::cmd("DEL").arg(&key).clone();
        match tokio::time::timeout(CALL_WITHIN, cmd.query_async::<()>(&mut conn)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => self.failed(&key, &e.to_string()),
            Err(_) => self.failed(&key, "no answer in time"),
        }
    }

    fn failed(&self, key: &str, why: &str) {
        metrics::counter!("locker_cache_requests_total", "result" => "error").increment(1);
        tracing::warn!(%key, why, "cache unavailable; reading the database");
    }
}
