//! Human-like gaps between two sends of one mailbox, and the spacing that spreads a day's
//! cap over its window.

use chrono::Duration;
use rand::Rng;

use super::PacingError;

/// `{min_seconds: 60, max_seconds: 180}`: the next send no earlier than the last one plus a
/// gap drawn uniformly from [min, max].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinGap {
    pub min_seconds: u32,
    pub max_seconds: u32,
}

/// A day is the longest gap that still lets one message a day leave.
const MAX_GAP_SECONDS: u32 = 86_400;

impl MinGap {
    pub fn new(min_seconds: u32, max_seconds: u32, field: &str) -> Result<Self, PacingError> {
        if min_seconds > max_seconds {
            return Err(PacingError::new(
                "invalid_limits",
                format!("{field}.min_seconds"),
                "the shortest gap is above the longest: min_seconds must be at most max_seconds",
            ));
        }
        if max_seconds == 0 || max_seconds > MAX_GAP_SECONDS {
            return Err(PacingError::new(
                "invalid_limits",
                format!("{field}.max_seconds"),
                "the longest gap must be between 1 second and a day (86400)",
            ));
        }
        Ok(Self {
            min_seconds,
            max_seconds,
        })
    }

    /// A gap in [min, max] seconds, uniform, to the millisecond.
    pub fn draw(&self, rng: &mut impl Rng) -> Duration {
        let ms = rng
            .random_range(i64::from(self.min_seconds) * 1000..=i64::from(self.max_seconds) * 1000);
        Duration::milliseconds(ms)
    }
}

/// The spacing that spreads `cap` messages over `open` (the day's open window time), so
/// that mail waiting for an opening leaves over the window, not as one burst at its start.
/// `None` without a cap, or when the window is closed all day.
pub fn spread_spacing(open: Duration, cap: Option<u32>) -> Option<Duration> {
    let cap = i64::from(cap?.max(1));
    (open > Duration::zero()).then(|| Duration::milliseconds(open.num_milliseconds() / cap))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn jittered_gaps_stay_within_their_bounds_and_use_them() {
        let mut rng = StdRng::seed_from_u64(18);
        let gap = MinGap::new(60, 180, "min_gap").unwrap();
        let draws: Vec<Duration> = (0..4_000).map(|_| gap.draw(&mut rng)).collect();
        assert!(
            draws
                .iter()
                .all(|d| *d >= Duration::seconds(60) && *d <= Duration::seconds(180))
        );
        // Uniform: each third of the range gets roughly its share.
        for third in 0..3 {
            let lo = Duration::seconds(60 + 40 * third);
            let hi = lo + Duration::seconds(40);
            let n = draws.iter().filter(|d| **d >= lo && **d < hi).count();
            assert!((1_100..1_600).contains(&n), "third {third}: {n}");
        }
        let fixed = MinGap::new(30, 30, "min_gap").unwrap();
        assert!((0..100).all(|_| fixed.draw(&mut rng) == Duration::seconds(30)));
    }

    #[test]
    fn a_gap_with_min_above_max_is_refused() {
        let e = MinGap::new(200, 100, "limits.min_gap").unwrap_err();
        assert_eq!(e.code, "invalid_limits");
        assert_eq!(e.field, "limits.min_gap.min_seconds");
        assert!(MinGap::new(0, 0, "g").is_err());
        assert!(MinGap::new(0, 90_000, "g").is_err());
    }

    #[test]
    fn the_spacing_divides_the_window_by_the_cap() {
        let eight_and_a_half = Duration::minutes(510);
        assert_eq!(
            spread_spacing(eight_and_a_half, Some(30)),
            Some(Duration::minutes(17))
        );
        assert_eq!(spread_spacing(eight_and_a_half, None), None);
        assert_eq!(spread_spacing(Duration::zero(), Some(30)), None);
    }
}
