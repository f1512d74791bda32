//! Cache-aside in a real Redis (the test's own, so it can stop it), and in the process (edge
//! mode): the same contract.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use locker_gateway::cache::Cache;

async fn cache(url: &str) -> Cache {
    let client = redis::Client::open(url).expect("url");
    let manager = redis::aio::ConnectionManager::new(client)
        .await
        .expect("redis");
    Cache::new(
        Some(manager),
        &format!("test-{}:", uuid::Uuid::new_v4()),
        Duration::from_secs(60),
    )
}

/// The contract both backends keep: a hit is not loaded again, a write's invalidation makes
/// the next read load, an entry lapses after its TTL, and keys do not mix.
async fn cache_aside(cache: Cache) {
    let loads = AtomicUsize::new(0);
    let load = |value: u32| {
        let loads = &loads;
        move || async move {
            loads.fetch_add(1, Ordering::SeqCst);
            Ok::<_, String>(value)
        }
    };
    assert_eq!(cache.get_or_load("plan:size:m", load(1)).await, Ok(1));
    assert_eq!(cache.get_or_load("plan:size:m", load(2)).await, Ok(1));
    assert_eq!(cache.get_or_load("plan:size:l", load(9)).await, Ok(9));
    assert_eq!(loads.load(Ordering::SeqCst), 2);
    cache.invalidate("plan:size:m").await;
    assert_eq!(cache.get_or_load("plan:size:m", load(3)).await, Ok(3));
    assert_eq!(cache.get_or_load("plan:size:l", load(10)).await, Ok(9));
    // A failed load is not cached.
    let failed = cache
        .get_or_load("plan:size:s", || async { Err::<u32, _>("down".to_owned()) })
        .await;
    assert_eq!(failed, Err("down".to_owned()));
    assert_eq!(cache.get_or_load("plan:size:s", load(4)).await, Ok(4));
    // Entries lapse.
    let short = cache.with_ttl(Duration::from_millis(100));
    assert_eq!(short.get_or_load("stock:lk-1", load(5)).await, Ok(5));
    assert_eq!(short.get_or_load("stock:lk-1", load(6)).await, Ok(5));
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(short.get_or_load("stock:lk-1", load(7)).await, Ok(7));
}

#[tokio::test]
async fn the_redis_cache_keeps_the_contract() {
    cache_aside(cache(&crate::helpers::redis_url()).await).await;
}

#[tokio::test]
async fn the_in_process_cache_keeps_the_contract() {
    cache_aside(Cache::in_process(Duration::from_secs(60))).await;
}

#[tokio::test]
async fn a_dead_cache_fails_nothing() {
    let redis = crate::api::OwnRedis::start().await;
    let cache = cache(&redis.url).await;
    cache_aside(cache.clone()).await;
    drop(redis);
    let fresh = || async { Ok::<_, String>(4u32) };
    assert_eq!(
        cache.get_or_load("plan:size:m", fresh).await,
        Ok(4),
        "without Redis the source answers"
    );
    cache.invalidate("plan:size:m").await; // logged, not fatal
    let none = Cache::new(None, "x:", Duration::from_secs(1));
    assert_eq!(none.get_or_load("k", fresh).await, Ok(4));
}
