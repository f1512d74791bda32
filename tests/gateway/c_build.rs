//! The C library's examples (`firmware-protocol/c/examples`), built once per test run with the
//! system's C compiler as C99 with every warning an error, under AddressSanitizer and
//! UndefinedBehaviorSanitizer, for the tests that run them against the real gateway.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

const C_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/firmware-protocol/c");

/// The example `examples/{name}.c` with the library, linked with `libs`; built on first use.
/// Panics with one line saying what is missing.
pub fn example(name: &str, libs: &[&str]) -> PathBuf {
    static BUILT: Mutex<Option<HashMap<String, PathBuf>>> = Mutex::new(None);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    let built = built.get_or_insert_with(HashMap::new);
    if let Some(exe) = built.get(name) {
        return exe.clone();
    }
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    let exe = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("c-example-{name}"));
    let mut sources: Vec<PathBuf> = std::fs::read_dir(Path::new(C_DIR).join("src"))
        .expect("c/src is readable")
        .map(|e| e.expect("c/src entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "c"))
        .collect();
    sources.sort();
    sources.push(Path::new(C_DIR).join(format!("examples/{name}.c")));
    let output = Command::new(&cc)
        .args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"])
        .args([
            "-g",
            "-O1",
            "-fsanitize=address,undefined",
            "-fno-sanitize-recover=all",
        ])
        .arg("-I")
        .arg(Path::new(C_DIR).join("include"))
        .args(&sources)
        .arg("-o")
        .arg(&exe)
        .args(libs.iter().map(|l| format!("-l{l}")))
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "no C compiler: `{cc}` cannot run ({e}); install one (Debian: apt-get install gcc)"
            )
        });
    assert!(
        output.status.success(),
        "the C example {name} does not build:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    built.insert(name.to_owned(), exe.clone());
    exe
}
