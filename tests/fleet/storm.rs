//! A reconnect storm through a broker with small queues: every locker drops its connection and
//! comes back at once with a new session while Mosquitto keeps at most 10 messages queued per
//! client (it drops the rest, hellos among them). A locker whose hello was lost is asked to
//! announce its session again by the first gateway that hears from it (its next heartbeat), so
//! every locker is back online in the books within about one heartbeat (1.75 to 1.9 s with a 2 s
//! heartbeat in most runs, 3.8 s in one of eight; the test allows three heartbeats and a second).

use std::time::{Duration, Instant};

use simulator::mqtt::{Happening, Knob, expect};
use sqlx::PgPool;

use crate::basics::WAIT;
use crate::harness::Fleet;
use crate::one_at_a_time;

/// Lockers in the storm.
const LOCKERS: usize = 100;
/// The lockers' heartbeat in the harness.
const HEARTBEAT: Duration = Duration::from_secs(2);

#[sqlx::test]
async fn a_reconnect_storm_through_a_broker_with_small_queues_loses_no_locker(pool: PgPool) {
    let _one = one_at_a_time().await;
    let fleet = Fleet::start(pool.clone(), LOCKERS, "max_queued_messages 10\n").await;
    let mut watches: Vec<_> = fleet.lockers.iter().map(|l| l.watch()).collect();
    let started = Instant::now();
    for locker in &fleet.lockers {
        locker.turn(Knob::Reconnect).await;
    }
    let mut sessions = Vec::new();
    for watch in &mut watches {
        let session = expect(watch, WAIT, |h| match h {
            Happening::Connected { session } => Some(*session),
            _ => None,
        })
        .await
        .expect("reconnected");
        sessions.push(i64::from(session));
    }
    let connected = started.elapsed();
    // Online in the books, each with its new session.
    let ids = fleet.ids.clone();
    let deadline = Instant::now() + HEARTBEAT * 3 + Duration::from_secs(1);
    let behind = loop {
        let current: Vec<(String, Option<i64>, bool)> =
            sqlx::query_as("SELECT id, session, online FROM devices WHERE id = ANY($1)")
                .bind(&ids)
                .fetch_all(&pool)
                .await
                .expect("devices");
        let behind: Vec<&String> = current
            .iter()
            .filter(|(id, session, online)| {
                let n = ids.iter().position(|i| i == id).expect("ours");
                !online || *session != Some(sessions[n])
            })
            .map(|(id, _, _)| id)
            .collect();
        if behind.is_empty() || Instant::now() >= deadline {
            break behind.len();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let online = started.elapsed();
    eprintln!(
        "storm: {LOCKERS} lockers reconnected in {connected:?}; all online in the books after {online:?} ({behind} behind)"
    );
    assert_eq!(
        behind,
        0,
        "{behind} of {LOCKERS} lockers not back online with their new session {:?} after the last reconnect",
        HEARTBEAT * 3 + Duration::from_secs(1)
    );
    fleet.stop_lockers();
}
