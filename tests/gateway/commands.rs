//! Commands through the real broker to simulated lockers: the answer `send` gives is the truth.

use std::time::{Duration, Instant};

use firmware_protocol::RefuseReason;
use locker_gateway::command::{CommandError, DoorResult};
use simulator::mqtt::{Happening, Knob, expect};
use sqlx::{PgPool, Row};

use crate::helpers::{TestApp, WAIT, device, eventually, spawn_app};

async fn online_locker(app: &TestApp, id: &str) -> simulator::mqtt::LockerHandle {
    let creds = app.provision(id, 4).await;
    let locker = app.locker(&creds, Duration::from_secs(3600));
    let mut watch = locker.watch();
    expect(&mut watch, WAIT, |h| {
        matches!(h, Happening::Connected { .. }).then_some(())
    })
    .await
    .expect("connected");
    eventually("online", || app.online(id)).await;
    locker
}

async fn command_row(pool: &PgPool, id: i64) -> (String, Option<String>, i32) {
    let row = sqlx::query("SELECT state, door_result, attempts FROM commands WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .expect("command row");
    (
        row.get("state"),
        row.get("door_result"),
        row.get("attempts"),
    )
}

#[sqlx::test]
async fn an_unlock_is_executed_and_the_door_opens(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let _locker = online_locker(&app, "lk-1").await;
    let outcome = app
        .app
        .commands()
        .unlock(device("lk-1"), 3)
        .await
        .expect("executed");
    assert_eq!(outcome.door, Some(DoorResult::Opened));
    let (state, door, attempts) = command_row(&pool, outcome.command_id).await;
    assert_eq!(
        (state.as_str(), door.as_deref(), attempts),
        ("executed", Some("opened"), 1)
    );
}

#[sqlx::test]
async fn an_offline_locker_is_reported_at_once(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    app.provision("lk-1", 4).await; // never connects
    let started = Instant::now();
    let err = app
        .app
        .commands()
        .unlock(device("lk-1"), 1)
        .await
        .expect_err("offline");
    assert_eq!(err, CommandError::DeviceOffline);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM commands")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(stored, 0, "nothing is stored for an offline locker");
    let err = app
        .app
        .commands()
        .unlock(device("nobody"), 1)
        .await
        .expect_err("unknown");
    assert_eq!(err, CommandError::UnknownDevice);
}

#[sqlx::test]
async fn a_refusal_comes_back_with_its_reason(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let _locker = online_locker(&app, "lk-1").await;
    let err = app
        .app
        .commands()
        .unlock(device("lk-1"), 9)
        .await
        .expect_err("no door 9");
    assert_eq!(err, CommandError::Refused(RefuseReason::NoSuchDoor));
    let refusal: String =
        sqlx::query_scalar("SELECT refusal FROM commands WHERE state = 'refused'")
            .fetch_one(&pool)
            .await
            .expect("stored refusal");
    assert_eq!(refusal, "no_such_door");
}

#[sqlx::test]
async fn a_jammed_door_is_reported_as_jammed(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let locker = online_locker(&app, "lk-1").await;
    locker.turn(Knob::Jam(2)).await;
    let outcome = app
        .app
        .commands()
        .unlock(device("lk-1"), 2)
        .await
        .expect("executed");
    assert_eq!(outcome.door, Some(DoorResult::Jammed));
    let (state, door, _) = command_row(&pool, outcome.command_id).await;
    assert_eq!(
        (state.as_str(), door.as_deref()),
        ("executed", Some("jammed"))
    );
}

#[sqlx::test]
async fn a_lost_ack_is_resent_with_the_same_id_and_executed_once(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let locker = online_locker(&app, "lk-1").await;
    let mut watch = locker.watch();
    locker.turn(Knob::DropAcks(1)).await;
    let outcome = app
        .app
        .commands()
        .unlock(device("lk-1"), 1)
        .await
        .expect("executed");
    assert_eq!(outcome.door, Some(DoorResult::Opened));
    let (state, _, attempts) = command_row(&pool, outcome.command_id).await;
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

/// Sends an unlock whose ack the locker loses, and waits until the locker has it.
async fn unlock_with_lost_ack(
    app: &TestApp,
    locker: &simulator::mqtt::LockerHandle,
) -> tokio::task::JoinHandle<Result<locker_gateway::command::Outcome, CommandError>> {
    let mut watch = locker.watch();
    locker.turn(Knob::DropAcks(1)).await;
    let commands = app.app.commands().clone();
    let sending = tokio::spawn(async move { commands.unlock(device("lk-1"), 1).await });
    expect(&mut watch, WAIT, |h| {
        matches!(h, Happening::Received(_)).then_some(())
    })
    .await
    .expect("the locker received the unlock");
    sending
}

async fn settled(pool: &PgPool) -> (String, Option<String>, i32) {
    let row = sqlx::query("SELECT state, settled_by, attempts FROM commands")
        .fetch_one(pool)
        .await
        .expect("one command");
    (row.get("state"), row.get("settled_by"), row.get("attempts"))
}

#[sqlx::test]
async fn an_answer_lost_with_the_connection_is_settled_by_asking_not_by_resending(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let locker = online_locker(&app, "lk-1").await;
    let sending = unlock_with_lost_ack(&app, &locker).await;
    // The connection drops before any resend; the locker comes back (same boot, new session).
    locker.turn(Knob::Drop).await;
    locker.turn(Knob::Reconnect).await;
    eventually(
        "the command is settled from the locker's report",
        || async { settled(&pool).await.1.as_deref() == Some("state_report") },
    )
    .await;
    let (state, _, attempts) = settled(&pool).await;
    assert_eq!(state, "executed");
    assert_eq!(
        attempts, 1,
        "a command must never be resent into a new session"
    );
    match sending.await.expect("task") {
        Ok(outcome) => assert_eq!(outcome.door, Some(DoorResult::Opened)),
        Err(CommandError::Timeout { .. }) => {} // the caller gave up first; the record is right
        Err(e) => panic!("unexpected {e}"),
    }
}

#[sqlx::test]
async fn a_reboot_mid_command_leaves_the_outcome_unknown_and_tells_operators(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let mut events = app.app.events();
    let locker = online_locker(&app, "lk-1").await;
    let sending = unlock_with_lost_ack(&app, &locker).await;
    locker.turn(Knob::Reboot).await;
    let unknown = crate::helpers::expect_event(&mut events, "command.unknown", "lk-1").await;
    let (state, settled_by, attempts) = settled(&pool).await;
    assert_eq!(
        unknown.data["command_id"],
        serde_json::json!(sending_id(&pool).await)
    );
    assert_eq!((state.as_str(), settled_by, attempts), ("unknown", None, 1));
    assert!(matches!(
        sending.await.expect("task"),
        Err(CommandError::Timeout { .. })
    ));
}

async fn sending_id(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT id FROM commands")
        .fetch_one(pool)
        .await
        .expect("id")
}

#[sqlx::test]
async fn an_unlock_of_an_open_door_says_so(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let _locker = online_locker(&app, "lk-1").await;
    let first = app
        .app
        .commands()
        .unlock(device("lk-1"), 1)
        .await
        .expect("executed");
    assert_eq!(first.door, Some(DoorResult::Opened));
    // Nobody closed it.
    let second = app
        .app
        .commands()
        .unlock(device("lk-1"), 1)
        .await
        .expect("executed");
    assert_eq!(second.door, Some(DoorResult::AlreadyOpen));
}

/// An authenticated uplink crafted with the device's own key (as if its counter jumped ahead).
async fn inject_ack(
    app: &TestApp,
    secret: &firmware_protocol::DeviceSecret,
    counter: u32,
    ack: firmware_protocol::Ack,
) {
    use firmware_protocol::{Direction, Envelope, Header, Uplink};
    let session: i64 = sqlx::query_scalar("SELECT session FROM devices WHERE id = 'lk-1'")
        .fetch_one(&app.pool)
        .await
        .expect("session");
    let payload = Envelope {
        header: Header {
            direction: Direction::Up,
            device_id: device("lk-1"),
            session: session as u32,
            counter,
        },
        message: Uplink::Ack(ack),
    }
    .seal_json(&secret.tag_key())
    .expect("seals");
    let (mut injector, _) = app.link("injector");
    injector
        .publish("lockers/lk-1/up", payload.into_bytes())
        .expect("published");
}

#[sqlx::test]
async fn duplicate_and_conflicting_answers_change_nothing_and_are_flagged(pool: PgPool) {
    use firmware_protocol::{Ack, CommandId, CommandResult};
    let app = spawn_app(pool.clone()).await;
    let creds = app.provision("lk-1", 4).await;
    let locker = app.locker(&creds, Duration::from_secs(3600));
    let mut watch = locker.watch();
    expect(&mut watch, WAIT, |h| {
        matches!(h, Happening::Connected { .. }).then_some(())
    })
    .await
    .expect("connected");
    eventually("online", || app.online("lk-1")).await;
    let outcome = app
        .app
        .commands()
        .unlock(device("lk-1"), 2)
        .await
        .expect("executed");
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
    eventually("both answers are recorded", || async {
        let row = sqlx::query("SELECT duplicates, conflict FROM commands WHERE id = $1")
            .bind(outcome.command_id)
            .fetch_one(&pool)
            .await
            .expect("row");
        row.get::<i32, _>("duplicates") == 1 && row.get::<Option<String>, _>("conflict").is_some()
    })
    .await;
    let (state, door, _) = command_row(&pool, outcome.command_id).await;
    assert_eq!(
        (state.as_str(), door.as_deref()),
        ("executed", Some("opened")),
        "the first answer stands"
    );
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
    app.app
        .commands()
        .unlock(device("lk-1"), 1)
        .await
        .expect("executed");
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

async fn state_of(pool: &PgPool, id: i64) -> String {
    sqlx::query_scalar("SELECT state FROM commands WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .expect("state")
}

#[sqlx::test]
async fn a_queued_command_is_delivered_when_the_locker_comes(pool: PgPool) {
    use locker_gateway::command::Command;
    let app = spawn_app(pool.clone()).await;
    let creds = app.provision("lk-1", 4).await;
    let id = app
        .app
        .commands()
        .queue(
            device("lk-1"),
            Command::Unlock { door: 2 },
            Duration::from_secs(60),
        )
        .await
        .expect("queued");
    assert_eq!(state_of(&pool, id).await, "pending");
    let locker = app.locker(&creds, Duration::from_secs(3600));
    let mut watch = locker.watch();
    let opened = expect(&mut watch, WAIT, |h| match h {
        Happening::Sent(p) if p.contains("door_event") && p.contains("opened") => Some(()),
        _ => None,
    })
    .await;
    assert!(opened.is_some(), "the queued unlock did not open the door");
    eventually("the queued command is executed", || async {
        state_of(&pool, id).await == "executed"
    })
    .await;
}

#[sqlx::test]
async fn a_queued_command_past_its_time_to_live_is_never_executed(pool: PgPool) {
    use locker_gateway::command::Command;
    let app = spawn_app(pool.clone()).await;
    let creds = app.provision("lk-1", 4).await;
    let expiring = app
        .app
        .commands()
        .queue(
            device("lk-1"),
            Command::Unlock { door: 1 },
            Duration::from_millis(300),
        )
        .await
        .expect("queued");
    let cancelled = app
        .app
        .commands()
        .queue(
            device("lk-1"),
            Command::Unlock { door: 3 },
            Duration::from_secs(60),
        )
        .await
        .expect("queued");
    assert!(app.app.commands().cancel(cancelled).await.expect("cancel"));
    assert!(
        !app.app.commands().cancel(cancelled).await.expect("cancel"),
        "cancelled twice"
    );
    eventually("the first expires", || async {
        state_of(&pool, expiring).await == "expired"
    })
    .await;
    // The locker comes now: neither command reaches it.
    let locker = app.locker(&creds, Duration::from_secs(3600));
    let mut watch = locker.watch();
    expect(&mut watch, WAIT, |h| {
        matches!(h, Happening::Connected { .. }).then_some(())
    })
    .await
    .expect("connected");
    eventually("online", || app.online("lk-1")).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    while let Ok(h) = watch.try_recv() {
        assert!(
            !matches!(h, Happening::Received(_)),
            "a dead command reached the locker"
        );
    }
    assert_eq!(state_of(&pool, cancelled).await, "cancelled");
    let listed = locker_gateway::command::queue::list(&pool, Some("lk-1"), None, 10)
        .await
        .expect("list");
    assert_eq!(listed.len(), 2);
}

#[sqlx::test]
async fn commands_carry_a_deadline_in_the_lockers_own_clock(pool: PgPool) {
    // A copy that reaches the locker after the caller was told "timeout" is refused as expired by
    // the locker itself (see the simulator's refusal tests), so the deadline must be in its clock.
    let app = spawn_app(pool.clone()).await;
    let _locker = online_locker(&app, "lk-1").await;
    let (_tap, mut seen) = app.tap("lockers/lk-1/down");
    app.app
        .commands()
        .unlock(device("lk-1"), 1)
        .await
        .expect("executed");
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
async fn commands_in_flight_when_the_gateway_dies_are_settled_by_asking(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let addr = app.addr;
    let locker = online_locker(&app, "lk-1").await;
    let mut watch = locker.watch();
    // The locker executes the unlock but its ack is lost; the gateway dies while it waits.
    let sending = unlock_with_lost_ack(&app, &locker).await;
    sending.abort();
    let options = (*pool.connect_options()).clone();
    drop(app); // no graceful stop: the broker goes, the caller is gone
    let pool = PgPool::connect_with(options).await.expect("pool");
    let app = locker_gateway::app::App::with_pool(&crate::helpers::test_config(addr), pool.clone())
        .await
        .expect("restarted");
    eventually("the command is settled by asking the locker", || async {
        settled(&pool).await.1.as_deref() == Some("state_report")
    })
    .await;
    let (state, _, attempts) = settled(&pool).await;
    assert_eq!(
        (state.as_str(), attempts),
        ("executed", 1),
        "settled, never sent again"
    );
    let mut opened = 0;
    while let Ok(h) = watch.try_recv() {
        if matches!(&h, Happening::Sent(p) if p.contains("door_event")) {
            opened += 1;
        }
    }
    assert_eq!(opened, 1, "the door opened once");
    app.run_until_stopped(async {}).await;
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
    let outcome = app
        .app
        .commands()
        .unlock(device("lk-1"), 4)
        .await
        .expect("executed");
    assert_eq!(outcome.door, Some(DoorResult::Opened));
    let (state, _, attempts) = command_row(&pool, outcome.command_id).await;
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
    let outcome = app
        .app
        .commands()
        .unlock(device("lk-1"), 2)
        .await
        .expect("executed");
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
async fn a_slow_state_report_still_settles_the_command(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let locker = online_locker(&app, "lk-1").await;
    locker
        .turn(Knob::StateReports(simulator::mqtt::Reports::Slow(
            Duration::from_secs(1),
        )))
        .await;
    let sending = unlock_with_lost_ack(&app, &locker).await;
    locker.turn(Knob::Drop).await;
    locker.turn(Knob::Reconnect).await;
    eventually("the command is settled from the late report", || async {
        settled(&pool).await.1.as_deref() == Some("state_report")
    })
    .await;
    assert_eq!(settled(&pool).await.0, "executed");
    let _ = sending.await;
}

#[sqlx::test]
async fn a_missing_state_report_is_asked_for_again_then_surfaced(pool: PgPool) {
    // Tests ask again after 1 s and surface after 4 s (helpers::test_config).
    let app = spawn_app(pool.clone()).await;
    let mut events = app.app.events();
    let locker = online_locker(&app, "lk-1").await;
    locker
        .turn(Knob::StateReports(simulator::mqtt::Reports::Missing))
        .await;
    let mut watch = locker.watch();
    let sending = unlock_with_lost_ack(&app, &locker).await;
    locker.turn(Knob::Drop).await;
    locker.turn(Knob::Reconnect).await;
    // The locker ignores the queries: asked more than once, then surfaced as having no report.
    let mut queries = 0;
    while queries < 2 {
        let got = expect(&mut watch, WAIT, |h| match h {
            Happening::Received(p) if String::from_utf8_lossy(p).contains("query_state") => {
                Some(())
            }
            _ => None,
        })
        .await;
        assert!(got.is_some(), "the gateway did not ask again");
        queries += 1;
    }
    let unknown = crate::helpers::expect_event(&mut events, "command.unknown", "lk-1").await;
    assert_eq!(unknown.data["reason"], "no_report");
    assert_eq!(settled(&pool).await.0, "unknown");
    let _ = sending.await;
}
