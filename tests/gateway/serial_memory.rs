//! A bus of lock boards on any byte stream, not only a serial port: the same boards behind an
//! in-memory pipe come online by polling, open their doors, and a silent board goes offline
//! (its silence written by the device link, in order with its answers) and comes back.

use std::time::Duration;

use locker_gateway::command::DoorResult;
use locker_gateway::serial::BusStats;
use simulator::serial::{BoardConfig, BoardEvent, SerialKnob, spawn_bus_on};

use crate::helpers::{device, eventually, in_both_modes};

/// Attaches a bus with the boards of `spec` (`memory=address:device,…`) to `app` on the
/// gateway's end of an in-memory pipe, with short timings; the pipe opens once (opening it
/// again, after it failed, finds nothing).
pub(crate) fn attach_pipe(
    app: &mut locker_gateway::app::App,
    spec: &str,
    gateway_end: tokio::io::DuplexStream,
) -> std::sync::Arc<BusStats> {
    let mut settings = locker_gateway::serial::parse_buses(spec)
        .expect("buses")
        .remove(0);
    settings.poll_every = Duration::from_millis(100);
    settings.gap = Duration::from_millis(2);
    settings.timeout = Duration::from_millis(100);
    let mut line = Some(gateway_end);
    app.attach_serial_bus(settings, move |_| {
        line.take()
            .ok_or_else(|| std::io::Error::other("the pipe is gone"))
    })
    .expect("the device link runs")
}

in_both_modes! {
    /// Two boards behind a `tokio::io::duplex` pipe attached to a running gateway.
    async fn boards_behind_an_in_memory_pipe_work_like_those_on_a_port(backend: Backend) {
        let mut app = backend.spawn().await;
        let mut boards = Vec::new();
        for (address, id) in [(1u8, "mem-b1"), (2, "mem-b2")] {
            let creds = app.provision(id, 4).await;
            boards.push(BoardConfig {
                address,
                device_id: creds.device_id,
                key: creds.secret.tag_key(),
                doors: 4,
            });
        }
        let (gateway_end, boards_end) = tokio::io::duplex(4096);
        let mut bus = spawn_bus_on(boards, boards_end);
        let stats = attach_pipe(&mut app.app, "memory=1:mem-b1,2:mem-b2", gateway_end);
        eventually("both boards online", || async {
            app.online("mem-b1").await && app.online("mem-b2").await
        })
        .await;
        let outcome = app
            .app
            .commands()
            .unlock(device("mem-b2"), 3)
            .await
            .expect("executed");
        assert_eq!(outcome.door, Some(DoorResult::Opened));
        assert_eq!(
            bus.event(Duration::from_secs(1)).await,
            Some(BoardEvent::Unlocked { address: 2, door: 3 })
        );
        assert!(BusStats::get(&stats.polls) > 0);
        assert_eq!(BusStats::get(&stats.opened), 1);
        // A board falls silent: offline after its missed polls, the other carries on.
        bus.turn(SerialKnob::Dead(1, true)).await;
        eventually("mem-b1 offline", || async { !app.online("mem-b1").await }).await;
        assert!(app.online("mem-b2").await);
        bus.turn(SerialKnob::Dead(1, false)).await;
        eventually("mem-b1 back", || app.online("mem-b1")).await;
    }
}
