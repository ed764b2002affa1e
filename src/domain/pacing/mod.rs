//! Pacing a mailbox like a careful rep: sending windows in a time zone, a daily cap, a
//! warm-up ramp and a minimum gap with jitter. Pure rules: `now` is always passed in; the
//! counting and the next free slot live in the store (`store::quotas`).

mod gap;
mod ramp;
mod spec;
mod window;

pub use gap::{MinGap, spread_spacing};
pub use ramp::{RampDay, Warmup};
pub use spec::{MinGapSpec, WarmupSpec, WindowSpec, WindowsSpec};
pub use window::{SendingWindows, Window};

use chrono::{DateTime, SecondsFormat, Utc};

/// A rule in a pacing setting that was refused: a stable `code`, the `field` it names (as the
/// API spells it) and a sentence a person can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct PacingError {
    pub code: &'static str,
    pub field: String,
    pub reason: String,
}

impl PacingError {
    pub(crate) fn new(
        code: &'static str,
        field: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Self {
            code,
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Which limit keeps a channel from sending now. Every block names one, with an until.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PaceLimit {
    OutsideWindow,
    DailyCap,
    WarmupCap,
    MinGap,
    PerMinute,
    PerDayRecipients,
}

impl PaceLimit {
    /// Stable: the message's completion reason and the API's `limit`.
    pub fn code(self) -> &'static str {
        match self {
            PaceLimit::OutsideWindow => "outside_window",
            PaceLimit::DailyCap => "daily_cap",
            PaceLimit::WarmupCap => "warmup_cap",
            PaceLimit::MinGap => "min_gap",
            PaceLimit::PerMinute => "per_minute",
            PaceLimit::PerDayRecipients => "per_day_recipients",
        }
    }

    pub fn parse(code: &str) -> Option<Self> {
        [
            PaceLimit::OutsideWindow,
            PaceLimit::DailyCap,
            PaceLimit::WarmupCap,
            PaceLimit::MinGap,
            PaceLimit::PerMinute,
            PaceLimit::PerDayRecipients,
        ]
        .into_iter()
        .find(|l| l.code() == code)
    }

    /// One sentence: what holds the channel and until when (UTC, RFC 3339).
    pub fn describe(self, until: DateTime<Utc>) -> String {
        let at = until.to_rfc3339_opts(SecondsFormat::Secs, true);
        match self {
            PaceLimit::OutsideWindow => {
                format!("outside the channel's sending window; next opening {at}")
            }
            PaceLimit::DailyCap => {
                format!("the channel's daily cap (messages per rolling 24 h) is reached until {at}")
            }
            PaceLimit::WarmupCap => format!(
                "the channel is warming up and today's ramp cap (messages per rolling 24 h) is reached until {at}"
            ),
            PaceLimit::MinGap => {
                format!("the channel paces its sends apart; next send no earlier than {at}")
            }
            PaceLimit::PerMinute => {
                format!("the channel's per-minute limit is used up until {at}")
            }
            PaceLimit::PerDayRecipients => {
                format!("the channel's recipients per rolling day are used up until {at}")
            }
        }
    }
}

/// Which limit sets a channel's cap for the day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapSource {
    /// The channel's own `per_day_messages`.
    Channel,
    /// The tenant's default `per_day_messages`.
    TenantDefault,
    /// The warm-up ramp's cap for today.
    Warmup,
}

impl CapSource {
    pub fn as_str(self) -> &'static str {
        match self {
            CapSource::Channel => "per_day_messages",
            CapSource::TenantDefault => "tenant_default",
            CapSource::Warmup => "warmup",
        }
    }

    pub fn limit(self) -> PaceLimit {
        match self {
            CapSource::Warmup => PaceLimit::WarmupCap,
            _ => PaceLimit::DailyCap,
        }
    }
}

/// The day's message cap: the lower of the configured daily cap (the channel's, else the
/// tenant's default) and the ramp's cap for `today`. A tie is named after the daily cap: it
/// stays when the ramp ends.
pub fn day_cap(
    channel: Option<u32>,
    tenant_default: Option<u32>,
    warmup: Option<&Warmup>,
    today: chrono::NaiveDate,
) -> Option<(u32, CapSource)> {
    let configured = channel
        .map(|c| (c, CapSource::Channel))
        .or(tenant_default.map(|c| (c, CapSource::TenantDefault)));
    let ramp = warmup.map(|w| (w.day(today).cap, CapSource::Warmup));
    match (configured, ramp) {
        (Some(c), Some(r)) if r.0 < c.0 => Some(r),
        (Some(c), _) => Some(c),
        (None, r) => r,
    }
}

/// A tenant's defaults for channels that set none: windows and a daily cap.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendingDefaults {
    pub windows: Option<SendingWindows>,
    pub per_day_messages: Option<u32>,
}

/// What paces one channel: its own settings, else the tenant's defaults.
#[derive(Debug, Clone, Copy)]
pub struct Pacing<'a> {
    pub windows: Option<&'a SendingWindows>,
    pub per_day_messages: Option<u32>,
    pub per_day_from_tenant: bool,
    pub warmup: Option<&'a Warmup>,
    pub min_gap: Option<&'a MinGap>,
}

impl<'a> Pacing<'a> {
    pub fn of(limits: &'a super::ChannelLimits, defaults: &'a SendingDefaults) -> Self {
        Self {
            windows: limits.windows.as_ref().or(defaults.windows.as_ref()),
            per_day_messages: limits.per_day_messages.or(defaults.per_day_messages),
            per_day_from_tenant: limits.per_day_messages.is_none()
                && defaults.per_day_messages.is_some(),
            warmup: limits.warmup.as_ref(),
            min_gap: limits.min_gap.as_ref(),
        }
    }

    pub fn is_paced(&self) -> bool {
        self.windows.is_some()
            || self.per_day_messages.is_some()
            || self.warmup.is_some()
            || self.min_gap.is_some()
    }

    /// The day a ramp counts in: the windows' local date, else UTC's.
    pub fn today(&self, now: DateTime<Utc>) -> chrono::NaiveDate {
        self.windows.map_or(now.date_naive(), |w| w.local_date(now))
    }

    /// The day's cap and which limit sets it.
    pub fn day_cap(&self, now: DateTime<Utc>) -> Option<(u32, CapSource)> {
        let (channel, tenant) = if self.per_day_from_tenant {
            (None, self.per_day_messages)
        } else {
            (self.per_day_messages, None)
        };
        day_cap(channel, tenant, self.warmup, self.today(now))
    }

    /// When the window is closed at `now`: its next opening.
    pub fn closed_until(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let windows = self.windows?;
        if windows.is_open(now) {
            None
        } else {
            windows.next_opening(now)
        }
    }

    /// The earliest next send after one at `now`, or `None` when sends need no spacing.
    ///
    /// Spreading: a channel with windows and a day cap spaces its sends by the day's open
    /// time divided by the cap, so mail that waited for an opening leaves over the window
    /// instead of as one burst at its start. The slot is kept per channel in the database
    /// (set in the same transaction that takes the quota), so it holds across processes
    /// without knowing how many messages wait; a jittered `min_gap` widens it.
    pub fn next_slot(&self, now: DateTime<Utc>, rng: &mut impl rand::Rng) -> Option<DateTime<Utc>> {
        let spread = self.windows.and_then(|w| {
            spread_spacing(w.open_length_on_day_of(now), self.day_cap(now).map(|c| c.0))
        });
        let gap = self.min_gap.map(|g| g.draw(rng));
        let wait = match (spread, gap) {
            (Some(a), Some(b)) => a.max(b),
            (a, b) => a.or(b)?,
        };
        Some(now + wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    #[test]
    fn the_day_cap_is_the_lower_of_the_cap_and_the_ramp() {
        let d = |s| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let ramp = Warmup::new(20, 2, 200, d("2026-12-02"), "warmup").unwrap();
        let today = d("2026-12-02");
        assert_eq!(
            day_cap(Some(500), None, Some(&ramp), today),
            Some((20, CapSource::Warmup))
        );
        assert_eq!(
            day_cap(Some(10), Some(5), Some(&ramp), today),
            Some((10, CapSource::Channel))
        );
        assert_eq!(
            day_cap(None, Some(20), Some(&ramp), today),
            Some((20, CapSource::TenantDefault)),
            "a tie names the cap that stays"
        );
        assert_eq!(
            day_cap(None, None, Some(&ramp), d("2027-12-01")),
            Some((200, CapSource::Warmup))
        );
        assert_eq!(day_cap(None, None, None, today), None);
    }

    #[test]
    fn a_capped_window_spreads_its_sends_and_a_longer_gap_wins() {
        use rand::SeedableRng;
        let d = |s| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let days: Vec<String> = ["mon", "tue", "wed", "thu", "fri"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let office = SendingWindows::new(
            "Europe/Berlin",
            vec![Window::parse(&days, "09:00", "17:30", "w").unwrap()],
            "windows",
        )
        .unwrap();
        let limits = super::super::ChannelLimits {
            per_day_messages: Some(30),
            windows: Some(office),
            ..Default::default()
        };
        let defaults = SendingDefaults::default();
        let pacing = Pacing::of(&limits, &defaults);
        let monday = DateTime::parse_from_rfc3339("2026-12-07T08:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        // 8 h 30 min over 30 messages: one every 17 minutes.
        assert_eq!(
            pacing.next_slot(monday, &mut rng),
            Some(monday + chrono::Duration::minutes(17))
        );
        let gap = MinGap::new(1_800, 1_800, "g").unwrap();
        let wide = super::super::ChannelLimits {
            min_gap: Some(gap),
            ..limits.clone()
        };
        assert_eq!(
            Pacing::of(&wide, &defaults).next_slot(monday, &mut rng),
            Some(monday + chrono::Duration::minutes(30))
        );
        // No cap: nothing to spread by; no windows and no gap: no slot at all.
        let uncapped = super::super::ChannelLimits {
            per_day_messages: None,
            ..limits.clone()
        };
        assert_eq!(
            Pacing::of(&uncapped, &defaults).next_slot(monday, &mut rng),
            None
        );
        // The tenant's cap spreads a channel that has only windows; a ramp lowers it.
        let tenant = SendingDefaults {
            windows: None,
            per_day_messages: Some(510),
        };
        assert_eq!(
            Pacing::of(&uncapped, &tenant).next_slot(monday, &mut rng),
            Some(monday + chrono::Duration::minutes(1))
        );
        let ramping = super::super::ChannelLimits {
            warmup: Some(Warmup::new(20, 2, 200, d("2026-12-07"), "w").unwrap()),
            ..uncapped
        };
        assert_eq!(
            Pacing::of(&ramping, &tenant).day_cap(monday),
            Some((20, CapSource::Warmup))
        );
        assert_eq!(
            Pacing::of(&ramping, &tenant).next_slot(monday, &mut rng),
            Some(monday + chrono::Duration::seconds(1_530))
        );
    }

    #[test]
    fn limits_round_trip_their_codes() {
        for code in [
            "outside_window",
            "daily_cap",
            "warmup_cap",
            "min_gap",
            "per_minute",
            "per_day_recipients",
        ] {
            assert_eq!(PaceLimit::parse(code).unwrap().code(), code);
        }
        assert_eq!(PaceLimit::parse("quota_exhausted"), None);
    }
}
