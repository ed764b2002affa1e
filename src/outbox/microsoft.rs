//! Delivering through a connected Microsoft mailbox: an access token (refreshed once for
//! everyone, at the account's directory), Graph `sendMail` with our MIME, one retry with a
//! new token after a 401, and, before any retry of a message, a look in Sent Items, so a
//! message Graph took without saying so is counted sent instead of sent twice. A channel
//! whose transport is `smtp` submits to Exchange Online over SMTP with `AUTH XOAUTH2`
//! instead, through the same connection pool as SMTP channels.

use lettre::address::Envelope;

use super::connected::{ApiSender, token_failure};
use crate::domain::health::ReauthCause;
use crate::domain::{ChannelId, SmtpSettings, TenantId};
use crate::oauth::microsoft::Microsoft;
use crate::oauth::provider::Resource;
use crate::oauth::tokens::AccessToken;
use crate::transport::FailureClass;
use crate::transport::classify::smtp_auth_disabled;
use crate::transport::graph::{self, Accepted, GraphFailure, GraphFailureKind};
use crate::transport::pool::{SendFailure, SmtpPool, Target};
use crate::transport::transaction::Transaction;

/// Sends through Microsoft Graph.
pub type MicrosoftSender = ApiSender<Microsoft>;

/// Graph serves at most four concurrent requests per app and mailbox; a fifth gets 429
/// `MailboxConcurrency`. A send may make two (the Sent Items lookup, then sendMail), one
/// after the other.
pub const MAILBOX_CONCURRENCY: usize = 4;

/// Graph refuses requests above about 4 MB (413), and base64 makes a message a third larger.
pub const SEND_MAIL_LIMIT: usize = 4 * 1024 * 1024;

/// A message Microsoft has.
pub struct Delivered {
    pub reply: String,
    /// Found in Sent Items before a retry: an earlier attempt had sent it.
    pub reconciled: bool,
}

impl MicrosoftSender {
    /// What the operator should hear about the client secret's expiry now, if anything.
    pub fn secret_expiry_notice(
        &self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Option<(bool, String)> {
        self.provider.settings().secret_expiry_notice(now)
    }

    /// Sends `message` (whose Message-ID is `message_id`). `retry`: an earlier attempt went
    /// to a transport, and may have sent it without our knowing; it is looked up first.
    pub async fn send(
        &self,
        tenant: TenantId,
        channel: ChannelId,
        message: &[u8],
        message_id: &str,
        retry: bool,
    ) -> Result<Delivered, SendFailure> {
        self.within_tenant_limit(message)?;
        let encoded = message.len().div_ceil(3) * 4;
        if encoded > SEND_MAIL_LIMIT {
            // Graph takes at most about 4 MB per request, a draft's MIME included; its upload
            // sessions carry file attachments only, and our messages have none. So a message
            // this large cannot go through Graph at all; SMTP submission takes it whole.
            return Err(SendFailure::new(
                FailureClass::Permanent,
                Some(413),
                format!(
                    "the message is {:.1} MB, {:.1} MB in base64: above the 4 MB Microsoft Graph takes in one request (Graph's upload sessions carry file attachments, not a message body); make it smaller, or switch the channel's transport to smtp (SMTP AUTH with OAuth), which takes messages up to the tenant's maximum size",
                    mb(message.len()),
                    mb(encoded)
                ),
            ));
        }
        let _slot = self.slot(channel).await;
        if let Err(left) = self.wait_if_paused(channel).await {
            return Err(SendFailure {
                retry_after: Some(left),
                ..SendFailure::new(
                    FailureClass::Temporary,
                    Some(429),
                    format!(
                        "Microsoft asked to leave this mailbox alone for {} s more (Retry-After); the message waits",
                        left.as_secs()
                    ),
                )
            });
        }
        let mut token = self
            .tokens
            .get(tenant, channel)
            .await
            .map_err(token_failure)?;
        if retry {
            let found = match self.find(&token, message_id).await {
                Err(f) if f.kind == GraphFailureKind::Unauthorized => {
                    token = self.replace(tenant, channel, &token).await?;
                    self.find(&token, message_id).await
                }
                other => other,
            };
            match found {
                Ok(Some(_)) => {
                    return Ok(Delivered {
                        reply: "found in the mailbox's Sent Items by its Message-ID: an earlier attempt sent it, so it was not sent again".into(),
                        reconciled: true,
                    });
                }
                Ok(None) => {}
                // Not knowing whether it went out, we do not send it again now.
                Err(f) => return Err(api_failure(f, "looking it up in Sent Items failed; ")),
            }
        }
        let send_url = self.provider.settings().graph("me/sendMail");
        let http = self.provider.http();
        let sent = match graph::send_mime(http, &send_url, &token.token, message).await {
            // A 401 means Graph did not take it: a new token, once, and send again.
            Err(f) if f.kind == GraphFailureKind::Unauthorized => {
                token = self.replace(tenant, channel, &token).await?;
                graph::send_mime(http, &send_url, &token.token, message).await
            }
            other => other,
        };
        // Whatever Retry-After said (with a 202, a 429 or a 503) holds for the mailbox.
        if let Some(wait) = match &sent {
            Ok(accepted) => accepted.retry_after,
            Err(f) => f.retry_after,
        } {
            self.pause(channel, wait);
        }
        match sent {
            Ok(Accepted { retry_after }) => Ok(Delivered {
                reply: match retry_after {
                    Some(wait) => format!(
                        "Microsoft Graph accepted it (202, with Retry-After {} s: not sent again)",
                        wait.as_secs()
                    ),
                    None => "Microsoft Graph accepted it (202)".into(),
                },
                reconciled: false,
            }),
            Err(f) => Err(api_failure(f, "")),
        }
    }

    /// Refuses a message above the tenant's maximum message size before any request.
    fn within_tenant_limit(&self, message: &[u8]) -> Result<(), SendFailure> {
        let max = self.provider.settings().max_message_bytes;
        if message.len() > max {
            return Err(SendFailure::new(
                FailureClass::Permanent,
                Some(413),
                format!(
                    "the message is {:.1} MB: above the {:.1} MB Exchange Online takes for this tenant (SWITCHBOARD_MICROSOFT_MAX_MESSAGE_BYTES); make it smaller",
                    mb(message.len()),
                    mb(max)
                ),
            ));
        }
        Ok(())
    }

    /// Sends over Exchange Online's SMTP submission as `mailbox`, with `AUTH XOAUTH2` and a
    /// token for outlook.office.com (not Graph's: one resource per token). A refused token
    /// (`535 5.7.3`) is replaced once; SMTP AUTH switched off for the tenant (`535 5.7.139`)
    /// is a cause of its own, since Graph would still work.
    pub async fn send_smtp(
        &self,
        pool: &SmtpPool,
        tenant: TenantId,
        channel: ChannelId,
        mailbox: &str,
        envelope: &Envelope,
        message: &[u8],
    ) -> Result<Transaction, SendFailure> {
        self.within_tenant_limit(message)?;
        let settings = SmtpSettings {
            username: Some(mailbox.to_owned()),
            ..self.provider.settings().smtp.clone()
        };
        let mut token = self
            .tokens
            .get_for(tenant, channel, Resource::MicrosoftSmtp)
            .await
            .map_err(token_failure)?;
        let mut refreshed = false;
        loop {
            let target = Target {
                channel,
                credential_version: token.version,
                settings: &settings,
                credential: Some(&token.token),
            };
            match pool.send(&target, envelope, message).await {
                Err(f) if f.class == FailureClass::Auth && smtp_auth_disabled(&f.message) => {
                    return Err(SendFailure {
                        auth_cause: Some(ReauthCause::SmtpAuthDisabled.as_str()),
                        ..f
                    });
                }
                Err(f) if f.class == FailureClass::Auth && !refreshed => {
                    refreshed = true;
                    token = self
                        .tokens
                        .replace_for(tenant, channel, token.version, Resource::MicrosoftSmtp)
                        .await
                        .map_err(token_failure)?;
                }
                Err(f) if f.class == FailureClass::Auth => {
                    return Err(SendFailure {
                        auth_cause: Some(ReauthCause::TokenRevoked.as_str()),
                        message: format!("{}; a new access token was refused too", f.message),
                        ..f
                    });
                }
                other => return other,
            }
        }
    }

    async fn find(
        &self,
        token: &AccessToken,
        message_id: &str,
    ) -> Result<Option<String>, GraphFailure> {
        let url = self
            .provider
            .settings()
            .graph("me/mailFolders/sentitems/messages");
        graph::find_sent(self.provider.http(), &url, &token.token, message_id).await
    }

    async fn replace(
        &self,
        tenant: TenantId,
        channel: ChannelId,
        rejected: &AccessToken,
    ) -> Result<AccessToken, SendFailure> {
        self.tokens
            .replace(tenant, channel, rejected.version)
            .await
            .map_err(token_failure)
    }
}

fn mb(bytes: usize) -> f64 {
    bytes as f64 / 1_048_576.0
}

fn api_failure(f: GraphFailure, context: &str) -> SendFailure {
    let message = format!("{context}{}", f.message);
    let uncertain = f.outcome_unknown();
    let mut failure = match f.kind {
        GraphFailureKind::Unauthorized => SendFailure {
            auth_cause: Some("token_revoked"),
            ..SendFailure::new(
                FailureClass::Auth,
                f.status,
                format!("{message}; a new access token was refused too"),
            )
        },
        GraphFailureKind::Attention(cause) => SendFailure {
            auth_cause: Some(cause.as_str()),
            ..SendFailure::new(FailureClass::Auth, f.status, message)
        },
        GraphFailureKind::Throttled | GraphFailureKind::Unavailable => {
            SendFailure::new(FailureClass::Temporary, f.status, message)
        }
        GraphFailureKind::Rejected => SendFailure::new(FailureClass::Permanent, f.status, message),
    };
    failure.retry_after = f.retry_after;
    // Graph may have taken it: the next attempt looks in Sent Items before sending.
    failure.possibly_delivered = uncertain && context.is_empty();
    failure
}
