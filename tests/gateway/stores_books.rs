//! The audit log, the outbox, the gateway's lease and the workers' stuck list, called directly,
//! on both backends (the store contract suite): what is written is read back in order, an
//! outbox event is published once it is marked and not before, one gateway holds the lease,
//! a stuck item is kept once and announced once.

use std::time::Duration;

use chrono::Utc;
use locker_gateway::audit::{self, Filter, Outcome};
use locker_gateway::events::batch::{Batch, Claim};
use locker_gateway::events::{Append, Event};
use locker_gateway::lease::{self, BrokerKind, Identity, Lease, LeaseError};
use locker_gateway::worker::{Stuck, stuck};

use crate::helpers::in_both_modes;

in_both_modes! {
    /// The audit log keeps what was done, newest first, and filters it.
    async fn the_audit_log_is_read_back_newest_first(backend: Backend) {
        let storage = backend.storage();
        for (action, outcome) in [("device.revoke", Outcome::Ok), ("device.unlock", Outcome::Failed), ("device.revoke", Outcome::Refused)] {
            audit::record(&storage, None, action, Some("lk-1"), outcome, serde_json::json!({ "why": action }))
                .await
                .expect("recorded");
        }
        let all = audit::list(&storage, &Filter { limit: 10, ..Filter::default() }).await.expect("listed");
        assert_eq!(all.len(), 3);
        assert!(all[0].id > all[1].id && all[1].id > all[2].id, "newest first");
        assert_eq!(all[0].outcome, "refused");
        let revokes = audit::list(&storage, &Filter { action: Some("device.revoke".into()), limit: 10, ..Filter::default() })
            .await
            .expect("listed");
        assert_eq!(revokes.len(), 2);
        let failed = audit::list(&storage, &Filter { outcome: Some("failed".into()), limit: 10, ..Filter::default() })
            .await
            .expect("listed");
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].detail["why"], "device.unlock");
        let page = audit::list(&storage, &Filter { before: Some(all[0].id), limit: 1, ..Filter::default() })
            .await
            .expect("listed");
        assert_eq!(page.len(), 1);
        assert_eq!(page[0].id, all[1].id);
    }
}

in_both_modes! {
    /// Events appended in a unit of work are pending only once it commits (a rolled back one
    /// leaves none), claimed oldest first, and published once marked; a batch dropped unmarked
    /// leaves them pending.
    async fn outbox_events_are_claimed_in_order_and_published_once(backend: Backend) {
        let storage = backend.storage();
        let mut work = storage.begin().await.expect("begun");
        for n in 0..3 {
            work.append(&Event::new("test.happened", "test", "a", serde_json::json!({ "n": n })))
                .await
                .expect("appended");
        }
        work.commit().await.expect("committed");
        let mut work = storage.begin().await.expect("begun");
        work.append(&Event::new("test.rolled_back", "test", "b", serde_json::json!({})))
            .await
            .expect("appended");
        drop(work);
        let claim = |limit| Batch::claim(&storage, limit);
        let Claim::Batch(batch) = claim(2).await.expect("claimed") else {
            panic!("events are pending");
        };
        let seen: Vec<i64> = batch.events().iter().map(|e| e.data["n"].as_i64().unwrap_or(-1)).collect();
        assert_eq!(seen, vec![0, 1], "oldest first, at most the limit");
        drop(batch); // not marked: still pending
        // A dropped batch's transaction is rolled back when its connection is next taken from
        // the pool, and its publisher lock (PostgreSQL) goes with it: until then this claim may
        // find another publisher, and tries again.
        let mut again = claim(10).await.expect("claimed");
        for _ in 0..100 {
            if !matches!(again, Claim::NotLeader) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            again = claim(10).await.expect("claimed");
        }
        let Claim::Batch(batch) = again else {
            panic!("still pending");
        };
        assert_eq!(batch.events().len(), 3, "the rolled back event was never pending");
        let published = batch.published().await.expect("marked");
        assert_eq!(published.len(), 3);
        assert!(matches!(claim(10).await.expect("claimed"), Claim::Empty));
    }
}

in_both_modes! {
    /// A gateway holds its lease while it renews it: another with its id, or one beside an
    /// exclusive gateway, is refused; gateways with their own ids on an external broker run side
    /// by side; released, the row shows it stopped and the id is free again; the first one finds
    /// its row taken.
    async fn gateways_hold_their_leases(backend: Backend) {
        let storage = backend.storage();
        let length = Duration::from_millis(900);
        let me = |id: &str, process: &str, exclusive: bool| Identity {
            id: id.into(),
            process: process.into(),
            broker: if exclusive { BrokerKind::Embedded } else { BrokerKind::External },
            exclusive,
        };
        let first = Lease::acquire(&storage, me("gw-1", "p1", false), length).await.expect("acquired");
        assert!(first.renew().await.expect("renewed"));
        let (stop, lost) = (tokio_util::sync::CancellationToken::new(), tokio_util::sync::CancellationToken::new());
        let kept = tokio::spawn(first.clone().keep(stop.clone(), lost.clone()));
        let same_id = Lease::acquire(&storage, me("gw-1", "p2", false), length).await;
        assert!(matches!(same_id, Err(LeaseError::SameId { ref process, .. }) if process == "p1"), "{same_id:?}");
        let alone = Lease::acquire(&storage, me("gw-9", "p9", true), length).await;
        assert!(matches!(alone, Err(LeaseError::Alone { who: "this one", .. })), "{alone:?}");
        let second = Lease::acquire(&storage, me("gw-2", "p2", false), length).await.expect("beside gw-1");
        assert!(second.held().await.expect("read"));
        let ids: Vec<(String, &str)> = lease::members(&storage).await.expect("listed").iter()
            .map(|m| (m.id.clone(), m.state(Utc::now()))).collect();
        assert_eq!(ids, [("gw-1".to_owned(), "live"), ("gw-2".to_owned(), "live")]);
        stop.cancel();
        kept.await.expect("stopped");
        assert!(!lost.is_cancelled());
        first.release().await;
        second.release().await;
        let states: Vec<&str> = lease::members(&storage).await.expect("listed").iter().map(|m| m.state(Utc::now())).collect();
        assert_eq!(states, ["stopped", "stopped"]);
        let again = Lease::acquire(&storage, me("gw-1", "p3", true), length).await.expect("taken after the release");
        assert!(again.renew().await.expect("renewed"));
        assert!(!first.renew().await.expect("read"), "the first process lost it");
        assert!(!first.held().await.expect("read"));
    }
}

in_both_modes! {
    /// A stuck item is kept once per worker and item, its failures updated, read back.
    async fn stuck_items_are_kept_once(backend: Backend) {
        let storage = backend.storage();
        let item = |failures| Stuck {
            worker: "rental_reconciler".into(),
            item: "rental 1".into(),
            failures,
            last_error: format!("failed {failures} times"),
            first_failed_at: Utc::now(),
            last_failed_at: Utc::now(),
        };
        for (failures, announce) in [(3, true), (4, false)] {
            let mut work = storage.begin().await.expect("begun");
            stuck::flag_in(&mut work, &item(failures), announce).await.expect("flagged");
            work.commit().await.expect("committed");
        }
        let listed = stuck::list(&storage).await.expect("listed");
        assert_eq!(listed.len(), 1, "kept once");
        assert_eq!(listed[0].failures, 4);
        assert_eq!(listed[0].last_error, "failed 4 times");
        let Claim::Batch(batch) = Batch::claim(&storage, 10).await.expect("claimed") else {
            panic!("its announcement is pending");
        };
        let announced: Vec<&Event> = batch
            .events()
            .iter()
            .filter(|e| e.event_type == "worker.item_stuck")
            .collect();
        assert_eq!(announced.len(), 1, "announced once");
    }
}

in_both_modes! {
    /// What other processes announce: on PostgreSQL a NOTIFY's payload (after "look at
    /// everything" at connection); on SQLite "look at everything" every tick.
    async fn announcements_reach_the_watchers_on_either_backend(backend: Backend) {
        use locker_gateway::storage::{Notice, Storage};
        let storage = backend.storage();
        storage.ping().await.expect("the storage answers");
        let (tx, mut rx) = tokio::sync::mpsc::channel(16);
        let listening = tokio::spawn({
            let storage = storage.clone();
            async move { storage.notices("test_channel", Duration::from_millis(50), tx).await }
        });
        async fn next(rx: &mut tokio::sync::mpsc::Receiver<Notice>) -> Notice {
            tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.expect("in time").expect("a notice")
        }
        assert_eq!(next(&mut rx).await, Notice::Listening, "first: look at everything");
        match &storage {
            Storage::Postgres(pool) => {
                sqlx::query("SELECT pg_notify('test_channel', 'lk-9')").execute(pool).await.expect("notified");
                assert_eq!(next(&mut rx).await, Notice::Payload("lk-9".into()));
            }
            Storage::Sqlite(_) => {
                assert_eq!(next(&mut rx).await, Notice::Listening, "again at the next tick");
            }
        }
        listening.abort();
    }
}
