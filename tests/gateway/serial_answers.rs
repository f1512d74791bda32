//! Serial answers belong to their request: a backlog of answers a board sends after it stalled,
//! or an answer that comes after its request was given up, is never taken for the answer to a
//! later request, so commands stay answered in time.

use std::time::Duration;

use locker_gateway::command::DoorResult;
use locker_gateway::serial::BusStats;
use simulator::serial::SerialKnob;

use crate::helpers::{device, eventually, in_both_modes};
use crate::serial::cabinet_with;

in_both_modes! {
    /// The boards stop reading the line for three seconds while the gateway keeps polling, then
    /// answer every request that piled up. Unlocks right after are answered in time (1 s) with
    /// the right door.
    async fn a_backlog_of_answers_is_not_taken_for_later_answers(backend: Backend) {
        let (app, bus) = cabinet_with(backend, Duration::from_millis(100), |config| {
            config.command_deadline = Duration::from_secs(1);
        })
        .await;
        bus.turn(SerialKnob::Stall(Duration::from_secs(3))).await;
        eventually("the boards are offline while they stall", || async {
            !app.online("cab-b1").await
        })
        .await;
        eventually("the boards are back", || async {
            app.online("cab-b1").await && app.online("cab-b2").await
        })
        .await;
        for door in 1..=4 {
            let outcome = app
                .app
                .commands()
                .unlock(device("cab-b1"), door)
                .await
                .unwrap_or_else(|e| panic!("door {door}: {e:?}"));
            assert_eq!(outcome.door, Some(DoorResult::Opened), "door {door}");
        }
        let stats = &app.app.serial_buses()[0];
        assert!(
            BusStats::get(&stats.not_the_answer) + BusStats::get(&stats.flushed_bytes) > 0,
            "the backlog was recognised and dropped"
        );
    }
}

in_both_modes! {
    /// A board answers later than the gateway waits for a while, then at its usual speed: the
    /// late answers are dropped and every later command gets its own answer in time.
    async fn late_answers_are_dropped_and_later_commands_answered_in_time(backend: Backend) {
        let (app, bus) = cabinet_with(backend, Duration::from_millis(100), |config| {
            config.command_deadline = Duration::from_secs(1);
        })
        .await;
        bus.turn(SerialKnob::Slow(1, Duration::from_millis(150))).await;
        tokio::time::sleep(Duration::from_millis(800)).await;
        bus.turn(SerialKnob::Slow(1, Duration::ZERO)).await;
        eventually("cab-b1 online", || app.online("cab-b1")).await;
        for door in 1..=4 {
            let outcome = app
                .app
                .commands()
                .unlock(device("cab-b1"), door)
                .await
                .unwrap_or_else(|e| panic!("door {door}: {e:?}"));
            assert_eq!(outcome.door, Some(DoorResult::Opened), "door {door}");
        }
    }
}
