//! How a firmware campaign proceeds, as pure functions the campaign engine calls: the waves' sizes
//! for the lockers it targets, whether a maintenance window is open, and what to do next given
//! each started wave's tally (hawkBit's rollout groups: the next wave starts once the current one
//! reached its success threshold; any started wave past the error threshold stops the campaign by
//! itself).

use chrono::{DateTime, NaiveTime, TimeZone, Utc};

/// How large one wave is (JSON: `{"count": 10}` or `{"percent": 25}`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum WaveSize {
    /// This many lockers.
    Count(u32),
    /// This share of the campaign's lockers, in percent (1 to 100), rounded up.
    Percent(u8),
}

/// The size of each wave for `total` lockers, in order: each as asked, while lockers remain (a
/// wave of at least one); the last wave takes whatever the others left. Waves left empty are
/// dropped.
pub fn wave_sizes(total: usize, waves: &[WaveSize]) -> Vec<usize> {
    let mut left = total;
    let mut sizes = Vec::with_capacity(waves.len());
    for (i, wave) in waves.iter().enumerate() {
        if left == 0 {
            break;
        }
        let wanted = if i + 1 == waves.len() {
            left
        } else {
            match *wave {
                WaveSize::Count(n) => n as usize,
                WaveSize::Percent(p) => (total * usize::from(p.min(100))).div_ceil(100),
            }
        };
        let size = wanted.clamp(1, left);
        sizes.push(size);
        left -= size;
    }
    sizes
}

/// What a started wave's lockers came to so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WaveTally {
    /// Lockers in the wave.
    pub size: usize,
    /// Installed and confirmed.
    pub installed: usize,
    /// Failed, or rolled back to the old image.
    pub failed: usize,
}

impl WaveTally {
    fn percent(part: usize, size: usize) -> u32 {
        if size == 0 {
            return 100;
        }
        u32::try_from(part * 100 / size).unwrap_or(100)
    }

    /// Every locker of the wave has an outcome.
    pub fn settled(&self) -> bool {
        self.installed + self.failed >= self.size
    }
}

/// The thresholds a campaign runs by, in percent of a wave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// The share of a wave installed before the next wave starts.
    pub success: u8,
    /// The share of a wave failed at which the campaign stops by itself (a share above it
    /// stops it; 0 stops it at the first failure).
    pub error: u8,
}

/// What a running campaign does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Wait: the current wave is still under way.
    Wait,
    /// Start wave `n` (0-based).
    StartWave(usize),
    /// Stop: wave `n` failed more than the error threshold allows.
    Stop {
        /// The wave.
        wave: usize,
        /// Its failed share, in percent.
        failed: u32,
    },
    /// Every wave started and settled.
    Done,
}

/// What to do next, given the tallies of the waves started so far (in order) out of `waves`.
pub fn next(started: &[WaveTally], waves: usize, thresholds: Thresholds) -> Next {
    for (n, wave) in started.iter().enumerate() {
        let failed = WaveTally::percent(wave.failed, wave.size);
        if wave.failed > 0 && failed > u32::from(thresholds.error) {
            return Next::Stop { wave: n, failed };
        }
    }
    let Some(current) = started.last() else {
        return if waves == 0 {
            Next::Done
        } else {
            Next::StartWave(0)
        };
    };
    let reached =
        WaveTally::percent(current.installed, current.size) >= u32::from(thresholds.success);
    if started.len() < waves && reached {
        return Next::StartWave(started.len());
    }
    if started.len() == waves && started.iter().all(WaveTally::settled) {
        return Next::Done;
    }
    Next::Wait
}

/// A daily maintenance window, in local time of the campaign's zone: installs start only inside
/// it. A window whose end is before its start spans midnight; equal ends are the whole day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// From.
    pub start: NaiveTime,
    /// Until (not included).
    pub end: NaiveTime,
}

impl Window {
    /// Whether the window is open at `now` in `zone`.
    pub fn is_open<Z: TimeZone>(&self, zone: &Z, now: DateTime<Utc>) -> bool {
        let local = now.with_timezone(zone).time();
        if self.start == self.end {
            true
        } else if self.start < self.end {
            self.start <= local && local < self.end
        } else {
            local >= self.start || local < self.end
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waves_are_cut_by_count_or_share_and_the_last_takes_the_rest() {
        use WaveSize::*;
        assert_eq!(
            wave_sizes(200, &[Count(5), Percent(25), Percent(100)]),
            [5, 50, 145]
        );
        assert_eq!(
            wave_sizes(10, &[Percent(1), Percent(50), Count(1)]),
            [1, 5, 4]
        );
        assert_eq!(wave_sizes(3, &[Count(5), Count(5), Count(5)]), [3]);
        assert_eq!(wave_sizes(0, &[Count(5)]), Vec::<usize>::new());
        assert_eq!(
            wave_sizes(7, &[Count(0), Count(2)]),
            [1, 6],
            "a wave has at least one"
        );
        assert_eq!(wave_sizes(1000, &[Percent(200)]), [1000]);
    }

    proptest::proptest! {
        #[test]
        fn waves_always_cover_every_locker_once(
            total in 0usize..5000,
            waves in proptest::collection::vec((0u32..3000, 0u8..=255, proptest::bool::ANY), 1..6),
        ) {
            let waves: Vec<WaveSize> = waves
                .into_iter()
                .map(|(n, p, by_count)| if by_count { WaveSize::Count(n) } else { WaveSize::Percent(p) })
                .collect();
            let sizes = wave_sizes(total, &waves);
            proptest::prop_assert_eq!(sizes.iter().sum::<usize>(), total);
            proptest::prop_assert!(sizes.len() <= waves.len());
            proptest::prop_assert!(sizes.iter().all(|s| *s >= 1));
        }
    }

    fn tally(size: usize, installed: usize, failed: usize) -> WaveTally {
        WaveTally {
            size,
            installed,
            failed,
        }
    }

    #[test]
    fn the_next_wave_waits_for_the_success_threshold_and_failures_stop_the_campaign() {
        let t = Thresholds {
            success: 80,
            error: 10,
        };
        assert_eq!(next(&[], 3, t), Next::StartWave(0));
        assert_eq!(next(&[tally(10, 7, 0)], 3, t), Next::Wait);
        assert_eq!(next(&[tally(10, 8, 1)], 3, t), Next::StartWave(1));
        assert_eq!(
            next(&[tally(10, 8, 2)], 3, t),
            Next::Stop {
                wave: 0,
                failed: 20
            }
        );
        assert_eq!(
            next(&[tally(10, 10, 0), tally(50, 20, 6)], 3, t),
            Next::Stop {
                wave: 1,
                failed: 12
            }
        );
        assert_eq!(
            next(
                &[tally(10, 10, 0), tally(50, 45, 1), tally(140, 139, 0)],
                3,
                t
            ),
            Next::Wait
        );
        assert_eq!(
            next(
                &[tally(10, 10, 0), tally(50, 49, 1), tally(140, 139, 1)],
                3,
                t
            ),
            Next::Done
        );
        let strict = Thresholds {
            success: 100,
            error: 0,
        };
        assert_eq!(
            next(&[tally(4, 3, 1)], 2, strict),
            Next::Stop {
                wave: 0,
                failed: 25
            }
        );
        assert_eq!(next(&[], 0, strict), Next::Done);
    }

    #[test]
    fn a_window_may_span_midnight_in_the_campaigns_zone() {
        let at = |h: u32, m: u32| NaiveTime::from_hms_opt(h, m, 0).expect("a time");
        let night = Window {
            start: at(22, 0),
            end: at(5, 0),
        };
        let berlin: chrono_tz::Tz = "Europe/Berlin".parse().expect("zone");
        let utc = |h: u32, m: u32| {
            Utc.with_ymd_and_hms(2026, 12, 5, h, m, 0)
                .single()
                .expect("a time")
        };
        // Berlin is UTC+1 in December.
        assert!(night.is_open(&berlin, utc(21, 30)), "22:30 there");
        assert!(night.is_open(&berlin, utc(3, 59)), "04:59 there");
        assert!(!night.is_open(&berlin, utc(4, 0)), "05:00 there");
        assert!(!night.is_open(&berlin, utc(12, 0)));
        let day = Window {
            start: at(9, 0),
            end: at(17, 0),
        };
        assert!(
            day.is_open(&chrono_tz::UTC, utc(9, 0)) && !day.is_open(&chrono_tz::UTC, utc(17, 0))
        );
        let always = Window {
            start: at(0, 0),
            end: at(0, 0),
        };
        assert!(always.is_open(&berlin, utc(13, 13)));
    }
}
