//! Lock boards on a serial bus (a pseudo-terminal with simulated boards behind it) driven by the
//! real gateway: they come online by being polled, their doors open through the same command
//! service and rentals as MQTT lockers, line noise never opens a wrong door or one twice, a dead
//! board is offline without troubling the others, and an unplugged adapter recovers by itself.

use std::time::Duration;

use locker_gateway::command::{CommandError, DoorResult};
use serde_json::json;
use simulator::serial::{BoardConfig, BoardEvent, SerialKnob, SimulatedBus, spawn_bus};
use sqlx::PgPool;

use crate::api::problem;
use crate::helpers::{Backend, TestApp, device, eventually, on_storage, provision};
use crate::rentals::{funded, money, plan, rent};

/// Two boards (addresses 1 and 2, four doors each) on one simulated bus, and the gateway
/// driving it (polling every 100 ms).
async fn cabinet(pool: PgPool) -> (TestApp, SimulatedBus) {
    cabinet_on(Backend::Fleet(pool), Duration::from_millis(100)).await
}

/// [`cabinet`], each board polled at least every `poll_every`.
async fn cabinet_polling(pool: PgPool, poll_every: Duration) -> (TestApp, SimulatedBus) {
    cabinet_on(Backend::Fleet(pool), poll_every).await
}

/// [`cabinet_polling`] on either backend.
async fn cabinet_on(backend: Backend, poll_every: Duration) -> (TestApp, SimulatedBus) {
    cabinet_with(backend, poll_every, |_| {}).await
}

/// [`cabinet_on`] with the gateway's configuration changed by `adjust`.
pub async fn cabinet_with(
    backend: Backend,
    poll_every: Duration,
    adjust: impl Fn(&mut locker_gateway::Config) + 'static,
) -> (TestApp, SimulatedBus) {
    let registry = locker_gateway::device::DeviceRegistry::new(backend.storage());
    let mut boards = Vec::new();
    for (address, id) in [(1u8, "cab-b1"), (2, "cab-b2")] {
        let creds = provision(&registry, id, 4).await;
        boards.push(BoardConfig {
            address,
            device_id: creds.device_id,
            key: creds.secret.tag_key(),
            doors: 4,
        });
    }
    let bus = spawn_bus(boards).expect("a pseudo-terminal");
    let line = format!("{}=1:cab-b1,2:cab-b2", bus.path());
    let app = backend
        .spawn_with(move |config| {
            let mut buses = locker_gateway::serial::parse_buses(&line).expect("buses");
            for bus in &mut buses {
                bus.poll_every = poll_every;
                bus.gap = Duration::from_millis(2);
                bus.timeout = Duration::from_millis(100);
            }
            config.serial_buses = buses;
            adjust(config);
        })
        .await;
    eventually("both boards online", || async {
        app.online("cab-b1").await && app.online("cab-b2").await
    })
    .await;
    (app, bus)
}

#[sqlx::test]
async fn boards_come_online_by_polling_and_open_their_doors(pool: PgPool) {
    boards_come_online_by_polling_and_open_their_doors_on(Backend::Fleet(pool)).await;
}

#[tokio::test]
async fn in_edge_mode_boards_come_online_by_polling_and_open_their_doors() {
    boards_come_online_by_polling_and_open_their_doors_on(Backend::edge().await).await;
}

async fn boards_come_online_by_polling_and_open_their_doors_on(backend: Backend) {
    let (app, mut bus) = cabinet_on(backend, Duration::from_millis(100)).await;
    let outcome = app
        .app
        .commands()
        .unlock(device("cab-b2"), 3)
        .await
        .expect("executed");
    assert_eq!(outcome.door, Some(DoorResult::Opened));
    assert_eq!(
        bus.event(Duration::from_secs(1)).await,
        Some(BoardEvent::Unlocked {
            address: 2,
            door: 3
        })
    );
    // The command went out as a binary envelope, and the door's state came back by polling.
    let payload: String = crate::rentals::scalar(&app, "SELECT payload FROM commands").await;
    assert!(payload.starts_with("bin:"), "{payload}");
    const SENSOR: &str = "SELECT sensor FROM doors WHERE device_id = 'cab-b2' AND door = 3";
    eventually("the door is open", || async {
        on_storage!(&app.storage, |pool| sqlx::query_scalar::<_, String>(SENSOR)
            .fetch_one(pool)
            .await
            .is_ok_and(|s| s == "open"))
    })
    .await;
    let stats = &app.app.serial_buses()[0];
    assert!(locker_gateway::serial::BusStats::get(&stats.polls) > 0);
}

/// What the gateway recorded for command `id`'s door.
async fn door_result(pool: &PgPool, id: i64) -> Option<String> {
    sqlx::query_scalar("SELECT door_result FROM commands WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .expect("command")
}

#[sqlx::test]
async fn a_closing_still_waiting_in_the_board_does_not_make_the_next_opening_already_open(
    pool: PgPool,
) {
    // Polled rarely: a door's closing waits in its board until the next poll.
    let (app, mut bus) = cabinet_polling(pool.clone(), Duration::from_secs(30)).await;
    let commands = app.app.commands();
    for round in 0..3 {
        let outcome = commands
            .unlock(device("cab-b1"), 2)
            .await
            .expect("executed");
        assert_eq!(
            outcome.door,
            Some(DoorResult::Opened),
            "round {round}: the door was closed when pulsed"
        );
        assert_eq!(
            door_result(&pool, outcome.command_id).await.as_deref(),
            Some("opened")
        );
        assert!(bus.event(Duration::from_secs(1)).await.is_some());
        // The user closes it; the gateway will hear of it only when it next speaks to the board.
        bus.turn(SerialKnob::CloseDoor(1, 2)).await;
    }
}

#[sqlx::test]
async fn an_opening_held_in_the_board_past_the_open_window_is_not_taken_for_a_jam(pool: PgPool) {
    let (app, mut bus) = cabinet_polling(pool.clone(), Duration::from_secs(30)).await;
    // The unlock is answered; then a burst of noise eats every try of the poll that should fetch
    // the door's opening (three tries), and the person closes the door again. The board holds
    // both events until the gateway, the open window over, asks it.
    bus.turn(SerialKnob::LoseAnswersAfterNextCommand(1, 3))
        .await;
    let commands = app.app.commands().clone();
    let unlocking = tokio::spawn(async move { commands.unlock(device("cab-b1"), 3).await });
    assert_eq!(
        bus.event(Duration::from_secs(2)).await,
        Some(BoardEvent::Unlocked {
            address: 1,
            door: 3
        })
    );
    bus.turn(SerialKnob::CloseDoor(1, 3)).await;
    let outcome = unlocking.await.expect("joined").expect("executed");
    // A state report alone would say "closed", and the door would be taken for jammed.
    assert_eq!(outcome.door, Some(DoorResult::Opened));
    assert_eq!(
        door_result(&pool, outcome.command_id).await.as_deref(),
        Some("opened")
    );
}

#[sqlx::test]
async fn a_door_open_already_is_known_from_the_boards_next_heartbeat(pool: PgPool) {
    let (app, _bus) = cabinet_polling(pool.clone(), Duration::from_secs(30)).await;
    let commands = app.app.commands();
    let first = commands
        .unlock(device("cab-b2"), 4)
        .await
        .expect("executed");
    assert_eq!(first.door, Some(DoorResult::Opened));
    // Nobody closed it. The board sends no opening for the second pulse; the heartbeat that
    // answers the poll after the command says the door is open: `already_open`, without waiting
    // for the open window (10 s) and asking.
    let asked = std::time::Instant::now();
    let second = commands
        .unlock(device("cab-b2"), 4)
        .await
        .expect("executed");
    assert_eq!(second.door, Some(DoorResult::AlreadyOpen));
    assert!(
        asked.elapsed() < Duration::from_secs(8),
        "settled by the heartbeat, not by the open window: {:?}",
        asked.elapsed()
    );
    let asked_at: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT state_asked_at FROM devices WHERE id = 'cab-b2'")
            .fetch_one(&pool)
            .await
            .expect("device");
    assert_eq!(asked_at, None, "the board was not asked");
}

#[sqlx::test]
async fn an_idle_bus_takes_its_poll_counters_from_the_database_in_blocks_ahead(pool: PgPool) {
    let (app, _bus) = cabinet(pool.clone()).await;
    let stats = app.app.serial_buses()[0].clone();
    let get = locker_gateway::serial::BusStats::get;
    eventually("eighty polls", || async { get(&stats.polls) >= 80 }).await;
    let (polls, blocks) = (get(&stats.polls), get(&stats.counter_blocks));
    assert!(
        blocks * 4 <= polls,
        "{blocks} database round trips for {polls} polls"
    );
    // The line waited for the first block of each board's session only: the next ones were
    // taken ahead, off the line's timing loop.
    let waited = get(&stats.counter_blocks_waited);
    assert!(blocks >= 4, "{blocks} blocks for {polls} polls");
    assert!(
        waited <= 2,
        "the line waited for {waited} of {blocks} blocks"
    );
    // Commands between the polls still reach the board in counter order.
    for door in 1..=4 {
        let outcome = app
            .app
            .commands()
            .unlock(device("cab-b1"), door)
            .await
            .expect("executed");
        assert_eq!(outcome.door, Some(DoorResult::Opened));
    }
    let refused: i64 =
        sqlx::query_scalar("SELECT count(*) FROM commands WHERE state <> 'executed'")
            .fetch_one(&pool)
            .await
            .expect("count");
    assert_eq!(refused, 0);
}

#[sqlx::test]
async fn a_rental_on_a_serial_door_from_start_to_end(pool: PgPool) {
    a_rental_on_a_serial_door_from_start_to_end_on(Backend::Fleet(pool)).await;
}

#[tokio::test]
async fn in_edge_mode_a_rental_on_a_serial_door_from_start_to_end() {
    a_rental_on_a_serial_door_from_start_to_end_on(Backend::edge().await).await;
}

async fn a_rental_on_a_serial_door_from_start_to_end_on(backend: Backend) {
    let (app, mut bus) = cabinet_on(backend, Duration::from_millis(100)).await;
    plan(&app).await;
    let (token, user) = funded(&app, "r@example.com", 5000).await;
    let started = rent(&app, &token, json!({ "device_id": "cab-b1", "door": 2 })).await;
    assert_eq!(started.status(), 201);
    let rental: serde_json::Value = started.json().await.expect("rental");
    assert_eq!(rental["state"], "active");
    assert_eq!(money(&app, user).await, (3000, 2000));
    bus.turn(SerialKnob::CloseDoor(1, 2)).await;
    let end = app
        .http
        .post(app.url(&format!(
            "/v1/rentals/{}/end",
            rental["id"].as_str().expect("id")
        )))
        .bearer_auth(&token)
        .send()
        .await
        .expect("sent");
    assert_eq!(end.status(), 200);
    let ended: serde_json::Value = end.json().await.expect("rental");
    assert_eq!(ended["state"], "ended");
    assert_eq!(money(&app, user).await, (5000, 0), "free minutes: no fee");
    let mut opened = Vec::new();
    while let Some(event) = bus.try_event() {
        opened.push(event);
    }
    assert_eq!(
        opened,
        vec![
            BoardEvent::Unlocked {
                address: 1,
                door: 2
            },
            BoardEvent::Unlocked {
                address: 1,
                door: 2
            }
        ]
    );
}

#[sqlx::test]
async fn with_one_byte_in_a_hundred_corrupted_no_door_opens_twice_or_wrongly(pool: PgPool) {
    let (app, mut bus) = cabinet(pool.clone()).await;
    bus.turn(SerialKnob::FlipRate(0.01)).await;
    let mut executed = 0;
    let mut failed = 0;
    for i in 0..20u16 {
        let door = i % 4 + 1;
        match app.app.commands().unlock(device("cab-b1"), door).await {
            Ok(_) => executed += 1,
            // A clear error; the outcome is settled later by asking the board.
            Err(CommandError::Timeout { .. } | CommandError::DeviceOffline) => failed += 1,
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    bus.turn(SerialKnob::FlipRate(0.0)).await;
    let mut unlocked = Vec::new();
    while let Some(event) = bus.event(Duration::from_millis(300)).await {
        unlocked.push(event);
    }
    // Each board execution is one command: never twice, never another door or board.
    let expected: Vec<BoardEvent> = (0..20u16)
        .map(|i| BoardEvent::Unlocked {
            address: 1,
            door: i % 4 + 1,
        })
        .collect();
    assert!(
        unlocked.len() >= executed && unlocked.len() <= 20,
        "{executed} executed, {} unlocked",
        unlocked.len()
    );
    for event in &unlocked {
        assert!(expected.contains(event), "a wrong door opened: {event:?}");
    }
    // The openings are the commands' own, in order, each at most once.
    let mut commands = expected.iter();
    for event in &unlocked {
        assert!(
            commands.any(|e| e == event),
            "an opening matches no command of its own: {unlocked:?}"
        );
    }
    assert!(
        executed >= 10,
        "{executed} of 20 completed, {failed} failed"
    );
    let stats = &app.app.serial_buses()[0];
    assert!(
        locker_gateway::serial::BusStats::get(&stats.timeouts) > 0,
        "the noise cost some answers"
    );
    assert!(
        locker_gateway::serial::BusStats::get(&stats.bad_frames) > 0,
        "and was counted"
    );
}

#[sqlx::test]
async fn a_dead_board_is_offline_and_the_others_carry_on(pool: PgPool) {
    let (app, _bus) = cabinet(pool.clone()).await;
    plan(&app).await;
    let (token, _) = funded(&app, "r@example.com", 5000).await;
    _bus.turn(SerialKnob::Dead(2, true)).await;
    eventually("cab-b2 offline", || async { !app.online("cab-b2").await }).await;
    let refused = rent(&app, &token, json!({ "device_id": "cab-b2" })).await;
    problem(refused, 503, "device_offline").await;
    let fine = rent(&app, &token, json!({ "device_id": "cab-b1" })).await;
    assert_eq!(fine.status(), 201);
    // Alive again: back by itself.
    _bus.turn(SerialKnob::Dead(2, false)).await;
    eventually("cab-b2 back", || app.online("cab-b2")).await;
}

#[sqlx::test]
async fn a_command_queued_for_a_board_that_is_away_is_delivered_when_it_answers_again(
    pool: PgPool,
) {
    use locker_gateway::command::Command;
    let (app, mut bus) = cabinet(pool.clone()).await;
    bus.turn(SerialKnob::Dead(2, true)).await;
    eventually("cab-b2 offline", || async { !app.online("cab-b2").await }).await;
    let commands = app.app.commands();
    let queued = commands
        .queue(
            device("cab-b2"),
            Command::Unlock { door: 4 },
            Duration::from_secs(60),
        )
        .await
        .expect("queued");
    let expiring = commands
        .queue(
            device("cab-b2"),
            Command::Unlock { door: 1 },
            Duration::from_secs(1),
        )
        .await
        .expect("queued");
    let state = |id: i64| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, String>("SELECT state FROM commands WHERE id = $1")
                .bind(id)
                .fetch_one(&pool)
                .await
                .expect("command")
        }
    };
    assert_eq!(state(queued).await, "pending");
    eventually("the short one expired", || async {
        state(expiring).await == "expired"
    })
    .await;
    assert_eq!(bus.try_event(), None, "nothing reached a dead board");
    // The board answers again: a new session, and the queued unlock goes out in it, once.
    bus.turn(SerialKnob::Dead(2, false)).await;
    assert_eq!(
        bus.event(Duration::from_secs(10)).await,
        Some(BoardEvent::Unlocked {
            address: 2,
            door: 4
        })
    );
    eventually("the queued unlock executed, its door opened", || async {
        state(queued).await == "executed"
            && door_result(&pool, queued).await.as_deref() == Some("opened")
    })
    .await;
    assert_eq!(state(expiring).await, "expired");
    assert_eq!(
        bus.event(Duration::from_millis(500)).await,
        None,
        "the expired one never reached the board"
    );
}

#[sqlx::test]
async fn an_unplugged_adapter_is_reopened_and_its_boards_come_back(pool: PgPool) {
    let (app, mut bus) = cabinet(pool.clone()).await;
    bus.turn(SerialKnob::Replug(Duration::from_millis(500)))
        .await;
    eventually("offline while unplugged", || async {
        !app.online("cab-b1").await
    })
    .await;
    eventually("back", || async {
        app.online("cab-b1").await && app.online("cab-b2").await
    })
    .await;
    let outcome = app
        .app
        .commands()
        .unlock(device("cab-b1"), 1)
        .await
        .expect("executed after the replug");
    assert_eq!(outcome.door, Some(DoorResult::Opened));
    assert!(bus.event(Duration::from_secs(1)).await.is_some());
    assert!(locker_gateway::serial::BusStats::get(&app.app.serial_buses()[0].opened) >= 2);
}

/// (sensor, failed reads in a row) of a door.
async fn sensor(pool: &PgPool, device: &str, door: i32) -> (String, i32) {
    sqlx::query_as("SELECT sensor, sensor_misses FROM doors WHERE device_id = $1 AND door = $2")
        .bind(device)
        .bind(door)
        .fetch_one(pool)
        .await
        .expect("door")
}

/// Samples a door until its sensor is `unknown`, checking on the way that it kept its last state
/// through the first two failed reads.
async fn keeps_its_state_through_two_failed_reads(pool: &PgPool, device: &str, door: i32) {
    let deadline = tokio::time::Instant::now() + crate::helpers::WAIT;
    let mut seen_kept = false;
    loop {
        let (state, misses) = sensor(pool, device, door).await;
        match misses {
            0 => {}
            1 | 2 => {
                assert_eq!(state, "closed", "after {misses} failed reads");
                seen_kept = true;
            }
            _ => {
                assert_eq!(state, "unknown", "after {misses} failed reads");
                break;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "never unknown");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(seen_kept, "the last state was never seen kept");
}

#[sqlx::test]
async fn a_door_sensor_that_fails_keeps_its_state_through_two_reads(pool: PgPool) {
    let (_app, bus) = cabinet(pool.clone()).await;
    eventually("door 1 read as closed", || async {
        sensor(&pool, "cab-b1", 1).await.0 == "closed"
    })
    .await;
    bus.turn(SerialKnob::DeadSensor(1, 1)).await;
    keeps_its_state_through_two_failed_reads(&pool, "cab-b1", 1).await;
    // A silent board: every door the same way.
    eventually("cab-b2's doors read", || async {
        sensor(&pool, "cab-b2", 4).await.0 == "closed"
    })
    .await;
    bus.turn(SerialKnob::Dead(2, true)).await;
    keeps_its_state_through_two_failed_reads(&pool, "cab-b2", 4).await;
}

#[sqlx::test]
async fn a_board_that_reboots_mid_command_is_asked_not_sent_it_again(pool: PgPool) {
    let (app, mut bus) = cabinet(pool.clone()).await;
    let mut events = app.app.events();
    bus.turn(SerialKnob::PowerCutAfterNextCommand(1)).await;
    let sent = app.app.commands().unlock(device("cab-b1"), 3).await;
    assert!(
        matches!(sent, Err(CommandError::Timeout { .. })),
        "{sent:?}"
    );
    let unknown = crate::helpers::expect_event(&mut events, "command.unknown", "cab-b1").await;
    let (state, session, attempts): (String, i64, i32) =
        sqlx::query_as("SELECT state, session, attempts FROM commands")
            .fetch_one(&pool)
            .await
            .expect("command");
    assert_eq!(unknown.data["door"], 3);
    assert_eq!((state.as_str(), attempts), ("unknown", 1));
    // The board came back in a new session; the command was never sent into it.
    let now: i64 = sqlx::query_scalar("SELECT session FROM devices WHERE id = 'cab-b1'")
        .fetch_one(&pool)
        .await
        .expect("session");
    assert_ne!(now, session);
    let mut opened = Vec::new();
    while let Some(event) = bus.event(Duration::from_millis(500)).await {
        opened.push(event);
    }
    assert_eq!(
        opened,
        vec![BoardEvent::Unlocked {
            address: 1,
            door: 3
        }],
        "the door opened once"
    );
}

#[sqlx::test]
async fn a_board_answering_for_another_address_is_not_believed(pool: PgPool) {
    let (app, mut bus) = cabinet(pool.clone()).await;
    bus.turn(SerialKnob::AnswerAs(2, Some(1))).await;
    eventually("cab-b2 offline", || async { !app.online("cab-b2").await }).await;
    let stats = &app.app.serial_buses()[0];
    assert!(locker_gateway::serial::BusStats::get(&stats.unexpected) > 0);
    let refused = app.app.commands().unlock(device("cab-b2"), 1).await;
    assert!(
        matches!(refused, Err(CommandError::DeviceOffline)),
        "{refused:?}"
    );
    let outcome = app
        .app
        .commands()
        .unlock(device("cab-b1"), 4)
        .await
        .expect("the other board still works");
    assert_eq!(outcome.door, Some(DoorResult::Opened));
    assert_eq!(
        bus.event(Duration::from_secs(1)).await,
        Some(BoardEvent::Unlocked {
            address: 1,
            door: 4
        })
    );
    assert_eq!(bus.try_event(), None, "no other door opened");
}
