//! Delivering through a connected Gmail mailbox: an access token (refreshed once for
//! everyone), the Gmail API, one retry with a new token after a 401, and Google's answers
//! turned into the same classified failures as SMTP replies.

use std::sync::Arc;

use crate::domain::{ChannelId, TenantId};
use crate::oauth::google::Google;
use crate::oauth::tokens::{AccessTokens, TokenError};
use crate::transport::FailureClass;
use crate::transport::gmail::{self, GmailFailure, GmailFailureKind};
use crate::transport::pool::SendFailure;

/// How long to wait when Google says the mailbox reached its daily limit without saying
/// when it frees: the limit is a rolling day, so an hour is a reasonable step.
const DAILY_LIMIT_WAIT_SECS: u64 = 3600;

/// A failed Gmail send: the classified failure and, for a credential problem, its cause.
pub struct GmailSendFailure {
    pub failure: SendFailure,
    pub auth_cause: Option<&'static str>,
}

pub struct GmailSender {
    google: Arc<Google>,
    tokens: AccessTokens,
}

impl GmailSender {
    pub fn new(google: Arc<Google>, tokens: AccessTokens) -> Self {
        Self { google, tokens }
    }

    pub async fn send(
        &self,
        tenant: TenantId,
        channel: ChannelId,
        message: &[u8],
    ) -> Result<String, GmailSendFailure> {
        let token = self
            .tokens
            .get(tenant, channel)
            .await
            .map_err(token_failure)?;
        let api = &self.google.settings().gmail_api_url;
        let http = self.google.http();
        match gmail::send(http, api, &token.token, message).await {
            Ok(id) => Ok(format!("Gmail API accepted it as {id}")),
            Err(f) if f.kind == GmailFailureKind::Unauthorized => {
                // Refused before its expiry (revoked, or keys rotated): one new token, once.
                let token = self
                    .tokens
                    .replace(tenant, channel, token.version)
                    .await
                    .map_err(token_failure)?;
                gmail::send(http, api, &token.token, message)
                    .await
                    .map(|id| format!("Gmail API accepted it as {id}"))
                    .map_err(api_failure)
            }
            Err(f) => Err(api_failure(f)),
        }
    }
}

fn token_failure(e: TokenError) -> GmailSendFailure {
    match e {
        TokenError::NeedsReauth { cause, detail } => GmailSendFailure {
            failure: SendFailure {
                class: FailureClass::Auth,
                code: None,
                message: detail,
            },
            auth_cause: Some(cause),
        },
        TokenError::Unavailable(detail) => GmailSendFailure {
            failure: SendFailure {
                class: FailureClass::Temporary,
                code: None,
                message: detail,
            },
            auth_cause: None,
        },
    }
}

fn api_failure(f: GmailFailure) -> GmailSendFailure {
    // The retry policy reads "try again in N seconds" from the message as a floor.
    let wait = |secs: u64| format!("{}; try again in {secs} seconds", f.message);
    let (class, message, auth_cause) = match f.kind {
        GmailFailureKind::Unauthorized => (
            FailureClass::Auth,
            format!("{}; a new access token was refused too", f.message),
            Some("token_revoked"),
        ),
        GmailFailureKind::RateLimited => (
            FailureClass::Temporary,
            match f.retry_after {
                Some(d) => wait(d.as_secs()),
                None => f.message.clone(),
            },
            None,
        ),
        GmailFailureKind::DailyLimit => (
            FailureClass::Temporary,
            wait(f.retry_after.map_or(DAILY_LIMIT_WAIT_SECS, |d| d.as_secs())),
            None,
        ),
        GmailFailureKind::Rejected => (FailureClass::Permanent, f.message.clone(), None),
        GmailFailureKind::Unavailable => (FailureClass::Temporary, f.message.clone(), None),
    };
    GmailSendFailure {
        failure: SendFailure {
            class,
            code: f.status,
            message,
        },
        auth_cause,
    }
}
