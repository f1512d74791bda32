//! Commands whose answer was lost (reconnect, reboot, gateway crash, slow or missing report), and
//! commands queued for a locker that is away.

use std::time::Duration;

use locker_gateway::command::{CommandError, DoorResult};
use simulator::mqtt::{Happening, Knob, expect};
use sqlx::PgPool;

use crate::command_helpers::*;
use crate::helpers::{WAIT, device, eventually, in_both_modes, on_storage, spawn_app};

in_both_modes! {
async fn an_answer_lost_with_the_connection_is_settled_by_asking_not_by_resending(backend: Backend) {
    let app = backend.spawn().await;
    let locker = online_locker(&app, "lk-1").await;
    let sending = unlock_with_lost_ack(&app, &locker).await;
    // The connection drops before any resend; the locker comes back (same boot, new session).
    locker.turn(Knob::Drop).await;
    locker.turn(Knob::Reconnect).await;
    eventually(
        "the command is settled from the locker's report",
        || async { settled(&app.storage).await.1.as_deref() == Some("state_report") },
    )
    .await;
    let (state, _, attempts) = settled(&app.storage).await;
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
}

in_both_modes! {
async fn a_reboot_mid_command_leaves_the_outcome_unknown_and_tells_operators(backend: Backend) {
    let app = backend.spawn().await;
    let mut events = app.app.events();
    let locker = online_locker(&app, "lk-1").await;
    let sending = unlock_with_lost_ack(&app, &locker).await;
    locker.turn(Knob::Reboot).await;
    let unknown = crate::helpers::expect_event(&mut events, "command.unknown", "lk-1").await;
    let (state, settled_by, attempts) = settled(&app.storage).await;
    assert_eq!(
        unknown.data["command_id"],
        serde_json::json!(sending_id(&app.storage).await)
    );
    assert_eq!((state.as_str(), settled_by, attempts), ("unknown", None, 1));
    assert!(matches!(
        sending.await.expect("task"),
        Err(CommandError::Timeout { .. })
    ));
}
}

in_both_modes! {
async fn a_queued_command_is_delivered_when_the_locker_comes(backend: Backend) {
    use locker_gateway::command::Command;
    let app = backend.spawn().await;
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
    assert_eq!(state_of(&app.storage, id).await, "pending");
    // A queued command whose stored body cannot be read, beside it: skipped, logged, counted
    // and flagged; the good one still goes out.
    let broken = app
        .app
        .commands()
        .queue(device("lk-1"), Command::Unlock { door: 3 }, Duration::from_secs(60))
        .await
        .expect("queued");
    on_storage!(&app.storage, |pool| sqlx::query(
        "UPDATE commands SET body = '{}' WHERE id = $1"
    )
    .bind(broken)
    .execute(pool)
    .await
    .expect("broken")
    .rows_affected());
    let locker = app.locker(&creds, Duration::from_secs(3600));
    let mut watch = locker.watch();
    let opened = expect(&mut watch, WAIT, |h| match h {
        Happening::Sent(p) if p.contains("door_event") && p.contains("opened") => Some(()),
        _ => None,
    })
    .await;
    assert!(opened.is_some(), "the queued unlock did not open the door");
    eventually("the queued command is executed", || async {
        state_of(&app.storage, id).await == "executed"
    })
    .await;
    // Trying again cannot help: it is expired at once and flagged for operators.
    assert_eq!(state_of(&app.storage, broken).await, "expired", "never sent");
    let admin = crate::accounts::operator(&app, "ops@example.com").await;
    let stuck = crate::workers::stuck_list(&app, &admin).await;
    assert_eq!(stuck.as_array().map(Vec::len), Some(1), "{stuck}");
    assert_eq!(stuck[0]["worker"], "queue_delivery");
    assert_eq!(stuck[0]["item"], format!("command {broken}"));
    assert!(
        stuck[0]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("cannot be read")),
        "{stuck}"
    );
    let announced: i64 = on_storage!(&app.storage, |pool| sqlx::query_scalar(
        "SELECT COUNT(*) FROM outbox WHERE event_type = 'worker.item_stuck'"
    )
    .fetch_one(pool)
    .await
    .expect("counted"));
    assert_eq!(announced, 1, "announced once");
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(r#"locker_worker_item_failures_total{worker="queue_delivery"}"#)
            && metrics.contains(r#"locker_worker_items_flagged_total{worker="queue_delivery"}"#),
        "counted and flagged: {metrics}"
    );
}
}

in_both_modes! {
async fn a_queued_command_past_its_time_to_live_is_never_executed(backend: Backend) {
    use locker_gateway::command::Command;
    let app = backend.spawn().await;
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
        state_of(&app.storage, expiring).await == "expired"
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
    assert_eq!(state_of(&app.storage, cancelled).await, "cancelled");
    let listed = locker_gateway::command::queue::list(&app.storage, Some("lk-1"), None, 10)
        .await
        .expect("list");
    assert_eq!(listed.len(), 2);
}
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
    // Its tasks live on in this test process (a dead process's would not): its lease is given
    // up here as it would expire, and its renewals then find it gone.
    sqlx::query("DELETE FROM gateways")
        .execute(&pool)
        .await
        .expect("lease");
    let app = locker_gateway::app::App::with_pool(&crate::helpers::test_config(addr), pool.clone())
        .await
        .expect("restarted");
    eventually("the command is settled by asking the locker", || async {
        settled(&pool.clone().into()).await.1.as_deref() == Some("state_report")
    })
    .await;
    let (state, _, attempts) = settled(&pool.clone().into()).await;
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

in_both_modes! {
async fn a_slow_state_report_still_settles_the_command(backend: Backend) {
    let app = backend.spawn().await;
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
        settled(&app.storage).await.1.as_deref() == Some("state_report")
    })
    .await;
    assert_eq!(settled(&app.storage).await.0, "executed");
    let _ = sending.await;
}
}

in_both_modes! {
async fn a_missing_state_report_is_asked_for_again_then_surfaced(backend: Backend) {
    // Tests ask again after 1 s and surface after 4 s (helpers::test_config).
    let app = backend.spawn().await;
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
    assert_eq!(settled(&app.storage).await.0, "unknown");
    let _ = sending.await;
}
}
