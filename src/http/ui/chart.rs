//! Charts of a channel's mail per day, drawn on the server as SVG: a stacked bar per day
//! (sent, deferred, held, failed) with a scale, day labels and a legend, and the same
//! numbers as a table for whoever does not see the picture; and a sparkline for lists.
//! Pure: figures in, markup out. No script, no inline styles (the pages' CSP forbids them):
//! colours come from classes in app.css, with presentation attributes as the fallback.

use maud::{Markup, html};

use crate::domain::daily_stats::{DayCounts, DayFigures, totals};

/// The series of a chart, bottom of the stack first: what a person looks for first (was
/// it sent?) sits on the baseline.
const SERIES: [Series; 4] = [
    Series {
        name: "Sent",
        class: "sent",
        fill: "#146c2e",
        of: |c| c.sent,
    },
    Series {
        name: "Deferred",
        class: "deferred",
        fill: "#b06000",
        of: |c| c.deferred,
    },
    Series {
        name: "Held",
        class: "held",
        fill: "#4b5563",
        of: |c| c.held,
    },
    Series {
        name: "Failed",
        class: "failed",
        fill: "#b3261e",
        of: |c| c.failed,
    },
];

struct Series {
    name: &'static str,
    class: &'static str,
    /// Used when the stylesheet is not (an SVG saved on its own); app.css sets the same.
    fill: &'static str,
    of: fn(&DayCounts) -> u64,
}

// The drawing's own coordinates; the SVG scales to its box (viewBox), so these are
// proportions, not pixels on screen.
const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 260.0;
const LEFT: f64 = 52.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 34.0;
const BOTTOM: f64 = 28.0;

/// The scale of a chart whose tallest bar is `max`: ticks from 0 at a 1, 2 or 5 × 10ⁿ step,
/// the last at or above `max`, at most six of them. A chart of nothing still has a scale
/// (0 and 1) so that empty reads as zero, not as broken.
pub fn nice_ticks(max: u64) -> Vec<u128> {
    let max = u128::from(max.max(1));
    // Aim at four intervals; the step rounds up to the next 1, 2, 5 × 10ⁿ.
    let raw = max.div_ceil(4);
    let mut magnitude: u128 = 1;
    while magnitude * 10 <= raw {
        magnitude *= 10;
    }
    let step = [1, 2, 5, 10]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10 * magnitude);
    let top = max.div_ceil(step) * step;
    (0..=top / step).map(|i| i * step).collect()
}

/// A number as people write it: 12,345.
pub fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A tick label short enough for the margin: 950, 1.5k, 20k, 3M, 7G.
fn compact(n: u128) -> String {
    const UNITS: [(u128, &str); 5] = [
        (1_000_000_000_000_000, "P"),
        (1_000_000_000_000, "T"),
        (1_000_000_000, "G"),
        (1_000_000, "M"),
        (1_000, "k"),
    ];
    for (size, unit) in UNITS {
        if n >= size {
            let tenths = n * 10 / size;
            return if tenths.is_multiple_of(10) || n >= size * 10 {
                format!("{}{unit}", n / size)
            } else {
                format!("{}.{}{unit}", tenths / 10, tenths % 10)
            };
        }
    }
    n.to_string()
}

fn px(v: f64) -> String {
    format!("{v:.1}")
}

/// One day's figures in a sentence, for the bar's tooltip and the description.
fn day_sentence(d: &DayFigures) -> String {
    let parts: Vec<String> = SERIES
        .iter()
        .map(|s| format!("{} {}", grouped((s.of)(&d.counts)), s.name.to_lowercase()))
        .collect();
    format!("{}: {}", d.day.format("%a %-d %b %Y"), parts.join(", "))
}

/// What the chart shows, in words: the totals and the busiest day.
fn description(days: &[DayFigures]) -> String {
    let sum = totals(days);
    let Some((first, last)) = days.first().zip(days.last()) else {
        return "No days to show.".into();
    };
    let mut text = format!(
        "Stacked bars, one per day from {} to {}. In all: {} sent, {} deferred, {} held, {} failed.",
        first.day.format("%-d %b %Y"),
        last.day.format("%-d %b %Y"),
        grouped(sum.sent),
        grouped(sum.deferred),
        grouped(sum.held),
        grouped(sum.failed),
    );
    match days.iter().max_by_key(|d| (d.counts.outcomes(), d.day)) {
        Some(busiest) if busiest.counts.outcomes() > 0 => {
            text.push_str(&format!(" Busiest day: {}.", day_sentence(busiest)));
        }
        _ => text.push_str(" No mail in these days."),
    }
    text
}

/// Which days get a label under their bar: all of a short span, else about one a week
/// counted back from the last day (today is always labelled).
fn labelled(index: usize, count: usize) -> bool {
    let every = if count <= 10 { 1 } else { 7 };
    (count - 1 - index).is_multiple_of(every)
}

/// The bars of one day, bottom up, as (series, y, height) on a plot whose baseline is at
/// `baseline` and whose scale reaches `top` at `plot_height` above it; a segment too thin to
/// see gets one unit so that a single failure among thousands sent still shows.
fn stack(
    counts: &DayCounts,
    top: f64,
    baseline: f64,
    plot_height: f64,
) -> Vec<(&'static Series, f64, f64)> {
    let mut base = baseline;
    let mut out = Vec::new();
    for series in &SERIES {
        let value = (series.of)(counts);
        if value == 0 {
            continue;
        }
        // Saturated sums and the one-unit minimum could overshoot: the plot's top is a wall.
        let room = base - (baseline - plot_height);
        let height = (value as f64 / top * plot_height).max(1.0).min(room);
        if height <= 0.0 {
            break;
        }
        base -= height;
        out.push((series, base, height));
    }
    out
}

/// The day chart: `id` makes its ids unique on the page, `title` names it.
pub fn daily_chart(id: &str, title: &str, days: &[DayFigures]) -> Markup {
    let max = days.iter().map(|d| d.counts.outcomes()).max().unwrap_or(0);
    let ticks = nice_ticks(max);
    let top = *ticks.last().unwrap_or(&1) as f64;
    let plot_width = WIDTH - LEFT - RIGHT;
    let plot_height = HEIGHT - TOP - BOTTOM;
    let slot = plot_width / days.len().max(1) as f64;
    let bar = (slot * 0.7).max(1.0);
    let title_id = format!("{id}-title");
    let desc_id = format!("{id}-desc");
    html! {
        figure.chart id=(id) {
            svg xmlns="http://www.w3.org/2000/svg" viewBox={"0 0 " (WIDTH) " " (HEIGHT)}
                role="img" aria-labelledby={(title_id) " " (desc_id)} {
                title id=(title_id) { (title) }
                desc id=(desc_id) { (description(days)) }
                g.legend aria-hidden="true" {
                    @for (i, series) in SERIES.iter().enumerate() {
                        @let x = LEFT + i as f64 * 125.0;
                        rect class={"swatch " (series.class)} fill=(series.fill) x=(px(x)) y="8" width="12" height="12" {}
                        text x=(px(x + 17.0)) y="18.5" { (series.name) }
                    }
                }
                g.axis aria-hidden="true" {
                    @for tick in &ticks {
                        @let y = TOP + plot_height - *tick as f64 / top * plot_height;
                        line.grid x1=(px(LEFT)) x2=(px(WIDTH - RIGHT)) y1=(px(y)) y2=(px(y)) stroke="#d5dae1" {}
                        text.tick x=(px(LEFT - 6.0)) y=(px(y + 4.0)) text-anchor="end" { (compact(*tick)) }
                    }
                    @for (i, day) in days.iter().enumerate() {
                        @if labelled(i, days.len()) {
                            // The last label ends at its bar's right edge instead of centring
                            // on it, so that it is not cut at the drawing's edge.
                            @let last = i + 1 == days.len() && days.len() > 1;
                            @let x = if last { LEFT + (i as f64 + 1.0) * slot } else { LEFT + (i as f64 + 0.5) * slot };
                            text.day x=(px(x)) y=(px(HEIGHT - 8.0)) text-anchor=(if last { "end" } else { "middle" }) {
                                (day.day.format("%-d %b"))
                            }
                        }
                    }
                }
                g.bars {
                    @for (i, day) in days.iter().enumerate() {
                        @let x = LEFT + i as f64 * slot + (slot - bar) / 2.0;
                        g.day data-day=(day.day) {
                            title { (day_sentence(day)) }
                            // An invisible full-height target, so the tooltip shows on a quiet day too.
                            rect.hit x=(px(LEFT + i as f64 * slot)) y=(px(TOP)) width=(px(slot)) height=(px(plot_height)) fill="transparent" {}
                            @for (series, y, height) in stack(&day.counts, top, TOP + plot_height, plot_height) {
                                rect class=(series.class) fill=(series.fill) x=(px(x)) y=(px(y)) width=(px(bar)) height=(px(height)) {}
                            }
                        }
                    }
                }
            }
            (figures_table(id, title, days))
        }
    }
}

/// The chart's numbers as a table, folded away under the chart.
fn figures_table(id: &str, title: &str, days: &[DayFigures]) -> Markup {
    let sum = totals(days);
    html! {
        details.chart-figures {
            summary { "The figures as a table" }
            div.table-wrap {
                table id={(id) "-table"} {
                    caption.visually-hidden { (title) }
                    thead {
                        tr {
                            th scope="col" { "Day" }
                            @for series in &SERIES { th.num scope="col" { (series.name) } }
                        }
                    }
                    tbody {
                        @for day in days.iter().rev() {
                            tr {
                                th scope="row" { time datetime=(day.day) { (day.day.format("%a %-d %b %Y")) } }
                                @for series in &SERIES { td.num { (grouped((series.of)(&day.counts))) } }
                            }
                        }
                    }
                    tfoot {
                        tr {
                            th scope="row" { "Total" }
                            @for series in &SERIES { td.num { (grouped((series.of)(&sum))) } }
                        }
                    }
                }
            }
        }
    }
}

/// A chart the size of a word for a list of channels: the bars without scale or labels,
/// described in words by its label (the list shows the numbers beside it).
pub fn sparkline(label: &str, days: &[DayFigures]) -> Markup {
    const W: f64 = 120.0;
    const H: f64 = 28.0;
    let max = days.iter().map(|d| d.counts.outcomes()).max().unwrap_or(0);
    let top = max.max(1) as f64;
    let slot = W / days.len().max(1) as f64;
    let sum = totals(days);
    let words = format!(
        "{label}: {} sent, {} deferred, {} held, {} failed over {} days",
        grouped(sum.sent),
        grouped(sum.deferred),
        grouped(sum.held),
        grouped(sum.failed),
        days.len()
    );
    html! {
        svg.sparkline xmlns="http://www.w3.org/2000/svg" viewBox={"0 0 " (W) " " (H)}
            role="img" aria-label=(words) {
            title { (words) }
            line.baseline x1="0" x2=(W) y1=(px(H - 0.5)) y2=(px(H - 0.5)) stroke="#d5dae1" {}
            @for (i, day) in days.iter().enumerate() {
                @for (series, y, height) in stack(&day.counts, top, H, H) {
                    rect class=(series.class) fill=(series.fill) x=(px(i as f64 * slot + slot * 0.1)) y=(px(y)) width=(px((slot * 0.8).max(0.5))) height=(px(height)) {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::daily_stats::DaySpan;

    fn span(days: i64) -> DaySpan {
        DaySpan::ending_at("2026-12-02T10:00:00Z".parse().unwrap(), days).unwrap()
    }

    fn counts(sent: u64, deferred: u64, held: u64, failed: u64) -> DayCounts {
        DayCounts {
            sent,
            deferred,
            held,
            failed,
            ..DayCounts::default()
        }
    }

    fn rects_of(svg: &str, class: &str) -> usize {
        svg.matches(&format!("<rect class=\"{class}\"")).count()
    }

    /// The `y` of the first bar segment of a series.
    fn y_of(svg: &str, class: &str) -> f64 {
        let at = svg.find(&format!("<rect class=\"{class}\"")).unwrap();
        let rest = &svg[at..];
        let y = rest.find(" y=\"").unwrap() + 4;
        rest[y..].split('"').next().unwrap().parse().unwrap()
    }

    #[test]
    fn ticks_are_nice_and_cover_the_tallest_bar() {
        assert_eq!(nice_ticks(0), [0, 1]);
        assert_eq!(nice_ticks(1), [0, 1]);
        assert_eq!(nice_ticks(3), [0, 1, 2, 3]);
        assert_eq!(nice_ticks(7), [0, 2, 4, 6, 8]);
        assert_eq!(nice_ticks(10), [0, 5, 10]);
        assert_eq!(nice_ticks(37), [0, 10, 20, 30, 40]);
        assert_eq!(nice_ticks(500), [0, 200, 400, 600]);
        assert_eq!(nice_ticks(2_000), [0, 500, 1_000, 1_500, 2_000]);
        for max in (0..5_000).chain([u64::MAX / 3, u64::MAX]) {
            let ticks = nice_ticks(max);
            let step = ticks[1];
            let top = *ticks.last().unwrap();
            assert!(top >= u128::from(max), "{max}: {ticks:?}");
            assert!((2..=6).contains(&ticks.len()), "{max}: {ticks:?}");
            assert!(ticks.windows(2).all(|w| w[1] - w[0] == step), "{ticks:?}");
            let mut mantissa = step;
            while mantissa.is_multiple_of(10) {
                mantissa /= 10;
            }
            assert!([1, 2, 5].contains(&mantissa), "{max}: step {step}");
        }
    }

    #[test]
    fn big_numbers_read_short_on_the_scale_and_whole_in_the_table() {
        assert_eq!(compact(950), "950");
        assert_eq!(compact(1_500), "1.5k");
        assert_eq!(compact(20_000), "20k");
        assert_eq!(compact(3_000_000), "3M");
        assert_eq!(compact(u128::from(u64::MAX)), "18446P");
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1_234_567), "1,234,567");
    }

    #[test]
    fn an_empty_span_is_a_chart_of_zeros_that_says_so() {
        let days = span(30).fill([]);
        let svg = daily_chart("c", "Mail per day", &days).into_string();
        assert!(svg.contains("role=\"img\""));
        assert!(svg.contains("No mail in these days."), "{svg}");
        for class in ["sent", "deferred", "held", "failed"] {
            assert_eq!(rects_of(&svg, class), 0, "{class}");
        }
        // The text equivalent has every day, with zeros.
        assert_eq!(svg.matches("<th scope=\"row\"><time").count(), 30);
        // No days at all still renders, without dividing by zero.
        let none = daily_chart("c", "Mail per day", &[]).into_string();
        assert!(none.contains("No days to show."), "{none}");
        assert!(!none.contains("NaN") && !none.contains("inf"), "{none}");
    }

    #[test]
    fn one_day_fills_the_height_and_stacks_its_outcomes() {
        let days = span(1).fill([(span(1).to, counts(6, 2, 1, 1))]);
        let svg = daily_chart("c", "Mail per day", &days).into_string();
        for class in ["sent", "deferred", "held", "failed"] {
            assert_eq!(rects_of(&svg, class), 1, "{class}: {svg}");
        }
        // 10 outcomes on a 0..10 scale: the stack, failed on top, reaches the top of the plot.
        assert!((y_of(&svg, "failed") - TOP).abs() < 0.05, "{svg}");
        assert!(y_of(&svg, "sent") > y_of(&svg, "deferred"));
        assert!(
            svg.contains("Wed 2 Dec 2026: 6 sent, 2 deferred, 1 held, 1 failed"),
            "{svg}"
        );
        assert!(svg.contains("Busiest day: Wed 2 Dec 2026"), "{svg}");
        assert!(svg.contains(">2 Dec</text>"), "today is labelled: {svg}");
    }

    #[test]
    fn thirty_days_have_thirty_bars_weekly_labels_and_a_total_row() {
        let s = span(30);
        let rows = s
            .from
            .iter_days()
            .take(30)
            .enumerate()
            .map(|(i, d)| (d, counts(i as u64 * 10, 1, 0, i as u64 % 2)));
        let days = s.fill(rows);
        let svg = daily_chart("ch", "Mail per day", &days).into_string();
        assert_eq!(svg.matches("<g class=\"day\"").count(), 30);
        assert_eq!(rects_of(&svg, "sent"), 29, "day one sent nothing");
        assert_eq!(svg.matches("<text class=\"day\"").count(), 5, "{svg}");
        // 290 + 1 + 1 on the busiest day: the scale goes to 300.
        assert!(svg.contains(">300</text>"), "{svg}");
        assert!(svg.contains("In all: 4,350 sent, 30 deferred, 0 held, 15 failed."));
        assert!(svg.contains("id=\"ch-table\""));
        assert!(svg.contains("aria-labelledby=\"ch-title ch-desc\""));
        // Newest day first in the table, totals last.
        let newest = svg.find("Wed 2 Dec 2026</time>").unwrap();
        let oldest = svg.find("Tue 3 Nov 2026</time>").unwrap();
        assert!(newest < oldest);
        assert!(svg.contains("<th scope=\"row\">Total</th><td class=\"num\">4,350</td>"));
    }

    #[test]
    fn huge_counts_stay_on_the_drawing() {
        let days = span(2).fill([(span(2).to, counts(u64::MAX, u64::MAX, 0, 7))]);
        let svg = daily_chart("c", "Mail per day", &days).into_string();
        assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
        assert!(svg.contains("18,446,744,073,709,551,615"), "{svg}");
        for (i, _) in svg.match_indices(" y=\"") {
            let value: f64 = svg[i + 4..].split('"').next().unwrap().parse().unwrap();
            assert!((0.0..=HEIGHT).contains(&value), "{value}");
        }
    }

    #[test]
    fn a_sparkline_says_what_it_shows() {
        let s = span(30);
        let days = s.fill([(s.to, counts(12, 0, 0, 3))]);
        let svg = sparkline("Ann's mailbox", &days).into_string();
        assert!(svg.contains(
            "aria-label=\"Ann's mailbox: 12 sent, 0 deferred, 0 held, 3 failed over 30 days\""
        ));
        assert_eq!(rects_of(&svg, "sent"), 1);
        assert_eq!(rects_of(&svg, "failed"), 1);
    }
}
