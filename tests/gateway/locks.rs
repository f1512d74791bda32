//! Door locks: one contract, written once, run against both backends: Redis (a real server,
//! each test under its own key prefix) and in-process (edge mode).

use std::time::Duration;

use locker_gateway::lock::DoorLocks;

async fn locks(url: &str) -> DoorLocks {
    let client = redis::Client::open(url).expect("url");
    let manager = redis::aio::ConnectionManager::new(client)
        .await
        .expect("redis");
    DoorLocks::new(manager, format!("test-{}:", uuid::Uuid::new_v4()))
}

/// Runs one contract test against each backend.
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod redis_backend {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(super::locks(&crate::helpers::redis_url()).await).await;
                }
            )*
        }
        mod in_process {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(locker_gateway::lock::DoorLocks::in_process()).await;
                }
            )*
        }
    };
}

contract!(
    one_owner_at_a_time_and_only_the_owner_releases,
    a_renewed_lock_outlives_its_first_ttl,
    a_lapsed_lock_cannot_be_renewed,
    work_runs_under_the_lock_and_frees_it_after,
    two_hundred_racers_one_winner,
);

async fn one_owner_at_a_time_and_only_the_owner_releases(locks: DoorLocks) {
    let first = locks
        .acquire("lk-1", 1, Duration::from_millis(150))
        .await
        .expect("backend")
        .expect("free");
    assert!(
        locks
            .acquire("lk-1", 1, Duration::from_secs(5))
            .await
            .expect("backend")
            .is_none()
    );
    assert!(
        locks
            .acquire("lk-1", 2, Duration::from_secs(5))
            .await
            .expect("backend")
            .is_some()
    );
    // The first lock expires; someone else takes the door; the first owner's late release must
    // not free the new owner's lock.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = locks
        .acquire("lk-1", 1, Duration::from_secs(5))
        .await
        .expect("backend")
        .expect("expired, so free");
    assert!(!locks.release(first).await.expect("backend"));
    assert!(
        locks
            .acquire("lk-1", 1, Duration::from_secs(5))
            .await
            .expect("backend")
            .is_none()
    );
    assert!(locks.release(second).await.expect("backend"));
    assert!(
        locks
            .acquire("lk-1", 1, Duration::from_secs(5))
            .await
            .expect("backend")
            .is_some()
    );
}

async fn a_renewed_lock_outlives_its_first_ttl(locks: DoorLocks) {
    let lock = locks
        .acquire("lk-1", 3, Duration::from_millis(200))
        .await
        .expect("backend")
        .expect("free");
    assert!(
        locks
            .renew(&lock, Duration::from_secs(5))
            .await
            .expect("backend")
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        locks
            .acquire("lk-1", 3, Duration::from_secs(5))
            .await
            .expect("backend")
            .is_none()
    );
}

async fn two_hundred_racers_one_winner(locks: DoorLocks) {
    let mut racers = tokio::task::JoinSet::new();
    for _ in 0..200 {
        let locks = locks.clone();
        racers.spawn(async move { locks.acquire("lk-9", 1, Duration::from_secs(5)).await });
    }
    let mut winners = 0;
    while let Some(result) = racers.join_next().await {
        if result.expect("task").expect("backend").is_some() {
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
}

async fn a_lapsed_lock_cannot_be_renewed(locks: DoorLocks) {
    let lock = locks
        .acquire("lk-2", 1, Duration::from_millis(100))
        .await
        .expect("backend")
        .expect("free");
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert!(
        !locks
            .renew(&lock, Duration::from_secs(5))
            .await
            .expect("backend"),
        "renewed after it lapsed"
    );
    let next = locks
        .acquire("lk-2", 1, Duration::from_secs(5))
        .await
        .expect("backend")
        .expect("lapsed, so free");
    assert!(
        !locks
            .renew(&lock, Duration::from_secs(5))
            .await
            .expect("backend"),
        "the old owner renewed the new owner's lock"
    );
    assert!(locks.release(next).await.expect("backend"));
}

async fn work_runs_under_the_lock_and_frees_it_after(locks: DoorLocks) {
    // A short TTL, renewed while the work runs longer than it.
    let ttl = Duration::from_millis(150);
    let ran = locks
        .while_held("lk-3", 1, ttl, async {
            tokio::time::sleep(Duration::from_millis(400)).await;
            let meanwhile = locks
                .acquire("lk-3", 1, Duration::from_secs(5))
                .await
                .expect("backend");
            assert!(meanwhile.is_none(), "the lock lapsed during its work");
            7
        })
        .await
        .expect("backend");
    assert_eq!(ran, Some(7));
    let held = locks
        .acquire("lk-3", 1, Duration::from_secs(5))
        .await
        .expect("backend")
        .expect("released after the work");
    let refused = locks
        .while_held("lk-3", 1, ttl, async { 8 })
        .await
        .expect("backend");
    assert_eq!(refused, None, "work ran without the lock");
    assert!(locks.release(held).await.expect("backend"));
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
