//! Protocol version 2: the locker's anti-replay window for downlinks. Two gateways take counters
//! from one sequence and send through their own connections, so a locker sees them in any order;
//! each is executed once, a repeat is answered from `recent`, a counter 64 or more below the
//! highest is refused as stale. Version 1 keeps "above the last".

use firmware_protocol::*;
use proptest::prelude::*;

use crate::helpers::{command_id, device, header};

fn down(counter: u32) -> Header {
    header(Direction::Down, device("lk-1"), 77, counter)
}

#[test]
fn a_version_2_locker_executes_counters_that_arrive_out_of_order_once_each() {
    let mut v2 = CommandGuard::speaking(2, 77, 16);
    let mut v1 = CommandGuard::speaking(1, 77, 16);
    assert_eq!((v2.version(), v1.version()), (2, 1));
    // Gateway A took 22, gateway B took 23; B's message arrives first.
    for guard in [&mut v2, &mut v1] {
        assert_eq!(
            guard.check(&down(23), Some(command_id(2))),
            Verdict::Execute
        );
        guard.record(command_id(2), 23, CommandResult::Executed);
    }
    assert_eq!(v2.check(&down(22), Some(command_id(1))), Verdict::Execute);
    assert_eq!(
        v1.check(&down(22), Some(command_id(1))),
        Verdict::Refuse(RefuseReason::StaleCounter),
        "version 1 needs a counter above the last"
    );
    v2.record(command_id(1), 22, CommandResult::Executed);
    // Each resent unchanged is answered from recent, never executed again.
    for (counter, id) in [(22, 1), (23, 2)] {
        assert_eq!(
            v2.check(&down(counter), Some(command_id(id))),
            Verdict::Repeat(CommandResult::Executed)
        );
    }
    // Another command with a counter already used: stale.
    assert_eq!(
        v2.check(&down(22), Some(command_id(9))),
        Verdict::Refuse(RefuseReason::StaleCounter)
    );
    // The window is 64 counters: one 64 below the highest is too old, 63 below is fine.
    assert_eq!(v2.check(&down(100), None), Verdict::Execute);
    assert_eq!(
        v2.check(&down(36), Some(command_id(10))),
        Verdict::Refuse(RefuseReason::StaleCounter)
    );
    assert_eq!(v2.check(&down(37), Some(command_id(11))), Verdict::Execute);
    assert_eq!(v2.last_counter(), 100);
    // Counter 0 is never valid; another session is refused as before.
    assert_eq!(
        v2.check(&down(0), Some(command_id(12))),
        Verdict::Refuse(RefuseReason::StaleCounter)
    );
    let other = header(Direction::Down, device("lk-1"), 78, 101);
    assert_eq!(
        v2.check(&other, Some(command_id(13))),
        Verdict::Refuse(RefuseReason::WrongSession)
    );
    // A new session without a reboot starts the window again and keeps the outcomes.
    v2.renew(78);
    assert_eq!(v2.last_counter(), 0);
    assert_eq!(v2.check(&other, Some(command_id(13))), Verdict::Execute);
    assert_eq!(v2.recent().len(), 2);
}

#[test]
fn a_version_2_board_answers_its_last_poll_again_and_ignores_seen_ones() {
    let mut guard = CommandGuard::speaking(2, 77, 16);
    assert_eq!(guard.check_poll(&down(5)), Verdict::Execute);
    // The answer was lost: the same poll again is answered again.
    assert_eq!(guard.check_poll(&down(5)), Verdict::Execute);
    // A poll below it not seen yet (taken earlier, sent later) is new.
    assert_eq!(guard.check_poll(&down(4)), Verdict::Execute);
    // Seen and not the last: a replay, ignored.
    assert_eq!(
        guard.check_poll(&down(4)),
        Verdict::Refuse(RefuseReason::StaleCounter)
    );
}

proptest! {
    /// Any arrival order of distinct counters within the window executes each exactly once, and
    /// every copy sent again is answered from `recent`, never executed.
    #[test]
    fn any_order_within_the_window_executes_each_command_once(
        order in Just((1u32..=40).collect::<Vec<_>>()).prop_shuffle(),
        repeats in proptest::collection::vec(1u32..=40, 0..40),
    ) {
        let mut guard = CommandGuard::speaking(PROTOCOL_VERSION, 77, MAX_RECENT);
        let mut executed = 0;
        for counter in order {
            let verdict = guard.check(&down(counter), Some(command_id(counter.into())));
            prop_assert_eq!(verdict, Verdict::Execute);
            guard.record(command_id(counter.into()), counter, CommandResult::Executed);
            executed += 1;
        }
        prop_assert_eq!(executed, 40);
        for counter in repeats {
            let verdict = guard.check(&down(counter), Some(command_id(counter.into())));
            // 40 outcomes, 32 remembered: an older repeat is refused, never executed.
            prop_assert_ne!(verdict, Verdict::Execute);
        }
    }
}
