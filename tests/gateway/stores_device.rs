//! The device module's stores, called directly, on both backends (the store contract suite):
//! the registry (provision, rotate, retire, revoke, credentials, lists), presence (hello, uplinks
//! fenced by session and counter, last wills, going offline, the sweep, the replay guard read
//! back), doors' marks, downlink counters, door states read and missed, and the directory.

use std::time::Duration;

use chrono::Utc;
use firmware_protocol::{
    DeviceId, DoorSensor, DoorStatus, Header, Heartbeat, Hello, SessionChange, Uplink,
};
use locker_gateway::device::presence::{self, HelloRecorded, OfflineReason, Uplinked};
use locker_gateway::device::{
    DeviceRegistry, NewDevice, counters, directory, door_events, doors, lines,
};
use locker_gateway::storage::Storage;

use crate::helpers::{in_both_modes, on_storage};

pub(crate) fn id(name: &str) -> DeviceId {
    DeviceId::new(name).expect("a device id")
}

pub(crate) async fn provisioned(storage: &Storage, name: &str, doors: u16) -> DeviceId {
    let registry = DeviceRegistry::new(storage.clone());
    registry
        .provision(NewDevice {
            id: id(name),
            model: "L12".into(),
            door_count: doors,
        })
        .await
        .expect("provisioned");
    id(name)
}

fn hello(session: u32, doors: u16) -> Hello {
    Hello {
        protocol_version: firmware_protocol::PROTOCOL_VERSION,
        firmware: "1.0.0".into(),
        serial_no: "SN1".into(),
        door_count: doors,
        session,
        uptime_ms: 1000,
        max_chunk: None,
    }
}

/// Records a hello (counter 1) and commits it; what the store said.
pub(crate) async fn say_hello(storage: &Storage, device: &DeviceId, session: u32) -> &'static str {
    hello_at(storage, device, session, 1).await
}

/// Records a hello with uplink counter `counter` and commits it; what the store said.
async fn hello_at(
    storage: &Storage,
    device: &DeviceId,
    session: u32,
    counter: u32,
) -> &'static str {
    match presence::hello(storage, device, &hello(session, 2), counter, Utc::now())
        .await
        .expect("recorded")
    {
        HelloRecorded::New(work) => {
            work.commit().await.expect("committed");
            "new"
        }
        HelloRecorded::Again => "again",
        HelloRecorded::Refused => "refused",
    }
}

fn heartbeat(sensors: [DoorSensor; 2]) -> Uplink {
    Uplink::Heartbeat(Heartbeat {
        uptime_ms: 5000,
        doors: sensors
            .into_iter()
            .map(|sensor| DoorStatus {
                sensor,
                locked: sensor != DoorSensor::Open,
                occupied: None,
            })
            .collect(),
        signal: None,
    })
}

/// Records `message` as uplink `counter` of `session` in its own unit of work.
async fn uplink(
    storage: &Storage,
    device: &DeviceId,
    (session, counter): (u32, u32),
    message: &Uplink,
) -> Uplinked {
    let mut work = storage.begin().await.expect("begun");
    let result = presence::uplink(&mut work, device, session, counter, message, Utc::now())
        .await
        .expect("recorded");
    work.commit().await.expect("committed");
    result
}

async fn online(storage: &Storage, device: &DeviceId) -> bool {
    on_storage!(storage, |pool| sqlx::query_scalar(
        "SELECT online FROM devices WHERE id = $1"
    )
    .bind(device.as_str())
    .fetch_one(pool)
    .await
    .expect("a device"))
}

async fn door(storage: &Storage, device: &DeviceId, door: i32) -> (String, bool, i32, bool) {
    on_storage!(storage, |pool| sqlx::query_as(
        "SELECT sensor, suspect, jams_in_row, out_of_service FROM doors
         WHERE device_id = $1 AND door = $2"
    )
    .bind(device.as_str())
    .bind(door)
    .fetch_one(pool)
    .await
    .expect("a door"))
}

in_both_modes! {
    /// The registry: credentials after provisioning, a rotation keeps the previous secret for
    /// its grace period until it is retired, a revocation refuses everything and is listed.
    async fn the_registry_keeps_credentials_rotations_and_revocations(backend: Backend) {
        let storage = backend.storage();
        let registry = DeviceRegistry::new(storage.clone());
        let first = provisioned(&storage, "st-reg-1", 4).await;
        let batch = registry
            .provision_batch(vec![
                NewDevice { id: id("st-reg-2"), model: "L4".into(), door_count: 4 },
                NewDevice { id: id("st-reg-3"), model: "L4".into(), door_count: 4 },
            ])
            .await
            .expect("a batch");
        assert_eq!(batch.len(), 2);
        let again = registry
            .provision(NewDevice { id: first, model: "L12".into(), door_count: 4 })
            .await;
        assert!(again.is_err(), "an id is provisioned once");
        let credentials = registry.credentials(&first).await.expect("read").expect("known");
        assert!(credentials.previous.is_none() && !credentials.revoked);
        let rotated = registry.rotate(first, Duration::from_secs(600)).await.expect("rotated");
        let credentials = registry.credentials(&first).await.expect("read").expect("known");
        assert_eq!(credentials.current.tag_key, rotated.secret.tag_key());
        assert!(credentials.previous.is_some(), "the old secret works through its grace");
        assert_eq!(credentials.tag_keys().count(), 2);
        registry.retire_previous_secret(first).await.expect("retired");
        let credentials = registry.credentials(&first).await.expect("read").expect("known");
        assert!(credentials.previous.is_none());
        assert!(!locker_gateway::device::revocation::is_revoked(&storage, &first).await.expect("read"));
        registry.revoke(first).await.expect("revoked");
        assert!(registry.credentials(&first).await.expect("read").expect("known").revoked);
        assert!(locker_gateway::device::revocation::is_revoked(&storage, &first).await.expect("read"));
        assert_eq!(
            locker_gateway::device::revocation::revoked(&storage).await.expect("read"),
            vec![first]
        );
        assert!(registry.credentials(&id("st-nobody")).await.expect("read").is_none());
        let listed = registry.list().await.expect("listed");
        assert_eq!(listed.len(), 3);
        assert!(listed.iter().any(|d| d.id == "st-reg-1" && d.revoked_at.is_some()));
    }
}

in_both_modes! {
    /// The anti-replay window: uplinks of one session recorded out of order (two gateways) are
    /// each taken once; a counter seen before, or 64 or more below the highest, is refused; a door
    /// state from an older counter never overwrites one from a newer counter; the guard read back
    /// knows the same.
    async fn uplinks_are_taken_once_in_any_order_within_the_window(backend: Backend) {
        let storage = backend.storage();
        let device = provisioned(&storage, "st-window-1", 2).await;
        assert_eq!(say_hello(&storage, &device, 7).await, "new");
        let beat = |first| heartbeat([first, DoorSensor::Closed]);
        let fresh = |u: Uplinked| matches!(u, Uplinked::Fresh { .. });
        assert!(fresh(uplink(&storage, &device, (7, 5), &beat(DoorSensor::Open)).await));
        // Counter 3 arrives after 5 (it went through the other gateway): taken, but its door
        // state is older than counter 5's and does not overwrite it.
        assert!(fresh(uplink(&storage, &device, (7, 3), &beat(DoorSensor::Closed)).await), "3 after 5");
        assert_eq!(door(&storage, &device, 1).await.0, "open", "counter 3 does not undo counter 5");
        assert!(fresh(uplink(&storage, &device, (7, 4), &beat(DoorSensor::Closed)).await), "4 after 3");
        assert!(fresh(uplink(&storage, &device, (7, 2), &beat(DoorSensor::Closed)).await), "2 after 4");
        for counter in [1, 2, 3, 4, 5] {
            assert_eq!(uplink(&storage, &device, (7, counter), &beat(DoorSensor::Closed)).await, Uplinked::Fenced, "{counter} again");
        }
        assert!(fresh(uplink(&storage, &device, (7, 70), &beat(DoorSensor::Closed)).await));
        assert_eq!(door(&storage, &device, 1).await.0, "closed", "counter 70 is the newest");
        assert_eq!(uplink(&storage, &device, (7, 6), &beat(DoorSensor::Open)).await, Uplinked::Fenced, "64 below the highest");
        assert!(fresh(uplink(&storage, &device, (7, 7), &beat(DoorSensor::Open)).await), "63 below the highest");
        assert_eq!(door(&storage, &device, 1).await.0, "closed");
        let mut guard = presence::load_guard(&storage, &device).await.expect("a guard");
        let header = |counter| Header {
            direction: firmware_protocol::Direction::Up,
            device_id: device,
            session: 7,
            counter,
        };
        for seen in [7, 70, 6] {
            assert!(guard.accept(&header(seen), false).is_err(), "{seen} is known");
        }
        assert_eq!(guard.accept(&header(8), false), Ok(SessionChange::Same), "8 was never seen");
        assert_eq!(guard.accept(&header(71), false), Ok(SessionChange::Same));
    }
}

in_both_modes! {
    /// Presence: a hello opens a session (a second time it is announced again, an older one is
    /// refused), uplinks move the counter on and are fenced when old or of another session, a
    /// last will or missed polls end only the current session, the sweep takes the silent.
    async fn presence_is_fenced_by_session_and_counter(backend: Backend) {
        let storage = backend.storage();
        let device = provisioned(&storage, "st-pres-1", 2).await;
        assert_eq!(say_hello(&storage, &id("st-nobody"), 5).await, "refused");
        assert_eq!(say_hello(&storage, &device, 5).await, "new");
        assert_eq!(say_hello(&storage, &device, 5).await, "refused", "the same hello twice is a replay");
        assert_eq!(hello_at(&storage, &device, 5, 2).await, "again", "announced again, later");
        assert!(online(&storage, &device).await);
        let fresh = uplink(&storage, &device, (5, 3), &heartbeat([DoorSensor::Open, DoorSensor::Closed])).await;
        assert!(matches!(fresh, Uplinked::Fresh { raised: None, .. }));
        assert_eq!(door(&storage, &device, 1).await.0, "open");
        assert_eq!(door(&storage, &device, 2).await.0, "closed");
        let replayed = uplink(&storage, &device, (5, 3), &heartbeat([DoorSensor::Closed; 2])).await;
        assert_eq!(replayed, Uplinked::Fenced, "a counter is accepted once");
        let other = uplink(&storage, &device, (4, 9), &heartbeat([DoorSensor::Closed; 2])).await;
        assert_eq!(other, Uplinked::Fenced, "another session's uplink is not this one's");
        assert_eq!(door(&storage, &device, 1).await.0, "open", "nothing written when fenced");
        // The replay guard read back: session 5, counter 3 seen.
        let mut guard = presence::load_guard(&storage, &device).await.expect("a guard");
        let header = |session, counter| Header {
            direction: firmware_protocol::Direction::Up,
            device_id: device,
            session,
            counter,
        };
        assert!(guard.accept(&header(5, 3), false).is_err(), "seen");
        assert_eq!(guard.accept(&header(5, 4), false), Ok(SessionChange::Same));
        // An older session's hello is a replay.
        assert_eq!(say_hello(&storage, &device, 6).await, "new");
        assert_eq!(say_hello(&storage, &device, 5).await, "refused");
        // A last will of an older session changes nothing; of the current one, it is offline.
        assert!(!presence::last_will(&storage, &device, 5).await.expect("read"));
        assert!(online(&storage, &device).await);
        assert!(presence::last_will(&storage, &device, 6).await.expect("read"));
        assert!(!online(&storage, &device).await);
        // Back by an uplink of the current session; offline again after missed polls.
        assert!(matches!(
            uplink(&storage, &device, (6, 2), &heartbeat([DoorSensor::Closed; 2])).await,
            Uplinked::Fresh { .. }
        ));
        assert!(online(&storage, &device).await, "an uplink brings it back");
        let gone = presence::went_offline(&storage, &device, 6, OfflineReason::NoAnswer).await;
        assert!(gone.expect("written"));
        assert!(!presence::went_offline(&storage, &device, 6, OfflineReason::NoAnswer).await.expect("read"));
        // The sweep takes what has been silent too long, and only that.
        let quiet = provisioned(&storage, "st-pres-2", 2).await;
        assert_eq!(say_hello(&storage, &quiet, 1).await, "new");
        assert_eq!(presence::sweep(&storage, Duration::from_secs(3600)).await.expect("swept"), 0);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(presence::sweep(&storage, Duration::from_millis(1)).await.expect("swept"), 1);
        assert!(!online(&storage, &quiet).await);
    }
}

in_both_modes! {
    /// Doors' marks in a unit of work (jams up to out of service, suspect, out of service, an
    /// opening ending the run of jams); door states missed three times read unknown.
    async fn doors_keep_their_marks_and_sensors_age(backend: Backend) {
        let storage = backend.storage();
        let device = provisioned(&storage, "st-door-1", 2).await;
        for _ in 0..2 {
            let mut work = storage.begin().await.expect("begun");
            doors::jammed(&mut work, &device, 1, 3).await.expect("marked");
            work.commit().await.expect("committed");
        }
        assert_eq!(door(&storage, &device, 1).await, ("unknown".into(), true, 2, false));
        let mut work = storage.begin().await.expect("begun");
        doors::opened(&mut work, &device, 1).await.expect("marked");
        doors::jammed(&mut work, &device, 1, 3).await.expect("marked");
        work.commit().await.expect("committed");
        assert_eq!(door(&storage, &device, 1).await.2, 1, "an opening ended the run");
        let mut work = storage.begin().await.expect("begun");
        doors::jammed(&mut work, &device, 1, 2).await.expect("marked");
        doors::suspect(&mut work, &device, 2).await.expect("marked");
        work.commit().await.expect("committed");
        assert!(door(&storage, &device, 1).await.3, "out of service at the limit");
        assert!(door(&storage, &device, 2).await.1 && !door(&storage, &device, 2).await.3);
        let mut work = storage.begin().await.expect("begun");
        doors::out_of_service(&mut work, &device, 2).await.expect("marked");
        drop(work); // rolled back: not written
        assert!(!door(&storage, &device, 2).await.3, "nothing outside a committed unit of work");
        // A door read closed, then three polls without an answer.
        assert_eq!(say_hello(&storage, &device, 1).await, "new");
        uplink(&storage, &device, (1, 2), &heartbeat([DoorSensor::Closed; 2])).await;
        for expected in ["closed", "closed", "unknown"] {
            door_events::unanswered_read(&storage, &device).await.expect("written");
            assert_eq!(door(&storage, &device, 2).await.0, expected);
        }
        // The directory shows the device and its doors.
        let detail = directory::get(&storage, "st-door-1").await.expect("read").expect("known");
        assert_eq!(detail.doors.len(), 2);
        assert_eq!(detail.device.door_count, 2);
        assert!(directory::get(&storage, "st-nobody").await.expect("read").is_none());
        let found = directory::search(
            &storage,
            &directory::DeviceSearch {
                prefix: Some("st-door".into()),
                online: Some(true),
                model: None,
                after: None,
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .expect("searched");
        assert_eq!(found.len(), 1);
    }
}

in_both_modes! {
    /// Downlink counters: taken one at a time for commands (only while online in a session) or
    /// in blocks for polls, never twice; the moment a locker was asked its state is kept.
    async fn downlink_counters_are_never_taken_twice(backend: Backend) {
        let storage = backend.storage();
        let device = provisioned(&storage, "st-count-1", 2).await;
        let mut work = storage.begin().await.expect("begun");
        assert!(counters::take_for_command(&mut work, &device, Some(1)).await.expect("read").is_none(),
            "offline: no counter");
        drop(work);
        assert_eq!(say_hello(&storage, &device, 7).await, "new");
        let mut work = storage.begin().await.expect("begun");
        let first = counters::take_for_command(&mut work, &device, Some(1)).await.expect("read");
        let second = counters::take_in(&mut work, &device, 7).await.expect("read");
        work.commit().await.expect("committed");
        let first = first.expect("online: a counter");
        let second = second.expect("a counter in the session");
        assert_eq!(first.0, 7, "in the current session");
        assert!(i64::from(second) > first.1);
        assert!(counters::take(&storage, &device, 6, 16).await.expect("read").is_none(),
            "not in another session");
        let block = counters::take(&storage, &device, 7, 16).await.expect("read").expect("a block");
        assert!(block > second);
        let next = counters::take(&storage, &device, 7, 1).await.expect("read").expect("one more");
        assert!(next >= block + 16, "the block is never handed out again");
        counters::state_asked(&storage, &device, Utc::now()).await.expect("written");
    }
}

in_both_modes! {
    /// Which gateway's serial line a board hangs on: recorded as its bus starts, read with the
    /// locker's protocol version by whoever sends to it, forgotten when its gateway starts
    /// without it; another gateway's boards are never touched.
    async fn boards_are_recorded_on_the_line_that_holds_them(backend: Backend) {
        let storage = backend.storage();
        let one = provisioned(&storage, "st-line-1", 2).await;
        let two = provisioned(&storage, "st-line-2", 2).await;
        let three = provisioned(&storage, "st-line-3", 2).await;
        let facts = |device: DeviceId| {
            let storage = storage.clone();
            async move {
                counters::downlink_facts(&storage, &device).await.expect("read").expect("known")
            }
        };
        assert_eq!(facts(one).await.serial_gateway, None, "on MQTT until a bus says otherwise");
        assert_eq!(facts(one).await.protocol_version, 1, "never heard from");
        lines::attach(&storage, "gw-a", &[one, two]).await.expect("written");
        lines::attach(&storage, "gw-b", &[three]).await.expect("written");
        assert_eq!(facts(two).await.serial_gateway.as_deref(), Some("gw-a"));
        assert_eq!(lines::release_others(&storage, "gw-a", &[one]).await.expect("written"), 1);
        assert_eq!(facts(one).await.serial_gateway.as_deref(), Some("gw-a"));
        assert_eq!(facts(two).await.serial_gateway, None, "taken off gw-a's lines");
        assert_eq!(facts(three).await.serial_gateway.as_deref(), Some("gw-b"), "not gw-a's");
        // A board moved to another line is taken over there.
        lines::attach(&storage, "gw-b", &[one]).await.expect("written");
        assert_eq!(lines::release_others(&storage, "gw-a", &[]).await.expect("written"), 0);
        assert_eq!(facts(one).await.serial_gateway.as_deref(), Some("gw-b"));
        assert!(counters::downlink_facts(&storage, &id("st-line-none")).await.expect("read").is_none());
    }
}
