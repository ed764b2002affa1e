//! Delivers the notification queue: signed webhook POSTs and owner emails through the shared
//! pool. Each row is claimed with a lease, tried, and recorded: delivered, tried again later
//! with a doubling wait, or given up after the last attempt. Several processes share the
//! queue; a process that dies loses its leases and another takes the rows over.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use lettre::Message;
use lettre::message::header::ContentType;
use rand::Rng;
use tokio::sync::watch;
use url::Url;

use super::settings::NotifySettings;
use super::signature::{SIGNATURE_HEADER, sign};
use super::webhook_client::{WebhookClient, WebhookError};
use crate::domain::{ChannelId, TenantId, WebhookId};
use crate::store::notifications::{self, EMAIL, Outcome, Pending, WEBHOOK};
use crate::store::{Store, StoreError, webhooks};
use crate::transport::pool::{DEFAULT_IDLE_TIMEOUT, SmtpPool, Target};
use crate::transport::{FailureClass, SharedPool};
use crate::vault::Vault;

/// Rows claimed per pass.
const CLAIM: i64 = 32;
/// How long a claimed row is ours: longer than a webhook timeout or an SMTP send.
const LEASE: Duration = Duration::from_secs(120);

/// The notification worker of one process.
pub struct Notifier {
    store: Store,
    vault: Arc<Vault>,
    settings: NotifySettings,
    client: WebhookClient,
    smtp: SmtpPool,
    shared_pool: Option<SharedPool>,
    public_url: String,
    worker_id: String,
}

impl Notifier {
    pub fn new(
        store: Store,
        vault: Arc<Vault>,
        config: &crate::config::Config,
    ) -> Result<Self, String> {
        let client = WebhookClient::new(config.outbound.clone())
            .map_err(|e| format!("webhook client: {e}"))?
            .with_timeout(config.notify.webhook_timeout);
        if config.notify.from.is_none() || config.shared_pool.is_none() {
            tracing::info!(
                "channel owners are not emailed about trouble: set SWITCHBOARD_NOTIFICATION_FROM and SWITCHBOARD_SHARED_POOL_URL (webhooks work without them)"
            );
        }
        Ok(Self {
            store,
            vault,
            settings: config.notify.clone(),
            client,
            smtp: SmtpPool::new(config.outbound.clone(), DEFAULT_IDLE_TIMEOUT),
            shared_pool: config.shared_pool.clone(),
            public_url: config.public_url.clone(),
            worker_id: format!("notify-{}-{}", std::process::id(), uuid::Uuid::new_v4()),
        })
    }

    /// Works the queue until `stopped` turns true; attempts under way finish first.
    pub async fn run(self: Arc<Self>, mut stopped: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(self.settings.poll_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !*stopped.borrow() {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stopped.changed() => break,
            }
            let (worker, lease) = (
                self.worker_id.clone(),
                i64::try_from(LEASE.as_micros()).unwrap_or(i64::MAX),
            );
            let claimed = match self
                .store
                .run(move |c| notifications::claim(c, &worker, CLAIM, lease))
                .await
            {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::warn!(error = %e, "reading the notification queue failed; retrying");
                    continue;
                }
            };
            // The attempts of one pass run side by side; the next pass waits for them.
            let mut attempts = tokio::task::JoinSet::new();
            for row in claimed {
                let this = self.clone();
                attempts.spawn(async move { this.attempt(row).await });
            }
            while attempts.join_next().await.is_some() {}
        }
    }

    async fn attempt(&self, row: Pending) {
        let outcome = match row.kind.as_str() {
            WEBHOOK => self.post(&row).await,
            EMAIL => self.email(&row).await,
            other => Err(Failure::fatal(
                None,
                format!("unknown notification kind `{other}`"),
            )),
        };
        let attempts = u32::try_from(row.attempts).unwrap_or(u32::MAX);
        let expected = outcome.as_ref().is_err_and(|f| f.expected);
        let outcome = match outcome {
            Ok(code) => Outcome::Delivered { code },
            Err(f) if f.retry && attempts < self.settings.max_attempts => {
                let wait = self.settings.backoff(attempts);
                // A fifth of jitter, so receivers that come back are not hit all at once.
                let jitter = wait.mul_f64(rand::rng().random_range(0.0..0.2));
                let at = Utc::now() + chrono::Duration::from_std(wait + jitter).unwrap_or_default();
                Outcome::Retry {
                    at: at.timestamp_micros(),
                    code: f.code,
                    error: f.error,
                }
            }
            Err(f) => Outcome::Failed {
                code: f.code,
                error: if f.retry {
                    format!("gave up after {attempts} attempts; last: {}", f.error)
                } else {
                    f.error
                },
            },
        };
        match &outcome {
            Outcome::Delivered { .. } => {
                tracing::debug!(notification = %row.id, event = %row.event_type, kind = %row.kind, "notification delivered")
            }
            Outcome::Retry { error, .. } => {
                tracing::info!(notification = %row.id, event = %row.event_type, kind = %row.kind, attempts, error = %error, "notification not delivered; trying again later")
            }
            Outcome::Failed { error, .. } if expected => {
                tracing::debug!(notification = %row.id, error = %error, "notification not sent")
            }
            Outcome::Failed { error, .. } => {
                tracing::warn!(notification = %row.id, event = %row.event_type, kind = %row.kind, attempts, error = %error, "notification given up")
            }
        }
        let (worker, id) = (self.worker_id.clone(), row.id.clone());
        let mut delay = Duration::from_millis(100);
        for _ in 0..5 {
            let (worker, id, outcome) = (worker.clone(), id.clone(), outcome.clone());
            match self
                .store
                .run(move |c| notifications::finish(c, &worker, &id, &outcome))
                .await
            {
                Ok(_) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "recording a notification attempt failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
            }
        }
    }

    /// Signs and POSTs a webhook event.
    async fn post(&self, row: &Pending) -> Result<Option<i64>, Failure> {
        let tenant: TenantId = row.tenant_id.parse().map_err(Failure::corrupt)?;
        let webhook: WebhookId = row
            .webhook_id
            .as_deref()
            .ok_or_else(|| Failure::fatal(None, "no webhook".into()))?
            .parse()
            .map_err(Failure::corrupt)?;
        let vault = self.vault.clone();
        let found = self
            .store
            .run(move |c| {
                let hook = match webhooks::get(c, tenant, webhook) {
                    Ok(hook) => hook,
                    Err(StoreError::NotFound) => return Ok(None),
                    Err(e) => return Err(e),
                };
                let secret = webhooks::signing_secret(c, &vault, tenant, webhook)?;
                Ok(Some((hook, secret)))
            })
            .await
            .map_err(|e| Failure::retry(None, format!("reading the webhook: {e}")))?;
        let Some((hook, Some(secret))) = found else {
            return Err(Failure::fatal(None, "the webhook was deleted".into()));
        };
        if !hook.enabled {
            return Err(Failure::fatal(None, "the webhook is disabled".into()));
        }
        let url = Url::parse(&hook.url).map_err(Failure::corrupt)?;
        let body = row.payload.clone().into_bytes();
        let signature = sign(&secret, Utc::now().timestamp(), &body);
        let headers = [
            ("Content-Type", "application/json".to_owned()),
            (SIGNATURE_HEADER, signature),
            ("Switchboard-Event", row.event_type.clone()),
            ("Switchboard-Event-Id", row.event_id.clone()),
            ("Switchboard-Delivery", row.id.clone()),
            ("Switchboard-Attempt", row.attempts.to_string()),
        ];
        match self.client.post(&url, &headers, body).await {
            Ok(r) if (200..300).contains(&r.status) => Ok(Some(i64::from(r.status))),
            // Gone: the receiver says it will never want this again.
            Ok(r) if r.status == 410 => Err(Failure::fatal(
                Some(410),
                "the receiver answered 410 Gone".into(),
            )),
            Ok(r) => Err(Failure::retry(
                Some(i64::from(r.status)),
                format!(
                    "the receiver answered {}: {}",
                    r.status,
                    r.body_excerpt.trim()
                ),
            )),
            Err(WebhookError::Refused(e)) => Err(Failure::fatal(None, e.to_string())),
            Err(e) => Err(Failure::retry(None, e.to_string())),
        }
    }

    /// Emails a channel's owner through the shared pool.
    async fn email(&self, row: &Pending) -> Result<Option<i64>, Failure> {
        let (Some(pool), Some(from)) = (&self.shared_pool, &self.settings.from) else {
            return Err(Failure {
                expected: true,
                ..Failure::fatal(
                    None,
                    "owner emails are off: set SWITCHBOARD_NOTIFICATION_FROM and SWITCHBOARD_SHARED_POOL_URL".into(),
                )
            });
        };
        let to = row
            .recipient
            .as_deref()
            .ok_or_else(|| Failure::fatal(None, "no recipient".into()))?;
        let payload: serde_json::Value =
            serde_json::from_str(&row.payload).map_err(Failure::corrupt)?;
        let Some((subject, text)) = super::email::render(&payload, &self.public_url) else {
            return Err(Failure::fatal(
                None,
                format!("{} is not emailed", row.event_type),
            ));
        };
        let message = Message::builder()
            .from(from.to_string().parse().map_err(Failure::corrupt)?)
            .to(to.parse().map_err(Failure::corrupt)?)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(text)
            .map_err(Failure::corrupt)?;
        let target = Target {
            channel: ChannelId::shared_pool(),
            credential_version: 0,
            settings: &pool.settings,
            credential: pool.credential.as_ref(),
        };
        match self
            .smtp
            .send(&target, message.envelope(), &message.formatted())
            .await
        {
            Ok(done) if done.delivered.is_some() => Ok(None),
            // The relay refused the one recipient: an owner's address it will not take.
            Ok(done) => {
                let refusal = done.recipients.into_iter().next();
                let code = refusal.as_ref().and_then(|r| r.code).map(i64::from);
                let reply = refusal
                    .as_ref()
                    .map(|r| r.reply.clone())
                    .unwrap_or_default();
                let error = format!("the shared pool's relay refused {to}: {reply}");
                match refusal.map(|r| r.verdict) {
                    Some(crate::domain::recipients::Verdict::Deferred) => {
                        Err(Failure::retry(code, error))
                    }
                    _ => Err(Failure::fatal(code, error)),
                }
            }
            Err(f) => {
                let code = f.code.map(i64::from);
                let error = format!("the shared pool's relay: {}", f.message);
                match f.class {
                    FailureClass::Permanent | FailureClass::Auth => {
                        Err(Failure::fatal(code, error))
                    }
                    _ => Err(Failure::retry(code, error)),
                }
            }
        }
    }
}

/// Why an attempt did not deliver, and whether another may.
struct Failure {
    retry: bool,
    code: Option<i64>,
    error: String,
    /// Not a failure anyone must look at: this instance does not send that kind (owner
    /// emails off). Said once at start, not per notification.
    expected: bool,
}

impl Failure {
    fn retry(code: Option<i64>, error: String) -> Self {
        Self {
            retry: true,
            code,
            error,
            expected: false,
        }
    }

    fn fatal(code: Option<i64>, error: String) -> Self {
        Self {
            retry: false,
            code,
            error,
            expected: false,
        }
    }

    fn corrupt(e: impl std::fmt::Display) -> Self {
        Self::fatal(None, format!("unreadable notification: {e}"))
    }
}
