//! The anti-replay window (RFC 4303 §3.4.3, as IPsec and DTLS keep it): the highest counter
//! accepted in a session and a bitmap of the [`WINDOW`] counters ending with it. A counter seen
//! before, or older than the window, is refused; any other is accepted once, in whatever order
//! counters arrive. With a fleet of gateways one locker's uplinks may reach different gateways and
//! be recorded out of order; the window accepts each exactly once.

/// How many counters the window covers (the highest and the 63 below it).
pub const WINDOW: u32 = 64;

/// Why a counter was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// It was accepted before.
    Seen,
    /// It is [`WINDOW`] or more below the highest (or 0, which no sender uses).
    TooOld,
}

/// The counters accepted in one session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplayWindow {
    highest: u32,
    /// Bit `i`: counter `highest - i` was accepted.
    seen: u64,
}

impl ReplayWindow {
    /// Nothing accepted yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The window of a session opened by a `hello` with `counter`: the session's first message,
    /// so no counter at or below it is ever accepted in the session.
    pub fn starting_at(counter: u32) -> Self {
        Self {
            highest: counter,
            seen: u64::MAX,
        }
    }

    /// A window as stored: its highest counter and its bitmap (bit `i`: `highest - i` seen).
    pub fn restore(highest: u32, seen: u64) -> Self {
        Self { highest, seen }
    }

    /// The highest counter accepted.
    pub fn highest(&self) -> u32 {
        self.highest
    }

    /// The bitmap (bit `i`: counter `highest - i` was accepted).
    pub fn bits(&self) -> u64 {
        self.seen
    }

    /// Whether `counter` would be accepted, without recording it.
    pub fn check(&self, counter: u32) -> Result<(), Refusal> {
        if counter == 0 {
            return Err(Refusal::TooOld);
        }
        if counter > self.highest {
            return Ok(());
        }
        let behind = self.highest - counter;
        if behind >= WINDOW {
            Err(Refusal::TooOld)
        } else if self.seen & (1u64 << behind) != 0 {
            Err(Refusal::Seen)
        } else {
            Ok(())
        }
    }

    /// Whether every counter strictly between `low` and `high` has been accepted (or is too old
    /// to be accepted any more): nothing sent between them can still arrive.
    pub fn has_seen_all_between(&self, low: u32, high: u32) -> bool {
        self.latest_gap_below(high) <= low
    }

    /// The highest counter below `counter` that may still arrive (not accepted, not too old);
    /// 0 if none: everything sent before `counter` has been accepted.
    pub fn latest_gap_below(&self, counter: u32) -> u32 {
        let oldest = self.highest.saturating_sub(WINDOW - 1).max(1);
        (oldest..counter)
            .rev()
            .find(|c| self.check(*c).is_ok())
            .unwrap_or(0)
    }

    /// Accepts `counter` once: refused if seen before or too old.
    pub fn accept(&mut self, counter: u32) -> Result<(), Refusal> {
        self.check(counter)?;
        if counter > self.highest {
            let ahead = counter - self.highest;
            self.seen = if ahead >= WINDOW {
                1
            } else {
                (self.seen << ahead) | 1
            };
            self.highest = counter;
        } else {
            self.seen |= 1u64 << (self.highest - counter);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_counter_is_accepted_once_in_any_order_within_the_window() {
        let mut w = ReplayWindow::new();
        assert_eq!(w.accept(0), Err(Refusal::TooOld));
        for c in [5, 3, 7, 4, 6, 1, 2] {
            assert_eq!(w.accept(c), Ok(()), "counter {c}");
        }
        for c in 1..=7 {
            assert_eq!(w.accept(c), Err(Refusal::Seen), "counter {c} again");
        }
        assert_eq!(w.highest(), 7);
        assert_eq!(w.bits(), 0b111_1111);
        // The window slides: 64 behind the highest is too old, 63 behind is still known.
        assert_eq!(w.accept(70), Ok(()));
        assert_eq!(w.accept(6), Err(Refusal::TooOld));
        assert_eq!(w.accept(7), Err(Refusal::Seen));
        assert_eq!(w.accept(8), Ok(()));
        // A jump beyond the window forgets everything before it.
        assert_eq!(w.accept(1000), Ok(()));
        assert_eq!(w.bits(), 1);
        assert_eq!(w.accept(937), Ok(()));
        assert_eq!(w.accept(936), Err(Refusal::TooOld));
        assert_eq!(w.accept(u32::MAX), Ok(()));
        assert_eq!(w.accept(u32::MAX), Err(Refusal::Seen));
        assert_eq!(ReplayWindow::restore(w.highest(), w.bits()), w);
    }

    #[test]
    fn a_session_starts_at_its_hello_and_gaps_are_known() {
        let mut w = ReplayWindow::starting_at(3);
        assert_eq!(w.accept(3), Err(Refusal::Seen));
        assert_eq!(w.accept(2), Err(Refusal::Seen), "nothing below the hello");
        assert!(w.has_seen_all_between(0, 4));
        assert_eq!(w.accept(6), Ok(()));
        assert!(!w.has_seen_all_between(3, 6), "4 and 5 may still come");
        assert!(w.has_seen_all_between(0, 4));
        assert_eq!(w.accept(5), Ok(()));
        assert!(!w.has_seen_all_between(3, 6));
        assert!(w.has_seen_all_between(4, 6));
        assert_eq!(w.accept(4), Ok(()));
        assert!(w.has_seen_all_between(3, 6) && w.has_seen_all_between(0, 7));
        assert!(!w.has_seen_all_between(0, 8), "7 was not seen");
        assert_eq!(w.accept(200), Ok(()));
        assert!(
            w.has_seen_all_between(0, 137),
            "older than the window: can never come"
        );
        assert!(!w.has_seen_all_between(0, 138));
    }

    #[test]
    fn the_window_agrees_with_a_set_of_everything_seen() {
        // A model check: against a plain set of accepted counters, over pseudo-random orders.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..200 {
            let mut w = ReplayWindow::new();
            let mut seen = std::collections::BTreeSet::new();
            for _ in 0..300 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let counter = 1 + (state % 150) as u32;
                let highest = seen.iter().next_back().copied().unwrap_or(0);
                let expected = if counter + WINDOW <= highest {
                    Err(Refusal::TooOld)
                } else if seen.contains(&counter) {
                    Err(Refusal::Seen)
                } else {
                    Ok(())
                };
                assert_eq!(w.accept(counter), expected, "counter {counter}");
                if expected.is_ok() {
                    seen.insert(counter);
                }
            }
        }
    }
}
