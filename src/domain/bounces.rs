//! The bounce auto-pause rule: hard-bounced recipients over recipients attempted, per channel,
//! over a rolling window of whole UTC days, with a minimum sample. Pure: counts in, verdict out.
//!
//! Defaults: 3 % over at least 50 sends in 7 days. The peers (DOMAINS.md §3) pause at about
//! 2–5 % (Woodpecker 2 % over 28 days after 20 sends; Smartlead disconnects above 3–5 %;
//! Instantly 1.8 %). The window is shorter than Woodpecker's 28 days because a young mailbox
//! sends 20–40 a day: seven days already give 140–280 sends, well above the minimum sample,
//! while a month of clean history would hide a fresh bad list for days (one bad import of
//! 200 addresses at 10 % is diluted below 3 % by three weeks of good sends at 40 a day).

use super::DomainError;

/// When bounces pause a channel. A tenant sets it (`PATCH /v1/tenant` `bounce_pause`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BouncePolicy {
    /// The threshold in hundredths of a percent (300 = 3 %): integers, so "exactly at the
    /// threshold" means one thing on every machine.
    pub threshold_basis_points: u32,
    /// Fewer sends than this in the window never pause: two bounces of the first ten sends
    /// say little about a list.
    pub min_sends: u32,
    /// The rolling window in whole UTC days, today included.
    pub window_days: u32,
}

impl Default for BouncePolicy {
    fn default() -> Self {
        Self {
            threshold_basis_points: 300,
            min_sends: 50,
            window_days: 7,
        }
    }
}

/// Limits of the settings, so a typo cannot switch the protection off in effect.
pub const MAX_WINDOW_DAYS: u32 = 90;
pub const MAX_MIN_SENDS: u32 = 100_000;
/// Above 20 % a mailbox is burnt long before it pauses.
pub const MAX_THRESHOLD_PERCENT: f64 = 20.0;

impl BouncePolicy {
    /// Checks the settings as a person types them: a percentage (two decimals at most),
    /// sends and days. Each error names the field.
    pub fn parse(
        threshold_percent: f64,
        min_sends: u32,
        window_days: u32,
    ) -> Result<Self, (&'static str, DomainError)> {
        let bp = threshold_percent * 100.0;
        if !threshold_percent.is_finite()
            || threshold_percent <= 0.0
            || threshold_percent > MAX_THRESHOLD_PERCENT
        {
            return Err((
                "threshold_percent",
                DomainError::new(format!(
                    "the threshold is a percentage above 0 and at most {MAX_THRESHOLD_PERCENT} (e.g. 3 or 2.5)"
                )),
            ));
        }
        if (bp - bp.round()).abs() > 1e-6 {
            return Err((
                "threshold_percent",
                DomainError::new("the threshold has at most two decimals (e.g. 1.75)"),
            ));
        }
        if min_sends == 0 || min_sends > MAX_MIN_SENDS {
            return Err((
                "min_sends",
                DomainError::new(format!(
                    "the minimum sample is between 1 and {MAX_MIN_SENDS} sends"
                )),
            ));
        }
        if window_days == 0 || window_days > MAX_WINDOW_DAYS {
            return Err((
                "window_days",
                DomainError::new(format!(
                    "the window is between 1 and {MAX_WINDOW_DAYS} days"
                )),
            ));
        }
        Ok(Self {
            threshold_basis_points: bp.round() as u32,
            min_sends,
            window_days,
        })
    }

    /// The threshold as a percentage, as people read it.
    pub fn threshold_percent(&self) -> f64 {
        f64::from(self.threshold_basis_points) / 100.0
    }
}

/// What a channel's window holds: recipients attempted and recipients hard-bounced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BounceFigures {
    pub sends: u64,
    pub hard_bounces: u64,
}

impl BounceFigures {
    /// The rate in percent, for people (the verdict itself uses integers).
    pub fn rate_percent(&self) -> f64 {
        if self.sends == 0 {
            0.0
        } else {
            self.hard_bounces as f64 * 100.0 / self.sends as f64
        }
    }
}

/// Whether the figures pause the channel: at least `min_sends` sends, and hard bounces at or
/// above the threshold ("3 %" pauses at 3 %, as the peers' "pause at 2 %" does).
pub fn crosses(policy: &BouncePolicy, figures: BounceFigures) -> bool {
    figures.sends >= u64::from(policy.min_sends)
        && u128::from(figures.hard_bounces) * 10_000
            >= u128::from(policy.threshold_basis_points) * u128::from(figures.sends)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(sends: u64, hard_bounces: u64) -> BounceFigures {
        BounceFigures {
            sends,
            hard_bounces,
        }
    }

    #[test]
    fn the_minimum_sample_comes_first() {
        let p = BouncePolicy::default();
        assert!(!crosses(&p, f(49, 49)), "49 sends, all bounced: too few");
        assert!(crosses(&p, f(50, 2)), "50 sends, 4 %");
        assert!(!crosses(&p, f(0, 0)));
    }

    #[test]
    fn exactly_at_the_threshold_pauses_just_below_does_not() {
        let p = BouncePolicy::default();
        assert!(crosses(&p, f(100, 3)), "3 of 100 is 3 %");
        assert!(!crosses(&p, f(101, 3)), "3 of 101 is 2.97 %");
        assert!(!crosses(&p, f(100, 2)));
        let fine = BouncePolicy::parse(1.75, 20, 28).unwrap();
        assert_eq!(fine.threshold_basis_points, 175);
        assert!(crosses(&fine, f(400, 7)), "7 of 400 is 1.75 %");
        assert!(!crosses(&fine, f(401, 7)));
    }

    #[test]
    fn large_counts_do_not_overflow() {
        let p = BouncePolicy::default();
        assert!(crosses(&p, f(u64::MAX, u64::MAX)));
        assert!(!crosses(&p, f(u64::MAX, 0)));
    }

    #[test]
    fn settings_are_checked_and_name_the_field() {
        assert_eq!(
            BouncePolicy::parse(3.0, 50, 7).unwrap(),
            BouncePolicy::default()
        );
        for (pct, sends, days, field) in [
            (0.0, 50, 7, "threshold_percent"),
            (-1.0, 50, 7, "threshold_percent"),
            (20.5, 50, 7, "threshold_percent"),
            (f64::NAN, 50, 7, "threshold_percent"),
            (2.125, 50, 7, "threshold_percent"),
            (3.0, 0, 7, "min_sends"),
            (3.0, MAX_MIN_SENDS + 1, 7, "min_sends"),
            (3.0, 50, 0, "window_days"),
            (3.0, 50, MAX_WINDOW_DAYS + 1, "window_days"),
        ] {
            let (got, _) = BouncePolicy::parse(pct, sends, days).unwrap_err();
            assert_eq!(got, field, "{pct} {sends} {days}");
        }
        assert_eq!(
            BouncePolicy::parse(20.0, 1, 90)
                .unwrap()
                .threshold_percent(),
            20.0
        );
    }
}
