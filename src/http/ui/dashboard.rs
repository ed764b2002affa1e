//! The pieces of a channel's dashboard that the channel page and the overview share: today's
//! figures, and the pacing (today's count against the day's cap, the warm-up ramp, the next
//! window opening) and bounce (rate against the pause threshold) sections, shown when the
//! channel has them. Pure: figures in, markup out.

use chrono::{DateTime, NaiveDate, Utc};
use maud::{Markup, html};

use super::chart::grouped;
use super::layout;
use crate::domain::daily_stats::{DayCounts, DayFigures};
use crate::store::pacing::PacingStatus;

/// A channel's sending over the dashboard's span, with the sections that apply to it.
#[derive(Debug, Clone)]
pub struct ChannelDashboard {
    /// Every day of the span, oldest first; the last is today (UTC).
    pub days: Vec<DayFigures>,
    /// Today's count against the day's cap, the ramp, the window: for a channel with pacing.
    pub pacing: Option<PacingSection>,
    /// The hard-bounce rate against the pause threshold: where the pause rule applies.
    pub bounces: Option<BouncesSection>,
}

impl ChannelDashboard {
    pub fn new(days: Vec<DayFigures>) -> Self {
        ChannelDashboard {
            days,
            pacing: None,
            bounces: None,
        }
    }

    /// Today's figures (UTC): the last day of the span.
    pub fn today(&self) -> DayCounts {
        self.days.last().map(|d| d.counts).unwrap_or_default()
    }
}

/// Today's count against the day's cap and what sets it.
#[derive(Debug, Clone, PartialEq)]
pub struct PacingSection {
    /// Messages counted against the day's cap (a rolling 24 hours).
    pub today: u64,
    /// The day's cap, when there is one.
    pub cap: Option<u64>,
    /// What sets the cap, in words: "daily cap", "warm-up ramp", "provider limit".
    pub cap_source: Option<String>,
    /// The warm-up ramp, while the channel is warming up.
    pub ramp: Option<RampLine>,
    /// Whether a sending window is open now (`None`: the channel has no windows).
    pub window_open: Option<bool>,
    /// When the next sending window opens.
    pub next_window_opening: Option<DateTime<Utc>>,
}

impl From<&PacingStatus> for PacingSection {
    fn from(p: &PacingStatus) -> Self {
        PacingSection {
            today: u64::try_from(p.today_count).unwrap_or(0),
            cap: p.day_cap.map(u64::from),
            cap_source: p.day_cap_set_by.as_deref().map(|by| {
                match by {
                    "warmup" => "warm-up ramp",
                    "tenant_default" => "tenant default",
                    _ => "daily cap",
                }
                .to_owned()
            }),
            ramp: p.ramp.as_ref().and_then(|r| {
                Some(RampLine {
                    day: r.day,
                    target: u64::from(r.target),
                    ends_on: NaiveDate::parse_from_str(&r.ends_on, "%Y-%m-%d").ok()?,
                })
            }),
            window_open: p.windows.is_some().then_some(p.window_open),
            next_window_opening: p.next_window_opening,
        }
    }
}

impl From<&crate::http::channels::stats::BouncesView> for BouncesSection {
    fn from(b: &crate::http::channels::stats::BouncesView) -> Self {
        BouncesSection {
            hard_bounces: b.hard_bounces,
            sends: b.sends,
            threshold_percent: b.threshold_percent,
            min_sends: u64::from(b.min_sends),
            window_days: b.window_days,
        }
    }
}

impl ChannelDashboard {
    /// The dashboard with the channel's pacing and bounce figures.
    pub fn with(mut self, figures: Option<&crate::http::channels::ChannelFigures>) -> Self {
        if let Some(f) = figures {
            self.pacing = f.pacing.as_ref().map(Into::into);
            self.bounces = f.bounces.as_ref().map(Into::into);
        }
        self
    }
}

/// Where a warming-up channel is on its ramp.
#[derive(Debug, Clone, PartialEq)]
pub struct RampLine {
    /// Day n of the ramp (the first day is 1).
    pub day: u32,
    /// The day's cap the ramp reaches at its end.
    pub target: u64,
    /// The day the ramp reaches its target.
    pub ends_on: NaiveDate,
}

/// Hard bounces against the threshold that pauses the channel.
#[derive(Debug, Clone, PartialEq)]
pub struct BouncesSection {
    /// Recipients refused for good as unknown, over the rule's window.
    pub hard_bounces: u64,
    /// Recipients mailed over the same window.
    pub sends: u64,
    /// The rate above which the channel pauses, in percent.
    pub threshold_percent: f64,
    /// The sample below which the rate is not judged.
    pub min_sends: u64,
    /// The rolling window the rate is taken over, in days.
    pub window_days: u32,
}

impl BouncesSection {
    /// The rate in percent, when there is mail to judge by.
    pub fn rate_percent(&self) -> Option<f64> {
        (self.sends > 0).then(|| self.hard_bounces as f64 * 100.0 / self.sends as f64)
    }
}

/// "12 sent · 0 deferred · 1 held · 0 failed".
pub fn counts_line(c: &DayCounts) -> Markup {
    html! {
        span.figure { strong { (grouped(c.sent)) } " sent" } " · "
        span.figure { strong { (grouped(c.deferred)) } " deferred" } " · "
        span.figure { strong { (grouped(c.held)) } " held" } " · "
        span.figure { strong { (grouped(c.failed)) } " failed" }
    }
}

fn percent(v: f64) -> String {
    if v >= 10.0 || v == v.trunc() {
        format!("{v:.0} %")
    } else {
        format!("{v:.1} %")
    }
}

/// Today's count against the cap, in words and as a meter.
pub fn pacing_summary(p: &PacingSection) -> Markup {
    html! {
        @match p.cap {
            Some(cap) => {
                span.figure { strong { (grouped(p.today)) } " of " (grouped(cap)) " today" }
                @if let Some(source) = &p.cap_source { span.muted { " (" (source) ")" } }
                " "
                meter min="0" max=(cap.max(1)) low=(cap * 8 / 10) high=(cap * 95 / 100) optimum="0" value=(p.today.min(cap)) {
                    (grouped(p.today)) " of " (grouped(cap))
                }
            }
            None => { span.figure { strong { (grouped(p.today)) } " today" } span.muted { " (no daily cap)" } }
        }
    }
}

/// The pacing section of a channel page.
pub fn pacing_section(p: &PacingSection) -> Markup {
    html! {
        section.panel.pacing aria-labelledby="pacing-heading" {
            h3 id="pacing-heading" { "Today against the cap" }
            p { (pacing_summary(p)) }
            @if let Some(ramp) = &p.ramp {
                p {
                    "Warming up: day " (ramp.day) " of the ramp, rising to "
                    (grouped(ramp.target)) " a day by " (ramp.ends_on.format("%-d %b %Y")) "."
                }
            }
            @match (p.window_open, p.next_window_opening) {
                (Some(true), _) => p { "The sending window is open now." },
                (Some(false), Some(at)) => p { "Outside the sending window; it opens " (layout::when(Some(at))) "." },
                (Some(false), None) => p { "Outside the sending window." },
                (None, _) => {}
            }
        }
    }
}

/// The bounce rate against the threshold, in words.
pub fn bounce_summary(b: &BouncesSection) -> Markup {
    let judged = b.sends >= b.min_sends;
    html! {
        @match b.rate_percent() {
            Some(rate) => {
                span.figure { strong { (percent(rate)) } " hard bounces" }
                span.muted { " (" (grouped(b.hard_bounces)) " of " (grouped(b.sends)) ")" }
                @if judged && rate >= b.threshold_percent {
                    " " span.badge.bad { "at or above " (percent(b.threshold_percent)) }
                }
            }
            None => { span.muted { "No mail to judge by yet" } }
        }
    }
}

/// The bounce section of a channel page.
pub fn bounce_section(b: &BouncesSection) -> Markup {
    html! {
        section.panel.bounces aria-labelledby="bounces-heading" {
            h3 id="bounces-heading" { "Bounces" }
            p { (bounce_summary(b)) }
            p.muted {
                "The channel pauses when " (percent(b.threshold_percent))
                " or more of its recipients over the last " (b.window_days)
                " days bounce for good, once it has mailed at least "
                (grouped(b.min_sends)) "."
                @if b.sends < b.min_sends {
                    " So far " (grouped(b.sends)) ": too few to judge."
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pacing() -> PacingSection {
        PacingSection {
            today: 12,
            cap: Some(40),
            cap_source: Some("warm-up ramp".into()),
            ramp: Some(RampLine {
                day: 3,
                target: 200,
                ends_on: "2026-12-20".parse().unwrap(),
            }),
            window_open: Some(false),
            next_window_opening: Some("2026-12-07T08:00:00Z".parse().unwrap()),
        }
    }

    #[test]
    fn pacing_reads_as_today_against_the_cap_the_ramp_and_the_window() {
        let html = pacing_section(&pacing()).into_string();
        assert!(html.contains("<strong>12</strong> of 40 today"), "{html}");
        assert!(html.contains("(warm-up ramp)"), "{html}");
        assert!(html.contains("max=\"40\""), "{html}");
        assert!(
            html.contains("day 3 of the ramp, rising to 200 a day by 20 Dec 2026"),
            "{html}"
        );
        assert!(html.contains("2026-12-07 08:00 UTC"), "{html}");
        let uncapped = PacingSection {
            cap: None,
            cap_source: None,
            ramp: None,
            window_open: None,
            ..pacing()
        };
        let html = pacing_section(&uncapped).into_string();
        assert!(
            html.contains("(no daily cap)") && !html.contains("<meter"),
            "{html}"
        );
        assert!(!html.contains("window"), "{html}");
    }

    #[test]
    fn bounces_read_as_a_rate_against_the_threshold() {
        let b = BouncesSection {
            hard_bounces: 3,
            sends: 60,
            threshold_percent: 3.0,
            min_sends: 50,
            window_days: 7,
        };
        let html = bounce_section(&b).into_string();
        assert!(html.contains("<strong>5 %</strong> hard bounces"), "{html}");
        assert!(html.contains("(3 of 60)"), "{html}");
        assert!(html.contains("above 3 %"), "{html}");
        let few = BouncesSection { sends: 20, ..b };
        let html = bounce_section(&few).into_string();
        assert!(!html.contains("above"), "too few to judge: {html}");
        assert!(html.contains("So far 20: too few to judge."), "{html}");
        let none = BouncesSection {
            hard_bounces: 0,
            sends: 0,
            ..b
        };
        assert!(
            bounce_summary(&none)
                .into_string()
                .contains("No mail to judge by yet")
        );
        assert_eq!(percent(1.24), "1.2 %");
    }

    #[test]
    fn today_is_the_last_day_of_the_span() {
        let day = |d: &str, sent| DayFigures {
            day: d.parse().unwrap(),
            counts: DayCounts {
                sent,
                ..DayCounts::default()
            },
        };
        let dash = ChannelDashboard::new(vec![day("2026-12-01", 9), day("2026-12-02", 4)]);
        assert_eq!(dash.today().sent, 4);
        assert_eq!(ChannelDashboard::new(vec![]).today(), DayCounts::default());
        let line = counts_line(&dash.today()).into_string();
        assert!(line.contains("<strong>4</strong> sent"), "{line}");
    }
}
