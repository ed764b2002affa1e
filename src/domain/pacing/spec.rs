//! The pacing settings as written in JSON (API input, the stored settings and the channel
//! view): one shape everywhere, parsed into the rule types here.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::{MinGap, PacingError, SendingWindows, Warmup, Window};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowsSpec {
    pub time_zone: String,
    pub windows: Vec<WindowSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowSpec {
    pub days: Vec<String>,
    pub start: String,
    pub end: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WarmupSpec {
    pub start: u32,
    pub step: u32,
    pub target: u32,
    /// `YYYY-MM-DD`; absent on input means the day it is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_on: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MinGapSpec {
    pub min_seconds: u32,
    pub max_seconds: u32,
}

impl WindowsSpec {
    pub fn parse(&self, field: &str) -> Result<SendingWindows, PacingError> {
        let windows = self
            .windows
            .iter()
            .enumerate()
            .map(|(i, w)| {
                Window::parse(&w.days, &w.start, &w.end, &format!("{field}.windows[{i}]"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        SendingWindows::new(&self.time_zone, windows, field)
    }
}

impl From<&SendingWindows> for WindowsSpec {
    fn from(s: &SendingWindows) -> Self {
        Self {
            time_zone: s.time_zone.name().to_owned(),
            windows: s
                .windows
                .iter()
                .map(|w| WindowSpec {
                    days: w.day_codes().into_iter().map(str::to_owned).collect(),
                    start: w.start_text(),
                    end: w.end_text(),
                })
                .collect(),
        }
    }
}

impl WarmupSpec {
    /// `today` fills a missing `started_on`.
    pub fn parse(&self, field: &str, today: NaiveDate) -> Result<Warmup, PacingError> {
        let started_on = match &self.started_on {
            None => today,
            Some(text) => NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| {
                PacingError::new(
                    "invalid_limits",
                    format!("{field}.started_on"),
                    format!("`{text}` is not a date: use YYYY-MM-DD"),
                )
            })?,
        };
        Warmup::new(self.start, self.step, self.target, started_on, field)
    }
}

impl From<&Warmup> for WarmupSpec {
    fn from(w: &Warmup) -> Self {
        Self {
            start: w.start,
            step: w.step,
            target: w.target,
            started_on: Some(w.started_on.format("%Y-%m-%d").to_string()),
        }
    }
}

impl MinGapSpec {
    pub fn parse(&self, field: &str) -> Result<MinGap, PacingError> {
        MinGap::new(self.min_seconds, self.max_seconds, field)
    }
}

impl From<&MinGap> for MinGapSpec {
    fn from(g: &MinGap) -> Self {
        Self {
            min_seconds: g.min_seconds,
            max_seconds: g.max_seconds,
        }
    }
}
