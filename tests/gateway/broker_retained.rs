//! The embedded broker keeps nothing a locker sends for later (issue 21): presence lives in the
//! database, so a locker's retained `status` and its retained last will are passed on as they
//! come and not stored, and a subscriber that comes later finds nothing waiting.

use std::time::Duration;

use sqlx::PgPool;

use crate::command_helpers::online_locker;
use crate::helpers::spawn_app;
use crate::test_broker::{link_next, link_silent};

#[sqlx::test]
async fn a_lockers_retained_status_is_passed_on_but_not_kept(pool: PgPool) {
    let app = spawn_app(pool).await;
    // Listening before the locker connects: its status (retained, as PROTOCOL.md asks) arrives.
    let (_early, mut early) = app.tap("lockers/+/status");
    let locker = online_locker(&app, "lk-1").await;
    let (topic, _) = link_next(&mut early).await;
    assert_eq!(topic, "lockers/lk-1/status");
    // Coming later: nothing retained is handed over.
    let (_late, mut late) = app.tap("lockers/+/status");
    link_silent(&mut late, Duration::from_millis(500)).await;
    // Its will, also retained, is published when it vanishes, and not kept either.
    locker.stop();
    let (topic, _) = link_next(&mut early).await;
    assert_eq!(topic, "lockers/lk-1/status");
    let (_later, mut later) = app.tap("lockers/+/status");
    link_silent(&mut later, Duration::from_millis(500)).await;
}
