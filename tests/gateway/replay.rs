//! A replayed old `hello` changes nothing: the database fences it, and the gateway's memory does
//! not switch to that session either, so the live locker goes on being heard and answered.

use std::time::Duration;

use simulator::mqtt::{Happening, Knob, expect};

use crate::helpers::{WAIT, eventually, in_both_modes};

in_both_modes! {
    /// Capture a hello, reconnect more times than the guard remembers sessions, replay the hello,
    /// then unlock: executed and answered, the locker online, its heartbeats accepted.
    async fn a_replayed_old_hello_does_not_cut_a_live_locker_off(backend: Backend) {
        let app = backend.spawn().await;
        let creds = app.provision("lk-1", 4).await;
        let stats = app.app.device_link().stats();
        let locker = app.locker(&creds, Duration::from_secs(3600));
        let mut watch = locker.watch();
        let hello = expect(&mut watch, WAIT, |h| match h {
            Happening::Sent(payload) if payload.contains("hello") => Some(payload.clone()),
            _ => None,
        })
        .await
        .expect("hello sent");
        eventually("online", || async { app.online("lk-1").await }).await;
        let reconnects = firmware_protocol::session::REMEMBERED_SESSIONS + 2;
        for _ in 0..reconnects {
            let before = stats.accepted();
            locker.turn(Knob::Reconnect).await;
            expect(&mut watch, WAIT, |h| match h {
                Happening::Connected { session } => Some(*session),
                _ => None,
            })
            .await
            .expect("reconnected");
            eventually("the new hello is accepted", || async {
                stats.accepted() > before
            })
            .await;
        }
        // The captured hello, replayed on the locker's topic.
        let replayed = stats.replayed();
        let (mut injector, _) = app.link("attacker");
        injector
            .publish("lockers/lk-1/up", hello.into_bytes())
            .expect("published");
        eventually("the replay is dropped", || async {
            stats.replayed() > replayed
        })
        .await;
        // The live session goes on: a heartbeat is accepted, an unlock executed and answered.
        let before = stats.accepted();
        locker.turn(Knob::Heartbeat).await;
        eventually("the live locker's heartbeat is accepted", || async {
            stats.accepted() > before
        })
        .await;
        let outcome = app.unlock("lk-1", 1).await.expect("executed and answered");
        assert!(outcome.door.is_some(), "{outcome:?}");
        assert!(app.online("lk-1").await);
    }
}
