//! The conformance tool against the simulator's lock boards: a well-behaved board passes every
//! case (the reboot included, by power-cycling it), a misbehaving one fails with the bytes
//! exchanged, and the command line says so in its exit code.

use std::sync::Arc;
use std::time::Duration;

use firmware_protocol::{DeviceId, DeviceSecret};
use simulator::conform::{Reboot, Target, Verdict, run_serial};
use simulator::serial::{BoardConfig, SerialKnob, SimulatedBus, spawn_bus};

const ADDRESS: u8 = 3;
const SECRET: [u8; 32] = [0x22; 32];

fn device() -> DeviceId {
    DeviceId::new("board-3").expect("id")
}

fn bus() -> Arc<SimulatedBus> {
    Arc::new(
        spawn_bus(vec![BoardConfig {
            address: ADDRESS,
            device_id: device(),
            key: DeviceSecret::from_bytes(SECRET).tag_key(),
            doors: 4,
        }])
        .expect("a pseudo-terminal"),
    )
}

fn target(reboot: Option<Reboot>) -> Target {
    Target {
        device_id: device(),
        key: DeviceSecret::from_bytes(SECRET).tag_key(),
        door: 2,
        wait: Duration::from_millis(200),
        reboot,
    }
}

/// Power-cycles the simulated board.
fn power_cycle(bus: &Arc<SimulatedBus>) -> Reboot {
    let bus = bus.clone();
    Box::new(move || {
        let bus = bus.clone();
        Box::pin(async move {
            bus.turn(SerialKnob::Reboot(ADDRESS)).await;
            Ok(())
        })
    })
}

#[tokio::test]
async fn the_simulated_board_passes_every_case() {
    let bus = bus();
    let report = run_serial(bus.path(), ADDRESS, target(Some(power_cycle(&bus))))
        .await
        .expect("the port opens");
    let text = report.to_text();
    eprintln!("{text}");
    assert!(report.passed(), "{text}");
    assert_eq!(report.cases.len(), 16, "{text}");
    assert_eq!(report.exit_code(), 0);
    assert!(text.contains("16 of 16 cases passed"), "{text}");
}

#[tokio::test]
async fn a_board_that_answers_too_late_fails_with_the_bytes_exchanged() {
    let bus = bus();
    bus.turn(SerialKnob::Slow(ADDRESS, Duration::from_millis(400)))
        .await;
    let report = run_serial(bus.path(), ADDRESS, target(None))
        .await
        .expect("the port opens");
    assert_eq!(report.exit_code(), 1);
    let hello = &report.cases[0];
    assert_eq!(hello.name, "hello");
    assert!(
        matches!(&hello.verdict, Verdict::Failed(why) if why.contains("no answer")),
        "{:?}",
        hello.verdict
    );
    // What was sent is shown, and nothing after it could run.
    assert!(
        hello.exchanged.iter().any(|l| l.starts_with("> a55a")),
        "{:?}",
        hello.exchanged
    );
    assert!(
        report.cases[1..]
            .iter()
            .all(|c| matches!(c.verdict, Verdict::NotRun(_)))
    );
    assert!(report.to_text().contains("FAIL    hello"));
}

#[tokio::test]
async fn a_board_answering_as_another_address_fails() {
    let bus = bus();
    bus.turn(SerialKnob::AnswerAs(ADDRESS, Some(9))).await;
    let report = run_serial(bus.path(), ADDRESS, target(None))
        .await
        .expect("the port opens");
    assert_eq!(report.failed(), vec!["hello"], "{}", report.to_text());
    assert!(report.to_text().contains("an answer from address 9"));
}

#[tokio::test]
async fn the_command_line_runs_the_cases_and_says_what_did_not_run() {
    let bus = bus();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_simulator"))
        .args(["conform", "--serial", bus.path(), "--address", "3"])
        .args(["--device", "board-3", "--door", "2"])
        .env("LOCKER_DEVICE_SECRET", hex::encode(SECRET))
        .output()
        .await
        .expect("the simulator runs");
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(text.contains("PASS    unlock_queue"), "{text}");
    assert!(text.contains("NOT RUN reboot"), "{text}");
    assert!(text.contains("15 of 16 cases passed"), "{text}");
}
