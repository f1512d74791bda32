//! The command store, called directly, on both backends (the store contract suite): a command
//! stored only for a locker online with that door, with the next counter of its session; the
//! first answer wins (a duplicate is counted, a conflict kept aside); a door's result recorded
//! once; a new session makes the earlier session's commands unknown, a report settles them,
//! operators are told about those nobody could settle.

use std::time::Duration;

use firmware_protocol::{Ack, CommandId, CommandResult, DeviceId, RefuseReason};
use locker_gateway::command::store::{self, Arrival, Position, StoreError};
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
        None,
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

/// Uplink counters for the answers the tests record, in order.
static NEXT_COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(10);

/// Records `ack` in its own unit of work, as the next uplink of the device's session, everything
/// before it recorded.
async fn answer(storage: &Storage, device: &DeviceId, ack: &Ack) -> Option<CommandState> {
    let session: Option<i64> = on_storage!(storage, |pool| sqlx::query_scalar(
        "SELECT session FROM devices WHERE id = $1"
    )
    .bind(device.as_str())
    .fetch_one(pool)
    .await
    .expect("a device"));
    let counter = NEXT_COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let at = Position::in_order(session.unwrap_or(1) as u32, counter);
    answer_at(storage, device, ack, at).await
}

/// Records `ack` at `at` in its own unit of work.
async fn answer_at(
    storage: &Storage,
    device: &DeviceId,
    ack: &Ack,
    at: Position,
) -> Option<CommandState> {
    let mut work = storage.begin().await.expect("begun");
    let recorded = store::record_ack(&mut work, device, ack, Arrival::AsItHappens, at)
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
        let offline = store::reserve(&storage, &device, ("unlock", Some(1), &json!({})), &Origin::default(), None).await;
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
        let to_ask = store::orphans_at_start(&storage, "gw-test").await.expect("read");
        assert_eq!(to_ask, vec![(device, 3)]);
        assert_eq!(row(&storage, in_flight.id).await.0, "unknown");
        // Nobody settles it: operators are told once it is old enough, once.
        assert_eq!(store::surface_stale_unknown(&storage, Duration::from_secs(3600)).await.expect("read"), 0);
        assert_eq!(store::surface_stale_unknown(&storage, Duration::ZERO).await.expect("written"), 1);
        assert_eq!(store::surface_stale_unknown(&storage, Duration::ZERO).await.expect("written"), 0, "told once");
        assert!(store::orphans_at_start(&storage, "gw-test").await.expect("read").is_empty(), "nothing left to ask");
        let queried = unlock(&storage, &device, 2).await;
        store::mark_unknown(&storage, queried.id).await.expect("written");
        assert_eq!(row(&storage, queried.id).await.0, "unknown");
    }
}

in_both_modes! {
    /// What a door did after an unlock, as the locker says it: an opening naming the command, a
    /// jam of its door, a report of the doors right after the answer (open already); each
    /// recorded once, the first one standing. Poll counters come in blocks of the session.
    async fn door_results_are_recorded_once_from_what_the_locker_says(backend: Backend) {
        use firmware_protocol::{DoorSensor, DoorStatus};
        let storage = backend.storage();
        let device = provisioned(&storage, "st-cmd-4", 3).await;
        assert_eq!(say_hello(&storage, &device, 2).await, "new");
        let opened = unlock(&storage, &device, 1).await;
        let jammed = unlock(&storage, &device, 2).await;
        let open_before = unlock(&storage, &device, 3).await;
        for command in [opened.id, jammed.id, open_before.id] {
            store::mark_sent(&storage, command, "{}").await.expect("sent");
            assert_eq!(answer(&storage, &device, &ack(command, CommandResult::Executed)).await, Some(CommandState::Executed));
        }
        let door_result = |id: i64| {
            let storage = storage.clone();
            async move {
                on_storage!(&storage, |pool| sqlx::query_scalar::<_, Option<String>>(
                    "SELECT door_result FROM commands WHERE id = $1"
                )
                .bind(id)
                .fetch_one(pool)
                .await
                .expect("a command"))
            }
        };
        let mut work = storage.begin().await.expect("begun");
        let first = store::record_opened(&mut work, &device, opened.id).await.expect("written");
        let jam = store::record_jam(&mut work, &device, 2).await.expect("written");
        let doors = [DoorSensor::Closed, DoorSensor::Closed, DoorSensor::Open].map(|sensor| DoorStatus {
            sensor,
            locked: sensor != DoorSensor::Open,
            occupied: None,
        });
        let at = Position::in_order(2, u32::MAX);
        let reported = store::open_before_report(&mut work, &device, &doors, at).await.expect("written");
        work.commit().await.expect("committed");
        assert_eq!(first.map(|(id, p)| (id, p.door)), Some((opened.id, Some(DoorResult::Opened))));
        assert_eq!(jam.map(|(id, p)| (id, p.door)), Some((jammed.id, Some(DoorResult::Jammed))));
        assert_eq!(reported.len(), 1);
        assert_eq!((reported[0].0, reported[0].1.door), (open_before.id, Some(DoorResult::AlreadyOpen)));
        // Later words change nothing: the first one stands.
        let mut work = storage.begin().await.expect("begun");
        store::record_opened(&mut work, &device, jammed.id).await.expect("written");
        assert!(store::record_jam(&mut work, &device, 1).await.expect("written").is_none(), "no unlock of door 1 waits for its result");
        work.commit().await.expect("committed");
        assert_eq!(door_result(opened.id).await.as_deref(), Some("opened"));
        assert_eq!(door_result(jammed.id).await.as_deref(), Some("jammed"));
        assert_eq!(door_result(open_before.id).await.as_deref(), Some("already_open"));
        // Protocol version 2: a state report's door results, for a door whose event was lost
        // (recorded), and for one already known (the first word stands).
        let lost = unlock(&storage, &device, 1).await;
        store::mark_sent(&storage, lost.id, "{}").await.expect("sent");
        let reported = |id: i64, door| firmware_protocol::UnlockDoor {
            command_id: firmware_protocol::CommandId::new(id as u64).expect("id"),
            door,
        };
        let mut work = storage.begin().await.expect("begun");
        let results = [
            reported(lost.id, firmware_protocol::DoorOutcome::Opened),
            reported(jammed.id, firmware_protocol::DoorOutcome::Opened),
        ];
        let recorded = store::record_door_results(&mut work, &device, &results).await.expect("written");
        work.commit().await.expect("committed");
        assert_eq!(recorded.len(), 1, "{recorded:?}");
        assert_eq!((recorded[0].0, recorded[0].1.door), (lost.id, Some(DoorResult::Opened)));
        assert_eq!(door_result(lost.id).await.as_deref(), Some("opened"));
        assert_eq!(door_result(jammed.id).await.as_deref(), Some("jammed"));
        // A block of poll counters: all above what commands took, only in the current session.
        let block = store::reserve_counters(&storage, &device, 2, 16).await.expect("read").expect("a block");
        assert!(block > open_before.counter);
        assert_eq!(store::reserve_counters(&storage, &device, 2, 1).await.expect("read"), Some(block + 16));
        assert!(store::reserve_counters(&storage, &device, 1, 16).await.expect("read").is_none());
    }
}

in_both_modes! {
    /// A sale's unlock recorded after the fact (its request died): the first unlock sent with
    /// the sale's reason is attached, and asked about if it was still in flight; none sent, and
    /// nothing is attached. A failed unlock's marks on its door.
    async fn a_sales_unlock_is_attached_and_its_door_marked(backend: Backend) {
        use locker_gateway::unlock::{self, DoorAfter};
        let storage = backend.storage();
        let device = provisioned(&storage, "st-cmd-5", 2).await;
        assert_eq!(say_hello(&storage, &device, 2).await, "new");
        let sale = uuid::Uuid::now_v7();
        let nothing = unlock::attach_sent(&storage, &format!("rental {sale}"), "UPDATE commands SET reason = reason WHERE $1 IS NOT NULL AND id = $2", sale)
            .await
            .expect("read");
        assert!(!nothing, "no unlock was sent for it");
        let sent = store::reserve(
            &storage,
            &device,
            ("unlock", Some(1), &json!({ "door": 1 })),
            &Origin { requested_by: None, reason: Some(format!("rental {sale}")) },
            None,
        )
        .await
        .expect("stored");
        store::mark_sent(&storage, sent.id, "{}").await.expect("sent");
        // The statement that records it on the sale: here, a command's own reason stands in.
        let attached = unlock::attach_sent(&storage, &format!("rental {sale}"), "UPDATE commands SET conflict = 'attached' WHERE $1 IS NOT NULL AND id = $2", sale)
            .await
            .expect("written");
        assert!(attached);
        assert_eq!(row(&storage, sent.id).await, ("unknown".into(), 0, Some("attached".into())), "in flight: the locker is to be asked");
        unlock::attach(&storage, "UPDATE commands SET conflict = 'again' WHERE $1 IS NOT NULL AND id = $2", sale, sent.id)
            .await
            .expect("written");
        assert_eq!(row(&storage, sent.id).await.2.as_deref(), Some("again"));
        // The marks of a failed unlock, and an opening that ends a run of jams.
        let marks = |door: i32| {
            let storage = storage.clone();
            async move {
                on_storage!(&storage, |pool| sqlx::query_as::<_, (bool, i32, bool)>(
                    "SELECT suspect, jams_in_row, out_of_service FROM doors WHERE device_id = 'st-cmd-5' AND door = $1"
                )
                .bind(door)
                .fetch_one(pool)
                .await
                .expect("a door"))
            }
        };
        let mut work = storage.begin().await.expect("begun");
        unlock::mark_door(&mut work, &device, 1, DoorAfter::Free, 3).await.expect("written");
        unlock::mark_door(&mut work, &device, 1, DoorAfter::Jammed, 3).await.expect("written");
        unlock::mark_door(&mut work, &device, 2, DoorAfter::Suspect, 3).await.expect("written");
        work.commit().await.expect("committed");
        assert_eq!(marks(1).await, (true, 1, false));
        assert_eq!(marks(2).await, (true, 0, false));
        let mut work = storage.begin().await.expect("begun");
        unlock::mark_opened(&mut work, &device, 1).await.expect("written");
        unlock::mark_door(&mut work, &device, 2, DoorAfter::OutOfService, 3).await.expect("written");
        work.commit().await.expect("committed");
        assert_eq!(marks(1).await.1, 0, "the run of jams is over");
        assert!(marks(2).await.2);
    }
}

in_both_modes! {
    /// Answers recorded out of order (several gateways record one locker's uplinks): an ack
    /// recorded after a later report of its door does not take that report for the door as the
    /// pulse found it; a report of an open door counts only when nothing the locker sent between
    /// the ack and the report is still on its way.
    async fn door_reports_count_only_in_the_lockers_order(backend: Backend) {
        use firmware_protocol::{DoorSensor, DoorStatus, Heartbeat, Uplink};
        use locker_gateway::device::presence;
        let storage = backend.storage();
        let device = provisioned(&storage, "st-cmd-order", 2).await;
        assert_eq!(say_hello(&storage, &device, 4).await, "new");
        let command = unlock(&storage, &device, 1).await;
        store::mark_sent(&storage, command.id, "{}").await.expect("sent");
        let open = [DoorSensor::Open, DoorSensor::Closed].map(|sensor| DoorStatus {
            sensor,
            locked: sensor != DoorSensor::Open,
            occupied: None,
        });
        // Heartbeat 5 (door 1 open, after the pulse) is recorded before ack 3.
        let beat = Uplink::Heartbeat(Heartbeat { uptime_ms: 9000, doors: open.to_vec(), signal: None });
        let mut work = storage.begin().await.expect("begun");
        presence::uplink(&mut work, &device, 4, 5, &beat, chrono::Utc::now()).await.expect("recorded");
        work.commit().await.expect("committed");
        let at = Position { session: 4, counter: 3, gap: 2 };
        assert_eq!(answer_at(&storage, &device, &ack(command.id, CommandResult::Executed), at).await, Some(CommandState::Executed));
        let door_result = || async {
            on_storage!(&storage, |pool| sqlx::query_scalar::<_, Option<String>>(
                "SELECT door_result FROM commands WHERE id = $1"
            )
            .bind(command.id)
            .fetch_one(pool)
            .await
            .expect("a command"))
        };
        assert_eq!(door_result().await, None, "the open door was reported after the pulse");
        // A report at counter 6 while counter 4 (the door's event, perhaps) is on its way: nothing.
        let mut work = storage.begin().await.expect("begun");
        let early = Position { session: 4, counter: 6, gap: 4 };
        let reported = store::open_before_report(&mut work, &device, &open, early).await.expect("written");
        assert!(reported.is_empty(), "{reported:?}");
        // Everything between the ack and the report recorded: the door was open already.
        let complete = Position { session: 4, counter: 7, gap: 0 };
        let reported = store::open_before_report(&mut work, &device, &open, complete).await.expect("written");
        work.commit().await.expect("committed");
        assert_eq!(reported.iter().map(|(id, p)| (*id, p.door)).collect::<Vec<_>>(), [(command.id, Some(DoorResult::AlreadyOpen))]);
        assert_eq!(door_result().await.as_deref(), Some("already_open"));
    }
}

in_both_modes! {
    /// Commands in flight belong to the gateway that sent them: at a gateway's start only its own
    /// previous run's, ownerless ones and those of gateways whose lease expired are marked unknown
    /// (to be asked about), never a live gateway's; once that one's lease ends, the others' next
    /// housekeeping takes its commands over.
    async fn only_an_expired_gateways_commands_in_flight_are_taken_over(backend: Backend) {
        use locker_gateway::lease::{BrokerKind, Identity, Lease};
        let storage = backend.storage();
        let device = provisioned(&storage, "st-cmd-owned", 4).await;
        assert_eq!(say_hello(&storage, &device, 9).await, "new");
        let identity = |id: &str| Identity { id: id.into(), process: format!("{id} process"), broker: BrokerKind::External, exclusive: false };
        let length = Duration::from_secs(30);
        let live = Lease::acquire(&storage, identity("gw-live"), length).await.expect("live");
        let dead = Lease::acquire(&storage, identity("gw-dead"), length).await.expect("taken");
        dead.release().await; // its lease is over
        let mut sent = Vec::new();
        for (door, gateway) in [(1, Some("gw-live")), (2, Some("gw-dead")), (3, Some("gw-me")), (4, None)] {
            let command = store::reserve(&storage, &device, ("unlock", Some(door), &json!({ "door": door })), &Origin::default(), gateway)
                .await
                .expect("stored");
            store::mark_sent(&storage, command.id, "{}").await.expect("sent");
            sent.push(command.id);
        }
        let state = |id: i64| {
            let storage = storage.clone();
            async move {
                on_storage!(&storage, |pool| sqlx::query_scalar::<_, String>("SELECT state FROM commands WHERE id = $1")
                    .bind(id)
                    .fetch_one(pool)
                    .await
                    .expect("a command"))
            }
        };
        let to_ask = store::orphans_at_start(&storage, "gw-me").await.expect("written");
        assert_eq!(to_ask.iter().map(|(d, s)| (*d, *s)).collect::<Vec<_>>(), [(device, 9)]);
        let states = [state(sent[0]).await, state(sent[1]).await, state(sent[2]).await, state(sent[3]).await];
        assert_eq!(states, ["sent", "unknown", "unknown", "unknown"], "the live gateway's command is left to it");
        assert_eq!(store::orphans_of_expired_gateways(&storage, "gw-me").await.expect("written"), 0);
        assert_eq!(state(sent[0]).await, "sent");
        live.release().await;
        assert_eq!(store::orphans_of_expired_gateways(&storage, "gw-me").await.expect("written"), 1);
        assert_eq!(state(sent[0]).await, "unknown", "taken over once its gateway's lease ended");
    }
}
