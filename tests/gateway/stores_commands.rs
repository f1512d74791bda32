//! The command store, called directly, on both backends (the store contract suite): a command
//! stored only for a locker online with that door, with the next counter of its session; the
//! first answer wins (a duplicate is counted, a conflict kept aside); a door's result recorded
//! once; a new session makes the earlier session's commands unknown, a report settles them,
//! operators are told about those nobody could settle.

use std::time::Duration;

use firmware_protocol::{Ack, CommandId, CommandResult, DeviceId, RefuseReason};
use locker_gateway::command::store::{self, Arrival, StoreError};
use locker_gateway::command::{CommandState, DoorResult, Origin};
use locker_gateway::storage::Storage;
use serde_json::json;

use crate::helpers::{in_both_modes, on_storage};
use crate::stores_device::{id, provisioned, say_hello};

async fn unlock(storage: &Storage, device: &DeviceId, door: u16) -> store::Reserved {
    store::reserve(
        storage,
        device,
        ("unlock", Some(door), &json!({ "door": door })),
        &Origin::default(),
    )
    .await
    .expect("stored")
}

fn ack(id: i64, result: CommandResult) -> Ack {
    Ack {
        command_id: CommandId::new(id as u64).expect("an id"),
        result,
    }
}

/// Records `ack` in its own unit of work.
async fn answer(storage: &Storage, device: &DeviceId, ack: &Ack) -> Option<CommandState> {
    let mut work = storage.begin().await.expect("begun");
    let recorded = store::record_ack(&mut work, device, ack, Arrival::AsItHappens)
        .await
        .expect("recorded");
    work.commit().await.expect("committed");
    recorded.map(|(_, progress)| progress.state)
}

async fn row(storage: &Storage, id: i64) -> (String, i32, Option<String>) {
    on_storage!(storage, |pool| sqlx::query_as(
        "SELECT state, duplicates, conflict FROM commands WHERE id = $1"
    )
    .bind(id)
    .fetch_one(pool)
    .await
    .expect("a command"))
}

in_both_modes! {
    /// Storing, sending and answering a command.
    async fn the_first_answer_to_a_command_wins(backend: Backend) {
        let storage = backend.storage();
        let device = provisioned(&storage, "st-cmd-1", 2).await;
        assert!(matches!(store::door_check(&storage, &device, Some(2)).await.expect("read"), Ok(())));
        assert!(matches!(
            store::door_check(&storage, &device, Some(3)).await.expect("read"),
            Err(StoreError::NoSuchDoor { door: 3, count: 2 })
        ));
        assert!(matches!(
            store::door_check(&storage, &id("st-nobody"), None).await.expect("read"),
            Err(StoreError::UnknownDevice)
        ));
        let offline = store::reserve(&storage, &device, ("unlock", Some(1), &json!({})), &Origin::default()).await;
        assert!(matches!(offline, Err(StoreError::Offline)), "{offline:?}");
        assert_eq!(say_hello(&storage, &device, 3).await, "new");
        assert_eq!(store::current_session(&storage, &device).await.expect("read"), Some(3));
        let first = unlock(&storage, &device, 1).await;
        let second = unlock(&storage, &device, 2).await;
        assert_eq!((first.session, second.session), (3, 3));
        assert!(second.counter > first.counter, "counters go up");
        let next = store::next_counter(&storage, &device, 3).await.expect("read").expect("a counter");
        assert!(next > second.counter);
        assert!(store::next_counter(&storage, &device, 2).await.expect("read").is_none(), "not an old session's");
        assert!(store::locker_deadline(&storage, &device, Duration::from_secs(5)).await.expect("read").is_some());
        store::mark_sent(&storage, first.id, "{}").await.expect("sent");
        let executed = answer(&storage, &device, &ack(first.id, CommandResult::Executed)).await;
        assert_eq!(executed, Some(CommandState::Executed));
        assert_eq!(answer(&storage, &device, &ack(first.id, CommandResult::Executed)).await, Some(CommandState::Executed));
        let refused = CommandResult::Refused(RefuseReason::Busy);
        assert_eq!(answer(&storage, &device, &ack(first.id, refused)).await, Some(CommandState::Executed), "the first answer stands");
        assert_eq!(row(&storage, first.id).await, ("executed".into(), 1, Some("refused:busy".into())));
        // An answer naming another locker's command, or none, is not recorded.
        let other = provisioned(&storage, "st-cmd-2", 2).await;
        assert_eq!(answer(&storage, &other, &ack(second.id, CommandResult::Executed)).await, None);
        assert_eq!(row(&storage, second.id).await.0, "pending");
        // The door's result is recorded once: the first one stands.
        assert_eq!(store::record_door_result(&storage, first.id, DoorResult::Opened).await.expect("written"), Some(DoorResult::Opened));
        assert_eq!(store::record_door_result(&storage, first.id, DoorResult::Jammed).await.expect("written"), Some(DoorResult::Opened));
        // A refusal is an answer too.
        assert_eq!(answer(&storage, &device, &ack(second.id, CommandResult::Refused(RefuseReason::NoSuchDoor))).await,
            Some(CommandState::Refused(RefuseReason::NoSuchDoor)));
    }
}

in_both_modes! {
    /// A new session leaves the earlier session's commands unknown; the locker's report settles
    /// one; operators are told about the rest; a restart makes every command in flight unknown.
    async fn a_new_session_leaves_earlier_commands_unknown_until_reported(backend: Backend) {
        let storage = backend.storage();
        let device = provisioned(&storage, "st-cmd-3", 2).await;
        assert_eq!(say_hello(&storage, &device, 3).await, "new");
        let reported = unlock(&storage, &device, 1).await;
        let silent = unlock(&storage, &device, 2).await;
        assert!(!store::has_unknown(&storage, &device).await.expect("read"));
        let mut work = storage.begin().await.expect("begun");
        assert_eq!(store::earlier_sessions_unknown(&mut work, &device, 4).await.expect("written"), 2);
        work.commit().await.expect("committed");
        assert!(store::has_unknown(&storage, &device).await.expect("read"));
        let mut work = storage.begin().await.expect("begun");
        let settled = store::settle_from_report(&mut work, &device, &[ack(reported.id, CommandResult::Executed)])
            .await
            .expect("settled");
        work.commit().await.expect("committed");
        assert_eq!(settled.len(), 1);
        assert_eq!(settled[0].0, reported.id);
        assert_eq!(settled[0].1.state, CommandState::Executed);
        // The one the locker does not remember stays unknown, and operators are told (once).
        assert_eq!(row(&storage, silent.id).await.0, "unknown");
        assert_eq!(store::surface_stale_unknown(&storage, Duration::ZERO).await.expect("read"), 0, "told by the report");
        // A command in flight at a restart is unknown; the online locker is to be asked.
        let in_flight = unlock(&storage, &device, 1).await;
        store::mark_sent(&storage, in_flight.id, "{}").await.expect("sent");
        let to_ask = store::orphans_at_start(&storage).await.expect("read");
        assert_eq!(to_ask, vec![(device, 3)]);
        assert_eq!(row(&storage, in_flight.id).await.0, "unknown");
        // Nobody settles it: operators are told once it is old enough, once.
        assert_eq!(store::surface_stale_unknown(&storage, Duration::from_secs(3600)).await.expect("read"), 0);
        assert_eq!(store::surface_stale_unknown(&storage, Duration::ZERO).await.expect("written"), 1);
        assert_eq!(store::surface_stale_unknown(&storage, Duration::ZERO).await.expect("written"), 0, "told once");
        assert!(store::orphans_at_start(&storage).await.expect("read").is_empty(), "nothing left to ask");
        let queried = unlock(&storage, &device, 2).await;
        store::mark_unknown(&storage, queried.id).await.expect("written");
        assert_eq!(row(&storage, queried.id).await.0, "unknown");
    }
}
