//! What the HTTP mail APIs (Gmail API, Microsoft Graph) answer besides success: the error
//! body both shape as `{"error": {"code", "message", …}}` and the `Retry-After` header.

use std::time::Duration;

use serde::Deserialize;

/// `{"error": {...}}`, as Google and Microsoft Graph both answer a refused call.
#[derive(Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Deserialize)]
pub struct ErrorDetail {
    /// Graph: a name such as `ErrorSendAsDenied`; Google: the HTTP status, as a number.
    #[serde(default)]
    pub code: serde_json::Value,
    #[serde(default)]
    pub message: String,
    /// Google: the reasons (`rateLimitExceeded`, …).
    #[serde(default)]
    pub errors: Vec<ErrorItem>,
}

#[derive(Deserialize)]
pub struct ErrorItem {
    #[serde(default)]
    pub reason: String,
}

impl ErrorBody {
    /// The error of a body, or (for a body that is not one) its first 300 characters as the
    /// message.
    pub fn read(body: &[u8]) -> ErrorDetail {
        serde_json::from_slice::<ErrorBody>(body)
            .map(|b| b.error)
            .unwrap_or_else(|_| ErrorDetail {
                code: serde_json::Value::Null,
                message: String::from_utf8_lossy(body).chars().take(300).collect(),
                errors: Vec::new(),
            })
    }
}

/// `Retry-After` in seconds, when the answer carries one.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}
