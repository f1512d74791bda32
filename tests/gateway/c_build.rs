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
    // Its parts in files of their own (`lock_board_update.c`).
    let mut parts: Vec<PathBuf> = std::fs::read_dir(Path::new(C_DIR).join("examples"))
        .expect("c/examples is readable")
        .map(|e| e.expect("c/examples entry").path())
        .filter(|p| {
            p.file_name()
                .and_then(|f| f.to_str())
                .is_some_and(|f| f.starts_with(&format!("{name}_")) && f.ends_with(".c"))
        })
        .collect();
    parts.sort();
    sources.extend(parts);
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

/// An example running as a child process: what it printed, line by line, and its standard input.
pub struct Process {
    pub child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    said: std::sync::Arc<Mutex<Vec<String>>>,
}

impl Process {
    /// Starts `exe` with `args` and `env`, and waits until it prints `ready`.
    pub async fn start(exe: &Path, args: &[&str], env: &[(&str, &str)]) -> Process {
        use tokio::io::AsyncBufReadExt;
        let mut child = tokio::process::Command::new(exe)
            .args(args)
            .envs(env.iter().copied())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the C example starts");
        let stdin = child.stdin.take().expect("stdin");
        let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
        let said = std::sync::Arc::new(Mutex::new(Vec::new()));
        let log = said.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                log.lock().expect("log").push(line);
            }
        });
        let process = Process { child, stdin, said };
        process.expect("ready").await;
        process
    }

    /// The lines printed so far that start with `prefix`.
    pub fn lines(&self, prefix: &str) -> Vec<String> {
        let said = self.said.lock().expect("log");
        said.iter()
            .filter(|l| l.starts_with(prefix))
            .cloned()
            .collect()
    }

    /// Waits until a line starting with `line` has been printed.
    pub async fn expect(&self, line: &str) {
        crate::helpers::eventually(&format!("the example says {line:?}"), || async {
            !self.lines(line).is_empty()
        })
        .await;
    }

    /// Writes a line to its standard input.
    pub async fn tell(&mut self, line: &str) {
        use tokio::io::AsyncWriteExt;
        self.stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .expect("the example reads its console");
    }
}
