//! The notifier's configuration (`SWITCHBOARD_NOTIFY_*`, `SWITCHBOARD_NOTIFICATION_FROM`,
//! `SWITCHBOARD_WEBHOOK_TIMEOUT`), parsed with the rest at start.

use std::time::Duration;

use crate::domain::EmailAddress;
use crate::outbox::settings::{SettingError, duration_var};

#[derive(Debug, Clone)]
pub struct NotifySettings {
    /// `SWITCHBOARD_NOTIFY_POLL_INTERVAL`: how often the queue is looked at.
    pub poll_interval: Duration,
    /// `SWITCHBOARD_NOTIFY_RETRY_BASE`: the wait after the first failed attempt; it doubles
    /// with each attempt up to `SWITCHBOARD_NOTIFY_RETRY_MAX`.
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// `SWITCHBOARD_NOTIFY_MAX_ATTEMPTS`: attempts before a notification is given up.
    pub max_attempts: u32,
    /// `SWITCHBOARD_WEBHOOK_TIMEOUT`: how long a receiver may take to answer.
    pub webhook_timeout: Duration,
    /// `SWITCHBOARD_NOTIFICATION_FROM`: the From of notification emails (sent through the
    /// shared pool); none means owners are not emailed, webhooks still are.
    pub from: Option<EmailAddress>,
}

impl Default for NotifySettings {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(1),
            retry_base: Duration::from_secs(30),
            retry_max: Duration::from_secs(3600),
            max_attempts: 12,
            webhook_timeout: Duration::from_secs(10),
            from: None,
        }
    }
}

impl NotifySettings {
    pub fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<Self, SettingError> {
        let d = Self::default();
        // Zero would spin (poll, retries) or give up at once (timeout).
        let duration = |name: &'static str, default| {
            duration_var(get, name, default).and_then(|d| {
                if d.is_zero() {
                    Err((name, "must be more than zero".to_owned()))
                } else {
                    Ok(d)
                }
            })
        };
        let max_attempts = match get("SWITCHBOARD_NOTIFY_MAX_ATTEMPTS") {
            None => d.max_attempts,
            Some(raw) => raw
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=100).contains(n))
                .ok_or((
                    "SWITCHBOARD_NOTIFY_MAX_ATTEMPTS",
                    format!("`{raw}` is not a whole number from 1 to 100"),
                ))?,
        };
        let from = get("SWITCHBOARD_NOTIFICATION_FROM")
            .map(|raw| {
                EmailAddress::parse(raw.trim()).map_err(|e| {
                    (
                        "SWITCHBOARD_NOTIFICATION_FROM",
                        format!("not an email address: {}", e.reason),
                    )
                })
            })
            .transpose()?;
        let settings = Self {
            poll_interval: duration("SWITCHBOARD_NOTIFY_POLL_INTERVAL", d.poll_interval)?,
            retry_base: duration("SWITCHBOARD_NOTIFY_RETRY_BASE", d.retry_base)?,
            retry_max: duration("SWITCHBOARD_NOTIFY_RETRY_MAX", d.retry_max)?,
            max_attempts,
            webhook_timeout: duration("SWITCHBOARD_WEBHOOK_TIMEOUT", d.webhook_timeout)?,
            from,
        };
        if settings.webhook_timeout > Duration::from_secs(60) {
            return Err((
                "SWITCHBOARD_WEBHOOK_TIMEOUT",
                "must be at most 60s: a delivery must finish within its two-minute lease".into(),
            ));
        }
        if settings.poll_interval < Duration::from_millis(10) {
            return Err((
                "SWITCHBOARD_NOTIFY_POLL_INTERVAL",
                "must be at least 10ms".into(),
            ));
        }
        Ok(settings)
    }

    /// The wait before attempt `attempts + 1`, without jitter.
    pub fn backoff(&self, attempts: u32) -> Duration {
        let doubled = self
            .retry_base
            .saturating_mul(2u32.saturating_pow(attempts.saturating_sub(1).min(20)));
        doubled.min(self.retry_max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        let s = NotifySettings::default();
        assert_eq!(s.backoff(1), Duration::from_secs(30));
        assert_eq!(s.backoff(2), Duration::from_secs(60));
        assert_eq!(s.backoff(4), Duration::from_secs(240));
        assert_eq!(s.backoff(50), Duration::from_secs(3600));
    }

    #[test]
    fn nonsense_is_refused_with_the_variable_named() {
        let bad = |n: &str| (n == "SWITCHBOARD_NOTIFICATION_FROM").then(|| "nobody".to_owned());
        assert_eq!(
            NotifySettings::from_lookup(&bad).unwrap_err().0,
            "SWITCHBOARD_NOTIFICATION_FROM"
        );
        let zero = |n: &str| (n == "SWITCHBOARD_NOTIFY_MAX_ATTEMPTS").then(|| "0".to_owned());
        assert!(NotifySettings::from_lookup(&zero).is_err());
    }
}
