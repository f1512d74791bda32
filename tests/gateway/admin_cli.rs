//! Administrative commands in edge mode: they never make an empty database by accident, they say
//! which database they use, and `backup` takes a consistent copy that restores. Real processes.

use crate::helpers::tempfile_dir::Dir;
use crate::process::run_binary;

fn in_dir(dir: &Dir) -> String {
    dir.path().display().to_string()
}

#[test]
fn an_admin_command_without_a_database_refuses_and_names_the_path() {
    let empty = Dir::new();
    let data = in_dir(&empty);
    let (code, stderr) = run_binary(&["device", "list"], &[("LOCKER_DATA_DIR", &data)]);
    assert_ne!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("no gateway database at") && stderr.contains(&data),
        "{stderr}"
    );
    assert!(
        !empty.path().join("gateway.sqlite").exists(),
        "no empty database was made"
    );
}

/// An edge data directory, migrated, with locker `lk-0001` of 4 doors; `add`'s standard error.
fn edge_with_a_locker() -> (Dir, String) {
    let live = Dir::new();
    let data = in_dir(&live);
    let env = [("LOCKER_DATA_DIR", data.as_str())];
    let (code, stderr) = run_binary(&["migrate"], &env);
    assert_eq!(code, Some(0), "{stderr}");
    let (code, stderr) = run_binary(&["device", "add", "lk-0001", "--doors", "4"], &env);
    assert_eq!(code, Some(0), "{stderr}");
    (live, stderr)
}

#[test]
fn a_backup_restores_the_data_and_never_overwrites_a_file() {
    let (live, stderr) = edge_with_a_locker();
    let data = in_dir(&live);
    let env = [("LOCKER_DATA_DIR", data.as_str())];
    assert!(
        stderr.contains("using the SQLite database") && stderr.contains("gateway.sqlite"),
        "says which database: {stderr}"
    );
    let copies = Dir::new();
    let backup = copies.path().join("backup.sqlite");
    let target = backup.display().to_string();
    let (code, stderr) = run_binary(&["backup", &target], &env);
    assert_eq!(code, Some(0), "{stderr}");
    let (code, stderr) = run_binary(&["backup", &target], &env);
    assert_ne!(
        code,
        Some(0),
        "an existing file is not overwritten: {stderr}"
    );
    // Restored: the copy as another data directory's database.
    let restored = Dir::new();
    std::fs::copy(&backup, restored.path().join("gateway.sqlite")).expect("restored");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_locker-gateway"))
        .args(["device", "list"])
        .env_clear()
        .env("LOCKER_DATA_DIR", restored.path())
        .output()
        .expect("runs");
    assert!(output.status.success());
    let listed = String::from_utf8_lossy(&output.stdout);
    assert!(listed.contains("lk-0001"), "{listed}");
}

#[tokio::test]
async fn logs_to_a_file_carry_no_colour_codes_and_a_clean_start_logs_no_error() {
    let data = Dir::new();
    let keeping = crate::process::Keeping::Edge(data.path().to_owned());
    let mqtt = crate::helpers::free_addr();
    let mut gateway = crate::process::GatewayProcess::start_on(
        &keeping,
        mqtt,
        crate::helpers::free_addr(),
        &[("RUST_LOG", "info,rumqttd=warn,sqlx=warn".to_owned())],
    )
    .await;
    assert!(gateway.terminate().success());
    let log = crate::process::log_file(mqtt, gateway.http);
    let written = std::fs::read_to_string(&log).expect("the log");
    assert!(written.contains("gateway running"), "{written}");
    assert!(
        !written.contains('\u{1b}'),
        "colour codes in a file: {written}"
    );
    // The broker's own start-up probe login is not an error (rumqttd logs a refused login as one;
    // the harness's readiness check, a TCP connect closed at once, is rumqttd's to log).
    assert!(
        !written.contains("InvalidAuth") && !written.contains("probe-"),
        "the start-up probe logged: {written}"
    );
    assert!(
        !written
            .lines()
            .any(|l| l.contains("ERROR") && l.contains("locker_gateway")),
        "an error of the gateway at a clean start: {written}"
    );
}

#[test]
fn an_operator_queues_new_settings_from_the_command_line_and_bad_ones_are_refused() {
    let (live, _) = edge_with_a_locker();
    let data = in_dir(&live);
    let env = [("LOCKER_DATA_DIR", data.as_str())];
    let settings = |heartbeat: &'static str| {
        [
            "command",
            "configure",
            "lk-0001",
            "--heartbeat-secs",
            heartbeat,
            "--open-window-ms",
            "10000",
            "--pulse-ms",
            "300",
            "--ajar-alarm-secs",
            "120",
        ]
    };
    let (code, stderr) = run_binary(&settings("4"), &env);
    assert_ne!(code, Some(0), "a heartbeat of 4 s is refused: {stderr}");
    assert!(
        stderr.contains("heartbeat_secs must be 5 to 3600"),
        "{stderr}"
    );
    let (code, stderr) = run_binary(&settings("30"), &env);
    assert_eq!(code, Some(0), "{stderr}");
    let listed = std::process::Command::new(env!("CARGO_BIN_EXE_locker-gateway"))
        .args(["command", "list", "--device", "lk-0001"])
        .env_clear()
        .env("LOCKER_DATA_DIR", live.path())
        .output()
        .expect("runs");
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert_eq!(
        listed.matches("configure").count(),
        1,
        "one command queued: {listed}"
    );
    assert!(listed.contains("pending"), "{listed}");
}
