//! A channel's sending per UTC day, as the dashboard and the stats API show it: the span of
//! days asked for, every day of it present (a quiet day is a day of zeros, not a gap), and
//! the totals. Days are counted the way the counter table stores them: days since
//! 1970-01-01 UTC.

use chrono::{DateTime, Days, NaiveDate, Utc};

/// The longest span the dashboard and the API show, in days.
pub const MAX_DAYS: u32 = 90;
/// The span shown when none is asked for.
pub const DEFAULT_DAYS: u32 = 30;

/// What happened to a channel's mail on one day (or over a span, for totals).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DayCounts {
    pub sent: u64,
    pub deferred: u64,
    pub held: u64,
    pub failed: u64,
    /// Recipients of the mail sent.
    pub recipients: u64,
    /// Recipients refused for good ("no such user").
    pub hard_bounces: u64,
}

impl DayCounts {
    /// The sum of two days, saturating rather than wrapping (a chart of `u64::MAX` is wrong
    /// but harmless; a wrapped total would be a lie).
    pub fn plus(self, other: DayCounts) -> DayCounts {
        DayCounts {
            sent: self.sent.saturating_add(other.sent),
            deferred: self.deferred.saturating_add(other.deferred),
            held: self.held.saturating_add(other.held),
            failed: self.failed.saturating_add(other.failed),
            recipients: self.recipients.saturating_add(other.recipients),
            hard_bounces: self.hard_bounces.saturating_add(other.hard_bounces),
        }
    }

    /// Every outcome of the day: the height of the day's stacked bar.
    pub fn outcomes(&self) -> u64 {
        self.sent
            .saturating_add(self.deferred)
            .saturating_add(self.held)
            .saturating_add(self.failed)
    }
}

/// One day of a span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayFigures {
    pub day: NaiveDate,
    pub counts: DayCounts,
}

/// A span of days, oldest first, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DaySpan {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

/// A number of days refused: outside 1..=MAX_DAYS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DaysOutOfRange(pub i64);

impl DaySpan {
    /// The last `days` days up to and including the UTC day of `now`.
    pub fn ending_at(now: DateTime<Utc>, days: i64) -> Result<DaySpan, DaysOutOfRange> {
        if !(1..=i64::from(MAX_DAYS)).contains(&days) {
            return Err(DaysOutOfRange(days));
        }
        let to = now.date_naive();
        // 1..=90 days back from a date chrono can hold stays within its range.
        let from = to
            .checked_sub_days(Days::new(u64::try_from(days - 1).unwrap_or(0)))
            .unwrap_or(NaiveDate::MIN);
        Ok(DaySpan { from, to })
    }

    /// The span's ends as the counter table stores days.
    pub fn day_numbers(&self) -> (i64, i64) {
        (day_number(self.from), day_number(self.to))
    }

    /// Every day of the span, oldest first, with the counts of `rows` (days the span does not
    /// cover are dropped, a day given twice is summed) and zeros for days without a row.
    pub fn fill(&self, rows: impl IntoIterator<Item = (NaiveDate, DayCounts)>) -> Vec<DayFigures> {
        let mut days: Vec<DayFigures> = self
            .from
            .iter_days()
            .take_while(|d| *d <= self.to)
            .map(|day| DayFigures {
                day,
                counts: DayCounts::default(),
            })
            .collect();
        for (day, counts) in rows {
            if day < self.from || day > self.to {
                continue;
            }
            let index = usize::try_from((day - self.from).num_days()).unwrap_or(usize::MAX);
            if let Some(slot) = days.get_mut(index) {
                slot.counts = slot.counts.plus(counts);
            }
        }
        days
    }
}

/// The sum over a span.
pub fn totals(days: &[DayFigures]) -> DayCounts {
    days.iter()
        .fold(DayCounts::default(), |sum, d| sum.plus(d.counts))
}

/// A date as days since 1970-01-01 (the counter table's `day`).
pub fn day_number(day: NaiveDate) -> i64 {
    (day - NaiveDate::default()).num_days()
}

/// The date of a day number; `None` beyond chrono's calendar.
pub fn date_of(day: i64) -> Option<NaiveDate> {
    let epoch = NaiveDate::default();
    if day >= 0 {
        epoch.checked_add_days(Days::new(day.unsigned_abs()))
    } else {
        epoch.checked_sub_days(Days::new(day.unsigned_abs()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn day_numbers_count_from_1970() {
        assert_eq!(day_number(date("1970-01-01")), 0);
        assert_eq!(day_number(date("2026-12-02")), 20_789);
        assert_eq!(date_of(20_789), Some(date("2026-12-02")));
        assert_eq!(date_of(-1), Some(date("1969-12-31")));
        assert_eq!(date_of(i64::MAX), None);
    }

    #[test]
    fn a_span_ends_today_in_utc_and_counts_today() {
        let span = DaySpan::ending_at(at("2026-12-02T23:59:59Z"), 30).unwrap();
        assert_eq!(span.from, date("2026-11-03"));
        assert_eq!(span.to, date("2026-12-02"));
        let one = DaySpan::ending_at(at("2026-12-02T00:00:00Z"), 1).unwrap();
        assert_eq!((one.from, one.to), (date("2026-12-02"), date("2026-12-02")));
        assert_eq!(one.day_numbers(), (20_789, 20_789));
    }

    #[test]
    fn spans_outside_one_to_ninety_days_are_refused() {
        let now = at("2026-12-02T12:00:00Z");
        assert_eq!(DaySpan::ending_at(now, 0), Err(DaysOutOfRange(0)));
        assert_eq!(DaySpan::ending_at(now, 91), Err(DaysOutOfRange(91)));
        assert_eq!(DaySpan::ending_at(now, -3), Err(DaysOutOfRange(-3)));
        assert!(DaySpan::ending_at(now, 90).is_ok());
    }

    #[test]
    fn every_day_is_present_and_rows_outside_the_span_are_dropped() {
        let span = DaySpan::ending_at(at("2026-12-02T08:00:00Z"), 5).unwrap();
        let sent = |n| DayCounts {
            sent: n,
            recipients: n,
            ..DayCounts::default()
        };
        let days = span.fill([
            (date("2026-11-28"), sent(3)),
            (date("2026-11-30"), sent(2)),
            (date("2026-11-30"), sent(5)),
            (date("2026-11-20"), sent(100)),
            (date("2026-12-03"), sent(100)),
        ]);
        let figures: Vec<(String, u64)> = days
            .iter()
            .map(|d| (d.day.to_string(), d.counts.sent))
            .collect();
        assert_eq!(
            figures,
            [
                ("2026-11-28".to_owned(), 3),
                ("2026-11-29".to_owned(), 0),
                ("2026-11-30".to_owned(), 7),
                ("2026-12-01".to_owned(), 0),
                ("2026-12-02".to_owned(), 0),
            ]
        );
        assert_eq!(totals(&days).sent, 10);
        assert_eq!(totals(&days).recipients, 10);
        assert_eq!(totals(&[]), DayCounts::default());
    }

    #[test]
    fn sums_saturate() {
        let big = DayCounts {
            sent: u64::MAX,
            failed: 1,
            ..DayCounts::default()
        };
        assert_eq!(big.plus(big).sent, u64::MAX);
        assert_eq!(big.outcomes(), u64::MAX);
    }
}
