//! Sending through Microsoft Graph (`POST /me/sendMail`): the exact MIME we rendered,
//! base64 in a `text/plain` body, so our Message-ID, Reply-To, In-Reply-To, References and
//! List-Unsubscribe survive (the JSON form accepts only `x-` headers). `sendMail` answers 202
//! with no id and has no idempotency key, so a send whose outcome is unknown is looked up in
//! Sent Items by `internetMessageId` before it is ever sent again.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::api_answer::{ErrorBody, retry_after};
use crate::domain::health::ReauthCause;

/// How a Graph call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GraphFailureKind {
    /// 401: the access token was refused; refresh it and try once more.
    Unauthorized,
    /// 429 or 503 (with `Retry-After`, usually): wait and retry.
    Throttled,
    /// Another 5xx, a timeout, a broken connection: the message may have been sent anyway.
    Unavailable,
    /// Exchange will not take this message as it is (413, `ErrorQuotaExceeded`, another 4xx).
    Rejected,
    /// The mailbox cannot send until someone acts: permissions, a mailbox Graph cannot use, a
    /// sending block or limit.
    Attention(ReauthCause),
}

#[derive(Debug, Clone)]
pub struct GraphFailure {
    pub kind: GraphFailureKind,
    pub status: Option<u16>,
    /// Graph's `error.code`, when given.
    pub code: Option<String>,
    pub message: String,
    pub retry_after: Option<Duration>,
}

impl GraphFailure {
    /// Whether Microsoft may have taken the message although the answer says otherwise: a
    /// timeout, a dropped connection, or a 5xx (a 504 has been seen after the mail went out).
    pub fn outcome_unknown(&self) -> bool {
        self.kind == GraphFailureKind::Unavailable
            || (self.kind == GraphFailureKind::Throttled && self.status != Some(429))
    }
}

/// What `sendMail` said when it took a message.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// A 202 that also carried `Retry-After`: accepted all the same (retrying such a 202 is
    /// how peers sent duplicates); the delay only paces what comes next.
    pub retry_after: Option<Duration>,
}

#[derive(Deserialize)]
struct Found {
    #[serde(default)]
    value: Vec<serde_json::Value>,
}

fn unreachable(e: &reqwest::Error, what: &str) -> GraphFailure {
    GraphFailure {
        kind: GraphFailureKind::Unavailable,
        status: None,
        code: None,
        message: format!(
            "Microsoft Graph {what}: {}",
            if e.is_timeout() {
                "timed out"
            } else {
                "could not connect or the connection broke"
            }
        ),
        retry_after: None,
    }
}

/// Sends one message as the token's mailbox.
pub async fn send_mime(
    http: &reqwest::Client,
    send_url: &str,
    access_token: &SecretString,
    message: &[u8],
) -> Result<Accepted, GraphFailure> {
    let response = http
        .post(send_url)
        .bearer_auth(access_token.expose_secret())
        .header(reqwest::header::CONTENT_TYPE, "text/plain")
        .body(STANDARD.encode(message))
        .send()
        .await
        .map_err(|e| unreachable(&e, "sendMail"))?;
    let status = response.status();
    let wait = retry_after(response.headers());
    if status.as_u16() == 202 || status.is_success() {
        return Ok(Accepted { retry_after: wait });
    }
    let body = response.bytes().await.unwrap_or_default();
    Err(failure(status.as_u16(), &body, wait))
}

/// Looks the message up in the mailbox's Sent Items by its Message-ID (with angle brackets,
/// as Exchange stores `internetMessageId`). `Some(id)` when it is there.
pub async fn find_sent(
    http: &reqwest::Client,
    sent_items_url: &str,
    access_token: &SecretString,
    message_id: &str,
) -> Result<Option<String>, GraphFailure> {
    // OData quotes a quote by doubling it; reqwest percent-encodes the query value.
    let filter = format!("internetMessageId eq '{}'", message_id.replace('\'', "''"));
    let response = http
        .get(sent_items_url)
        .query(&[
            ("$filter", filter.as_str()),
            ("$select", "id,internetMessageId"),
        ])
        .bearer_auth(access_token.expose_secret())
        .send()
        .await
        .map_err(|e| unreachable(&e, "Sent Items lookup"))?;
    let status = response.status();
    let wait = retry_after(response.headers());
    let body = response.bytes().await.unwrap_or_default();
    if !status.is_success() {
        return Err(failure(status.as_u16(), &body, wait));
    }
    let found: Found = serde_json::from_slice(&body).map_err(|e| GraphFailure {
        kind: GraphFailureKind::Unavailable,
        status: Some(status.as_u16()),
        code: None,
        message: format!(
            "Microsoft Graph answered the Sent Items lookup with an unreadable body: {e}"
        ),
        retry_after: None,
    })?;
    Ok(found.value.first().map(|m| {
        m.get("id")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned()
    }))
}

fn failure(status: u16, body: &[u8], retry_after: Option<Duration>) -> GraphFailure {
    let error = ErrorBody::read(body);
    let code = error
        .code
        .as_str()
        .filter(|c| !c.is_empty())
        .map(str::to_owned);
    let message = error.message;
    let kind = classify(status, code.as_deref(), &message);
    GraphFailure {
        message: format!(
            "Microsoft Graph {status}{}: {}",
            code.as_deref().map(|c| format!(" {c}")).unwrap_or_default(),
            message.trim()
        ),
        kind,
        status: Some(status),
        code,
        retry_after,
    }
}

/// Graph's answers as its documentation and the field reports in MICROSOFT.md describe them.
/// Codes first: `MailboxNotEnabledForRESTAPI` comes with 401 or 404 and no token cures it.
pub fn classify(status: u16, code: Option<&str>, message: &str) -> GraphFailureKind {
    use GraphFailureKind::*;
    match code {
        Some("MailboxNotEnabledForRESTAPI" | "MailboxNotSupportedForRESTAPI") => {
            return Attention(ReauthCause::MailboxNotEnabled);
        }
        Some("ErrorSendAsDenied") => return Attention(ReauthCause::SendAsDenied),
        Some("ErrorAccessDenied") => return Attention(ReauthCause::MailboxAccessDenied),
        Some("ErrorExceededMessageLimit") => return Attention(ReauthCause::SendLimitReached),
        Some("ErrorQuotaExceeded" | "ErrorMessageSizeExceeded") => return Rejected,
        _ => {}
    }
    if message.contains("5.1.8") || message.to_ascii_lowercase().contains("bad outbound sender") {
        return Attention(ReauthCause::SenderBlocked);
    }
    match status {
        401 => Unauthorized,
        429 | 503 => Throttled,
        500..=599 => Unavailable,
        _ => Rejected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graphs_answers_are_classified_as_documented() {
        use GraphFailureKind::*;
        assert_eq!(
            classify(401, Some("InvalidAuthenticationToken"), ""),
            Unauthorized
        );
        assert_eq!(
            classify(
                401,
                Some("MailboxNotEnabledForRESTAPI"),
                "inactive, soft-deleted, or hosted on-premise"
            ),
            Attention(ReauthCause::MailboxNotEnabled)
        );
        assert_eq!(
            classify(403, Some("ErrorSendAsDenied"), ""),
            Attention(ReauthCause::SendAsDenied)
        );
        assert_eq!(
            classify(403, Some("ErrorAccessDenied"), ""),
            Attention(ReauthCause::MailboxAccessDenied)
        );
        assert_eq!(classify(413, None, "request too large"), Rejected);
        assert_eq!(classify(413, Some("ErrorQuotaExceeded"), ""), Rejected);
        assert_eq!(classify(429, Some("ApplicationThrottled"), ""), Throttled);
        assert_eq!(classify(503, None, ""), Throttled);
        assert_eq!(classify(504, None, ""), Unavailable);
        assert_eq!(
            classify(400, Some("ErrorExceededMessageLimit"), ""),
            Attention(ReauthCause::SendLimitReached)
        );
        assert_eq!(
            classify(
                403,
                Some("ErrorSubmissionQuotaExceeded"),
                "550 5.1.8 Access denied, bad outbound sender"
            ),
            Attention(ReauthCause::SenderBlocked)
        );
        assert_eq!(
            classify(400, Some("ErrorMimeContentInvalidBase64String"), ""),
            Rejected
        );
    }
}
