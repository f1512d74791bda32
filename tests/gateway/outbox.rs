//! The outbox publisher on either storage: events written with a change are delivered once
//! published, in order, and never published twice.

use locker_gateway::background::{Outcome, Publisher};
use locker_gateway::money::Currency;
use locker_gateway::mqtt::MqttTx;
use locker_gateway::storage::Storage;
use locker_gateway::wallet::Wallets;
use sqlx::PgPool;

/// A broker client never connected (its event loop is kept but not run): publishing only queues,
/// with room for the test's events.
fn unconnected_link() -> (MqttTx, rumqttc::EventLoop) {
    let options = rumqttc::MqttOptions::new("outbox-test", "127.0.0.1", 1);
    let (client, eventloop) = rumqttc::AsyncClient::new(options, 64);
    (MqttTx::External(client, Default::default()), eventloop)
}

async fn events_are_delivered_in_order_and_once(storage: Storage) {
    let user = crate::wallets::user_on(&storage).await;
    let wallets = Wallets::on(storage.clone(), Currency::default());
    for (amount, reference) in [(100, "payment a"), (200, "payment b"), (300, "payment c")] {
        wallets
            .top_up(user, amount, reference)
            .await
            .expect("topped up");
    }
    let (bus, mut seen) = tokio::sync::broadcast::channel(16);
    let (link, _eventloop) = unconnected_link();
    let mut publisher = Publisher::on(storage, link, bus);
    assert_eq!(
        publisher.try_publish_batch().await.expect("published"),
        Outcome::Published(3)
    );
    let mut amounts = Vec::new();
    while let Ok(event) = seen.try_recv() {
        assert_eq!(event.event_type, "wallet.topped_up");
        amounts.push(event.data["amount_minor"].as_i64().unwrap_or_default());
    }
    assert_eq!(
        amounts,
        vec![100, 200, 300],
        "in the order they were written"
    );
    assert_eq!(
        publisher.try_publish_batch().await.expect("nothing left"),
        Outcome::Empty
    );
    wallets
        .top_up(user, 400, "payment d")
        .await
        .expect("topped up");
    assert_eq!(
        publisher.try_publish_batch().await.expect("published"),
        Outcome::Published(1)
    );
    let next = seen.try_recv().expect("the new event");
    assert_eq!(next.data["amount_minor"].as_i64(), Some(400));
}

#[sqlx::test]
async fn events_are_delivered_in_order_and_once_on_postgresql(pool: PgPool) {
    events_are_delivered_in_order_and_once(Storage::Postgres(pool)).await;
}

#[tokio::test]
async fn events_are_delivered_in_order_and_once_on_sqlite() {
    let (storage, _dir) = crate::helpers::sqlite().await;
    events_are_delivered_in_order_and_once(storage).await;
}

/// A broker link that refuses every publish (its event loop is gone), then a publisher run whose
/// batches keep failing: each failure is backed off, the batch is flagged once it kept failing,
/// retried all the same (events must go out as soon as the broker takes them), and the events
/// stay in the outbox.
#[sqlx::test]
async fn a_batch_that_keeps_failing_is_flagged_and_kept(pool: PgPool) {
    use locker_gateway::worker::{Items, Notice, Policy};
    use std::time::Duration;
    let storage = Storage::from(pool.clone());
    let user = crate::wallets::user_on(&storage).await;
    Wallets::on(storage.clone(), Currency::default())
        .top_up(user, 100, "payment a")
        .await
        .expect("topped up");
    let (link, eventloop) = unconnected_link();
    drop(eventloop);
    let (tell, mut told) = tokio::sync::mpsc::channel(16);
    let policy = Policy {
        first_retry: Duration::from_millis(10),
        max_retry: Duration::from_millis(20),
        flag_after: 3,
        stuck_retry: Duration::from_millis(20),
    };
    let items = Items::new("outbox_publisher", policy, Some(tell));
    let (bus, _) = tokio::sync::broadcast::channel(16);
    let stop = tokio_util::sync::CancellationToken::new();
    let run = tokio::spawn(Publisher::on(storage, link, bus).run(
        Duration::from_millis(10),
        items.clone(),
        stop.clone(),
    ));
    async fn next(told: &mut tokio::sync::mpsc::Receiver<Notice>) -> Notice {
        tokio::time::timeout(Duration::from_secs(10), told.recv())
            .await
            .expect("told in time")
            .expect("a notice")
    }
    match next(&mut told).await {
        Notice::Flagged { stuck, first } => {
            assert!(first, "flagged once it kept failing");
            assert_eq!(
                (stuck.worker.as_str(), stuck.item.as_str()),
                ("outbox_publisher", "outbox")
            );
            assert_eq!(stuck.failures, 3);
            assert!(stuck.last_error.contains("broker"), "{}", stuck.last_error);
        }
        other => panic!("{other:?}"),
    }
    match next(&mut told).await {
        Notice::Flagged { stuck, first } => assert!(!first && stuck.failures == 4, "retried"),
        other => panic!("{other:?}"),
    }
    stop.cancel();
    run.await.expect("stopped");
    let unpublished: i64 =
        sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
            .fetch_one(&pool)
            .await
            .expect("count");
    assert_eq!(unpublished, 1, "the event is kept for the next try");
    assert_eq!(items.stuck().len(), 1);
}
