//! The C library's example lock board (`firmware-protocol/c/examples/lock_board.c`, a Linux
//! process speaking over a serial port with termios) against the real gateway: the board opens
//! one pseudo-terminal, the gateway another, and the test carries the bytes between them as a
//! cable would. Online by polling, unlocks and their door events, settings, a jam, a forced door,
//! a rental, and a power cut mid-command settled by asking the rebooted board.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use locker_gateway::command::{Command, CommandError, DoorResult};
use serde_json::json;
use sqlx::PgPool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{Backend, TestApp, device, eventually, expect_event, provision};
use crate::rentals::{funded, money, plan, rent};

/// Two pseudo-terminals joined by a task that copies bytes both ways: the gateway opens
/// `gateway_path`, the board `board_path`, each as it would open `/dev/ttyUSB0`.
pub(crate) struct Cable {
    pub(crate) gateway_path: String,
    pub(crate) board_path: String,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Cable {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

pub(crate) fn cable() -> Cable {
    use tokio_serial::SerialPort;
    let (gateway_end, gateway_far) = tokio_serial::SerialStream::pair().expect("a pseudo-terminal");
    let (board_end, board_far) = tokio_serial::SerialStream::pair().expect("a pseudo-terminal");
    let gateway_path = gateway_far.name().expect("named");
    let board_path = board_far.name().expect("named");
    // Each far end is opened by its path (exclusively, as a real port is).
    drop((gateway_far, board_far));
    let (gateway_rx, gateway_tx) = tokio::io::split(gateway_end);
    let (board_rx, board_tx) = tokio::io::split(board_end);
    Cable {
        gateway_path,
        board_path,
        tasks: vec![
            tokio::spawn(carry(gateway_rx, board_tx)),
            tokio::spawn(carry(board_rx, gateway_tx)),
        ],
    }
}

/// Copies bytes from one end to the other; while nobody holds an end open, waits and tries again.
async fn carry(
    mut from: impl tokio::io::AsyncRead + Unpin,
    mut to: impl tokio::io::AsyncWrite + Unpin,
) {
    let mut buf = [0u8; 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(n) if n > 0 => {
                // Nobody at the other end: the bytes are lost, as on an unplugged cable.
                let _ = to.write_all(&buf[..n]).await;
            }
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

pub(crate) const ADDRESS: u8 = 5;
pub(crate) const ID: &str = "c-board";

/// The C board as a child process, at address 5 with four doors.
type Board = crate::c_build::Process;

async fn start_board(path: &str, secret_hex: &str) -> Board {
    let exe = crate::c_build::example("lock_board", &[]);
    Board::start(
        &exe,
        &[path, &ADDRESS.to_string(), ID, secret_hex, "4"],
        &[],
    )
    .await
}

/// A door's sensor as the gateway recorded it.
async fn sensor(pool: &PgPool, door: i32) -> String {
    sqlx::query_scalar("SELECT sensor FROM doors WHERE device_id = $1 AND door = $2")
        .bind(ID)
        .bind(door)
        .fetch_one(pool)
        .await
        .unwrap_or_default()
}

async fn gateway(pool: PgPool, cable: &Cable) -> TestApp {
    let line = format!("{}={ADDRESS}:{ID}", cable.gateway_path);
    Backend::Fleet(pool)
        .spawn_with(move |config| {
            let mut buses = locker_gateway::serial::parse_buses(&line).expect("buses");
            for bus in &mut buses {
                bus.poll_every = Duration::from_millis(100);
                bus.gap = Duration::from_millis(2);
            }
            config.serial_buses = buses;
        })
        .await
}

#[sqlx::test]
async fn the_c_lock_board_works_with_the_gateway(pool: PgPool) {
    let registry =
        locker_gateway::device::DeviceRegistry::new(Backend::Fleet(pool.clone()).storage());
    let creds = provision(&registry, ID, 4).await;
    let secret = creds.secret.mqtt_password();
    let cable = cable();
    let mut board = start_board(&cable.board_path, &secret).await;
    let app = gateway(pool.clone(), &cable).await;
    eventually("the board online", || async { app.online(ID).await }).await;
    let firmware: String = sqlx::query_scalar("SELECT firmware FROM devices WHERE id = $1")
        .bind(ID)
        .fetch_one(&pool)
        .await
        .expect("device");
    assert_eq!(firmware, "c-lock-board-1.0");

    // An unlock: executed, the door's opening came back by polling, one pulse.
    let commands = app.app.commands();
    let opened = commands.unlock(device(ID), 3).await.expect("executed");
    assert_eq!(opened.door, Some(DoorResult::Opened));
    assert_eq!(
        board.lines("pulse"),
        vec![format!("pulse 3 {}", opened.command_id)]
    );
    eventually("door 3 open", || async { sensor(&pool, 3).await == "open" }).await;
    board.tell("close 3").await;
    eventually("door 3 closed", || async {
        sensor(&pool, 3).await == "closed"
    })
    .await;

    // Settings, then a jammed door: executed, and it did not open.
    let settings = Command::configure(60, 1000, 300, 0).expect("in range");
    commands
        .send(device(ID), settings)
        .await
        .expect("configured");
    board.expect("configured 1000 300").await;
    board.tell("jam 4").await;
    let jammed = commands.unlock(device(ID), 4).await.expect("executed");
    assert_eq!(jammed.door, Some(DoorResult::Jammed));

    // A door forced open raises its alarm.
    let mut events = app.app.events();
    board.tell("force 1").await;
    expect_event(&mut events, "alarm.forced_open", ID).await;
    eventually("door 1 open", || async { sensor(&pool, 1).await == "open" }).await;

    // A rental on door 2, from start to end.
    plan(&app).await;
    let (token, user) = funded(&app, "c@example.com", 5000).await;
    let started = rent(&app, &token, json!({ "device_id": ID, "door": 2 })).await;
    assert_eq!(started.status(), 201);
    let rental: serde_json::Value = started.json().await.expect("rental");
    assert_eq!(money(&app, user).await, (3000, 2000));
    board.tell("close 2").await;
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
    assert_eq!(money(&app, user).await, (5000, 0));

    // A power cut right after a pulse: no answer. The board reboots (a new process, a new
    // session); the gateway asks it, learns nothing of the command, records it unknown and
    // never sends it again.
    board.tell("cut").await;
    let cut = commands.unlock(device(ID), 3).await;
    assert!(matches!(cut, Err(CommandError::Timeout { .. })), "{cut:?}");
    let status = board.child.wait().await.expect("the board ended");
    assert_eq!(status.code(), Some(75), "a power cut");
    let pulses_before = board.lines("pulse").len();
    let rebooted = start_board(&cable.board_path, &secret).await;
    expect_event(&mut events, "command.unknown", ID).await;
    rebooted.expect("session").await;
    // The gateway has its new session's hello before the next command is sent.
    let session: i64 = rebooted.lines("session")[0]
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("the session's number");
    eventually("the new session recorded", || async {
        let recorded: Option<i64> = sqlx::query_scalar("SELECT session FROM devices WHERE id = $1")
            .bind(ID)
            .fetch_one(&pool)
            .await
            .unwrap_or(None);
        recorded == Some(session)
    })
    .await;
    let again = commands.unlock(device(ID), 2).await.expect("executed");
    assert_eq!(again.door, Some(DoorResult::Opened));
    assert_eq!(
        rebooted.lines("pulse"),
        vec![format!("pulse 2 {}", again.command_id)],
        "the unsettled command was never sent into the new session"
    );
    assert_eq!(
        pulses_before, 5,
        "unlock, jam, rental start and end, the cut one"
    );
}

/// The conformance tool (`simulator conform`) against the C board: every case passes, the reboot
/// included (the board's process killed and started again, as a power cycle).
#[tokio::test]
async fn the_c_lock_board_passes_the_conformance_cases() {
    use simulator::conform::{Reboot, Target, run_serial};
    let secret = firmware_protocol::DeviceSecret::from_bytes([0x31; 32]);
    let cable = cable();
    let board = Arc::new(tokio::sync::Mutex::new(
        start_board(&cable.board_path, &secret.mqtt_password()).await,
    ));
    let (path, hex) = (cable.board_path.clone(), secret.mqtt_password());
    let power = board.clone();
    let pulsed_before = Arc::new(Mutex::new(Vec::new()));
    let pulsed = pulsed_before.clone();
    let reboot: Reboot = Box::new(move || {
        let (power, path, hex) = (power.clone(), path.clone(), hex.clone());
        let pulsed = pulsed.clone();
        Box::pin(async move {
            let mut board = power.lock().await;
            board.child.kill().await.map_err(|e| e.to_string())?;
            *pulsed.lock().expect("pulses") = board.lines("pulse");
            *board = start_board(&path, &hex).await;
            Ok(())
        })
    });
    let target = Target {
        device_id: device(ID),
        key: secret.tag_key(),
        door: 2,
        wait: Duration::from_millis(200),
        reboot: Some(reboot),
    };
    let report = run_serial(&cable.gateway_path, ADDRESS, target)
        .await
        .expect("the port opens");
    let text = report.to_text();
    assert!(report.passed(), "{text}");
    assert_eq!(report.cases.len(), 16, "{text}");
    // One pulse for the unlock, whatever was resent, refused or replayed; none after the reboot.
    let pulsed = pulsed_before.lock().expect("pulses").clone();
    assert!(
        pulsed.len() == 1 && pulsed[0].starts_with("pulse 2 "),
        "{pulsed:?}"
    );
    assert_eq!(board.lock().await.lines("pulse"), Vec::<String>::new());
}
