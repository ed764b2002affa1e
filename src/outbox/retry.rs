//! When to try a deferred message again: exponential backoff with jitter, never sooner than
//! the server asked ("try again in 60 seconds"), and never past the message's maximum age.

use std::time::Duration;

use rand::Rng;

/// The retry schedule (configurable: `SWITCHBOARD_RETRY_BASE`, `SWITCHBOARD_RETRY_MAX`,
/// `SWITCHBOARD_MESSAGE_MAX_AGE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delay after the first failed attempt.
    pub base: Duration,
    /// Longest delay between two attempts.
    pub max: Duration,
    /// After this long since acceptance a still-failing message fails for good (Postfix's
    /// default queue lifetime is 5 days).
    pub max_age: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(30),
            max: Duration::from_secs(3600),
            max_age: Duration::from_secs(5 * 24 * 3600),
        }
    }
}

impl RetryPolicy {
    /// The delay after `attempts` attempts (1 after the first), with jitter between 50 % and
    /// 100 % of the exponential step so that messages deferred together do not return
    /// together; at least `hint` when the server named a time.
    pub fn delay(&self, attempts: u32, hint: Option<Duration>, rng: &mut impl Rng) -> Duration {
        let exponent = attempts.saturating_sub(1).min(20);
        let step = self.base.saturating_mul(1u32 << exponent).min(self.max);
        let jittered = step.mul_f64(rng.random_range(0.5..=1.0));
        match hint {
            Some(h) => jittered.max(h.min(self.max)),
            None => jittered,
        }
    }
}

/// The delay a server asked for in its reply, if it named one: "try again in 30 seconds",
/// "retry in 5 minutes", "please wait 2 min".
pub fn retry_hint(reply: &str) -> Option<Duration> {
    let lower = reply.to_ascii_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| c.is_whitespace() || c == ',' || c == '.' || c == ';')
        .filter(|w| !w.is_empty())
        .collect();
    let asks_to_wait = ["again", "retry", "wait", "after", "later"]
        .iter()
        .any(|w| lower.contains(w));
    if !asks_to_wait {
        return None;
    }
    words.windows(2).find_map(|pair| {
        let n: u64 = pair[0].parse().ok()?;
        let unit = pair[1];
        let seconds = if unit.starts_with("sec") || unit == "s" {
            n
        } else if unit.starts_with("min") {
            n * 60
        } else if unit.starts_with("hour") || unit == "h" {
            n * 3600
        } else {
            return None;
        };
        Some(Duration::from_secs(seconds))
    })
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    #[test]
    fn delays_grow_exponentially_with_jitter_up_to_the_cap() {
        let policy = RetryPolicy::default();
        let mut rng = StdRng::seed_from_u64(7);
        for attempts in 1..=12 {
            let step = (30u64 << (attempts - 1)).min(3600);
            for _ in 0..50 {
                let d = policy.delay(attempts, None, &mut rng).as_secs_f64();
                assert!(
                    d >= step as f64 * 0.5 - 1e-6 && d <= step as f64 + 1e-6,
                    "attempt {attempts}: {d} outside [{}, {step}]",
                    step as f64 * 0.5
                );
            }
        }
        assert!(policy.delay(u32::MAX, None, &mut rng) <= policy.max);
    }

    #[test]
    fn a_servers_hint_is_a_floor_but_not_beyond_the_cap() {
        let policy = RetryPolicy::default();
        let mut rng = StdRng::seed_from_u64(1);
        let hint = Some(Duration::from_secs(600));
        assert!(policy.delay(1, hint, &mut rng) >= Duration::from_secs(600));
        let huge = Some(Duration::from_secs(86_400));
        assert_eq!(policy.delay(1, huge, &mut rng), policy.max);
    }

    #[test]
    fn hints_are_read_from_replies() {
        let cases = [
            ("451 4.7.1 Try again in 30 seconds", Some(30)),
            ("421 Too many connections, retry in 5 minutes.", Some(300)),
            ("450 please wait 2 min", Some(120)),
            ("452 4.5.3 Too many recipients; try again later", None),
            ("550 5.1.1 User unknown, 3 seconds ago", None),
            ("451 greylisted", None),
        ];
        for (reply, expected) in cases {
            assert_eq!(
                retry_hint(reply),
                expected.map(Duration::from_secs),
                "{reply}"
            );
        }
    }
}
