//! The outbox's configuration (`SWITCHBOARD_DELIVERY_*`, `SWITCHBOARD_RETRY_*`, …), parsed
//! with the rest of the configuration at start.

use std::time::Duration;

use super::retry::RetryPolicy;
use crate::domain::health::FailureRule;

#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// `SWITCHBOARD_DELIVERY`: `on` (default) runs the workers in this process; `off` makes an
    /// instance that only accepts mail (others on the same PostgreSQL send it).
    pub enabled: bool,
    /// `SWITCHBOARD_DELIVERY_CONCURRENCY`: messages in flight at once in this process.
    pub concurrency: usize,
    /// `SWITCHBOARD_DELIVERY_BATCH`: messages claimed per database round trip.
    pub batch: usize,
    /// `SWITCHBOARD_POLL_INTERVAL`: how often an idle worker looks for mail that another
    /// process accepted or that became due.
    pub poll_interval: Duration,
    /// `SWITCHBOARD_LEASE`: how long a claimed message belongs to its worker; after that, a
    /// worker that died has its messages taken over. Must exceed the longest send.
    pub lease: Duration,
    /// `SWITCHBOARD_HEARTBEAT_INTERVAL`: how often this process renews its heartbeat row and
    /// looks for processes that died.
    pub heartbeat_interval: Duration,
    /// `SWITCHBOARD_HEARTBEAT_TIMEOUT`: a process silent for longer is dead, and its leased
    /// messages are taken over at once (not when their lease expires).
    pub heartbeat_timeout: Duration,
    pub retry: RetryPolicy,
    /// `SWITCHBOARD_MAX_MESSAGE_BYTES`: the largest message accepted (413 above it).
    pub max_message_bytes: usize,
    /// `SWITCHBOARD_BODY_RETENTION`: how long the body of a sent or failed message is kept;
    /// its envelope, route and event log stay.
    pub body_retention: Duration,
    /// `SWITCHBOARD_HEALTH_FAILURES` in a row within `SWITCHBOARD_HEALTH_WINDOW` make a
    /// channel `failing`.
    pub failure_rule: FailureRule,
    /// `SWITCHBOARD_HEALTH_PROBE_INTERVAL`: how often a `failing` channel is tried again.
    pub probe_interval: Duration,
    /// `SWITCHBOARD_HEALTH_CHECK_IDLE`: a channel neither used nor verified for this long is
    /// checked (login only), so a dead credential is found before mail needs it; `off`
    /// turns the checks off.
    pub check_idle_after: Option<Duration>,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self {
            enabled: true,
            concurrency: 64,
            batch: 256,
            poll_interval: Duration::from_secs(1),
            lease: Duration::from_secs(600),
            heartbeat_interval: Duration::from_secs(5),
            heartbeat_timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            max_message_bytes: 10 * 1024 * 1024,
            body_retention: Duration::from_secs(30 * 24 * 3600),
            failure_rule: FailureRule::default(),
            probe_interval: Duration::from_secs(60),
            check_idle_after: Some(Duration::from_secs(24 * 3600)),
        }
    }
}

/// `SWITCHBOARD_…` name and why its value was refused.
pub type SettingError = (&'static str, String);

impl DeliverySettings {
    pub fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<Self, SettingError> {
        let d = Self::default();
        let enabled = match get("SWITCHBOARD_DELIVERY").as_deref().map(str::trim) {
            None | Some("on") => true,
            Some("off") => false,
            Some(other) => {
                return Err((
                    "SWITCHBOARD_DELIVERY",
                    format!("`{other}` is not on or off"),
                ));
            }
        };
        let duration = |name, default| duration_var(get, name, default);
        let count = |name: &'static str, default: usize| match get(name) {
            None => Ok(default),
            Some(raw) => raw
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| (name, format!("`{raw}` is not a positive whole number"))),
        };
        let settings = Self {
            enabled,
            concurrency: count("SWITCHBOARD_DELIVERY_CONCURRENCY", d.concurrency)?,
            batch: count("SWITCHBOARD_DELIVERY_BATCH", d.batch)?,
            poll_interval: duration("SWITCHBOARD_POLL_INTERVAL", d.poll_interval)?,
            lease: duration("SWITCHBOARD_LEASE", d.lease)?,
            heartbeat_interval: duration("SWITCHBOARD_HEARTBEAT_INTERVAL", d.heartbeat_interval)?,
            heartbeat_timeout: duration("SWITCHBOARD_HEARTBEAT_TIMEOUT", d.heartbeat_timeout)?,
            retry: RetryPolicy {
                base: duration("SWITCHBOARD_RETRY_BASE", d.retry.base)?,
                max: duration("SWITCHBOARD_RETRY_MAX", d.retry.max)?,
                max_age: duration("SWITCHBOARD_MESSAGE_MAX_AGE", d.retry.max_age)?,
            },
            max_message_bytes: count("SWITCHBOARD_MAX_MESSAGE_BYTES", d.max_message_bytes)?,
            body_retention: duration("SWITCHBOARD_BODY_RETENTION", d.body_retention)?,
            failure_rule: FailureRule {
                threshold: u32::try_from(count(
                    "SWITCHBOARD_HEALTH_FAILURES",
                    d.failure_rule.threshold as usize,
                )?)
                .unwrap_or(u32::MAX),
                window: duration("SWITCHBOARD_HEALTH_WINDOW", d.failure_rule.window)?,
            },
            probe_interval: duration("SWITCHBOARD_HEALTH_PROBE_INTERVAL", d.probe_interval)?,
            check_idle_after: match get("SWITCHBOARD_HEALTH_CHECK_IDLE")
                .as_deref()
                .map(str::trim)
            {
                Some("off") => None,
                _ => Some(duration(
                    "SWITCHBOARD_HEALTH_CHECK_IDLE",
                    d.check_idle_after.unwrap_or_default(),
                )?),
            },
        };
        if settings
            .check_idle_after
            .is_some_and(|idle| idle < Duration::from_secs(1))
        {
            return Err((
                "SWITCHBOARD_HEALTH_CHECK_IDLE",
                "must be at least 1s (or off): every idle channel would log in on every pass"
                    .into(),
            ));
        }
        if settings.probe_interval < Duration::from_millis(100) {
            return Err((
                "SWITCHBOARD_HEALTH_PROBE_INTERVAL",
                "must be at least 100ms: a failing server would be asked without pause".into(),
            ));
        }
        if settings.poll_interval < Duration::from_millis(10) {
            return Err((
                "SWITCHBOARD_POLL_INTERVAL",
                "must be at least 10ms: idle workers would query the database without pause".into(),
            ));
        }
        if settings.lease < Duration::from_secs(2) {
            return Err((
                "SWITCHBOARD_LEASE",
                "must be at least 2s: a lease shorter than a send would let two workers send the same message".into(),
            ));
        }
        if settings.heartbeat_interval < Duration::from_millis(100) {
            return Err((
                "SWITCHBOARD_HEARTBEAT_INTERVAL",
                "must be at least 100ms: every process would write its heartbeat without pause"
                    .into(),
            ));
        }
        if settings.heartbeat_timeout < settings.heartbeat_interval * HEARTBEATS_MISSED {
            return Err((
                "SWITCHBOARD_HEARTBEAT_TIMEOUT",
                format!(
                    "must be at least {HEARTBEATS_MISSED} times SWITCHBOARD_HEARTBEAT_INTERVAL ({:?}): a live process that misses one beat (a slow database, a busy machine) would be taken for dead and its messages sent twice",
                    settings.heartbeat_interval * HEARTBEATS_MISSED
                ),
            ));
        }
        Ok(settings)
    }
}

/// Beats a live process may miss in a row before it counts as dead.
const HEARTBEATS_MISSED: u32 = 3;

/// The duration in the variable `name`, or `default` when it is not set.
pub fn duration_var(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: Duration,
) -> Result<Duration, SettingError> {
    match get(name) {
        None => Ok(default),
        Some(raw) => parse_duration(&raw).ok_or_else(|| {
            (
                name,
                format!("`{raw}` is not a duration such as 500ms, 30s, 10m, 1h or 5d"),
            )
        }),
    }
}

/// `500ms`, `30s`, `10m`, `1h`, `5d`; a bare number is seconds.
pub fn parse_duration(raw: &str) -> Option<Duration> {
    let raw = raw.trim();
    let split = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let (number, unit) = raw.split_at(split);
    let n: u64 = number.parse().ok()?;
    let millis = match unit.trim() {
        "ms" => n,
        "" | "s" => n.checked_mul(1000)?,
        "m" => n.checked_mul(60_000)?,
        "h" => n.checked_mul(3_600_000)?,
        "d" => n.checked_mul(86_400_000)?,
        _ => return None,
    };
    Some(Duration::from_millis(millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("30"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration(" 10m "), Some(Duration::from_secs(600)));
        assert_eq!(parse_duration("5d"), Some(Duration::from_secs(432_000)));
        for bad in [
            "",
            "ms",
            "1.5s",
            "-1s",
            "10 parsecs",
            "99999999999999999999d",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn settings_default_and_refuse_nonsense() {
        let none = |_: &str| None;
        let d = DeliverySettings::from_lookup(&none).unwrap();
        assert!(d.enabled);
        assert_eq!(d.max_message_bytes, 10 * 1024 * 1024);
        let short_lease = |n: &str| (n == "SWITCHBOARD_LEASE").then(|| "1s".to_owned());
        assert_eq!(
            DeliverySettings::from_lookup(&short_lease).unwrap_err().0,
            "SWITCHBOARD_LEASE"
        );
        let off = |n: &str| (n == "SWITCHBOARD_DELIVERY").then(|| "maybe".to_owned());
        assert!(DeliverySettings::from_lookup(&off).is_err());
    }

    fn heartbeat(interval: &str, timeout: &str) -> Result<DeliverySettings, SettingError> {
        let (interval, timeout) = (interval.to_owned(), timeout.to_owned());
        DeliverySettings::from_lookup(&move |n: &str| match n {
            "SWITCHBOARD_HEARTBEAT_INTERVAL" if !interval.is_empty() => Some(interval.clone()),
            "SWITCHBOARD_HEARTBEAT_TIMEOUT" if !timeout.is_empty() => Some(timeout.clone()),
            _ => None,
        })
    }

    #[test]
    fn the_heartbeat_timeout_leaves_room_for_missed_beats() {
        let d = heartbeat("", "").unwrap();
        assert_eq!(d.heartbeat_interval, Duration::from_secs(5));
        assert_eq!(d.heartbeat_timeout, Duration::from_secs(30));
        let ok = heartbeat("1s", "3s").unwrap();
        assert_eq!(ok.heartbeat_timeout, Duration::from_secs(3));
        let (name, why) = heartbeat("1s", "2999ms").unwrap_err();
        assert_eq!(name, "SWITCHBOARD_HEARTBEAT_TIMEOUT");
        assert!(why.contains("3s"), "{why}");
        // The default timeout against a longer interval.
        assert_eq!(
            heartbeat("11s", "").unwrap_err().0,
            "SWITCHBOARD_HEARTBEAT_TIMEOUT"
        );
        assert_eq!(
            heartbeat("50ms", "1s").unwrap_err().0,
            "SWITCHBOARD_HEARTBEAT_INTERVAL"
        );
        assert_eq!(
            heartbeat("", "soon").unwrap_err().0,
            "SWITCHBOARD_HEARTBEAT_TIMEOUT"
        );
    }
}
