//! Price plans, the catalog and the command queue's stores, called directly, on both backends
//! (the store contract suite): one active plan per size class; products by SKU, their doors'
//! stock and what a locker offers; commands queued for a locker, listed, cancelled or expired,
//! and a locker's command history.

use std::time::Duration;

use locker_gateway::cache::Cache;
use locker_gateway::command::{Command, history, queue};
use locker_gateway::order::{Catalog, OrderError};
use locker_gateway::rental::Terms;
use locker_gateway::rental::plan::{self, Plan};
use uuid::Uuid;

use crate::helpers::in_both_modes;
use crate::stores_device::{id, provisioned};

fn plan(size: &str, deposit: i64) -> Plan {
    Plan {
        id: Uuid::now_v7(),
        name: format!("{size} at {deposit}"),
        currency: "EUR".into(),
        size_class: size.into(),
        terms: Terms {
            deposit,
            free_minutes: 5,
            unit_minutes: 60,
            price_per_unit: 200,
            cap_per_24h: 1500,
            max_minutes: 7 * 24 * 60,
            overdue_price_per_unit: 400,
        },
    }
}

in_both_modes! {
    /// A published plan replaces the active one of its size class; the others stand.
    async fn one_plan_is_active_per_size_class(backend: Backend) {
        let storage = backend.storage();
        assert!(plan::for_size(&storage, "M").await.expect("read").is_none());
        let first = plan::publish(&storage, &plan("M", 2000)).await.expect("published");
        plan::publish(&storage, &plan("L", 3000)).await.expect("published");
        let second = plan::publish(&storage, &plan("M", 2500)).await.expect("published");
        assert_ne!(first.id, second.id);
        let m = plan::for_size(&storage, "M").await.expect("read").expect("a plan");
        assert_eq!((m.id, m.terms.deposit), (second.id, 2500));
        assert_eq!(m.terms, second.terms, "the terms read back as written");
        let active = plan::active(&storage).await.expect("read");
        let sizes: Vec<&str> = active.iter().map(|p| p.size_class.as_str()).collect();
        assert_eq!(sizes, vec!["L", "M"], "one each, by size class");
    }
}

in_both_modes! {
    /// Products are unique by SKU and changed in place; a door's stock is replaced as a whole;
    /// a locker offers what its doors hold.
    async fn the_catalog_keeps_products_and_stock(backend: Backend) {
        let storage = backend.storage();
        let catalog = Catalog::new(storage.clone(), Cache::in_process(Duration::ZERO));
        let device = provisioned(&storage, "st-cat-1", 2).await;
        let water = catalog.create("W-1", "Water", 150).await.expect("created");
        let again = catalog.create("W-1", "Water again", 150).await;
        assert!(again.is_err(), "one product per SKU: {again:?}");
        let cola = catalog.create("C-1", "Cola", 250).await.expect("created");
        let cola = catalog.update(cola.id, None, Some(300), None).await.expect("updated");
        assert_eq!((cola.name.as_str(), cola.price), ("Cola", 300));
        let missing = catalog.update(Uuid::now_v7(), None, Some(1), None).await;
        assert!(matches!(missing, Err(OrderError::UnknownProduct(_))), "{missing:?}");
        catalog.update(water.id, None, None, Some(false)).await.expect("withdrawn");
        assert_eq!(catalog.list(false).await.expect("listed").len(), 1);
        assert_eq!(catalog.list(true).await.expect("listed").len(), 2);
        catalog.update(water.id, None, None, Some(true)).await.expect("sold again");
        let lines = catalog
            .set_door_stock(device.as_str(), 1, &[(water.id, 3), (cola.id, 1)])
            .await
            .expect("stocked");
        assert_eq!(lines.len(), 2);
        catalog.set_door_stock(device.as_str(), 1, &[(water.id, 2)]).await.expect("replaced");
        let stock = catalog.stock(device.as_str(), None).await.expect("read");
        assert_eq!(stock.len(), 1, "replaced as a whole");
        assert_eq!((stock[0].door, stock[0].qty), (1, 2));
        assert!(catalog.stock(device.as_str(), Some(2)).await.expect("read").is_empty());
        let offered = catalog
            .availability(device.as_str())
            .await
            .expect("read")
            .expect("a known locker");
        assert_eq!(offered.products.len(), 1);
        assert_eq!((offered.products[0].product_id, offered.products[0].in_stock), (water.id, 2));
        assert!(catalog.availability("st-nobody").await.expect("read").is_none());
    }
}

in_both_modes! {
    /// Commands queued for a locker wait (listed, in its history) until cancelled or expired;
    /// a door the locker does not have is refused at once.
    async fn queued_commands_wait_until_cancelled_or_expired(backend: Backend) {
        let storage = backend.storage();
        let device = provisioned(&storage, "st-q-1", 2).await;
        let refused = queue::enqueue(&storage, &device, &Command::Unlock { door: 3 }, Duration::from_secs(60)).await;
        assert!(refused.is_err(), "no door 3");
        let unknown = queue::enqueue(&storage, &id("st-nobody"), &Command::Unlock { door: 1 }, Duration::from_secs(60)).await;
        assert!(unknown.is_err(), "no such locker");
        let kept = queue::enqueue(&storage, &device, &Command::Unlock { door: 1 }, Duration::from_secs(3600))
            .await
            .expect("queued");
        let cancelled = queue::enqueue(&storage, &device, &Command::Unlock { door: 2 }, Duration::from_secs(3600))
            .await
            .expect("queued");
        let expiring = queue::enqueue(&storage, &device, &Command::Unlock { door: 2 }, Duration::ZERO)
            .await
            .expect("queued");
        let listed = queue::list(&storage, Some(device.as_str()), Some("pending"), 10).await.expect("listed");
        assert_eq!(listed.len(), 3);
        assert!(listed.iter().all(|c| c.queued));
        assert!(queue::cancel(&storage, cancelled).await.expect("cancelled"));
        assert!(!queue::cancel(&storage, cancelled).await.expect("read"), "once");
        assert_eq!(queue::expire(&storage).await.expect("expired"), 1);
        let history = history::list(&storage, device.as_str(), None, None, 10).await.expect("listed");
        let states: Vec<(i64, &str)> = history.iter().map(|c| (c.id, c.state.as_str())).collect();
        assert_eq!(states, vec![(expiring, "expired"), (cancelled, "cancelled"), (kept, "pending")]);
        let page = history::list(&storage, device.as_str(), Some("pending"), Some(expiring), 10).await.expect("listed");
        assert_eq!(page.len(), 1);
        assert!(history::belongs_to(&storage, kept, device.as_str()).await.expect("read"));
        assert!(!history::belongs_to(&storage, kept, "st-q-2").await.expect("read"));
    }
}
