//! What a rental costs: a pure function of its plan's terms and how long it ran, in minor units.
//!
//! - Billing time runs from the unlock at the start to the unlock at pickup.
//! - The first `free_minutes` cost nothing. After them time is cut into units of `unit_minutes`;
//!   every **started** unit costs `price_per_unit`.
//! - Each rolling 24 hours from the start (no time zones: 0–24 h, 24–48 h, ...) costs at most
//!   `cap_per_24h`; a unit counts in the 24 hours in which it starts.
//! - Time beyond `max_minutes` is overdue: every started unit of it costs
//!   `overdue_price_per_unit`, not capped.

use std::time::Duration;

/// A plan's terms, in minor units and minutes; copied onto a rental when it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Terms {
    /// Held from the wallet at the start.
    pub deposit: i64,
    /// Minutes free at the start.
    pub free_minutes: u32,
    /// Length of a billing unit, minutes (at least 1).
    pub unit_minutes: u32,
    /// Price of each started unit.
    pub price_per_unit: i64,
    /// Most charged per 24 hours from the start.
    pub cap_per_24h: i64,
    /// Minutes before the rental is overdue.
    pub max_minutes: u32,
    /// Price of each started unit once overdue.
    pub overdue_price_per_unit: i64,
}

const DAY: u64 = 24 * 3600;

/// How many units starting at `first`, `first + unit`, ... start in `[lo, hi)`.
fn starts_in(first: u64, unit: u64, lo: u64, hi: u64) -> u64 {
    let count_before = |t: u64| {
        if t <= first {
            0
        } else {
            (t - first).div_ceil(unit)
        }
    };
    count_before(hi).saturating_sub(count_before(lo))
}

/// How a fee was made, for the renter to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Bill {
    /// The fee, minor units.
    pub total: i64,
    /// Minutes billed from (started units of time, rounded up to whole minutes).
    pub billed_minutes: u64,
    /// Of them, free at the start.
    pub free_minutes: u64,
    /// Regular units charged (started units after the free minutes, before overdue).
    pub units: u64,
    /// Whether the daily cap lowered any 24 hours' charge.
    pub capped: bool,
    /// Overdue units charged (not capped).
    pub overdue_units: u64,
}

/// The fee for a rental of `terms` that ran `elapsed`.
pub fn fee(terms: &Terms, elapsed: Duration) -> i64 {
    bill(terms, elapsed).total
}

/// The fee for a rental of `terms` that ran `elapsed`, with how it was made.
pub fn bill(terms: &Terms, elapsed: Duration) -> Bill {
    let secs = elapsed.as_secs();
    let unit = u64::from(terms.unit_minutes.max(1)) * 60;
    let free = u64::from(terms.free_minutes) * 60;
    let regular_end = secs.min(u64::from(terms.max_minutes) * 60);
    let mut bill = Bill {
        billed_minutes: secs.div_ceil(60),
        free_minutes: free.min(secs).div_ceil(60),
        ..Bill::default()
    };
    if regular_end > free {
        for window in (free / DAY)..=((regular_end - 1) / DAY) {
            let lo = (window * DAY).max(free);
            let hi = ((window + 1) * DAY).min(regular_end);
            let started = starts_in(free, unit, lo, hi);
            bill.units = bill.units.saturating_add(started);
            let units = i64::try_from(started).unwrap_or(i64::MAX);
            let charge = units.saturating_mul(terms.price_per_unit);
            bill.capped |= charge > terms.cap_per_24h;
            bill.total = bill.total.saturating_add(charge.min(terms.cap_per_24h));
        }
    }
    if secs > regular_end {
        bill.overdue_units = (secs - regular_end).div_ceil(unit);
        let overdue_units = i64::try_from(bill.overdue_units).unwrap_or(i64::MAX);
        bill.total = bill
            .total
            .saturating_add(overdue_units.saturating_mul(terms.overdue_price_per_unit));
    }
    bill
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 30 free minutes, then 1.00 per started hour, at most 10.00 a day, overdue after 3 days at
    /// 5.00 per started hour.
    const TERMS: Terms = Terms {
        deposit: 2000,
        free_minutes: 30,
        unit_minutes: 60,
        price_per_unit: 100,
        cap_per_24h: 1000,
        max_minutes: 3 * 24 * 60,
        overdue_price_per_unit: 500,
    };

    fn minutes(m: u64) -> Duration {
        Duration::from_secs(m * 60)
    }

    #[test]
    fn fees_by_the_table() {
        let hour = 60;
        let day = 24 * hour;
        let cases: &[(&str, Duration, i64)] = &[
            ("zero minutes", Duration::ZERO, 0),
            ("inside the free minutes", minutes(29), 0),
            ("exactly the free minutes", minutes(30), 0),
            (
                "one second into the first unit",
                minutes(30) + Duration::from_secs(1),
                100,
            ),
            ("exactly one unit", minutes(30 + hour), 100),
            (
                "one second into the second unit",
                minutes(30 + hour) + Duration::from_secs(1),
                200,
            ),
            (
                "exactly at the cap (10 units)",
                minutes(30 + 10 * hour),
                1000,
            ),
            ("past the cap on the first day", minutes(23 * hour), 1000),
            ("a full day", minutes(day), 1000),
            (
                "the unit that started at 23:30 still counts in day 1",
                minutes(day) + Duration::from_secs(1),
                1000,
            ),
            ("the first unit of day 2 started", minutes(day + 31), 1100),
            ("two full days", minutes(2 * day), 2000),
            (
                "several days, last one short",
                minutes(2 * day + 3 * hour),
                2300,
            ),
            ("exactly at the maximum", minutes(3 * day), 3000),
            (
                "one second overdue",
                minutes(3 * day) + Duration::from_secs(1),
                3500,
            ),
            (
                "overdue by 2 h 10 min",
                minutes(3 * day + 2 * hour + 10),
                3000 + 3 * 500,
            ),
        ];
        for (what, elapsed, expected) in cases {
            assert_eq!(fee(&TERMS, *elapsed), *expected, "{what}");
        }
    }

    #[test]
    fn a_unit_straddling_midnight_counts_in_the_day_it_starts() {
        let terms = Terms {
            free_minutes: 0,
            unit_minutes: 7 * 60,
            price_per_unit: 100,
            cap_per_24h: 10_000,
            ..TERMS
        };
        // Units start at 0, 7, 14, 21 h (day 1) and 28 h (day 2).
        assert_eq!(fee(&terms, minutes(24 * 60)), 400);
        assert_eq!(fee(&terms, minutes(24 * 60 + 1)), 400);
        assert_eq!(fee(&terms, minutes(28 * 60 + 1)), 500);
    }

    #[test]
    fn a_bill_says_how_the_fee_was_made() {
        let hour = 60;
        // 30 free minutes, then 12 started hours on day 1 (capped at 10.00), 2 h overdue.
        let capped = bill(&TERMS, minutes(30 + 12 * hour));
        assert_eq!(
            (
                capped.total,
                capped.units,
                capped.capped,
                capped.free_minutes
            ),
            (1000, 12, true, 30)
        );
        let overdue = bill(&TERMS, minutes(3 * 24 * hour + 2 * hour));
        assert_eq!(overdue.overdue_units, 2);
        assert_eq!(
            overdue.total,
            fee(&TERMS, minutes(3 * 24 * hour + 2 * hour))
        );
        let short = bill(&TERMS, minutes(10));
        assert_eq!(
            (
                short.total,
                short.units,
                short.free_minutes,
                short.billed_minutes
            ),
            (0, 0, 10, 10)
        );
    }

    proptest::proptest! {
        #[test]
        fn the_fee_never_falls_as_time_goes_on(a in 0u64..10 * 86_400, b in 0u64..10 * 86_400) {
            let (short, long) = (a.min(b), a.max(b));
            proptest::prop_assert!(
                fee(&TERMS, Duration::from_secs(short)) <= fee(&TERMS, Duration::from_secs(long))
            );
        }
    }
}
