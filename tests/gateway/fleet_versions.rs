//! Protocol versions in a fleet: a version 2 locker keeps an anti-replay window for downlinks, so
//! two gateways send to it at once without waiting for each other; a version 1 locker still gets
//! its downlinks one gateway at a time (its turn, a lock in Redis).

use std::time::{Duration, Instant};

use locker_gateway::lock::DoorLocks;
use sqlx::PgPool;

use crate::fleet::{broker_for, online_locker, own_pool};
use crate::helpers::{device, redis_url};
use crate::mosquitto::gateway_on_with;

/// The locker's turn in the fleet, taken by someone else for `ttl` (as a gateway that hangs).
async fn hold_turn(prefix: &str, id: &str, ttl: Duration) -> locker_gateway::lock::DoorLock {
    let client = redis::Client::open(redis_url()).expect("url");
    let manager = redis::aio::ConnectionManager::new(client)
        .await
        .expect("redis");
    let locks = DoorLocks::new(manager, prefix.to_owned());
    locks
        .acquire_key(locks.turn_key(id), ttl)
        .await
        .expect("redis answers")
        .expect("the turn was free")
}

async fn announced(pool: &PgPool, id: &str) -> i16 {
    sqlx::query_scalar("SELECT protocol_version FROM devices WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .expect("device row")
}

#[sqlx::test]
async fn a_version_2_locker_is_sent_to_by_two_gateways_at_once_without_a_turn(pool: PgPool) {
    let (mosquitto, creds) = broker_for(&pool, &["lk-v2", "lk-v1"]).await;
    let prefix = format!("test-{}:", uuid::Uuid::new_v4());
    let adjust = |config: &mut locker_gateway::Config| config.redis_prefix = prefix.clone();
    let a = gateway_on_with(&mosquitto, own_pool(&pool).await, adjust).await;
    let b = gateway_on_with(&mosquitto, own_pool(&pool).await, adjust).await;
    let speaking = |version: u8| {
        move |l: &mut simulator::mqtt::LockerConfig| {
            l.close_after = Some(Duration::from_millis(20));
            l.protocol = version;
        }
    };
    let v2 = online_locker(&pool, &mosquitto, &creds[0], speaking(2)).await;
    let v1 = online_locker(&pool, &mosquitto, &creds[1], speaking(1)).await;
    assert_eq!(
        announced(&pool, "lk-v2").await,
        2,
        "the hello's version is kept"
    );
    assert_eq!(announced(&pool, "lk-v1").await, 1);
    // Both lockers' turns are held elsewhere for the whole test (a gateway that hangs): a
    // gateway waits up to 3 s for a turn before it goes ahead without it.
    let _v2_turn = hold_turn(&prefix, "lk-v2", Duration::from_secs(120)).await;
    let _v1_turn = hold_turn(&prefix, "lk-v1", Duration::from_secs(120)).await;
    // The version 2 locker takes both gateways' unlocks at once, in whatever order they arrive,
    // and nobody waits for its turn.
    for round in 0..20u16 {
        let started = Instant::now();
        let (through_a, through_b) = tokio::join!(
            a.commands().unlock(device("lk-v2"), 1 + round % 2),
            b.commands().unlock(device("lk-v2"), 3 + round % 2),
        );
        let took = started.elapsed();
        assert!(
            through_a.is_ok() && through_b.is_ok(),
            "round {round}: {through_a:?} {through_b:?}"
        );
        assert!(
            took < Duration::from_millis(2_500),
            "round {round} took {took:?}: the gateways waited for a turn a version 2 locker does not need"
        );
    }
    // The version 1 locker's downlinks wait for its turn (here in vain, for 3 s).
    let started = Instant::now();
    let through_a = a.commands().unlock(device("lk-v1"), 1).await;
    assert!(through_a.is_ok(), "{through_a:?}");
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "a version 1 locker's downlink went out without waiting for its turn ({:?})",
        started.elapsed()
    );
    v2.stop();
    v1.stop();
    b.run_until_stopped(async {}).await;
    a.run_until_stopped(async {}).await;
}
