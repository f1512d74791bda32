//! The conformance tool: a scripted gateway played against a device under test (a lock board on
//! a serial line, or a locker on an MQTT broker), running the protocol's cases one after another and reporting each as passed
//! or failed, with the bytes exchanged when it failed. `simulator conform` is its command line;
//! the test suite runs it against the simulator's boards and the C library's example board.
//!
//! The cases follow PROTOCOL.md: sessions and `hello` (§5.3, §7.1), polls and the queue of
//! door events (§5.3), commands and their refusals in §7.6's order, the anti-replay rules (§7.2),
//! the frame decoder's resynchronisation after noise (§5.2), timing (§7.7) and a reboot settled
//! by asking (§7.4).

use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use firmware_protocol::{DeviceId, DeviceKey};

mod cases;
mod mqtt;
mod probe;
mod serial;

pub use mqtt::MqttProbe;
pub use serial::SerialProbe;

/// Power-cycles the device under test (its RAM is lost): a bench relay, or in tests a process
/// killed and started again. Returns when the device is powered again.
pub type Reboot =
    Box<dyn FnMut() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send>;

/// What the tool needs to know of the device under test.
pub struct Target {
    /// Its device id.
    pub device_id: DeviceId,
    /// Its tag key (derived from its provisioning secret).
    pub key: DeviceKey,
    /// A door the tool may unlock; it should be closed when the run starts and open when pulsed.
    pub door: u16,
    /// How long an answer may take (the gateway's wait; PROTOCOL.md §7.7: 200 ms).
    pub wait: Duration,
    /// How to power-cycle the device; without it the reboot case is not run.
    pub reboot: Option<Reboot>,
}

/// How a case ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every check held.
    Passed,
    /// A check failed: what was expected and what came.
    Failed(String),
    /// The case could not run, and why (for example, no way to reboot the device).
    NotRun(String),
}

/// One case's result.
#[derive(Debug, Clone)]
pub struct CaseResult {
    /// The case's name.
    pub name: &'static str,
    /// What it checks.
    pub checks: &'static str,
    /// How it ended.
    pub verdict: Verdict,
    /// The bytes exchanged during the case (each a line: `>` sent, `<` received, hex).
    pub exchanged: Vec<String>,
}

/// Every case's result, in the order run.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The cases.
    pub cases: Vec<CaseResult>,
    /// The slowest answer seen, from the request's last byte to the answer's last byte.
    pub slowest_answer: Duration,
}

impl Report {
    /// Whether every case passed.
    pub fn passed(&self) -> bool {
        self.cases.iter().all(|c| c.verdict == Verdict::Passed)
    }

    /// The exit code: 0 every case passed, 1 a case failed, 2 none failed but some did not run.
    pub fn exit_code(&self) -> u8 {
        if self
            .cases
            .iter()
            .any(|c| matches!(c.verdict, Verdict::Failed(_)))
        {
            1
        } else if self.passed() {
            0
        } else {
            2
        }
    }

    /// The failed cases' names.
    pub fn failed(&self) -> Vec<&'static str> {
        self.cases
            .iter()
            .filter(|c| matches!(c.verdict, Verdict::Failed(_)))
            .map(|c| c.name)
            .collect()
    }

    /// The report as text: one line per case, and for a failed case what went wrong and the bytes
    /// exchanged.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for case in &self.cases {
            let (mark, why) = match &case.verdict {
                Verdict::Passed => ("PASS", String::new()),
                Verdict::Failed(why) => ("FAIL", format!(": {why}")),
                Verdict::NotRun(why) => ("NOT RUN", format!(": {why}")),
            };
            let _ = writeln!(out, "{mark:<7} {:<18} {}{why}", case.name, case.checks);
            if matches!(case.verdict, Verdict::Failed(_)) {
                for line in &case.exchanged {
                    let _ = writeln!(out, "          {line}");
                }
            }
        }
        let passed = self
            .cases
            .iter()
            .filter(|c| c.verdict == Verdict::Passed)
            .count();
        let _ = writeln!(
            out,
            "{passed} of {} cases passed; slowest answer {:.1} ms",
            self.cases.len(),
            self.slowest_answer.as_secs_f64() * 1000.0
        );
        out
    }
}

/// Runs every case against the board at `address` on the serial port at `path`.
pub async fn run_serial(path: &str, address: u8, target: Target) -> Result<Report, String> {
    let probe = SerialProbe::open(path, address, &target)?;
    Ok(cases::serial::run(probe, target).await)
}

/// Runs every case against the locker `target` names on the MQTT broker at `broker`
/// (`host:port`), logging in with `login` if given (an account that may publish on the locker's
/// `down` topic and read its `up` and `status` topics, as the gateway's).
pub async fn run_mqtt(
    broker: &str,
    login: Option<(String, String)>,
    target: Target,
) -> Result<Report, String> {
    let probe = MqttProbe::connect(broker, login, &target).await?;
    Ok(cases::mqtt::run(probe, target).await)
}
