//! The C library's downlink rules (`c/src/lp_guard.c`: the anti-replay window, sessions, the
//! outcomes of the last commands) against the crate's own (`ReplayWindow`, `CommandGuard`): the
//! same random sequences through both, every verdict compared, under the sanitizers.

use firmware_protocol::*;

use crate::c_library::{SANITIZED, build, run};
use crate::helpers::device;

/// A small deterministic generator (the same sequences on every run).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A counter near `highest`: mostly just below or above it, sometimes far off, sometimes 0.
fn counter_near(rng: &mut Lcg, highest: u32) -> u32 {
    match rng.below(10) {
        0 => 0,
        1 => highest.saturating_add(64 + rng.below(1000) as u32),
        2 => highest.saturating_sub(60 + rng.below(10) as u32),
        _ => (i64::from(highest) + rng.below(80) as i64 - 60).clamp(0, i64::from(u32::MAX)) as u32,
    }
}

fn windows(rng: &mut Lcg, lines: &mut String) {
    let mut w = ReplayWindow::new();
    for _ in 0..5_000 {
        let c = counter_near(rng, w.highest());
        let ok = w.accept(c).is_ok();
        *lines += &format!("window {c} {}\n", u8::from(ok));
    }
    *lines += &format!("window_state {} {}\n", w.highest(), w.bits());
}

fn header(session: u32, counter: u32) -> Envelope<Downlink> {
    Envelope {
        header: Header {
            direction: Direction::Down,
            device_id: device("lk-0001"),
            session,
            counter,
        },
        message: Downlink::Ping,
    }
}

fn verdict(v: Verdict) -> (u8, u8) {
    match v {
        Verdict::Execute => (0, 0),
        Verdict::Repeat(CommandResult::Executed) => (1, 0),
        Verdict::Repeat(CommandResult::Refused(r)) => (1, r.code()),
        Verdict::Refuse(r) => (2, r.code()),
    }
}

fn guards(rng: &mut Lcg, version: u8, lines: &mut String) {
    let mut session = 100 + u32::from(version);
    let mut guard = CommandGuard::speaking(version, session, 32);
    *lines += &format!("guard {version} {session}\n");
    let mut sent: Vec<(u64, u32)> = Vec::new();
    for _ in 0..4_000 {
        match rng.below(20) {
            0 => {
                session += 1;
                guard.renew(session);
                *lines += &format!("renew {session}\n");
            }
            1..=3 => {
                // A request: poll, ping or query_state.
                let ty = [0x05u8, 0x04, 0x02][rng.below(3) as usize];
                let s = if rng.below(8) == 0 {
                    session + 1
                } else {
                    session
                };
                let c = counter_near(rng, guard.last_counter());
                let envelope = header(s, c);
                let v = if ty == 0x05 {
                    guard.check_poll(&envelope.header)
                } else {
                    guard.check(&envelope.header, None)
                };
                let (kind, result) = verdict(v);
                *lines += &format!("request {ty:x} {s} {c} {kind} {result}\n");
            }
            _ => {
                // A command: new, or a resend of an earlier one (same id and counter), an
                // earlier id under another counter, or an old counter with a new id.
                let s = if rng.below(10) == 0 {
                    session.wrapping_sub(1)
                } else {
                    session
                };
                let (id, c) = match (rng.below(4), sent.last()) {
                    (0, Some(_)) => sent[rng.below(sent.len() as u64) as usize],
                    // An earlier command's id under another counter: never its stored answer.
                    (1, Some(_)) => (
                        sent[rng.below(sent.len() as u64) as usize].0,
                        counter_near(rng, guard.last_counter()),
                    ),
                    _ => (
                        1 + rng.below(1 << 40),
                        counter_near(rng, guard.last_counter()),
                    ),
                };
                let command = CommandId::new(id).expect("an id in range");
                let envelope = header(s, c);
                let v = guard.check(&envelope.header, Some(command));
                let (kind, result) = verdict(v);
                *lines += &format!("command {s} {c} {id} {kind} {result}\n");
                if v == Verdict::Execute {
                    let outcome = match rng.below(3) {
                        0 => CommandResult::Refused(RefuseReason::NoSuchDoor),
                        _ => CommandResult::Executed,
                    };
                    guard.record(command, c, outcome);
                    let code = match outcome {
                        CommandResult::Executed => 0,
                        CommandResult::Refused(r) => r.code(),
                    };
                    *lines += &format!("record {id} {c} {code}\n");
                    sent.push((id, c));
                }
            }
        }
        if rng.below(50) == 0 {
            let recent: Vec<String> = guard
                .recent()
                .iter()
                .map(|a| {
                    let code = match a.result {
                        CommandResult::Executed => 0,
                        CommandResult::Refused(r) => r.code(),
                    };
                    format!("{}:{code}", a.command_id.get())
                })
                .collect();
            let recent = if recent.is_empty() {
                "-".to_owned()
            } else {
                recent.join(",")
            };
            *lines += &format!("recent {recent}\n");
        }
    }
}

#[test]
fn the_c_librarys_downlink_rules_agree_with_the_crates_on_random_sequences() {
    let mut rng = Lcg(0x0010_c4e2_5eed);
    let mut lines = String::new();
    windows(&mut rng, &mut lines);
    guards(&mut rng, 1, &mut lines);
    guards(&mut rng, 2, &mut lines);
    let steps = lines.lines().count();
    let exe = build(&["test/guard_test.c"], "guard_test_sanitized", SANITIZED);
    let out = run(&exe, &lines);
    assert!(out.contains(&format!("lp_guard: {steps} steps")), "{out}");
}
