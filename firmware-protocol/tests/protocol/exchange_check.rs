//! The whole-exchange vectors (`exchanges` in `vectors/vectors.json`) replayed step by step: the
//! crate's `CommandGuard` (and, in the C test, the C library's `lp_guard`) plays the board and must
//! do with each gateway step exactly what the step says, and every board step must be a frame the
//! board may send then (its session, a counter above the last unless it repeats the same bytes).

use firmware_protocol::*;

use crate::c_library::{SANITIZED, build, run};
use crate::exchanges::{ADDRESS, Exchange, build as exchanges};
use crate::helpers::{decode_all, device};
use crate::vectors::load;

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).expect("exchange hex")
}

fn key() -> DeviceKey {
    DeviceSecret::from_hex(&load().secret)
        .expect("secret")
        .tag_key()
}

/// What a board in `guard`'s state (None: no session) does with the bytes of a gateway step.
fn board_does(guard: &mut Option<CommandGuard>, bytes: &[u8], key: &DeviceKey) -> String {
    let d = device("lk-0001");
    let (frames, _) = decode_all(bytes, bytes.len().max(1));
    let Some(frame) = frames.into_iter().find(|f| f.address == ADDRESS) else {
        return "ignore".into();
    };
    let Ok(raw) = Unverified::parse_binary(&frame.envelope) else {
        return "ignore".into();
    };
    let Ok(env) = raw.verify::<Downlink>(&d, key) else {
        let command = raw
            .decode_unverified::<Downlink>()
            .ok()
            .filter(|e| matches!(e.message, Downlink::Unlock(_) | Downlink::Configure(_)));
        return if command.is_some() && guard.is_some() {
            "refuse:bad_tag"
        } else {
            "ignore"
        }
        .into();
    };
    let Some(g) = guard.as_mut() else {
        return "hello".into();
    };
    let id = match &env.message {
        Downlink::Unlock(u) => Some(u.command_id),
        Downlink::Configure(c) => Some(c.command_id),
        _ => None,
    };
    let verdict = match env.message {
        Downlink::Poll(_) => g.check_poll(&env.header),
        _ => g.check(&env.header, id),
    };
    match (verdict, id) {
        (Verdict::Execute, Some(id)) => {
            g.record(id, env.header.counter, CommandResult::Executed);
            "execute".into()
        }
        (Verdict::Execute, None) => "answer".into(),
        (Verdict::Repeat(_), _) => "repeat".into(),
        (Verdict::Refuse(r), Some(_)) => format!("refuse:{}", r.name()),
        (Verdict::Refuse(RefuseReason::WrongSession), None) => "hello".into(),
        (Verdict::Refuse(_), None) => "ignore".into(),
    }
}

fn replay(ex: &Exchange, key: &DeviceKey) {
    let d = device("lk-0001");
    let mut guard: Option<CommandGuard> = None;
    let (mut highest, mut last_sent) = (0u32, String::new());
    for (i, step) in ex.steps.iter().enumerate() {
        let at = format!("{} step {i} ({})", ex.name, step.note);
        let bytes = unhex(&step.bytes);
        if step.from == "gateway" {
            assert_eq!(board_does(&mut guard, &bytes, key), step.expect, "{at}");
            continue;
        }
        assert_eq!(step.from, "board", "{at}");
        if step.expect == "power_cut" {
            assert!(bytes.is_empty(), "{at}");
            guard = None;
            continue;
        }
        let (frames, stats) = decode_all(&bytes, bytes.len());
        assert_eq!((frames.len(), stats.skipped_bytes), (1, 0), "{at}");
        assert_eq!(frames[0].address, ADDRESS, "{at}");
        let env: Envelope<Uplink> = Unverified::parse_binary(&frames[0].envelope)
            .and_then(|raw| raw.verify(&d, key))
            .expect("a board step verifies");
        if let Uplink::Hello(h) = &env.message
            && guard.as_ref().is_none_or(|g| g.session() != h.session)
        {
            guard = Some(CommandGuard::speaking(h.protocol_version, h.session, 32));
            (highest, last_sent) = (0, String::new());
        }
        let g = guard.as_ref().expect("a board speaks in a session");
        assert_eq!(env.header.session, g.session(), "{at}");
        let repeated = env.header.counter == highest && step.bytes == last_sent;
        assert!(
            env.header.counter > highest || repeated,
            "{at}: counter {} after {highest}",
            env.header.counter
        );
        (highest, last_sent) = (env.header.counter, step.bytes.clone());
    }
}

#[test]
fn the_exchanges_in_the_file_are_the_codes() {
    assert_eq!(load().exchanges, exchanges());
}

#[test]
fn every_exchange_replays_through_the_crates_guard() {
    let (file, key) = (load(), key());
    assert!(file.exchanges.len() >= 7);
    for ex in &file.exchanges {
        replay(ex, &key);
    }
    // Every kind of step is shown at least once.
    let expects: std::collections::BTreeSet<&str> = file
        .exchanges
        .iter()
        .flat_map(|e| e.steps.iter().map(|s| s.expect.as_str()))
        .collect();
    for kind in [
        "hello",
        "execute",
        "repeat",
        "answer",
        "ignore",
        "refuse:stale_counter",
        "refuse:wrong_session",
        "refuse:bad_tag",
        "lost",
        "power_cut",
    ] {
        assert!(expects.contains(kind), "no step expects {kind}");
    }
}

#[test]
fn a_wrong_expectation_is_caught() {
    let key = key();
    let mut ex = load()
        .exchanges
        .into_iter()
        .find(|e| e.name == "lost_ack")
        .expect("lost_ack");
    let repeat = ex
        .steps
        .iter_mut()
        .find(|s| s.expect == "repeat")
        .expect("a repeat");
    repeat.expect = "execute".into();
    let caught = std::panic::catch_unwind(|| replay(&ex, &key));
    assert!(caught.is_err(), "a board executing a resend again passed");
}

/// The same replay through the C library (`test/exchange_test.c`, under the sanitizers).
#[test]
fn every_exchange_replays_through_the_c_librarys_guard() {
    let file = load();
    let mut input = format!("key {}\n", file.tag_key);
    for ex in &file.exchanges {
        input.push_str(&format!("exchange {}\n", ex.name));
        for s in &ex.steps {
            let expect = if s.expect.is_empty() { "-" } else { &s.expect };
            let bytes = if s.bytes.is_empty() { "-" } else { &s.bytes };
            input.push_str(&format!("{} {expect} {bytes}\n", s.from));
        }
    }
    let exe = build(
        &["test/exchange_test.c"],
        "exchange_test_sanitized",
        SANITIZED,
    );
    let out = run(&exe, &input);
    let steps: usize = file.exchanges.iter().map(|e| e.steps.len()).sum();
    assert_eq!(
        out.trim(),
        format!("{} exchanges, {steps} steps agree", file.exchanges.len())
    );
}
