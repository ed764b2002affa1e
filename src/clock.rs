//! The time the service schedules by. In production it is the system clock. Tests move it
//! forward (`advance`) to see a sending window open or a day's cap roll over without
//! sleeping through it; the clock keeps running from there, so leases and timeouts measured
//! by it behave as they would.
//!
//! Only scheduling reads it: when mail is due, quotas, windows, ramps, gaps and the day a
//! count belongs to. Timeouts of network calls and heartbeats between processes stay on the
//! system clock, which a test cannot move for another process.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};

#[derive(Clone, Default)]
pub struct Clock {
    /// Microseconds this clock runs ahead of the system clock (0 outside tests).
    ahead: Arc<AtomicI64>,
}

impl Clock {
    pub fn system() -> Self {
        Self::default()
    }

    pub fn now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(self.now_micros()).unwrap_or_else(Utc::now)
    }

    /// Microseconds since the Unix epoch, as the store keeps times.
    pub fn now_micros(&self) -> i64 {
        Utc::now()
            .timestamp_micros()
            .saturating_add(self.ahead.load(Ordering::Relaxed))
    }

    /// Moves this clock (and every copy of it) forward. Nothing in the service calls it.
    pub fn advance(&self, by: Duration) {
        let micros = i64::try_from(by.as_micros()).unwrap_or(i64::MAX);
        self.ahead.fetch_add(micros, Ordering::Relaxed);
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ahead.load(Ordering::Relaxed) {
            0 => f.write_str("Clock(system)"),
            ahead => write!(f, "Clock(system + {ahead} µs)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_advanced_clock_and_its_copies_run_ahead_by_the_same_amount() {
        let clock = Clock::system();
        let copy = clock.clone();
        let before = Utc::now();
        clock.advance(Duration::from_secs(3 * 3600));
        let ahead = copy.now() - before;
        assert!(ahead >= chrono::Duration::hours(3), "{ahead}");
        assert!(ahead < chrono::Duration::hours(3) + chrono::Duration::seconds(60));
        let system = Clock::system().now() - Utc::now();
        assert!(system < chrono::Duration::seconds(60), "{system}");
        assert!(format!("{clock:?}").contains("system +"));
    }
}
