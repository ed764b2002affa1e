//! Delivering through a connected Gmail mailbox: an access token (refreshed once for
//! everyone), the Gmail API, one retry with a new token after a 401, and Google's answers
//! turned into the same classified failures as SMTP replies.

use std::time::Duration;

use super::connected::{ApiSender, token_failure};
use crate::domain::{ChannelId, TenantId};
use crate::oauth::google::Google;
use crate::transport::FailureClass;
use crate::transport::gmail::{self, GmailFailure, GmailFailureKind};
use crate::transport::pool::SendFailure;

/// How long to wait when Google says the mailbox reached its daily limit without saying
/// when it frees: the limit is a rolling day, so an hour is a reasonable step.
const DAILY_LIMIT_WAIT_SECS: u64 = 3600;

/// Sends through the Gmail API.
pub type GmailSender = ApiSender<Google>;

impl GmailSender {
    pub async fn send(
        &self,
        tenant: TenantId,
        channel: ChannelId,
        message: &[u8],
    ) -> Result<String, SendFailure> {
        let token = self
            .tokens
            .get(tenant, channel)
            .await
            .map_err(token_failure)?;
        let api = &self.provider.settings().gmail_api_url;
        let http = self.provider.http();
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

fn api_failure(f: GmailFailure) -> SendFailure {
    let mut failure = match f.kind {
        GmailFailureKind::Unauthorized => SendFailure {
            auth_cause: Some("token_revoked"),
            ..SendFailure::new(
                FailureClass::Auth,
                f.status,
                format!("{}; a new access token was refused too", f.message),
            )
        },
        GmailFailureKind::RateLimited | GmailFailureKind::Unavailable => {
            SendFailure::new(FailureClass::Temporary, f.status, f.message)
        }
        GmailFailureKind::DailyLimit => SendFailure {
            retry_after: Some(Duration::from_secs(DAILY_LIMIT_WAIT_SECS)),
            ..SendFailure::new(FailureClass::Temporary, f.status, f.message)
        },
        GmailFailureKind::Rejected => {
            SendFailure::new(FailureClass::Permanent, f.status, f.message)
        }
    };
    if f.retry_after.is_some() {
        failure.retry_after = f.retry_after;
    }
    failure
}
