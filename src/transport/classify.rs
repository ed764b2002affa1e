//! Classify, don't stringify: every SMTP failure becomes one `FailureClass`, which the
//! channel tester, the retry policy and the health of a channel all read.

use serde::Serialize;

/// What kind of failure a send or a test hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureClass {
    /// The server refused the credential: the channel needs a new one.
    Auth,
    /// TLS could not be established (certificate, protocol mismatch).
    Tls,
    /// No connection, a dropped connection, or a deadline passed.
    Network,
    /// A 4xx reply: try again later.
    Temporary,
    /// A 5xx reply that is not about the credential.
    Permanent,
    /// The server said something we did not expect.
    Protocol,
}

/// The reply code and text of an SMTP error, when there is one, and its full text.
pub fn describe(error: &lettre::transport::smtp::Error) -> (Option<u16>, String) {
    let code = error
        .status()
        .and_then(|c| c.to_string().parse::<u16>().ok());
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    (code, text)
}

/// Microsoft 365 refuses SMTP AUTH for a tenant or mailbox with this enhanced status.
pub fn smtp_auth_disabled(text: &str) -> bool {
    text.contains("5.7.139") || text.contains("SmtpClientAuthentication is disabled")
}

/// Classifies an error from an SMTP exchange.
pub fn classify(error: &lettre::transport::smtp::Error, during_auth: bool) -> FailureClass {
    let (code, text) = describe(error);
    if error.is_tls() {
        return FailureClass::Tls;
    }
    if during_auth {
        // Gmail answers a rejected XOAUTH2 token with a 334 challenge, which lettre turns
        // into a client error "This mechanism does not expect a challenge".
        // A permanent refusal of the login (535, 534, 530, or 550 5.7.x as Microsoft
        // answers once Basic authentication is retired) means the credential or the way of
        // logging in must change; a 4xx during AUTH is a retry.
        if code.is_some_and(|c| c >= 500) || error.is_client() || smtp_auth_disabled(&text) {
            return FailureClass::Auth;
        }
    } else if matches!(code, Some(535)) || smtp_auth_disabled(&text) {
        return FailureClass::Auth;
    }
    if error.is_transient() {
        FailureClass::Temporary
    } else if error.is_permanent() {
        FailureClass::Permanent
    } else if error.is_timeout()
        || text.contains("incomplete response")
        || text.contains("close_notify")
        || text.contains("onnection")
    {
        // A dropped connection is neither transient nor permanent to lettre.
        FailureClass::Network
    } else {
        FailureClass::Protocol
    }
}
