//! Commands through the real broker to simulated lockers: the answer `send` gives is the truth.

use std::time::{Duration, Instant};

use firmware_protocol::RefuseReason;
use locker_gateway::command::{CommandError, DoorResult};
use simulator::mqtt::{Happening, Knob, expect};
use sqlx::{PgPool, Row};

use crate::command_helpers::*;
use crate::helpers::{WAIT, device, eventually, in_both_modes, on_storage, spawn_app};

in_both_modes! {
async fn an_unlock_is_executed_and_the_door_opens(backend: Backend) {
    let app = backend.spawn().await;
    let _locker = online_locker(&app, "lk-1").await;
    let outcome = app.unlock("lk-1", 3).await.expect("executed");
    assert_eq!(outcome.door, Some(DoorResult::Opened));
    let (state, door, attempts) = command_row(&app.storage, outcome.command_id).await;
    assert_eq!(
        (state.as_str(), door.as_deref(), attempts),
        ("executed", Some("opened"), 1)
    );
}
}

in_both_modes! {
async fn an_offline_locker_is_reported_at_once(backend: Backend) {
    let app = backend.spawn().await;
    app.provision("lk-1", 4).await; // never connects
    let started = Instant::now();
    let err = app.unlock("lk-1", 1).await.expect_err("offline");
    assert!(matches!(err, CommandError::DeviceOffline), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    let stored: i64 = crate::rentals::scalar(&app, "SELECT count(*) FROM commands").await;
    assert_eq!(stored, 0, "nothing is stored for an offline locker");
    let err = app.unlock("nobody", 1).await.expect_err("unknown");
    assert!(matches!(err, CommandError::UnknownDevice), "{err:?}");
}
}

in_both_modes! {
async fn a_refusal_comes_back_with_its_reason(backend: Backend) {
    let app = backend.spawn().await;
    let _locker = online_locker(&app, "lk-1").await;
    // The gateway knows the locker has four doors: door 9 is refused before anything is sent.
    let err = app.unlock("lk-1", 9).await.expect_err("no door 9");
    assert!(
        matches!(err, CommandError::NoSuchDoor { door: 9, count: 4 }),
        "{err:?}"
    );
    // Registered with more doors than it has, the locker itself refuses, with its reason.
    on_storage!(&app.storage, |pool| sqlx::query(
        "UPDATE devices SET door_count = 16 WHERE id = 'lk-1'"
    )
    .execute(pool)
    .await
    .expect("door count")
    .rows_affected());
    let err = app.unlock("lk-1", 9).await.expect_err("no door 9");
    assert!(
        matches!(err, CommandError::Refused(RefuseReason::NoSuchDoor)),
        "{err:?}"
    );
    let refusal: String =
        crate::rentals::scalar(&app, "SELECT refusal FROM commands WHERE state = 'refused'").await;
    assert_eq!(refusal, "no_such_door");
}
}

in_both_modes! {
async fn a_jammed_door_is_reported_as_jammed(backend: Backend) {
    let app = backend.spawn().await;
    let locker = online_locker(&app, "lk-1").await;
    locker.turn(Knob::Jam(2)).await;
    let outcome = app.unlock("lk-1", 2).await.expect("executed");
    assert_eq!(outcome.door, Some(DoorResult::Jammed));
    let (state, door, _) = command_row(&app.storage, outcome.command_id).await;
    assert_eq!(
        (state.as_str(), door.as_deref()),
        ("executed", Some("jammed"))
    );
}
}

in_both_modes! {
async fn a_lost_ack_is_resent_with_the_same_id_and_executed_once(backend: Backend) {
    let app = backend.spawn().await;
    let locker = online_locker(&app, "lk-1").await;
    let mut watch = locker.watch();
    locker.turn(Knob::DropAcks(1)).await;
    let outcome = app.unlock("lk-1", 1).await.expect("executed");
    assert_eq!(outcome.door, Some(DoorResult::Opened));
    let (state, _, attempts) = command_row(&app.storage, outcome.command_id).await;
    assert_eq!(state, "executed");
    assert_eq!(attempts, 2, "the command was sent twice");
    // Both copies were the same envelope, and the door opened once.
    let mut received = Vec::new();
    let mut opened = 0;
    while let Ok(happening) = watch.try_recv() {
        match happening {
            Happening::Received(payload) => received.push(payload),
            Happening::Sent(payload) if payload.contains("door_event") => opened += 1,
            _ => {}
        }
    }
    assert_eq!(received.len(), 2);
    assert_eq!(
        received[0], received[1],
        "a resend repeats the envelope byte for byte"
    );
    assert_eq!(opened, 1, "the relay pulsed twice");
}
}

in_both_modes! {
async fn an_unlock_of_an_open_door_says_so(backend: Backend) {
    let app = backend.spawn().await;
    let _locker = online_locker(&app, "lk-1").await;
    let first = app.unlock("lk-1", 1).await.expect("executed");
    assert_eq!(first.door, Some(DoorResult::Opened));
    // Nobody closed it.
    let second = app.unlock("lk-1", 1).await.expect("executed");
    assert_eq!(second.door, Some(DoorResult::AlreadyOpen));
}
}

in_both_modes! {
async fn duplicate_and_conflicting_answers_change_nothing_and_are_flagged(backend: Backend) {
    use firmware_protocol::{Ack, CommandId, CommandResult};
    let app = backend.spawn().await;
    let (_locker, creds) = online_locker_with_credentials(&app, "lk-1").await;
    let outcome = app.unlock("lk-1", 2).await.expect("executed");
    let id = CommandId::new(outcome.command_id as u64).expect("id");
    inject_ack(
        &app,
        &creds.secret,
        1000,
        Ack {
            command_id: id,
            result: CommandResult::Executed,
        },
    )
    .await;
    inject_ack(
        &app,
        &creds.secret,
        1001,
        Ack {
            command_id: id,
            result: CommandResult::Refused(RefuseReason::Busy),
        },
    )
    .await;
    const ANSWERS: &str = "SELECT duplicates, conflict FROM commands WHERE id = $1";
    eventually("both answers are recorded", || async {
        let (duplicates, conflict): (i32, Option<String>) =
            on_storage!(&app.storage, |pool| sqlx::query_as(ANSWERS)
                .bind(outcome.command_id)
                .fetch_one(pool)
                .await
                .expect("row"));
        duplicates == 1 && conflict.is_some()
    })
    .await;
    let (state, door, _) = command_row(&app.storage, outcome.command_id).await;
    assert_eq!(
        (state.as_str(), door.as_deref()),
        ("executed", Some("opened")),
        "the first answer stands"
    );
}
}

#[sqlx::test]
async fn a_forged_or_replayed_unlock_is_refused_by_the_locker(pool: PgPool) {
    use firmware_protocol::{
        CommandId, DeviceSecret, Direction, Downlink, Envelope, Header, Unlock,
    };
    let app = spawn_app(pool.clone()).await;
    let locker = online_locker(&app, "lk-1").await;
    let (mut rogue, mut seen) = app.tap("lockers/lk-1/down");
    // A genuine unlock, recorded by the rogue as it passes.
    app.unlock("lk-1", 1).await.expect("executed");
    let (_, genuine) = crate::helpers::link_next(&mut seen).await;
    let mut watch = locker.watch();
    // Replayed as it is: the locker answers from memory and does not pulse again.
    rogue
        .publish("lockers/lk-1/down", genuine)
        .expect("published");
    // Forged with a wrong key, for another door.
    let session: i64 = sqlx::query_scalar("SELECT session FROM devices WHERE id = 'lk-1'")
        .fetch_one(&pool)
        .await
        .expect("session");
    let forged = Envelope {
        header: Header {
            direction: Direction::Down,
            device_id: device("lk-1"),
            session: session as u32,
            counter: 999,
        },
        message: Downlink::Unlock(Unlock {
            command_id: CommandId::new(999).expect("id"),
            door: 4,
            expires_at_ms: None,
        }),
    }
    .seal_json(&DeviceSecret::from_bytes([3; 32]).tag_key())
    .expect("seals");
    rogue
        .publish("lockers/lk-1/down", forged.into_bytes())
        .expect("published");
    let mut answers = Vec::new();
    while answers.len() < 2 {
        let sent = expect(&mut watch, WAIT, |h| match h {
            Happening::Sent(payload) => Some(payload.clone()),
            _ => None,
        })
        .await
        .expect("the locker answered");
        answers.push(sent);
    }
    assert!(
        answers.iter().all(|a| !a.contains("door_event")),
        "a door moved: {answers:?}"
    );
    assert!(
        answers.iter().any(|a| a.contains("bad_tag")),
        "the forgery was not refused: {answers:?}"
    );
}

#[sqlx::test]
async fn commands_carry_a_deadline_in_the_lockers_own_clock(pool: PgPool) {
    // A copy that reaches the locker after the caller was told "timeout" is refused as expired by
    // the locker itself (see the simulator's refusal tests), so the deadline must be in its clock.
    let app = spawn_app(pool.clone()).await;
    let _locker = online_locker(&app, "lk-1").await;
    let (_tap, mut seen) = app.tap("lockers/lk-1/down");
    app.unlock("lk-1", 1).await.expect("executed");
    let (_, payload) = crate::helpers::link_next(&mut seen).await;
    let raw = firmware_protocol::Unverified::parse_json(&payload).expect("parses");
    let sent: firmware_protocol::Envelope<firmware_protocol::Downlink> =
        raw.decode_unverified().expect("decodes");
    let firmware_protocol::Downlink::Unlock(unlock) = sent.message else {
        panic!("not an unlock");
    };
    let expires = unlock.expires_at_ms.expect("commands carry a deadline") as i64;
    let locker_now: i64 = sqlx::query_scalar(
        "SELECT uptime_ms + (extract(epoch FROM (now() - uptime_at)) * 1000)::bigint FROM devices WHERE id = 'lk-1'",
    )
    .fetch_one(&pool)
    .await
    .expect("uptime");
    // The test deadline is 5 s: the locker's deadline lies a little under 5 s after it was sent.
    assert!(expires <= locker_now + 5_000, "{expires} vs {locker_now}");
    assert!(expires >= locker_now + 3_000, "{expires} vs {locker_now}");
}

#[sqlx::test]
async fn a_slow_ack_is_awaited_and_the_resend_executes_nothing_twice(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let locker = online_locker(&app, "lk-1").await;
    let mut watch = locker.watch();
    // Slower than the 2 s resend interval, faster than the 5 s test deadline.
    locker
        .turn(Knob::AckDelay(Duration::from_millis(2500)))
        .await;
    let outcome = app.unlock("lk-1", 4).await.expect("executed");
    assert_eq!(outcome.door, Some(DoorResult::Opened));
    let (state, _, attempts) = command_row(&app.storage, outcome.command_id).await;
    assert_eq!(state, "executed");
    assert!(
        attempts >= 2,
        "the slow ack was not waited out with a resend"
    );
    // Each resend's answer (the stored result, repeated) arrives later and changes nothing.
    eventually("the repeated answers are counted as duplicates", || async {
        let duplicates: i32 = sqlx::query_scalar("SELECT duplicates FROM commands WHERE id = $1")
            .bind(outcome.command_id)
            .fetch_one(&pool)
            .await
            .expect("row");
        duplicates == attempts - 1
    })
    .await;
    let mut opened = 0;
    while let Ok(h) = watch.try_recv() {
        if matches!(&h, Happening::Sent(p) if p.contains("door_event")) {
            opened += 1;
        }
    }
    assert_eq!(opened, 1);
}

#[sqlx::test]
async fn duplicated_uplinks_are_applied_once(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let locker = online_locker(&app, "lk-1").await;
    locker.turn(Knob::Duplicate(true)).await;
    let outcome = app.unlock("lk-1", 2).await.expect("executed");
    assert_eq!(outcome.door, Some(DoorResult::Opened));
    let stats = app.app.device_link().stats();
    eventually("the copies are dropped as replays", || async {
        stats.replayed() >= 2
    })
    .await;
    let row = sqlx::query("SELECT duplicates, conflict FROM commands WHERE id = $1")
        .bind(outcome.command_id)
        .fetch_one(&pool)
        .await
        .expect("row");
    assert_eq!(
        row.get::<i32, _>("duplicates"),
        0,
        "a byte-identical copy never reaches the command"
    );
    assert_eq!(row.get::<Option<String>, _>("conflict"), None);
}

#[sqlx::test]
async fn beyond_the_in_flight_limit_a_command_is_refused_at_once(pool: PgPool) {
    let app = crate::helpers::spawn_app_with(pool.clone(), |c| c.commands_in_flight = 1).await;
    let locker = online_locker(&app, "lk-1").await;
    // The first command waits (its ack is lost, it will be resent).
    let waiting = unlock_with_lost_ack(&app, &locker).await;
    let started = Instant::now();
    let second = app.unlock("lk-1", 2).await;
    assert!(
        matches!(second, Err(CommandError::Overloaded)),
        "{second:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(1));
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM commands")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(stored, 1, "a refused command is not stored");
    // Once the first is answered, there is room again.
    assert!(waiting.await.expect("task").is_ok());
    let third = app.unlock("lk-1", 3).await;
    assert!(third.is_ok(), "{third:?}");
}

#[sqlx::test]
async fn resends_back_off_so_a_silent_locker_is_not_flooded(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let locker = online_locker(&app, "lk-1").await;
    locker.turn(Knob::DropAcks(100)).await;
    let err = app.unlock("lk-1", 1).await.expect_err("no answer");
    let CommandError::Timeout { command_id } = err else {
        panic!("expected a timeout, got {err:?}");
    };
    // Test deadline 5 s, first resend after 2 s, the next one 4 s later: past the deadline. At a
    // fixed 2 s interval it would have gone out three times.
    let (state, _, attempts) = command_row(&app.storage, command_id).await;
    assert_eq!(state, "unknown");
    assert_eq!(attempts, 2, "sent at 0 s and 2 s only");
}

#[sqlx::test]
async fn many_commands_at_once_to_one_locker_reach_it_in_counter_order(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let _locker = online_locker(&app, "lk-1").await;
    let mut sends = tokio::task::JoinSet::new();
    for i in 0..40u16 {
        let commands = app.app.commands().clone();
        sends.spawn(async move { commands.unlock(device("lk-1"), i % 4 + 1).await });
    }
    let mut executed = 0;
    while let Some(result) = sends.join_next().await {
        match result.expect("task") {
            Ok(_) => executed += 1,
            Err(CommandError::Refused(RefuseReason::StaleCounter)) => {
                panic!("a counter reached the locker after a higher one")
            }
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(executed, 40);
}
