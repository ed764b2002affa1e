//! Sending through the Gmail API (`users.messages.send`): the rendered RFC 5322 message,
//! base64url in JSON, or raw through the media upload endpoint when it is large. Google's
//! answers are classified the way SMTP replies are, so retries and holds work the same.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use super::api_answer::{self, ErrorBody};

/// Above this, base64 in JSON costs more than it is worth: the upload endpoint takes the
/// raw bytes (up to 35 MB).
pub const UPLOAD_ABOVE: usize = 4 * 1024 * 1024;

/// How a send through the Gmail API failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GmailFailureKind {
    /// 401: the access token was refused; refresh it and try once more.
    Unauthorized,
    /// 429, or 403 with a rate-limit reason: slow down and retry.
    RateLimited,
    /// 403 `dailyLimitExceeded`: the mailbox's daily sending limit is reached.
    DailyLimit,
    /// 400, 403 or 404 for any other reason: this message will not be sent as it is.
    Rejected,
    /// 5xx, a timeout, no connection: retry later.
    Unavailable,
}

#[derive(Debug, Clone)]
pub struct GmailFailure {
    pub kind: GmailFailureKind,
    pub status: Option<u16>,
    /// Google's `error.errors[].reason`, when given.
    pub reason: Option<String>,
    pub message: String,
    /// From `Retry-After` or the message, when Google named a time.
    pub retry_after: Option<Duration>,
}

#[derive(Deserialize)]
struct Sent {
    id: String,
}

const RATE_REASONS: [&str; 3] = [
    "rateLimitExceeded",
    "userRateLimitExceeded",
    "quotaExceeded",
];

/// Sends one message as the token's mailbox; returns Gmail's message id.
pub async fn send(
    http: &reqwest::Client,
    api_base: &Url,
    access_token: &SecretString,
    message: &[u8],
) -> Result<String, GmailFailure> {
    let base = api_base.as_str().trim_end_matches('/');
    let request = if message.len() > UPLOAD_ABOVE {
        http.post(format!(
            "{base}/upload/gmail/v1/users/me/messages/send?uploadType=media"
        ))
        .header(reqwest::header::CONTENT_TYPE, "message/rfc822")
        .body(message.to_vec())
    } else {
        http.post(format!("{base}/gmail/v1/users/me/messages/send"))
            .json(&serde_json::json!({ "raw": URL_SAFE.encode(message) }))
    };
    let response = request
        .bearer_auth(access_token.expose_secret())
        .send()
        .await
        .map_err(|e| GmailFailure {
            kind: GmailFailureKind::Unavailable,
            status: None,
            reason: None,
            message: format!(
                "Gmail API: {}",
                if e.is_timeout() {
                    "timed out".to_owned()
                } else {
                    "could not connect".to_owned()
                }
            ),
            retry_after: None,
        })?;
    let status = response.status();
    let retry_after = api_answer::retry_after(response.headers());
    let body = response.bytes().await.unwrap_or_default();
    if status.is_success() {
        return serde_json::from_slice::<Sent>(&body)
            .map(|s| s.id)
            .map_err(|e| GmailFailure {
                kind: GmailFailureKind::Unavailable,
                status: Some(status.as_u16()),
                reason: None,
                message: format!("Gmail API answered {status} with an unreadable body: {e}"),
                retry_after: None,
            });
    }
    let error = ErrorBody::read(&body);
    let reason = error
        .errors
        .into_iter()
        .map(|e| e.reason)
        .find(|r| !r.is_empty());
    let message = error.message;
    let kind = classify(status.as_u16(), reason.as_deref());
    // Google's 429 for mail sending names the time in the message ("Retry after <RFC 3339>")
    // rather than in a Retry-After header.
    let retry_after = retry_after.or_else(|| retry_after_in(&message, chrono::Utc::now()));
    Err(GmailFailure {
        kind,
        status: Some(status.as_u16()),
        message: format!(
            "Gmail API {}{}: {}",
            status.as_u16(),
            reason
                .as_deref()
                .map(|r| format!(" {r}"))
                .unwrap_or_default(),
            message.trim()
        ),
        reason,
        retry_after,
    })
}

fn retry_after_in(message: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let (_, rest) = message.split_once("Retry after ")?;
    let stamp = rest.split_whitespace().next()?.trim_end_matches(['.', ',']);
    let at = chrono::DateTime::parse_from_rfc3339(stamp).ok()?;
    (at.with_timezone(&chrono::Utc) - now).to_std().ok()
}

fn classify(status: u16, reason: Option<&str>) -> GmailFailureKind {
    match (status, reason) {
        (401, _) => GmailFailureKind::Unauthorized,
        (429, _) => GmailFailureKind::RateLimited,
        (403, Some("dailyLimitExceeded")) => GmailFailureKind::DailyLimit,
        (403, Some(r)) if RATE_REASONS.contains(&r) => GmailFailureKind::RateLimited,
        (500..=599, _) => GmailFailureKind::Unavailable,
        _ => GmailFailureKind::Rejected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn googles_answers_are_classified_as_its_documentation_says() {
        use GmailFailureKind::*;
        assert_eq!(classify(401, Some("authError")), Unauthorized);
        assert_eq!(classify(429, Some("rateLimitExceeded")), RateLimited);
        assert_eq!(classify(403, Some("userRateLimitExceeded")), RateLimited);
        assert_eq!(classify(403, Some("dailyLimitExceeded")), DailyLimit);
        assert_eq!(classify(403, Some("insufficientPermissions")), Rejected);
        assert_eq!(classify(400, Some("invalidArgument")), Rejected);
        assert_eq!(classify(503, None), Unavailable);
    }

    #[test]
    fn the_retry_time_in_a_429_message_is_read() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-23T22:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(
            retry_after_in(
                "User-rate limit exceeded.  Retry after 2026-11-23T22:10:00.000Z",
                now
            ),
            Some(Duration::from_secs(600))
        );
        assert_eq!(
            retry_after_in("Retry after 2026-11-23T21:00:00Z", now),
            None
        );
        assert_eq!(retry_after_in("Rate limit exceeded", now), None);
    }
}
