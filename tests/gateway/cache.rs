//! Cache-aside in a real Redis (the test's own, so it can stop it).

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

#[tokio::test]
async fn reads_go_through_the_cache_writes_invalidate_and_a_dead_cache_fails_nothing() {
    let redis = crate::api::OwnRedis::start().await;
    let cache = cache(&redis.url).await;
    let loads = AtomicUsize::new(0);
    let load = |value: u32| {
        let loads = &loads;
        move || async move {
            loads.fetch_add(1, Ordering::SeqCst);
            Ok::<_, String>(value)
        }
    };
    assert_eq!(cache.get_or_load("plan:size:m", load(1)).await, Ok(1));
    assert_eq!(
        cache.get_or_load("plan:size:m", load(2)).await,
        Ok(1),
        "a hit"
    );
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    cache.invalidate("plan:size:m").await;
    assert_eq!(
        cache.get_or_load("plan:size:m", load(3)).await,
        Ok(3),
        "reloaded after a write"
    );
    assert_eq!(loads.load(Ordering::SeqCst), 2);
    drop(redis);
    assert_eq!(
        cache.get_or_load("plan:size:m", load(4)).await,
        Ok(4),
        "without Redis the source answers"
    );
    cache.invalidate("plan:size:m").await; // logged, not fatal
    let none = Cache::new(None, "x:", Duration::from_secs(1));
    assert_eq!(none.get_or_load("k", load(5)).await, Ok(5));
}
