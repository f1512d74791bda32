//! The C library's JSON side (`c/src/lp_json*.c`, MQTT payloads and bodies) against every
//! vector: payloads opened and sealed byte for byte, binary bodies turned into JSON bodies and
//! back, negative cases built from each vector and hand-made hostile JSON (`test/json_test.c`,
//! under the sanitizers).

use crate::c_library::{SANITIZED, build, run};
use crate::vectors::load;

fn input() -> String {
    let file = load();
    let mut input = format!("key {}\n", file.tag_key);
    for v in &file.vectors {
        let code = u8::from_str_radix(v.type_code.trim_start_matches("0x"), 16).expect("code");
        let bin = if v.body_binary.is_empty() {
            "-"
        } else {
            &v.body_binary
        };
        input.push_str(&format!(
            "json {} {} {code} {} {} {bin} {} {}\n",
            v.name,
            v.direction,
            v.session,
            v.counter,
            hex::encode(&v.body_json),
            hex::encode(&v.mqtt_payload)
        ));
    }
    input
}

#[test]
fn the_c_library_reads_and_writes_every_vectors_json() {
    let exe = build(&["test/json_test.c"], "json_test_sanitized", SANITIZED);
    let out = run(&exe, &input());
    let n = load().vectors.len();
    assert!(out.contains(&format!("json: {n} vectors")), "{out}");
}

#[test]
fn the_c_json_check_bites() {
    // A payload whose tag was changed must make the program fail.
    let exe = build(
        &["test/json_test.c"],
        "json_test_sanitized_bites",
        SANITIZED,
    );
    let file = load();
    let first = &file.vectors[0];
    let wrong = first.mqtt_payload.replace(&first.tag_json, &"0".repeat(32));
    let input = input().replacen(&hex::encode(&first.mqtt_payload), &hex::encode(wrong), 1);
    let child = std::process::Command::new(&exe)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starts");
    use std::io::Write;
    child
        .stdin
        .as_ref()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("written");
    let output = child.wait_with_output().expect("ends");
    assert!(!output.status.success(), "a wrong tag passed");
    assert!(String::from_utf8_lossy(&output.stderr).contains("the payload opens"));
}
