//! The outbox publisher on either storage: events written with a change are delivered once
//! published, in order, and never published twice.

use locker_gateway::bus::BusTx;
use locker_gateway::events::{Outcome, Publisher};
use locker_gateway::money::Currency;
use locker_gateway::storage::Storage;
use locker_gateway::wallet::Wallets;
use sqlx::PgPool;

/// A broker client never connected (its event loop is kept but not run): publishing only queues,
/// with room for the test's events.
fn unconnected_link() -> (BusTx, rumqttc::EventLoop) {
    let options = rumqttc::MqttOptions::new("outbox-test", "127.0.0.1", 1);
    let (client, eventloop) = rumqttc::AsyncClient::new(options, 64);
    (BusTx::External(client), eventloop)
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
