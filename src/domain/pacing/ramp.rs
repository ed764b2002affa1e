//! Warm-up ramp: a young mailbox starts at a small daily cap and rises by a step a day up to
//! its target (Instantly's "slow ramp" adds 2 a day; Smartlead's example starts at 20).

use chrono::{Days, NaiveDate};

use super::PacingError;

/// `{start: 20, step: 2, target: 200, started_on: "2026-12-02"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Warmup {
    pub start: u32,
    pub step: u32,
    pub target: u32,
    pub started_on: NaiveDate,
}

/// Where a ramp stands on a given day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RampDay {
    /// 1 on `started_on` (and before it: a ramp that has not begun holds at its start).
    pub day: u32,
    pub cap: u32,
    /// The first day at the target.
    pub ends_on: NaiveDate,
}

impl Warmup {
    /// `field` names the setting in errors (`limits.warmup`).
    pub fn new(
        start: u32,
        step: u32,
        target: u32,
        started_on: NaiveDate,
        field: &str,
    ) -> Result<Self, PacingError> {
        let invalid = |name: &str, reason: &str| {
            PacingError::new("invalid_limits", format!("{field}.{name}"), reason)
        };
        if start == 0 {
            return Err(invalid("start", "the first day's cap must be at least 1"));
        }
        if start > target {
            return Err(invalid(
                "start",
                "the first day's cap is above the target: start at or below target",
            ));
        }
        if step == 0 && start < target {
            return Err(invalid(
                "step",
                "a ramp below its target needs a step of at least 1 a day",
            ));
        }
        Ok(Self {
            start,
            step,
            target,
            started_on,
        })
    }

    pub fn day(&self, today: NaiveDate) -> RampDay {
        let elapsed = u64::try_from((today - self.started_on).num_days()).unwrap_or(0);
        let grown = u64::from(self.start) + u64::from(self.step) * elapsed;
        let cap = grown.min(u64::from(self.target)) as u32;
        let days_to_target = if self.step == 0 {
            0
        } else {
            u64::from(self.target - self.start).div_ceil(u64::from(self.step))
        };
        RampDay {
            day: u32::try_from(elapsed + 1).unwrap_or(u32::MAX),
            cap,
            ends_on: self
                .started_on
                .checked_add_days(Days::new(days_to_target))
                .unwrap_or(NaiveDate::MAX),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn a_ramp_over_thirty_days_rises_by_its_step_and_stops_at_its_target() {
        let ramp = Warmup::new(20, 2, 70, d("2026-12-02"), "warmup").unwrap();
        let mut previous = 0;
        for n in 0..30u32 {
            let day = ramp.day(d("2026-12-02") + chrono::Duration::days(i64::from(n)));
            assert_eq!(day.day, n + 1);
            assert_eq!(day.cap, (20 + 2 * n).min(70));
            assert!(day.cap >= previous, "never falls");
            previous = day.cap;
            assert_eq!(day.ends_on, d("2026-12-27"), "25 steps of 2 from 20 to 70");
        }
        assert_eq!(ramp.day(d("2026-12-27")).cap, 70);
        assert_eq!(ramp.day(d("2026-12-26")).cap, 68);
        // Before it starts it holds at its start.
        assert_eq!(ramp.day(d("2026-11-01")).cap, 20);
        assert_eq!(ramp.day(d("2026-11-01")).day, 1);
    }

    #[test]
    fn a_step_that_overshoots_ends_on_the_day_it_reaches_the_target() {
        let ramp = Warmup::new(20, 7, 30, d("2026-12-02"), "warmup").unwrap();
        assert_eq!(ramp.day(d("2026-12-03")).cap, 27);
        assert_eq!(ramp.day(d("2026-12-04")).cap, 30);
        assert_eq!(ramp.day(d("2026-12-04")).ends_on, d("2026-12-04"));
    }

    #[test]
    fn bad_ramps_are_refused_naming_the_field() {
        let e = Warmup::new(300, 2, 200, d("2026-12-02"), "limits.warmup").unwrap_err();
        assert_eq!(
            (e.code, e.field.as_str()),
            ("invalid_limits", "limits.warmup.start")
        );
        let e = Warmup::new(20, 0, 200, d("2026-12-02"), "limits.warmup").unwrap_err();
        assert_eq!(e.field, "limits.warmup.step");
        assert!(Warmup::new(0, 2, 200, d("2026-12-02"), "w").is_err());
        assert!(
            Warmup::new(50, 0, 50, d("2026-12-02"), "w").is_ok(),
            "flat at target"
        );
    }
}
