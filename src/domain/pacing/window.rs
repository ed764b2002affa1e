//! Sending windows: days of the week and hours in an IANA time zone. Every instant is found
//! through the tz database (chrono-tz), never with a fixed offset, so daylight saving moves
//! the windows with the rep's clock. A local start that does not exist (spring forward)
//! opens at the first valid instant after it; an ambiguous one (fall back) at the earlier.

use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, TimeZone, Utc, Weekday};
use chrono_tz::Tz;

use super::PacingError;

const DAY_CODES: [(&str, Weekday); 7] = [
    ("mon", Weekday::Mon),
    ("tue", Weekday::Tue),
    ("wed", Weekday::Wed),
    ("thu", Weekday::Thu),
    ("fri", Weekday::Fri),
    ("sat", Weekday::Sat),
    ("sun", Weekday::Sun),
];
const DAY_MINUTES: u16 = 1440;

/// Days (a set) and local hours [start, end) in minutes since midnight; `end` may be 1440
/// (`24:00`). A window never crosses midnight: two windows say that.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Bit 0 = Monday … bit 6 = Sunday.
    days: u8,
    start: u16,
    end: u16,
}

fn bit(day: Weekday) -> u8 {
    1 << day.num_days_from_monday()
}

fn parse_time(text: &str, allow_24: bool) -> Option<u16> {
    let (h, m) = text.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    match (h, m) {
        (24, 0) if allow_24 => Some(DAY_MINUTES),
        (0..=23, 0..=59) => Some(h * 60 + m),
        _ => None,
    }
}

fn time_text(minutes: u16) -> String {
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

impl Window {
    /// `days` like `["mon", "tue"]`, `start`/`end` as `HH:MM`; `field` names the window in
    /// errors (`limits.windows.windows[0]`).
    pub fn parse(
        days: &[String],
        start: &str,
        end: &str,
        field: &str,
    ) -> Result<Self, PacingError> {
        let invalid = |name: &str, reason: String| {
            PacingError::new("invalid_window", format!("{field}.{name}"), reason)
        };
        if days.is_empty() {
            return Err(invalid(
                "days",
                "a window needs at least one day (\"mon\" … \"sun\")".into(),
            ));
        }
        let mut mask = 0;
        for day in days {
            let found = DAY_CODES
                .iter()
                .find(|(code, _)| day.eq_ignore_ascii_case(code))
                .ok_or_else(|| {
                    invalid(
                        "days",
                        format!("`{day}` is not a day: use mon, tue, wed, thu, fri, sat or sun"),
                    )
                })?;
            mask |= bit(found.1);
        }
        let start = parse_time(start, false).ok_or_else(|| {
            invalid(
                "start",
                format!("`{start}` is not a time of day: use HH:MM, 00:00 to 23:59"),
            )
        })?;
        let end = parse_time(end, true).ok_or_else(|| {
            invalid(
                "end",
                format!("`{end}` is not a time of day: use HH:MM, 00:01 to 24:00"),
            )
        })?;
        if end <= start {
            return Err(invalid(
                "end",
                "a window ends after it starts; for one past midnight use two windows (…–24:00 and 00:00–…)".into(),
            ));
        }
        Ok(Self {
            days: mask,
            start,
            end,
        })
    }

    pub fn day_codes(&self) -> Vec<&'static str> {
        DAY_CODES
            .iter()
            .filter(|(_, d)| self.days & bit(*d) != 0)
            .map(|(c, _)| *c)
            .collect()
    }

    pub fn start_text(&self) -> String {
        time_text(self.start)
    }

    pub fn end_text(&self) -> String {
        time_text(self.end)
    }

    /// `Mon–Fri 09:00–17:30`, `Mon, Wed 10:00–12:00`.
    fn describe(&self) -> String {
        let on: Vec<usize> = (0..7).filter(|i| self.days & (1 << i) != 0).collect();
        let name = |i: usize| {
            let code = DAY_CODES[i].0;
            format!("{}{}", code[..1].to_uppercase(), &code[1..])
        };
        let contiguous = on.windows(2).all(|w| w[1] == w[0] + 1);
        let days = if on.len() > 2 && contiguous {
            format!("{}–{}", name(on[0]), name(on[on.len() - 1]))
        } else {
            on.iter().map(|&i| name(i)).collect::<Vec<_>>().join(", ")
        };
        format!("{days} {}–{}", self.start_text(), self.end_text())
    }
}

/// `{time_zone: "Europe/Berlin", windows: [...]}`: when a channel may send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendingWindows {
    pub time_zone: Tz,
    pub windows: Vec<Window>,
}

/// The instant a local date and minute of day names in `tz`: the earlier of two (fall
/// back), or the first valid instant after a time that does not exist (spring forward).
fn resolve(tz: Tz, date: NaiveDate, minute: u16) -> DateTime<Utc> {
    let (date, minute) = if minute >= DAY_MINUTES {
        (date.succ_opt().unwrap_or(date), 0)
    } else {
        (date, minute)
    };
    let mut local = date
        .and_hms_opt(u32::from(minute / 60), u32::from(minute % 60), 0)
        .unwrap_or_default();
    // Gaps in the tz database start and end on whole minutes and last at most a few hours;
    // stepping by minutes finds the transition exactly.
    for _ in 0..(24 * 60) {
        match tz.from_local_datetime(&local) {
            LocalResult::Single(t) => return t.with_timezone(&Utc),
            LocalResult::Ambiguous(a, b) => return a.min(b).with_timezone(&Utc),
            LocalResult::None => local += Duration::minutes(1),
        }
    }
    Utc.from_utc_datetime(&local)
}

impl SendingWindows {
    /// `field` names the setting in errors (`limits.windows`).
    pub fn new(time_zone: &str, windows: Vec<Window>, field: &str) -> Result<Self, PacingError> {
        let time_zone: Tz = time_zone.parse().map_err(|_| {
            PacingError::new(
                "invalid_time_zone",
                format!("{field}.time_zone"),
                format!("`{time_zone}` is not an IANA time zone: use a name such as Europe/Berlin or America/New_York"),
            )
        })?;
        if windows.is_empty() {
            return Err(PacingError::new(
                "invalid_window",
                format!("{field}.windows"),
                "give at least one window, or null for none",
            ));
        }
        Ok(Self { time_zone, windows })
    }

    /// The open intervals (UTC) of a local date, merged and in order.
    fn intervals_on(&self, date: NaiveDate) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        let mut spans: Vec<_> = self
            .windows
            .iter()
            .filter(|w| w.days & bit(date.weekday()) != 0)
            .map(|w| {
                (
                    resolve(self.time_zone, date, w.start),
                    resolve(self.time_zone, date, w.end),
                )
            })
            .filter(|(start, end)| start < end)
            .collect();
        spans.sort();
        let mut merged: Vec<(DateTime<Utc>, DateTime<Utc>)> = Vec::new();
        for (start, end) in spans {
            match merged.last_mut() {
                Some(last) if start <= last.1 => last.1 = last.1.max(end),
                _ => merged.push((start, end)),
            }
        }
        merged
    }

    /// Intervals from the local day before `now` to eight days after: enough to hold the
    /// next opening of any window with at least one day.
    fn intervals_around(&self, now: DateTime<Utc>) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        let today = now.with_timezone(&self.time_zone).date_naive();
        let mut all: Vec<_> = (-1..=8)
            .filter_map(|n| today.checked_add_signed(Duration::days(n)))
            .flat_map(|d| self.intervals_on(d))
            .collect();
        all.sort();
        all
    }

    pub fn is_open(&self, now: DateTime<Utc>) -> bool {
        self.intervals_around(now)
            .iter()
            .any(|(start, end)| *start <= now && now < *end)
    }

    /// The first opening strictly after `now` (when open now: the one after this window).
    pub fn next_opening(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let all = self.intervals_around(now);
        // An interval that starts exactly when another ends is not an opening.
        all.iter()
            .map(|(start, _)| *start)
            .filter(|start| *start > now)
            .find(|start| !all.iter().any(|(s, e)| s < start && start <= e))
    }

    /// When sending may happen from `now` on: now when open, else the next opening.
    pub fn open_at(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.is_open(now) {
            Some(now)
        } else {
            self.next_opening(now)
        }
    }

    /// When the window open at `now` closes (`None` when closed), across windows that touch.
    pub fn closes_at(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let all = self.intervals_around(now);
        let mut at = now;
        loop {
            let end = all
                .iter()
                .filter(|(s, e)| *s <= at && at < *e)
                .map(|(_, e)| *e)
                .max();
            match end {
                Some(end) => at = end,
                None => return (at > now).then_some(at),
            }
        }
    }

    /// How long the windows are open on the local day of `now` (for spreading a day's cap).
    pub fn open_length_on_day_of(&self, now: DateTime<Utc>) -> Duration {
        let today = now.with_timezone(&self.time_zone).date_naive();
        self.intervals_on(today)
            .iter()
            .map(|(s, e)| *e - *s)
            .fold(Duration::zero(), |a, b| a + b)
    }

    /// The local date of `now` in the windows' zone (the day a ramp counts in).
    pub fn local_date(&self, now: DateTime<Utc>) -> NaiveDate {
        now.with_timezone(&self.time_zone).date_naive()
    }

    /// `Mon–Fri 09:00–17:30 Europe/Berlin`.
    pub fn describe(&self) -> String {
        let windows: Vec<String> = self.windows.iter().map(Window::describe).collect();
        format!("{} {}", windows.join(", "), self.time_zone.name())
    }

    /// An instant as the rep reads it: `2026-12-07 09:00 CET`.
    pub fn local_text(&self, at: DateTime<Utc>) -> String {
        at.with_timezone(&self.time_zone)
            .format("%Y-%m-%d %H:%M %Z")
            .to_string()
    }

    /// The sentence for mail that waits for the window.
    pub fn describe_wait(&self, opening: DateTime<Utc>) -> String {
        format!(
            "outside the sending window {}; next opening {}",
            self.describe(),
            self.local_text(opening)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn w(days: &[&str], start: &str, end: &str) -> Window {
        let days: Vec<String> = days.iter().map(|d| d.to_string()).collect();
        Window::parse(&days, start, end, "w").unwrap()
    }

    fn windows(tz: &str, list: Vec<Window>) -> SendingWindows {
        SendingWindows::new(tz, list, "limits.windows").unwrap()
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    const WEEKDAYS: [&str; 5] = ["mon", "tue", "wed", "thu", "fri"];

    #[test]
    fn office_hours_in_berlin_open_close_and_wrap_over_the_weekend() {
        let office = windows("Europe/Berlin", vec![w(&WEEKDAYS, "09:00", "17:30")]);
        // Friday 2026-12-04 17:00 CET = 16:00 UTC: open, closes at 16:30 UTC.
        let friday = utc("2026-12-04T16:00:00Z");
        assert!(office.is_open(friday));
        assert_eq!(office.closes_at(friday), Some(utc("2026-12-04T16:30:00Z")));
        assert_eq!(
            office.next_opening(friday),
            Some(utc("2026-12-07T08:00:00Z"))
        );
        // Closed at the closing instant, and over the weekend until Monday 09:00 CET.
        assert!(!office.is_open(utc("2026-12-04T16:30:00Z")));
        assert_eq!(office.closes_at(utc("2026-12-05T12:00:00Z")), None);
        assert_eq!(
            office.open_at(utc("2026-12-06T23:59:00Z")),
            Some(utc("2026-12-07T08:00:00Z"))
        );
        assert_eq!(
            office.describe_wait(utc("2026-12-07T08:00:00Z")),
            "outside the sending window Mon–Fri 09:00–17:30 Europe/Berlin; next opening 2026-12-07 09:00 CET"
        );
        assert_eq!(office.open_length_on_day_of(friday), Duration::minutes(510));
        assert_eq!(
            office.open_length_on_day_of(utc("2026-12-05T12:00:00Z")),
            Duration::zero()
        );
    }

    #[test]
    fn a_sunday_only_window_wraps_the_week() {
        let sunday = windows("America/New_York", vec![w(&["sun"], "10:00", "11:00")]);
        // Monday 2026-12-07 noon EST: next is Sunday 2026-12-13 10:00 EST = 15:00 UTC.
        assert_eq!(
            sunday.next_opening(utc("2026-12-07T17:00:00Z")),
            Some(utc("2026-12-13T15:00:00Z"))
        );
        // During the window, the next opening is a week later.
        assert_eq!(
            sunday.next_opening(utc("2026-12-13T15:30:00Z")),
            Some(utc("2026-12-20T15:00:00Z"))
        );
    }

    #[test]
    fn spring_forward_opens_at_the_first_valid_instant_in_both_zones() {
        // Berlin, 2027-03-28: 02:00 CET jumps to 03:00 CEST (01:00 UTC).
        let berlin = windows("Europe/Berlin", vec![w(&["sun"], "02:30", "04:00")]);
        let before = utc("2027-03-27T12:00:00Z");
        assert_eq!(
            berlin.next_opening(before),
            Some(utc("2027-03-28T01:00:00Z"))
        );
        assert_eq!(
            berlin.closes_at(utc("2027-03-28T01:00:00Z")),
            Some(utc("2027-03-28T02:00:00Z"))
        );
        // New York, 2027-03-14: 02:00 EST jumps to 03:00 EDT (07:00 UTC).
        let ny = windows("America/New_York", vec![w(&["sun"], "02:30", "05:00")]);
        assert_eq!(
            ny.next_opening(utc("2027-03-13T12:00:00Z")),
            Some(utc("2027-03-14T07:00:00Z"))
        );
        assert!(!ny.is_open(utc("2027-03-14T06:59:00Z")));
        assert!(ny.is_open(utc("2027-03-14T07:00:00Z")));
        // A week before, the same window opens at 02:30 EST = 07:30 UTC: the offset moved.
        assert_eq!(
            ny.next_opening(utc("2027-03-06T12:00:00Z")),
            Some(utc("2027-03-07T07:30:00Z"))
        );
        assert_eq!(
            ny.open_length_on_day_of(utc("2027-03-14T12:00:00Z")),
            Duration::hours(2)
        );
    }

    #[test]
    fn fall_back_opens_at_the_earlier_of_two_instants_in_both_zones() {
        // Berlin, 2026-10-25: 02:30 happens at 00:30 UTC (CEST) and 01:30 UTC (CET).
        let berlin = windows("Europe/Berlin", vec![w(&["sun"], "02:30", "03:30")]);
        assert_eq!(
            berlin.next_opening(utc("2026-10-24T12:00:00Z")),
            Some(utc("2026-10-25T00:30:00Z"))
        );
        // 03:30 CET = 02:30 UTC: the window is two hours long that night.
        assert_eq!(
            berlin.closes_at(utc("2026-10-25T00:30:00Z")),
            Some(utc("2026-10-25T02:30:00Z"))
        );
        // New York, 2026-11-01: 01:30 happens at 05:30 UTC (EDT) and 06:30 UTC (EST).
        let ny = windows("America/New_York", vec![w(&["sun"], "01:30", "09:00")]);
        assert_eq!(
            ny.next_opening(utc("2026-10-31T12:00:00Z")),
            Some(utc("2026-11-01T05:30:00Z"))
        );
        assert_eq!(
            ny.closes_at(utc("2026-11-01T05:30:00Z")),
            Some(utc("2026-11-01T14:00:00Z"))
        );
        // Office hours on the Monday after: the usual local time at the new offset.
        let office = windows("America/New_York", vec![w(&WEEKDAYS, "09:00", "17:00")]);
        assert_eq!(
            office.next_opening(utc("2026-10-31T12:00:00Z")),
            Some(utc("2026-11-02T14:00:00Z"))
        );
        assert_eq!(
            office.next_opening(utc("2026-10-28T22:00:00Z")),
            Some(utc("2026-10-29T13:00:00Z"))
        );
    }

    #[test]
    fn touching_windows_are_one_opening() {
        let split = windows(
            "Europe/Berlin",
            vec![
                w(&["mon"], "09:00", "12:00"),
                w(&["mon"], "12:00", "17:00"),
                w(&["sun"], "22:00", "24:00"),
            ],
        );
        assert_eq!(
            split.closes_at(utc("2026-12-07T09:00:00Z")),
            Some(utc("2026-12-07T16:00:00Z"))
        );
        // Sunday 22:00–24:00 ends at Monday 00:00; Monday opens at 09:00.
        assert_eq!(
            split.closes_at(utc("2026-12-06T22:00:00Z")),
            Some(utc("2026-12-06T23:00:00Z"))
        );
        assert_eq!(
            split.next_opening(utc("2026-12-07T08:30:00Z")),
            Some(utc("2026-12-13T21:00:00Z"))
        );
        assert_eq!(
            split.describe(),
            "Mon 09:00–12:00, Mon 12:00–17:00, Sun 22:00–24:00 Europe/Berlin"
        );
    }

    #[test]
    fn bad_windows_are_refused_naming_the_field() {
        let days = |d: &[&str]| d.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let e = Window::parse(&[], "09:00", "17:00", "limits.windows.windows[0]").unwrap_err();
        assert_eq!(
            (e.code, e.field.as_str()),
            ("invalid_window", "limits.windows.windows[0].days")
        );
        let e = Window::parse(&days(&["mon", "funday"]), "09:00", "17:00", "x").unwrap_err();
        assert_eq!(e.field, "x.days");
        for (start, end, field) in [
            ("9:00", "17:00", "x.start"),
            ("24:00", "24:00", "x.start"),
            ("09:00", "25:00", "x.end"),
            ("17:00", "09:00", "x.end"),
            ("09:00", "09:00", "x.end"),
        ] {
            let e = Window::parse(&days(&["mon"]), start, end, "x").unwrap_err();
            assert_eq!(e.field, field, "{start}–{end}");
        }
        let e = SendingWindows::new(
            "Europe/Berlinn",
            vec![w(&["mon"], "09:00", "10:00")],
            "limits.windows",
        )
        .unwrap_err();
        assert_eq!(
            (e.code, e.field.as_str()),
            ("invalid_time_zone", "limits.windows.time_zone")
        );
        assert_eq!(
            SendingWindows::new("UTC", vec![], "f").unwrap_err().code,
            "invalid_window"
        );
        assert_eq!(
            w(&["fri", "MON"], "00:00", "24:00").day_codes(),
            ["mon", "fri"]
        );
    }

    /// Random windows in both zones at random instants over two years (DST changes
    /// included): the answers agree with each other.
    #[test]
    fn random_windows_agree_with_themselves_across_daylight_saving() {
        let mut rng = StdRng::seed_from_u64(4_000);
        let codes = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
        let base = utc("2026-01-01T00:00:00Z");
        for case in 0..1_500 {
            let tz = if rng.random_bool(0.5) {
                "Europe/Berlin"
            } else {
                "America/New_York"
            };
            let list: Vec<Window> = (0..rng.random_range(1..=3))
                .map(|_| {
                    let days: Vec<String> = codes
                        .iter()
                        .filter(|_| rng.random_bool(0.4))
                        .map(|d| d.to_string())
                        .collect();
                    let days = if days.is_empty() {
                        vec!["sun".to_owned()]
                    } else {
                        days
                    };
                    // Quarter hours, biased toward the small hours where DST changes happen.
                    let start = if rng.random_bool(0.5) {
                        rng.random_range(0..16) * 15
                    } else {
                        rng.random_range(0..95) * 15
                    };
                    let end = rng.random_range(start / 15 + 1..=96) * 15;
                    Window::parse(&days, &time_text(start), &time_text(end), "w").unwrap()
                })
                .collect();
            let s = windows(tz, list);
            let now = base + Duration::minutes(rng.random_range(0..(2 * 365 * 1440)));
            let opening = s
                .next_opening(now)
                .expect("a window with days opens within a week");
            assert!(
                opening > now && opening - now <= Duration::days(8),
                "case {case}"
            );
            assert!(s.is_open(opening), "case {case}: open at its opening");
            if s.is_open(now) {
                let close = s.closes_at(now).expect("open windows close");
                assert!(close > now && !s.is_open(close), "case {case}");
                assert!(s.is_open(close - Duration::seconds(1)), "case {case}");
            } else {
                assert_eq!(s.closes_at(now), None);
                // Closed all the way to the opening.
                for _ in 0..8 {
                    let span = (opening - now).num_seconds();
                    let probe = now + Duration::seconds(rng.random_range(0..span));
                    assert!(
                        !s.is_open(probe),
                        "case {case}: open at {probe} before {opening}"
                    );
                }
                // Just before the opening it is closed: a real opening.
                assert!(!s.is_open(opening - Duration::seconds(1)), "case {case}");
            }
            // The opening is a window's start on one of its days, in local time (or the
            // end of a DST gap that swallowed the start).
            let local = opening.with_timezone(&s.time_zone);
            let minute = (local.hour() * 60 + local.minute()) as u16;
            let day = local.weekday();
            let fits = s.windows.iter().any(|w| {
                let on = |d: Weekday| w.days & bit(d) != 0;
                (on(day)
                    && (w.start == minute
                        || resolve(s.time_zone, local.date_naive(), w.start) == opening))
                    || (minute == 0 && w.end == DAY_MINUTES && on(day.pred()))
            });
            assert!(fits, "case {case}: {opening} is no window's start");
        }
    }

    use chrono::Timelike;
}
