//! Door locks across requests and gateway processes: `SET {prefix}lock:door:{device}:{door}
//! {token} NX PX {ttl}`, released only by its owner with a compare-and-delete script, renewed
//! by its owner with a compare-and-expire script. A lock that expired before its work finished is
//! not the last line of defence: the database's one-rental-per-door index is.
//!
//! Redis unreachable is an error, never a lock granted: the caller refuses the work.
//!
//! A single gateway (edge mode) holds its locks in the process instead ([`DoorLocks::in_process`]):
//! the same owner tokens, expiry, renewal and compare-and-release, in a map behind a mutex that is
//! never held across an `.await`. Only one process may use them: in-process locks do not
//! serialise two gateways.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;

/// Why a lock operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Redis did not answer, or answered with an error.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// Redis did not answer in time.
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
}

/// A held lock; release it with [`DoorLocks::release`] (it also expires by itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoorLock {
    key: String,
    token: String,
}

impl DoorLock {
    /// The lock's key (the Redis key, for locks in Redis).
    pub fn key(&self) -> &str {
        &self.key
    }
}

/// Deletes the key only if it still holds our token.
const RELEASE: &str = r#"
if redis.call("GET", KEYS[1]) == ARGV[1] then
    return redis.call("DEL", KEYS[1])
else
    return 0
end"#;

/// Extends the key's expiry only if it still holds our token.
const RENEW: &str = r#"
if redis.call("GET", KEYS[1]) == ARGV[1] then
    return redis.call("PEXPIRE", KEYS[1], ARGV[2])
else
    return 0
end"#;

/// How long a Redis call may take before the work is refused.
const CALL_WITHIN: Duration = Duration::from_secs(2);

/// Door locks, in Redis or in this process.
#[derive(Clone)]
pub struct DoorLocks {
    backend: Backend,
    prefix: String,
}

#[derive(Clone)]
enum Backend {
    Redis {
        redis: ConnectionManager,
        release: redis::Script,
        renew: redis::Script,
    },
    InProcess(Arc<Mutex<HashMap<String, Held>>>),
}

/// A lock held in the process: its owner's token and when it lapses.
#[derive(Debug, Clone)]
struct Held {
    token: String,
    until: Instant,
}

/// Above this many entries, lapsed in-process locks are swept at the next acquire.
const SWEEP_ABOVE: usize = 1024;

impl std::fmt::Debug for DoorLocks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let backend = match self.backend {
            Backend::Redis { .. } => "redis",
            Backend::InProcess(_) => "in_process",
        };
        f.debug_struct("DoorLocks")
            .field("backend", &backend)
            .field("prefix", &self.prefix)
            .finish()
    }
}

/// The in-process map; a poisoned mutex (a panic while it was held, which the code below cannot
/// cause) is taken over rather than propagated.
fn held(map: &Mutex<HashMap<String, Held>>) -> std::sync::MutexGuard<'_, HashMap<String, Held>> {
    map.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn within<T>(
    call: impl std::future::Future<Output = Result<T, redis::RedisError>>,
) -> Result<T, LockError> {
    tokio::time::timeout(CALL_WITHIN, call)
        .await
        .map_err(|_| LockError::Timeout(CALL_WITHIN))?
        .map_err(LockError::from)
}

impl DoorLocks {
    /// Locks over `redis`, keys starting with `prefix` (tests give each their own).
    pub fn new(redis: ConnectionManager, prefix: impl Into<String>) -> Self {
        Self {
            backend: Backend::Redis {
                redis,
                release: redis::Script::new(RELEASE),
                renew: redis::Script::new(RENEW),
            },
            prefix: prefix.into(),
        }
    }

    /// Locks held in this process, for a single gateway (edge mode).
    pub fn in_process() -> Self {
        Self {
            backend: Backend::InProcess(Arc::default()),
            prefix: String::new(),
        }
    }

    /// The key of a door's lock.
    pub fn key(&self, device: &str, door: u16) -> String {
        format!("{}lock:door:{device}:{door}", self.prefix)
    }

    /// Takes the door's lock for `ttl`; `None` if someone else holds it.
    pub async fn acquire(
        &self,
        device: &str,
        door: u16,
        ttl: Duration,
    ) -> Result<Option<DoorLock>, LockError> {
        self.acquire_key(self.key(device, door), ttl).await
    }

    /// The key of a locker's downlink turn (see `command::outlet::Turns`).
    pub fn turn_key(&self, device: &str) -> String {
        format!("{}lock:turn:{device}", self.prefix)
    }

    /// Takes the lock named `key` for `ttl`; `None` if someone else holds it.
    pub async fn acquire_key(
        &self,
        key: String,
        ttl: Duration,
    ) -> Result<Option<DoorLock>, LockError> {
        let token = uuid::Uuid::new_v4().to_string();
        let redis = match &self.backend {
            Backend::Redis { redis, .. } => redis,
            Backend::InProcess(map) => {
                let now = Instant::now();
                let mut map = held(map);
                if map.len() > SWEEP_ABOVE {
                    map.retain(|_, h| h.until > now);
                }
                if map.get(&key).is_some_and(|h| h.until > now) {
                    return Ok(None);
                }
                map.insert(
                    key.clone(),
                    Held {
                        token: token.clone(),
                        until: now + ttl,
                    },
                );
                return Ok(Some(DoorLock { key, token }));
            }
        };
        let options = redis::SetOptions::default()
            .conditional_set(redis::ExistenceCheck::NX)
            .with_expiration(redis::SetExpiry::PX(ttl.as_millis() as u64));
        let mut conn = redis.clone();
        let set: Option<String> = within(async {
            redis::cmd("SET")
                .arg(&key)
                .arg(&token)
                .arg(&options)
                .query_async(&mut conn)
                .await
        })
        .await?;
        Ok(set.map(|_| DoorLock { key, token }))
    }

    /// Extends a held lock to `ttl` from now; `false` if it is no longer ours (it expired).
    pub async fn renew(&self, lock: &DoorLock, ttl: Duration) -> Result<bool, LockError> {
        let (redis, renew) = match &self.backend {
            Backend::Redis { redis, renew, .. } => (redis, renew),
            Backend::InProcess(map) => {
                let now = Instant::now();
                let mut map = held(map);
                return Ok(match map.get_mut(&lock.key) {
                    Some(h) if h.token == lock.token && h.until > now => {
                        h.until = now + ttl;
                        true
                    }
                    _ => false,
                });
            }
        };
        let mut conn = redis.clone();
        let renewed: i64 = within(async {
            renew
                .key(&lock.key)
                .arg(&lock.token)
                .arg(ttl.as_millis() as u64)
                .invoke_async(&mut conn)
                .await
        })
        .await?;
        Ok(renewed == 1)
    }

    /// Releases a lock if it is still ours; `false` if it had expired (and perhaps been taken
    /// by someone else, whose lock is left alone).
    pub async fn release(&self, lock: DoorLock) -> Result<bool, LockError> {
        let released: i64 = match &self.backend {
            Backend::Redis { redis, release, .. } => {
                let mut conn = redis.clone();
                within(async {
                    release
                        .key(&lock.key)
                        .arg(&lock.token)
                        .invoke_async(&mut conn)
                        .await
                })
                .await?
            }
            Backend::InProcess(map) => {
                let now = Instant::now();
                let mut map = held(map);
                match map.get(&lock.key) {
                    Some(h) if h.token == lock.token => {
                        let live = h.until > now;
                        // Ours but lapsed: gone, as an expired Redis key would be.
                        map.remove(&lock.key);
                        i64::from(live)
                    }
                    _ => 0,
                }
            }
        };
        if released == 0 {
            metrics::counter!("locker_door_lock_lost_total").increment(1);
            tracing::warn!(key = %lock.key, "a door lock expired before it was released");
        }
        Ok(released == 1)
    }

    /// Runs `work` with the door's lock held (renewed every third of `ttl` while it runs) and
    /// releases it after; `Ok(None)` if someone else holds it, and the work is not run. A lock
    /// that cannot be renewed is logged: the database fences the door whatever happens.
    pub async fn while_held<T>(
        &self,
        device: &str,
        door: u16,
        ttl: Duration,
        work: impl std::future::Future<Output = T>,
    ) -> Result<Option<T>, LockError> {
        let Some(lock) = self.acquire(device, door, ttl).await? else {
            return Ok(None);
        };
        let result = {
            tokio::pin!(work);
            let mut renew = tokio::time::interval(ttl / 3);
            renew.tick().await;
            loop {
                tokio::select! {
                    result = &mut work => break result,
                    _ = renew.tick() => match self.renew(&lock, ttl).await {
                        Ok(true) => {}
                        Ok(false) => tracing::warn!(device, door, "a door lock expired during its work; the database still fences the door"),
                        Err(e) => tracing::warn!(error = %e, device, door, "cannot renew a door lock"),
                    },
                }
            }
        };
        if let Err(e) = self.release(lock).await {
            tracing::error!(error = %e, device, door, "cannot release a door lock");
        }
        Ok(Some(result))
    }
}
