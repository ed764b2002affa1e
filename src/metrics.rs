//! Prometheus metrics for `/metrics`, in the text exposition format. A few counters and one
//! histogram kept in memory per process, plus gauges read from the database at scrape time
//! (queue depth, channels by status), so every instance reports the shared queue. Labels are
//! bounded sets (channel kind, outcome, failure class, status): never a tenant, channel or
//! address.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the attempt latency histogram, in seconds.
const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// The counters of this process.
#[derive(Default)]
pub struct Metrics {
    /// status (`queued`, `held`) → messages accepted.
    accepted: Mutex<BTreeMap<&'static str, u64>>,
    /// (channel kind, outcome, class) → messages.
    outcomes: Mutex<BTreeMap<(&'static str, &'static str, &'static str), u64>>,
    /// (channel kind, result) → attempt latency.
    attempts: Mutex<BTreeMap<(&'static str, &'static str), Histogram>>,
    /// OAuth provider → refreshes refused because the provider refuses our client (a wrong
    /// or expired client secret): the operator's to fix.
    client_refused: Mutex<BTreeMap<&'static str, u64>>,
}

impl Metrics {
    pub fn accepted(&self, status: &'static str, n: u64) {
        *self
            .accepted
            .lock()
            .expect("metrics")
            .entry(status)
            .or_default() += n;
    }

    /// A message left a worker: `outcome` is sent, deferred, held or failed; `class` why.
    pub fn outcome(&self, channel_kind: &'static str, outcome: &'static str, class: &'static str) {
        *self
            .outcomes
            .lock()
            .expect("metrics")
            .entry((channel_kind, outcome, class))
            .or_default() += 1;
    }

    /// A provider refused our OAuth client (`google`, `microsoft`).
    pub fn oauth_client_refused(&self, provider: &'static str) {
        *self
            .client_refused
            .lock()
            .expect("metrics")
            .entry(provider)
            .or_default() += 1;
    }

    pub fn attempt(&self, channel_kind: &'static str, result: &'static str, took: Duration) {
        let seconds = took.as_secs_f64();
        let mut attempts = self.attempts.lock().expect("metrics");
        let h = attempts.entry((channel_kind, result)).or_default();
        for (bound, count) in BUCKETS.iter().zip(h.counts.iter_mut()) {
            if seconds <= *bound {
                *count += 1;
            }
        }
        h.count += 1;
        h.sum += seconds;
    }

    /// The exposition text, with the gauges the caller read from the database.
    pub fn render(
        &self,
        queue: &[(String, i64)],
        channels: &[(String, i64)],
        notifications: &[(String, i64)],
        processes: &[(String, i64)],
    ) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP switchboard_messages_accepted_total Messages accepted by the API of this process.\n# TYPE switchboard_messages_accepted_total counter"
        );
        for (status, n) in self.accepted.lock().expect("metrics").iter() {
            let _ = writeln!(
                out,
                "switchboard_messages_accepted_total{{status=\"{status}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP switchboard_messages_total Outcomes of delivery passes in this process, by channel kind, outcome and failure class.\n# TYPE switchboard_messages_total counter"
        );
        for ((kind, outcome, class), n) in self.outcomes.lock().expect("metrics").iter() {
            let _ = writeln!(
                out,
                "switchboard_messages_total{{channel_kind=\"{kind}\",outcome=\"{outcome}\",class=\"{class}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP switchboard_send_attempt_seconds Time of one send attempt through a channel.\n# TYPE switchboard_send_attempt_seconds histogram"
        );
        for ((kind, result), h) in self.attempts.lock().expect("metrics").iter() {
            let labels = format!("channel_kind=\"{kind}\",result=\"{result}\"");
            for (bound, count) in BUCKETS.iter().zip(h.counts.iter()) {
                let _ = writeln!(
                    out,
                    "switchboard_send_attempt_seconds_bucket{{{labels},le=\"{bound}\"}} {count}"
                );
            }
            let _ = writeln!(
                out,
                "switchboard_send_attempt_seconds_bucket{{{labels},le=\"+Inf\"}} {}\nswitchboard_send_attempt_seconds_sum{{{labels}}} {}\nswitchboard_send_attempt_seconds_count{{{labels}}} {}",
                h.count, h.sum, h.count
            );
        }
        let _ = writeln!(
            out,
            "# HELP switchboard_oauth_client_refused_total Token requests refused because the provider refuses Switchboard's OAuth client (a wrong or expired client secret); alert on any.\n# TYPE switchboard_oauth_client_refused_total counter"
        );
        for (provider, n) in self.client_refused.lock().expect("metrics").iter() {
            let _ = writeln!(
                out,
                "switchboard_oauth_client_refused_total{{provider=\"{provider}\"}} {n}"
            );
        }
        gauge(
            &mut out,
            "switchboard_queue_depth",
            "Messages in the shared outbox by status (all instances).",
            queue,
        );
        gauge(
            &mut out,
            "switchboard_channels",
            "Send channels by status (all tenants).",
            channels,
        );
        gauge(
            &mut out,
            "switchboard_notifications",
            "Webhook deliveries and owner emails in the notification queue by status (all instances).",
            notifications,
        );
        gauge(
            &mut out,
            "switchboard_processes",
            "Processes running delivery on this database, by heartbeat (all instances).",
            processes,
        );
        out
    }
}

/// Appends one day's figures of the daily counters by channel kind (all instances):
/// messages by outcome, and recipients accepted or hard-bounced. `kinds` are `(kind, sent,
/// deferred, held, failed, recipients, hard_bounces)`.
pub fn render_day_by_kind(out: &mut String, kinds: &[(String, [i64; 6])]) {
    let _ = writeln!(
        out,
        "# HELP switchboard_channel_day_messages Today's (UTC) messages by channel kind and outcome, from the daily counters of all instances; deferred counts deferrals.\n# TYPE switchboard_channel_day_messages gauge"
    );
    let label = |kind: &str| -> String {
        kind.chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    for (kind, figures) in kinds {
        let kind = label(kind);
        for (outcome, n) in ["sent", "deferred", "held", "failed"].iter().zip(figures) {
            let _ = writeln!(
                out,
                "switchboard_channel_day_messages{{channel_kind=\"{kind}\",outcome=\"{outcome}\"}} {n}"
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP switchboard_channel_day_recipients Today's (UTC) recipients by channel kind: accepted, or refused for good as unknown (hard bounces), from the daily counters of all instances.\n# TYPE switchboard_channel_day_recipients gauge"
    );
    for (kind, figures) in kinds {
        let kind = label(kind);
        for (result, n) in ["accepted", "hard_bounce"].iter().zip(&figures[4..]) {
            let _ = writeln!(
                out,
                "switchboard_channel_day_recipients{{channel_kind=\"{kind}\",result=\"{result}\"}} {n}"
            );
        }
    }
}

fn gauge(out: &mut String, name: &str, help: &str, values: &[(String, i64)]) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
    for (status, n) in values {
        // Statuses come from CHECK-constrained columns; keep the label safe regardless.
        let status: String = status
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let _ = writeln!(out, "{name}{{status=\"{status}\"}} {n}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_has_counters_histograms_and_gauges() {
        let m = Metrics::default();
        m.accepted("queued", 3);
        m.outcome("smtp", "sent", "ok");
        m.outcome("smtp", "deferred", "temporary");
        m.attempt("smtp", "ok", Duration::from_millis(20));
        m.attempt("smtp", "ok", Duration::from_secs(60));
        m.oauth_client_refused("microsoft");
        let text = m.render(
            &[("queued".into(), 4)],
            &[("active".into(), 2)],
            &[("pending".into(), 1)],
            &[("alive".into(), 2)],
        );
        for line in [
            "switchboard_messages_accepted_total{status=\"queued\"} 3",
            "switchboard_messages_total{channel_kind=\"smtp\",outcome=\"sent\",class=\"ok\"} 1",
            "switchboard_send_attempt_seconds_bucket{channel_kind=\"smtp\",result=\"ok\",le=\"0.025\"} 1",
            "switchboard_send_attempt_seconds_bucket{channel_kind=\"smtp\",result=\"ok\",le=\"30\"} 1",
            "switchboard_send_attempt_seconds_bucket{channel_kind=\"smtp\",result=\"ok\",le=\"+Inf\"} 2",
            "switchboard_send_attempt_seconds_count{channel_kind=\"smtp\",result=\"ok\"} 2",
            "switchboard_queue_depth{status=\"queued\"} 4",
            "switchboard_oauth_client_refused_total{provider=\"microsoft\"} 1",
            "switchboard_channels{status=\"active\"} 2",
            "switchboard_notifications{status=\"pending\"} 1",
            "switchboard_processes{status=\"alive\"} 2",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
    }

    #[test]
    fn the_day_by_kind_has_outcomes_and_recipients_per_kind() {
        let mut text = String::new();
        render_day_by_kind(
            &mut text,
            &[
                ("microsoft".into(), [5, 1, 0, 2, 9, 1]),
                ("smtp\"} 9\n".into(), [1, 0, 0, 0, 1, 0]),
            ],
        );
        for line in [
            "# TYPE switchboard_channel_day_messages gauge",
            "switchboard_channel_day_messages{channel_kind=\"microsoft\",outcome=\"sent\"} 5",
            "switchboard_channel_day_messages{channel_kind=\"microsoft\",outcome=\"deferred\"} 1",
            "switchboard_channel_day_messages{channel_kind=\"microsoft\",outcome=\"failed\"} 2",
            "switchboard_channel_day_recipients{channel_kind=\"microsoft\",result=\"accepted\"} 9",
            "switchboard_channel_day_recipients{channel_kind=\"microsoft\",result=\"hard_bounce\"} 1",
            // A kind is a label value from a CHECK-constrained column; kept safe regardless.
            "switchboard_channel_day_messages{channel_kind=\"smtp9\",outcome=\"sent\"} 1",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
        assert_eq!(
            text.lines()
                .filter(|l| l.starts_with("switchboard_"))
                .count(),
            12
        );
    }
}
