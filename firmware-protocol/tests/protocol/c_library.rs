//! The reference C library (`c/`): built with the system's C compiler as C99 with every warning
//! an error, run under AddressSanitizer and UndefinedBehaviorSanitizer, and checked against every
//! vector of `vectors/vectors.json` and the negative cases its test program builds from them.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use firmware_protocol::*;

use crate::vector_messages::{downlinks, uplinks};
use crate::vectors::{VectorFile, load};

const C_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/c");

/// A build under AddressSanitizer and UndefinedBehaviorSanitizer that stops at the first report.
pub(crate) const SANITIZED: &[&str] = &[
    "-g",
    "-O1",
    "-fsanitize=address,undefined",
    "-fno-sanitize-recover=all",
];

/// The compiler: `CC`, else `cc`.
fn compiler() -> String {
    std::env::var("CC").unwrap_or_else(|_| "cc".to_owned())
}

fn sources() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(Path::new(C_DIR).join("src"))
        .expect("c/src is readable")
        .map(|e| e.expect("c/src entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "c"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no C sources in c/src");
    files
}

/// Builds a program of the library and `files` (paths under `c/`) with `flags`; panics with one
/// line saying what is missing.
pub(crate) fn build(files: &[&str], name: &str, flags: &[&str]) -> PathBuf {
    let cc = compiler();
    let dir = std::env::temp_dir().join(format!("locker-proto-c-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a directory for the C build");
    let exe = dir.join(name);
    let output = Command::new(&cc)
        .args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"])
        .args(flags)
        .arg("-I")
        .arg(Path::new(C_DIR).join("include"))
        .args(sources())
        .args(files.iter().map(|f| Path::new(C_DIR).join(f)))
        .arg("-o")
        .arg(&exe)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "no C compiler: `{cc}` cannot run ({e}); install one (Debian: apt-get install gcc)"
            )
        });
    assert!(
        output.status.success(),
        "the C library does not build with `{cc} -std=c99 -Wall -Wextra -Werror -pedantic {}`:\n{}",
        flags.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    exe
}

/// The fields of a vector's message, for the test program to read a downlink's body and compare,
/// or to write an uplink's body and compare it with the vector's.
fn fields(name: &str) -> String {
    use firmware_protocol::binary::door_byte;
    let doors =
        |doors: &[DoorStatus]| hex::encode(doors.iter().map(|d| door_byte(*d)).collect::<Vec<_>>());
    let result = |r: CommandResult| match r {
        CommandResult::Executed => 0,
        CommandResult::Refused(reason) => reason.code(),
    };
    let list = |items: Vec<String>| {
        if items.is_empty() {
            "-".to_owned()
        } else {
            items.join(",")
        }
    };
    if let Some((_, m)) = downlinks().into_iter().find(|(n, _)| *n == name) {
        return match m {
            Downlink::Unlock(m) => format!(
                "unlock {} {} {}",
                m.command_id.get(),
                m.door,
                m.expires_at_ms.unwrap_or(0)
            ),
            Downlink::Configure(m) => format!(
                "configure {} {} {} {} {} {}",
                m.command_id.get(),
                m.heartbeat_secs,
                m.open_window_ms,
                m.pulse_ms,
                m.ajar_alarm_secs,
                m.expires_at_ms.unwrap_or(0)
            ),
            Downlink::QueryState(m) => format!("query_state {}", m.query_id),
            Downlink::Poll(m) => format!("poll {}", m.ack_counter),
            Downlink::Ping => "ping".to_owned(),
            Downlink::UpdateOffer(m) => format!(
                "update_offer {} {} {} {} {} {}",
                m.update_id,
                m.version,
                m.size,
                hex::encode(m.sha256),
                hex::encode(m.signature),
                m.chunk_size
            ),
            Downlink::Chunk(m) => format!(
                "chunk {} {} {} {}",
                m.update_id,
                m.index,
                m.crc32,
                hex::encode(&m.data)
            ),
            Downlink::Install(m) => format!("install {}", m.update_id),
        };
    }
    let (_, m) = uplinks()
        .into_iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no message for vector {name}"));
    match m {
        Uplink::Hello(m) => format!(
            "hello {} {} {} {} {} {} {}",
            m.protocol_version,
            m.firmware,
            m.serial_no,
            m.door_count,
            m.session,
            m.uptime_ms,
            m.max_chunk.unwrap_or(0)
        ),
        Uplink::Heartbeat(m) => format!(
            "heartbeat {} {} {}",
            m.uptime_ms,
            m.signal.map_or(-128, i32::from),
            doors(&m.doors)
        ),
        Uplink::Ack(m) => format!("ack {} {}", m.command_id.get(), result(m.result)),
        Uplink::DoorEvent(m) => format!(
            "door_event {} {} {} {}",
            m.door,
            match m.state {
                DoorMotion::Opened => 1,
                DoorMotion::Closed => 2,
            },
            match m.cause {
                DoorCause::Commanded(id) => id.get(),
                DoorCause::Uncommanded => 0,
            },
            m.uptime_ms
        ),
        Uplink::Alarm(m) => format!(
            "alarm {} {} {}",
            m.kind.code(),
            m.door.unwrap_or(0),
            m.uptime_ms
        ),
        Uplink::StateReport(m) => format!(
            "state_report {} {} {} {}",
            m.query_id,
            doors(&m.doors),
            list(
                m.recent
                    .iter()
                    .map(|a| format!("{}:{}", a.command_id.get(), result(a.result)))
                    .collect()
            ),
            list(
                m.door_results
                    .iter()
                    .map(|d| format!("{}:{}", d.command_id.get(), d.door.code()))
                    .collect()
            ),
        ),
        Uplink::Pong => "pong".to_owned(),
        Uplink::ChunkRequest(m) => format!("chunk_request {} {}", m.update_id, m.index),
        Uplink::UpdateReport(m) => format!(
            "update_report {} {} {} {}",
            m.update_id,
            m.version,
            m.status.code(),
            match m.status {
                UpdateStatus::Refused(reason) | UpdateStatus::Failed(reason) => reason.code(),
                _ => 0,
            }
        ),
    }
}

/// The vectors in the test program's line format.
fn input(file: &VectorFile) -> String {
    let mut lines = format!("secret {}\nkey {}\n", file.secret, file.tag_key);
    for v in &file.vectors {
        let direction = match v.direction.as_str() {
            "down" => 1,
            "up" => 2,
            other => panic!("direction {other}"),
        };
        let or_dash = |s: &str| {
            if s.is_empty() {
                "-".to_owned()
            } else {
                s.to_owned()
            }
        };
        lines += &format!(
            "vector {} {} {} {} {} {} {} {} {} {} {} {} {}\n",
            v.name,
            direction,
            v.device_id,
            v.session,
            v.counter,
            v.type_code.trim_start_matches("0x"),
            v.bus_address,
            or_dash(&v.body_binary),
            v.envelope_binary,
            v.tag_binary,
            v.frame,
            or_dash(&hex::encode(v.body_json.as_bytes())),
            v.tag_json,
        );
        lines += &format!("fields {}\n", fields(&v.name));
    }
    lines
}

/// Runs a test program with `input` on its standard input; its output, once it passed.
pub(crate) fn run(exe: &Path, input: &str) -> String {
    let mut child = Command::new(exe)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the C test program starts");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("vectors written");
    let output = child.wait_with_output().expect("the C test program ends");
    assert!(
        output.status.success(),
        "the C library disagrees with the Rust crate ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn the_c_library_agrees_with_every_vector_under_the_sanitizers() {
    let file = load();
    let exe = build(
        &["test/vectors_test.c", "test/update_fields.c"],
        "vectors_test_sanitized",
        SANITIZED,
    );
    let out = run(&exe, &input(&file));
    let n = file.vectors.len();
    assert!(
        out.contains(&format!("{n} vectors, {n} bodies")),
        "the C test program checked fewer vectors than the file holds: {out}"
    );
}

#[test]
fn the_c_library_refuses_a_vector_that_is_wrong() {
    // The same program, told a wrong tag for the first vector, must fail: the comparison is real.
    let mut file = load();
    let first = &mut file.vectors[0];
    let mut tag = hex::decode(&first.tag_binary).expect("hex");
    tag[0] ^= 1;
    first.tag_binary = hex::encode(tag);
    let exe = build(
        &["test/vectors_test.c", "test/update_fields.c"],
        "vectors_test_plain",
        &["-O2"],
    );
    let output = Command::new(&exe)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(input(&file).as_bytes())?;
            child.wait_with_output()
        })
        .expect("the C test program runs");
    assert_eq!(output.status.code(), Some(1), "a wrong tag was not noticed");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("binary tag"), "{stderr}");
}

#[test]
fn the_c_board_queue_follows_the_serial_bus_rules() {
    // PROTOCOL.md §5.3: numbered when sent, the same counter for a repeated poll, the next one
    // after another answer, the oldest door event dropped first when full, never for a door event
    // an alarm; written out in c/test/board_test.c.
    let exe = build(&["test/board_test.c"], "board_test_sanitized", SANITIZED);
    let out = run(&exe, "");
    assert!(out.contains("lp_queue: 20 checks passed"), "{out}");
}

/// The fuzzing corpus (`c/fuzz/corpus`, grown by `c/fuzz/run.sh` with libFuzzer) replayed through
/// the fuzz target under the sanitizers: every input that ever reached new code still runs clean.
#[test]
fn c_fuzz_corpus_replays_clean() {
    let exe = build(
        &["fuzz/fuzz_locker.c", "fuzz/replay.c"],
        "fuzz_replay_sanitized",
        SANITIZED,
    );
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(Path::new(C_DIR).join("fuzz/corpus"))
        .expect("c/fuzz/corpus is readable")
        .map(|e| e.expect("corpus entry").path())
        .collect();
    inputs.sort();
    assert!(inputs.len() >= 50, "a corpus of {} inputs", inputs.len());
    let output = Command::new(&exe)
        .args(&inputs)
        .output()
        .expect("the replay runs");
    assert!(
        output.status.success(),
        "a corpus input fails:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        format!("replayed {} inputs", inputs.len())
    );
}
