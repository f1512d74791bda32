//! Door locks in a real Redis, each test under its own key prefix.

use std::time::Duration;

use locker_gateway::lock::DoorLocks;

async fn locks(url: &str) -> DoorLocks {
    let client = redis::Client::open(url).expect("url");
    let manager = redis::aio::ConnectionManager::new(client)
        .await
        .expect("redis");
    DoorLocks::new(manager, format!("test-{}:", uuid::Uuid::new_v4()))
}

#[tokio::test]
async fn one_owner_at_a_time_and_only_the_owner_releases() {
    let locks = locks(&crate::helpers::redis_url()).await;
    let first = locks
        .acquire("lk-1", 1, Duration::from_millis(150))
        .await
        .expect("redis")
        .expect("free");
    assert!(
        locks
            .acquire("lk-1", 1, Duration::from_secs(5))
            .await
            .expect("redis")
            .is_none()
    );
    assert!(
        locks
            .acquire("lk-1", 2, Duration::from_secs(5))
            .await
            .expect("redis")
            .is_some()
    );
    // The first lock expires; someone else takes the door; the first owner's late release must
    // not free the new owner's lock.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = locks
        .acquire("lk-1", 1, Duration::from_secs(5))
        .await
        .expect("redis")
        .expect("expired, so free");
    assert!(!locks.release(first).await.expect("redis"));
    assert!(
        locks
            .acquire("lk-1", 1, Duration::from_secs(5))
            .await
            .expect("redis")
            .is_none()
    );
    assert!(locks.release(second).await.expect("redis"));
    assert!(
        locks
            .acquire("lk-1", 1, Duration::from_secs(5))
            .await
            .expect("redis")
            .is_some()
    );
}

#[tokio::test]
async fn a_renewed_lock_outlives_its_first_ttl() {
    let locks = locks(&crate::helpers::redis_url()).await;
    let lock = locks
        .acquire("lk-1", 3, Duration::from_millis(200))
        .await
        .expect("redis")
        .expect("free");
    assert!(
        locks
            .renew(&lock, Duration::from_secs(5))
            .await
            .expect("redis")
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        locks
            .acquire("lk-1", 3, Duration::from_secs(5))
            .await
            .expect("redis")
            .is_none()
    );
}

#[tokio::test]
async fn two_hundred_racers_one_winner() {
    let locks = locks(&crate::helpers::redis_url()).await;
    let mut racers = tokio::task::JoinSet::new();
    for _ in 0..200 {
        let locks = locks.clone();
        racers.spawn(async move { locks.acquire("lk-9", 1, Duration::from_secs(5)).await });
    }
    let mut winners = 0;
    while let Some(result) = racers.join_next().await {
        if result.expect("task").expect("redis").is_some() {
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
}

#[tokio::test]
async fn without_redis_no_lock_is_granted() {
    let redis = crate::api::OwnRedis::start().await;
    let locks = locks(&redis.url).await;
    assert!(
        locks
            .acquire("lk-1", 1, Duration::from_secs(5))
            .await
            .expect("up")
            .is_some()
    );
    drop(redis);
    let down = locks.acquire("lk-1", 2, Duration::from_secs(5)).await;
    assert!(down.is_err(), "a lock was granted without Redis: {down:?}");
}
