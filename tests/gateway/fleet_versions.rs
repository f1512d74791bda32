//! Protocol versions in a fleet: a version 2 locker keeps an anti-replay window for downlinks, so
//! two gateways send to it at once without waiting for each other; a version 1 locker still gets
//! its downlinks one gateway at a time (its turn, a lock in Redis).

use std::time::{Duration, Instant};

use locker_gateway::lock::DoorLocks;
use sqlx::PgPool;

use crate::fleet::{broker_for, online_locker, own_pool, window};
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

#[sqlx::test]
async fn two_gateways_writing_batches_of_the_same_lockers_lose_no_uplink(pool: PgPool) {
    // Twelve lockers answering two gateways at once: each gateway's batches hold uplinks of
    // several lockers, in whatever order they came. Two batches locking the same lockers' rows in
    // opposite orders deadlocked (PostgreSQL fails one after a second) and uplinks were dropped.
    let ids: Vec<String> = (1..=12).map(|n| format!("lk-{n:02}")).collect();
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let (mosquitto, creds) = broker_for(&pool, &id_refs).await;
    let a = gateway_on_with(&mosquitto, own_pool(&pool).await, |_| {}).await;
    let b = gateway_on_with(&mosquitto, own_pool(&pool).await, |_| {}).await;
    let mut lockers = Vec::new();
    for c in &creds {
        let closing = |l: &mut simulator::mqtt::LockerConfig| {
            l.close_after = Some(Duration::from_millis(20));
        };
        lockers.push(online_locker(&pool, &mosquitto, c, closing).await);
    }
    let mut from = Vec::new();
    for id in &ids {
        from.push(window(&pool, id).await.highest());
    }
    // Every locker unlocked by both gateways at once, round after round: acks, openings and
    // closings of twelve lockers reach both gateways interleaved.
    for round in 0..4u16 {
        let sends = ids.iter().flat_map(|id| {
            [(&a, 1 + round % 2), (&b, 3 + round % 2)]
                .map(|(gateway, door)| gateway.commands().unlock(device(id), door))
        });
        for outcome in futures_util::future::join_all(sends).await {
            let outcome = outcome.expect("executed");
            assert_eq!(
                outcome.door,
                Some(locker_gateway::command::DoorResult::Opened),
                "round {round}: the opening was recorded"
            );
        }
    }
    for handle in lockers {
        handle.stop();
    }
    // Whatever was sent has arrived: wait until the books stop moving.
    let mut last = Vec::new();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut now = Vec::new();
        for id in &ids {
            now.push(window(&pool, id).await.highest());
        }
        if now == last {
            break;
        }
        last = now;
    }
    for (id, from) in ids.iter().zip(from) {
        let now = window(&pool, id).await;
        assert!(
            now.highest() >= from + 16,
            "{id}: {from} -> {}",
            now.highest()
        );
        assert!(
            now.has_seen_all_between(from, now.highest()),
            "{id}: an uplink was lost between {from} and {} (window {:064b})",
            now.highest(),
            now.bits()
        );
    }
    b.run_until_stopped(async {}).await;
    a.run_until_stopped(async {}).await;
}
